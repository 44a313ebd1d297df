//! Software RSS: the Toeplitz hash a NIC computes, and its redirection table.
//!
//! The worker that owns a connection must see both of its directions. With a
//! symmetric key ([`SYMMETRIC_RSS_KEY`]: 0x6d5a repeated) the Toeplitz hash is
//! the same when source and destination are swapped, so a NIC programmed with
//! that key and a [`Reta`] sends both directions to the same queue. This module
//! computes exactly what such a NIC computes, so that `ctrack replay`, tests
//! and any software dispatch agree with hardware.
//!
//! Input layout (Microsoft RSS specification, which NICs follow): source
//! address, destination address, then for TCP and UDP source port and
//! destination port, all in network byte order. Other protocols hash the
//! addresses only: their "ports" (ICMP ids and types, GRE keys) differ
//! between directions or do not exist, and NICs do not look at them.

use crate::flow::{Family, Tuple, proto};

/// The key of the Microsoft RSS specification's verification examples (and
/// the default of many drivers). Not symmetric.
pub const MICROSOFT_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Symmetric Toeplitz key: 0x6d, 0x5a repeated. Its 16-bit period makes
/// hash(src, dst) == hash(dst, src) for the IPv4 and IPv6 layouts above.
pub const SYMMETRIC_RSS_KEY: [u8; 40] = symmetric_key();

/// The same key for NICs that take 52 bytes (e.g. Intel E810/ice, some mlx5).
pub const SYMMETRIC_RSS_KEY_52: [u8; 52] = symmetric_key();

/// The symmetric key for a NIC whose RSS key has `size` bytes (0: the
/// driver does not say, and takes the usual 40). `None` below 40 bytes: such
/// a key cannot cover the 36 bytes of an IPv6 4-tuple, so the NIC's hash
/// would not be the one [`Dispatch`] computes. Any length from 40 is the
/// same repeated pattern, and hashes like [`SYMMETRIC_RSS_KEY`] (only the
/// first 40 bytes are ever used).
pub fn symmetric_rss_key(size: usize) -> Option<Vec<u8>> {
    let size = if size == 0 {
        SYMMETRIC_RSS_KEY.len()
    } else {
        size
    };
    (size >= SYMMETRIC_RSS_KEY.len()).then(|| {
        (0..size)
            .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
            .collect()
    })
}

const fn symmetric_key<const N: usize>() -> [u8; N] {
    let mut k = [0u8; N];
    let mut i = 0;
    while i < N {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
}

/// The 32 key bits starting at bit `bit` (bit 0 = most significant bit of
/// `key[0]`); bits past the end of the key read as 0.
fn key_window(key: &[u8], bit: usize) -> u32 {
    let byte = bit / 8;
    let shift = bit % 8;
    let mut w: u64 = 0;
    for i in 0..5 {
        w = w << 8 | u64::from(key.get(byte + i).copied().unwrap_or(0));
    }
    // w holds 40 bits; drop `shift` leading bits and keep the next 32.
    (w >> (8 - shift)) as u32
}

/// Reference Toeplitz hash, bit by bit, as the Microsoft RSS specification
/// defines it: for every set bit of `input` (most significant first), XOR in
/// the 32 key bits starting at that bit's position.
///
/// The key should be at least `input.len() + 4` bytes; missing key bits read
/// as zero.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0u32;
    for (i, &b) in input.iter().enumerate() {
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                result ^= key_window(key, i * 8 + bit);
            }
        }
    }
    result
}

/// Longest input a NIC hashes: two IPv6 addresses and two ports.
pub const MAX_INPUT_LEN: usize = 36;

/// Toeplitz hash with per-byte lookup tables: for each input position, the
/// XOR contribution of each of the 256 byte values. Built once from a key
/// (36 KiB); hashing allocates nothing and costs one lookup per input byte.
#[derive(Clone)]
pub struct Toeplitz {
    tables: Box<[[u32; 256]; MAX_INPUT_LEN]>,
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Toeplitz").finish_non_exhaustive()
    }
}

