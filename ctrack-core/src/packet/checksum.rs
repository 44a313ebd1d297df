//! Internet checksums (RFC 1071) and the check Linux conntrack makes before
//! it tracks a packet.
//!
//! Linux (`nf_conntrack_checksum=1`, the default) verifies the TCP, UDP,
//! ICMP and ICMPv6 checksum of every packet it sees at PRE_ROUTING whose skb
//! the driver did not already mark `CHECKSUM_UNNECESSARY`
//! (`nf_conntrack_proto_tcp.c` `tcp_error`, `nf_conntrack_proto_udp.c`
//! `udp_error`, `nf_conntrack_proto_icmp.c` `icmp_error`, through
//! `nf_ip_checksum` / `nf_ip6_checksum`). A packet that fails is invalid: it
//! creates no connection and is counted on none. The IPv4 header checksum is
//! checked even earlier, by `ip_rcv_core`, which drops the packet.
//!
//! [`verify_ip`] does the same on a packet that parsed: the NIC's word
//! ([`RxChecksum`], from DPDK's RX offload flags) is taken where it has one,
//! and the sum is computed in software otherwise. Exactly as Linux:
//!
//! - TCP and UDP sums include the pseudo-header, with the length of the IP
//!   payload after the headers (Linux's `skb->len - dataoff`), not the UDP
//!   length field; ICMPv6 includes the IPv6 pseudo-header; ICMP (over IPv4)
//!   does not.
//! - A UDP checksum of zero means "none" and is not verified, over IPv4 and
//!   IPv6 alike (`udp_error` returns before `nf_checksum`).
//! - Other protocols (GRE, generic, ICMP over IPv6, ICMPv6 over IPv4) have
//!   no checksum check.
//! - The IPv6 pseudo-header uses the destination address of the IPv6
//!   header, even after a routing header (as `nf_ip6_checksum` does).
//!
//! See `docs/conntrack.md` ("Checksums") for the setting that turns this off.

use super::{Ipv4Packet, Ipv6Packet, ethernet, ipv6};
use crate::flow::proto;

/// What the NIC says about one checksum of a received packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Offload {
    /// Not checked by the NIC (or not reported): verify in software.
    #[default]
    Unknown,
    /// Checked and good (DPDK `..._CKSUM_GOOD`, and `..._CKSUM_NONE`: the data
    /// is known intact though the field is not filled in, e.g. virtio).
    Good,
    /// Checked and wrong (DPDK `..._CKSUM_BAD`).
    Bad,
}

/// The NIC's word on a received packet's IPv4 header checksum and its L4
/// (TCP/UDP) checksum. [`RxChecksum::UNKNOWN`] when the port reports nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RxChecksum {
    pub ip: Offload,
    pub l4: Offload,
}

impl RxChecksum {
    /// Nothing verified by the NIC: everything is checked in software.
    pub const UNKNOWN: RxChecksum = RxChecksum {
        ip: Offload::Unknown,
        l4: Offload::Unknown,
    };
    /// Both verified good: nothing is left to check.
    pub const GOOD: RxChecksum = RxChecksum {
        ip: Offload::Good,
        l4: Offload::Good,
    };
}

/// Which checksum was wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadChecksum {
    /// The IPv4 header checksum.
    Ipv4Header,
    /// The TCP, UDP, ICMP or ICMPv6 checksum.
    L4,
}

/// The one's-complement sum of `data` as big-endian 16-bit words (an odd
/// last byte padded with zero), added to `acc`, not folded. Sums of pieces
/// that start at even offsets may be added together.
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    // 32-bit words: 2^16 = 1 (mod 0xffff), so their sum folds to the same
    // value as the sum of 16-bit words, in half the additions.
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a [`sum`] to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to write into a header whose checksum field is zero and
/// whose [`sum`] (pseudo-header included) is `acc`.
pub fn checksum_of(acc: u64) -> u16 {
    !fold(acc)
}

/// `true` if data whose sum (checksum field included) is `acc` is intact.
#[inline]
fn is_good(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// Sum of the IPv4 pseudo-header (RFC 793/768).
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> u64 {
    u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(protocol)
        + u64::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 8.1).
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], protocol: u8, len: u32) -> u64 {
    sum(src, 0) + sum(dst, 0) + u64::from(len) + u64::from(protocol)
}

