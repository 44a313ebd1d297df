//! Connection keys: the tuple an entry is indexed by, per direction, and the
//! hash of it.
//!
//! Every entry is reachable by two keys, its original and its reply tuple.
//! How the reply is derived depends on the protocol:
//!
//! - TCP, UDP, generic: addresses and ports swapped (generic has no ports).
//! - ICMP/ICMPv6 queries: addresses swapped, the id stays (`sport`), the type
//!   is inverted (echo 8 <-> 0, timestamp 13 <-> 14, info 15 <-> 16, address
//!   mask 17 <-> 18; ICMPv6 echo 128 <-> 129, node info 139 <-> 140) and the
//!   code stays (`dport = type << 8 | code`), as Linux's `invert_tuple` does.
//! - GRE version 0: the 32-bit key is split over both ports (`key >> 16`,
//!   `key & 0xffff`) and *not* swapped: both directions carry the same key.
//! - GRE version 1 (PPTP): each direction carries the *peer's* call id and
//!   only the control connection knows the pair. A session the PPTP helper
//!   announced is keyed by both call ids, the sender's in `sport` (from the
//!   [`super::gre_keymap::GreKeymap`]) and the carried one in `dport`, and
//!   the reply swaps them (as TCP ports); [`Key::of_packet`] alone cannot
//!   know the sender's id, so the table keys GRE v1 through its keymap
//!   (`Shard::key_of`). GRE v1 nobody announced is keyed by addresses only
//!   (ports 0).
//!
//! `ver` keeps GRE versions apart (0 for every other protocol), so a GRE v0
//! tunnel and a PPTP session between the same hosts are different entries.

use crate::flow::{Addr, Family, L4, Tuple, proto};

/// One direction's lookup key: 40 bytes, compared whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Key {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: Family,
    /// GRE version + 1 for GRE, 0 otherwise.
    pub ver: u8,
}

/// ICMP/ICMPv6 query types and their reply types, as `(request, reply)`.
const ICMP4_QUERIES: [(u8, u8); 4] = [(8, 0), (13, 14), (15, 16), (17, 18)];
const ICMP6_QUERIES: [(u8, u8); 2] = [(128, 129), (139, 140)];

/// What kind of ICMP message a type is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpKind {
    /// A query that may open a connection.
    Request,
    /// The answer to a query: only valid for an existing connection.
    Reply,
    /// An error that quotes another packet.
    Error,
    /// ICMPv6 neighbour discovery / MLD: link-local, never tracked (Linux).
    NdMld,
    /// Anything else: not trackable.
    Other,
}

pub fn icmp_kind(v6: bool, t: u8) -> IcmpKind {
    let queries: &[(u8, u8)] = if v6 { &ICMP6_QUERIES } else { &ICMP4_QUERIES };
    if queries.iter().any(|q| q.0 == t) {
        return IcmpKind::Request;
    }
    if queries.iter().any(|q| q.1 == t) {
        return IcmpKind::Reply;
    }
    match (v6, t) {
        (false, 3 | 4 | 5 | 11 | 12) | (true, 1..=4) => IcmpKind::Error,
        (true, 130..=137 | 143) => IcmpKind::NdMld,
        _ => IcmpKind::Other,
    }
}

/// The type that answers `t` (or that `t` answers); `t` itself if none.
pub fn icmp_invert(v6: bool, t: u8) -> u8 {
    let queries: &[(u8, u8)] = if v6 { &ICMP6_QUERIES } else { &ICMP4_QUERIES };
    for &(req, rep) in queries {
        if t == req {
            return rep;
        }
        if t == rep {
            return req;
        }
    }
    t
}

impl Key {
    /// The key of a packet, in the packet's own direction.
    pub fn of_packet(tuple: &Tuple, l4: &L4) -> Key {
        let mut k = Key {
            src: tuple.src,
            dst: tuple.dst,
            sport: 0,
            dport: 0,
            proto: tuple.proto,
            family: tuple.family,
            ver: 0,
        };
        match l4 {
            L4::Tcp(_) | L4::Udp => {
                k.sport = tuple.src_port;
                k.dport = tuple.dst_port;
            }
            L4::Icmp(i) => {
                k.sport = i.id;
                k.dport = u16::from(i.icmp_type) << 8 | u16::from(i.code);
            }
            L4::Gre(g) => {
                k.ver = g.version.saturating_add(1);
                if g.version == 0 {
                    let key = g.key.unwrap_or(0);
                    k.sport = (key >> 16) as u16;
                    k.dport = (key & 0xffff) as u16;
                }
            }
            L4::Other => {}
        }
        k
    }

    /// The key of a bare tuple (the packet quoted by an ICMP error), read the
    /// way the parser fills [`Tuple`] for each protocol.
    pub fn of_quoted(t: &Tuple) -> Key {
        let mut k = Key {
            src: t.src,
            dst: t.dst,
            sport: 0,
            dport: 0,
            proto: t.proto,
            family: t.family,
            ver: 0,
        };
        match t.proto {
            proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6 => {
                k.sport = t.src_port;
                k.dport = t.dst_port;
            }
            // The quote carries no GRE header fields: match a keyless v0 tunnel.
            proto::GRE => k.ver = 1,
            _ => {}
        }
        k
    }

    /// The key that packets of the other direction carry (module doc).
    pub fn reply(&self) -> Key {
        let mut r = *self;
        r.src = self.dst;
        r.dst = self.src;
        match self.proto {
            proto::ICMP | proto::ICMPV6 => {
                let v6 = self.proto == proto::ICMPV6;
                let t = icmp_invert(v6, (self.dport >> 8) as u8);
                r.dport = u16::from(t) << 8 | (self.dport & 0xff);
            }
            // Version 0: the same key both ways. Version 1: the call ids
            // (sender's, carried) swap, as ports (0, 0 when unannounced).
            proto::GRE if self.ver != 2 => {}
            _ => {
                r.sport = self.dport;
                r.dport = self.sport;
            }
        }
        r
    }

