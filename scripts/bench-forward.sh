#!/usr/bin/env bash
# Forwarding throughput of ctrack beside dpdk-testpmd, in one run, over the
# same virtual ports and the same cores (issue 4's benchmark; see
# docs/benchmarks-forward.md).
#
# Source: net_pcap replaying a capture of CONNS UDP streams (request +
# response each, 60-byte frames) from memory, endlessly (infinite_rx=1);
# sink: net_null (no RX). One forwarding core (lcore 1), the main lcore 0 for
# the control thread, for every program. Rows:
#
#   testpmd io / macswap / 5tswap     DPDK's own forwarding (macswap and 5tswap
#                                     touch headers: the reference)
#   ctrack tracking off               --set enabled=no: parse + forward
#   ctrack tracking full path         CONNS live connections, FastTrack off
#   ctrack tracking + API listing     same process as the row above, while a
#                                     loop (pinned to CPU 0) GETs the whole
#                                     connection list over the API
#   ctrack tracking FastTrack         --fasttrack established, same connections
#   ctrack TCP full path / FastTrack  the same two over CONNS TCP connections
#                                     picked up mid-stream (tcp-CONNS.pcap)
#   ctrack NAT src-nat / exempt       CONNS UDP connections of requests only
#                                     (req-CONNS.pcap), the srcnat chain's
#                                     rule src-nat (every packet rewritten)
#                                     or accept (the same ruleset, nothing
#                                     translated); also the rate of new
#                                     connections in the first pass
#   ctrack defconf full path / FastTrack  the RouterOS default configuration's
#                                     firewall in bridge mode plus a
#                                     300-entry blocklist drop and a layer7
#                                     rule on one port
#                                     (scripts/bench-fw-rulesets.sh), its
#                                     fasttrack rule disabled / enabled
#   ctrack 10 rules / 10000 rules     10 and 10 000 address/port rules none
#                                     of the packets matches (`enabled=yes`);
#                                     also new connections/s in the first
#                                     pass (total-entries' growth)
#
# Every row is measured after a warm-up (first traffic + WARM seconds, and at
# least two passes of the capture, so that every connection exists, is
# assured and, with FastTrack, fast-tracked) as the delta of received packets
# between two samples SECONDS apart: testpmd's periodic port statistics,
# ctrack's /metrics (ctrack_worker_rx_packets_total).
#
#   scripts/bench-forward.sh [SECONDS]        (default 5 s per row)
#
# Environment: CONNS (default 1000000; halved until the memory fits),
# WARM (default 3 s), LIST_CMD (curl | count: what the listing loop runs),
# ROUNDS (default 2: every row that many times, in turn; medians printed),
# ONLY (a row-name prefix, e.g. `nat`: only those ctrack rows, no testpmd;
# `fw`: the four firewall rows, `fw-defconf`, `fw-rules`: two of them).
# Figures, not assertions: the targets are printed PASS/MISS and the script
# exits 0 either way. Ratios carry over between machines, absolute rates do not
# (shared 2-core VMs are noisy: run it on an idle machine).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages python3 curl

secs=${1:-5}
conns=${CONNS:-1000000}
warm=${WARM:-3}
list_cmd=${LIST_CMD:-curl}
cargo build --release -q -p control --bins
ctrack=target/release/ctrack
out=out/bench
mkdir -p "$out"

# Memory. net_pcap's infinite_rx holds every packet of the capture in an mbuf
# of the program's pool for the whole run (2 packets per connection). Without
# hugepages, mempool objects may not cross a 4 KiB page, so each ~2.3 KB mbuf
# takes a whole page: pool bytes = mbufs * 4 KiB. EAL gets that plus 1 GiB;
# the process also needs the connection table and, while listing, the API's
# copy of the list (~1.5 GB at 1M): keep 3 GiB more free.
avail_mb=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
while :; do
    mbufs=$((2 * conns + 32768))
    eal_mb=$((mbufs * 4 / 1024 + 1024))
    [ $((eal_mb + 3072)) -le "$avail_mb" ] || [ "$conns" -le 4096 ] && break
    echo "bench-forward: ${conns} connections need ~$((eal_mb + 3072)) MB, ${avail_mb} MB available: halving" >&2
    conns=$((conns / 2))
