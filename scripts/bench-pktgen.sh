#!/usr/bin/env bash
# pktgen-dpdk against ctrack and, in the same run and under the same
# generator, against dpdk-testpmd: throughput, drops, new connections per
# second and latency, printed side by side as ratios. See
# docs/benchmarks-pktgen.md (the layout on one machine over net_memif, the
# two-server layout with real NICs, how to get pktgen-dpdk 23.06).
#
#   PKTGEN=/path/to/pktgen scripts/bench-pktgen.sh [CASE ...]
#
# CASEs (default: all): conns-udp4 conns-tcp4 conns-udp6 imix-udp4 cps-udp4
# latency-udp4. Environment: SECONDS_PER_CASE (default 10), WARMUP (default
# 8: memif links take 2.5-9 s to come up), CONNS (default 4096), ROUNDS
# (default 1: each case that many times, ctrack and testpmd in turn),
# GEN_LCORES (pktgen's lcore map, default "0@0,1@0,2@0": all on CPU 0),
# DUT_LCORES (default "0-1": control on CPU 0, the forwarding worker on 1).
#
# Without PKTGEN (pktgen-dpdk is not packaged by Debian) it says what is
# missing and how to get it, and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PKTGEN:-}" ] || [ ! -x "${PKTGEN}" ]; then
    cat >&2 <<'EOF'
bench-pktgen: PKTGEN must name a pktgen-dpdk binary (e.g. PKTGEN=$HOME/pktgen/build/app/pktgen).
pktgen-dpdk is not packaged by Debian; its 23.06 release is the one that builds
against Debian's DPDK 22.11. docs/benchmarks-pktgen.md says what it needs and the
two changes it needs against Debian's DPDK.
EOF
    exit 2
fi
. scripts/deps.sh
ctrack_need_packages python3
command -v script >/dev/null || { echo "bench-pktgen: needs script(1) (bsdutils)" >&2; exit 1; }

cargo build --release -q -p control --bins
out=out/bench
mkdir -p "$out"
echo "pktgen-dpdk -> DUT -> pktgen-dpdk over net_memif; $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ctrack $(git rev-parse --short HEAD 2>/dev/null || echo '?'); pktgen: $("$PKTGEN" --version 2>/dev/null | head -1 || echo "$PKTGEN")"

exec python3 - "$PKTGEN" target/release/ctrack "$out" "$@" <<'PY'
import json, os, re, signal, subprocess, sys, time

pktgen, ctrack, out, *cases = sys.argv[1:]
ALL = {
    "conns-udp4": dict(CT_MODE="conns", CT_PROTO="udp", CT_FAMILY="ipv4", CT_SIZE="64"),
    "conns-tcp4": dict(CT_MODE="conns", CT_PROTO="tcp", CT_FAMILY="ipv4", CT_SIZE="64"),
    "conns-udp6": dict(CT_MODE="conns", CT_PROTO="udp", CT_FAMILY="ipv6", CT_SIZE="64"),
    "imix-udp4": dict(CT_MODE="conns", CT_PROTO="udp", CT_FAMILY="ipv4", CT_SIZE="imix"),
    "cps-udp4": dict(CT_MODE="cps", CT_PROTO="udp", CT_FAMILY="ipv4", CT_SIZE="64"),
    "latency-udp4": dict(CT_MODE="latency", CT_PROTO="udp", CT_FAMILY="ipv4", CT_SIZE="64"),
}
cases = cases or list(ALL)
for c in cases:
    if c not in ALL:
        sys.exit(f"bench-pktgen: unknown case {c!r}; cases: {' '.join(ALL)}")
secs = int(os.environ.get("SECONDS_PER_CASE", "10"))
warm = int(os.environ.get("WARMUP", "8"))
conns = int(os.environ.get("CONNS", "4096"))
rounds = int(os.environ.get("ROUNDS", "1"))
gen_lcores = os.environ.get("GEN_LCORES", "0@0,1@0,2@0")
dut_lcores = os.environ.get("DUT_LCORES", "0-1")
tag = f"ctpk{os.getpid()}"
socks = [f"/tmp/{tag}-{i}.sock" for i in range(2)]


def dut_eal(prefix):
    return ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix, "-l", dut_lcores,
            "--log-level=error",
            "--vdev", f"net_memif0,role=server,socket={socks[0]}",
            "--vdev", f"net_memif1,role=server,socket={socks[1]}"]


