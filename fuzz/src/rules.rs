//! The `rules_script` target: RouterOS script parsing and rule compilation
//! (`ctrack-rules`) on arbitrary input (issue 10, "Tests").
//!
//! Input: a script, optionally followed by a 0 byte and packet bytes.
//! Checked for every input:
//!
//! - strict and lenient parsing never panic;
//! - whatever parses exports, and the export parses back to the same
//!   configuration (strict and lenient results alike);
//! - whatever compiles evaluates packets through every hook without a
//!   panic, and the engine with its classifier gives the verdicts of the
//!   linear walk (`Prefilter::Linear`) for the same packets in the same
//!   order. Packets: 24 bytes each after the 0 byte (fields below), or a
//!   few fixed ones when there are none.

use ctrack_rules::{
    ConnState, Hook, Names, NoEnv, Options, PacketCtx, Prefilter, Ruleset, WorkerState, export,
    parse, parse_with,
};
use dataplane::conntrack::Instant;
use dataplane::flow::{Addr, Family};

const IFACES: [&str; 4] = ["ether1", "ether2", "ether3", "ether4"];
/// Packets evaluated per input at most (bounds the time per input).
const MAX_PACKETS: usize = 32;
const STATES: [ConnState; 5] = [
    ConnState::Established,
    ConnState::Invalid,
    ConnState::New,
    ConnState::Related,
    ConnState::Untracked,
];

/// Returns whether a ruleset compiled and was evaluated.
pub fn run(data: &[u8]) -> bool {
    let (script, pkts) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(script);
    let strict = parse(&text);
    let lenient = parse_with(&text, Options { lenient: true });
    let mut evaluated = false;
    if let Ok(cfg) = &strict {
        round_trip(cfg);
        evaluated |= evaluate(cfg, pkts);
    }
    if let Ok(p) = &lenient {
        round_trip(&p.config);
        if strict.is_err() {
            evaluated |= evaluate(&p.config, pkts);
        }
    }
    evaluated
}

fn round_trip(cfg: &ctrack_rules::Config) {
    let out = export(cfg);
    match parse(&out) {
        Ok(back) => assert_eq!(&back, cfg, "export does not parse back the same:\n{out}"),
        Err(e) => panic!("export does not parse: {e}\n{out}"),
    }
}

/// Packet `k`: 24 bytes, or a fixed packet when the input has none.
fn packet(b: &[u8], k: usize) -> PacketCtx<'static> {
    let at = |i: usize| b.get(i).copied().unwrap_or((k * 37 + i * 11) as u8);
    let v6 = at(0) & 1 == 1;
    let addr = |o: usize| {
        if v6 {
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[1] = 0x01;
            a[12..].copy_from_slice(&[at(o), at(o + 1), at(o + 2), at(o + 3)]);
            Addr::from_v6(a)
        } else {
            Addr::from_v4([at(o), at(o + 1), at(o + 2), at(o + 3)])
        }
    };
    let mut p = PacketCtx {
        family: if v6 { Family::V6 } else { Family::V4 },
        src: addr(1),
        dst: addr(5),
        proto: [6, 17, 1, 58, 47, at(9)][usize::from(at(9) % 6)],
        src_port: u16::from_be_bytes([at(10), at(11)]),
        dst_port: u16::from_be_bytes([at(12), at(13)]),
        tcp_flags: at(14),
        icmp_type: at(15),
        icmp_code: at(16),
        ttl: at(17),
        dscp: at(18) & 63,
        size: u32::from(u16::from_be_bytes([at(19), at(20)])),
        in_iface: u16::from(at(21) % 5),
        out_iface: u16::from(at(22) % 5),
        ..PacketCtx::default()
    };
    // Interface 4: none (`NO_IFACE`).
    if p.in_iface == 4 {
        p.in_iface = ctrack_rules::engine::NO_IFACE;
    }
    if p.out_iface == 4 {
        p.out_iface = ctrack_rules::engine::NO_IFACE;
    }
    p.conn.state = STATES[usize::from(at(23) % 5)];
    p.conn.packets = u64::from(at(23) >> 3);
    p.conn.bytes = u64::from(at(20)) * 100;
    p
}

fn evaluate(cfg: &ctrack_rules::Config, bytes: &[u8]) -> bool {
    let ifaces = cfg.interface_names(&IFACES);
    let mut names = Names::default();
    let Ok(tree) = Ruleset::compile_with(cfg, &ifaces, &mut names, Prefilter::default()) else {
        return false;
    };
    let mut names = Names::default();
    let linear = Ruleset::compile_with(cfg, &ifaces, &mut names, Prefilter::Linear)
        .expect("compiles with a classifier but not without");
    let n = if bytes.is_empty() {
        8
    } else {
        (bytes.len() / 24).min(MAX_PACKETS)
    };
    let mut ws_tree = WorkerState::new(&tree, Instant::ZERO, 64, 64);
    let mut ws_linear = WorkerState::new(&linear, Instant::ZERO, 64, 64);
    for k in 0..n {
        let p = packet(bytes.get(k * 24..).unwrap_or(&[]), k);
        let now = Instant(k as u64 * 1_000_000);
        for hook in Hook::ALL {
            let a = tree.evaluate(hook, now, &p, &mut ws_tree, &NoEnv);
            let b = linear.evaluate(hook, now, &p, &mut ws_linear, &NoEnv);
            assert_eq!(a, b, "classifier and linear walk differ: {hook:?} {p:?}");
        }
    }
    assert_eq!(ws_tree.counters(), ws_linear.counters());
    true
}