done
max_entries=1
while [ "$max_entries" -lt "$conns" ]; do max_entries=$((max_entries * 2)); done

cap="$out/udp-${conns}.pcap"
if [ ! -s "$cap" ]; then
    # Flows interleaved one packet each in turn: all requests, then all
    # responses; every response finds its connection (created by its request
    # earlier in the same pass) and makes it an assured UDP stream.
    "$ctrack" generate "$cap.tmp" --tcp 0 --udp "$conns" --icmp 0 --exchanges 1 --payload 18 >/dev/null
    mv "$cap.tmp" "$cap"
fi
# TCP: CONNS connections seen mid-stream (one data segment each way, no
# handshake: a 1M-connection capture with handshakes would not fit in
# infinite_rx's mbufs). The first pass picks each one up (loose tracking,
# the default) and its reply makes it established and assured; replayed
# segments are retransmissions, in window.
tcap="$out/tcp-${conns}.pcap"
if [ ! -s "$tcap" ]; then
    "$ctrack" generate "$tcap.tmp" --tcp "$conns" --udp 0 --icmp 0 --exchanges 1 --payload 6 --midstream >/dev/null
    mv "$tcap.tmp" "$tcap"
fi

# NAT: the requests alone (a response would open a connection of its own:
# it is not addressed to the translated address), so that every packet of
# the steady state belongs to a translated connection.
rcap="$out/req-${conns}.pcap"
if [ ! -s "$rcap" ]; then
    "$ctrack" generate "$rcap.tmp" --reply-out "$out/req-${conns}.replies.tmp" --tcp 0 --udp "$conns" \
        --icmp 0 --exchanges 1 --payload 18 >/dev/null
    rm -f "$out/req-${conns}.replies.tmp"
    mv "$rcap.tmp" "$rcap"
fi
# Bridge mode (no `/ip address`: addresses would make it a router): the
# srcnat rule `src-nat` to one address rewrites every packet as
# `masquerade` would, `accept` exempts them.
printf '/ip firewall nat\nadd chain=srcnat action=src-nat to-addresses=198.51.100.1 out-interface=ether2\n' \
    >"$out/nat-srcnat.rsc"
printf '/ip firewall nat\nadd chain=srcnat action=accept out-interface=ether2\n' >"$out/nat-accept.rsc"

# Firewall rows (issue 10): the defconf-like ruleset (full path and
# FastTrack) and 10 / 10 000 address/port rules; see the script.
scripts/bench-fw-rulesets.sh "$out"

# The whole report also goes to out/bench/forward[-ONLY].log (the defconf
# rows of forward-fw.log / forward-fw-defconf.log are drawn by
# scripts/plot-benchmarks.sh).
exec > >(tee "$out/forward${ONLY:+-$ONLY}.log")
echo "forwarding, 1 core (lcore 1), net_pcap (${conns} UDP connections, $((2 * conns)) packets of 60 B, infinite_rx) -> net_null"
echo "${secs}s per row after ${warm}s warm-up; $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ctrack $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo '+dirty'); EAL -m ${eal_mb}, ${mbufs} mbufs, max-entries ${max_entries}"

exec python3 - "$ctrack" "$cap" "$tcap" "$conns" "$mbufs" "$eal_mb" "$max_entries" "$secs" "$warm" "$out" "$list_cmd" "$rcap" <<'PY'
import json, os, re, signal, socket, subprocess, sys, threading, time, urllib.request

ctrack, cap, tcap, conns, mbufs, eal_mb, max_entries, secs, warm, out, list_cmd, rcap = sys.argv[1:]
ONLY = os.environ.get("ONLY", "")
conns, mbufs, max_entries = int(conns), int(mbufs), int(max_entries)
secs, warm = float(secs), float(warm)
npkts = 2 * conns
ROUNDS = int(os.environ.get("ROUNDS", "2"))  # every row this many times, in turn
LIST_PAIRS = 2  # without/with listing windows per full-path process
STARTUP_MAX = 300  # seconds to first traffic (EAL memory + loading the capture)

