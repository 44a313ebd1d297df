//! How many connection events per second the control side's flow export
//! handles on one core: a shard makes `N` UDP connections (each with a reply)
//! and expires them, with events on; the events go through a ring, the hub,
//! the exporter's flow cache and the NetFlow v9 / IPFIX encoder into a UDP
//! socket on loopback (nobody reads it: the kernel drops what does not fit
//! its buffer; send errors are counted, not fatal).
//! Prints events per second for each stage. docs/operations.md quotes it.
//!
//!   cargo run --release -p control --example export_rate [N]

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Instant as Clock;

use control::events::EventHub;
use control::flow_export::{FlowCache, TrafficFlow};
use ctrack_export::{Exporter, ExporterConfig, Version};
use dataplane::conntrack::key::HashSeed;
use dataplane::conntrack::{ConnEvent, Instant, Settings, Shard, TableConfig};
use dataplane::events::EventRing;
use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};

fn udp(i: u32, reply: bool) -> FlowRepr {
    let a = Addr::from_v4([10, 1, (i >> 8) as u8, i as u8]);
    let b = Addr::from_v4([10, 2, 0, 1]);
    let p = 1024 + (i >> 16) as u16;
    let (src, dst, src_port, dst_port) = if reply { (b, a, 53, p) } else { (a, b, p, 53) };
    FlowRepr {
        tuple: Tuple {
            src,
            dst,
            src_port,
            dst_port,
            proto: proto::UDP,
            family: Family::V4,
        },
        ip_len: 100,
        l4: L4::Udp,
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut s = Shard::new(
        TableConfig::new(n),
        Settings::default(),
        0,
        HashSeed::from_u64(7),
    );
    s.set_events(3 * n as usize);
    for i in 0..n {
        s.handle_packet(Instant::from_secs(1), &udp(i, false));
        s.handle_packet(Instant::from_secs(1), &udp(i, true));
    }
    while s.poll_expired(Instant::from_secs(1000), 1 << 20) > 0 {}
    let events: Vec<ConnEvent> = s.drain_events().collect();
    let total = events.len();

    let ring = Arc::new(EventRing::new(total));
    let hub = EventHub::new(vec![ring.clone()]);
    let sub = hub.subscribe("bench", Box::new(|_| true), total);
    let t = Clock::now();
    for ev in &events {
        ring.push(*ev);
    }
    while hub.pump() > 0 {}
    let hub_s = t.elapsed().as_secs_f64();

    let mut cache = FlowCache::new(TrafficFlow {
        cache_entries: n,
        ..TrafficFlow::default()
    });
    let mut records = Vec::new();
    let t = Clock::now();
    let base = 1_764_500_000_000_000_000u64;
    for ev in sub.rx.try_iter() {
        cache.on_event(&ev, base + ev.time.nanos(), &mut records);
    }
    let cache_s = t.elapsed().as_secs_f64();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(sink.local_addr().unwrap()).unwrap();
    for v in [Version::NetflowV9, Version::Ipfix] {
        let mut x = Exporter::new(ExporterConfig::new(v), base / 1_000_000).unwrap();
        let (mut dgrams, mut errors) = (0u64, 0u64);
        let t = Clock::now();
        for chunk in records.chunks(256) {
            x.export(base / 1_000_000, chunk, |d| {
                dgrams += 1;
                errors += u64::from(sock.send(d).is_err());
            });
        }
        let enc_s = t.elapsed().as_secs_f64();
        println!(
            "{}: {} records in {dgrams} datagrams ({errors} send errors): {:.0} records/s encoded and sent",
            v.name(),
            records.len(),
            records.len() as f64 / enc_s
        );
    }
    println!(
        "{total} events ({n} connections: new, update, destroy): hub {:.0} events/s, flow cache {:.0} events/s",
        total as f64 / hub_s,
        total as f64 / cache_s
    );
}
