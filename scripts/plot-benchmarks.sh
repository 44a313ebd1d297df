#!/usr/bin/env bash
# The benchmark pictures of docs/benchmarks.md (issue 15), drawn with
# matplotlib (Debian's python3-matplotlib, installed as root if missing)
# from the benchmark logs:
#
#   out/bench/conntrack.log   scripts/bench-conntrack.sh (part "table"; for the
#                             curve over sizes: CT_SIZES=1K,64K,1M,4M,16M)
#   out/bench/shards.log      scripts/bench-conntrack.sh (part "shards")
#   out/bench/ovs.log         OVS_TEST=... scripts/bench-conntrack.sh (part "ovs";
#                             OVS_SIZES="1000 64000 1000000" for a curve)
#   out/bench/icount.log      scripts/bench-icount.sh | tee out/bench/icount.log
#   out/bench/fw-icount.log   scripts/bench-fw-icount.sh (writes it): instructions
#                             per packet with the defconf ruleset, full path and
#                             FastTrack, and without a ruleset
#   out/bench/forward-fw-defconf.log (or forward-fw.log)
#                             ONLY=fw-defconf scripts/bench-forward.sh (writes it):
#                             the same rows in forwarding Mpps
#
#   scripts/plot-benchmarks.sh [LOG_DIR]      (default out/bench)
#
# Writes docs/img/*.png and copies the logs it read to docs/img/logs/, so
# that the pictures can be drawn again from the repository:
# `scripts/plot-benchmarks.sh docs/img/logs`. A missing log leaves its
# picture out, with a line naming the command that makes it.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=${1:-out/bench}
py=/usr/bin/python3
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "plot-benchmarks: installing python3-matplotlib" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null
    else
        echo "plot-benchmarks: needs Debian's python3-matplotlib: sudo apt-get install python3-matplotlib" >&2
        exit 1
    fi
fi
mkdir -p docs/img/logs
for f in conntrack.log shards.log ovs.log icount.log fw-icount.log forward-fw-defconf.log forward-fw.log; do
    if [ -f "$logs/$f" ] && [ "$(realpath "$logs")" != "$(realpath docs/img/logs)" ]; then
        cp "$logs/$f" docs/img/logs/
    fi
done
LOGS="$logs" "$py" - <<'EOF'
import os, re
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

logs = os.environ["LOGS"]
img = "docs/img"

def read(name, how):
    p = os.path.join(logs, name)
    if not os.path.exists(p):
        print(f"plot-benchmarks: no {p} ({how}): its picture is left out")
        return None
    return open(p).read()

def conns(label):
    m = re.match(r"~?([\d.]+)([KM]?)", label)
    return float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6}[m.group(2)]

ct = read("conntrack.log", "scripts/bench-conntrack.sh")
ovs = read("ovs.log", "OVS_TEST=... scripts/bench-conntrack.sh")
shards = read("shards.log", "scripts/bench-conntrack.sh")
icount = read("icount.log", "scripts/bench-icount.sh | tee out/bench/icount.log")
fw_icount = read("fw-icount.log", "scripts/bench-fw-icount.sh")
fw_fwd = None
for name in ("forward-fw-defconf.log", "forward-fw.log"):
    if os.path.exists(os.path.join(logs, name)):
        fw_fwd = read(name, "ONLY=fw-defconf scripts/bench-forward.sh")
        break

rows = {}  # (case, conns label) -> (ns, rte ns, ratio)
mem = {}   # (proto, label) -> {part: bytes}
if ct:
    summary = ct.split("== conntrack benchmark summary", 1)[-1]
    for line in summary.splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) == 6 and f[3].replace(".", "").isdigit():
            num = lambda x: float(x) if x not in ("-", "") else None
            rows[(f[0], f[1])] = (num(f[3]), num(f[4]), num(f[5]))
        m = re.match(r"memory: (\w+) (\S+): ([\d.]+) bytes/connection \(.*?: (.*)\)", line)
        if m:
            mem[(m.group(1), m.group(2))] = {
                k: float(v) for k, v in (p.rsplit(" ", 1) for p in m.group(4).split(", "))
            }

