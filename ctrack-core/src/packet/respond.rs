//! Packets the firewall generates in answer to a received frame: the TCP
//! reset and ICMP/ICMPv6 destination unreachable of `action=reject`, the
//! SYN-ACK and zero-window ACK of `action=tarpit`, and the rate limit Linux
//! puts on ICMP errors.
//!
//! Each builder reads the received Ethernet frame (up to two VLAN tags, kept
//! in the answer), writes the answer into the caller's buffer and returns its
//! length, or `None` when Linux would send nothing (or the buffer is too
//! small). Nothing is allocated and nothing panics on any input. The answer
//! goes back out of the port the frame came in on: its Ethernet addresses
//! are the received ones swapped, its tags the received ones.
//!
//! What each one sends is Linux's (kernel 6.x), field by field; the resets
//! and errors are compared with Linux 6.18's own in
//! `tests/tests/linux_router.rs`:
//!
//! - [`tcp_reset`]: `nf_send_reset` / `nf_send_reset6`
//!   (`net/ipv{4,6}/netfilter/nf_reject_ipv{4,6}.c`). If the segment had ACK,
//!   the reset's sequence number is its acknowledgment number and the reset
//!   has no ACK; otherwise the sequence number is 0 and it acknowledges the
//!   segment's sequence number plus its payload length plus one for SYN and
//!   one for FIN. No options, window 0. IPv4: no options, TOS 0, ID 0, DF,
//!   TTL 64; IPv6: traffic class and flow label 0, hop limit 64. Nothing
//!   answers a reset, a segment with a bad checksum, or a fragment.
//! - [`icmp_unreachable`]: `nf_send_unreach` / `nf_send_unreach6`, which
//!   call `__icmp_send` / `icmp6_send`. The error quotes the received packet
//!   from its IP header on, as much as fits a 576-byte IPv4 datagram
//!   (RFC 1812 4.3.2.3) or a 1280-byte IPv6 one (RFC 4443 2.4(c)). IPv4: TOS
//!   `(tos & 0x1e) | 0xc0` (`RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL`: the
//!   precedence bits replaced, as seen from Linux 6.18), no DF, TTL 64, the
//!   ID the caller gives (Linux picks one per destination); IPv6: hop limit
//!   64, traffic class 0, flow label 0 (Linux may set an automatic flow
//!   label). Its source is the address the caller gives (the interface's),
//!   or else the original destination. Nothing is sent for an ICMP error (or an unknown ICMP
//!   type, which Linux takes for one; ICMPv6: any type below 128), a
//!   fragment other than the first, a packet with a bad TCP/UDP/ICMP
//!   checksum, a frame sent to an Ethernet group address, or a packet to a
//!   multicast or broadcast address or from an address that names no single
//!   host (unspecified, multicast, broadcast).
//! - [`tarpit`]: xtables-addons' `xt_TARPIT` (RouterOS `action=tarpit`). A
//!   SYN gets a SYN-ACK (sequence number 0, acknowledging the SYN), any other
//!   segment with ACK but without RST or FIN gets an ACK of window 0 that
//!   acknowledges no data (so the peer's data waits in the persist state),
//!   a SYN-ACK gets a reset, and nothing else is answered. The SYN-ACK's
//!   window is 0, as ctrack's firewall model asks (xtables-addons' current
//!   module sends 5 there; RouterOS does not document its value). IP as `xt_TARPIT`: IPv4 TOS
//!   kept, ID 0, DF, TTL 64; IPv6 traffic class and flow label 0, hop limit
//!   64. Packets with IPv4 options or IPv6 extension headers are not
//!   answered (`xt_TARPIT` refuses them too).
//!
//! [`IcmpRateLimiter`] is Linux's limit on the ICMP errors it sends:
//! `net.ipv4.icmp_msgs_per_sec` (1000) with `icmp_msgs_burst` (50) for all
//! destinations together, and `net.ipv4.icmp_ratelimit` /
//! `net.ipv6.icmp.ratelimit` (1000 ms) per destination with a burst of 6
//! (`inet_peer_xrlim_allow`). Linux does not limit resets, nor does the
//! caller ([`needs_rate_limit`]).

