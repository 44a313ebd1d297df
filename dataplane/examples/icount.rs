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
//! misses of a table out of cache: docs/benchmarks.md)

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
