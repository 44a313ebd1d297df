#!/usr/bin/env bash
# Instructions per packet in Shard::handle_burst, counted by callgrind: a
# deterministic measure of the table's compute (in cache), immune to this
# shared VM's noise, for A/B-ing code changes. Four cases: UDP and TCP
# established connections, full path and FastTrack; FastTrack is printed as a
# ratio to the full path of the same protocol. Then new connections: SYNs of
# fresh tuples into a full table (two-phase creation with early drop), and
# into a table kept below its ceiling by expiry (creation + expiry). See
# docs/benchmarks.md.
#
#   scripts/bench-icount.sh          (~1 minute; installs valgrind if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages valgrind

cargo build --release -q -p dataplane --no-default-features --example icount
bin=${CARGO_TARGET_DIR:-target}/release/examples/icount
out=out/bench
mkdir -p "$out"
count() { # proto path -> instructions per timed packet
    local f="$out/callgrind.$1-$2"
    valgrind --tool=callgrind --callgrind-out-file="$f" \
        --toggle-collect='ctrack_core::conntrack::table::Shard::handle_burst' \
        --toggle-collect='ctrack_core::conntrack::table::Shard::poll_expired' \
        "$bin" "$1" "$2" >"$f.log" 2>&1
    local ir pkts
    ir=$(awk '/Collected :/ {print $NF}' "$f.log")
    pkts=$(awk '/packets through handle_burst/ {print $1}' "$f.log")
    python3 -c "print(f'{$ir / $pkts:.0f}')"
}
echo "instructions per packet in Shard::handle_burst (1024 established connections, in cache)"
printf '%-6s %10s %10s %10s\n' proto full fasttrack ratio
for p in udp tcp; do
    full=$(count "$p" full)
    ft=$(count "$p" fasttrack)
    printf '%-6s %10s %10s %10s\n' "$p" "$full" "$ft" "$(python3 -c "print(f'{$ft / $full:.2f}')")"
done
echo "new connections: $(count tcp new) instructions per SYN of a fresh tuple into a full table of 1024 (each creates one, early-drops one)"
echo "new connections: $(count tcp new-expiry) instructions per SYN of a fresh tuple, 1 ms apart, 1 s SYN timeout (each creates one, one expires: poll_expired counted)"

# NAT in the worker (dataplane/examples/nat_cost.rs): one worker on
# in-memory ports, src-nat to one address against the same rule as accept.
# Counted over `poll` (the in-memory I/O's frame copies included, the same
# in both), so the ratio understates what NAT costs a DPDK worker. Built
# with one codegen unit, in a target directory of its own: with the
# release profile's four, how functions fall into units (and so what is
# inlined) moves with unrelated changes, by up to ~850 instructions per
# packet for the same source (docs/nat.md).
nat_target=${CARGO_TARGET_DIR:-target}/icount
CARGO_TARGET_DIR=$nat_target cargo build --release -q -p dataplane --no-default-features \
    --example nat_cost --config profile.release.codegen-units=1
nat_bin=$nat_target/release/examples/nat_cost
nat_count() { # exempt|nat established|new filter|nofilter -> instructions per packet
    local f="$out/callgrind.nat-$1-$2-$3"
    valgrind --tool=callgrind --callgrind-out-file="$f" --toggle-collect='nat_cost::poll' \
        "$nat_bin" "$1" "$2" "$3" >"$f.log" 2>&1
    local ir pkts
    ir=$(awk '/Collected :/ {print $NF}' "$f.log")
    pkts=$(awk '/packets through poll/ {print $1}' "$f.log")
    python3 -c "print(f'{$ir / $pkts:.0f}')"
}
echo "NAT in a worker (in-memory ports, per packet through Worker::poll_once; 'filter': with a"
echo "filter rule, 'nofilter': the NAT rule alone, as scripts/bench-forward.sh's NAT rows)"
printf '%-22s %10s %10s %10s\n' case exempt src-nat 'exempt/nat'
for fl in filter nofilter; do
    for m in established new; do
        ex=$(nat_count exempt "$m" "$fl")
        sn=$(nat_count nat "$m" "$fl")
        printf '%-22s %10s %10s %10s\n' "$m ($fl)" "$ex" "$sn" "$(python3 -c "print(f'{$ex / $sn:.2f}')")"
    done
done
echo "(callgrind profiles: $out/callgrind.*; callgrind_annotate --auto=yes FILE shows where)"
