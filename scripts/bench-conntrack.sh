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

# The table lives on transparent huge pages; give the rte_hash baseline huge
# pages too (2 GiB, as root), so that the ratio compares like with like. The
# reservation is returned when the bench ends.
hp=/proc/sys/vm/nr_hugepages
hp_old=$(cat "$hp" 2>/dev/null || echo 0)
free_hp() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }
if [ "$(free_hp)" -lt 1024 ] && [ "$(id -u)" = 0 ] && [ -w "$hp" ]; then
    echo $((hp_old + 1024 - $(free_hp))) >"$hp" || true
    trap 'echo "$hp_old" >"$hp"' EXIT
fi
if [ "$(free_hp)" -lt 1024 ]; then
    echo "note: fewer than 1024 free 2 MiB huge pages (run as root to reserve them): rte_hash runs on 4 KiB pages" >&2
fi
log="$out/conntrack.log"
echo "cargo bench -p dataplane --bench conntrack ${1:-}  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
cargo bench -p dataplane --bench conntrack -- ${1:+"$1"} >"$log" 2>&1 || {
    tail -40 "$log" >&2
    echo "bench failed; full log: $log" >&2
    exit 1
}
sed -n '/^== conntrack benchmark summary/,/^== end of summary ==/p' "$log"
echo "(criterion's per-case output: $log)"
