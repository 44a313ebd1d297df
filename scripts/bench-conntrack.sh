#!/usr/bin/env bash
# The conntrack benchmark (issue 3): one core, in-memory FlowRepr values (no
# packet parsing, no I/O), each case beside DPDK's rte_hash_lookup_bulk over
# the same keys, measured in the same run. See docs/benchmarks.md.
#
#   scripts/bench-conntrack.sh [FILTER]      e.g. FILTER=established-udp/1M
#
# Runs `cargo bench -p dataplane --bench conntrack` (release profile), keeps
# the full log in out/bench/conntrack.log and prints the summary table. Takes
# about 2-3 minutes on a 2-core VM; needs ~3 GB of RAM for the 4M cases.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages

out=out/bench
mkdir -p "$out"
log="$out/conntrack.log"
echo "cargo bench -p dataplane --bench conntrack ${1:-}  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
cargo bench -p dataplane --bench conntrack -- ${1:+"$1"} >"$log" 2>&1 || {
    tail -40 "$log" >&2
    echo "bench failed; full log: $log" >&2
    exit 1
}
sed -n '/^== conntrack benchmark summary/,/^== end of summary ==/p' "$log"
echo "(criterion's per-case output: $log)"
