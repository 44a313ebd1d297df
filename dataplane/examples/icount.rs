//! A fixed workload for counting instructions (`scripts/bench-icount.sh`
//! runs it under callgrind): 1024 established connections (UDP streams, or
//! TCP picked up mid-stream), both directions, bursts of 32 through
//! `Shard::handle_burst`, 2000 rounds after a first round that creates them.
//! In cache, so the count is the table's compute per packet, without the
//! memory system and without this shared machine's noise.
//!
//! With `new`, every packet is instead a SYN of a fresh tuple into a table
//! of 1024 that is full after the first round, so each one early-drops a
//! connection (`new tcp syn (early drop)` of the conntrack benchmark, in
//! cache): the two-phase creation path's compute per new connection.
//!
//!   cargo run --release -p dataplane --no-default-features --example icount -- udp|tcp full|fasttrack|new
//!
//! With `new-expiry`, every packet is a SYN of a fresh tuple into a table
//! that never fills: SYNs come 1 ms apart and time out after 1 s, so about
//! 1100 connections are live and each SYN's creation is matched by one
//! expiry through `Shard::poll_expired` (`new tcp syn (expiry)` of the
//! conntrack benchmark, in cache; the script counts `poll_expired` too).
//!
//! `ICOUNT_CONNS=N` sets the `new` case's table size (default 1024; with
//! 1048576 under `valgrind --tool=callgrind --cache-sim=yes` it counts the
//! misses of a table out of cache: docs/benchmarks.md). For the UDP
//! established cases it sets the connection count too (full table, random
//! order over both directions, as the conntrack benchmark; `ICOUNT_TIMED`
//! packets, default 4Mi, after the set-up), for cache misses per packet at
//! 1M: the difference of a run with `ICOUNT_TIMED=0` and one without,
//! divided by the timed packets.

use ctrack_traffic::synth::Mix;
use dataplane::conntrack::{Instant, Settings, Shard, TableConfig, UntrackedReason, Verdict};
use dataplane::flow::{Addr, Family, FlowRepr, L4, TcpInfo, Tuple, proto, tcp_flags};

const CONNS: u32 = 1024;
const ROUNDS: u64 = 2000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tcp = args.first().map(String::as_str) == Some("tcp");
    let fasttrack = args.get(1).map(String::as_str) == Some("fasttrack");
    if args.get(1).map(String::as_str) == Some("new") {
        return new_connections();
    }
    if args.get(1).map(String::as_str) == Some("new-expiry") {
        return new_connections_expiring();
    }
    if let Some(n) = std::env::var("ICOUNT_CONNS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        assert!(!tcp, "ICOUNT_CONNS: the established case is UDP only");
        return established_udp(n, fasttrack);
    }
    let mix = Mix {
        tcp: if tcp { CONNS } else { 0 },
        udp: if tcp { 0 } else { CONNS },
        icmp: 0,
        exchanges: 1,
        payload: 6,
        keep_open: true,
        midstream: tcp,
    };
    let pkts: Vec<_> = mix
        .packets()
        .iter()
        .map(|p| dataplane::packet::parse_ethernet(&p.frame).expect("synthetic frame parses"))
        .collect();
    // max-entries = the connections: a full table, buckets ~90% loaded, as
    // in the conntrack benchmark.
    let mut shard = Shard::new(
        TableConfig::new(CONNS),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    if fasttrack {
        shard.set_fasttrack_established(true);
    }
    let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let mut now = 1_000_000_000;
    // Round 0 creates the connections (and, with FastTrack, marks them).
    for round in 0..=ROUNDS {
        for burst in pkts.chunks(32) {
            now += 320;
            shard.handle_burst(Instant(now), burst, &mut out[..burst.len()]);
        }
        if round == 0 {
            assert_eq!(shard.total_entries(), CONNS);
        }
    }
    let s = shard.stats();
    assert_eq!(s.insert, u64::from(CONNS));
    println!(
        "{} packets through handle_burst ({} in the timed rounds), {} fast-tracked",
        (ROUNDS + 1) * pkts.len() as u64,
        ROUNDS * pkts.len() as u64,
        s.fasttrack_packets.iter().sum::<u64>()
    );
}

