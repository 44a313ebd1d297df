#!/usr/bin/env bash
# make-linux-fixtures.sh - record real Linux nf_conntrack behaviour as fixtures.
#
# Builds three network namespaces, client -- router -- server, joined by veth
# pairs.  The router forwards IPv4 and IPv6 and has conntrack active (an nft
# rule matching on ct state) with accounting on (nf_conntrack_acct=1).  For each
# scenario it captures the traffic on the router's client-facing interface and
# then dumps the router's conntrack table (`conntrack -L -o xml`), writing to
# tests/fixtures/linux/:
#
#   <name>.pcap            the capture (Ethernet, snaplen 0, wire-size packets)
#   <name>.conntrack.xml   the raw `conntrack -L -o xml` output (IPv4 + IPv6 flows)
#   <name>.expected.json   the table in ctrack's property names (see docs/fixtures.md)
#   <name>.meta.json       what the scenario did, and a packet-by-packet cross-check
#
# Usage: sudo scripts/make-linux-fixtures.sh [scenario ...]
#   scenarios: http tcp-held tcp-refused tcp-reset udp-reqresp udp-stream
#              udp-oneway udp-unreachable ping ipv6 mixed   (default: all)
#   OUT=dir    write somewhere else than tests/fixtures/linux
#
# Network rule: all traffic stays between addresses inside the namespaces this
# script creates (10.81.0.0/24, 10.81.1.0/24, fd81::/64, fd81:0:0:1::/64 on
# veths in those namespaces).  The namespaces are removed on exit, even on
# failure.  Re-runnable: existing ctfix-* namespaces are removed first and the
# fixtures are overwritten.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT:-$ROOT/tests/fixtures/linux}
CONVERT=$HERE/conntrack-xml-to-json.py

NS_C=ctfix-client
NS_R=ctfix-router
NS_S=ctfix-server

# Addresses (only ever used inside the namespaces below).
C4=10.81.0.2;  RC4=10.81.0.1
S4=10.81.1.2;  RS4=10.81.1.1
C6=fd81::2;    RC6=fd81::1
S6=fd81:0:0:1::2; RS6=fd81:0:0:1::1
MAC_C=02:81:00:00:00:02; MAC_RC=02:81:00:00:00:01
MAC_S=02:81:01:00:00:02; MAC_RS=02:81:01:00:00:01

ALL_SCENARIOS=(http tcp-held tcp-refused tcp-reset udp-reqresp udp-stream udp-oneway udp-unreachable ping ipv6 mixed)

log() { printf '[make-linux-fixtures] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, nft, conntrack).
  Needs: iproute2 nftables conntrack tcpdump ethtool curl iputils-ping python3"

need_pkgs=()
for pair in ip:iproute2 ss:iproute2 nft:nftables conntrack:conntrack tcpdump:tcpdump \
            ethtool:ethtool curl:curl ping:iputils-ping python3:python3; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need_pkgs[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null; } \
        || die "could not install ${need_pkgs[*]}"
fi
PY=$(command -v python3)

if [ $# -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=("${ALL_SCENARIOS[@]}"); fi
for s in "${SCENARIOS[@]}"; do
    case " ${ALL_SCENARIOS[*]} " in *" $s "*) ;; *) die "unknown scenario: $s";; esac
done

# --------------------------------------------------------------------- cleanup
WORK=$(mktemp -d /tmp/ctfix.XXXXXX)
BG_PIDS=()
TCPDUMP_PID=

cleanup() {
    local rc=$?
    set +e
    [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for ns in $NS_C $NS_R $NS_S; do
        ip netns pids "$ns" 2>/dev/null | while read -r p; do kill "$p" 2>/dev/null; done
    done
    sleep 0.2
    for ns in $NS_C $NS_R $NS_S; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inC() { ip netns exec $NS_C "$@"; }
inR() { ip netns exec $NS_R "$@"; }
inS() { ip netns exec $NS_S "$@"; }

wait_for() {  # wait_for <seconds> <command...>
    local t=$1; shift
    local i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt $((t * 20)) ] && return 1
        sleep 0.05
    done
}

# ----------------------------------------------------------- traffic helpers
cat >"$WORK/traffic.py" <<'PYEOF'
"""Tiny deterministic traffic generators for the ctfix namespaces."""
import os, socket, struct, sys, time

def family(addr):
    return socket.AF_INET6 if ':' in addr else socket.AF_INET

def touch(path):
    if path:
        open(path, 'w').close()

def wait_file(path, timeout=60):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            raise SystemExit('timeout waiting for ' + path)
        time.sleep(0.02)

def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            break
        buf += d
    return buf

def tcp_server(addr, port, mode, ready):
    """Accept one connection; read a 16-byte request, answer 32 bytes.
    mode close: wait for the client's FIN, then close.
    mode hold:  a second exchange, then wait for the client's FIN, then close.
    mode reset: answer, wait a moment, then abort with RST (SO_LINGER 0)."""
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port)); ls.listen(1)
    touch(ready)
    s, _ = ls.accept(); ls.close()
    recv_exact(s, 16); s.sendall(b'S' * 32)
    if mode == 'hold':
        recv_exact(s, 16); s.sendall(b'T' * 32)
    if mode == 'reset':
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
        return
    while s.recv(4096):
        pass
    s.close()