impl Toeplitz {
    /// Precomputes the tables for `key` (40 bytes cover every input; a longer
    /// key's extra bytes are not needed, a shorter one's missing bits read
    /// as zero).
    pub fn new(key: &[u8]) -> Toeplitz {
        let mut tables = Box::new([[0u32; 256]; MAX_INPUT_LEN]);
        for (pos, table) in tables.iter_mut().enumerate() {
            let windows: [u32; 8] = core::array::from_fn(|bit| key_window(key, pos * 8 + bit));
            for (value, slot) in table.iter_mut().enumerate() {
                let mut h = 0;
                for (bit, w) in windows.iter().enumerate() {
                    if value & (0x80 >> bit) != 0 {
                        h ^= w;
                    }
                }
                *slot = h;
            }
        }
        Toeplitz { tables }
    }

    /// A hasher for [`SYMMETRIC_RSS_KEY`].
    pub fn symmetric() -> Toeplitz {
        Toeplitz::new(&SYMMETRIC_RSS_KEY)
    }

    /// Hashes `input`; bytes past [`MAX_INPUT_LEN`] are ignored.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.tables.iter())
            .fold(0, |h, (&b, t)| h ^ t[usize::from(b)])
    }

    /// IPv4 4-tuple (TCP/UDP).
    pub fn hash_v4(&self, src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> u32 {
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&src);
        input[4..8].copy_from_slice(&dst);
        input[8..10].copy_from_slice(&src_port.to_be_bytes());
        input[10..12].copy_from_slice(&dst_port.to_be_bytes());
        self.hash(&input)
    }

    /// IPv4 addresses only.
    pub fn hash_v4_addrs(&self, src: [u8; 4], dst: [u8; 4]) -> u32 {
        let mut input = [0u8; 8];
        input[0..4].copy_from_slice(&src);
        input[4..8].copy_from_slice(&dst);
        self.hash(&input)
    }

    /// IPv6 4-tuple (TCP/UDP).
    pub fn hash_v6(&self, src: [u8; 16], dst: [u8; 16], src_port: u16, dst_port: u16) -> u32 {
        let mut input = [0u8; 36];
        input[0..16].copy_from_slice(&src);
        input[16..32].copy_from_slice(&dst);
        input[32..34].copy_from_slice(&src_port.to_be_bytes());
        input[34..36].copy_from_slice(&dst_port.to_be_bytes());
        self.hash(&input)
    }

    /// IPv6 addresses only.
    pub fn hash_v6_addrs(&self, src: [u8; 16], dst: [u8; 16]) -> u32 {
        let mut input = [0u8; 32];
        input[0..16].copy_from_slice(&src);
        input[16..32].copy_from_slice(&dst);
        self.hash(&input)
    }

    /// What a NIC computes for this packet: addresses and ports for TCP and
    /// UDP, addresses only for every other protocol.
    pub fn flow_hash(&self, tuple: &Tuple) -> u32 {
        let ports = matches!(tuple.proto, proto::TCP | proto::UDP);
        match (tuple.family, ports) {
            (Family::V4, true) => self.hash_v4(
                tuple.src.v4_octets(),
                tuple.dst.v4_octets(),
                tuple.src_port,
                tuple.dst_port,
            ),
            (Family::V4, false) => self.hash_v4_addrs(tuple.src.v4_octets(), tuple.dst.v4_octets()),
            (Family::V6, true) => {
                self.hash_v6(tuple.src.0, tuple.dst.0, tuple.src_port, tuple.dst_port)
            }
            (Family::V6, false) => self.hash_v6_addrs(tuple.src.0, tuple.dst.0),
        }
    }
}

