//! NAT rewriting of a frame in place: the addresses, TCP/UDP ports and
//! ICMP query ids of a packet become those of a given tuple, with every
//! checksum that covers them updated incrementally (RFC 1624, eqn. 3), as
//! Linux's `nf_nat_ipv4_manip_pkt`/`nf_nat_ipv6_manip_pkt` and the
//! per-protocol `manip_pkt` do:
//!
//! - IPv4 header checksum: addresses;
//! - TCP and UDP checksums: the pseudo-header's addresses and the ports; a
//!   UDP checksum of zero ("none", IPv4) stays zero, and an updated one that
//!   comes out as zero is written as `0xffff` (RFC 768, Linux's
//!   `CSUM_MANGLED_0`);
//! - ICMP query (echo, timestamp, ...): the id, which the tuple carries as
//!   its source port in both directions, as the parser reads it; ICMPv6
//!   also the pseudo-header;
//! - ICMP errors ([`translate_icmp_error`]): the outer addresses and the
//!   quoted packet (its addresses, its ports, its IPv4 header checksum, and
//!   its L4 checksum when the quote holds it), then the ICMP checksum
//!   recomputed over the message, as `nf_nat_icmp_reply_translation` does.
//!
//! Only what changes is touched: TTL, options, MSS and payload are left
//! alone. Nothing is allocated and nothing panics on any input: a frame that
//! is not a whole, unfragmented IPv4/IPv6 packet of the expected kind is an
//! error for the caller to count (fragments are reassembled before NAT).

use super::checksum::{checksum_of, fold, sum};
use super::ipv6;
use crate::flow::{Addr, Family, Tuple, proto};

/// Why a frame could not be rewritten.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RewriteError {
    /// Not an IPv4/IPv6 packet, or shorter than its headers say.
    Malformed,
    /// A fragment: NAT needs the reassembled packet.
    Fragment,
    /// The packet's family differs from the tuple's.
    FamilyMismatch,
    /// [`translate_icmp_error`] on a packet that is not an ICMP error with a
    /// quoted packet.
    NotIcmpError,
}

/// The IP header's offset in an Ethernet frame (after any 802.1Q/802.1ad
/// tags), and the ethertype found there.
pub(crate) fn l3_offset(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    loop {
        let ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        match ty {
            0x8100 | 0x88a8 => off += 4,
            _ => return Some((off + 2, ty)),
        }
    }
}

/// The one's-complement difference that turns a checksum over `old` into
/// one over `new` (same length, starting at an even offset): the
/// `~m + m'` of RFC 1624 eqn. 3, unfolded.
#[inline]
pub(crate) fn delta(old: &[u8], new: &[u8]) -> u64 {
    // ~m is (0xffff - m) per 16-bit word (the fields are whole words).
    let not_old: u64 = old
        .chunks_exact(2)
        .map(|w| u64::from(!u16::from_be_bytes([w[0], w[1]])))
        .sum();
    not_old + sum(new, 0)
}

/// [`delta`] of fields of `N` bytes (`N` even), a word at a time: the same
/// value modulo 0xffff, so the same checksum once folded.
#[inline(always)]
fn delta_of<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u64 {
    let mut d = 0;
    for i in (0..N).step_by(2) {
        d += u64::from(!u16::from_be_bytes([old[i], old[i + 1]]))
            + u64::from(u16::from_be_bytes([new[i], new[i + 1]]));
    }
    d
}

