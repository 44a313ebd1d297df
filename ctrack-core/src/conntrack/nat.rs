//! Choosing a new connection's NAT binding: the translated tuple, and so
//! the reply key the connection is also found by ([`super::Decision::reply`]).
//!
//! This is Linux's `nf_nat_setup_info` / `get_unique_tuple` with the
//! per-protocol `nf_nat_l4proto_unique_tuple`, sans-io:
//!
//! - **Address.** Source NAT picks one address of the `to-addresses` range
//!   by a hash of the original source and destination addresses, so a
//!   client keeps one public address towards one server (Linux's
//!   `find_best_ips_proto`; `persistent` hashes the source only, as
//!   RouterOS's `same`); destination NAT likewise by the original addresses.
//!   The address is never changed to find a free port (Linux neither).
//! - **Port** (TCP/UDP ports, ICMP query ids). The original port is kept
//!   when it is in the range and the resulting tuple is free; otherwise
//!   candidates are tried from an offset: for source NAT a random one (the
//!   caller's `salt`: the core draws no entropy), for destination NAT the
//!   start of the range, in rounds of at most [`MAX_ATTEMPTS`] tries, the
//!   next round half as long from a new offset, until a round would be
//!   shorter than 16 (Linux's `another_round`). Without `to-ports`, a source
//!   port below 512 stays in 1-511, below 1024 in 600-1023, else in
//!   1024-65535 (Linux's "loose convention"); ICMP ids use 0-65535.
//! - **Free** is the caller's judgement (`accept`): in the dataplane, a
//!   reply key that no connection of this shard holds *and* whose symmetric
//!   RSS hash maps to this worker. The second half makes bindings unique
//!   across workers without any shared state: a reply tuple belongs to
//!   exactly one worker, so two workers can never both choose it, and the
//!   replies arrive on the worker that owns the connection. Rounds are
//!   `spread` times longer (the number of workers) so that the expected
//!   number of acceptable candidates per round stays Linux's.
//!
//! A connection that finds no free tuple is refused ([`NatError::Exhausted`]:
//! counted by the caller, never a reused tuple).

use super::key::Key;
use crate::flow::{Addr, Family, proto};

/// Tries per round of the port search at most (Linux's `max_attempts`).
pub const MAX_ATTEMPTS: u32 = 128;

/// Which side of the tuple a binding rewrites.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Manip {
    /// The source (srcnat chain: `src-nat`, `masquerade`, `netmap`, `same`).
    Src,
    /// The destination (dstnat chain: `dst-nat`, `redirect`, `netmap`).
    Dst,
}

/// What a NAT rule's action asks for, resolved to addresses (the caller
/// resolves `masquerade` to the out-interface's address, `redirect` to the
/// in-interface's, `netmap` with [`netmap_addr`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Binding {
    pub manip: Manip,
    /// The address range to choose from (inclusive, the family of the
    /// connection); `None` keeps the address.
    pub addrs: Option<(Addr, Addr)>,
    /// The port range (inclusive); `None` keeps the port when it is free and
    /// follows Linux's default ranges otherwise.
    pub ports: Option<(u16, u16)>,
    /// Choose the address by the source alone (`same`, Linux's
    /// `persistent`).
    pub persistent: bool,
}

/// Why no binding was chosen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatError {
    /// Every candidate tuple was taken (or owned by another worker).
    Exhausted,
    /// The address range is of the other family, or backwards.
    BadRange,
}

/// `addr` mapped 1:1 into `prefix/len` (RouterOS `netmap`): the prefix's
/// network bits and the address's host bits.
#[inline]
pub fn netmap_addr(addr: Addr, prefix: Addr, len: u8, family: Family) -> Addr {
    // The network bits of the family's part (IPv4: the low 32 bits of the
    // v4-mapped form); the rest of `addr` is kept.
    let (width, bits) = match family {
        Family::V4 => (32u32, u32::from(len.min(32))),
        Family::V6 => (128, u32::from(len.min(128))),
    };
    let ones = |n: u32| u128::MAX.checked_shr(128 - n).unwrap_or(0);
    let net = ones(width) & !ones(width - bits);
    let (a, p) = (u128::from_be_bytes(addr.0), u128::from_be_bytes(prefix.0));
    Addr(((a & !net) | (p & net)).to_be_bytes())
}