use super::{Ipv4Packet, Ipv6Packet, TcpPacket, checksum, ethernet, ipv6};
use crate::conntrack::Instant;
use crate::flow::{Addr, proto, tcp_flags};

/// The TTL / hop limit of every generated packet: Linux's default
/// (`net.ipv4.ip_default_ttl`, `net.ipv6.conf.*.hop_limit`).
pub const TTL: u8 = 64;

/// The largest IPv4 datagram an ICMP error fills (RFC 1812 4.3.2.3; Linux
/// `__icmp_send` caps the room at 576).
pub const ICMP_V4_MAX: usize = 576;

/// The largest IPv6 packet an ICMPv6 error fills (the IPv6 minimum MTU;
/// RFC 4443 2.4(c), Linux `icmp6_send`).
pub const ICMP_V6_MAX: usize = 1280;

/// A buffer of this size holds any answer to a frame with up to two VLAN
/// tags: the largest is an ICMPv6 error (18 bytes of Ethernet and tags,
/// 1280 of IPv6).
pub const MAX_ANSWER: usize = ethernet::HEADER_LEN + 2 * ethernet::TAG_LEN + ICMP_V6_MAX;

/// ICMP (IPv4) destination-unreachable codes RouterOS's `reject-with`
/// offers (RFC 792, RFC 1812).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Unreachable4 {
    /// `icmp-network-unreachable`
    Network = 0,
    /// `icmp-host-unreachable`
    Host = 1,
    /// `icmp-protocol-unreachable`
    Protocol = 2,
    /// `icmp-port-unreachable`
    Port = 3,
    /// `icmp-net-prohibited`
    NetProhibited = 9,
    /// `icmp-host-prohibited`
    HostProhibited = 10,
    /// `icmp-admin-prohibited`
    AdminProhibited = 13,
}

/// ICMPv6 destination-unreachable codes RouterOS's `/ipv6 firewall`
/// `reject-with` offers (RFC 4443 3.1, RFC 6554, RFC 8883).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Unreachable6 {
    /// `icmp-no-route`
    NoRoute = 0,
    /// `icmp-admin-prohibited`
    AdminProhibited = 1,
    /// `icmp-not-neighbour` (beyond scope of source address)
    NotNeighbour = 2,
    /// `icmp-address-unreachable`
    Address = 3,
    /// `icmp-port-unreachable`
    Port = 4,
    /// `icmp-err-src-routing-header`
    SourceRoutingHeader = 7,
    /// `icmp-headertoo-long`
    HeadersTooLong = 8,
}

/// The ICMP type of destination unreachable (IPv4).
pub const ICMP_DEST_UNREACH: u8 = 3;
/// The ICMPv6 type of destination unreachable.
pub const ICMPV6_DEST_UNREACH: u8 = 1;

/// The ICMP type of time exceeded (IPv4).
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// The ICMPv6 type of time exceeded.
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// The ICMPv6 type of packet too big.
pub const ICMPV6_PKT_TOOBIG: u8 = 2;

/// What to answer a frame with.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Answer {
    /// `reject-with=tcp-reset` ([`tcp_reset`]).
    TcpReset,
    /// An ICMP error, sent for an IPv4 packet only ([`icmp_unreachable`]).
    Icmp4(Unreachable4),
    /// An ICMPv6 error, sent for an IPv6 packet only ([`icmp_unreachable`]).
    Icmp6(Unreachable6),
    /// `action=tarpit` ([`tarpit`]).
    Tarpit,
    /// ICMP time exceeded in transit (type 11, code 0) or ICMPv6 hop limit
    /// exceeded (type 3, code 0), for either family: what a router sends
    /// for a packet whose TTL / hop limit runs out ([`time_exceeded`]).
    TimeExceeded,
    /// ICMP fragmentation needed (type 3, code 4) or ICMPv6 packet too big
    /// (type 2), with the next hop's MTU, for either family: what a router
    /// sends for a packet larger than the egress MTU that it may not
    /// fragment ([`too_big`]). Not rate-limited (Linux exempts path MTU
    /// discovery).
    TooBig(u16),
}

