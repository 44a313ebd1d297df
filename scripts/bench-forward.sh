#!/usr/bin/env bash
# Forwarding throughput of ctrack beside dpdk-testpmd, in one run, over the
# same virtual ports and the same cores.
#
# Source: net_pcap replaying a capture of many established connections from
# memory, endlessly (infinite_rx=1); sink: net_null (no RX). One forwarding
# core (lcore 1), the main lcore 0 idle, for every program.
#
#   scripts/bench-forward.sh [SECONDS]        (default 5 s per program)
#
# Figures are packets/s of the forwarding core; ratios are what carries over
# between machines, absolute rates do not (shared 2-core VMs are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages

secs=${1:-5}
cargo build --release -q -p control --bins
ctrack=target/release/ctrack
out=out/bench
mkdir -p "$out"
cap="$out/flows.pcap"
# 3000 connections (2000 TCP, 1000 UDP) mid-stream: 16,000 packets of 54..254 bytes.
"$ctrack" generate "$cap" --tcp 2000 --udp 1000 --icmp 0 --exchanges 2 --payload 200 --keep-open >/dev/null
eal=(--no-huge -m 2048 --no-pci --no-shconf -l 0-1 --log-level=error
     --vdev "net_pcap0,rx_pcap=$cap,infinite_rx=1" --vdev "net_null0,no-rx=1")

testpmd_pps() { # mode
    local log="$out/testpmd-$1.log"
    timeout -s INT "$((secs + 1))" stdbuf -oL dpdk-testpmd "${eal[@]}" -- --no-flush-rx \
        --forward-mode="$1" --nb-cores=1 --total-num-mbufs=65536 --stats-period 1 \
        </dev/null >"$log" 2>&1 || true
    # Port 0's RX rate over the last stats interval (steady state).
    { grep -a "Rx-pps" "$log" || true; } | awk 'NR % 2 == 1 && $2 > 0 { v = $2 } END { print v + 0 }'
}

ctrack_pps() {
    local sum="$out/ctrack-summary.json"
    "$ctrack" run --workers 1 --mbufs 65536 --duration "${secs}s" --summary-json "$sum" \
        -- "${eal[@]}" >"$out/ctrack.log" 2>&1
    python3 - "$sum" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rx = sum(w["rx_packets"] for w in s["workers"])
print(int(rx / s["elapsed_secs"]))
PY
}

echo "forwarding, 1 core, net_pcap (3000 flows, infinite_rx) -> net_null, ${secs}s each"
io=$(testpmd_pps io)
macswap=$(testpmd_pps macswap)
five=$(testpmd_pps 5tswap)
ct=$(ctrack_pps)
python3 - "$io" "$macswap" "$five" "$ct" <<'PY'
import sys
io, mac, five, ct = (float(x) for x in sys.argv[1:])
rows = [("testpmd io", io), ("testpmd macswap", mac), ("testpmd 5tswap", five), ("ctrack run", ct)]
ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"
print(f"{'program':<18} {'Mpps':>8} {'vs io':>7} {'vs macswap':>11}")
for name, v in rows:
    print(f"{name:<18} {v / 1e6:>8.2f} {ratio(v, io):>7} {ratio(v, mac):>11}")
PY
