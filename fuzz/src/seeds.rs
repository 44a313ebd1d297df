//! The seed corpus: whole connections from `ctrack_traffic::synth`, plus a few
//! hand-built frames synth does not make (IPv6, VLAN tags, GRE, an ICMP
//! error quoting a tracked connection), encoded in the `parse_track` input
//! format ([`crate::track`]). `examples/gen_seeds.rs` writes them under
//! `corpus/`; `tests/seeds.rs` replays them.

use dataplane::flow::{proto, tcp_flags::*};
use ctrack_traffic::synth::{Mix, icmp_echo_frame, ipv4_frame, tcp_frame, udp_frame};

const C: [u8; 4] = [10, 1, 0, 1];
const S: [u8; 4] = [10, 2, 0, 1];
const ROUTER: [u8; 4] = [10, 9, 0, 1];

/// Builds one `parse_track` input.
pub struct Input(Vec<u8>);

/// Step selectors for the op byte (see `track::step_nanos`).
pub mod step {
    pub const NONE: u8 = 0;
    pub const MS10: u8 = 1;
    pub const MS100: u8 = 10;
    pub const S1: u8 = 16;
    pub const S6: u8 = 21;
    pub const S12: u8 = 27;
    pub const MIN4: u8 = 39;
    pub const MIN20: u8 = 51;
    pub const DAY: u8 = 61;
}

impl Input {
    /// `cfg` and `seed` as in the format's first two bytes.
    pub fn new(cfg: u8, seed: u8) -> Input {
        Input(vec![cfg, seed])
    }

    fn record(&mut self, kind: u8, step: u8, bytes: &[u8]) -> &mut Self {
        assert!(bytes.len() <= 255, "seed packet too long: {}", bytes.len());
        self.0.push(step << 2 | kind);
        self.0.push(bytes.len() as u8);
        self.0.extend_from_slice(bytes);
        self
    }

    /// An Ethernet frame through `handle_packet`.
    pub fn eth(&mut self, step: u8, frame: &[u8]) -> &mut Self {
        self.record(0, step, frame)
    }

    /// An Ethernet frame queued for `handle_burst`.
    pub fn burst(&mut self, step: u8, frame: &[u8]) -> &mut Self {
        self.record(1, step, frame)
    }

    /// The IP packet of an Ethernet frame, through `parse_ip`.
    pub fn raw(&mut self, step: u8, frame: &[u8]) -> &mut Self {
        self.record(2, step, &frame[14..])
    }

    /// A call between packets (`track::State::control`).
    pub fn control(&mut self, step: u8, sub: u8, arg: u8) -> &mut Self {
        self.0.extend_from_slice(&[step << 2 | 3, sub, arg]);
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// Control sub-ops (`track::State::control`).
pub mod ctl {
    pub const POLL: u8 = 0;
    pub const DRAIN: u8 = 1;
    pub const SETTINGS: u8 = 2;
    pub const REMOVE: u8 = 3;
    pub const FASTTRACK_SET: u8 = 4;
    pub const FASTTRACK_PKT: u8 = 5;
    pub const MARK: u8 = 6;
    pub const SNAPSHOTS: u8 = 7;
    pub const FLUSH: u8 = 8;
    pub const SET: u8 = 9;
}

fn eth_header(ethertype: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

/// An Ethernet (optionally 802.1Q-tagged) IPv6 frame around `l4`
/// (checksums left zero: the parser does not verify them).
pub fn ipv6_frame(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let mut f = eth_header(0x86dd, vlan);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    f
}

fn udp_l4(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    u
}

fn icmp6_echo(reply: bool, id: u16) -> Vec<u8> {
    let mut m = vec![if reply { 129 } else { 128 }, 0, 0, 0, 0, 0, 0, 1];
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0xab; 8]);
    m
}

/// A GRE packet in Ethernet/IPv4: version 0 with a key, or version 1 (PPTP)
/// with a call id.
pub fn gre_frame(src: [u8; 4], dst: [u8; 4], version: u8, key: u32) -> Vec<u8> {
    let mut g = Vec::new();
    if version == 0 {
        g.extend_from_slice(&[0x20, 0x00, 0x08, 0x00]); // K, IPv4 inside
    } else {
        g.extend_from_slice(&[0x20, 0x01, 0x88, 0x0b]); // K, version 1, PPP
    }
    g.extend_from_slice(&key.to_be_bytes());
    g.extend_from_slice(&[0x45, 0, 0, 20]);
    ipv4_frame(src, dst, proto::GRE, &g, None, true)
}

/// An ICMP destination-unreachable from `ROUTER` to `to`, quoting the first
/// 28 bytes of the IP packet in `quoted_frame`.
pub fn icmp_error_frame(to: [u8; 4], quoted_frame: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0];
    let ip = &quoted_frame[14..];
    m.extend_from_slice(&ip[..ip.len().min(28)]);
    ipv4_frame(ROUTER, to, proto::ICMP, &m, Some(2), false)
}

