//! The contract between packet parsing and connection tracking.
//!
//! [`crate::packet`] turns the bytes of one frame into a [`FlowRepr`]: a small
//! `Copy` value holding everything conntrack needs (the tuple, the bytes to
//! account, and the per-protocol fields it tracks). Conntrack never sees packet
//! bytes, so it can be driven by tests, property tests and fuzzers directly.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers that conntrack treats specially.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
}

/// An IPv4 or IPv6 address in 16 bytes. IPv4 is stored IPv4-mapped
/// (`::ffff:a.b.c.d`); [`Tuple::family`] tells the two apart, so an IPv6 packet
/// that really carries mapped addresses is still a different tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub const fn from_v4(octets: [u8; 4]) -> Self {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = octets[0];
        a[13] = octets[1];
        a[14] = octets[2];
        a[15] = octets[3];
        Addr(a)
    }

    pub const fn from_v6(octets: [u8; 16]) -> Self {
        Addr(octets)
    }

    /// Whether this is an IPv4 address (held v4-mapped, `::ffff:a.b.c.d`).
    pub fn is_v4_mapped(&self) -> bool {
        self.0[..10].iter().all(|&b| b == 0) && self.0[10] == 0xff && self.0[11] == 0xff
    }

    /// The last four bytes, which hold an IPv4 address.
    pub const fn v4_octets(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    pub fn to_ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.v4_octets())),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr::from_v4(v4.octets()),
            IpAddr::V6(v6) => Addr::from_v6(v6.octets()),
        }
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_v4_mapped() {
            write!(f, "{}", Ipv4Addr::from(self.v4_octets()))
        } else {
            write!(f, "{}", Ipv6Addr::from(self.0))
        }
    }
}

/// Address family of a tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
#[repr(u8)]
pub enum Family {
    #[default]
    V4 = 4,
    V6 = 6,
}

/// A connection tuple in one direction, as Linux conntrack keys it.
///
/// - TCP, UDP: `src_port`, `dst_port` are the ports.
/// - ICMP/ICMPv6: as parsed, `src_port` is the identifier (0 for messages
///   without one) and `dst_port` is `type << 8 | code` as on the wire.
///   Conntrack derives the reply tuple itself (Linux's invmap: echo request
///   8 <-> echo reply 0, same id), so the parser does no normalising.
/// - GRE: as parsed, both ports are 0 and the key/call id is in [`GreInfo`];
///   conntrack builds its key from it (see `docs/conntrack.md`).
/// - Every other protocol: both ports are 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Tuple {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub family: Family,
}

impl Tuple {
    /// The same flow seen from the other end: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            family: self.family,
        }
    }

    pub fn src_ip(&self) -> IpAddr {
        self.src.to_ip(self.family)
    }

    pub fn dst_ip(&self) -> IpAddr {
        self.dst.to_ip(self.family)
    }
}

/// TCP flag bits as they sit in the header's 13th byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// What conntrack needs of a TCP segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpInfo {
    pub seq: u32,
    pub ack: u32,
    /// See [`tcp_flags`].
    pub flags: u8,
    /// The raw (unscaled) window field.
    pub window: u16,
    /// Window scale option, if present (only meaningful on SYN segments).
    pub wscale: Option<u8>,
    /// SACK-permitted option present.
    pub sack_perm: bool,
    /// Bytes of TCP payload (after the TCP header and options).
    pub payload_len: u32,
}

/// What conntrack needs of an ICMP or ICMPv6 message.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    /// Identifier of echo and other query messages; 0 otherwise.
    pub id: u16,
    /// For error messages (destination unreachable, time exceeded, parameter
    /// problem, packet too big, ...): the tuple of the quoted packet, as its
    /// sender sent it. `None` for queries, or when the quote is too short.
    pub inner: Option<Tuple>,
}

/// What conntrack needs of a GRE packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GreInfo {
    /// 0 (RFC 2784/2890) or 1 (PPTP's enhanced GRE, RFC 2637).
    pub version: u8,
    /// Version 0: the key, if the K bit is set. Version 1: `payload_len << 16 | call_id`
    /// as carried in the key field; use [`GreInfo::call_id`].
    pub key: Option<u32>,
    /// The encapsulated protocol (an EtherType; 0x880b for PPP in PPTP).
    pub protocol: u16,
}

impl GreInfo {
    /// PPTP call id (version 1 only): the low 16 bits of the key field.
    pub fn call_id(&self) -> Option<u16> {
        if self.version == 1 {
            self.key.map(|k| (k & 0xffff) as u16)
        } else {
            None
        }
    }
}

/// The per-protocol part of a [`FlowRepr`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L4 {
    Tcp(TcpInfo),
    Udp,
    Icmp(IcmpInfo),
    Gre(GreInfo),
    /// Any other IP protocol: tracked by addresses and protocol only.
    #[default]
    Other,
}

/// The validated summary of one IP packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlowRepr {
    /// The tuple as seen on the wire (this packet's source to its destination).
    pub tuple: Tuple,
    /// Bytes to account for this packet: from the IP header to the end of the
    /// payload (the IPv4 total length, or 40 + the IPv6 payload length), as
    /// Linux conntrack accounting counts.
    pub ip_len: u32,
    pub l4: L4,
}