/// What an ICMP error is sent with, besides the packet it answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IcmpParams {
    /// The IPv4 source (the interface's address); the original destination
    /// when `None`.
    pub v4: Option<[u8; 4]>,
    /// The IPv6 source; the original destination when `None`.
    pub v6: Option<[u8; 16]>,
    /// The IPv4 identification field (the caller counts).
    pub ident: u16,
    /// The packet was being routed: quote it as Linux's FORWARD hook sees
    /// it, with its TTL / hop limit already decremented (`ip_forward`,
    /// `ip6_forward` do so before the hook) and the IPv4 header checksum
    /// updated. `false` quotes it exactly as received (a bridge, or the
    /// INPUT and PREROUTING hooks).
    pub forwarded: bool,
}

/// Whether Linux rate-limits this answer with [`IcmpRateLimiter`]: ICMP
/// errors yes, resets and tarpit segments no.
pub const fn needs_rate_limit(a: Answer) -> bool {
    matches!(
        a,
        Answer::Icmp4(_) | Answer::Icmp6(_) | Answer::TimeExceeded
    )
}

/// Builds `answer` for `frame` into `out` (see the builders). `None` where
/// no packet is due, also when the answer does not suit the frame's family
/// (an ICMPv6 kind for IPv4) or `out` is too small ([`MAX_ANSWER`] always
/// suffices).
pub fn build(answer: Answer, frame: &[u8], src: &IcmpParams, out: &mut [u8]) -> Option<usize> {
    match answer {
        Answer::TcpReset => tcp_reset(frame, out),
        Answer::Icmp4(code) => icmp_unreachable(frame, IcmpCode::V4(code), src, out),
        Answer::Icmp6(code) => icmp_unreachable(frame, IcmpCode::V6(code), src, out),
        Answer::Tarpit => tarpit(frame, out),
        Answer::TimeExceeded => time_exceeded(frame, src, out),
        Answer::TooBig(mtu) => too_big(frame, mtu, src, out),
    }
}

/// The code of an ICMP error, which also says its family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpCode {
    V4(Unreachable4),
    V6(Unreachable6),
}

/// The received frame, taken apart.
struct Received<'a> {
    /// Ethernet header and VLAN tags, as received.
    l2: &'a [u8],
    ip: Ip<'a>,
}

enum Ip<'a> {
    /// The IPv4 packet up to its total length.
    V4(&'a [u8]),
    /// The IPv6 packet up to its payload length.
    V6(&'a [u8]),
}

fn receive(frame: &[u8]) -> Option<Received<'_>> {
    let r = receive_any(frame)?;
    // No answer to a frame sent to a group (broadcast, multicast) address:
    // Linux's `pkt_type != PACKET_HOST`.
    if r.l2[0] & 1 != 0 {
        return None;
    }
    Some(r)
}

/// [`receive`] without the group-address check.
fn receive_any(frame: &[u8]) -> Option<Received<'_>> {
    let u = ethernet::strip(frame).ok()?;
    let l2 = &frame[..frame.len() - u.payload.len()];
    let ip = match u.ethertype {
        ethernet::ethertype::IPV4 => {
            let p = Ipv4Packet::new_checked(u.payload).ok()?;
            if p.version() != 4 {
                return None;
            }
            Ip::V4(u.payload.get(..usize::from(p.total_len()))?)
        }
        ethernet::ethertype::IPV6 => {
            let p = Ipv6Packet::new_checked(u.payload).ok()?;
            if p.version() != 6 {
                return None;
            }
            Ip::V6(u.payload.get(..p.payload_range().end)?)
        }
        _ => return None,
    };
    Some(Received { l2, ip })
}

/// An IPv4 address that names one host as a destination: not multicast,
/// not limited broadcast, not class E.
fn v4_unicast_dst(a: [u8; 4]) -> bool {
    a[0] < 224
}

/// An IPv4 source that names one host: not in 0/8, not multicast,
/// broadcast or class E (Linux drops these as martians before any rule).
fn v4_unicast_src(a: [u8; 4]) -> bool {
    a[0] != 0 && a[0] < 224
}

fn v6_multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xff
}

/// A source that names one host: neither multicast nor unspecified
/// (RFC 4443 2.4(e); Linux `icmp6_send`, `nf_send_reset6`).
fn v6_unicast_src(a: &[u8; 16]) -> bool {
    !v6_multicast(a) && *a != [0; 16]
}