/// A NIC's RSS as read back from it: what decides whether the hash it puts
/// in each packet is the one [`Dispatch`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicRss<'a> {
    /// The key the NIC reports it hashes with; `None` if it cannot say.
    pub key: Option<&'a [u8]>,
    /// It hashes addresses and TCP/UDP ports of unfragmented IPv4 and IPv6.
    pub l4_ports: bool,
    /// It may hash addresses from IPv6 extension headers instead of the
    /// header's own (DPDK's `*_EX` hash types).
    pub ipv6_ext: bool,
}

impl NicRss<'_> {
    /// Whether the NIC's hash of a TCP or UDP packet is
    /// [`Toeplitz::flow_hash`] with [`SYMMETRIC_RSS_KEY`]: it reports that
    /// key (the first 40 bytes are all a 36-byte input uses), hashes ports
    /// for both families, and not extension-header addresses. The hash
    /// function itself cannot be read back in DPDK 22.11 (`rte_eth_rss_conf`
    /// has no algorithm field): a port's RSS is the driver's default,
    /// Toeplitz on the NICs this targets (ixgbe, i40e, ice, mlx5), and we
    /// program no `rte_flow` rule that would change it.
    pub fn hash_is_symmetric_toeplitz(&self) -> bool {
        self.l4_ports
            && !self.ipv6_ext
            && self.key.is_some_and(|k| k.starts_with(&SYMMETRIC_RSS_KEY))
    }
}

/// A redirection table: hash -> queue, indexed by the low bits of the hash
/// as NICs do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reta {
    entries: Vec<u16>,
    mask: u32,
}

impl Reta {
    /// The usual size (Intel ixgbe/i40e VFs, many others).
    pub const DEFAULT_SIZE: usize = 128;
    /// The size of i40e/ice/mlx5 PF tables.
    pub const LARGE_SIZE: usize = 512;

    /// A table of `size` entries filled round-robin with queues
    /// `0..n_queues`, as drivers do by default.
    ///
    /// # Panics
    ///
    /// If `size` is not a power of two or `n_queues` is 0 (a configuration
    /// error, checked once at startup).
    pub fn even(size: usize, n_queues: u16) -> Reta {
        assert!(size.is_power_of_two(), "RETA size must be a power of two");
        assert!(n_queues > 0, "RETA needs at least one queue");
        let entries = (0..size)
            .map(|i| (i % usize::from(n_queues)) as u16)
            .collect();
        Reta {
            entries,
            mask: (size - 1) as u32,
        }
    }

    /// The queue for a hash: entry `hash & (size - 1)`.
    #[inline]
    pub fn queue_for(&self, hash: u32) -> u16 {
        self.entries
            .get((hash & self.mask) as usize)
            .copied()
            .unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, to program into a NIC.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// What to program into a NIC whose table has `size` entries, spreading
    /// `queues` queues: the same table [`Dispatch::with_reta`] mirrors.
    /// `None` (keep the driver's) for a size that is not a power of two.
    pub fn for_nic(size: usize, queues: u16) -> Option<Vec<u16>> {
        (size.is_power_of_two() && queues > 0).then(|| Reta::even(size, queues).entries)
    }
}

/// Software dispatch: which of `n` workers owns a packet's connection,
/// computed the way a NIC with the symmetric key and an even RETA would
/// deliver it, so that software-dispatched and RSS-delivered packets agree.
///
/// One exception: an ICMP error is owned by the connection it quotes (its
/// inner tuple), not by its own addresses, so that it reaches the shard that
/// holds that connection.
#[derive(Clone, Debug)]
pub struct Dispatch {
    toeplitz: Toeplitz,
    reta: Reta,
}

impl Dispatch {
    /// Dispatch over `workers` (at least 1) with a 128-entry table.
    pub fn new(workers: u16) -> Dispatch {
        Dispatch::with_reta(workers, Reta::DEFAULT_SIZE)
    }

