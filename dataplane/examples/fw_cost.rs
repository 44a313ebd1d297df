//! What a firewall ruleset costs a forwarded packet in the worker, and what
//! FastTrack saves of it: one worker on in-memory ports forwards the same
//! established UDP traffic (1024 connections, both directions, bursts of
//! 32) with a ruleset loaded, `Worker::poll_once` doing everything but the
//! test's own frame copies. `scripts/bench-fw-icount.sh` counts the
//! instructions per packet in `poll_once` with callgrind (deterministic, in
//! cache); without `icount` it prints ns per packet.
//!
//! The rulesets are `scripts/bench-fw-rulesets.sh`'s (`defconf-full.rsc`,
//! `defconf-fasttrack.rsc`: the defconf-like ruleset of
//! `scripts/bench-forward.sh`'s firewall rows), or `none` (no ruleset: the
//! worker's path without a firewall). Port 0 is `ether1` (the LAN list in
//! those scripts, the clients' side), port 1 `ether2`.
//!
//!   cargo run --release -p dataplane --no-default-features --example fw_cost -- RULES.rsc|none [icount N]

use std::sync::Arc;
use std::time::Instant as Wall;

use ctrack_rules::{Names, Ruleset, parse};
use ctrack_traffic::synth::{Mix, Side};
use dataplane::conntrack::{Settings, Shard, TableConfig};
use dataplane::firewall::FirewallUpdate;
use dataplane::io::mem::MemIo;
use dataplane::worker::{Command, Mesh, Worker, random_seed};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rules = args.first().map(String::as_str).unwrap_or("none");
    // `icount N`: N measured rounds, no timing (callgrind counts the whole
    // run: the script takes the difference of two round counts).
    let icount = args.get(1).map(String::as_str) == Some("icount");
    let rounds = match args.get(2) {
        Some(n) if icount => n.parse().expect("icount N"),
        _ if icount => 20,
        _ => 400,
    };
    let mix = Mix {
        tcp: 0,
        udp: 1024,
        icmp: 0,
        exchanges: 1,
        payload: 18,
        keep_open: true,
        ..Mix::default()
    };
    let packets = mix.packets();

    let io = MemIo::pair();
    let (_tx, rx) = crossbeam::channel::bounded::<Command>(1);
    let shard = Shard::new(
        TableConfig::new(4096),
        Settings::default(),
        0,
        random_seed(),
    );
    let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 1]), rx, Arc::default());
    if rules != "none" {
        let text = std::fs::read_to_string(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        let cfg = parse(&text).unwrap_or_else(|e| panic!("{rules}: {e}"));
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Ruleset::compile(&cfg, &ifaces, &mut Names::default())
            .unwrap_or_else(|e| panic!("{rules}: {e}"));
        w.install_firewall(FirewallUpdate {
            ruleset: Some(Arc::new(rs)),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: None,
        });
    }
    // Rounds 0 and 1 create the connections, make them UDP streams and
    // (with the fasttrack rule) fast-track them: not measured.
    let mut sent = 0usize;
    let mut elapsed = 0.0;
    for round in 0..rounds + 2 {
        for p in &packets {
            let link = usize::from(p.side == Side::Reply);
            w.io_mut().links[link].input.push_back(p.frame.clone());
        }
        let start = Wall::now();
        while w.poll_once() > 0 {}
        if round >= 2 {
            elapsed += start.elapsed().as_secs_f64();
            sent += packets.len();
        }
        for t in w.io_mut().tx.iter_mut().flatten() {
            t.output.clear();
        }
    }
    let t = w.totals();
    assert_eq!(
        t.tx_packets as usize,
        sent + 2 * packets.len(),
        "every packet forwarded"
    );
    let ft = w.shard().stats().fasttrack_packets;
    let ft_share = (ft[0] + ft[1]) as f64 / (sent + 2 * packets.len()) as f64;
    println!(
        "{sent} packets timed through poll_once ({rules}; {:.0}% fast-tracked)",
        100.0 * ft_share
    );
    if !icount {
        println!("{:.1} ns/packet", elapsed * 1e9 / sent as f64);
    }
}
