//! The conntrack benchmark (issue 3, "Benchmark"): `cargo bench -p dataplane`.
//!
//! One thread, one `Shard`, in memory. Every packet is a `FlowRepr` built
//! before the timed loop: no packet parsing, no mbufs, no I/O is timed. The
//! cases (see `docs/benchmarks.md`):
//!
//! - (a) established TCP (after a handshake) and UDP (streams: both
//!   directions seen) over 1K, 1M and 4M connections; packets of both
//!   directions in random order, bursts of 32 through `Shard::handle_burst`,
//!   the clock advancing 10 ns per packet (nothing expires);
//! - (b) new connections: every packet a SYN of a fresh tuple, the clock
//!   advancing 500 ns per packet (2M SYN/s of simulated time), a 1 s
//!   syn-sent timeout and `poll_expired(now, 64)` after every burst: a steady
//!   state kept by expiry (max-entries 4M) and one kept by early drop
//!   (max-entries 1M, full);
//! - (c) the shape of Open vSwitch's `test-conntrack benchmark`: 4 one-way
//!   UDP flows sent over and over, every packet taking the full path.
//!
//! Baseline: DPDK's `rte_hash_lookup_bulk_data` (through `dpdk::RteHash`) over
//! the same keys (the conntrack `Key` of each packet, serialised to 40 bytes),
//! in bursts of 32, measured in the same run as the case it is the baseline
//! of. The rte_hash holds the original and the reply key of every connection,
//! so that each packet's own key is found, as a tracker built on rte_hash
//! would need.
//!
//! Criterion times every case (`iter_custom`, one burst of 32 packets per
//! iteration). Then each case and its baseline are timed once more in
//! alternation (15 rounds of ~60 ms each), so that load from other processes
//! hits both alike; the summary table printed at the end gives the medians of
//! those rounds, and the median of the per-round ratios.

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{Criterion, Throughput};
use dataplane::conntrack::{
    Duration, Instant, Key, Settings, Shard, TableConfig, UntrackedReason, Verdict,
};
use dataplane::flow::{Addr, Family, FlowRepr, L4, TcpInfo, Tuple, proto, tcp_flags};
use dpdk::RteHash;

const BURST: usize = 32;
/// Simulated time per packet in the established and OVS cases.
const EST_NS_PER_PKT: u64 = 10;
/// Simulated time per packet in the new-connection case: 2M SYN/s.
const NEW_NS_PER_PKT: u64 = 500;
/// Connection counts of the established cases; `CT_SIZES` (e.g.
/// `1K,64K,1M,4M,16M`, as `scripts/plot-benchmarks.sh` asks for) overrides.
const SIZES: [(u32, &str); 3] = [(1_000, "1K"), (1_000_000, "1M"), (4_000_000, "4M")];

/// The established cases' sizes: `CT_SIZES` (`K` = 1000, `M` = 10^6), or
/// [`SIZES`].
fn sizes() -> Vec<(u32, String)> {
    let Ok(v) = std::env::var("CT_SIZES") else {
        return SIZES.iter().map(|&(n, l)| (n, l.to_string())).collect();
    };
    v.split(',')
        .map(|l| {
            let l = l.trim();
            let (num, mul) = match l.as_bytes().last() {
                Some(b'K') => (&l[..l.len() - 1], 1_000),
                Some(b'M') => (&l[..l.len() - 1], 1_000_000),
                _ => (l, 1),
            };
            let n: u32 = num
                .parse()
                .unwrap_or_else(|_| panic!("CT_SIZES: bad size {l:?} (e.g. 64K, 4M)"));
            (n * mul, l.to_string())
        })
        .collect()
}

const SAMPLES: usize = 10;

/// Runs `step` (one burst of `BURST` packets) under criterion as `group/id`.
fn timed(c: &mut Criterion, group: &str, id: &str, step: &mut dyn FnMut()) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let t = StdInstant::now();
            for _ in 0..iters {
                step();
            }
            t.elapsed()
        })
    });
    g.finish();
}

