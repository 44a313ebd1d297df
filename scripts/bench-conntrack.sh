#!/usr/bin/env bash
# The conntrack benchmark (issue 3): one core, in-memory FlowRepr values (no
# packet parsing, no I/O), each case beside DPDK's rte_hash_lookup_bulk over
# the same keys, measured in the same run. See docs/benchmarks.md.
#
#   scripts/bench-conntrack.sh [FILTER]      e.g. FILTER=established-udp/1M
#
# Three parts (PARTS, default "table shards ovs"):
#
# - table: `cargo bench -p dataplane --bench conntrack` (release profile),
#   full log in out/bench/conntrack.log, the summary table printed. About
#   2-3 minutes on a 2-core VM; ~3 GB of RAM for the 4M cases. CT_SIZES
#   (e.g. 1K,64K,1M,4M,16M) sets the established cases' sizes.
# - shards: one thread per shard, pinned (dataplane/examples/shards.rs): T
#   threads against one, in alternation, established UDP at 1K and 1M
#   connections per shard and OVS's one-flow-per-thread shape; the T/1
#   ratio (issue 15's target: >= 1.9x with two). Log: out/bench/shards.log.
# - ovs: with OVS_TEST=/path/to/ovstest (Open vSwitch's test binary, built
#   as docs/benchmarks.md says), OVS's `test-conntrack benchmark-zones` (1M
#   connections: inserts, and lookups without commit) beside ctrack's
#   dataplane/examples/ovs_zones.rs, and OVS's `benchmark 1|2 ...` beside
#   the shards example's `ovs` mode; ctrack's ratio to OVS. OVS_SIZES (default
#   1000000) are the connection counts. Without OVS_TEST these rows are
#   skipped, with a line saying how to get it. Log: out/bench/ovs.log.
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
# More with CT_SIZES beyond 4M: the bench then asks EAL for 1 GiB + 400 B
# per connection of the largest size.
want_hp=1024
if [ -n "${CT_SIZES:-}" ]; then
    max=$(echo "$CT_SIZES" | tr ',' '\n' | sed 's/K$/000/; s/M$/000000/' | sort -n | tail -1)
    [ "$max" -le 4000000 ] || want_hp=$(( (1024 + max * 400 / 1048576) / 2 + 1 ))
fi
if [ "$(free_hp)" -lt "$want_hp" ] && [ "$(id -u)" = 0 ] && [ -w "$hp" ]; then
    # A machine up for a while has its free memory in pieces: compact it
    # first, or the kernel finds fewer 2 MiB pages than asked for (16M
    # connections ask for ~7 GiB).
    echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
    echo $((hp_old + want_hp - $(free_hp))) >"$hp" || true
    trap 'echo "$hp_old" >"$hp"' EXIT
fi
if [ "$(free_hp)" -lt "$want_hp" ]; then
    echo "note: fewer than $want_hp free 2 MiB huge pages (run as root to reserve them): rte_hash runs on 4 KiB pages" >&2
fi
parts=${PARTS:-table shards ovs}
has() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
log="$out/conntrack.log"
if has table; then
echo "cargo bench -p dataplane --bench conntrack ${1:-}  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
cargo bench -p dataplane --bench conntrack -- ${1:+"$1"} >"$log" 2>&1 || {
    tail -40 "$log" >&2
    echo "bench failed; full log: $log" >&2
    exit 1
}
sed -n '/^== conntrack benchmark summary/,/^== end of summary ==/p' "$log"
echo "(criterion's per-case output: $log)"
fi

if has shards || has ovs; then
    cargo build --release -q -p dataplane --no-default-features --example shards --example ovs_zones
fi
ex=${CARGO_TARGET_DIR:-target}/release/examples
if has shards; then
    echo
    echo "== shards on cores: one thread per shard, pinned; T threads against 1 in alternation (weak scaling) =="
    {
        echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
        "$ex/shards" est 1000
        "$ex/shards" est 1000000
        "$ex/shards" ovs
    } | tee "$out/shards.log" | grep -v '^#'
    echo "target: two shards on two cores >= 1.9x one (the ratio column)"
fi

