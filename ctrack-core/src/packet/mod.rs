//! Zero-copy header views and the parser that turns one frame into a
//! [`FlowRepr`].
//!
//! Each header has a view in the style of smoltcp's `wire` module: a
//! `Packet<T: AsRef<[u8]>>` wrapping a borrowed buffer, built with
//! `new_unchecked` or `new_checked`, with getters that read fixed offsets
//! (named ranges in a private `mod field`) with `from_be_bytes`. Nothing is
//! copied and nothing is allocated.
//!
//! # No-panic contract
//!
//! If a view's `check_len()` returned `Ok(())` (or `new_checked` returned the
//! view), none of its accessors panics. `new_unchecked` leaves that check to
//! the caller. [`parse_ethernet`], [`parse_ip`] and everything else public in
//! this module never panic on any input: every length read from a packet is
//! checked before it is used to slice. Proptests hold this.
//!
//! # What happens to a packet that does not parse
//!
//! Every parse failure is a [`ParseError`], counted by reason (it indexes the
//! counter array and names the metric label), and the packet is **forwarded
//! untracked**. There is no firewall yet, and Linux behaves the same way:
//! conntrack marks a packet it cannot make sense of INVALID, and it still
//! passes unless a rule drops it. [`ParseError::is_malformed`] separates real
//! malformations from packets that are well-formed but not tracked:
//! non-IP frames ([`ParseError::NotIp`]: ARP, LLDP, ...), IP fragments
//! ([`ParseError::Fragment`]: not reassembled for now) and frames with more
//! than two VLAN tags ([`ParseError::VlanTooDeep`]).
//!
//! # Checksums are verified next to the parser, not by it
//!
//! The parser reads no checksum. [`checksum::verify_ip`] checks the ones
//! Linux conntrack checks (IPv4 header, TCP, UDP, ICMP, ICMPv6) on a packet
//! that parsed, trusting the NIC's RX flags where the port reports them; the
//! worker calls it before tracking while `checksum-verify=yes` (see
//! `docs/conntrack.md`, "Checksums"), and a packet that fails is invalid.
//!
//! # What the parser accepts
//!
//! - Ethernet II with up to two VLAN tags ([`ethernet::strip`]).
//! - IPv4 with options (skipped); the total length must fit in the frame, the
//!   frame may be longer (padding). Any fragment (MF set or offset != 0) is
//!   [`ParseError::Fragment`].
//! - IPv6 with the extension headers walked ([`ipv6::walk`]); a fragment
//!   header that is not atomic is [`ParseError::Fragment`]; ESP and
//!   no-next-header end the walk and give [`L4::Other`].
//! - TCP, UDP, ICMP (over IPv4), ICMPv6 (over IPv6), GRE versions 0 and 1.
//!   Any other protocol is [`L4::Other`] with ports 0.
//! - ICMP and ICMPv6 errors: the quoted packet's tuple, built as the parser
//!   would build it for that packet, in [`IcmpInfo::inner`] (`None` when the
//!   quote is too short or is a non-first fragment).

use crate::flow::{Addr, Family, FlowRepr, GreInfo, IcmpInfo, L4, TcpInfo, Tuple, proto};

pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mangle;
pub mod nat;
pub mod respond;
pub mod tcp;
pub mod udp;

pub use ethernet::Frame as EthernetFrame;
pub use gre::Packet as GrePacket;
pub use icmp::Packet as IcmpPacket;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

