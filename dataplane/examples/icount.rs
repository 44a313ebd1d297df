//! A fixed workload for counting instructions (`scripts/bench-icount.sh`
//! runs it under callgrind): 1024 established connections (UDP streams, or
//! TCP picked up mid-stream), both directions, bursts of 32 through
//! `Shard::handle_burst`, 2000 rounds after a first round that creates them.
//! In cache, so the count is the table's compute per packet, without the
//! memory system and without this shared machine's noise.
//!
//!   cargo run --release -p dataplane --no-default-features --example icount -- udp|tcp full|fasttrack

use ctrack_traffic::synth::Mix;
use dataplane::conntrack::{Instant, Settings, Shard, TableConfig, UntrackedReason, Verdict};

const CONNS: u32 = 1024;
const ROUNDS: u64 = 2000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tcp = args.first().map(String::as_str) == Some("tcp");
    let fasttrack = args.get(1).map(String::as_str) == Some("fasttrack");
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
