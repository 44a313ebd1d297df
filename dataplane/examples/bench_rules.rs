//! Rule evaluation with 10, 1000 and 10 000 address/port rules, in one run
//! and in alternating rounds (this VM is shared and noisy): the linear walk
//! (`Prefilter::Linear`), the engine with its classifier (the default), and
//! bare `rte_acl_classify` over the same chain and the same packets. Then new
//! connections: fresh TCP SYNs into a full table (`Shard::handle_burst`, two-
//! phase creation with early drop) plus the filter evaluation of each.
//! And forwarding with tracking: the same forwarded packets' rule
//! evaluation after `Shard::handle_burst` of 1024 established UDP
//! connections (the packet path minus parsing and I/O), so the rate ratio
//! includes the work a packet costs besides the rules.
//! `scripts/bench-rules.sh` runs it; docs/firewall.md ("Classifier") has the
//! figures.
//!
//! Rules (filter/forward, all `drop`): rule i is `protocol=tcp|udp
//! src-address=10.a.b.0/24 dst-port=1000+i%100` (a.b = i). Packets come from
//! 10.0-38.x.y, so with 10 000 rules every packet falls in some rule's
//! prefix, and go to ports 2000-2049, so no rule matches: every packet walks
//! the whole chain and is forwarded (accepted).
//!
//!   cargo run --release -p dataplane --example bench_rules -- [ROUNDS] [MS]
//!   ... --example bench_rules -- icount N linear|tree   (for callgrind)

use std::time::{Duration, Instant as Clock};

use ctrack_rules::*;
use dataplane::acl::{ChainAcl, MAX_KEY};
use dataplane::conntrack::{
    Instant, Settings, Shard, TableConfig, UntrackedReason, Verdict as CtVerdict,
};
use dataplane::flow::{Addr, Family, FlowRepr, L4, TcpInfo, Tuple, proto, tcp_flags};

const SIZES: [usize; 3] = [10, 1000, 10_000];
const PKTS: u32 = 1024;
const BURST: usize = 32;
/// Table size for the new-connection runs (full after the first burst set).
const CONNS: u32 = 1024;
const SYNS: u32 = 64 * 1024;

fn script(n: usize) -> String {
    let mut s = String::from("/ip firewall filter\n");
    for i in 0..n {
        s.push_str(&format!(
            "add chain=forward action=drop protocol={} src-address=10.{}.{}.0/24 dst-port={}\n",
            ["tcp", "udp"][i % 2],
            i / 256,
            i % 256,
            1000 + i % 100
        ));
    }
    s
}

fn compile(n: usize, prefilter: Prefilter) -> Ruleset {
    let cfg = parse(&script(n)).expect("generated script parses");
    Ruleset::compile_with(&cfg, &["ether1".into()], &mut Names::default(), prefilter)
        .expect("compiles")
}

fn syn(k: u32) -> FlowRepr {
    FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4([
                10,
                (k % 39) as u8,
                (k / 39 % 256) as u8,
                1 + (k / 9984) as u8,
            ]),
            dst: Addr::from_v4([192, 0, 2, 1]),
            src_port: 1024 + (k % 1000) as u16,
            dst_port: 2000 + (k % 50) as u16,
            proto: proto::TCP,
            family: Family::V4,
        },
        ip_len: 40,
        l4: L4::Tcp(TcpInfo {
            seq: k,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 65535,
            wscale: None,
            sack_perm: false,
            payload_len: 0,
        }),
    }
}

/// Forwarded packets: established TCP and UDP, no rule matches.
fn forward_packets() -> Vec<PacketCtx<'static>> {
    (0..PKTS)
        .map(|k| {
            let mut p = PacketCtx::from_flow(&syn(k * 7919 % SYNS));
            p.proto = if k % 2 == 0 { proto::TCP } else { proto::UDP };
            p.tcp_flags = if p.proto == proto::TCP { 0x10 } else { 0 };
            p.conn.state = ConnState::Established;
            p.size = 1500;
            p
        })
        .collect()
}