/// [`netmap_addr`] byte by byte: the reference the tests check it against.
#[cfg(test)]
fn netmap_addr_bytes(addr: Addr, prefix: Addr, len: u8, family: Family) -> Addr {
    let (start, bits) = match family {
        Family::V4 => (12usize, u32::from(len.min(32))),
        Family::V6 => (0, u32::from(len.min(128))),
    };
    let mut out = addr;
    for i in start..16 {
        let bit = (i - start) as u32 * 8;
        let keep_net = bits.saturating_sub(bit).min(8);
        let mask = if keep_net == 0 {
            0u8
        } else {
            (0xffu16 << (8 - keep_net)) as u8
        };
        out.0[i] = (prefix.0[i] & mask) | (addr.0[i] & !mask);
    }
    out
}

/// A small, fast mix (splitmix64's finaliser) for choosing within ranges.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn addr_words(a: &Addr) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&a.0[..8]);
    hi.copy_from_slice(&a.0[8..]);
    u64::from_be_bytes(lo) ^ u64::from_be_bytes(hi).rotate_left(17)
}

/// The address range's size minus one as a u128, and its low end, if it is
/// of `family` and not backwards.
fn range_span(lo: &Addr, hi: &Addr, family: Family) -> Option<(u128, u128)> {
    let (a, b) = (u128::from_be_bytes(lo.0), u128::from_be_bytes(hi.0));
    let ok = match family {
        Family::V4 => lo.is_v4_mapped() && hi.is_v4_mapped(),
        Family::V6 => true,
    };
    (ok && a <= b).then_some((b - a, a))
}

/// Whether the protocol has a port (or id) that NAT may choose.
fn has_port(k: &Key) -> bool {
    matches!(
        k.proto,
        proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6
    )
}

fn is_icmp(k: &Key) -> bool {
    matches!(k.proto, proto::ICMP | proto::ICMPV6)
}

