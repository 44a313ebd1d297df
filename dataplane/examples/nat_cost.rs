//! What source NAT costs a worker per packet, as a fixed workload for
//! callgrind (instructions are deterministic; this shared machine's clock is
//! not): one worker on in-memory ports in bridge mode, the srcnat rule
//! `src-nat to-addresses=198.51.100.1` (`nat`) or the same rule with
//! `action=accept` (`exempt`, nothing translated).
//!
//! - `established`: 1024 UDP connections, both directions, bursts of 32;
//!   the replies are the translated originals mirrored (so they come back
//!   to the translated address, as a server's would). Round 0 creates the
//!   connections; 200 rounds follow.
//! - `new`: 65 536 first packets of fresh UDP tuples (to 16 servers, so that
//!   the one translated address has ports for all), one direction: the rule
//!   walk, the port choice and the commit of a new connection.
//!
//!
//! A third argument `nofilter` leaves the filter rule out (the NAT rule
//! alone, as `scripts/bench-forward.sh`'s NAT rows run).
//!
//! ```text
//! cargo build --release -p dataplane --no-default-features --example nat_cost
//! valgrind --tool=callgrind --toggle-collect='nat_cost::poll' \
//!     target/release/examples/nat_cost nat|exempt established|new [nofilter]
//! ```
//!
//! It prints the packets that went through `poll`; `Collected` over
//! that is the instructions per packet (`scripts/bench-icount.sh`).

use std::sync::Arc;

use ctrack_rules::{Names, Ruleset, parse};
use ctrack_traffic::synth::{Mix, Side, udp_frame};
use dataplane::conntrack::{Settings, Shard, TableConfig};
use dataplane::firewall::FirewallUpdate;
use dataplane::io::mem::MemIo;
use dataplane::nat::Addresses;
use dataplane::worker::{Command, Mesh, Worker, random_seed};

const ROUNDS: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let action = match args.first().map(String::as_str) {
        Some("exempt") => "accept",
        _ => "src-nat to-addresses=198.51.100.1",
    };
    // `nofilter` (third argument): the NAT rule alone, as the NAT rows of
    // `scripts/bench-forward.sh` run (packets of existing connections then
    // pass no rule at all).
    let filter = if args.get(2).map(String::as_str) == Some("nofilter") {
        ""
    } else {
        "/ip firewall filter\nadd chain=forward action=accept\n"
    };
    let script = format!(
        "/ip firewall nat\nadd chain=srcnat action={action} out-interface=ether2\n{filter}"
    );
    let mut w = worker(&script);
    let packets = if args.get(1).map(String::as_str) == Some("new") {
        new_connections(&mut w)
    } else {
        established(&mut w)
    };
    println!("{packets} packets through poll");
}

/// One worker between ports 0 (LAN, ether1) and 1 (WAN, ether2).
fn worker(script: &str) -> Worker<MemIo> {
    let cfg = parse(script).expect("script parses");
    let ifaces = cfg.interface_names(&["ether1", "ether2"]);
    let mut names = Names::default();
    let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut names).expect("rules compile"));
    let addrs = Arc::new(Addresses::from_config(&cfg, &ifaces).expect("addresses"));
    let (_tx, rx) = crossbeam::channel::bounded::<Command>(1);
    let shard = Shard::new(
        TableConfig::new(1 << 17),
        Settings::default(),
        0,
        random_seed(),
    );
    let mut w = Worker::new(
        0,
        MemIo::pair(),
        shard,
        Mesh::new(1, vec![0, 0]),
        rx,
        Arc::default(),
    );
    w.install_firewall(FirewallUpdate {
        ruleset: Some(rs),
        generation: 1,
        auto_tracking: true,
        reply: None,
        lists_out: None,
        addresses: Some(addrs),
        conncount: None,
    });
    w
}

/// Sends `frames` in on `port`, polls until idle, and returns what left on
/// port `out`.
fn send(w: &mut Worker<MemIo>, port: usize, frames: &[Vec<u8>], out: u16) -> Vec<Vec<u8>> {
    w.io_mut().links[port].input.extend(frames.iter().cloned());
    poll(w);
    let sent = w.io_mut().output(out).to_vec();
    for t in w.io_mut().tx.iter_mut().flatten() {
        t.output.clear();
    }
    sent
}

/// Polls until idle: what callgrind counts (`--toggle-collect`).
#[inline(never)]
fn poll(w: &mut Worker<MemIo>) {
    while w.poll_once() > 0 {}
}

/// The frame coming back: Ethernet and IPv4 addresses and UDP ports
/// swapped (the checksums stay valid: their sums do not change).
fn mirror(f: &[u8]) -> Vec<u8> {
    let mut m = f.to_vec();
    m[..6].copy_from_slice(&f[6..12]);
    m[6..12].copy_from_slice(&f[..6]);
    m[26..30].copy_from_slice(&f[30..34]);
    m[30..34].copy_from_slice(&f[26..30]);
    m[34..36].copy_from_slice(&f[36..38]);
    m[36..38].copy_from_slice(&f[34..36]);
    m
}

fn established(w: &mut Worker<MemIo>) -> usize {
    let mix = Mix {
        tcp: 0,
        udp: 1024,
        icmp: 0,
        exchanges: 1,
        payload: 64,
        keep_open: true,
        ..Mix::default()
    };
    let orig: Vec<Vec<u8>> = mix
        .packets()
        .into_iter()
        .filter(|p| p.side == Side::Orig)
        .map(|p| p.frame)
        .collect();
    // Round 0: the connections, and what the server side sees of them.
    let translated = send(w, 0, &orig, 1);
    assert_eq!(translated.len(), orig.len(), "every original forwarded");
    let replies: Vec<Vec<u8>> = translated.iter().map(|f| mirror(f)).collect();
    assert_eq!(
        send(w, 1, &replies, 0).len(),
        replies.len(),
        "every reply forwarded"
    );
    for _ in 0..ROUNDS {
        assert_eq!(send(w, 0, &orig, 1).len(), orig.len());
        assert_eq!(send(w, 1, &replies, 0).len(), replies.len());
    }
    (ROUNDS + 1) * 2 * orig.len()
}

fn new_connections(w: &mut Worker<MemIo>) -> usize {
    const N: u32 = 65_536;
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            udp_frame(
                [10, 1, (i >> 8) as u8, i as u8],
                [203, 0, 113, 1 + (i % 16) as u8],
                1024 + (i % 32) as u16,
                53,
                32,
                true,
            )
        })
        .collect();
    let mut forwarded = 0;
    for chunk in frames.chunks(1024) {
        forwarded += send(w, 0, chunk, 1).len();
    }
    assert_eq!(forwarded, frames.len(), "every first packet forwarded");
    frames.len()
}