def eal_for(capture):
    return ["--no-huge", "-m", eal_mb, "--iova-mode=va", "--no-pci", "--no-shconf", "-l", "0-1",
            "--log-level=error", "--vdev", f"net_pcap0,rx_pcap={capture},infinite_rx=1",
            "--vdev", "net_null0,no-rx=1"]


eal = eal_for(cap)


def stop(p, timeout=60):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure(sample, start_ok, t_first):
    """Waits out the warm-up, then returns (pps, first, last) over `secs`."""
    while time.monotonic() < t_first + warm or not start_ok():
        time.sleep(0.25)
    a = sample()
    while time.monotonic() < a[0] + secs:
        time.sleep(0.05)
    b = sample()
    return (b[1] - a[1]) / (b[0] - a[0]), a, b


# testpmd: its periodic statistics (every second) carry port 0's cumulative
# RX-packets; each block is timestamped when it arrives.
def testpmd(mode):
    log = open(f"{out}/testpmd-{mode}.log", "w")
    p = subprocess.Popen(
        ["stdbuf", "-oL", "dpdk-testpmd", *eal, "--", "--no-flush-rx", f"--forward-mode={mode}",
         "--nb-cores=1", f"--total-num-mbufs={mbufs}", "--stats-period", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace")
    samples, port = [], None
    cond = threading.Condition()

    def reader():
        nonlocal port
        for line in p.stdout:
            log.write(line)
            m = re.search(r"NIC statistics for port (\d+)", line)
            if m:
                port = int(m.group(1))
            m = re.search(r"RX-packets:\s*(\d+)", line)
            if m and port == 0:
                with cond:
                    samples.append((time.monotonic(), int(m.group(1))))
                    cond.notify_all()
                port = None
        with cond:
            cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_MAX
        with cond:
            while not (samples and samples[-1][1] > 0):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"testpmd {mode} forwarded nothing (see {log.name})")
                cond.wait(1)
            t_first = samples[-1][0]

        def sample():  # the next statistics block
            with cond:
                n = len(samples)
                while len(samples) == n:
                    if p.poll() is not None:
                        raise RuntimeError(f"testpmd {mode} stopped (see {log.name})")
                    cond.wait(1)
                return samples[-1]

        pps, _, _ = measure(sample, lambda: True, t_first)
        return {"pps": pps}
    finally:
        stop(p)
        log.close()


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if n else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(url):
    t0 = time.monotonic()
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    t = (t0 + time.monotonic()) / 2
    v = {}
    for line in body.splitlines():
        m = re.match(r"(ctrack_worker_rx_packets_total|ctrack_fasttrack_packets_total|"
                     r"ctrack_conntrack_entries|ctrack_worker_tx_dropped_total|"
                     r"ctrack_nat_translations_total)(\{[^}]*\})? (\S+)", line)
        if m:
            v[m.group(1)] = v.get(m.group(1), 0) + float(m.group(3))
    return (t, v.get("ctrack_worker_rx_packets_total", 0), v)


def listing_loop(api):
    url = f"http://{api}/rest/ip/firewall/connection"
    if list_cmd == "count":
        one = f"{ctrack} connection print --count --api http://{api} >/dev/null"
    else:
        one = f"curl -s -o /dev/null -w '%{{size_download}} %{{time_total}}\\n' {url}"
    # CPU 0: the main lcore's CPU (control thread, API), not the worker's.
    return subprocess.Popen(
        ["taskset", "-c", "0", "bash", "-c", f"while :; do {one}; done"],
        stdout=open(f"{out}/listing.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)


def ctrack_run(name, args, listing=False, capture=cap):
    api, met = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = open(f"{out}/ctrack-{name}.log", "w")
    p = subprocess.Popen(
        [ctrack, "run", "--workers", "1", "--mbufs", str(mbufs), "--max-entries", str(max_entries),
         "--api", api, "--metrics", met, "--duration", f"{int(STARTUP_MAX + 4 * (warm + secs) + 300)}s",
         *args, "--", *eal_for(capture)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{met}/metrics"
    res = {}
    try:
        deadline = time.monotonic() + STARTUP_MAX
        while True:
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ctrack {name} forwarded nothing (see {log.name})")
            try:
                s = metrics(url)
                if s[1] > 0:
                    break
            except OSError:
                pass
            time.sleep(0.05 if capture == rcap or name.startswith("fw-rules") else 0.2)
        t_first = s[0]
        if capture == rcap or name.startswith("fw-rules"):
            # New connections per second: the table's growth between the
            # samples inside the first pass (every packet opens one; in
            # the UDP capture the first half pass is every request).
            # Sampled from `connection tracking print` (`total-entries`,
            # under a millisecond), not /metrics: with 10 000 rules a scrape
            # carries 20 000 rule counters and takes ~250 ms, too coarse
            # for a first pass that lasts a fraction of a second.
            trk = f"http://{api}/rest/ip/firewall/connection/tracking"

            def entries():
                t0 = time.monotonic()
                body = json.loads(urllib.request.urlopen(trk, timeout=10).read())
                return ((t0 + time.monotonic()) / 2, float(body.get("total-entries", 0)))

            grow = [entries()]
            while grow[-1][1] < 0.9 * conns and time.monotonic() < t_first + 60:
                time.sleep(0.01)
                grow.append(entries())
            inside = [g for g in grow if 0 < g[1] < 0.9 * conns]
            if len(inside) >= 2:
                res["new"] = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
        last = [s]

        def sample():
            last[0] = metrics(url)
            return last[0]

        def passes_done():  # at least two passes of the capture since start
            return sample()[1] >= 2 * npkts

        pps, a, b = measure(sample, passes_done, t_first)
        d = lambda k: b[2].get(k, 0) - a[2].get(k, 0)
        res["full"] = {"pps": pps, "entries": b[2].get("ctrack_conntrack_entries", 0),
                       "ft_share": d("ctrack_fasttrack_packets_total") / max(1, b[1] - a[1]),
                       "tx_dropped": d("ctrack_worker_tx_dropped_total")}
        if listing:
            # Alternate windows with and without the listing loop in the same
            # process, so that the cost is a ratio of neighbouring windows.
            costs, on_pps = [], []
            for _ in range(LIST_PAIRS):
                off_pps, _, _ = measure(sample, lambda: True, time.monotonic() - warm)
                lp = listing_loop(api)
                try:
                    time.sleep(0.5)
                    pps, a, b = measure(sample, lambda: True, time.monotonic() - warm)
                finally:
                    os.killpg(lp.pid, signal.SIGTERM)
                    lp.wait()
                costs.append(1 - pps / off_pps)
                on_pps.append(pps)
            lists = []
            for line in open(f"{out}/listing.log"):
                f = line.split()
                if len(f) == 2:
                    lists.append((int(f[0]), float(f[1])))
            res["listing"] = {"pps": median(on_pps), "cost": median(costs), "costs": costs,
                              "entries": b[2].get("ctrack_conntrack_entries", 0),
                              "lists": lists}
        return res
    finally:
        stop(p)
        log.close()


# Every row ROUNDS times, the rows in turn (a slow spell of the shared
# machine then hits every row once, not one row every time); each row's
# figure is the median of its rounds, and the spread is printed.
runs, notes, extra = {}, [], {}
configs = [
    ("off", ["--set", "enabled=no"], False, cap, "ctrack tracking off"),
    ("full", [], True, cap, "ctrack full path"),
    ("fasttrack", ["--fasttrack", "established"], False, cap, "ctrack FastTrack"),
    ("tcp-full", [], False, tcap, "ctrack TCP full path"),
    ("tcp-fasttrack", ["--fasttrack", "established"], False, tcap, "ctrack TCP FastTrack"),
    # `enabled=yes`: an `accept` alone needs no tracking (`auto` would be off).
    ("nat-srcnat", ["--set", "enabled=yes", "--rules", f"{out}/nat-srcnat.rsc"], False, rcap,
     "ctrack NAT src-nat"),
    ("nat-accept", ["--set", "enabled=yes", "--rules", f"{out}/nat-accept.rsc"], False, rcap,
     "ctrack NAT exempt"),
    # Firewall (issue 10): the defconf-like ruleset, full path and FastTrack;
    # 10 and 10 000 address/port rules (`enabled=yes`: such rules alone need
    # no tracking), also measured for new connections in the first pass.
    ("fw-defconf-full", ["--rules", f"{out}/defconf-full.rsc"], False, cap,
     "ctrack defconf full path"),
    ("fw-defconf-fasttrack", ["--rules", f"{out}/defconf-fasttrack.rsc"], False, cap,
     "ctrack defconf FastTrack"),
    ("fw-rules-10", ["--set", "enabled=yes", "--rules", f"{out}/rules-10.rsc"], False, cap,
     "ctrack 10 rules"),
    ("fw-rules-10000", ["--set", "enabled=yes", "--rules", f"{out}/rules-10000.rsc"], False, cap,
     "ctrack 10000 rules"),
]
configs = [c for c in configs if c[0].startswith(ONLY)]
testpmd_modes = () if ONLY else ("io", "macswap", "5tswap")
order = [f"testpmd {m}" for m in testpmd_modes] + [c[4] for c in configs]
for rnd in range(ROUNDS):
    for mode in testpmd_modes:
        try:
            runs.setdefault(f"testpmd {mode}", []).append(testpmd(mode)["pps"])
        except Exception as e:  # a failed row is reported, the others still run
            notes.append(str(e))
    for name, args, listing, capture, label in configs:
        try:
            r = ctrack_run(name, args, listing, capture)
        except Exception as e:
            notes.append(str(e))
            continue
        runs.setdefault(label, []).append(r["full"]["pps"])
        if "new" in r:
            extra.setdefault(f"new {label}", []).append(r["new"])
        if rnd == 0 and name != "off":
            notes.append(f"{label}: {int(r['full']['entries'])} live connections, "
                         f"{100 * r['full']['ft_share']:.0f}% of packets fast-tracked")
        if "listing" in r:
            L = r["listing"]
            runs.setdefault("ctrack full + API list", []).append(L["pps"])
            extra.setdefault("list_costs", []).extend(L["costs"])
            ls = L["lists"]
            if ls and rnd == 0:
                notes.append(f"API listing: {len(ls)} complete listings of {ls[0][0] / 1e6:.0f} MB "
                             f"({int(L['entries'])} connections), "
                             f"{sum(t for _, t in ls) / len(ls):.1f} s each")
            elif not ls:
                notes.append("API listing: no listing completed within a window "
                             f"(see {out}/listing.log)")
if "ctrack full path" in order:
    order.insert(order.index("ctrack full path") + 1, "ctrack full + API list")
rows = {k: median(runs[k]) for k in order if runs.get(k)}
spread = {k: (min(runs[k]), max(runs[k])) for k in rows}

mac, full = rows.get("testpmd macswap"), rows.get("ctrack full path")
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "n/a"
print(f"\n{ROUNDS} round(s); Mpps is the median of the rounds, range = min-max")
print(f"{'row':<24} {'Mpps':>7} {'range':>13} {'vs macswap':>11} {'vs full path':>13}")
for name, v in rows.items():
    # TCP rows are compared with the TCP full path, the others with UDP's.
    base = (rows.get("ctrack TCP full path") if name.startswith("ctrack TCP") else
            rows.get("ctrack NAT exempt") if name.startswith("ctrack NAT") else
            rows.get("ctrack defconf full path") if name.startswith("ctrack defconf") else
            rows.get("ctrack 10 rules") if name.endswith(" rules") else full)
    lo, hi = spread[name]
    rng = f"{lo / 1e6:.2f}-{hi / 1e6:.2f}"
    print(f"{name:<24} {v / 1e6:>7.2f} {rng:>13} {ratio(v, mac):>11} {ratio(v, base):>13}")


def target(label, ok, text):
    print(f"  {'PASS' if ok else ('MISS' if ok is not None else 'n/a '):<5} {label}: {text}")


ft, lst = rows.get("ctrack FastTrack"), rows.get("ctrack full + API list")
tfull, tft = rows.get("ctrack TCP full path"), rows.get("ctrack TCP FastTrack")
print("\ntargets (figures, not assertions):")
target("tracking on >= 0.5x testpmd macswap", full / mac >= 0.5 if full and mac else None,
       f"{ratio(full, mac)}x (UDP; TCP: {ratio(tfull, mac)}x)")
# FastTrack skips the TCP tracker (window checks); a UDP stream's full path
# has little to skip until rules and NAT exist: the target is judged on TCP,
# and UDP is shown beside it.
target("FastTrack >= 1.3x full path (TCP)", tft / tfull >= 1.3 if tft and tfull else None,
       f"{ratio(tft, tfull)}x (UDP: {ratio(ft, full)}x)")
# The listing's cost: the median over every pair of neighbouring windows
# (without, then with the listing loop) in the full-path processes.
lc = extra.get("list_costs", [])
cost = median(lc) if lc else None
target("listing all connections costs <= 5%", cost <= 0.05 if cost is not None else None,
       f"{100 * cost:.1f}% of full-path throughput (median of {len(lc)} window pairs: "
       + ", ".join(f"{100 * c:.1f}%" for c in lc) + ")" if cost is not None else "n/a")
nat, exempt = rows.get("ctrack NAT src-nat"), rows.get("ctrack NAT exempt")
target("translated forwarding >= 0.9x untranslated", nat / exempt >= 0.9 if nat and exempt else None,
       f"{ratio(nat, exempt)}x (src-nat vs the srcnat rule accept, requests only; "
       "the 'vs full path' column of the NAT rows is vs NAT exempt)")
for label in ("ctrack NAT src-nat", "ctrack NAT exempt"):
    xs = extra.get(f"new {label}")
    if xs:
        print(f"  new connections ({label}): {median(xs) / 1e6:.2f} M/s "
              f"(first pass, median of {len(xs)}; range {min(xs) / 1e6:.2f}-{max(xs) / 1e6:.2f})")
newn = extra.get("new ctrack NAT src-nat")
target("NAT new connections >= 2M/s per core", median(newn) >= 2e6 if newn else None,
       f"{median(newn) / 1e6:.2f} M/s" if newn else "n/a")


def paired(a, b, xs=runs):
    """Per-round ratios a/b (the rows ran in turn, so round r of each is a
    neighbour in time): (median, min, max) or None."""
    r = [x / y for x, y in zip(xs.get(a, []), xs.get(b, [])) if y]
    return (median(r), min(r), max(r)) if r else None


def ratio_text(p):
    return f"{p[0]:.2f}x (per round {p[1]:.2f}-{p[2]:.2f})" if p else "n/a"


dft = paired("ctrack defconf FastTrack", "ctrack defconf full path")
target("defconf FastTrack >= 2x defconf full path", dft[0] >= 2 if dft else None, ratio_text(dft))
r10k = paired("ctrack 10000 rules", "ctrack 10 rules")
target("10 000 rules forward >= 0.8x 10 rules", r10k[0] >= 0.8 if r10k else None, ratio_text(r10k))
n10k = paired("new ctrack 10000 rules", "new ctrack 10 rules", extra)
target("new connections/s with 10 000 rules >= 0.5x 10 rules", n10k[0] >= 0.5 if n10k else None,
       ratio_text(n10k))
for label in ("ctrack 10 rules", "ctrack 10000 rules"):
    xs = extra.get(f"new {label}")
    if xs:
        print(f"  new connections ({label}): {median(xs) / 1e6:.2f} M/s "
              f"(first pass, median of {len(xs)}; range {min(xs) / 1e6:.2f}-{max(xs) / 1e6:.2f})")
for n in notes:
    print(f"note: {n}")
json.dump({"conns": conns, "secs": secs, "warm": warm, "rounds": ROUNDS, "pps": rows,
           "runs": runs, "list_costs": lc, "notes": notes,
           "new_conns": {k: v for k, v in extra.items() if k.startswith("new ")}},
          open(f"{out}/forward.json", "w"), indent=1)
PY