/// [`verify_ip`] on an Ethernet frame (VLAN tags stripped). A frame that is
/// not IP is `Ok`: there is nothing to verify.
pub fn verify_ethernet(frame: &[u8], nic: RxChecksum) -> Result<(), BadChecksum> {
    match ethernet::strip(frame) {
        Ok(u) if u.ethertype == ethernet::ethertype::IPV4 => verify_ipv4(u.payload, nic),
        Ok(u) if u.ethertype == ethernet::ethertype::IPV6 => verify_ipv6(u.payload, nic),
        _ => Ok(()),
    }
}

/// Verifies the checksums Linux conntrack verifies (see the module doc) on
/// the IP packet `packet`, trusting `nic` where it vouches. Meant for a
/// packet that parsed: anything that does not parse is `Ok` (the parser
/// reports it), and nothing here panics on any input.
pub fn verify_ip(packet: &[u8], nic: RxChecksum) -> Result<(), BadChecksum> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => verify_ipv4(packet, nic),
        Some(6) => verify_ipv6(packet, nic),
        _ => Ok(()),
    }
}

fn verify_ipv4(packet: &[u8], nic: RxChecksum) -> Result<(), BadChecksum> {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return Ok(());
    };
    match nic.ip {
        Offload::Good => {}
        Offload::Bad => return Err(BadChecksum::Ipv4Header),
        Offload::Unknown => {
            // check_len: the header (options included) is in the buffer.
            if !is_good(sum(&packet[..ip.header_len()], 0)) {
                return Err(BadChecksum::Ipv4Header);
            }
        }
    }
    if ip.is_fragment() {
        // Not tracked; and only the whole datagram has a checksum.
        return Ok(());
    }
    let l4 = ip.payload();
    let protocol = ip.protocol();
    if protocol == proto::ICMP {
        // No pseudo-header; NICs do not check ICMP, so no flag is trusted.
        return if is_good(sum(l4, 0)) {
            Ok(())
        } else {
            Err(BadChecksum::L4)
        };
    }
    let Ok(len) = u16::try_from(l4.len()) else {
        return Ok(());
    };
    verify_tcp_udp(protocol, l4, nic.l4, || {
        pseudo_v4(ip.src_addr(), ip.dst_addr(), protocol, len)
    })
}

fn verify_ipv6(packet: &[u8], nic: RxChecksum) -> Result<(), BadChecksum> {
    let Ok(ip) = Ipv6Packet::new_checked(packet) else {
        return Ok(());
    };
    let payload = ip.payload();
    let Ok(w) = ipv6::walk(ip.next_header(), payload) else {
        return Ok(());
    };
    if w.fragment.is_some() {
        return Ok(());
    }
    let Some(l4) = payload.get(w.offset..) else {
        return Ok(());
    };
    let pseudo = || pseudo_v6(&ip.src_addr(), &ip.dst_addr(), w.protocol, l4.len() as u32);
    if w.protocol == proto::ICMPV6 {
        return if is_good(sum(l4, pseudo())) {
            Ok(())
        } else {
            Err(BadChecksum::L4)
        };
    }
    verify_tcp_udp(w.protocol, l4, nic.l4, pseudo)
}

/// The TCP or UDP checksum of `l4` (anything else passes), trusting the
/// NIC's `nic` word; `pseudo` is the pseudo-header's sum.
fn verify_tcp_udp(
    protocol: u8,
    l4: &[u8],
    nic: Offload,
    pseudo: impl FnOnce() -> u64,
) -> Result<(), BadChecksum> {
    match protocol {
        proto::TCP => {}
        // A zero UDP checksum is "none" (checked before any NIC flag: a NIC
        // may call it bad where Linux would not look).
        proto::UDP if l4.get(6..8) == Some(&[0, 0]) => return Ok(()),
        proto::UDP => {}
        _ => return Ok(()),
    }
    match nic {
        Offload::Good => Ok(()),
        Offload::Bad => Err(BadChecksum::L4),
        Offload::Unknown if is_good(sum(l4, pseudo())) => Ok(()),
        Offload::Unknown => Err(BadChecksum::L4),
    }
}

