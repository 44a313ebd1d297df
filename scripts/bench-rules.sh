#!/usr/bin/env bash
# Rule evaluation with 10, 1000 and 10 000 address/port rules in one run
# (issue 10, "Speed"; docs/firewall.md, "Classifier"): the linear walk, the
# engine with its classifier, and bare rte_acl_classify over the same chain
# and packets, in alternating rounds (medians), as nanoseconds per packet and
# as ratios; then forwarding with tracking and new connections (the table's
# work plus the rules). Then, unless ICOUNT=0, instructions per packet in
# Ruleset::evaluate_burst counted by callgrind (deterministic, in cache: the
# compute without this shared machine's noise or the memory system).
#
#   scripts/bench-rules.sh [ROUNDS] [MS]   (default 5 rounds of 150 ms per cell;
#                                           about 30 s, plus ~1 min for icount)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
if [ "${ICOUNT:-1}" != 0 ]; then
    ctrack_need_packages valgrind
else
    ctrack_need_packages
fi

cargo build --release -q -p dataplane --example bench_rules
bin=${CARGO_TARGET_DIR:-target}/release/examples/bench_rules
"$bin" "${1:-5}" "${2:-150}"

[ "${ICOUNT:-1}" = 0 ] && exit 0
out=out/bench
mkdir -p "$out"
count() { # rules linear|tree -> instructions per packet
    local f="$out/callgrind.rules-$1-$2"
    valgrind --tool=callgrind --callgrind-out-file="$f" \
        --toggle-collect='*Ruleset::evaluate_burst*' \
        "$bin" icount "$1" "$2" >"$f.log" 2>&1
    local ir pkts
    ir=$(awk '/Collected :/ {print $NF}' "$f.log")
    pkts=$(awk '/packets through evaluate_burst/ {print $1}' "$f.log")
    python3 -c "print(f'{$ir / $pkts:.0f}')"
}
echo
echo "instructions per packet in Ruleset::evaluate_burst (forwarded packets, no rule matches)"
printf '%-7s %10s %10s\n' rules engine linear
for n in 10 1000 10000; do
    lin=-
    [ "$n" -le 1000 ] && lin=$(count "$n" linear)
    printf '%-7s %10s %10s\n' "$n" "$(count "$n" tree)" "$lin"
done
echo "(chains under 32 rules have no classifier: the engine is the linear walk there)"