/// Conntrack and its baseline measured in alternation: `ROUNDS` rounds, each
/// timing ~`ROUND_MS` of `a` then ~`ROUND_MS` of `b` (when given). Load from
/// other processes on a shared machine then hits both sides of a round alike,
/// so the per-round ratio is steadier than either figure. Returns the medians
/// of ns/packet of `a`, of `b`, and of the per-round ratio.
const ROUNDS: usize = 15;
const ROUND_MS: f64 = 60.0;

struct Paired {
    ns: f64,
    base_ns: Option<f64>,
    ratio: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run_bursts(step: &mut dyn FnMut(), bursts: u64) -> f64 {
    let t = StdInstant::now();
    for _ in 0..bursts {
        step();
    }
    t.elapsed().as_nanos() as f64 / (bursts as f64 * BURST as f64)
}

fn paired(a: &mut dyn FnMut(), mut b: Option<&mut dyn FnMut()>) -> Paired {
    // Calibrate the bursts per round from a short run of each.
    let per_round = |ns: f64| ((ROUND_MS * 1e6 / (ns * BURST as f64)) as u64).max(1);
    let na = per_round(run_bursts(a, 200));
    let nb = b.as_mut().map(|b| per_round(run_bursts(*b, 200)));
    let (mut va, mut vb, mut vr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let x = run_bursts(a, na);
        va.push(x);
        if let (Some(b), Some(nb)) = (b.as_mut(), nb) {
            let y = run_bursts(*b, nb);
            vb.push(y);
            vr.push(x / y);
        }
    }
    Paired {
        ns: median(va),
        base_ns: (!vb.is_empty()).then(|| median(vb)),
        ratio: (!vr.is_empty()).then(|| median(vr)),
    }
}

/// The first command-line argument that is not a flag: criterion's filter.
/// Cases none of whose benchmark ids contain it are not even set up.
fn wanted(ids: &[&str]) -> bool {
    const WITH_VALUE: [&str; 14] = [
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--color",
        "--profile-time",
    ];
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filter = Some(a);
            break;
        }
    }
    filter.is_none_or(|f| ids.iter().any(|id| id.contains(f.as_str())))
}

// ---- packets -------------------------------------------------------------