if has ovs; then
    echo
    echo "== side by side with Open vSwitch's userspace conntrack (ovstest test-conntrack) =="
    if [ -z "${OVS_TEST:-}" ] || [ ! -x "${OVS_TEST:-}" ]; then
        echo "skipped: set OVS_TEST=/path/to/ovstest (Open vSwitch's test binary, not packaged:"
        echo "  build it outside the repository as docs/benchmarks.md, \"Open vSwitch\", says)"
    else
        ovs_log="$out/ovs.log"
        : >"$ovs_log"
        echo "# $(date -u +%Y-%m-%dT%H:%MZ), $OVS_TEST, load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ovs_log"
        # OVS's conntrack refuses connections beyond 3M (its
        # DEFAULT_N_CONN_LIMIT), and benchmark-zones fills two zones: above
        # 1.5M its inserts fail fast. An ovstest with docs/benchmarks.md's
        # patch raises the limit to OVS_CT_MAXCONNS (others ignore it).
        export OVS_CT_MAXCONNS=$((2 * $(printf '%s\n' ${OVS_SIZES:-1000000} | sort -n | tail -1) + 1000))
        printf '%-44s %12s %12s %8s\n' "row" "ctrack" "OVS" "ratio"
        for n in ${OVS_SIZES:-1000000}; do
            # Two rounds in alternation, each side's minimum kept (OVS's
            # table gives Min per phase; so does ovs_zones).
            best() { sort -g | head -1; }
            ovs_c=() ovs_l=() ct_c=() ct_l=()
            for round in 1 2; do
                o=$("$OVS_TEST" test-conntrack benchmark-zones "$n" 2 2 2>>"$ovs_log")
                echo "ovs benchmark-zones $n 2 2 (round $round):" >>"$ovs_log"
                echo "$o" >>"$ovs_log"
                # | Min | commit us | no-commit us | ...
                ovs_c+=("$(echo "$o" | awk -F'|' -v n="$n" '/\| Min/ {gsub(/[ us]/,"",$3); print $3*1000/n}')")
                ovs_l+=("$(echo "$o" | awk -F'|' -v n="$n" '/\| Min/ {gsub(/[ us]/,"",$4); print $4*1000/n}')")
                c=$("$ex/ovs_zones" "$n" 2 32)
                echo "$c" >>"$ovs_log"
                ct_c+=("$(echo "$c" | sed -n 's/.*insert_ns=\([0-9.]*\).*/\1/p')")
                ct_l+=("$(echo "$c" | sed -n 's/.*lookup_ns=\([0-9.]*\).*/\1/p')")
            done
            oc=$(printf '%s\n' "${ovs_c[@]}" | best) ol=$(printf '%s\n' "${ovs_l[@]}" | best)
            cc=$(printf '%s\n' "${ct_c[@]}" | best) cl=$(printf '%s\n' "${ct_l[@]}" | best)
            echo "ovs-zones-summary: conns=$n ctrack_insert_ns=$cc ovs_insert_ns=$oc ctrack_lookup_ns=$cl ovs_lookup_ns=$ol" >>"$ovs_log"
            printf '%-44s %9.1f ns %9.1f ns %8.2f\n' "zones $n: insert (commit), ns/conn" "$cc" "$oc" "$(python3 -c "print($cc/$oc)")"
            printf '%-44s %9.1f ns %9.1f ns %8.2f\n' "zones $n: lookup (no commit), ns/conn" "$cl" "$ol" "$(python3 -c "print($cl/$ol)")"
        done
        # OVS's `benchmark N_THREADS N_PKTS BATCH`: one UDP flow per thread,
        # N_PKTS per thread, into one shared table; Mpps of all threads.
        pkts=4000000
        declare -A ovs_mpps
        for t in 1 2 1 2; do
            o=$("$OVS_TEST" test-conntrack benchmark "$t" "$pkts" 32 2>>"$ovs_log")
            echo "ovs benchmark $t $pkts 32: $o" >>"$ovs_log"
            ms=$(echo "$o" | awk '/conntrack:/ {print $2}')
            m=$(python3 -c "print(f'{$t*$pkts/($ms*1e3):.2f}')")
            ovs_mpps[$t]="${ovs_mpps[$t]:-} $m"
        done
        o1=$(printf '%s\n' ${ovs_mpps[1]} | sort -g | tail -1)
        o2=$(printf '%s\n' ${ovs_mpps[2]} | sort -g | tail -1)
        s=$("$ex/shards" ovs 1 2 | grep '^shards:')
        echo "$s" >>"$ovs_log"
        c1=$(echo "$s" | awk '/threads=1 / {sub("mpps=","",$5); print $5}')
        c2=$(echo "$s" | awk '/threads=2 / {sub("mpps=","",$5); print $5}')
        echo "ovs-threads-summary: ctrack_1=$c1 ctrack_2=$c2 ovs_1=$o1 ovs_2=$o2" >>"$ovs_log"
        printf '%-44s %9s Mpps %6s Mpps %8.2f\n' "benchmark 1 thread (1 UDP flow)" "$c1" "$o1" "$(python3 -c "print($c1/$o1)")"
        printf '%-44s %9s Mpps %6s Mpps %8.2f\n' "benchmark 2 threads (1 flow each)" "$c2" "$o2" "$(python3 -c "print($c2/$o2)")"
        printf '%-44s %12.2f %12.2f\n' "2 threads / 1 thread" "$(python3 -c "print($c2/$c1)")" "$(python3 -c "print($o2/$o1)")"
        echo "(ratio: ctrack's ns over OVS's, lower is better; Mpps: ctrack's over OVS's, higher is better. Log: $ovs_log)"
    fi
fi