/// Applies a [`delta`] to the checksum stored at `at..at + 2` of `buf`:
/// `HC' = ~(~HC + ~m + m')`.
#[inline]
pub(crate) fn adjust(buf: &mut [u8], at: usize, d: u64) {
    let hc = u16::from_be_bytes([buf[at], buf[at + 1]]);
    let c = !fold(u64::from(!hc) + d);
    buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Where an IP packet's parts are, once checked.
pub(crate) struct Ip {
    pub(crate) family: Family,
    /// Offset of the source address; the destination follows.
    addrs: usize,
    /// IPv4 header checksum offset.
    hcsum: Option<usize>,
    pub(crate) l4: usize,
    pub(crate) end: usize,
    pub(crate) proto: u8,
}

/// Locates the parts of the IP packet at `buf[at..]`. With `quoted` (the
/// packet inside an ICMP error) the length fields are not required to fit
/// (a quote is cut short), only the headers.
pub(crate) fn locate(buf: &[u8], at: usize, quoted: bool) -> Result<Ip, RewriteError> {
    let first = *buf.get(at).ok_or(RewriteError::Malformed)?;
    match first >> 4 {
        4 => {
            let h = buf.get(at..at + 20).ok_or(RewriteError::Malformed)?;
            let hl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if hl < 20 || buf.len() < at + hl || (!quoted && (total < hl || buf.len() < at + total))
            {
                return Err(RewriteError::Malformed);
            }
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if frag & 0x3fff != 0 {
                return Err(RewriteError::Fragment);
            }
            let end = if quoted { buf.len() } else { at + total };
            Ok(Ip {
                family: Family::V4,
                addrs: at + 12,
                hcsum: Some(at + 10),
                l4: at + hl,
                end,
                proto: h[9],
            })
        }
        6 => {
            let h = buf
                .get(at..at + ipv6::HEADER_LEN)
                .ok_or(RewriteError::Malformed)?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let end = if quoted {
                buf.len()
            } else {
                at + ipv6::HEADER_LEN + plen
            };
            if end > buf.len() {
                return Err(RewriteError::Malformed);
            }
            let payload = &buf[at + ipv6::HEADER_LEN..end];
            let w = ipv6::walk(h[6], payload).map_err(|_| RewriteError::Malformed)?;
            if w.fragment.is_some() {
                return Err(RewriteError::Fragment);
            }
            Ok(Ip {
                family: Family::V6,
                addrs: at + 8,
                hcsum: None,
                l4: at + ipv6::HEADER_LEN + w.offset,
                end,
                proto: w.protocol,
            })
        }
        _ => Err(RewriteError::Malformed),
    }
}

fn is_icmp(family: Family, p: u8) -> bool {
    match family {
        Family::V4 => p == proto::ICMP,
        Family::V6 => p == proto::ICMPV6,
    }
}

/// Whether an ICMP(v6) type is an error (carries a quoted packet).
fn icmp_is_error(family: Family, t: u8) -> bool {
    match family {
        Family::V4 => matches!(t, 3 | 4 | 5 | 11 | 12),
        Family::V6 => t < 128,
    }
}

/// Rewrites the addresses (and ports/ids) of the IP packet `ip` in `buf` to
/// those of `to`, updating the checksums as the module doc says; an L4
/// checksum cut off a quoted packet's end is left out, as Linux does.
fn rewrite(buf: &mut [u8], ip: &Ip, to: &Tuple) -> Result<(), RewriteError> {
    if ip.family != to.family {
        return Err(RewriteError::FamilyMismatch);
    }
    // The addresses' delta, for every pseudo-header.
    let d_addr = set_addrs(buf, ip, &to.src, &to.dst);
    let l4 = ip.l4;
    let avail = ip.end.saturating_sub(l4);
    match ip.proto {
        proto::TCP | proto::UDP => {
            if avail < 4 {
                return Err(RewriteError::Malformed);
            }
            let ([s0, s1], [d0, d1]) = (to.src_port.to_be_bytes(), to.dst_port.to_be_bytes());
            let ports = [s0, s1, d0, d1];
            let old = [buf[l4], buf[l4 + 1], buf[l4 + 2], buf[l4 + 3]];
            let d = d_addr + delta_of(&old, &ports);
            buf[l4..l4 + 4].copy_from_slice(&ports);
            let at = if ip.proto == proto::TCP {
                l4 + 16
            } else {
                l4 + 6
            };
            if avail >= at - l4 + 2 {
                let zero = buf[at] == 0 && buf[at + 1] == 0;
                if ip.proto == proto::UDP && zero {
                    // No checksum (IPv4; IPv6 forbids it): stays none.
                } else {
                    adjust(buf, at, d);
                    if ip.proto == proto::UDP && buf[at] == 0 && buf[at + 1] == 0 {
                        buf[at..at + 2].copy_from_slice(&[0xff, 0xff]);
                    }
                }
            }
        }
        p if is_icmp(ip.family, p) => {
            if avail < 8 {
                return Err(RewriteError::Malformed);
            }
            if icmp_is_error(ip.family, buf[l4]) {
                return Err(RewriteError::NotIcmpError);
            }
            // The id, which the tuple carries as its source port in both
            // directions (as the parser reads it).
            let id = to.src_port.to_be_bytes();
            let mut d = delta(&buf[l4 + 4..l4 + 6], &id);
            buf[l4 + 4..l4 + 6].copy_from_slice(&id);
            if ip.family == Family::V6 {
                d += d_addr;
            }
            adjust(buf, l4 + 2, d);
        }
        _ => {}
    }
    Ok(())
}

/// Writes the addresses of the IP packet `ip` in `buf` (of its family, in
/// [`Addr`]'s form), updating the IPv4 header checksum incrementally; a
/// packet that already carries them is left alone. Returns the addresses'
/// delta ([`delta`]) for the checksums whose pseudo-header holds them.
fn set_addrs(buf: &mut [u8], ip: &Ip, src: &Addr, dst: &Addr) -> u64 {
    match ip.family {
        Family::V4 => {
            let v4 = |a: &Addr| [a.0[12], a.0[13], a.0[14], a.0[15]];
            set_addrs_of(buf, ip, v4(src), v4(dst))
        }
        Family::V6 => set_addrs_of(buf, ip, src.0, dst.0),
    }
}

/// [`set_addrs`] for addresses of `N` bytes: fixed-size reads, compares and
/// copies (callgrind: 176 instructions per IPv4 packet through slices of
/// the family's length, with `memcmp` and `memcpy` calls, against about 40).
#[inline(always)]
fn set_addrs_of<const N: usize>(buf: &mut [u8], ip: &Ip, src: [u8; N], dst: [u8; N]) -> u64 {
    let a = ip.addrs;
    let mut old_src = [0u8; N];
    let mut old_dst = [0u8; N];
    old_src.copy_from_slice(&buf[a..a + N]);
    old_dst.copy_from_slice(&buf[a + N..a + 2 * N]);
    let d = delta_of(&old_src, &src) + delta_of(&old_dst, &dst);
    if old_src != src || old_dst != dst {
        buf[a..a + N].copy_from_slice(&src);
        buf[a + N..a + 2 * N].copy_from_slice(&dst);
        if let Some(h) = ip.hcsum {
            adjust(buf, h, d);
        }
    }
    d
}

/// Rewrites the packet in Ethernet frame `frame` so that it carries tuple
/// `to`: source and destination addresses, and the TCP/UDP ports or the
/// ICMP query id (`to.src_port`, where the parser puts it). A
/// field already equal is left as it is. ICMP errors go through
/// [`translate_icmp_error`]; other protocols have their addresses rewritten
/// only.
#[inline]
pub fn translate(frame: &mut [u8], to: &Tuple) -> Result<(), RewriteError> {
    if translate_v4_fast(frame, to) {
        return Ok(());
    }
    translate_any(frame, to)
}

/// [`translate`] for any frame (the general path: tags, IPv4 options,
/// IPv6, ICMP, errors).
fn translate_any(frame: &mut [u8], to: &Tuple) -> Result<(), RewriteError> {
    let (at, _) = l3_offset(frame).ok_or(RewriteError::Malformed)?;
    let ip = locate(frame, at, false)?;
    rewrite(frame, &ip, to)
}

/// [`delta`] of one 32-bit word (two 16-bit words).
#[inline(always)]
fn delta32(old: u32, new: u32) -> u64 {
    let o = !old;
    u64::from(o >> 16) + u64::from(o & 0xffff) + u64::from(new >> 16) + u64::from(new & 0xffff)
}

/// [`adjust`] for a delta below 2^32: three end-around carries fold it
/// (the same steps as [`fold`]'s loop, which stops once nothing is left).
#[inline(always)]
fn adjust_small(buf: &mut [u8], at: usize, d: u64) {
    let hc = u16::from_be_bytes([buf[at], buf[at + 1]]);
    let mut acc = u64::from(!hc) + d;
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    buf[at..at + 2].copy_from_slice(&(!(acc as u16)).to_be_bytes());
}

/// [`translate`]'s common case in straight-line code: an untagged IPv4
/// frame without options or fragmentation carrying a whole UDP header or
/// TCP header (callgrind: about 400 instructions through `locate` and
/// `rewrite`, 70 here). The same bytes as the general path (tested); `false`
/// leaves the frame untouched for it.
#[inline(always)]
fn translate_v4_fast(frame: &mut [u8], to: &Tuple) -> bool {
    to.family == Family::V4
        && translate_ipv4(
            frame,
            to.src.v4_octets(),
            to.dst.v4_octets(),
            to.src_port,
            to.dst_port,
        )
}

/// [`translate`]'s IPv4 fast path on its own: the frame gets addresses
/// `src`/`dst` and ports `sport`/`dport` when it is an untagged IPv4
/// frame without options or fragmentation carrying a whole UDP header or
/// TCP header (`true`); otherwise it is left untouched (`false`) for
/// [`translate`].
#[inline(always)]
pub fn translate_ipv4(
    frame: &mut [u8],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> bool {
    const L4: usize = 34;
    let len = frame.len();
    let Some(Ok(h)) = frame.get_mut(..L4 + 8).map(<&mut [u8; L4 + 8]>::try_from) else {
        return false;
    };
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let csum_at = match h[23] {
        proto::UDP => L4 + 6,
        proto::TCP => L4 + 16,
        _ => return false,
    };
    if h[12..15] != [0x08, 0x00, 0x45]
        || u16::from_be_bytes([h[20], h[21]]) & 0x3fff != 0
        || total < csum_at + 2 - 14
        || len < 14 + total
    {
        return false;
    }
    let word =
        |b: &[u8; L4 + 8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (old_src, old_dst, old_ports) = (word(h, 26), word(h, 30), word(h, L4));
    let src = u32::from_be_bytes(src);
    let dst = u32::from_be_bytes(dst);
    let ports = (u32::from(sport) << 16) | u32::from(dport);
    let d_addr = delta32(old_src, src) + delta32(old_dst, dst);
    if old_src != src || old_dst != dst {
        h[26..30].copy_from_slice(&src.to_be_bytes());
        h[30..34].copy_from_slice(&dst.to_be_bytes());
        adjust_small(h, 24, d_addr);
    }
    h[L4..L4 + 4].copy_from_slice(&ports.to_be_bytes());
    let d = d_addr + delta32(old_ports, ports);
    if h[23] == proto::UDP {
        if h[csum_at] == 0 && h[csum_at + 1] == 0 {
            // No checksum: stays none.
            return true;
        }
        adjust_small(h, csum_at, d);
        if h[csum_at] == 0 && h[csum_at + 1] == 0 {
            h[csum_at..csum_at + 2].copy_from_slice(&[0xff, 0xff]);
        }
    } else {
        adjust_small(frame, csum_at, d);
    }
    true
}

/// Rewrites an ICMP or ICMPv6 error in `frame`: the outer source and
/// destination addresses become `outer_src`/`outer_dst` (of `to_inner`'s
/// family, in [`Tuple`]'s address form), the quoted packet gets the tuple
/// `to_inner` (addresses, ports or id, its IPv4 header checksum, and its
/// L4 checksum if the quote holds it), and the ICMP checksum is recomputed
/// over the message (ICMPv6: with the new pseudo-header), as Linux's
/// `nf_nat_icmp_reply_translation` does.
pub fn translate_icmp_error(
    frame: &mut [u8],
    outer_src: Addr,
    outer_dst: Addr,
    to_inner: &Tuple,
) -> Result<(), RewriteError> {
    let (at, _) = l3_offset(frame).ok_or(RewriteError::Malformed)?;
    let ip = locate(frame, at, false)?;
    if !is_icmp(ip.family, ip.proto) {
        return Err(RewriteError::NotIcmpError);
    }
    if ip.end < ip.l4 + 8 {
        return Err(RewriteError::Malformed);
    }
    if !icmp_is_error(ip.family, frame[ip.l4]) {
        return Err(RewriteError::NotIcmpError);
    }
    let (l4, end) = (ip.l4, ip.end);
    // The quoted packet, within this message only.
    {
        let msg = &mut frame[..end];
        let inner = locate(msg, l4 + 8, true)?;
        rewrite(msg, &inner, to_inner)?;
    }
    // The outer addresses (the ICMP checksum is recomputed below).
    set_addrs(frame, &ip, &outer_src, &outer_dst);
    // The ICMP checksum over the whole message.
    frame[l4 + 2..l4 + 4].fill(0);
    let pseudo = match ip.family {
        Family::V4 => 0,
        Family::V6 => {
            super::checksum::pseudo_v6(&outer_src.0, &outer_dst.0, proto::ICMPV6, (end - l4) as u32)
        }
    };
    let c = checksum_of(sum(&frame[l4..end], pseudo));
    frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// What [`decrement_ttl`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ttl {
    /// Decremented; the packet may be forwarded.
    Forward,
    /// The TTL / hop limit was 0 or 1: not forwarded (the router answers
    /// ICMP time exceeded); the frame is unchanged.
    Expired,
}

/// Decrements a forwarded packet's IPv4 TTL (its header checksum updated
/// incrementally, RFC 1624, as Linux's `ip_decrease_ttl`) or IPv6 hop limit.
pub fn decrement_ttl(frame: &mut [u8]) -> Result<Ttl, RewriteError> {
    let (at, _) = l3_offset(frame).ok_or(RewriteError::Malformed)?;
    match frame.get(at).map(|b| b >> 4) {
        Some(4) if frame.len() >= at + 20 => {
            let ttl = frame[at + 8];
            if ttl <= 1 {
                return Ok(Ttl::Expired);
            }
            // TTL is the high byte of the word at offset 8.
            let old = [frame[at + 8], frame[at + 9]];
            frame[at + 8] = ttl - 1;
            let new = [frame[at + 8], frame[at + 9]];
            adjust(frame, at + 10, delta(&old, &new));
            Ok(Ttl::Forward)
        }
        Some(6) if frame.len() >= at + 40 => {
            let hl = frame[at + 7];
            if hl <= 1 {
                return Ok(Ttl::Expired);
            }
            frame[at + 7] = hl - 1;
            Ok(Ttl::Forward)
        }
        _ => Err(RewriteError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::L4;
    use crate::packet::checksum::{RxChecksum, fill_ip, verify_ethernet};
    use crate::packet::parse_ethernet;
    use proptest::prelude::*;

    const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

    /// A frame of `family`/`proto` from `t` with `payload` bytes of L4
    /// payload, checksums filled.
    fn frame(t: &Tuple, l4_kind: u8, payload: &[u8], udp_zero: bool) -> Vec<u8> {
        let mut l4 = match t.proto {
            proto::TCP => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&t.src_port.to_be_bytes());
                h[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
                h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = 0x18;
                h[14..16].copy_from_slice(&512u16.to_be_bytes());
                h
            }
            proto::UDP => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&t.src_port.to_be_bytes());
                h[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h
            }
            _ => {
                // ICMP(v6) echo request (kind 0) or reply (kind 1).
                let ty = match (t.family, l4_kind) {
                    (Family::V4, 0) => 8,
                    (Family::V4, _) => 0,
                    (Family::V6, 0) => 128,
                    (Family::V6, _) => 129,
                };
                let mut h = vec![ty, 0, 0, 0, 0, 0, 0, 7];
                h[4..6].copy_from_slice(&t.src_port.to_be_bytes());
                h
            }
        };
        l4.extend_from_slice(payload);
        let mut ip = match t.family {
            Family::V4 => {
                let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, t.proto, 0, 0];
                h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                h.extend_from_slice(&t.src.0[12..]);
                h.extend_from_slice(&t.dst.0[12..]);
                h
            }
            Family::V6 => {
                let mut h = vec![0x60, 0, 0, 0, 0, 0, t.proto, 64];
                h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                h.extend_from_slice(&t.src.0);
                h.extend_from_slice(&t.dst.0);
                h
            }
        };
        ip.extend_from_slice(&l4);
        fill_ip(&mut ip);
        if udp_zero && t.proto == proto::UDP {
            let at = if t.family == Family::V4 { 20 } else { 40 };
            ip[at + 6..at + 8].fill(0);
        }
        let mut f = ETH.to_vec();
        if t.family == Family::V6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
        }
        f.extend_from_slice(&ip);
        f
    }

    fn addr(family: Family, bytes: [u8; 16]) -> Addr {
        match family {
            Family::V4 => Addr::from_v4([bytes[0], bytes[1], bytes[2], bytes[3]]),
            Family::V6 => Addr::from_v6(bytes),
        }
    }

    fn tuple_strategy() -> impl Strategy<Value = (Tuple, Tuple, u8)> {
        (
            prop::bool::ANY,
            prop_oneof![Just(proto::TCP), Just(proto::UDP), Just(0u8)],
            any::<([u8; 16], [u8; 16], u16, u16)>(),
            any::<([u8; 16], [u8; 16], u16, u16)>(),
            0u8..2,
        )
            .prop_map(|(v6, p, a, b, kind)| {
                let family = if v6 { Family::V6 } else { Family::V4 };
                let p = match p {
                    0 if v6 => proto::ICMPV6,
                    0 => proto::ICMP,
                    p => p,
                };
                let mk = |(s, d, sp, dp): ([u8; 16], [u8; 16], u16, u16)| Tuple {
                    src: addr(family, s),
                    dst: addr(family, d),
                    src_port: sp,
                    dst_port: dp,
                    proto: p,
                    family,
                };
                (mk(a), mk(b), kind)
            })
    }

    /// The frame's tuple as the parser reads it, the ICMP id placed as
    /// `translate` reads it.
    fn parsed(f: &[u8]) -> Tuple {
        parse_ethernet(f).unwrap().tuple
    }

    /// ICMP tuples carry the type and code as their destination port.
    fn equal_but_type(a: &Tuple, b: &Tuple) -> bool {
        if is_icmp(a.family, a.proto) {
            a.src == b.src && a.dst == b.dst && a.src_port == b.src_port
        } else {
            a == b
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any packet translated to any tuple: it parses as that tuple, its
        /// checksums verify, and it equals the same packet built with that
        /// tuple and checksums computed in full (a checksum of 0x0000 and
        /// one of 0xffff are the same number).
        #[test]
        fn incremental_equals_full_recomputation(
            (from, to, kind) in tuple_strategy(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            udp_zero in prop::bool::weighted(0.2),
        ) {
            let udp_zero = udp_zero && from.family == Family::V4;
            let mut f = frame(&from, kind, &payload, udp_zero);
            prop_assert_eq!(verify_ethernet(&f, RxChecksum::default()), Ok(()));
            translate(&mut f, &to).unwrap();
            prop_assert_eq!(verify_ethernet(&f, RxChecksum::default()), Ok(()));
            prop_assert!(equal_but_type(&parsed(&f), &to), "{:?} vs {:?}", parsed(&f), to);
            let full = frame(&to, kind, &payload, udp_zero);
            prop_assert_eq!(f.len(), full.len());
            for (i, (x, y)) in f.iter().zip(&full).enumerate() {
                if x != y {
                    // Only inside a checksum field, as 0 vs 0xffff.
                    let pair = |v: &[u8], i: usize| {
                        let j = i & !1;
                        u16::from_be_bytes([v[j], v[j + 1]])
                    };
                    let (a, b) = (pair(&f, i), pair(&full, i));
                    prop_assert!(
                        (a == 0 && b == 0xffff) || (a == 0xffff && b == 0),
                        "byte {} differs: {:#x} vs {:#x}", i, x, y
                    );
                }
            }
            if udp_zero && from.proto == proto::UDP {
                prop_assert_eq!(&f[14 + 26..14 + 28], &[0, 0]);
            }
        }

        /// The IPv4 fast path writes the same bytes as the general path
        /// (and leaves to it what it does not take).
        #[test]
        fn fast_path_equals_general_path(
            (from, to, kind) in tuple_strategy(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            udp_zero in prop::bool::weighted(0.2),
            cut in 0usize..80,
        ) {
            let udp_zero = udp_zero && from.family == Family::V4;
            let mut a = frame(&from, kind, &payload, udp_zero);
            // Sometimes cut short (the fast path must refuse it then).
            if cut < 40 {
                a.truncate(a.len().saturating_sub(cut));
            }
            let mut b = a.clone();
            let fast = translate_v4_fast(&mut a, &to);
            if fast {
                prop_assert_eq!(translate_any(&mut b, &to), Ok(()));
                prop_assert_eq!(a, b);
            } else {
                prop_assert_eq!(&a, &b, "refused and untouched");
            }
        }

        /// No input panics; what is refused is left alone or rewritten.
        #[test]
        fn any_bytes_never_panic(mut f in proptest::collection::vec(any::<u8>(), 0..200), (_, to, _) in tuple_strategy()) {
            let _ = translate(&mut f, &to);
            let _ = translate_icmp_error(&mut f, to.src, to.dst, &to);
        }
    }

    #[test]
    fn an_icmp_error_is_translated_outside_and_inside() {
        // A UDP datagram 10.0.0.2:5000 -> 192.0.2.9:53 left masqueraded as
        // 198.51.100.1:6000; the server answers port unreachable to
        // 198.51.100.1. Translated back for the inside host.
        let wire = Tuple {
            src: Addr::from_v4([198, 51, 100, 1]),
            dst: Addr::from_v4([192, 0, 2, 9]),
            src_port: 6000,
            dst_port: 53,
            proto: proto::UDP,
            family: Family::V4,
        };
        let quoted = frame(&wire, 0, b"query", false);
        let mut ip = vec![0x45, 0, 0, 0, 0, 2, 0, 0, 64, proto::ICMP, 0, 0];
        ip.extend_from_slice(&[192, 0, 2, 9]);
        ip.extend_from_slice(&[198, 51, 100, 1]);
        ip.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&quoted[14..]);
        let len = ip.len() as u16;
        ip[2..4].copy_from_slice(&len.to_be_bytes());
        fill_ip(&mut ip);
        let mut f = ETH.to_vec();
        f.extend_from_slice(&ip);
        let inside = Tuple {
            src: Addr::from_v4([10, 0, 0, 2]),
            src_port: 5000,
            ..wire
        };
        translate_icmp_error(&mut f, wire.dst, inside.src, &inside).unwrap();
        assert_eq!(verify_ethernet(&f, RxChecksum::default()), Ok(()));
        let r = parse_ethernet(&f).unwrap();
        assert_eq!(r.tuple.dst, inside.src);
        let L4::Icmp(info) = r.l4 else {
            panic!("not icmp: {r:?}")
        };
        assert_eq!(info.inner, Some(inside));
        // The quoted IPv4 header's checksum and the quoted UDP checksum
        // are those of the inside packet.
        let expect = frame(&inside, 0, b"query", false);
        assert_eq!(&f[14 + 28..], &expect[14..]);
    }

    #[test]
    fn ttl_decrements_with_a_valid_checksum_and_expires_at_one() {
        for family in [Family::V4, Family::V6] {
            let t = Tuple {
                proto: proto::UDP,
                family,
                ..Tuple::default()
            };
            let mut f = frame(&t, 0, b"ttl", false);
            let at = 14 + if family == Family::V4 { 8 } else { 7 };
            for ttl in [64u8, 2, 255] {
                f[at] = ttl;
                fill_ip(&mut f[14..]);
                assert_eq!(decrement_ttl(&mut f), Ok(Ttl::Forward));
                assert_eq!(f[at], ttl - 1);
                assert_eq!(verify_ethernet(&f, RxChecksum::default()), Ok(()));
            }
            for ttl in [0u8, 1] {
                f[at] = ttl;
                let before = f.clone();
                assert_eq!(decrement_ttl(&mut f), Ok(Ttl::Expired));
                assert_eq!(f, before);
            }
        }
        assert_eq!(decrement_ttl(&mut [0u8; 10]), Err(RewriteError::Malformed));
    }

    #[test]
    fn bad_frames_are_errors() {
        let to = Tuple::default();
        assert_eq!(translate(&mut [], &to), Err(RewriteError::Malformed));
        let t = Tuple {
            proto: proto::UDP,
            ..Tuple::default()
        };
        let mut f = frame(&t, 0, b"x", false);
        f[14 + 6] = 0x20; // more fragments
        assert_eq!(translate(&mut f, &t), Err(RewriteError::Fragment));
        let mut f = frame(&t, 0, b"x", false);
        let v6 = Tuple {
            family: Family::V6,
            ..t
        };
        assert_eq!(translate(&mut f, &v6), Err(RewriteError::FamilyMismatch));
        f.truncate(30);
        assert_eq!(translate(&mut f, &t), Err(RewriteError::Malformed));
    }
}