    /// Dispatch with the RETA size of the NIC (see [`Reta::for_nic`]), so
    /// that software and hardware send a hash to the same worker.
    pub fn with_reta(workers: u16, reta_size: usize) -> Dispatch {
        let size = if reta_size.is_power_of_two() {
            reta_size
        } else {
            Reta::DEFAULT_SIZE
        };
        Dispatch {
            toeplitz: Toeplitz::symmetric(),
            reta: Reta::even(size, workers.max(1)),
        }
    }

    /// The tuple whose hash decides the owner.
    #[inline]
    pub fn owner_tuple(pkt: &crate::flow::FlowRepr) -> &Tuple {
        match &pkt.l4 {
            crate::flow::L4::Icmp(crate::flow::IcmpInfo {
                inner: Some(inner), ..
            }) => inner,
            _ => &pkt.tuple,
        }
    }

    /// The worker that owns `pkt`'s connection.
    #[inline]
    pub fn owner(&self, pkt: &crate::flow::FlowRepr) -> u16 {
        self.owner_of(Self::owner_tuple(pkt))
    }

    /// The worker that owns the connection of a packet with tuple `t` (an
    /// ICMP error's: the quoted one). TCP and UDP by the NIC's hash
    /// ([`Toeplitz::flow_hash`]); ICMP and ICMPv6 with the query id as the
    /// source port and 0 as the destination port (symmetric: with the
    /// symmetric key every 16-bit word counts alike wherever it is, so a
    /// query and its answer, which carry the same id, hash alike; the id in
    /// both ports would cancel out), so that NAT can place a translated
    /// query on any worker by its id (see [`crate::nat`]); other protocols
    /// by their addresses.
    #[inline]
    pub fn owner_of(&self, t: &Tuple) -> u16 {
        let h = match (t.proto, t.family) {
            (proto::ICMP | proto::ICMPV6, Family::V4) => {
                self.toeplitz
                    .hash_v4(t.src.v4_octets(), t.dst.v4_octets(), t.src_port, 0)
            }
            (proto::ICMP | proto::ICMPV6, Family::V6) => {
                self.toeplitz.hash_v6(t.src.0, t.dst.0, t.src_port, 0)
            }
            _ => self.toeplitz.flow_hash(t),
        };
        self.reta.queue_for(h)
    }

    /// As [`Dispatch::owner`], given the hash the NIC put in the packet,
    /// if it did and its port's hash is the symmetric Toeplitz
    /// ([`NicRss::hash_is_symmetric_toeplitz`]). The NIC's hash is used
    /// for TCP and UDP only, where it hashes exactly the fields
    /// [`Toeplitz::flow_hash`] does (fragments never get here: they are not
    /// parsed); for other protocols which fields a NIC hashes varies with
    /// the hash types, and an ICMP error is owned by the tuple it quotes,
    /// not the addresses the NIC hashed. Those are hashed in software.
    #[inline]
    pub fn owner_with_nic_hash(&self, pkt: &crate::flow::FlowRepr, nic_hash: Option<u32>) -> u16 {
        match nic_hash {
            Some(h) if Self::nic_hash_applies(pkt) => self.reta.queue_for(h),
            _ => self.owner(pkt),
        }
    }