def start_dut(kind, case):
    log = open(f"{out}/pktgen-dut-{kind}-{case}.log", "w")
    if kind == "testpmd":
        cmd = ["dpdk-testpmd", *dut_eal(tag + "d"), "--", "--forward-mode=macswap",
               "--nb-cores=1", "--auto-start"]
        # Non-interactive testpmd runs until its stdin ends or SIGINT.
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    else:
        summary = f"{out}/pktgen-ctrack-{case}.json"
        sets = []
        if ALL[case]["CT_MODE"] == "cps":
            # pktgen's random bits leave checksums stale (see ctrack.lua).
            sets = ["--set", "checksum-verify=no"]
        cmd = [ctrack, "run", "--summary-json", summary, *sets, "--", *dut_eal(tag + "d")]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        p.summary = summary
    p.log = log
    return p


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    p.log.close()


def run_pktgen(case):
    env = dict(os.environ, **ALL[case], CT_CONNS=str(conns), CT_SECONDS=str(secs),
               CT_WARMUP=str(warm))
    eal = ["--no-huge", "-m", "4096", "--no-pci", "--file-prefix", tag + "g",
           "--lcores", gen_lcores, "--log-level=error",
           "--vdev", f"net_memif0,role=client,socket={socks[0]}",
           "--vdev", f"net_memif1,role=client,socket={socks[1]}"]
    lua = os.path.abspath("scripts/pktgen/ctrack.lua")
    cmd = [pktgen, *eal, "--", "-P", "-T", "-m", "[1:1].0,[2:2].1", "-f", lua]
    # pktgen wants a terminal: script(1) gives it one.
    shell = " ".join("'" + c.replace("'", "'\\''") + "'" for c in cmd)
    r = subprocess.run(["script", "-qfec", shell, "/dev/null"], env=env, capture_output=True,
                       text=True, errors="replace", timeout=warm + secs + 120,
                       cwd=os.path.dirname(os.path.dirname(pktgen)) or ".")
    with open(f"{out}/pktgen-gen-{case}.log", "w") as f:
        f.write(r.stdout)
    m = re.search(r"CTRACK_PKTGEN (.*)", r.stdout)
    if not m:
        raise RuntimeError(f"pktgen printed no result (see {out}/pktgen-gen-{case}.log)")
    kv = dict(x.split("=", 1) for x in m.group(1).split())
    if "error" in kv:
        raise RuntimeError(f"pktgen: {kv['error']}")
    return kv


def wait_listening(dut, kind):
    """The device is up once its memif server sockets exist."""
    deadline = time.monotonic() + 120
    while not all(os.path.exists(s) for s in socks):
        if dut.poll() is not None:
            raise RuntimeError(f"{kind} exited ({dut.returncode}) before listening: see {dut.log.name}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not create its memif sockets: see {dut.log.name}")
        time.sleep(0.1)


def one(kind, case):
    for s in socks:
        if os.path.exists(s):
            os.unlink(s)
    dut = start_dut(kind, case)
    try:
        wait_listening(dut, kind)
        kv = run_pktgen(case)
    finally:
        stop(dut)
    s = max(1, int(kv["seconds"]))
    n = lambda k: int(kv.get(k, 0))
    res = {"tx_pps": (n("tx0") + n("tx1")) / s, "rx_pps": (n("rx0") + n("rx1")) / s}
    res["lost"] = max(0, n("tx0") + n("tx1") - n("rx0") - n("rx1"))
    if "lat_avg_us" in kv and kv["lat_avg_us"]:
        res["lat_avg_us"] = float(kv["lat_avg_us"])
    if kind == "ctrack" and os.path.exists(dut.summary):
        try:
            summ = json.load(open(dut.summary))
            res["summary"] = summ
        except ValueError:
            pass
    return res


print(f"{secs}s per case after {warm}s warm-up, {conns} connections, {rounds} round(s)")
print(f"{'case':<14} {'ctrack Mpps':>12} {'testpmd Mpps':>13} {'ratio':>6} {'ctrack lost':>12} {'testpmd lost':>13}")
for case in cases:
    got = {"ctrack": [], "testpmd": []}
    for _ in range(rounds):
        for kind in ("ctrack", "testpmd"):
            try:
                got[kind].append(one(kind, case))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{case}: {kind}: {e}", file=sys.stderr)
    if not got["ctrack"] or not got["testpmd"]:
        print(f"{case:<14} (failed: see {out}/pktgen-*-{case}.log)")
        continue
    med = lambda rs, k: sorted(r[k] for r in rs)[len(rs) // 2]
    c, t = med(got["ctrack"], "rx_pps"), med(got["testpmd"], "rx_pps")
    line = (f"{case:<14} {c / 1e6:>12.2f} {t / 1e6:>13.2f} {c / t if t else 0:>6.2f}"
            f" {med(got['ctrack'], 'lost'):>12} {med(got['testpmd'], 'lost'):>13}")
    if "lat_avg_us" in got["ctrack"][0] and "lat_avg_us" in got["testpmd"][0]:
        line += f"  latency avg {med(got['ctrack'], 'lat_avg_us'):.1f} us vs {med(got['testpmd'], 'lat_avg_us'):.1f} us"
    print(line, flush=True)
PY