/// Writes the received link-layer header into `out` with the Ethernet
/// addresses swapped; returns its length.
fn put_l2(l2: &[u8], out: &mut [u8]) -> usize {
    let n = l2.len();
    out[..n].copy_from_slice(l2);
    out[..6].copy_from_slice(&l2[6..12]);
    out[6..12].copy_from_slice(&l2[..6]);
    n
}

/// A 20-byte IPv4 header without options, checksum filled in.
struct V4Header {
    tos: u8,
    total_len: u16,
    ident: u16,
    df: bool,
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
}

fn put_ipv4(h: &V4Header, out: &mut [u8]) {
    let out = &mut out[..20];
    out[0] = 0x45;
    out[1] = h.tos;
    out[2..4].copy_from_slice(&h.total_len.to_be_bytes());
    out[4..6].copy_from_slice(&h.ident.to_be_bytes());
    out[6..8].copy_from_slice(&(if h.df { 0x4000u16 } else { 0 }).to_be_bytes());
    out[8] = TTL;
    out[9] = h.protocol;
    out[10..12].fill(0);
    out[12..16].copy_from_slice(&h.src);
    out[16..20].copy_from_slice(&h.dst);
    let c = checksum::checksum_of(checksum::sum(out, 0));
    out[10..12].copy_from_slice(&c.to_be_bytes());
}