zones = []  # (n, ct insert, ovs insert, ct lookup, ovs lookup)
threads = None
if ovs:
    for m in re.finditer(r"ovs-zones-summary: conns=(\d+) ctrack_insert_ns=([\d.]+) ovs_insert_ns=([\d.]+) "
                         r"ctrack_lookup_ns=([\d.]+) ovs_lookup_ns=([\d.]+)", ovs):
        zones.append(tuple(float(x) for x in m.groups()))
    m = re.search(r"ovs-threads-summary: ctrack_1=([\d.]+) ctrack_2=([\d.]+) ovs_1=([\d.]+) ovs_2=([\d.]+)", ovs)
    if m:
        threads = [float(x) for x in m.groups()]

def save(fig, name):
    fig.tight_layout()
    fig.savefig(os.path.join(img, name), dpi=110)
    plt.close(fig)
    print(f"plot-benchmarks: {img}/{name}")

# 1. ns/packet against connections.
if rows or zones:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for case, style in (("established udp", "o-"), ("established tcp", "s-")):
        pts = sorted((conns(l), v[0], v[1]) for (c, l), v in rows.items() if c == case)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"ctrack, {case[12:]} (random order, both directions)")
            if case == "established udp":
                ax.plot([p[0] for p in pts], [p[2] for p in pts], "^--", label="rte_hash_lookup_bulk, same keys")
    if zones:
        z = sorted(zones)
        ax.plot([p[0] for p in z], [p[3] for p in z], "d-", label="ctrack, OVS benchmark-zones shape (lookup)")
        ax.plot([p[0] for p in z], [p[4] for p in z], "x-", label="OVS conntrack, benchmark-zones (lookup, no commit)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("connections in the table")
    ax.set_ylabel("ns per packet (one core)")
    ax.set_title("Established traffic: ns/packet against table size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "ns-per-packet.png")

# 2. New connections per second.
bars = []
for (c, l), v in sorted(rows.items()):
    if c.startswith("new tcp syn"):
        bars.append((f"ctrack {c[8:]}\n{l}", 1e3 / v[0]))
for z in sorted(zones):
    if z[0] >= 1e6:
        bars.append((f"ctrack\nOVS shape {z[0]/1e6:g}M", 1e3 / z[1]))
        bars.append((f"OVS commit\n{z[0]/1e6:g}M", 1e3 / z[2]))
if bars:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color=["C0" if b[0].startswith("ctrack") else "C3" for b in bars])
    ax.axhline(10, color="k", ls="--", lw=1, label="issue 15 target: 10M/s per core")
    ax.set_ylabel("M new connections/s (one core)")
    ax.set_title("New connections per second")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    save(fig, "new-connections.png")

# 3. Memory per connection, by structure.
if mem:
    keys = sorted((k for k in mem if k[0] == "udp"), key=lambda k: conns(k[1])) or sorted(mem)
    parts = ["index", "entries", "cold", "wheel", "other"]
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(keys)
    for p in parts:
        v = [mem[k].get(p, 0.0) for k in keys]
        ax.bar([k[1] for k in keys], v, bottom=bottom, label=p)
        bottom = [a + b for a, b in zip(bottom, v)]
    ax.axhline(128, color="k", ls="--", lw=1, label="issue 15 target: 128 B")
    ax.axhline(300, color="grey", ls=":", lw=1, label="Linux nf_conn, about 300 B")
    ax.set_xlabel("connections (max-entries = connections, a full table)")
    ax.set_ylabel("bytes per connection")
    ax.set_title("Memory per connection (Shard::memory_parts / connections)")
    ax.legend(fontsize=7, loc="upper right")
    save(fig, "memory-per-connection.png")

# 4. Throughput against workers.
if shards or threads:
    fig, ax = plt.subplots(figsize=(7, 4))
    if shards:
        series = {}
        for m in re.finditer(r"shards: mode=(\w+) conns=(\d+) threads=(\d+) mpps=([\d.]+)", shards):
            series.setdefault((m.group(1), int(m.group(2))), []).append((int(m.group(3)), float(m.group(4))))
        for (mode, n), pts in sorted(series.items()):
            pts.sort()
            name = "OVS shape, 1 flow/thread" if mode == "ovs" else f"established UDP, {n:,} conns/shard"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"ctrack: {name}")
            ax.plot([p[0] for p in pts], [pts[0][1] * p[0] for p in pts], ":", color="grey", lw=0.8)
    if threads:
        ax.plot([1, 2], threads[2:], "x--", color="C3", label="OVS benchmark 1|2 (one shared table)")
    ax.set_xticks([1, 2])
    ax.set_xlabel("threads (one shard each, pinned)")
    ax.set_ylabel("Mpps, all threads")
    ax.set_title("Throughput against workers (dotted: linear)")
    ax.legend(fontsize=7)
    save(fig, "workers.png")

