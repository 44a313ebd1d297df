#!/usr/bin/env bash
# Writes the firewall rulesets of the benchmarks (issue 10, "Speed") into
# DIR: scripts/bench-forward.sh's firewall rows and
# dataplane/examples/fw_cost.rs (scripts/bench-fw-icount.sh) load them.
#
#   scripts/bench-fw-rulesets.sh DIR
#
#   DIR/defconf-fasttrack.rsc  the RouterOS default configuration's firewall
#                              (dist/defconf.rsc) in bridge mode, plus a
#                              blocklist drop and a layer7 rule (below)
#   DIR/defconf-full.rsc       the same with the fasttrack rule disabled
#   DIR/rules-10.rsc, DIR/rules-10000.rsc
#                              10 and 10 000 address/port rules
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/bench-fw-rulesets.sh DIR}
mkdir -p "$out"

# The RouterOS default configuration's firewall (dist/defconf.rsc) in bridge
# mode: no `/ip address` (addresses make ctrack a router) and no NAT, as
# scripts/demo.sh loads it. The capture arrives on
# ether1, so ether1 is the LAN list's member here and ether2 the WAN's
# (defconf drops new connections from the WAN). At the top of the forward
# chain, as users add them: a drop on a 300-entry address list (200 hosts,
# 100 /24 networks; no packet of the capture is in it) and a layer7 rule on
# one port (TCP 6881: no packet of the capture goes there). Full path: the
# defconf fasttrack rule disabled; FastTrack: as defconf has it.
{
    echo "# Written by scripts/bench-fw-rulesets.sh from dist/defconf.rsc: ether1 is LAN here, ether2 WAN."
    awk '/^\// { skip = ($0 == "/ip address" || $0 == "/ip firewall nat") } !skip' dist/defconf.rsc |
        sed -e 's/interface=ether2 list=LAN/interface=ether1 list=LAN/' \
            -e 's/interface=ether1 list=WAN/interface=ether2 list=WAN/' |
        awk '{ print } $0 == "/ip firewall filter" {
            print "add action=drop chain=forward comment=\"bench: blocklist\" src-address-list=blocklist"
            print "add action=drop chain=forward comment=\"bench: layer7 on one port\" dst-port=6881 layer7-protocol=bittorrent protocol=tcp"
        }'
    echo '/ip firewall layer7-protocol'
    echo 'add name=bittorrent regexp="^(\\x13bittorrent protocol|azver\\x01\$|get /scrape\\?info_hash=)"'
    echo '/ip firewall address-list'
    for i in $(seq 0 199); do echo "add address=198.18.$((i / 256)).$((i % 256 + 1)) list=blocklist"; done
    for i in $(seq 0 99); do echo "add address=100.64.$i.0/24 list=blocklist"; done
} >"$out/defconf-fasttrack.rsc"
sed 's/^add action=fasttrack-connection /add disabled=yes action=fasttrack-connection /' \
    "$out/defconf-fasttrack.rsc" >"$out/defconf-full.rsc"
grep -q '^add disabled=yes action=fasttrack-connection' "$out/defconf-full.rsc"
# 10 and 10 000 address/port rules (the shape of scripts/bench-rules.sh):
# rule i is `protocol=tcp|udp src-address=10.a.b.0/24 dst-port=1000+i%100`
# (a.b = i), action drop. The capture's clients are 10.1.x.y, its servers
# 10.2.0.z: with 10 000 rules every packet falls in some rule's prefix, but
# no packet goes to ports 1000-1099 (requests to 53, replies to 30000+), so
# none matches and every packet is forwarded.
for n in 10 10000; do
    python3 -c "
import sys
n = int(sys.argv[1])
print('/ip firewall filter')
for i in range(n):
    print(f'add action=drop chain=forward protocol={(\"tcp\", \"udp\")[i % 2]} '
          f'src-address=10.{i // 256}.{i % 256}.0/24 dst-port={1000 + i % 100}')
" "$n" >"$out/rules-$n.rsc"
done