    /// Whether a symmetric-Toeplitz NIC hashes the same fields as
    /// [`Dispatch::owner`] for `pkt` (see [`Dispatch::owner_with_nic_hash`]).
    #[inline]
    pub fn nic_hash_applies(pkt: &crate::flow::FlowRepr) -> bool {
        matches!(pkt.tuple.proto, proto::TCP | proto::UDP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Addr;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(s: &str) -> [u8; 4] {
        s.parse::<Ipv4Addr>().unwrap().octets()
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    /// Microsoft RSS spec, "Verifying the RSS hash calculation", IPv4:
    /// (destination, dst port, source, src port, IPv4 only, with TCP ports).
    const V4_VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    /// The same for IPv6.
    const V6_VECTORS: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:3::1",
            1766,
            "3ffe:2501:200:1fff::7",
            2794,
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            "ff02::1",
            4739,
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            "fe80::200:f8ff:fe21:67cf",
            38024,
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    #[test]
    fn microsoft_vectors_v4() {
        let t = Toeplitz::new(&MICROSOFT_RSS_KEY);
        for (dst, dport, src, sport, ip_only, with_ports) in V4_VECTORS {
            let (s, d) = (v4(src), v4(dst));
            assert_eq!(t.hash_v4_addrs(s, d), ip_only, "{src} -> {dst}");
            assert_eq!(t.hash_v4(s, d, sport, dport), with_ports, "{src} -> {dst}");
            let mut input = [s, d].concat();
            assert_eq!(toeplitz(&MICROSOFT_RSS_KEY, &input), ip_only);
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&MICROSOFT_RSS_KEY, &input), with_ports);
        }
    }

    #[test]
    fn microsoft_vectors_v6() {
        let t = Toeplitz::new(&MICROSOFT_RSS_KEY);
        for (dst, dport, src, sport, ip_only, with_ports) in V6_VECTORS {
            let (s, d) = (v6(src), v6(dst));
            assert_eq!(t.hash_v6_addrs(s, d), ip_only, "{src} -> {dst}");
            assert_eq!(t.hash_v6(s, d, sport, dport), with_ports, "{src} -> {dst}");
            let mut input = [s, d].concat();
            assert_eq!(toeplitz(&MICROSOFT_RSS_KEY, &input), ip_only);
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&MICROSOFT_RSS_KEY, &input), with_ports);
        }
    }

    #[test]
    fn flow_hash_follows_the_protocol() {
        let t = Toeplitz::new(&MICROSOFT_RSS_KEY);
        let (dst, dport, src, sport, ip_only, with_ports) = V4_VECTORS[0];
        let mut tuple = Tuple {
            src: Addr::from_v4(v4(src)),
            dst: Addr::from_v4(v4(dst)),
            src_port: sport,
            dst_port: dport,
            proto: proto::TCP,
            family: Family::V4,
        };
        assert_eq!(t.flow_hash(&tuple), with_ports);
        tuple.proto = proto::UDP;
        assert_eq!(t.flow_hash(&tuple), with_ports);
        for p in [proto::ICMP, proto::GRE, 132] {
            tuple.proto = p;
            assert_eq!(t.flow_hash(&tuple), ip_only);
        }
        let (dst, dport, src, sport, ip_only, with_ports) = V6_VECTORS[2];
        let mut tuple = Tuple {
            src: Addr::from_v6(v6(src)),
            dst: Addr::from_v6(v6(dst)),
            src_port: sport,
            dst_port: dport,
            proto: proto::TCP,
            family: Family::V6,
        };
        assert_eq!(t.flow_hash(&tuple), with_ports);
        tuple.proto = proto::ICMPV6;
        assert_eq!(t.flow_hash(&tuple), ip_only);
    }

    #[test]
    fn symmetric_keys() {
        assert_eq!(&SYMMETRIC_RSS_KEY[..4], &[0x6d, 0x5a, 0x6d, 0x5a]);
        assert_eq!(&SYMMETRIC_RSS_KEY_52[..40], &SYMMETRIC_RSS_KEY[..]);
        assert_eq!(SYMMETRIC_RSS_KEY_52[51], 0x5a);
        // The 52-byte key hashes every input like the 40-byte one.
        let a = Toeplitz::new(&SYMMETRIC_RSS_KEY);
        let b = Toeplitz::new(&SYMMETRIC_RSS_KEY_52);
        let input: Vec<u8> = (0..36).collect();
        assert_eq!(a.hash(&input), b.hash(&input));
    }