/// Nanoseconds per packet of `f` (which handles `pkts` packets per call),
/// calling it until `budget` has passed.
fn ns_per_pkt(budget: Duration, pkts: usize, mut f: impl FnMut()) -> f64 {
    let start = Clock::now();
    let mut n = 0usize;
    loop {
        f();
        n += pkts;
        if start.elapsed() >= budget {
            break;
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn eval_all(rs: &Ruleset, ws: &mut WorkerState, pkts: &[PacketCtx], out: &mut [Verdict]) {
    for (b, o) in pkts.chunks(BURST).zip(out.chunks_mut(BURST)) {
        rs.evaluate_burst(Hook::FilterForward, Instant::ZERO, b, ws, &NoEnv, o);
    }
}

struct Size {
    n: usize,
    linear: Ruleset,
    tree: Ruleset,
    acl: ChainAcl,
}

/// Checks that the three agree: no forwarded packet matches, and for
/// probes that do match, the engine's deciding rule is rte_acl's first
/// candidate (every rule here is a terminal header-only rule).
fn check(s: &Size, pkts: &[PacketCtx]) {
    let mut probes: Vec<PacketCtx> = Vec::new();
    for i in (0..s.n).step_by(s.n / 8 + 1) {
        let mut p = pkts[0];
        p.src = Addr::from_v4([10, (i / 256) as u8, (i % 256) as u8, 9]);
        p.proto = if i % 2 == 0 { proto::TCP } else { proto::UDP };
        p.dst_port = 1000 + (i % 100) as u16;
        probes.push(p);
    }
    let all: Vec<PacketCtx> = pkts.iter().chain(&probes).copied().collect();
    for rs in [&s.linear, &s.tree] {
        let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
        let mut out = vec![Verdict::default(); all.len()];
        eval_all(rs, &mut ws, &all, &mut out);
        let mut keys = vec![[0u8; MAX_KEY]; all.len()];
        for (p, k) in all.iter().zip(&mut keys) {
            s.acl.write_key(p, k);
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let mut raw = vec![0u32; all.len()];
        let mut first = vec![None; all.len()];
        s.acl
            .first_candidate(&refs, &mut raw, &mut first)
            .expect("classify");
        for (i, (v, f)) in out.iter().zip(&first).enumerate() {
            assert_eq!(v.rule, *f, "{} rules, packet {i}", s.n);
            let want = if i < pkts.len() {
                Final::Accept
            } else {
                Final::Drop
            };
            assert_eq!(v.action, want, "{} rules, packet {i}", s.n);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("icount") {
        return icount(&args[1..]);
    }
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let budget = Duration::from_millis(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(150));
    let _eal = dpdk::Eal::init(&[
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=error",
    ])
    .expect("rte_eal_init");

    let pkts = forward_packets();
    let sizes: Vec<Size> = SIZES
        .iter()
        .map(|&n| {
            let tree = compile(n, Prefilter::default());
            let acl = ChainAcl::build(&tree, Fam::V4, Table::Filter, "forward").expect("rte_acl");
            assert_eq!(acl.len(), n);
            Size {
                n,
                linear: compile(n, Prefilter::Linear),
                tree,
                acl,
            }
        })
        .collect();
    for s in &sizes {
        check(s, &pkts);
        let (chains, nodes, entries) = s.tree.classifier_size();
        println!(
            "{:>6} rules: classifier {chains} chain(s), {nodes} nodes, {entries} leaf entries ({:.1} per rule)",
            s.n,
            entries as f64 / s.n as f64
        );
    }
    let mut keys = vec![[0u8; MAX_KEY]; pkts.len()];
    for (p, k) in pkts.iter().zip(&mut keys) {
        sizes[0].acl.write_key(p, k);
    }
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..16]).collect();
    let syns: Vec<FlowRepr> = (0..SYNS).map(syn).collect();
    let syn_ctx: Vec<PacketCtx> = syns.iter().map(PacketCtx::from_flow).collect();
    // 1024 UDP connections, a request and a response each (2048 packets);
    // the first pass creates them.
    let mix = ctrack_traffic::synth::Mix {
        tcp: 0,
        udp: CONNS,
        icmp: 0,
        exchanges: 1,
        payload: 6,
        keep_open: true,
        midstream: false,
    };
    let est: Vec<FlowRepr> = mix
        .packets()
        .iter()
        .map(|p| dataplane::packet::parse_ethernet(&p.frame).expect("synthetic frame parses"))
        .take(PKTS as usize)
        .collect();
    let mut est_shard = Shard::new(
        TableConfig::new(CONNS),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    let mut est_now = 1_000_000_000u64;
    let mut est_ct = [CtVerdict::Untracked(UntrackedReason::TrackingDisabled); BURST];
    // One pass: PKTS established packets through the table, then the
    // forwarded packets' rules (the same bursts the untracked rows time).
    let mut est_pass = |rs: Option<(&Ruleset, &mut WorkerState)>, out: &mut [Verdict]| {
        let mut rs = rs;
        for (j, b) in est.chunks(BURST).enumerate() {
            est_now += 320;
            est_shard.handle_burst(Instant(est_now), b, &mut est_ct[..b.len()]);
            if let Some((rs, ws)) = rs.as_mut() {
                let r = j * BURST..(j + 1) * BURST;
                rs.evaluate_burst(
                    Hook::FilterForward,
                    Instant(est_now),
                    &pkts[r.clone()],
                    ws,
                    &NoEnv,
                    &mut out[r],
                );
            }
        }
    };
    est_pass(None, &mut []);

    // [size][linear, tree, acl] forward; [size][linear, tree] new; table only.
    let mut fwd = vec![[const { Vec::new() }; 3]; SIZES.len()];
    let mut new = vec![[const { Vec::new() }; 2]; SIZES.len()];
    let mut tracked = vec![[const { Vec::new() }; 2]; SIZES.len()];
    let mut table_only = Vec::new();
    let mut est_only = Vec::new();
    let mut out = vec![Verdict::default(); pkts.len()];
    let mut raw = vec![0u32; pkts.len()];
    let mut shard = Shard::new(
        TableConfig::new(CONNS),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    let mut ct = [CtVerdict::Untracked(UntrackedReason::TrackingDisabled); BURST];
    let mut now = 1_000_000_000u64;
    let mut next_syn = 0usize;
    // One pass: PKTS fresh SYNs through the table, then (with rules) the
    // filter, burst by burst.
    let mut new_pass = |rs: Option<(&Ruleset, &mut WorkerState)>| {
        let mut rs = rs;
        for _ in 0..PKTS as usize / BURST {
            let r = next_syn..next_syn + BURST;
            next_syn = (next_syn + BURST) % SYNS as usize;
            now += 320;
            shard.handle_burst(Instant(now), &syns[r.clone()], &mut ct);
            if let Some((rs, ws)) = rs.as_mut() {
                let mut v = [Verdict::default(); BURST];
                rs.evaluate_burst(
                    Hook::FilterForward,
                    Instant(now),
                    &syn_ctx[r],
                    ws,
                    &NoEnv,
                    &mut v,
                );
                std::hint::black_box(&v);
            }
        }
    };
    for round in 0..rounds {
        for (si, s) in sizes.iter().enumerate() {
            for (mi, rs) in [&s.linear, &s.tree].into_iter().enumerate() {
                let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
                fwd[si][mi].push(ns_per_pkt(budget, pkts.len(), || {
                    eval_all(rs, &mut ws, &pkts, &mut out);
                    std::hint::black_box(&out);
                }));
            }
            fwd[si][2].push(ns_per_pkt(budget, pkts.len(), || {
                for (k, r) in refs.chunks(BURST).zip(raw.chunks_mut(BURST)) {
                    s.acl.acl().classify(k, r).expect("classify");
                }
                std::hint::black_box(&raw);
            }));
            for (mi, rs) in [&s.linear, &s.tree].into_iter().enumerate() {
                let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
                tracked[si][mi].push(ns_per_pkt(budget, PKTS as usize, || {
                    est_pass(Some((rs, &mut ws)), &mut out);
                    std::hint::black_box(&out);
                }));
            }
            for (mi, rs) in [&s.linear, &s.tree].into_iter().enumerate() {
                let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
                new[si][mi].push(ns_per_pkt(budget, PKTS as usize, || {
                    new_pass(Some((rs, &mut ws)))
                }));
            }
        }
        table_only.push(ns_per_pkt(budget, PKTS as usize, || new_pass(None)));
        est_only.push(ns_per_pkt(budget, PKTS as usize, || {
            est_pass(None, &mut [])
        }));
        eprintln!("round {}/{rounds} done", round + 1);
    }
    assert!(shard.stats().early_drop > 0, "the table was full");

    let f: Vec<[f64; 3]> = fwd
        .iter_mut()
        .map(|m| [median(&mut m[0]), median(&mut m[1]), median(&mut m[2])])
        .collect();
    let c: Vec<[f64; 2]> = new
        .iter_mut()
        .map(|m| [median(&mut m[0]), median(&mut m[1])])
        .collect();
    let t = median(&mut table_only);
    let te = median(&mut est_only);
    let tr: Vec<[f64; 2]> = tracked
        .iter_mut()
        .map(|m| [median(&mut m[0]), median(&mut m[1])])
        .collect();
    println!(
        "\nforwarded packets, filter/forward, ns per packet (median of {rounds} rounds, bursts of {BURST})"
    );
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>15} {:>15}",
        "rules", "linear", "engine", "rte_acl", "linear/engine", "engine/rte_acl"
    );
    for (s, r) in SIZES.iter().zip(&f) {
        println!(
            "{:>6} {:>12.1} {:>12.1} {:>12.1} {:>15.1} {:>15.1}",
            s,
            r[0],
            r[1],
            r[2],
            r[0] / r[1],
            r[1] / r[2]
        );
    }
    let last = SIZES.len() - 1;
    println!(
        "rate with 10000 rules / rate with 10: engine {:.2} (target >= 0.8), linear {:.4}, bare rte_acl {:.2}",
        f[0][1] / f[last][1],
        f[0][0] / f[last][0],
        f[0][2] / f[last][2]
    );
    println!(
        "\nforwarded packets with tracking (established UDP through the table + filter/forward), ns per packet"
    );
    println!(
        "{:>6} {:>12} {:>12}   (table alone: {te:.1})",
        "rules", "linear", "engine"
    );
    for (s, r) in SIZES.iter().zip(&tr) {
        println!("{:>6} {:>12.1} {:>12.1}", s, r[0], r[1]);
    }
    println!(
        "tracked forwarding rate with 10000 rules / with 10: engine {:.2} (target >= 0.8), linear {:.4}",
        tr[0][1] / tr[last][1],
        tr[0][0] / tr[last][0]
    );
    println!(
        "\nnew connections (fresh SYN into a full table of {CONNS} + filter/forward), ns per connection"
    );
    println!(
        "{:>6} {:>12} {:>12}   (table alone: {t:.1})",
        "rules", "linear", "engine"
    );
    for (s, r) in SIZES.iter().zip(&c) {
        println!("{:>6} {:>12.1} {:>12.1}", s, r[0], r[1]);
    }
    println!(
        "new connections/s with 10000 rules / with 10: engine {:.2} (target >= 0.5), linear {:.4}",
        c[0][1] / c[last][1],
        c[0][0] / c[last][0]
    );
}

/// A fixed workload for callgrind: `N` rules, 200 passes of the forwarded
/// packets through `evaluate_burst`.
fn icount(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let linear = args.get(1).map(String::as_str) == Some("linear");
    let rs = compile(
        n,
        if linear {
            Prefilter::Linear
        } else {
            Prefilter::default()
        },
    );
    let pkts = forward_packets();
    let mut ws = WorkerState::new(&rs, Instant::ZERO, 16, 16);
    let mut out = vec![Verdict::default(); pkts.len()];
    let passes = if linear && n > 100 { 2 } else { 200 };
    for _ in 0..passes {
        eval_all(&rs, &mut ws, &pkts, &mut out);
    }
    assert!(out.iter().all(|v| v.action == Final::Accept));
    println!("{} packets through evaluate_burst", passes * pkts.len());
}