# 5. FastTrack against the full path, with rules: the defconf ruleset's
# full path and FastTrack through the worker (instructions, and forwarding
# rate when the forwarding log is there), beside the table alone.
fw = []  # (label, instructions)
if fw_icount:
    for label in ("no ruleset", "defconf full path", "defconf FastTrack"):
        m = re.search(rf"^{label}\s+(\d+)$", fw_icount, re.M)
        if m:
            fw.append((label, int(m.group(1))))
fwd = []  # (label, median Mpps, lo, hi)
if fw_fwd:
    for m in re.finditer(r"^ctrack (defconf full path|defconf FastTrack)\s+([\d.]+)\s+([\d.]+)-([\d.]+)", fw_fwd, re.M):
        fwd.append((m.group(1), float(m.group(2)), float(m.group(3)), float(m.group(4))))
ic = []
if icount:
    for m in re.finditer(r"^(udp|tcp)\s+(\d+)\s+(\d+)\s+[\d.]+$", icount, re.M):
        ic.append((m.group(1), int(m.group(2)), int(m.group(3))))
ic.sort()
panels = [p for p in ("fw", "fwd", "ic") if {"fw": fw, "fwd": fwd, "ic": ic}[p]]
if panels:
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.6, 4), squeeze=False)
    axes = axes[0]
    colors = {"no ruleset": "C7", "defconf full path": "C0", "defconf FastTrack": "C1"}
    w = 0.38
    for ax, p in zip(axes, panels):
        if p == "fw":
            bars = ax.bar([f[0].replace("defconf ", "defconf\n") for f in fw], [f[1] for f in fw],
                          color=[colors[f[0]] for f in fw])
            ax.bar_label(bars, fontsize=7)
            d = dict(fw)
            if "defconf full path" in d and "defconf FastTrack" in d:
                ax.text(0.5, 0.97, f"full path / FastTrack: {d['defconf full path'] / d['defconf FastTrack']:.2f}x",
                        transform=ax.transAxes, ha="center", va="top", fontsize=7)
            ax.set_ylim(top=max(f[1] for f in fw) * 1.15)
            ax.set_ylabel("instructions per packet, Worker::poll_once")
            ax.set_title("With the defconf ruleset, 1024 conns in cache\n(callgrind, scripts/bench-fw-icount.sh)", fontsize=8)
        elif p == "fwd":
            bars = ax.bar([f[0].replace("defconf ", "defconf\n") for f in fwd], [f[1] for f in fwd],
                          yerr=[[f[1] - f[2] for f in fwd], [f[3] - f[1] for f in fwd]], capsize=4,
                          color=[colors[f[0]] for f in fwd])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
            ax.set_ylabel("Mpps forwarded, one core (median, range)")
            m = re.search(r"net_pcap \((\d+) UDP connections", fw_fwd)
            conns_txt = f"{int(m.group(1)):,} conns" if m else "forwarding"
            ax.set_ylim(top=max(f[3] for f in fwd) * 1.15)
            ax.set_title(f"With the defconf ruleset, {conns_txt}\n(ONLY=fw-defconf scripts/bench-forward.sh)", fontsize=8)
        else:
            x = range(len(ic))
            ax.bar([i - w / 2 for i in x], [f[1] for f in ic], w, label="full path", color="C0")
            ax.bar([i + w / 2 for i in x], [f[2] for f in ic], w, label="FastTrack", color="C1")
            ax.set_xticks(list(x), [f[0].upper() for f in ic])
            ax.set_ylabel("instructions per packet, Shard::handle_burst")
            ax.set_title("The table alone, no rules, 1024 conns\n(callgrind, scripts/bench-icount.sh)", fontsize=8)
            ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("FastTrack against the full path with rules (established UDP connections)", fontsize=9)
    save(fig, "fasttrack.png")
EOF