    /// The key's tuple, for display.
    pub fn tuple(&self) -> Tuple {
        Tuple {
            src: self.src,
            dst: self.dst,
            src_port: self.sport,
            dst_port: self.dport,
            proto: self.proto,
            family: self.family,
        }
    }

    /// The form of this key's connection that the index holds: the smaller
    /// (as five words) of the key and its [`Key::reply`], and whether that is
    /// the reply. Both directions of a connection give the same key, so each
    /// connection is indexed once.
    #[inline]
    pub fn canonical(&self) -> (Key, bool) {
        let r = self.reply();
        if r.words() < self.words() {
            (r, true)
        } else {
            (*self, false)
        }
    }

    #[inline]
    fn words(&self) -> [u64; 5] {
        let w = |a: &[u8; 16], lo: bool| {
            let mut b = [0u8; 8];
            b.copy_from_slice(if lo { &a[..8] } else { &a[8..] });
            u64::from_ne_bytes(b)
        };
        [
            w(&self.src.0, true),
            w(&self.src.0, false),
            w(&self.dst.0, true),
            w(&self.dst.0, false),
            u64::from(self.sport)
                | u64::from(self.dport) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.family as u8) << 40
                | u64::from(self.ver) << 48,
        ]
    }

    /// A keyed 64-bit hash: three 64x64->128 multiply-folds over the five
    /// words of the key (the wyhash construction), seeded per shard so that
    /// remote hosts cannot aim tuples at one bucket.
    #[inline]
    pub fn hash(&self, seed: &HashSeed) -> u64 {
        let w = self.words();
        let s = &seed.0;
        let a = mum(w[0] ^ s[0], w[1] ^ s[1]);
        let b = mum(w[2] ^ s[2], w[3] ^ s[3]);
        let c = mum(w[4] ^ s[4], a ^ s[5]);
        mum(b ^ c, s[6])
    }
}

#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Per-shard hash key. The core draws no entropy: the caller makes one
/// from a random `u64` (the dataplane: `dataplane::worker::random_seed`),
/// or a fixed one for reproducible tests and replays.
#[derive(Clone, Debug)]
pub struct HashSeed([u64; 7]);

impl HashSeed {
    /// Derives the seven words from one random `u64` (splitmix64), forcing
    /// them odd so no multiplier is zero.
    pub fn from_u64(mut x: u64) -> HashSeed {
        let mut s = [0u64; 7];
        for w in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *w = (z ^ (z >> 31)) | 1;
        }
        HashSeed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{GreInfo, IcmpInfo};

    fn t(proto: u8, sp: u16, dp: u16) -> Tuple {
        Tuple {
            src: Addr::from_v4([10, 0, 0, 1]),
            dst: Addr::from_v4([10, 0, 0, 2]),
            src_port: sp,
            dst_port: dp,
            proto,
            family: Family::V4,
        }
    }

    #[test]
    fn reply_is_an_involution_and_matches_the_answer() {
        let tcp = Key::of_packet(&t(proto::TCP, 1000, 80), &L4::Udp);
        assert_eq!(tcp.reply().reply(), tcp);
        assert_eq!(
            tcp.reply(),
            Key::of_packet(&t(proto::TCP, 1000, 80).reversed(), &L4::Udp)
        );
        let req = IcmpInfo {
            icmp_type: 8,
            code: 0,
            id: 7,
            inner: None,
        };
        let rep = IcmpInfo {
            icmp_type: 0,
            code: 0,
            id: 7,
            inner: None,
        };
        let k = Key::of_packet(&t(proto::ICMP, 0, 0), &L4::Icmp(req));
        let r = Key::of_packet(&t(proto::ICMP, 0, 0).reversed(), &L4::Icmp(rep));
        assert_eq!(k.reply(), r);
        assert_eq!(r.reply(), k);
        let g = GreInfo {
            version: 0,
            key: Some(0x0001_0002),
            protocol: 0x0800,
        };
        let k = Key::of_packet(&t(proto::GRE, 0, 0), &L4::Gre(g));
        assert_eq!((k.sport, k.dport, k.ver), (1, 2, 1));
        assert_eq!(
            k.reply(),
            Key::of_packet(&t(proto::GRE, 0, 0).reversed(), &L4::Gre(g))
        );
        assert_eq!(icmp_invert(true, 128), 129);
        assert_eq!(icmp_invert(true, 140), 139);
        assert_eq!(icmp_kind(false, 3), IcmpKind::Error);
        assert_eq!(icmp_kind(true, 135), IcmpKind::NdMld);
    }

    #[test]
    fn canonical_is_the_same_for_both_directions() {
        let k = Key::of_packet(&t(proto::TCP, 1000, 80), &L4::Udp);
        let (c, flipped) = k.canonical();
        let (rc, rflipped) = k.reply().canonical();
        assert_eq!(c, rc);
        assert_ne!(flipped, rflipped);
        assert_eq!(if flipped { k.reply() } else { k }, c);
        // A key that is its own reply is canonical and not flipped.
        let mut s = k;
        s.dst = s.src;
        s.dport = s.sport;
        assert_eq!(s.canonical(), (s, false));
    }

    #[test]
    fn hash_differs_by_direction_and_seed() {
        let k = Key::of_packet(&t(proto::UDP, 1, 2), &L4::Udp);
        let s = HashSeed::from_u64(1);
        assert_ne!(k.hash(&s), k.reply().hash(&s));
        assert_ne!(k.hash(&s), k.hash(&HashSeed::from_u64(2)));
    }
}