fn v4(i: u32) -> Addr {
    // 10.0.0.0/8 for up to 16M distinct hosts.
    Addr::from_v4([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

const SERVER: [u8; 4] = [192, 168, 1, 1];

fn tuple(src: Addr, sp: u16, dst: Addr, dp: u16, p: u8) -> Tuple {
    Tuple {
        src,
        dst,
        src_port: sp,
        dst_port: dp,
        proto: p,
        family: Family::V4,
    }
}

fn tcp(t: Tuple, flags: u8, seq: u32, ack: u32) -> FlowRepr {
    FlowRepr {
        tuple: t,
        ip_len: 52,
        l4: L4::Tcp(TcpInfo {
            seq,
            ack,
            flags,
            window: 65535,
            wscale: Some(7),
            sack_perm: true,
            payload_len: 0,
        }),
    }
}

fn udp(t: Tuple) -> FlowRepr {
    FlowRepr {
        tuple: t,
        ip_len: 128,
        l4: L4::Udp,
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Connection `c` of the established set, as (client->server tuple, ISNs).
fn conn(c: u32, p: u8) -> (Tuple, u32, u32) {
    let t = tuple(
        v4(c),
        1024 + (c % 60_000) as u16,
        Addr::from_v4(SERVER),
        443,
        p,
    );
    let isn_c = mix(u64::from(c)) as u32;
    let isn_s = mix(u64::from(c) ^ 0x5555_5555) as u32;
    (t, isn_c, isn_s)
}

/// The established-state packet of connection `c` in direction `dir` (0 from
/// the client): a pure ACK for TCP, a datagram for UDP.
fn est_packet(c: u32, dir: u32, p: u8) -> FlowRepr {
    let (t, isn_c, isn_s) = conn(c, p);
    let t = if dir == 0 { t } else { t.reversed() };
    if p == proto::TCP {
        let (seq, ack) = if dir == 0 {
            (isn_c.wrapping_add(1), isn_s.wrapping_add(1))
        } else {
            (isn_s.wrapping_add(1), isn_c.wrapping_add(1))
        };
        tcp(t, tcp_flags::ACK, seq, ack)
    } else {
        udp(t)
    }
}

/// The 40-byte baseline key of a packet: conntrack's own `Key`, serialised.
fn key_bytes(k: &Key) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..16].copy_from_slice(&k.src.0);
    b[16..32].copy_from_slice(&k.dst.0);
    b[32..34].copy_from_slice(&k.sport.to_ne_bytes());
    b[34..36].copy_from_slice(&k.dport.to_ne_bytes());
    b[36] = k.proto;
    b[37] = k.family as u8;
    b[38] = k.ver;
    b
}

fn pkt_key(p: &FlowRepr) -> [u8; 40] {
    key_bytes(&Key::of_packet(&p.tuple, &p.l4))
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn no_verdicts() -> [Verdict; BURST] {
    [Verdict::Untracked(UntrackedReason::TrackingDisabled); BURST]
}

// ---- runners ---------------------------------------------------------------

/// A shard fed bursts from a prebuilt packet sequence, round and round.
struct Feed {
    shard: Shard,
    seq: Vec<FlowRepr>,
    pos: usize,
    now: u64,
    ns_per_pkt: u64,
    /// `poll_expired` budget after every burst (0: not called).
    poll: usize,
    out: [Verdict; BURST],
}

impl Feed {
    #[inline]
    fn step(&mut self) {
        let burst = &self.seq[self.pos..self.pos + BURST];
        self.shard
            .handle_burst(Instant(self.now), burst, &mut self.out);
        if self.poll > 0 {
            black_box(self.shard.poll_expired(Instant(self.now), self.poll));
        }
        black_box(&self.out);
        self.now += self.ns_per_pkt * BURST as u64;
        self.pos += BURST;
        if self.pos + BURST > self.seq.len() {
            self.pos = 0;
        }
    }
}

/// `rte_hash_lookup_bulk` over a prebuilt key sequence, round and round.
struct Base {
    hash: RteHash,
    keys: Vec<[u8; 40]>,
    pos: usize,
    found: [Option<u64>; BURST],
}

impl Base {
    /// A table holding `set` (sized for 90% load at most), looked up in the
    /// order of `keys`.
    fn new(name: &str, set: impl ExactSizeIterator<Item = [u8; 40]>, keys: Vec<[u8; 40]>) -> Base {
        let entries = ((set.len() as u64 * 10).div_ceil(9)).max(64) as u32;
        let mut hash = RteHash::new(name, entries, 40).expect("rte_hash_create");
        for (i, k) in set.enumerate() {
            hash.add(&k, i as u64).expect("rte_hash_add_key_data");
        }
        Base {
            hash,
            keys,
            pos: 0,
            found: [None; BURST],
        }
    }

    #[inline]
    fn step(&mut self) -> usize {
        let refs: [&[u8]; BURST] = core::array::from_fn(|j| &self.keys[self.pos + j][..]);
        let hits = self.hash.lookup_bulk(&refs, &mut self.found);
        black_box(&self.found);
        self.pos += BURST;
        if self.pos + BURST > self.keys.len() {
            self.pos = 0;
        }
        hits
    }
}

// ---- results ---------------------------------------------------------------

struct Row {
    case: String,
    conns: String,
    ns: f64,
    base_ns: Option<f64>,
    ratio: Option<f64>,
}

#[derive(Default)]
struct Summary {
    rows: Vec<Row>,
    notes: Vec<String>,
    bytes_per_conn_1m: Vec<(String, f64)>,
    est_1m_ratio: Vec<(String, f64)>,
    /// ns/packet of the full path at 1M, keyed as the FastTrack case is.
    full_1m: Vec<(String, f64)>,
    /// ns/packet of the FastTrack cases.
    fasttrack: Vec<(String, f64)>,
    new_per_sec: Vec<(String, f64)>,
}

impl Summary {
    fn row(&mut self, case: &str, conns: &str, m: &Paired) {
        self.rows.push(Row {
            case: case.into(),
            conns: conns.into(),
            ns: m.ns,
            base_ns: m.base_ns,
            ratio: m.ratio,
        });
    }

    fn print(&self) {
        let f = |x: Option<f64>, prec: usize| x.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        println!();
        println!(
            "== conntrack benchmark summary (1 core, bursts of {BURST}, in-memory FlowRepr, no parsing) =="
        );
        println!(
            "{:<24} | {:>10} | {:>7} | {:>7} | {:>15} | {:>5}",
            "case", "conns", "Mpps", "ns/pkt", "rte_hash ns/key", "ratio"
        );
        println!("{}", "-".repeat(24 + 10 + 7 + 7 + 15 + 5 + 15));
        for r in &self.rows {
            let mpps = Some(1e3 / r.ns);
            println!(
                "{:<24} | {:>10} | {:>7} | {:>7} | {:>15} | {:>5}",
                r.case,
                r.conns,
                f(mpps, 2),
                f(Some(r.ns), 1),
                f(r.base_ns, 1),
                f(r.ratio, 2)
            );
        }
        for n in &self.notes {
            println!("{n}");
        }
        println!(
            "targets of issue 15 (figures, not assertions; docs/benchmarks.md, \"Targets and what bounds them\"):"
        );
        for (case, r) in &self.est_1m_ratio {
            let ok = if *r <= 1.0 { "met" } else { "missed" };
            println!("  {case} at 1M: {r:.2}x rte_hash (target <= 1.0x): {ok}");
        }
        for (case, n) in &self.new_per_sec {
            let ok = if *n >= 10e6 { "met" } else { "missed" };
            println!(
                "  {case}: {:.2}M new connections/s (target >= 10M/s): {ok}",
                n / 1e6
            );
        }
        for (case, ft_ns) in &self.fasttrack {
            if let Some((_, full_ns)) = self.full_1m.iter().find(|(c, _)| c == case) {
                let x = full_ns / ft_ns;
                let ok = if x >= 1.3 { "met" } else { "missed" };
                println!(
                    "  {case}: {x:.2}x the full path's packets/s (FastTrack target >= 1.3x): {ok}"
                );
            }
        }
        for (case, b) in &self.bytes_per_conn_1m {
            let ok = if *b <= 128.0 { "met" } else { "missed" };
            println!("  {case} at 1M: {b:.1} bytes/connection (target <= 128): {ok}");
        }
        println!("== end of summary ==");
    }
}

// ---- cases -----------------------------------------------------------------

/// `fasttrack`: with `set_fasttrack_established(true)` (the `established` policy), so that the set-up marks
/// every connection and the timed packets take the short path.
fn established(c: &mut Criterion, sum: &mut Summary, p: u8, n: u32, label: &str, fasttrack: bool) {
    let pname = match (p == proto::TCP, fasttrack) {
        (true, false) => "tcp",
        (false, false) => "udp",
        (true, true) => "tcp-fasttrack",
        (false, true) => "udp-fasttrack",
    };
    if !wanted(&[
        &format!("established-{pname}/{label}"),
        &format!("rte_hash-{pname}/{label}"),
    ]) {
        return;
    }
    let t0 = StdInstant::now();
    let mut shard = Shard::new(
        TableConfig::new(n),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    if fasttrack {
        shard.set_fasttrack_established(true);
    }
    let mut out = no_verdicts();
    let mut now = 1_000_000_000u64;
    // Set-up, in bursts: TCP handshakes (SYN, SYN-ACK, ACK), or one datagram
    // each way for UDP (a stream).
    let mut buf: Vec<FlowRepr> = Vec::with_capacity(BURST);
    let mut flush = |shard: &mut Shard, buf: &mut Vec<FlowRepr>, now: u64| {
        shard.handle_burst(Instant(now), buf, &mut out);
        buf.clear();
    };
    let steps: &[u8] = if p == proto::TCP { &[0, 1, 2] } else { &[0, 1] };
    for chunk_start in (0..n).step_by(BURST) {
        let chunk_end = (chunk_start + BURST as u32).min(n);
        for &s in steps {
            for c in chunk_start..chunk_end {
                let (t, isn_c, isn_s) = conn(c, p);
                let pkt = match (p, s) {
                    (proto::TCP, 0) => tcp(t, tcp_flags::SYN, isn_c, 0),
                    (proto::TCP, 1) => tcp(
                        t.reversed(),
                        tcp_flags::SYN | tcp_flags::ACK,
                        isn_s,
                        isn_c.wrapping_add(1),
                    ),
                    (proto::TCP, _) => tcp(
                        t,
                        tcp_flags::ACK,
                        isn_c.wrapping_add(1),
                        isn_s.wrapping_add(1),
                    ),
                    (_, 0) => udp(t),
                    _ => udp(t.reversed()),
                };
                buf.push(pkt);
            }
            flush(&mut shard, &mut buf, now);
            now += 1_000;
        }
    }
    let st = shard.stats().clone();
    assert_eq!(
        shard.total_entries(),
        n,
        "{pname} {label}: set-up left {} entries",
        shard.total_entries()
    );
    assert_eq!(
        st.invalid_total(),
        0,
        "{pname} {label}: invalid packets in set-up"
    );
    let bytes_per_conn = shard.memory_bytes() as f64 / f64::from(shard.total_entries());
    let mem_parts = shard.memory_parts();

    // Packets of both directions, in random order over the set.
    let len = (2 * n as usize).clamp(1 << 16, 8 << 20) / BURST * BURST;
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(n);
    let seq: Vec<FlowRepr> = (0..len)
        .map(|_| {
            let r = xorshift(&mut x);
            est_packet((r % u64::from(n)) as u32, (r >> 63) as u32, p)
        })
        .collect();
    let keys: Vec<[u8; 40]> = seq.iter().map(pkt_key).collect();
    let mut feed = Feed {
        shard,
        seq,
        pos: 0,
        now,
        ns_per_pkt: EST_NS_PER_PKT,
        poll: 0,
        out: no_verdicts(),
    };
    // Every packet must find its (established) connection.
    feed.step();
    for v in &feed.out {
        assert!(
            matches!(v, Verdict::Tracked { created: false, .. }),
            "{pname} {label}: {v:?}"
        );
    }
    eprintln!(
        "{pname} {label}: set-up {:.1} s, {bytes_per_conn:.1} bytes/connection",
        t0.elapsed().as_secs_f64()
    );
    // The baseline: both directions' keys of every connection, the same
    // lookup sequence.
    let set: Vec<[u8; 40]> = (0..n)
        .flat_map(|c| [0, 1].map(|d| pkt_key(&est_packet(c, d, p))))
        .collect();
    let mut base = Base::new(&format!("ct-{pname}-{n}"), set.into_iter(), keys);
    assert_eq!(base.step(), BURST, "rte_hash misses");
    let mut a = || feed.step();
    let mut b = || {
        black_box(base.step());
    };
    timed(c, &format!("established-{pname}"), label, &mut a);
    timed(c, &format!("rte_hash-{pname}"), label, &mut b);
    let m = paired(&mut a, Some(&mut b));
    let st = feed.shard.stats();
    assert_eq!(
        st.insert,
        u64::from(n),
        "{pname} {label}: connections created while timed"
    );
    assert_eq!(
        st.invalid_total(),
        0,
        "{pname} {label}: invalid packets while timed"
    );
    // With FastTrack every timed packet took the short path; without, none.
    assert_eq!(
        st.fasttrack_packets.iter().sum::<u64>() > 0,
        fasttrack,
        "{pname} {label}: fasttrack packets {:?}",
        st.fasttrack_packets
    );
    drop(feed);
    drop(base);

    let case = format!("established {pname}");
    sum.row(&case, label, &m);
    if fasttrack {
        sum.fasttrack.push((format!("{pname} {label}"), m.ns));
        return;
    }
    if n == 1_000_000 {
        sum.full_1m
            .push((format!("{pname}-fasttrack {label}"), m.ns));
        sum.bytes_per_conn_1m.push((case.clone(), bytes_per_conn));
        if let Some(r) = m.ratio {
            sum.est_1m_ratio.push((case, r));
        }
    }
    let parts = mem_parts
        .iter()
        .map(|(name, b)| format!("{name} {:.1}", *b as f64 / f64::from(n)))
        .collect::<Vec<_>>()
        .join(", ");
    sum.notes.push(format!(
        "memory: {pname} {label}: {bytes_per_conn:.1} bytes/connection (Shard::memory_bytes / total_entries: {parts})"
    ));
}

fn new_connections(c: &mut Criterion, sum: &mut Summary, max: u32, label: &str) {
    if !wanted(&[&format!("new-tcp-syn/{label}")]) {
        return;
    }
    let t0 = StdInstant::now();
    let settings = Settings {
        tcp_syn_sent_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    let shard = Shard::new(
        TableConfig::new(max),
        settings,
        0,
        dataplane::worker::random_seed(),
    );
    // Fresh tuples: 6M of them last 3 s of simulated time, by when every
    // connection of the previous round has expired (1 s + one 134 ms tick)
    // or was dropped.
    let len = 6 << 20;
    let seq: Vec<FlowRepr> = (0..len as u32)
        .map(|i| {
            let t = tuple(
                v4(i),
                1024 + (mix(u64::from(i)) % 60_000) as u16,
                Addr::from_v4(SERVER),
                80,
                proto::TCP,
            );
            tcp(t, tcp_flags::SYN, mix(u64::from(i)) as u32, 0)
        })
        .collect();
    let mut feed = Feed {
        shard,
        seq,
        pos: 0,
        now: 1_000_000_000,
        ns_per_pkt: NEW_NS_PER_PKT,
        poll: 64,
        out: no_verdicts(),
    };
    // Warm to the steady state: 1.5 s of simulated time.
    for _ in 0..(3_000_000 / BURST) {
        feed.step();
    }
    let before = feed.shard.stats().clone();
    let live_before = feed.shard.total_entries();
    eprintln!(
        "new {label}: set-up {:.1} s, {live_before} live",
        t0.elapsed().as_secs_f64()
    );
    let mut a = || feed.step();
    timed(c, "new-tcp-syn", label, &mut a);
    let m = paired(&mut a, None);
    let st = feed.shard.stats();
    let d = |a: u64, b: u64| a - b;
    let created = d(st.insert, before.insert);
    let expired = d(st.expired, before.expired);
    let early = d(st.early_drop, before.early_drop);
    let dropped = d(st.drop, before.drop);
    let found = d(st.found, before.found);
    let live = feed.shard.total_entries();
    let how = if early > expired {
        "early drop"
    } else {
        "expiry"
    };
    sum.notes.push(format!(
        "new tcp syn {label} (max-entries {max}): steady state by {how}: while timed, {created} created, \
         {expired} expired, {early} early-dropped, {dropped} dropped (table full), {found} found, \
         live {live_before} -> {live}"
    ));
    let case = format!("new tcp syn ({how})");
    sum.row(&case, &format!("~{:.1}M live", f64::from(live) / 1e6), &m);
    sum.new_per_sec.push((case, 1e9 / m.ns));
}

fn ovs_shape(c: &mut Criterion, sum: &mut Summary) {
    const FLOWS: u32 = 4;
    if !wanted(&["ovs-shape/4-udp-flows", "rte_hash-ovs-shape/4-udp-flows"]) {
        return;
    }
    let shard = Shard::new(
        TableConfig::new(1024),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    let flow = |f: u32| {
        udp(tuple(
            Addr::from_v4([10, 1, 1, 1]),
            1000 + f as u16,
            Addr::from_v4([10, 2, 2, 2]),
            2000,
            proto::UDP,
        ))
    };
    let seq: Vec<FlowRepr> = (0..BURST as u32).map(|i| flow(i % FLOWS)).collect();
    let keys: Vec<[u8; 40]> = seq.iter().map(pkt_key).collect();
    let mut feed = Feed {
        shard,
        seq,
        pos: 0,
        now: 1_000_000_000,
        ns_per_pkt: EST_NS_PER_PKT,
        poll: 0,
        out: no_verdicts(),
    };
    feed.step();
    let set: Vec<[u8; 40]> = (0..FLOWS)
        .flat_map(|f| {
            let p = flow(f);
            [pkt_key(&p), pkt_key(&udp(p.tuple.reversed()))]
        })
        .collect();
    let mut base = Base::new("ct-ovs", set.into_iter(), keys);
    assert_eq!(base.step(), BURST, "rte_hash misses");
    let mut a = || feed.step();
    let mut b = || {
        black_box(base.step());
    };
    timed(c, "ovs-shape", "4-udp-flows", &mut a);
    timed(c, "rte_hash-ovs-shape", "4-udp-flows", &mut b);
    let m = paired(&mut a, Some(&mut b));
    assert_eq!(feed.shard.stats().insert, u64::from(FLOWS));
    sum.row("ovs shape: 4 udp flows", "4", &m);
}

/// Free 2 MiB huge pages (from `/proc/meminfo`).
fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // The baseline gets huge pages when the machine has them free
    // (`scripts/bench-conntrack.sh` reserves them as root), as the table
    // does (transparent huge pages, see `ctrack-core/src/hugemem.rs`): the
    // comparison is then page size for page size.
    // rte_hash holds two keys per connection: 2 GiB serve up to 4M
    // connections; beyond, about 200 bytes per key with its buckets.
    let sizes = sizes();
    let max_conns = sizes.iter().map(|s| u64::from(s.0)).max().unwrap_or(0);
    let eal_mb = if max_conns <= 4_000_000 {
        2048
    } else {
        1024 + max_conns * 2 * 200 / (1 << 20)
    };
    let huge = free_hugepages() * 2 >= eal_mb;
    let pages: &[&str] = if huge {
        &["--in-memory"]
    } else {
        &["--no-huge"]
    };
    let baseline_pages = if huge {
        "2 MiB huge pages (--in-memory)"
    } else {
        "4 KiB pages (--no-huge): too few free huge pages for -m"
    };
    let eal_mb = eal_mb.to_string();
    let mut eal_args = pages.to_vec();
    eal_args.extend([
        "-m",
        &eal_mb,
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=error",
    ]);
    let _eal = dpdk::Eal::init(&eal_args).expect("rte_eal_init");
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_millis(1000))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    let t0 = StdInstant::now();
    let mut sum = Summary::default();
    sum.notes.push(format!(
        "rte_hash memory: {baseline_pages}; table: transparent huge pages (madvise)"
    ));
    for p in [proto::TCP, proto::UDP] {
        for (n, label) in &sizes {
            established(&mut c, &mut sum, p, *n, label, false);
        }
    }
    // FastTrack at 1M: the short path beside the full path above.
    for p in [proto::TCP, proto::UDP] {
        established(&mut c, &mut sum, p, 1_000_000, "1M", true);
    }
    new_connections(&mut c, &mut sum, 4_000_000, "max-4M");
    new_connections(&mut c, &mut sum, 1_000_000, "max-1M");
    ovs_shape(&mut c, &mut sum);
    c.final_summary();
    sum.notes
        .push(format!("whole run: {:.0} s", t0.elapsed().as_secs_f64()));
    sum.print();
}