/// A byte range of a header.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a big-endian u16 at `f`. `f` must be 2 bytes long and in bounds.
#[inline]
pub(crate) fn be_u16(data: &[u8], f: Field) -> u16 {
    let b = &data[f];
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a big-endian u32 at `f`. `f` must be 4 bytes long and in bounds.
#[inline]
pub(crate) fn be_u32(data: &[u8], f: Field) -> u32 {
    let b = &data[f];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

macro_rules! parse_errors {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, malformed: $m:literal; )*) => {
        /// Why a frame was not turned into a [`FlowRepr`].
        ///
        /// A small `Copy` value that indexes a counter array
        /// ([`ParseError::index`], [`ParseError::ALL`]) and names its metric
        /// label ([`ParseError::name`]). The packet it describes is forwarded
        /// untracked (see the module doc).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        #[repr(u8)]
        pub enum ParseError {
            $( $(#[$doc])* $variant, )*
        }

        impl ParseError {
            /// Every reason, in [`ParseError::index`] order.
            pub const ALL: [ParseError; Self::COUNT] = [$( ParseError::$variant, )*];
            /// Number of reasons: the length of a counter array.
            pub const COUNT: usize = [$( $name, )*].len();

            /// snake_case name, usable as a metric label.
            pub const fn name(self) -> &'static str {
                match self {
                    $( ParseError::$variant => $name, )*
                }
            }

            /// `false` for packets that are well-formed but not tracked
            /// (non-IP, fragments, too many VLAN tags).
            pub const fn is_malformed(self) -> bool {
                match self {
                    $( ParseError::$variant => $m, )*
                }
            }
        }
    };
}

parse_errors! {
    /// The EtherType (or cooked-capture protocol) is not IPv4 or IPv6: ARP,
    /// LLDP, ... Not malformed.
    NotIp = "not_ip", malformed: false;
    /// An IPv4 fragment (MF set or offset != 0) or an IPv6 fragment header.
    /// Not reassembled; not malformed.
    Fragment = "fragment", malformed: false;
    /// More than two VLAN tags, or a service tag in the inner position. Not
    /// malformed, just not supported.
    VlanTooDeep = "vlan_too_deep", malformed: false;
    /// A zero-length packet.
    Empty = "empty", malformed: true;
    /// The frame ends inside the Ethernet header or a VLAN tag.
    EthernetTruncated = "ethernet_truncated", malformed: true;
    /// A cooked-capture (Linux SLL/SLL2) header is cut short.
    LinkTruncated = "link_truncated", malformed: true;
    /// The version nibble does not match (IPv4 EtherType with version != 4,
    /// IPv6 with != 6, raw IP with neither).
    BadIpVersion = "bad_ip_version", malformed: true;
    /// The packet ends before the IPv4 header or before its total length.
    Ipv4Truncated = "ipv4_truncated", malformed: true;
    /// IHL below 5.
    Ipv4BadHeaderLength = "ipv4_bad_header_length", malformed: true;
    /// Total length below the header length.
    Ipv4BadTotalLength = "ipv4_bad_total_length", malformed: true;
    /// The packet ends before the IPv6 header or before its payload length.
    Ipv6Truncated = "ipv6_truncated", malformed: true;
    /// An extension header runs past the payload.
    Ipv6ExtensionTruncated = "ipv6_extension_truncated", malformed: true;
    /// The TCP header or its options run past the IP payload.
    TcpTruncated = "tcp_truncated", malformed: true;
    /// TCP data offset below 5.
    TcpBadDataOffset = "tcp_bad_data_offset", malformed: true;
    /// The UDP header runs past the IP payload.
    UdpTruncated = "udp_truncated", malformed: true;
    /// UDP length field below 8 or beyond the IP payload.
    UdpBadLength = "udp_bad_length", malformed: true;
    /// Fewer than 8 bytes of ICMP/ICMPv6.
    IcmpTruncated = "icmp_truncated", malformed: true;
    /// The GRE header or an optional field it announces runs past the payload.
    GreTruncated = "gre_truncated", malformed: true;
    /// GRE version other than 0 or 1.
    GreBadVersion = "gre_bad_version", malformed: true;
    /// GRE version 1 without the K bit, or with C or R set.
    GreBadFlags = "gre_bad_flags", malformed: true;
}

impl ParseError {
    /// Position in [`ParseError::ALL`], for indexing a counter array.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for ParseError {}

/// Parses an Ethernet II frame (up to two VLAN tags) carrying IPv4 or IPv6.
pub fn parse_ethernet(frame: &[u8]) -> Result<FlowRepr, ParseError> {
    by_value(frame, parse_ethernet_into)
}

/// [`parse_ethernet`] into `out`, which on error holds a partial parse.
///
/// The worker's path: the summary is written field by field where the table
/// will read it, instead of built in a `Result` and copied (store
/// forwarding: `docs/dataplane.md#store-forwarding`).
pub fn parse_ethernet_into(frame: &[u8], out: &mut FlowRepr) -> Result<(), ParseError> {
    let u = ethernet::strip(frame)?;
    match u.ethertype {
        ethernet::ethertype::IPV4 => parse_ipv4_into(u.payload, out),
        ethernet::ethertype::IPV6 => parse_ipv6_into(u.payload, out),
        _ => Err(ParseError::NotIp),
    }
}

/// Parses a raw IP packet; the version nibble decides IPv4 or IPv6.
pub fn parse_ip(packet: &[u8]) -> Result<FlowRepr, ParseError> {
    match packet.first().map(|b| b >> 4) {
        None => Err(ParseError::Empty),
        Some(4) => parse_ipv4(packet),
        Some(6) => parse_ipv6(packet),
        Some(_) => Err(ParseError::BadIpVersion),
    }
}

/// Parses an IPv4 packet (the version must be 4).
pub fn parse_ipv4(packet: &[u8]) -> Result<FlowRepr, ParseError> {
    by_value(packet, parse_ipv4_into)
}

/// Parses an IPv6 packet (the version must be 6), walking extension headers.
pub fn parse_ipv6(packet: &[u8]) -> Result<FlowRepr, ParseError> {
    by_value(packet, parse_ipv6_into)
}

fn by_value(
    bytes: &[u8],
    parse: fn(&[u8], &mut FlowRepr) -> Result<(), ParseError>,
) -> Result<FlowRepr, ParseError> {
    let mut out = FlowRepr::default();
    parse(bytes, &mut out).map(|()| out)
}

fn parse_ipv4_into(packet: &[u8], out: &mut FlowRepr) -> Result<(), ParseError> {
    match packet.first() {
        None => return Err(ParseError::Empty),
        Some(b) if b >> 4 != 4 => return Err(ParseError::BadIpVersion),
        Some(_) => {}
    }
    let ip = Ipv4Packet::new_checked(packet)?;
    if ip.is_fragment() {
        return Err(ParseError::Fragment);
    }
    out.tuple = Tuple {
        src: Addr::from_v4(ip.src_addr()),
        dst: Addr::from_v4(ip.dst_addr()),
        proto: ip.protocol(),
        family: Family::V4,
        ..Tuple::default()
    };
    out.ip_len = u32::from(ip.total_len());
    parse_l4(&mut out.tuple, &mut out.l4, ip.payload())
}

fn parse_ipv6_into(packet: &[u8], out: &mut FlowRepr) -> Result<(), ParseError> {
    match packet.first() {
        None => return Err(ParseError::Empty),
        Some(b) if b >> 4 != 6 => return Err(ParseError::BadIpVersion),
        Some(_) => {}
    }
    let ip = Ipv6Packet::new_checked(packet)?;
    let payload = ip.payload();
    let walk = ipv6::walk(ip.next_header(), payload)?;
    if walk.fragment.is_some() {
        return Err(ParseError::Fragment);
    }
    let l4 = payload
        .get(walk.offset..)
        .ok_or(ParseError::Ipv6ExtensionTruncated)?;
    out.tuple = Tuple {
        src: Addr::from_v6(ip.src_addr()),
        dst: Addr::from_v6(ip.dst_addr()),
        proto: walk.protocol,
        family: Family::V6,
        ..Tuple::default()
    };
    out.ip_len = ipv6::HEADER_LEN as u32 + u32::from(ip.payload_len());
    parse_l4(&mut out.tuple, &mut out.l4, l4)
}

/// `true` if `proto` is the ICMP of `family` (ICMP over IPv4, ICMPv6 over
/// IPv6); the other combination is tracked as a generic protocol, as Linux does.
fn is_icmp(family: Family, proto: u8) -> bool {
    match family {
        Family::V4 => proto == proto::ICMP,
        Family::V6 => proto == proto::ICMPV6,
    }
}

/// Fills the ports of `tuple` from the L4 header in `data` (the IP payload,
/// bounded by the IP length) and `out` with the per-protocol summary.
fn parse_l4(tuple: &mut Tuple, out: &mut L4, data: &[u8]) -> Result<(), ParseError> {
    // Each arm stores its own variant: one `*out = match ..` builds the
    // value in a temporary first and copies it (see `parse_ethernet_into`).
    match tuple.proto {
        proto::TCP => {
            let tcp = TcpPacket::new_checked(data)?;
            // A segment without options (most, unless the peers use
            // timestamps) skips the walk; only two of its fields are kept.
            let (wscale, sack_perm) = if tcp.options().is_empty() {
                (None, false)
            } else {
                let o = tcp.parsed_options();
                (o.wscale, o.sack_perm)
            };
            tuple.src_port = tcp.src_port();
            tuple.dst_port = tcp.dst_port();
            *out = L4::Tcp(TcpInfo {
                seq: tcp.seq_number(),
                ack: tcp.ack_number(),
                flags: tcp.flags(),
                window: tcp.window_len(),
                wscale,
                sack_perm,
                payload_len: tcp.payload().len() as u32,
            });
        }
        proto::UDP => {
            let udp = UdpPacket::new_checked(data)?;
            tuple.src_port = udp.src_port();
            tuple.dst_port = udp.dst_port();
            *out = L4::Udp;
        }
        p if is_icmp(tuple.family, p) => {
            let icmp = IcmpPacket::new_checked(data)?;
            let (t, code) = (icmp.msg_type(), icmp.msg_code());
            let (has_id, is_error) = match tuple.family {
                Family::V4 => (icmp::v4_has_id(t), icmp::v4_is_error(t)),
                Family::V6 => (icmp::v6_has_id(t), icmp::v6_is_error(t)),
            };
            let id = if has_id { icmp.ident() } else { 0 };
            tuple.src_port = id;
            tuple.dst_port = u16::from(t) << 8 | u16::from(code);
            let inner = if is_error {
                quoted_tuple(tuple.family, icmp.payload())
            } else {
                None
            };
            *out = L4::Icmp(IcmpInfo {
                icmp_type: t,
                code,
                id,
                inner,
            });
        }
        proto::GRE => {
            let gre = GrePacket::new_checked(data)?;
            *out = L4::Gre(GreInfo {
                version: gre.version(),
                key: gre.key(),
                protocol: gre.protocol(),
            });
        }
        _ => *out = L4::Other,
    }
    Ok(())
}

/// The tuple of the packet an ICMP error quotes (`family` is the outer
/// family: ICMP quotes IPv4, ICMPv6 quotes IPv6), built the way
/// [`parse_ipv4`] / [`parse_ipv6`] build it. The quote may end anywhere after
/// the first 8 bytes of the L4 header; only those are read (ports for TCP and
/// UDP, type/code/id for ICMP). `None` if the quote is too short or
/// inconsistent, or is a non-first fragment (no L4 header), as Linux's
/// `nf_ct_get_tuplepr` gives up there too.
pub fn quoted_tuple(family: Family, quote: &[u8]) -> Option<Tuple> {
    let (mut tuple, l4) = match family {
        Family::V4 => {
            let ip = Ipv4Packet::new_unchecked(quote);
            ip.check_header_len().ok()?;
            if ip.version() != 4 || ip.frag_offset() != 0 {
                return None;
            }
            let t = Tuple {
                src: Addr::from_v4(ip.src_addr()),
                dst: Addr::from_v4(ip.dst_addr()),
                proto: ip.protocol(),
                family,
                ..Tuple::default()
            };
            (t, quote.get(ip.payload_range())?)
        }
        Family::V6 => {
            let ip = Ipv6Packet::new_unchecked(quote);
            ip.check_header_len().ok()?;
            if ip.version() != 6 {
                return None;
            }
            let payload = quote.get(ip.payload_range())?;
            let mut w = ipv6::walk(ip.next_header(), payload).ok()?;
            if let Some(frag) = w.fragment {
                if frag.offset != 0 {
                    return None;
                }
                // A first fragment: the L4 header follows, maybe after more
                // extension headers.
                let rest = payload.get(w.offset..)?;
                let w2 = ipv6::walk(w.protocol, rest).ok()?;
                if w2.fragment.is_some() {
                    return None;
                }
                w = ipv6::Walk {
                    protocol: w2.protocol,
                    offset: w.offset + w2.offset,
                    fragment: None,
                };
            }
            let t = Tuple {
                src: Addr::from_v6(ip.src_addr()),
                dst: Addr::from_v6(ip.dst_addr()),
                proto: w.protocol,
                family,
                ..Tuple::default()
            };
            (t, payload.get(w.offset..)?)
        }
    };
    match tuple.proto {
        proto::TCP | proto::UDP => {
            let h = l4.get(..8)?;
            tuple.src_port = be_u16(h, 0..2);
            tuple.dst_port = be_u16(h, 2..4);
        }
        p if is_icmp(family, p) => {
            let icmp = IcmpPacket::new_checked(l4).ok()?;
            let t = icmp.msg_type();
            let has_id = match family {
                Family::V4 => icmp::v4_has_id(t),
                Family::V6 => icmp::v6_has_id(t),
            };
            tuple.src_port = if has_id { icmp.ident() } else { 0 };
            tuple.dst_port = u16::from(t) << 8 | u16::from(icmp.msg_code());
        }
        _ => {}
    }
    Some(tuple)
}

#[cfg(test)]
mod tests;
