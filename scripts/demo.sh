#!/usr/bin/env bash
# Installs what is missing, builds ctrack in release mode, and runs it on two
# DPDK virtual ports (net_pcap) over a generated capture of TCP, UDP and ICMP
# connections, with 2 workers and the RouterOS default firewall
# (dist/defconf.rsc: ether1 is WAN, ether2 LAN; the capture enters on the
# LAN side). While it runs, shows the connection table (through the
# management API and the `ctrack connection` CLI), the tracking settings and
# a Prometheus metrics excerpt; then stops it and shows the totals, with the
# rule counters. Last, `ctrack replay --in` runs the same rules over clients
# on the LAN side, then on the WAN side. Files go to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages curl

cargo build --release -p control --bins
ctrack=target/release/ctrack
out=out/demo
mkdir -p "$out"
rm -rf "$out"/*.pcap "$out"/replay-*

# Both directions in one capture on port 1 (ether2, LAN: keeps their order);
# port 0 (ether1, WAN) empty.
"$ctrack" generate "$out/traffic.pcap" --tcp 200 --udp 100 --icmp 20 --keep-open
"$ctrack" generate "$out/empty.pcap" --tcp 0 --udp 0 --icmp 0 >/dev/null
# `ctrack run` below stays in bridge mode (ports in pairs): addresses would
# make it a router (docs/nat.md), and this capture is not addressed to one.
# So it runs the default firewall without defconf's `/ip address` and its
# masquerade (which needs the WAN's address); `replay` below runs all of it.
awk '/^\// { skip = ($0 == "/ip address" || $0 == "/ip firewall nat") } !skip' \
    dist/defconf.rsc >"$out/defconf-bridge.rsc"

api=127.0.0.1:18728
metrics=127.0.0.1:19464
"$ctrack" run --workers 2 --duration 60s --api "$api" --metrics "$metrics" \
    --rules "$out/defconf-bridge.rsc" --summary-json "$out/summary.json" -- \
    --no-huge -m 1024 --no-pci --no-shconf -l 0-1 --log-level=error \
    --vdev "net_pcap0,rx_pcap=$out/empty.pcap,tx_pcap=$out/out0.pcap" \
    --vdev "net_pcap1,rx_pcap=$out/traffic.pcap,tx_pcap=$out/out1.pcap" >"$out/run.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT

# Wait (bounded) until the API answers and the table stops growing.
last=-1
for _ in $(seq 100); do
    n=$("$ctrack" connection --api "http://$api" print --count 2>/dev/null || echo -1)
    if [ "$n" = "$last" ] && [ "$n" -gt 0 ]; then break; fi
    last=$n
    sleep 0.2
done

echo
echo "== ctrack connection print (first 12 of $n)"
"$ctrack" connection --api "http://$api" print | head -n 14
echo
echo "== ctrack connection print where protocol=udp --count"
"$ctrack" connection --api "http://$api" print where protocol=udp --count
echo
echo "== ctrack connection tracking print"
"$ctrack" connection --api "http://$api" tracking print
echo
echo "== curl http://$metrics/metrics (excerpt)"
curl -s "http://$metrics/metrics" |
    grep -E '^ctrack_(conntrack_entries|conntrack_stat_insert_total|connections\{|packets_total|handoffs_total|worker_rx_packets_total)' | head -n 20
curl -s "http://$metrics/metrics" | grep -E '^ctrack_firewall_rule_packets_total' | grep -v ' 0$' || true

echo
echo "== stopping ctrack (SIGTERM): its totals"
kill -TERM $pid
wait $pid || true
trap - EXIT
cat "$out/run.log"
echo
echo "The same capture through the sans-io core (ctrack replay): $("$ctrack" replay "$out/traffic.pcap" | tail -n 1)"
echo
# Clients and servers in separate captures, merged by time as arriving on
# their interfaces.
"$ctrack" generate "$out/clients.pcap" --reply-out "$out/servers.pcap" --tcp 50 --udp 20 --icmp 5 --keep-open
show_replay() { grep -E '^(ether|firewall|packets|invalid)|: [1-9][0-9]* packets'; }
echo "== ctrack replay --in ether2=clients.pcap --in ether1=servers.pcap --rules dist/defconf.rsc (clients on the LAN)"
"$ctrack" replay --in ether2="$out/clients.pcap" --in ether1="$out/servers.pcap" \
    --rules dist/defconf.rsc --out-dir "$out/replay-lan" | show_replay
echo
echo "== the same with the clients on the WAN side: their new connections are dropped"
echo "   (the servers' later packets open connections from the LAN by loose TCP pickup, as in Linux)"
"$ctrack" replay --in ether1="$out/clients.pcap" --in ether2="$out/servers.pcap" \
    --rules dist/defconf.rsc --out-dir "$out/replay-wan" | show_replay
echo
echo "summary: $out/summary.json"
