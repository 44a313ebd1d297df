#!/usr/bin/env bash
# Installs what is missing, builds ctrack in release mode, and runs it on two
# DPDK virtual ports (net_pcap) over a generated capture of TCP, UDP and ICMP
# connections: originators' packets enter port 0, responders' port 1. Shows
# the totals ctrack prints. Files go to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages

cargo build --release -p control --bins
ctrack=target/release/ctrack
out=out/demo
mkdir -p "$out"
rm -f "$out"/*.pcap

"$ctrack" generate "$out/in0.pcap" --reply-out "$out/in1.pcap" --tcp 200 --udp 100 --icmp 20

echo
echo "== ctrack run: 2 net_pcap ports, 1 worker, stops when the captures are done"
"$ctrack" run --idle-exit 500ms --summary-json "$out/summary.json" -- \
    --no-huge -m 1024 --no-pci --no-shconf -l 0-1 --log-level=error \
    --vdev "net_pcap0,rx_pcap=$out/in0.pcap,tx_pcap=$out/out0.pcap" \
    --vdev "net_pcap1,rx_pcap=$out/in1.pcap,tx_pcap=$out/out1.pcap"

echo
if cmp -s <(tcpdump -r "$out/in0.pcap" -x 2>/dev/null | grep -v '^[0-9]') \
          <(tcpdump -r "$out/out1.pcap" -x 2>/dev/null | grep -v '^[0-9]') 2>/dev/null; then
    echo "port 0 -> port 1: every packet forwarded byte for byte ($out/out1.pcap)"
fi
echo "summary: $out/summary.json"