    #[test]
    fn key_by_the_nic_size() {
        // Unreported size: the usual 40 bytes.
        assert_eq!(symmetric_rss_key(0).unwrap(), SYMMETRIC_RSS_KEY);
        assert_eq!(symmetric_rss_key(40).unwrap(), SYMMETRIC_RSS_KEY);
        // E810 (ice) and some mlx5: 52 bytes.
        assert_eq!(symmetric_rss_key(52).unwrap(), SYMMETRIC_RSS_KEY_52);
        // Odd sizes keep the pattern from the start, and hash the same.
        let k = symmetric_rss_key(41).unwrap();
        assert_eq!(k.len(), 41);
        assert_eq!(&k[..40], &SYMMETRIC_RSS_KEY[..]);
        // Too short to cover an IPv6 4-tuple.
        assert_eq!(symmetric_rss_key(16), None);
        assert_eq!(symmetric_rss_key(39), None);
    }

    #[test]
    fn reta_distribution() {
        for (size, queues) in [(128, 1), (128, 3), (128, 4), (512, 6), (512, 16)] {
            let reta = Reta::even(size, queues);
            assert_eq!(reta.len(), size);
            let mut counts = vec![0usize; usize::from(queues)];
            for &e in reta.entries() {
                counts[usize::from(e)] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{size}/{queues}: {counts:?}");
            // The low bits pick the entry.
            assert_eq!(reta.queue_for(5), reta.entries()[5]);
            assert_eq!(reta.queue_for(size as u32 + 5), reta.entries()[5]);
        }
        // Symmetric hashes of many flows spread evenly over 4 queues.
        let t = Toeplitz::symmetric();
        let reta = Reta::even(Reta::DEFAULT_SIZE, 4);
        let mut counts = [0usize; 4];
        for i in 0..4096u32 {
            let src = (0x0a00_0000 | i).to_be_bytes();
            let h = t.hash_v4(src, [192, 0, 2, 1], 1024 + (i as u16 % 1000), 443);
            counts[usize::from(reta.queue_for(h))] += 1;
        }
        assert!(counts.iter().all(|&c| c > 4096 / 4 / 2), "{counts:?}");
    }

    fn tuple_strategy() -> impl Strategy<Value = Tuple> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
            prop::sample::select(vec![proto::TCP, proto::UDP, proto::ICMP, proto::ICMPV6, 47]),
            any::<bool>(),
        )
            .prop_map(|(s, d, sp, dp, p, is_v6)| {
                if is_v6 {
                    Tuple {
                        src: Addr::from_v6(s),
                        dst: Addr::from_v6(d),
                        src_port: sp,
                        dst_port: dp,
                        proto: p,
                        family: Family::V6,
                    }
                } else {
                    Tuple {
                        src: Addr::from_v4([s[0], s[1], s[2], s[3]]),
                        dst: Addr::from_v4([d[0], d[1], d[2], d[3]]),
                        src_port: sp,
                        dst_port: dp,
                        proto: p,
                        family: Family::V4,
                    }
                }
            })
    }

    proptest! {
        #[test]
        fn symmetric_hash(t in tuple_strategy()) {
            for key in [&SYMMETRIC_RSS_KEY[..], &SYMMETRIC_RSS_KEY_52[..]] {
                let h = Toeplitz::new(key);
                prop_assert_eq!(h.flow_hash(&t), h.flow_hash(&t.reversed()));
            }
        }

        #[test]
        fn fast_equals_reference(
            key in any::<[u8; 40]>(),
            input in proptest::collection::vec(any::<u8>(), 0..=36),
        ) {
            prop_assert_eq!(Toeplitz::new(&key).hash(&input), toeplitz(&key, &input));
        }
    }

    #[test]
    fn dispatch_sends_both_directions_and_icmp_errors_to_one_owner() {
        use crate::flow::{Addr, FlowRepr, IcmpInfo, L4};
        let d = Dispatch::new(4);
        let mut owners = std::collections::HashSet::new();
        for i in 0..64u16 {
            let t = Tuple {
                src: Addr::from_v4([10, 0, 0, 1]),
                dst: Addr::from_v4([10, 0, 1, i as u8]),
                src_port: 1000 + i,
                dst_port: 80,
                proto: proto::UDP,
                family: Family::V4,
            };
            let fwd = FlowRepr {
                tuple: t,
                ip_len: 28,
                l4: L4::Udp,
            };
            let back = FlowRepr {
                tuple: t.reversed(),
                ..fwd
            };
            // An ICMP error from some router about the forward packet.
            let err = FlowRepr {
                tuple: Tuple {
                    src: Addr::from_v4([192, 0, 2, 1]),
                    dst: t.src,
                    src_port: 0,
                    dst_port: 3 << 8 | 3,
                    proto: proto::ICMP,
                    family: Family::V4,
                },
                ip_len: 56,
                l4: L4::Icmp(IcmpInfo {
                    icmp_type: 3,
                    code: 3,
                    id: 0,
                    inner: Some(t),
                }),
            };
            assert_eq!(d.owner(&fwd), d.owner(&back));
            assert_eq!(d.owner(&fwd), d.owner(&err));
            assert!(d.owner(&fwd) < 4);
            owners.insert(d.owner(&fwd));
        }
        assert_eq!(owners.len(), 4, "64 flows should reach every worker");
    }

    #[test]
    fn the_nic_hash_is_trusted_only_when_it_is_ours() {
        let ours = NicRss {
            key: Some(&SYMMETRIC_RSS_KEY_52),
            l4_ports: true,
            ipv6_ext: false,
        };
        assert!(ours.hash_is_symmetric_toeplitz());
        assert!(
            NicRss {
                key: Some(&SYMMETRIC_RSS_KEY),
                ..ours
            }
            .hash_is_symmetric_toeplitz()
        );
        // Key unknown, another key, too short a key.
        assert!(!NicRss { key: None, ..ours }.hash_is_symmetric_toeplitz());
        assert!(
            !NicRss {
                key: Some(&MICROSOFT_RSS_KEY),
                ..ours
            }
            .hash_is_symmetric_toeplitz()
        );
        assert!(
            !NicRss {
                key: Some(&SYMMETRIC_RSS_KEY[..36]),
                ..ours
            }
            .hash_is_symmetric_toeplitz()
        );
        // Ports not hashed, or extension-header addresses hashed.
        assert!(
            !NicRss {
                l4_ports: false,
                ..ours
            }
            .hash_is_symmetric_toeplitz()
        );
        assert!(
            !NicRss {
                ipv6_ext: true,
                ..ours
            }
            .hash_is_symmetric_toeplitz()
        );
    }

    #[test]
    fn a_trusted_nic_hash_gives_the_same_owner_as_software() {
        use crate::flow::{Addr, FlowRepr, IcmpInfo, L4, TcpInfo};
        // What a NIC programmed with the symmetric key computes.
        let nic = Toeplitz::new(&SYMMETRIC_RSS_KEY_52);
        let d = Dispatch::with_reta(4, 512);
        for i in 0..500u32 {
            for (proto, l4) in [
                (proto::TCP, L4::Tcp(TcpInfo::default())),
                (proto::UDP, L4::Udp),
            ] {
                let tuple = Tuple {
                    src: Addr::from_v4([10, 1, (i >> 8) as u8, i as u8]),
                    dst: Addr::from_v4([192, 0, 2, 7]),
                    src_port: 20000 + i as u16,
                    dst_port: 53,
                    proto,
                    family: Family::V4,
                };
                for t in [tuple, tuple.reversed()] {
                    let pkt = FlowRepr {
                        tuple: t,
                        ip_len: 40,
                        l4,
                    };
                    assert!(Dispatch::nic_hash_applies(&pkt));
                    let hw = nic.flow_hash(&t);
                    assert_eq!(d.owner_with_nic_hash(&pkt, Some(hw)), d.owner(&pkt));
                }
            }
        }
        // The NIC's hash is used as given for TCP and UDP (a wrong one would
        // show here), and ignored where it would hash other fields: an ICMP
        // error belongs to the tuple it quotes.
        let quoted = Tuple {
            src: Addr::from_v4([10, 0, 0, 1]),
            dst: Addr::from_v4([10, 0, 0, 2]),
            src_port: 1000,
            dst_port: 80,
            proto: proto::UDP,
            family: Family::V4,
        };
        let udp = FlowRepr {
            tuple: quoted,
            ip_len: 28,
            l4: L4::Udp,
        };
        let owner = d.owner(&udp);
        let wrong = (0..512u32).find(|&h| d.reta.queue_for(h) != owner).unwrap();
        assert_ne!(d.owner_with_nic_hash(&udp, Some(wrong)), owner);
        assert_eq!(d.owner_with_nic_hash(&udp, None), owner);
        let err = FlowRepr {
            tuple: Tuple {
                src: Addr::from_v4([192, 0, 2, 1]),
                dst: quoted.src,
                src_port: 0,
                dst_port: 3 << 8 | 3,
                proto: proto::ICMP,
                family: Family::V4,
            },
            ip_len: 56,
            l4: L4::Icmp(IcmpInfo {
                icmp_type: 3,
                code: 3,
                id: 0,
                inner: Some(quoted),
            }),
        };
        assert!(!Dispatch::nic_hash_applies(&err));
        assert_eq!(d.owner_with_nic_hash(&err, Some(wrong)), owner);
    }

    #[test]
    fn dispatch_mirrors_the_table_programmed_into_the_nic() {
        use crate::flow::{Addr, FlowRepr, L4};
        let t = Toeplitz::symmetric();
        for (size, workers) in [(128usize, 2u16), (512, 3), (64, 5)] {
            let nic = Reta::for_nic(size, workers).unwrap();
            let d = Dispatch::with_reta(workers, size);
            for i in 0..2000u32 {
                let tuple = Tuple {
                    src: Addr::from_v4([10, 0, (i >> 8) as u8, i as u8]),
                    dst: Addr::from_v4([10, 9, 0, 1]),
                    src_port: 1024 + i as u16,
                    dst_port: 443,
                    proto: proto::TCP,
                    family: Family::V4,
                };
                let pkt = FlowRepr {
                    tuple,
                    ip_len: 40,
                    l4: L4::Udp,
                };
                let h = t.flow_hash(&tuple);
                assert_eq!(d.owner(&pkt), nic[h as usize & (size - 1)]);
            }
        }
        assert_eq!(Reta::for_nic(100, 2), None);
    }

    /// An ICMP query and its answer have one owner, chosen by the id (so
    /// NAT can pick an id for a worker): one pair of hosts spreads over
    /// every worker by id.
    #[test]
    fn icmp_queries_are_owned_by_their_id() {
        use crate::flow::{Addr, FlowRepr, IcmpInfo, L4};
        let d = Dispatch::new(4);
        let mut seen = [false; 4];
        for id in 0..256u16 {
            let echo = |src: [u8; 4], dst: [u8; 4], t: u8| FlowRepr {
                tuple: Tuple {
                    src: Addr::from_v4(src),
                    dst: Addr::from_v4(dst),
                    src_port: id,
                    dst_port: u16::from(t) << 8,
                    proto: proto::ICMP,
                    family: Family::V4,
                },
                ip_len: 84,
                l4: L4::Icmp(IcmpInfo {
                    icmp_type: t,
                    id,
                    ..IcmpInfo::default()
                }),
            };
            let (a, b) = ([10, 0, 0, 2], [192, 0, 2, 9]);
            let w = d.owner(&echo(a, b, 8));
            assert_eq!(w, d.owner(&echo(b, a, 0)), "id {id}");
            seen[usize::from(w)] = true;
        }
        assert_eq!(seen, [true; 4]);
    }
}