/// A 40-byte IPv6 header: traffic class and flow label 0, hop limit [`TTL`].
fn put_ipv6(payload_len: u16, next: u8, src: &[u8; 16], dst: &[u8; 16], out: &mut [u8]) {
    let out = &mut out[..40];
    out[..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    out[4..6].copy_from_slice(&payload_len.to_be_bytes());
    out[6] = next;
    out[7] = TTL;
    out[8..24].copy_from_slice(src);
    out[24..40].copy_from_slice(dst);
}

/// The fields of a 20-byte TCP header to send.
struct TcpOut {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
}

/// Writes the TCP header (no options, urgent pointer 0) with its checksum
/// over the pseudo-header sum `pseudo`.
fn put_tcp(t: &TcpOut, pseudo: u64, out: &mut [u8]) {
    let out = &mut out[..20];
    out[0..2].copy_from_slice(&t.src_port.to_be_bytes());
    out[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
    out[4..8].copy_from_slice(&t.seq.to_be_bytes());
    out[8..12].copy_from_slice(&t.ack.to_be_bytes());
    out[12] = 5 << 4;
    out[13] = t.flags;
    out[14..16].copy_from_slice(&t.window.to_be_bytes());
    out[16..20].fill(0);
    let c = checksum::checksum_of(checksum::sum(out, pseudo));
    out[16..18].copy_from_slice(&c.to_be_bytes());
}

/// The received TCP segment an answer is built from.
struct Segment {
    src: Addr,
    dst: Addr,
    v6: bool,
    /// IPv4 TOS (tarpit keeps it).
    tos: u8,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    /// Payload bytes after the TCP header.
    payload_len: u32,
}

/// The TCP segment in `ip`, if it is a whole, checksummed, unfragmented one
/// between unicast addresses. `plain`: refuse IPv4 options and IPv6
/// extension headers (tarpit).
fn segment(ip: &Ip<'_>, plain: bool) -> Option<Segment> {
    let (src, dst, v6, tos, l4) = match *ip {
        Ip::V4(p) => {
            let h = Ipv4Packet::new_unchecked(p);
            if h.protocol() != proto::TCP || h.is_fragment() || (plain && h.header_len() != 20) {
                return None;
            }
            let (s, d) = (h.src_addr(), h.dst_addr());
            if !v4_unicast_src(s) || !v4_unicast_dst(d) {
                return None;
            }
            (
                Addr::from_v4(s),
                Addr::from_v4(d),
                false,
                h.dscp_ecn(),
                &p[h.header_len()..],
            )
        }
        Ip::V6(p) => {
            let h = Ipv6Packet::new_unchecked(p);
            let payload = &p[ipv6::HEADER_LEN..];
            let w = ipv6::walk(h.next_header(), payload).ok()?;
            if w.protocol != proto::TCP || w.fragment.is_some() || (plain && w.offset != 0) {
                return None;
            }
            let (s, d) = (h.src_addr(), h.dst_addr());
            if !v6_unicast_src(&s) || v6_multicast(&d) || (plain && !v6_unicast_src(&d)) {
                return None;
            }
            (
                Addr::from_v6(s),
                Addr::from_v6(d),
                true,
                0,
                payload.get(w.offset..)?,
            )
        }
    };
    let tcp = TcpPacket::new_checked(l4).ok()?;
    let whole = match *ip {
        Ip::V4(p) | Ip::V6(p) => p,
    };
    // Linux checks the segment's checksum before it answers
    // (`nf_reject_ip_tcphdr_get`, `nf_reject_ip6_tcphdr_get`, `xt_TARPIT`).
    checksum::verify_ip(whole, checksum::RxChecksum::UNKNOWN).ok()?;
    Some(Segment {
        src,
        dst,
        v6,
        tos,
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
        payload_len: tcp.payload().len() as u32,
    })
}

/// Writes an answer to `s` (addresses and ports swapped) into `out` after
/// the link-layer header `l2`: IPv4 with `tos`, ID 0 and DF, or IPv6.
fn put_segment(l2: &[u8], s: &Segment, tos: u8, t: &TcpOut, out: &mut [u8]) -> Option<usize> {
    let ip_len = if s.v6 { 40 } else { 20 };
    let len = l2.len() + ip_len + 20;
    let out = out.get_mut(..len)?;
    let at = put_l2(l2, out);
    let (ip, tcp) = out[at..].split_at_mut(ip_len);
    let pseudo = if s.v6 {
        put_ipv6(20, proto::TCP, &s.dst.0, &s.src.0, ip);
        checksum::pseudo_v6(&s.dst.0, &s.src.0, proto::TCP, 20)
    } else {
        let (src, dst) = (s.dst.v4_octets(), s.src.v4_octets());
        put_ipv4(
            &V4Header {
                tos,
                total_len: 40,
                ident: 0,
                df: true,
                protocol: proto::TCP,
                src,
                dst,
            },
            ip,
        );
        checksum::pseudo_v4(src, dst, proto::TCP, 20)
    };
    put_tcp(t, pseudo, tcp);
    Some(len)
}

/// The TCP reset Linux's `reject with tcp reset` sends for the segment in
/// `frame` (see the module doc), written to `out`; its length, or `None`
/// when none is due or `out` is too small.
pub fn tcp_reset(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let r = receive(frame)?;
    let s = segment(&r.ip, false)?;
    if s.flags & tcp_flags::RST != 0 {
        return None;
    }
    let (seq, ack, flags) = if s.flags & tcp_flags::ACK != 0 {
        (s.ack, 0, tcp_flags::RST)
    } else {
        let syn_fin =
            u32::from(s.flags & tcp_flags::SYN != 0) + u32::from(s.flags & tcp_flags::FIN != 0);
        let ack = s.seq.wrapping_add(s.payload_len).wrapping_add(syn_fin);
        (0, ack, tcp_flags::RST | tcp_flags::ACK)
    };
    let t = TcpOut {
        src_port: s.dst_port,
        dst_port: s.src_port,
        seq,
        ack,
        flags,
        window: 0,
    };
    put_segment(r.l2, &s, 0, &t, out)
}

/// The `xt_TARPIT` answer to the segment in `frame` (see the module doc):
/// a zero-window SYN-ACK to a SYN, a zero-window ACK to other segments with
/// ACK, a reset to a SYN-ACK; `None` for a reset, a FIN, a segment with
/// neither SYN nor ACK, or where [`tcp_reset`] would send nothing.
pub fn tarpit(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let r = receive(frame)?;
    let s = segment(&r.ip, true)?;
    let (syn, ack) = (s.flags & tcp_flags::SYN != 0, s.flags & tcp_flags::ACK != 0);
    if s.flags & (tcp_flags::RST | tcp_flags::FIN) != 0 || (!syn && !ack) {
        return None;
    }
    let seq = if ack { s.ack } else { 0 };
    let (flags, ack_seq) = if syn && ack {
        (tcp_flags::RST, 0)
    } else if syn {
        (tcp_flags::SYN | tcp_flags::ACK, s.seq.wrapping_add(1))
    } else {
        // Acknowledges no data: the peer keeps it and probes the window.
        (tcp_flags::ACK, s.seq)
    };
    let t = TcpOut {
        src_port: s.dst_port,
        dst_port: s.src_port,
        seq,
        ack: ack_seq,
        flags,
        window: 0,
    };
    put_segment(r.l2, &s, s.tos, &t, out)
}

/// The ICMP (IPv4) or ICMPv6 destination unreachable with `code` that Linux
/// sends for the packet in `frame` (see the module doc), from `src`'s
/// address of the family (the original destination where it has none);
/// its length, or `None` when none is due, the code is for the other
/// family, or `out` is too small.
pub fn icmp_unreachable(
    frame: &[u8],
    code: IcmpCode,
    src: &IcmpParams,
    out: &mut [u8],
) -> Option<usize> {
    let r = receive(frame)?;
    match (r.ip, code) {
        (Ip::V4(p), IcmpCode::V4(c)) => icmp4(r.l2, p, (ICMP_DEST_UNREACH, c as u8, 0), src, out),
        (Ip::V6(p), IcmpCode::V6(c)) => icmp6(r.l2, p, (ICMPV6_DEST_UNREACH, c as u8, 0), src, out),
        _ => None,
    }
}

/// The ICMP time exceeded (IPv4: type 11, code 0) or ICMPv6 hop limit
/// exceeded (type 3, code 0) that Linux's `ip_forward` / `ip6_forward` send
/// for the packet in `frame`, eligible as [`icmp_unreachable`]'s (never
/// about an error, a non-first fragment, multicast); from `src`'s address
/// of the family.
pub fn time_exceeded(frame: &[u8], src: &IcmpParams, out: &mut [u8]) -> Option<usize> {
    let r = receive(frame)?;
    match r.ip {
        Ip::V4(p) => icmp4(r.l2, p, (ICMP_TIME_EXCEEDED, 0, 0), src, out),
        Ip::V6(p) => icmp6(r.l2, p, (ICMPV6_TIME_EXCEEDED, 0, 0), src, out),
    }
}

/// The ICMP fragmentation needed (IPv4: type 3, code 4, the next-hop MTU in
/// the header's last 16 bits, RFC 1191) or ICMPv6 packet too big (type 2,
/// the MTU in the header's second word, RFC 4443) that Linux's `ip_forward`
/// / `ip6_forward` send for the packet in `frame`, eligible as
/// [`icmp_unreachable`]'s; from `src`'s address of the family.
pub fn too_big(frame: &[u8], mtu: u16, src: &IcmpParams, out: &mut [u8]) -> Option<usize> {
    let r = receive(frame)?;
    match r.ip {
        Ip::V4(p) => icmp4(r.l2, p, (ICMP_DEST_UNREACH, 4, u32::from(mtu)), src, out),
        Ip::V6(p) => icmp6(r.l2, p, (ICMPV6_PKT_TOOBIG, 0, u32::from(mtu)), src, out),
    }
}

/// Whether Linux would answer `p` (IPv4, whole) with an ICMP error.
fn icmp4_eligible(p: &[u8]) -> bool {
    let h = Ipv4Packet::new_unchecked(p);
    if h.frag_offset() != 0 || !v4_unicast_dst(h.dst_addr()) || !v4_unicast_src(h.src_addr()) {
        return false;
    }
    if h.protocol() == proto::ICMP {
        // Never an error about an error; an unknown type counts as one
        // (`__icmp_send`: type > NR_ICMP_TYPES or icmp_pointers[].error).
        match p.get(h.header_len()) {
            Some(&t) if t <= 18 && !super::icmp::v4_is_error(t) => {}
            _ => return false,
        }
    }
    checksum::verify_ip(p, checksum::RxChecksum::UNKNOWN).is_ok()
}

fn icmp4(
    l2: &[u8],
    p: &[u8],
    (ty, code, rest): (u8, u8, u32),
    src: &IcmpParams,
    out: &mut [u8],
) -> Option<usize> {
    if !icmp4_eligible(p) {
        return None;
    }
    let h = Ipv4Packet::new_unchecked(p);
    let quote = &p[..p.len().min(ICMP_V4_MAX - 20 - 8)];
    let ip_len = 20 + 8 + quote.len();
    let len = l2.len() + ip_len;
    let out = out.get_mut(..len)?;
    let at = put_l2(l2, out);
    let (ip, icmp) = out[at..].split_at_mut(20);
    put_ipv4(
        &V4Header {
            tos: (h.dscp_ecn() & 0x1e) | 0xc0,
            total_len: ip_len as u16,
            ident: src.ident,
            df: false,
            protocol: proto::ICMP,
            src: src.v4.unwrap_or(h.dst_addr()),
            dst: h.src_addr(),
        },
        ip,
    );
    icmp[0] = ty;
    icmp[1] = code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    icmp[8..].copy_from_slice(quote);
    if src.forwarded {
        // The quote holds the whole header (548 >= 60 bytes).
        let q = &mut icmp[8..];
        q[8] = q[8].saturating_sub(1);
        q[10..12].fill(0);
        let c = checksum::checksum_of(checksum::sum(&q[..h.header_len()], 0));
        q[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let c = checksum::checksum_of(checksum::sum(icmp, 0));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

/// Whether Linux would answer `p` (IPv6, whole) with an ICMPv6 error.
fn icmp6_eligible(p: &[u8]) -> bool {
    let h = Ipv6Packet::new_unchecked(p);
    if v6_multicast(&h.dst_addr()) || !v6_unicast_src(&h.src_addr()) {
        return false;
    }
    let payload = &p[ipv6::HEADER_LEN..];
    let Ok(w) = ipv6::walk(h.next_header(), payload) else {
        return false;
    };
    match w.fragment {
        Some(f) if f.offset != 0 => return false,
        // A first fragment: its upper-layer header is not checked.
        Some(_) => return true,
        None => {}
    }
    if w.protocol == proto::ICMPV6 {
        // `is_ineligible`: never about an error (type < 128) or a
        // truncated message.
        match payload.get(w.offset) {
            Some(&t) if t >= 128 => {}
            _ => return false,
        }
    }
    checksum::verify_ip(p, checksum::RxChecksum::UNKNOWN).is_ok()
}

fn icmp6(
    l2: &[u8],
    p: &[u8],
    (ty, code, rest): (u8, u8, u32),
    src: &IcmpParams,
    out: &mut [u8],
) -> Option<usize> {
    if !icmp6_eligible(p) {
        return None;
    }
    let h = Ipv6Packet::new_unchecked(p);
    let quote = &p[..p.len().min(ICMP_V6_MAX - 40 - 8)];
    let icmp_len = 8 + quote.len();
    let len = l2.len() + 40 + icmp_len;
    let out = out.get_mut(..len)?;
    let at = put_l2(l2, out);
    let (ip, icmp) = out[at..].split_at_mut(40);
    let from = src.v6.unwrap_or(h.dst_addr());
    let to = h.src_addr();
    put_ipv6(icmp_len as u16, proto::ICMPV6, &from, &to, ip);
    icmp[0] = ty;
    icmp[1] = code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    icmp[8..].copy_from_slice(quote);
    if src.forwarded {
        icmp[8 + 7] = icmp[8 + 7].saturating_sub(1);
    }
    let pseudo = checksum::pseudo_v6(&from, &to, proto::ICMPV6, icmp_len as u32);
    let c = checksum::checksum_of(checksum::sum(icmp, pseudo));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

/// Linux's limits on the ICMP errors it sends (see the module doc), for one
/// sender (a worker: each has its own, so the global rate is per worker).
///
/// Deterministic where Linux adds noise (since 6.11 a message may consume up
/// to 3 global credits). The IPv6 per-destination interval is not
/// shortened by the route's prefix length as `icmpv6_xrlim_allow` does
/// (there are no routes here). The per-destination state lives in a fixed table
/// of [`IcmpRateLimiter::PEERS`] slots chosen by address hash; a
/// destination that takes another's slot starts with a full burst (Linux's
/// `inet_peer` cache also forgets idle peers). Nothing allocates after
/// [`IcmpRateLimiter::new`].
#[derive(Clone, Debug)]
pub struct IcmpRateLimiter {
    /// Messages per second for all destinations (`icmp_msgs_per_sec`).
    per_sec: u64,
    /// Global burst (`icmp_msgs_burst`).
    burst: u64,
    /// Per-destination interval in ns (`icmp_ratelimit`).
    interval: u64,
    credit: u64,
    stamp: Option<Instant>,
    peers: Box<[Peer]>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    addr: Addr,
    used: bool,
    /// Tokens in ns of elapsed time (`rate_tokens`, in jiffies in Linux).
    tokens: u64,
    last: Instant,
}

/// `XRLIM_BURST_FACTOR`: a destination may get this many errors at once.
const PEER_BURST: u64 = 6;

impl IcmpRateLimiter {
    /// Slots of the per-destination table.
    pub const PEERS: usize = 256;

    /// Linux's defaults: 1000 messages/s, burst 50, 1000 ms per destination.
    pub fn linux_default() -> Self {
        Self::new(1000, 50, 1000)
    }

    /// `per_sec` messages per second in all (`icmp_msgs_per_sec`, 0: no
    /// global limit), `burst` at once (`icmp_msgs_burst`), and one per
    /// `interval_ms` per destination with a burst of 6 (`icmp_ratelimit`,
    /// 0: no per-destination limit).
    pub fn new(per_sec: u32, burst: u32, interval_ms: u32) -> Self {
        IcmpRateLimiter {
            per_sec: u64::from(per_sec),
            burst: u64::from(burst),
            interval: u64::from(interval_ms) * 1_000_000,
            credit: u64::from(burst),
            stamp: None,
            peers: vec![Peer::default(); Self::PEERS].into_boxed_slice(),
        }
    }

    /// Whether an error to `dst` may be sent at `now`; if so, it is counted.
    pub fn allow(&mut self, dst: Addr, now: Instant) -> bool {
        if self.per_sec != 0 && !self.global_has_credit(now) {
            return false;
        }
        if self.interval != 0 && !self.peer_allow(dst, now) {
            return false;
        }
        if self.per_sec != 0 {
            self.credit = self.credit.saturating_sub(1);
        }
        true
    }

    /// `icmp_global_allow`: credit left, or refilled (at most every 20 ms,
    /// by at most one second's worth, up to the burst).
    fn global_has_credit(&mut self, now: Instant) -> bool {
        if self.credit > 0 {
            return true;
        }
        let stamp = *self.stamp.get_or_insert(now);
        let delta = now.saturating_sub(stamp).min(1_000_000_000);
        if delta < 20_000_000 {
            return false;
        }
        let incr = self.per_sec * delta / 1_000_000_000;
        if incr == 0 {
            return false;
        }
        self.stamp = Some(now);
        self.credit = (self.credit + incr).min(self.burst);
        self.credit > 0
    }

    /// `inet_peer_xrlim_allow`: a token bucket per destination, filled with
    /// elapsed time up to 6 intervals, one interval per message.
    fn peer_allow(&mut self, dst: Addr, now: Instant) -> bool {
        let slot = &mut self.peers[peer_slot(&dst)];
        let cap = PEER_BURST * self.interval;
        if !slot.used || slot.addr != dst {
            *slot = Peer {
                addr: dst,
                used: true,
                tokens: cap,
                last: now,
            };
        }
        let tokens = (slot.tokens + now.saturating_sub(slot.last)).min(cap);
        slot.last = now;
        if tokens >= self.interval {
            slot.tokens = tokens - self.interval;
            true
        } else {
            slot.tokens = tokens;
            false
        }
    }
}

/// The table slot of a destination: FNV-1a over its 16 bytes.
fn peer_slot(a: &Addr) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in a.0 {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) % IcmpRateLimiter::PEERS
}

/// The destination of an answer built for `frame`: the frame's IP source,
/// the address [`IcmpRateLimiter::allow`] is keyed on. `None` if the frame
/// is not IP.
pub fn answer_destination(frame: &[u8]) -> Option<Addr> {
    match receive_any(frame)?.ip {
        Ip::V4(p) => Some(Addr::from_v4(Ipv4Packet::new_unchecked(p).src_addr())),
        Ip::V6(p) => Some(Addr::from_v6(Ipv6Packet::new_unchecked(p).src_addr())),
    }
}

#[cfg(test)]
mod tests;