/// Chooses the translated original tuple of a new connection whose
/// original key is `orig`, under `binding`, and returns its reply key (the
/// key replies will carry: [`Key::reply`] of the translated tuple). `salt`
/// is a fresh random number per call (source NAT's port offset), `spread`
/// the number of workers sharing the port space (1: Linux's search), and
/// `accept(reply)` says whether a reply key is free for this connection.
pub fn choose(
    orig: &Key,
    binding: &Binding,
    salt: u64,
    spread: u32,
    mut accept: impl FnMut(&Key) -> bool,
) -> Result<Key, NatError> {
    let mut t = *orig;
    // The address.
    if let Some((lo, hi)) = binding.addrs {
        let (span, base) = range_span(&lo, &hi, orig.family).ok_or(NatError::BadRange)?;
        let h = if binding.persistent {
            mix(addr_words(&orig.src))
        } else {
            mix(addr_words(&orig.src) ^ mix(addr_words(&orig.dst)))
        };
        let off = if span == u128::MAX {
            u128::from(h)
        } else {
            u128::from(h) % (span + 1)
        };
        let a = Addr((base + off).to_be_bytes());
        match binding.manip {
            Manip::Src => t.src = a,
            Manip::Dst => t.dst = a,
        }
    }
    if !has_port(orig) {
        let r = t.reply();
        return if accept(&r) {
            Ok(r)
        } else {
            Err(NatError::Exhausted)
        };
    }
    // The port: the source port for source NAT, the destination port for
    // destination NAT, the id (kept in `sport`) for ICMP.
    let src_side = binding.manip == Manip::Src || is_icmp(orig);
    let cur = if src_side { t.sport } else { t.dport };
    let (min, max) = match binding.ports {
        Some((lo, hi)) if lo <= hi => (lo, hi),
        Some(_) => return Err(NatError::BadRange),
        None if is_icmp(orig) => (0, u16::MAX),
        None if binding.manip == Manip::Dst => (cur, cur),
        None if cur < 512 => (1, 511),
        None if cur < 1024 => (600, 1023),
        None => (1024, u16::MAX),
    };
    let set = |k: &mut Key, p: u16| {
        if src_side {
            k.sport = p;
        } else {
            k.dport = p;
        }
    };
    // Keep the port when it is in range and the tuple is free (with no
    // `to-ports`, Linux keeps any port if the tuple is free).
    if (binding.ports.is_none() || (min..=max).contains(&cur)) && accept(&t.reply()) {
        return Ok(t.reply());
    }
    let size = u32::from(max - min) + 1;
    let mut off = if src_side { mix(salt) as u32 } else { 0 };
    let budget = MAX_ATTEMPTS.saturating_mul(spread.max(1));
    let mut attempts = size.min(budget);
    let mut round = 0u64;
    loop {
        for _ in 0..attempts {
            let p = min.wrapping_add((off % size) as u16);
            set(&mut t, p);
            let r = t.reply();
            if accept(&r) {
                return Ok(r);
            }
            off = off.wrapping_add(1);
        }
        if attempts >= size || attempts < 16 {
            return Err(NatError::Exhausted);
        }
        attempts /= 2;
        round += 1;
        off = mix(salt ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn k(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: u8) -> Key {
        Key {
            src: Addr::from_v4(src),
            dst: Addr::from_v4(dst),
            sport,
            dport,
            proto: p,
            family: Family::V4,
            ver: 0,
        }
    }

    const PUB: [u8; 4] = [198, 51, 100, 1];

    fn masq() -> Binding {
        Binding {
            manip: Manip::Src,
            addrs: Some((Addr::from_v4(PUB), Addr::from_v4(PUB))),
            ports: None,
            persistent: false,
        }
    }

    #[test]
    fn masquerade_keeps_the_source_port_when_free() {
        let o = k([10, 0, 0, 2], 40000, [192, 0, 2, 9], 80, proto::TCP);
        let r = choose(&o, &masq(), 1, 1, |_| true).unwrap();
        assert_eq!(r, k([192, 0, 2, 9], 80, PUB, 40000, proto::TCP));
    }

    #[test]
    fn a_taken_port_moves_within_linux_default_ranges() {
        for (sport, lo, hi) in [
            (40000u16, 1024u16, 65535u16),
            (700, 600, 1023),
            (53, 1, 511),
        ] {
            let o = k([10, 0, 0, 2], sport, [192, 0, 2, 9], 80, proto::UDP);
            let r = choose(&o, &masq(), 7, 1, |r| r.dport != sport).unwrap();
            assert!((lo..=hi).contains(&r.dport), "{sport} -> {}", r.dport);
            assert_eq!(r.src, Addr::from_v4([192, 0, 2, 9]));
            assert_eq!(r.dst, Addr::from_v4(PUB));
        }
    }

    #[test]
    fn to_ports_bound_the_choice_and_exhaustion_is_an_error() {
        let b = Binding {
            ports: Some((5000, 5009)),
            ..masq()
        };
        let mut taken = HashSet::new();
        for i in 0..10u16 {
            let o = k([10, 0, 0, 2], 40000 + i, [192, 0, 2, 9], 80, proto::TCP);
            let r = choose(&o, &b, u64::from(i), 1, |r| !taken.contains(r)).unwrap();
            assert!((5000..=5009).contains(&r.dport));
            assert!(taken.insert(r));
        }
        let o = k([10, 0, 0, 2], 50000, [192, 0, 2, 9], 80, proto::TCP);
        assert_eq!(
            choose(&o, &b, 3, 1, |r| !taken.contains(r)),
            Err(NatError::Exhausted)
        );
    }

    #[test]
    fn two_inside_hosts_with_one_source_port_get_two_bindings() {
        let mut taken = HashSet::new();
        let a = k([10, 0, 0, 2], 40000, [192, 0, 2, 9], 53, proto::UDP);
        let b = k([10, 0, 0, 3], 40000, [192, 0, 2, 9], 53, proto::UDP);
        let ra = choose(&a, &masq(), 1, 1, |r| !taken.contains(r)).unwrap();
        taken.insert(ra);
        let rb = choose(&b, &masq(), 2, 1, |r| !taken.contains(r)).unwrap();
        assert_eq!(ra.dport, 40000, "the first keeps its port");
        assert_ne!(ra, rb);
    }

    #[test]
    fn workers_owning_disjoint_reply_tuples_never_collide() {
        // Two workers, ownership by a hash of the reply key: each accepts
        // only what it owns, so the same original on both ends on two
        // different reply keys.
        let owns = |w: u64, r: &Key| mix(u64::from(r.dport) ^ addr_words(&r.dst)) % 2 == w;
        let o = k([10, 0, 0, 2], 40000, [192, 0, 2, 9], 80, proto::TCP);
        let r0 = choose(&o, &masq(), 11, 2, |r| owns(0, r)).unwrap();
        let r1 = choose(&o, &masq(), 12, 2, |r| owns(1, r)).unwrap();
        assert!(owns(0, &r0) && owns(1, &r1));
        assert_ne!(r0, r1);
    }

    #[test]
    fn dst_nat_and_icmp_ids() {
        let b = Binding {
            manip: Manip::Dst,
            addrs: Some((Addr::from_v4([10, 0, 0, 5]), Addr::from_v4([10, 0, 0, 5]))),
            ports: Some((8080, 8080)),
            persistent: false,
        };
        let o = k([203, 0, 113, 7], 5555, PUB, 80, proto::TCP);
        let r = choose(&o, &b, 0, 1, |_| true).unwrap();
        assert_eq!(
            r,
            k([10, 0, 0, 5], 8080, [203, 0, 113, 7], 5555, proto::TCP)
        );
        // An echo request: the id is what may change.
        let o = k([10, 0, 0, 2], 77, [192, 0, 2, 9], 8 << 8, proto::ICMP);
        let r = choose(&o, &masq(), 5, 1, |r| r.sport != 77).unwrap();
        assert_ne!(r.sport, 77);
        assert_eq!(r.dport, 0, "an echo reply's type");
        assert_eq!(r.dst, Addr::from_v4(PUB));
    }

    #[test]
    fn address_ranges_pick_by_the_addresses_and_check_the_family() {
        let b = Binding {
            addrs: Some((
                Addr::from_v4([198, 51, 100, 1]),
                Addr::from_v4([198, 51, 100, 4]),
            )),
            ..masq()
        };
        let o = k([10, 0, 0, 2], 40000, [192, 0, 2, 9], 80, proto::TCP);
        let r1 = choose(&o, &b, 1, 1, |_| true).unwrap();
        let r2 = choose(&o, &b, 99, 1, |_| true).unwrap();
        assert_eq!(r1.dst, r2.dst, "same client and server, same address");
        let a = r1.dst.v4_octets();
        assert!((1..=4).contains(&a[3]) && a[..3] == [198, 51, 100]);
        let bad = Binding {
            addrs: Some((Addr::from_v6([1; 16]), Addr::from_v6([2; 16]))),
            ..masq()
        };
        assert_eq!(choose(&o, &bad, 1, 1, |_| true), Err(NatError::BadRange));
    }

    #[test]
    fn netmap_equals_the_byte_by_byte_form() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut a = [0u8; 16];
            let mut p = [0u8; 16];
            a[..8].copy_from_slice(&next().to_be_bytes());
            a[8..].copy_from_slice(&next().to_be_bytes());
            p[..8].copy_from_slice(&next().to_be_bytes());
            p[8..].copy_from_slice(&next().to_be_bytes());
            let len = (next() % 140) as u8;
            for family in [Family::V4, Family::V6] {
                let (a, p) = match family {
                    Family::V4 => (
                        Addr::from_v4([a[0], a[1], a[2], a[3]]),
                        Addr::from_v4([p[0], p[1], p[2], p[3]]),
                    ),
                    Family::V6 => (Addr(a), Addr(p)),
                };
                assert_eq!(
                    netmap_addr(a, p, len, family),
                    netmap_addr_bytes(a, p, len, family),
                    "{a:?} {p:?}/{len} {family:?}"
                );
            }
            // Odd inputs too: an IPv4 call on non-mapped bytes.
            assert_eq!(
                netmap_addr(Addr(a), Addr(p), len, Family::V4),
                netmap_addr_bytes(Addr(a), Addr(p), len, Family::V4)
            );
        }
    }

    #[test]
    fn netmap_keeps_host_bits() {
        let a = netmap_addr(
            Addr::from_v4([10, 0, 3, 7]),
            Addr::from_v4([198, 51, 100, 0]),
            24,
            Family::V4,
        );
        assert_eq!(a, Addr::from_v4([198, 51, 100, 7]));
        let a = netmap_addr(
            Addr::from_v4([10, 0, 3, 7]),
            Addr::from_v4([172, 16, 0, 0]),
            12,
            Family::V4,
        );
        assert_eq!(a, Addr::from_v4([172, 16, 3, 7]));
    }
}