/// SYNs of fresh tuples into a full table: every packet creates a connection
/// and early-drops one (none is assured).
fn new_connections() {
    // `ICOUNT_CONNS` (default 1024) sets max-entries: large (e.g. 1048576),
    // with `valgrind --tool=callgrind --cache-sim=yes`, it gives the cache
    // misses of a table far out of cache.
    let conns: u32 = std::env::var("ICOUNT_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONNS);
    let syns: u32 = (64 * 1024).max(conns * 2);
    let pkts: Vec<FlowRepr> = (0..syns).map(fresh_syn).collect();
    let mut shard = Shard::new(
        TableConfig::new(conns),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let mut now = 1_000_000_000;
    for burst in pkts.chunks(32) {
        now += 320;
        shard.handle_burst(Instant(now), burst, &mut out[..burst.len()]);
    }
    let s = shard.stats();
    assert_eq!(s.insert, u64::from(syns));
    assert_eq!(s.early_drop, u64::from(syns - conns));
    println!("{syns} packets through handle_burst ({syns} in the timed rounds), 0 fast-tracked");
}

/// SYNs of fresh tuples, 1 ms apart, into a table that never fills: each
/// connection expires 1 s (plus up to one wheel tick) after its SYN, through
/// `poll_expired` after every burst, as the conntrack benchmark's expiry case.
fn new_connections_expiring() {
    const SYNS: u32 = 64 * 1024;
    let settings = Settings {
        tcp_syn_sent_timeout: dataplane::conntrack::Duration::from_secs(1),
        ..Settings::default()
    };
    let mut shard = Shard::new(
        TableConfig::new(4096),
        settings,
        0,
        dataplane::worker::random_seed(),
    );
    let pkts: Vec<FlowRepr> = (0..SYNS).map(fresh_syn).collect();
    let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let mut now = 1_000_000_000;
    for burst in pkts.chunks(32) {
        now += 32 * 1_000_000;
        shard.handle_burst(Instant(now), burst, &mut out[..burst.len()]);
        shard.poll_expired(Instant(now), 64);
    }
    let s = shard.stats();
    assert_eq!((s.insert, s.early_drop, s.drop), (u64::from(SYNS), 0, 0));
    assert!(
        s.expired > u64::from(SYNS) * 9 / 10,
        "{} expired",
        s.expired
    );
    println!("{SYNS} packets through handle_burst ({SYNS} in the timed rounds), 0 fast-tracked");
}

/// The SYN of fresh tuple `i`.
fn fresh_syn(i: u32) -> FlowRepr {
    FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4([10, 1, (i >> 16) as u8, (i >> 8) as u8]),
            dst: Addr::from_v4([10, 2, 0, 1]),
            src_port: 1024 + (i & 0xff) as u16,
            dst_port: 80,
            proto: proto::TCP,
            family: Family::V4,
        },
        ip_len: 40,
        l4: L4::Tcp(TcpInfo {
            seq: i,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 65535,
            wscale: None,
            sack_perm: false,
            payload_len: 0,
        }),
    }
}

/// `n` established UDP streams in a full table, then about 4M packets of
/// both directions in random order over the set (the conntrack benchmark's
/// `established udp`), for callgrind's cache simulation out of cache.
fn established_udp(n: u32, fasttrack: bool) {
    let conn = |c: u32| FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4([10, (c >> 16) as u8, (c >> 8) as u8, c as u8]),
            dst: Addr::from_v4([192, 168, 1, 1]),
            src_port: 1024 + (c % 60_000) as u16,
            dst_port: 443,
            proto: proto::UDP,
            family: Family::V4,
        },
        ip_len: 128,
        l4: L4::Udp,
    };
    let mut shard = Shard::new(
        TableConfig::new(n),
        Settings::default(),
        0,
        dataplane::worker::random_seed(),
    );
    if fasttrack {
        shard.set_fasttrack_established(true);
    }
    let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let mut now = 1_000_000_000;
    let mut setup = 0u64;
    for start in (0..n).step_by(32) {
        let end = (start + 32).min(n);
        for dir in 0..2 {
            let burst: Vec<FlowRepr> = (start..end)
                .map(|c| {
                    let p = conn(c);
                    if dir == 0 {
                        p
                    } else {
                        FlowRepr {
                            tuple: p.tuple.reversed(),
                            ..p
                        }
                    }
                })
                .collect();
            shard.handle_burst(Instant(now), &burst, &mut out[..burst.len()]);
            setup += burst.len() as u64;
            now += 1_000;
        }
    }
    assert_eq!(shard.total_entries(), n);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    // `ICOUNT_TIMED` (default 4Mi) packets after the set-up; a run with 0
    // counts the set-up alone, to subtract.
    let timed: u32 = std::env::var("ICOUNT_TIMED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 << 20);
    let seq: Vec<FlowRepr> = (0..timed)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = conn((x % u64::from(n)) as u32);
            if x >> 63 == 0 {
                p
            } else {
                FlowRepr {
                    tuple: p.tuple.reversed(),
                    ..p
                }
            }
        })
        .collect();
    for burst in seq.chunks(32) {
        now += 320;
        shard.handle_burst(Instant(now), burst, &mut out[..burst.len()]);
    }
    assert_eq!(shard.stats().insert, u64::from(n));
    // The set-up packets go through handle_burst too: callgrind's totals
    // cover both, so the log gives both counts.
    println!(
        "{} packets through handle_burst ({} in the timed rounds, {setup} in the set-up), {} fast-tracked",
        setup + seq.len() as u64,
        seq.len(),
        shard.stats().fasttrack_packets.iter().sum::<u64>()
    );
}