def tcp_client(addr, port, mode, held, release):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.connect((addr, port))
    s.sendall(b'C' * 16); recv_exact(s, 32)
    if mode == 'hold':
        time.sleep(0.1)
        s.sendall(b'D' * 16); recv_exact(s, 32)
        time.sleep(0.3)            # let the last ACK go out
        touch(held)
        wait_file(release)
    if mode == 'reset':
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    s.close()

def tcp_refused(addr, port):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    try:
        s.connect((addr, port))
    except ConnectionRefusedError:
        return
    raise SystemExit('connection to closed port %s:%d was not refused' % (addr, port))

def udp_server(addr, port, count, mode, ready):
    """mode echo: answer each datagram; mode sink: read, never answer."""
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    touch(ready)
    for _ in range(count):
        d, peer = s.recvfrom(2048)
        if mode == 'echo':
            s.sendto(b'R' * 48, peer)
    s.close()

def udp_client(addr, port, sport, count, mode, interval=0.1):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind(('::' if ':' in addr else '0.0.0.0', sport))
    s.settimeout(5)
    for i in range(count):
        s.sendto(b'Q' * 24, (addr, port))
        if mode == 'echo':
            s.recvfrom(2048)
        if i + 1 < count:
            time.sleep(interval)
    time.sleep(0.3)
    s.close()

def main(argv):
    cmd = argv[0]
    if cmd == 'tcp-server':
        tcp_server(argv[1], int(argv[2]), argv[3], argv[4])
    elif cmd == 'tcp-client':
        tcp_client(argv[1], int(argv[2]), argv[3],
                   argv[4] if len(argv) > 4 else None, argv[5] if len(argv) > 5 else None)
    elif cmd == 'tcp-refused':
        tcp_refused(argv[1], int(argv[2]))
    elif cmd == 'udp-server':
        udp_server(argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5])
    elif cmd == 'udp-client':
        udp_client(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5],
                   float(argv[6]) if len(argv) > 6 else 0.1)
    else:
        raise SystemExit('unknown command ' + cmd)

if __name__ == '__main__':
    main(sys.argv[1:])
PYEOF
T() { "$PY" "$WORK/traffic.py" "$@"; }

mkdir -p "$WORK/www"
# A fixed page so the capture is the same size on every run.
"$PY" - "$WORK/www/index.html" <<'PYEOF'
import sys
body = "<!doctype html>\n<title>ctfix</title>\n" + "".join(
    "<p>line %03d of the ctrack fixture page</p>\n" % i for i in range(120))
open(sys.argv[1], "w").write(body)
PYEOF

# ------------------------------------------------------------------- topology
# The router's only ruleset: accept everything, but count per ct state (this is
# what makes the kernel track connections in the namespace).  Reloaded in one
# transaction before every scenario to zero the counters.
NFT_CHAIN='table inet ctfix {
    chain forward {
        type filter hook forward priority 0; policy accept;
    }
}
flush chain inet ctfix forward
add rule inet ctfix forward ct state new counter
add rule inet ctfix forward ct state established counter
add rule inet ctfix forward ct state related counter
add rule inet ctfix forward ct state invalid counter'

