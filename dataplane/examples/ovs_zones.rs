//! The shape of Open vSwitch's `ovstest test-conntrack benchmark-zones
//! N_CONNS N_ZONES ITERATIONS` for ctrack (issue 15, "side by side with
//! OVS"): `N_CONNS` one-way UDP connections with OVS's tuples (10.1.1.1 ->
//! 10.1.1.2, source port `i >> 16`, destination port `i & 0xffff`, 0 read
//! as 65535), each iteration committing all of them into an empty table
//! (OVS: after flushing the zone; here: a new `Shard`, whose set-up is not
//! timed) and then looking each one up again (OVS: `ct` without commit;
//! here: the packet finds its connection). Packets are prebuilt `FlowRepr`
//! values (OVS extracts the key from a prebuilt packet: it parses, ctrack
//! does not here), in the order OVS sends them, in bursts of `BURST`
//! (OVS's benchmark-zones sends batches of one).
//!
//!   cargo run --release -p dataplane --no-default-features --example ovs_zones -- [N_CONNS] [ITERATIONS] [BURST]
//!
//! Defaults 1000000, 3, 32. Prints the minimum over the iterations (OVS's
//! table also gives Min), as `ovs-zones: conns=N burst=B insert_ns=...
//! lookup_ns=...` (ns per connection), which `scripts/bench-conntrack.sh`
//! reads.

use std::time::Instant as Wall;

use dataplane::conntrack::{Instant, Settings, Shard, TableConfig, UntrackedReason, Verdict};
use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000) as u32;
    let iterations = args.get(1).copied().unwrap_or(3).max(1);
    let burst = (args.get(2).copied().unwrap_or(32) as usize).clamp(1, 32);
    let port = |p: u32| if p == 0 { u16::MAX } else { p as u16 };
    let pkts: Vec<FlowRepr> = (0..n)
        .map(|i| FlowRepr {
            tuple: Tuple {
                src: Addr::from_v4([10, 1, 1, 1]),
                dst: Addr::from_v4([10, 1, 1, 2]),
                src_port: port(i >> 16),
                dst_port: port(i & 0xffff),
                proto: proto::UDP,
                family: Family::V4,
            },
            ip_len: 28,
            l4: L4::Udp,
        })
        .collect();
    // Port 0 reads as 65535, so `i` with low half 0 and low half 65535 (same
    // high half) are one tuple, in OVS as here: 999 985 connections of 1M.
    let distinct = pkts
        .iter()
        .map(|p| (p.tuple.src_port, p.tuple.dst_port))
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let (mut best_insert, mut best_lookup) = (f64::MAX, f64::MAX);
    for _ in 0..iterations {
        let mut shard = Shard::new(
            TableConfig::new(n),
            Settings::default(),
            0,
            dataplane::worker::random_seed(),
        );
        let now = Instant(1_000_000_000);
        let t = Wall::now();
        for b in pkts.chunks(burst) {
            shard.handle_burst(now, b, &mut out[..b.len()]);
        }
        let insert = t.elapsed().as_nanos() as f64 / f64::from(n);
        let created = shard.stats().insert;
        let t = Wall::now();
        for b in pkts.chunks(burst) {
            shard.handle_burst(now, b, &mut out[..b.len()]);
            std::hint::black_box(&out);
        }
        let lookup = t.elapsed().as_nanos() as f64 / f64::from(n);
        let s = shard.stats();
        assert_eq!(s.insert, created, "the lookups created connections");
        assert_eq!(u64::from(shard.total_entries()), created);
        assert_eq!(created, distinct, "connections created");
        best_insert = best_insert.min(insert);
        best_lookup = best_lookup.min(lookup);
    }
    println!(
        "ovs-zones: conns={n} burst={burst} insert_ns={best_insert:.1} lookup_ns={best_lookup:.1}"
    );
}
