//! What router mode adds per packet, roughly: one worker on in-memory
//! ports forwards the same established UDP traffic (1024 connections, both
//! directions, bursts of 32) in bridge mode and in router mode (classify,
//! FIB lookup, TTL decrement, neighbour lookup, Ethernet rewrite), and
//! prints ns per packet for each. In-memory I/O moves heap frames, so the
//! absolute figures are the worker's and the I/O's; the difference is
//! router mode's.
//!
//! The FIB is the sans-io reference (`Fib::new`; `ctrack run` uses
//! `rte_lpm`), the neighbours (about 1200 hosts) static.
//!
//!   cargo run --release -p dataplane --no-default-features --example router_cost

use std::sync::Arc;
use std::time::Instant as Wall;

use ctrack_traffic::synth::{Mix, Side};
use dataplane::conntrack::{Settings, Shard, TableConfig};
use dataplane::flow::{Addr, Family};
use dataplane::io::mem::MemIo;
use dataplane::router::route::{IfAddr, Prefix, Table};
use dataplane::router::{Fib, NeighBus, PortAddrs, RouterConfig};
use dataplane::worker::{Command, Mesh, Worker, random_seed};

const ROUNDS: usize = 200;

fn main() {
    let mix = Mix {
        tcp: 0,
        udp: 1024,
        icmp: 0,
        exchanges: 1,
        payload: 64,
        keep_open: true,
        ..Mix::default()
    };
    let packets = mix.packets();
    let bridge = run(&packets, None);
    let router = run(&packets, Some(router_config(&packets)));
    println!(
        "bridge: {bridge:.1} ns/packet, router: {router:.1} ns/packet, router mode adds {:.1} ns",
        router - bridge
    );
}

/// The mix's clients (10.1.0.0/16) on port 0 and servers (10.2.0.0/24) on
/// port 1 as connected networks, every host a static neighbour with the
/// MAC it sends from.
fn router_config(packets: &[ctrack_traffic::synth::SynthPacket]) -> Arc<RouterConfig> {
    let mut statics: Vec<(u16, Addr, [u8; 6])> = Vec::new();
    for p in packets {
        let port = u16::from(p.side == Side::Reply);
        let f = &p.frame;
        let src = Addr::from_v4([f[26], f[27], f[28], f[29]]);
        if !statics.iter().any(|s| s.1 == src) {
            statics.push((port, src, f[6..12].try_into().unwrap()));
        }
    }
    let own = [
        Addr::from_v4([10, 1, 255, 254]),
        Addr::from_v4([10, 2, 0, 254]),
    ];
    let table = Table {
        addresses: vec![
            IfAddr {
                iface: 0,
                addr: own[0],
                prefix: Prefix::new(Family::V4, own[0], 16).unwrap(),
            },
            IfAddr {
                iface: 1,
                addr: own[1],
                prefix: Prefix::new(Family::V4, own[1], 24).unwrap(),
            },
        ],
        routes: Vec::new(),
    };
    // Our MACs are the ones the frames are sent to.
    let mac_of = |side: Side| -> [u8; 6] {
        let p = packets.iter().find(|p| p.side == side).unwrap();
        p.frame[..6].try_into().unwrap()
    };
    Arc::new(RouterConfig {
        ports: vec![
            PortAddrs {
                mac: mac_of(Side::Orig),
                addrs: vec![own[0]],
                mtu: 1500,
            },
            PortAddrs {
                mac: mac_of(Side::Reply),
                addrs: vec![own[1]],
                mtu: 1500,
            },
        ],
        fib: Fib::new(table.compile()),
        statics,
        reachable_ns: 0,
    })
}

/// ns per packet forwarded by one worker over `ROUNDS` rounds of `packets`.
fn run(packets: &[ctrack_traffic::synth::SynthPacket], router: Option<Arc<RouterConfig>>) -> f64 {
    let io = MemIo::pair();
    let (_tx, rx) = crossbeam::channel::bounded::<Command>(1);
    let shard = Shard::new(
        TableConfig::new(4096),
        Settings::default(),
        0,
        random_seed(),
    );
    let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 1]), rx, Arc::default());
    if let Some(cfg) = router {
        w.install_router(cfg, NeighBus::new(1));
    }
    let mut sent = 0usize;
    let mut elapsed = 0.0;
    for round in 0..=ROUNDS {
        for p in packets {
            let link = usize::from(p.side == Side::Reply);
            w.io_mut().links[link].input.push_back(p.frame.clone());
        }
        let start = Wall::now();
        while w.poll_once() > 0 {}
        // Round 0 creates the connections: not measured.
        if round > 0 {
            elapsed += start.elapsed().as_secs_f64();
            sent += packets.len();
        }
        for t in w.io_mut().tx.iter_mut().flatten() {
            t.output.clear();
        }
    }
    let out = w.totals().tx_packets as usize;
    assert_eq!(out, sent + packets.len(), "every packet forwarded");
    elapsed * 1e9 / sent as f64
}