setup() {
    for ns in $NS_C $NS_R $NS_S; do
        ip netns del "$ns" 2>/dev/null || true
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # No stray IPv6 traffic: no RA/RS, no DAD, no redirects.
        ip netns exec "$ns" sh -c '
            for k in all default; do
                sysctl -qw net.ipv6.conf.$k.accept_ra=0
                sysctl -qw net.ipv6.conf.$k.router_solicitations=0
                sysctl -qw net.ipv6.conf.$k.accept_dad=0
                sysctl -qw net.ipv6.conf.$k.dad_transmits=0
                sysctl -qw net.ipv4.conf.$k.send_redirects=0
                sysctl -qw net.ipv6.conf.$k.accept_redirects=0
            done
            # Answer every datagram to a closed port (no ICMP rate limiting).
            sysctl -qw net.ipv4.icmp_ratelimit=0
            sysctl -qw net.ipv6.icmp.ratelimit=0
            sysctl -qw net.ipv4.icmp_msgs_per_sec=100000 2>/dev/null || true
            sysctl -qw net.ipv4.icmp_msgs_burst=100000 2>/dev/null || true'
    done

    ip -n $NS_R link add r-c address $MAC_RC type veth peer name c-r netns $NS_C address $MAC_C
    ip -n $NS_R link add r-s address $MAC_RS type veth peer name s-r netns $NS_S address $MAC_S

    # Real wire-size packets with real checksums in the capture.
    for pair in $NS_R:r-c $NS_R:r-s $NS_C:c-r $NS_S:s-r; do
        ns=${pair%%:*}; dev=${pair#*:}
        ip netns exec "$ns" ethtool -K "$dev" gro off gso off tso off tx off rx off >/dev/null 2>&1 \
            || ip netns exec "$ns" ethtool -K "$dev" gro off gso off tso off tx off >/dev/null
    done

    ip -n $NS_C addr add $C4/24 dev c-r
    ip -n $NS_C addr add $C6/64 dev c-r nodad
    ip -n $NS_R addr add $RC4/24 dev r-c
    ip -n $NS_R addr add $RC6/64 dev r-c nodad
    ip -n $NS_R addr add $RS4/24 dev r-s
    ip -n $NS_R addr add $RS6/64 dev r-s nodad
    ip -n $NS_S addr add $S4/24 dev s-r
    ip -n $NS_S addr add $S6/64 dev s-r nodad

    for pair in $NS_R:r-c $NS_R:r-s $NS_C:c-r $NS_S:s-r; do
        ip -n "${pair%%:*}" link set "${pair#*:}" up
    done

    ip -n $NS_C route add default via $RC4
    ip -n $NS_C -6 route add default via $RC6
    ip -n $NS_S route add default via $RS4
    ip -n $NS_S -6 route add default via $RS6

    # Static neighbours: no ARP / neighbour discovery in the captures.
    ip -n $NS_C neigh replace $RC4 lladdr $MAC_RC dev c-r nud permanent
    ip -n $NS_C neigh replace $RC6 lladdr $MAC_RC dev c-r nud permanent
    ip -n $NS_R neigh replace $C4 lladdr $MAC_C dev r-c nud permanent
    ip -n $NS_R neigh replace $C6 lladdr $MAC_C dev r-c nud permanent
    ip -n $NS_R neigh replace $S4 lladdr $MAC_S dev r-s nud permanent
    ip -n $NS_R neigh replace $S6 lladdr $MAC_S dev r-s nud permanent
    ip -n $NS_S neigh replace $RS4 lladdr $MAC_RS dev s-r nud permanent
    ip -n $NS_S neigh replace $RS6 lladdr $MAC_RS dev s-r nud permanent

    # Router: forward, track, account; timeouts long enough that nothing
    # expires while a scenario runs.
    inR sh -c '
        sysctl -qw net.ipv4.ip_forward=1
        sysctl -qw net.ipv6.conf.all.forwarding=1
        sysctl -qw net.netfilter.nf_conntrack_acct=1
        sysctl -qw net.netfilter.nf_conntrack_timestamp=1 || true
        for t in tcp_timeout_syn_sent tcp_timeout_syn_recv tcp_timeout_fin_wait \
                 tcp_timeout_close_wait tcp_timeout_last_ack tcp_timeout_time_wait \
                 tcp_timeout_close tcp_timeout_max_retrans tcp_timeout_unacknowledged \
                 udp_timeout udp_timeout_stream icmp_timeout icmpv6_timeout generic_timeout; do
            sysctl -qw net.netfilter.nf_conntrack_$t=3600 2>/dev/null || true
        done'
    inR nft -f - <<<"table inet ctfix {}
$NFT_CHAIN"
    # Let any join-time MLD reports etc. pass before the first capture.
    sleep 2
    # Sanity: the path works (not captured).
    inC ping -c1 -W2 -q $S4 >/dev/null || die "client cannot reach server over IPv4"
    inC ping -6 -c1 -W2 -q $S6 >/dev/null || die "client cannot reach server over IPv6"
}

# ------------------------------------------------------------------ capture
# Only the scenario's traffic: drop ARP, and ICMPv6 neighbour discovery / MLD
# (types 130-143, and anything behind a hop-by-hop header) should any appear.
BPF='not arp and not (ip6 and ip6[6] == 0) and not (icmp6 and ip6[40] >= 130 and ip6[40] <= 143)'

start_capture() {
    local name=$1
    rm -f "$OUT/$name.pcap"
    : >"$WORK/tcpdump.err"
    ip netns exec $NS_R tcpdump -i r-c -s 0 -U --immediate-mode -n -Z root -w "$OUT/$name.pcap" "$BPF" 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    wait_for 10 grep -q 'listening on' "$WORK/tcpdump.err" || die "tcpdump did not start"
    sleep 0.3
}

stop_capture() {
    sleep 0.5
    kill -TERM "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
    TCPDUMP_PID=
}

reset_router() {
    inR conntrack -F >/dev/null 2>&1 || true
    inR conntrack -F -f ipv6 >/dev/null 2>&1 || true
    inR nft -f - <<<"$NFT_CHAIN"
}

dump_conntrack() {
    inR conntrack -L -o xml -f ipv4 >"$WORK/ct4.xml" 2>/dev/null || true
    inR conntrack -L -o xml -f ipv6 >"$WORK/ct6.xml" 2>/dev/null || true
    # The XML leaves out ICMP type/code/id; the text listing has them.
    { inR conntrack -L -o extended,id -f ipv4 2>/dev/null || true
      inR conntrack -L -o extended,id -f ipv6 2>/dev/null || true; } >"$WORK/ct.txt"
    inR nft -j list table inet ctfix >"$WORK/nft.json"
}

# bg <namespace> <command...>: start a server/client in the background (the pid
# is the command's own: ip netns exec execs it).
bg() { ip netns exec "$1" "${@:2}" >>"$WORK/bg.log" 2>&1 & BG_PIDS+=($!); }
wait_bg() {
    local p rc=0
    for p in "${BG_PIDS[@]}"; do wait "$p" || rc=1; done
    BG_PIDS=()
    return $rc
}

# ---------------------------------------------------------------- traffic
# Each traffic_* function starts its servers, runs its clients and returns when
# the traffic is over (tcp-held: when the connection is established and idle).

http_server_up() {
    bg $NS_S "$PY" -m http.server 80 --bind $S4 --directory "$WORK/www"
    HTTP_PID=${BG_PIDS[-1]}
    wait_for 10 inS sh -c "ss -ltnH 'sport = :80' | grep -q ."
}
traffic_http() {
    http_server_up
    inC curl -sS -o /dev/null --max-time 10 http://$S4/index.html
    sleep 0.3
    kill "$HTTP_PID" 2>/dev/null; wait "$HTTP_PID" 2>/dev/null || true
    BG_PIDS=()
}

traffic_tcp_held() {  # leaves the connection open until release_tcp_held
    rm -f "$WORK/held" "$WORK/release" "$WORK/ready-held"
    bg $NS_S "$PY" "$WORK/traffic.py" tcp-server $S4 5000 hold "$WORK/ready-held"
    wait_for 10 test -e "$WORK/ready-held"
    bg $NS_C "$PY" "$WORK/traffic.py" tcp-client $S4 5000 hold "$WORK/held" "$WORK/release"
    wait_for 20 test -e "$WORK/held" || die "tcp-held client did not get going"
}
release_tcp_held() { touch "$WORK/release"; }

traffic_tcp_refused() {
    inC "$PY" "$WORK/traffic.py" tcp-refused $S4 5009
}

traffic_tcp_reset() {
    rm -f "$WORK/ready-reset"
    bg $NS_S "$PY" "$WORK/traffic.py" tcp-server $S4 5001 reset "$WORK/ready-reset"
    wait_for 10 test -e "$WORK/ready-reset"
    inC "$PY" "$WORK/traffic.py" tcp-client $S4 5001 reset
    wait_bg
}

traffic_udp_reqresp() {
    rm -f "$WORK/ready-udp"
    bg $NS_S "$PY" "$WORK/traffic.py" udp-server $S4 5300 3 echo "$WORK/ready-udp"
    wait_for 10 test -e "$WORK/ready-udp"
    inC "$PY" "$WORK/traffic.py" udp-client $S4 5300 40300 3 echo
    wait_bg
}

traffic_udp_stream() {  # replies still coming 2 s after the first packet
    rm -f "$WORK/ready-stream"
    bg $NS_S "$PY" "$WORK/traffic.py" udp-server $S4 5303 4 echo "$WORK/ready-stream"
    wait_for 10 test -e "$WORK/ready-stream"
    inC "$PY" "$WORK/traffic.py" udp-client $S4 5303 40303 4 echo 1.0
    wait_bg
}

traffic_udp_oneway() {
    rm -f "$WORK/ready-sink"
    bg $NS_S "$PY" "$WORK/traffic.py" udp-server $S4 5301 3 sink "$WORK/ready-sink"
    wait_for 10 test -e "$WORK/ready-sink"
    inC "$PY" "$WORK/traffic.py" udp-client $S4 5301 40301 3 oneway
    wait_bg
}

traffic_udp_unreachable() {  # nothing listens on 5302: ICMP port unreachable
    inC "$PY" "$WORK/traffic.py" udp-client $S4 5302 40302 2 oneway
}

traffic_ping() {
    inC ping -c 3 -i 0.2 -W 2 -q $S4 >/dev/null
}

traffic_ipv6() {
    inC ping -6 -c 3 -i 0.2 -W 2 -q $S6 >/dev/null
    rm -f "$WORK/ready-v6"
    bg $NS_S "$PY" "$WORK/traffic.py" tcp-server $S6 5006 close "$WORK/ready-v6"
    wait_for 10 test -e "$WORK/ready-v6"
    inC "$PY" "$WORK/traffic.py" tcp-client $S6 5006 close
    wait_bg
}

traffic_mixed() {  # everything at once
    local pids=()
    traffic_tcp_held
    local held=("${BG_PIDS[@]}"); BG_PIDS=()
    traffic_http & pids+=($!)
    traffic_tcp_refused & pids+=($!)
    traffic_tcp_reset & pids+=($!)
    traffic_udp_reqresp & pids+=($!)
    traffic_udp_stream & pids+=($!)
    traffic_udp_oneway & pids+=($!)
    traffic_udp_unreachable & pids+=($!)
    traffic_ping & pids+=($!)
    traffic_ipv6 & pids+=($!)
    local p rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    BG_PIDS=("${held[@]}")
    [ $rc = 0 ] || die "mixed: some traffic failed"
}

describe() {
    case $1 in
        http)            echo "curl fetches a page from python3 -m http.server (HTTP/1.0); server closes first, normal FIN close";;
        tcp-held)        echo "TCP connection with two request/response exchanges, still open (established) when conntrack -L runs";;
        tcp-refused)     echo "TCP connect to a closed port; server answers RST/ACK; Linux deletes the entry at once";;
        tcp-reset)       echo "TCP exchange, then the server aborts with RST (SO_LINGER 0)";;
        udp-reqresp)     echo "three UDP requests each answered, one socket pair";;
        udp-stream)      echo "four UDP requests each answered, one second apart (replies seen more than 2 s after the first packet)";;
        udp-oneway)      echo "three UDP datagrams client->server, the server reads but never answers";;
        udp-unreachable) echo "two UDP datagrams to a closed port; each answered by ICMP port unreachable (related)";;
        ping)            echo "three ICMP echo requests/replies, one id";;
        ipv6)            echo "three ICMPv6 echo requests/replies, then a TCP exchange over IPv6 with normal close";;
        mixed)           echo "all of the above at once in one capture";;
    esac
}

run_scenario() {
    local name=$1
    log "scenario $name"
    reset_router
    start_capture "$name"
    "traffic_${name//-/_}"
    stop_capture
    dump_conntrack
    if [ "$name" = tcp-held ] || [ "$name" = mixed ]; then
        release_tcp_held
    fi
    wait_bg || { cat "$WORK/bg.log" >&2; die "$name: a server or client failed"; }
    "$PY" "$CONVERT" --name "$name" --description "$(describe "$name")" \
        --xml "$WORK/ct4.xml" --xml "$WORK/ct6.xml" --txt "$WORK/ct.txt" --nft "$WORK/nft.json" \
        --out-txt "$OUT/$name.conntrack.txt" \
        --pcap "$OUT/$name.pcap" \
        --out-xml "$OUT/$name.conntrack.xml" \
        --out-json "$OUT/$name.expected.json" \
        --out-meta "$OUT/$name.meta.json"
}

# ---------------------------------------------------------------------- main
mkdir -p "$OUT"
log "setting up namespaces $NS_C $NS_R $NS_S"
setup
for s in "${SCENARIOS[@]}"; do
    run_scenario "$s"
done
log "done: fixtures in $OUT"