fn mix(tcp: u32, udp: u32, icmp: u32, exchanges: u32, payload: usize) -> Vec<Vec<u8>> {
    Mix {
        tcp,
        udp,
        icmp,
        exchanges,
        payload,
        keep_open: false,
        ..Mix::default()
    }
    .packets()
    .into_iter()
    .map(|p| p.frame)
    .collect()
}

/// The `parse_track` seeds, by file name.
pub fn parse_track() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    // One TCP connection, handshake to close, then expiry.
    let mut i = Input::new(0x00, 1);
    for f in mix(1, 0, 0, 2, 16) {
        i.eth(step::MS10, &f);
    }
    i.control(step::S12, ctl::SNAPSHOTS, 0)
        .control(step::S1, ctl::DRAIN, 0);
    out.push(("seed-tcp-flow", i.bytes()));

    // UDP flows and a ping, as raw IP.
    let mut i = Input::new(0x10, 2);
    for f in mix(0, 2, 1, 2, 8) {
        i.raw(step::MS10, &f);
    }
    i.control(step::MIN4, ctl::DRAIN, 0);
    out.push(("seed-udp-icmp-raw", i.bytes()));

    // A mix in bursts, with the management calls in between.
    let mut i = Input::new(0x00, 3);
    for (n, f) in mix(3, 2, 1, 1, 4).iter().enumerate() {
        i.burst(if n % 8 == 0 { step::MS10 } else { step::NONE }, f);
    }
    i.control(step::NONE, ctl::FLUSH, 0)
        .control(step::NONE, ctl::FASTTRACK_SET, 0)
        .control(step::MS10, ctl::FASTTRACK_PKT, 0x41)
        .control(step::NONE, ctl::MARK, 7)
        .control(step::NONE, ctl::REMOVE, 1)
        .control(step::NONE, ctl::REMOVE, 1)
        .control(step::S1, ctl::SNAPSHOTS, 3);
    out.push(("seed-mix-burst", i.bytes()));

    // A table of 8: assured UDP streams fill it, then new flows are dropped;
    // unreplied ones are evicted early.
    let mut i = Input::new(0x05, 4);
    for n in 0..6u16 {
        i.eth(step::MS10, &udp_frame(C, S, 1000 + n, 53, 4, true));
        i.eth(step::MS10, &udp_frame(S, C, 53, 1000 + n, 4, false));
    }
    for n in 0..3u16 {
        i.eth(step::MS10, &udp_frame(C, S, 2000 + n, 53, 4, true));
    }
    for n in 0..2u16 {
        i.eth(step::MS10, &udp_frame(C, S, 3000 + n, 53, 4, true));
        i.eth(step::MS10, &udp_frame(S, C, 53, 3000 + n, 4, false));
    }
    i.eth(step::MS10, &udp_frame(C, S, 4000, 53, 4, true));
    i.burst(step::MS10, &udp_frame(C, S, 4001, 53, 4, true));
    i.control(step::S1, ctl::POLL, 3);
    out.push(("seed-table-full", i.bytes()));

    // Timers: a handshake, time jumps, shorter timeouts (rescan), `set`.
    let mut i = Input::new(0x20, 5);
    let syn = tcp_frame(C, S, 40000, 443, 77, 0, SYN, 0, Some(7), true);
    let synack = tcp_frame(S, C, 443, 40000, 900, 78, SYN | ACK, 0, Some(7), false);
    let ack = tcp_frame(C, S, 40000, 443, 78, 901, ACK, 0, None, true);
    i.eth(step::NONE, &syn)
        .eth(step::MS10, &synack)
        .eth(step::MS10, &ack)
        .eth(step::S6, &udp_frame(C, S, 5000, 123, 0, true))
        .control(step::S6, ctl::POLL, 8)
        .control(step::NONE, ctl::SETTINGS, 1)
        .control(step::MS100, ctl::DRAIN, 0)
        .control(step::NONE, ctl::SET, 0x4c)
        .control(step::NONE, ctl::SET, 0x02)
        .eth(step::MIN20, &syn)
        .control(step::DAY, ctl::DRAIN, 0);
    out.push(("seed-timers", i.bytes()));

    // An ICMP error quoting a tracked TCP SYN: related.
    let mut i = Input::new(0x00, 6);
    let syn = tcp_frame(C, S, 40001, 22, 5, 0, SYN, 0, None, true);
    i.eth(step::NONE, &syn)
        .eth(step::MS10, &icmp_error_frame(C, &syn))
        .eth(step::MS10, &icmp_error_frame(S, &syn))
        .eth(step::MS10, &icmp_echo_frame(C, S, 9, 1, true, true));
    out.push(("seed-icmp-error", i.bytes()));

    // IPv6: UDP both ways (one direction VLAN-tagged), ICMPv6 echo.
    let mut i = Input::new(0x00, 7);
    let (a, b) = (v6(1), v6(2));
    i.eth(
        step::NONE,
        &ipv6_frame(a, b, proto::UDP, &udp_l4(5353, 53, 4), None),
    )
    .eth(
        step::MS10,
        &ipv6_frame(b, a, proto::UDP, &udp_l4(53, 5353, 4), Some(100)),
    )
    .eth(
        step::MS10,
        &ipv6_frame(a, b, proto::ICMPV6, &icmp6_echo(false, 3), None),
    )
    .eth(
        step::MS10,
        &ipv6_frame(b, a, proto::ICMPV6, &icmp6_echo(true, 3), None),
    )
    .control(step::NONE, ctl::SNAPSHOTS, 1);
    out.push(("seed-ipv6", i.bytes()));

    // GRE: a keyed v0 tunnel both ways, PPTP, a generic protocol.
    let mut i = Input::new(0x00, 8);
    i.eth(step::NONE, &gre_frame(C, S, 0, 0x0001_0002))
        .eth(step::MS10, &gre_frame(S, C, 0, 0x0001_0002))
        .eth(step::MS10, &gre_frame(C, S, 1, 0x0000_1234))
        .eth(step::MS10, &ipv4_frame(C, S, 132, &[0; 12], None, true))
        .control(step::NONE, ctl::SNAPSHOTS, 0);
    out.push(("seed-gre-generic", i.bytes()));

    // loose-tcp-tracking=no: a mid-stream segment stays untracked; then
    // tracking is switched off and on again.
    let mut i = Input::new(0x08, 9);
    i.eth(
        step::NONE,
        &tcp_frame(C, S, 40002, 80, 10, 20, ACK, 5, None, true),
    )
    .eth(
        step::MS10,
        &tcp_frame(C, S, 40003, 80, 10, 0, SYN, 0, None, true),
    )
    .control(step::NONE, ctl::SETTINGS, 0x10)
    .eth(step::MS10, &udp_frame(C, S, 7, 7, 1, true))
    .control(step::NONE, ctl::SETTINGS, 0x08)
    .eth(step::MS10, &udp_frame(C, S, 7, 7, 1, true));
    out.push(("seed-loose-off-disabled", i.bytes()));

    out
}

/// The `parse_only` seeds: single packets, raw IP and Ethernet.
pub fn parse_only() -> Vec<(&'static str, Vec<u8>)> {
    let syn = tcp_frame(C, S, 40000, 443, 77, 0, SYN, 0, Some(7), true);
    let (a, b) = (v6(1), v6(2));
    vec![
        ("seed-tcp-syn-eth", syn.clone()),
        ("seed-tcp-syn-ip", syn[14..].to_vec()),
        (
            "seed-udp-ip",
            udp_frame(C, S, 1, 53, 3, true)[14..].to_vec(),
        ),
        (
            "seed-icmp-error-ip",
            icmp_error_frame(C, &syn)[14..].to_vec(),
        ),
        (
            "seed-ipv6-udp-vlan",
            ipv6_frame(a, b, proto::UDP, &udp_l4(1, 2, 2), Some(5)),
        ),
        (
            "seed-ipv6-icmp-ip",
            ipv6_frame(a, b, proto::ICMPV6, &icmp6_echo(false, 1), None)[14..].to_vec(),
        ),
        (
            "seed-gre-v1-ip",
            gre_frame(C, S, 1, 0x0000_1234)[14..].to_vec(),
        ),
    ]
}
