#!/usr/bin/env bash
# Instructions per forwarded packet in the worker (`Worker::poll_once`:
# parse, checksum, table, firewall, transmit; in-memory ports) with the
# firewall rulesets of scripts/bench-forward.sh's defconf rows, counted by
# callgrind: deterministic and in cache, so an A/B of a change to the
# firewall's path is not lost in this shared VM's noise. Rows: no ruleset,
# the defconf-like ruleset on the full path (its fasttrack rule disabled),
# and with FastTrack; the ratio full path / FastTrack is what FastTrack
# saves in compute. Steady state only: two runs of 5 and 15 measured rounds
# of 2048 packets (1024 established UDP connections), and the difference.
#
#   scripts/bench-fw-icount.sh        (~1 minute; installs valgrind if missing)
#
# The printed figures also go to out/bench/fw-icount.log, which
# scripts/plot-benchmarks.sh draws as FastTrack against the full path with
# rules.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages valgrind

cargo build --release -q -p dataplane --no-default-features --example fw_cost
bin=${CARGO_TARGET_DIR:-target}/release/examples/fw_cost
out=out/bench
mkdir -p "$out"
scripts/bench-fw-rulesets.sh "$out"
count() { # rules.rsc|none -> instructions per packet in the steady state
    local name ir=()
    name=$(basename "$1" .rsc)
    for n in 5 15; do
        local f="$out/callgrind.fw-$name-$n"
        valgrind --tool=callgrind --callgrind-out-file="$f" \
            --toggle-collect='*Worker*poll_once*' "$bin" "$1" icount "$n" >"$f.log" 2>&1
        ir+=("$(awk '/Collected :/ {print $NF}' "$f.log")")
    done
    python3 -c "print(f'{(${ir[1]} - ${ir[0]}) / (10 * 2048):.0f}')"
}
none=$(count none)
full=$(count "$out/defconf-full.rsc")
ft=$(count "$out/defconf-fasttrack.rsc")
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "instructions per packet in Worker::poll_once (1024 established UDP connections, in cache)"
    printf '%-28s %8s\n' "no ruleset" "$none" "defconf full path" "$full" "defconf FastTrack" "$ft"
    python3 -c "print(f'full path / FastTrack: {$full / $ft:.2f}x; the ruleset adds {$full - $none} (full path), {$ft - $none} (FastTrack)')"
} | tee "$out/fw-icount.log"
echo "(callgrind profiles: $out/callgrind.fw-*; callgrind_annotate --inclusive=yes FILE shows where)"