/// Writes correct checksums into the IP packet `packet` (the IPv4 header's,
/// and the TCP, UDP, ICMP or ICMPv6 one, as [`verify_ip`] checks them): for
/// tests and tools that craft packets. A packet that does not parse, a
/// fragment or another protocol keeps its L4 bytes; a UDP checksum that
/// comes out as zero is sent as `0xffff` (RFC 768).
pub fn fill_ip(packet: &mut [u8]) {
    let (l4_start, protocol, pseudo) = match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(ip) = Ipv4Packet::new_checked(&*packet) else {
                return;
            };
            let (hl, frag, protocol) = (ip.header_len(), ip.is_fragment(), ip.protocol());
            let l4_len = ip.payload().len();
            let pseudo = pseudo_v4(ip.src_addr(), ip.dst_addr(), protocol, l4_len as u16);
            packet[10..12].fill(0);
            let c = checksum_of(sum(&packet[..hl], 0));
            packet[10..12].copy_from_slice(&c.to_be_bytes());
            if frag {
                return;
            }
            let pseudo = if protocol == proto::ICMP { 0 } else { pseudo };
            (hl..hl + l4_len, protocol, pseudo)
        }
        Some(6) => {
            let Ok(ip) = Ipv6Packet::new_checked(&*packet) else {
                return;
            };
            let Ok(w) = ipv6::walk(ip.next_header(), ip.payload()) else {
                return;
            };
            let end = ip.payload_range().end;
            let start = ipv6::HEADER_LEN + w.offset;
            if w.fragment.is_some() || start > end {
                return;
            }
            let pseudo = pseudo_v6(
                &ip.src_addr(),
                &ip.dst_addr(),
                w.protocol,
                (end - start) as u32,
            );
            (start..end, w.protocol, pseudo)
        }
        _ => return,
    };
    let at = match protocol {
        proto::TCP => 16,
        proto::UDP => 6,
        proto::ICMP | proto::ICMPV6 => 2,
        _ => return,
    };
    let l4 = &mut packet[l4_start];
    if l4.len() < at + 2 {
        return;
    }
    l4[at..at + 2].fill(0);
    let mut c = checksum_of(sum(l4, pseudo));
    if protocol == proto::UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V4_SRC: [u8; 4] = [192, 0, 2, 1];
    const V4_DST: [u8; 4] = [198, 51, 100, 7];

    fn v4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, protocol, 0, 0];
        p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        p.extend_from_slice(&V4_SRC);
        p.extend_from_slice(&V4_DST);
        p.extend_from_slice(l4);
        fill_ip(&mut p);
        p
    }

    fn v6(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        fill_ip(&mut p);
        p
    }

    /// SYN 40000 -> 80, no options.
    const SYN: [u8; 20] = [
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    /// UDP 5353 -> 53 with 5 payload bytes (odd length).
    const UDP: [u8; 13] = [0x14, 0xe9, 0, 53, 0, 13, 0, 0, 1, 2, 3, 4, 5];
    const ECHO: [u8; 12] = [8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4];
    const ECHO6: [u8; 12] = [128, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4];

    fn good_packets() -> Vec<Vec<u8>> {
        vec![
            v4(proto::TCP, &SYN),
            v4(proto::UDP, &UDP),
            v4(proto::ICMP, &ECHO),
            v6(proto::TCP, &[], &SYN),
            v6(proto::UDP, &[], &UDP),
            v6(proto::ICMPV6, &[], &ECHO6),
            // Behind a hop-by-hop header: the pseudo-header length is the
            // upper layer's.
            v6(0, &[proto::UDP, 0, 1, 4, 0, 0, 0, 0], &UDP),
        ]
    }

    #[test]
    fn known_sums() {
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        // Odd length: the last byte is the high byte of a zero-padded word.
        assert_eq!(fold(sum(&[0x12], 0)), 0x1200);
        assert_eq!(fold(sum(&[0xff, 0xff, 0x00, 0x01], 0)), 0x0001);
        // An IPv4 header from the wire (RFC 1071-style example header).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h, 0)), 0xffff);
    }

    #[test]
    fn good_packets_pass_with_any_nic_word_but_bad() {
        for p in good_packets() {
            assert_eq!(verify_ip(&p, RxChecksum::UNKNOWN), Ok(()), "{p:02x?}");
            assert_eq!(verify_ip(&p, RxChecksum::GOOD), Ok(()));
        }
    }

    #[test]
    fn every_flipped_bit_of_the_l4_part_is_caught() {
        for p in good_packets() {
            let ip = crate::packet::parse_ip(&p).unwrap();
            // Where the transport header starts: after the fixed header and
            // (the last packet) an 8-byte hop-by-hop header.
            let l4_start = match (p[0] >> 4, p[6]) {
                (4, _) => 20,
                (_, 0) => 48,
                _ => 40,
            };
            for i in l4_start..p.len() {
                for bit in 0..8 {
                    let mut q = p.clone();
                    q[i] ^= 1 << bit;
                    let udp_none =
                        ip.tuple.proto == proto::UDP && q[l4_start + 6..l4_start + 8] == [0, 0];
                    if !udp_none {
                        assert_eq!(
                            verify_ip(&q, RxChecksum::UNKNOWN),
                            Err(BadChecksum::L4),
                            "flip at {i}.{bit}: {q:02x?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_ipv4_header() {
        let mut p = v4(proto::UDP, &UDP);
        p[8] ^= 1; // TTL
        assert_eq!(
            verify_ip(&p, RxChecksum::UNKNOWN),
            Err(BadChecksum::Ipv4Header)
        );
        // The NIC vouched for it: trusted.
        let nic = RxChecksum {
            ip: Offload::Good,
            l4: Offload::Unknown,
        };
        assert_eq!(verify_ip(&p, nic), Ok(()));
        // The NIC says bad: bad, whatever the bytes.
        let good = v4(proto::UDP, &UDP);
        let nic = RxChecksum {
            ip: Offload::Bad,
            l4: Offload::Good,
        };
        assert_eq!(verify_ip(&good, nic), Err(BadChecksum::Ipv4Header));
    }

    #[test]
    fn nic_word_on_l4() {
        let mut p = v4(proto::TCP, &SYN);
        p[20 + 16] ^= 0x40;
        assert_eq!(verify_ip(&p, RxChecksum::UNKNOWN), Err(BadChecksum::L4));
        assert_eq!(verify_ip(&p, RxChecksum::GOOD), Ok(()));
        let bad = RxChecksum {
            ip: Offload::Good,
            l4: Offload::Bad,
        };
        assert_eq!(verify_ip(&v4(proto::TCP, &SYN), bad), Err(BadChecksum::L4));
        // NICs do not check ICMP: a flag is no excuse for a bad ICMP sum.
        let mut e = v4(proto::ICMP, &ECHO);
        e[22] ^= 1;
        assert_eq!(verify_ip(&e, RxChecksum::GOOD), Err(BadChecksum::L4));
    }

    #[test]
    fn udp_zero_checksum_is_none_over_both_families() {
        for mut p in [v4(proto::UDP, &UDP), v6(proto::UDP, &[], &UDP)] {
            let at = if p[0] >> 4 == 4 { 20 + 6 } else { 40 + 6 };
            p[at..at + 2].fill(0);
            p[at + 3] ^= 0xff; // payload garbage: still not verified
            assert_eq!(verify_ip(&p, RxChecksum::UNKNOWN), Ok(()));
            let nic_bad = RxChecksum {
                ip: Offload::Good,
                l4: Offload::Bad,
            };
            assert_eq!(verify_ip(&p, nic_bad), Ok(()));
        }
    }

    #[test]
    fn other_protocols_and_fragments_are_not_checked() {
        // GRE with garbage, ICMP over IPv6 (generic there), a fragment.
        assert_eq!(verify_ip(&v4(47, &[0xff; 8]), RxChecksum::UNKNOWN), Ok(()));
        let mut p = v6(proto::ICMP, &[], &ECHO);
        p[42] ^= 0xff;
        assert_eq!(verify_ip(&p, RxChecksum::UNKNOWN), Ok(()));
        let mut f = v4(proto::UDP, &UDP);
        f[6] = 0x20; // MF
        fill_ip(&mut f);
        f[25] ^= 0xff;
        assert_eq!(verify_ip(&f, RxChecksum::UNKNOWN), Ok(()));
    }

    #[test]
    fn ethernet_and_vlan() {
        let ip = v4(proto::UDP, &UDP);
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 5, 0x08, 0];
        f.extend_from_slice(&ip);
        assert_eq!(verify_ethernet(&f, RxChecksum::UNKNOWN), Ok(()));
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(
            verify_ethernet(&f, RxChecksum::UNKNOWN),
            Err(BadChecksum::L4)
        );
        // Not IP: nothing to verify.
        assert_eq!(verify_ethernet(&[0; 20], RxChecksum::UNKNOWN), Ok(()));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = verify_ip(&data, RxChecksum::UNKNOWN);
            let _ = verify_ethernet(&data, RxChecksum::UNKNOWN);
            let mut d = data.clone();
            fill_ip(&mut d);
            // What fill_ip filled and parses, verify_ip accepts.
            if crate::packet::parse_ip(&d).is_ok() {
                prop_assert_eq!(verify_ip(&d, RxChecksum::UNKNOWN), Ok(()));
            }
        }
    }
}
