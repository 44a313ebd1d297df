//! IP fragments (issue #11, docs/nat.md "Fragments"): reassembly before
//! tracking, and fragmenting a reassembled datagram again on the way out.
//!
//! RouterOS reassembles when connection tracking is on, as Linux's
//! `nf_defrag_ipv4` / `nf_defrag_ipv6` do, so that a connection sees whole
//! datagrams: a non-first fragment has no ports, and could be neither
//! tracked nor translated on its own. The worker offers every fragment of
//! a burst to its I/O's reassembler ([`crate::io::PacketIo::reassemble`],
//! one table per worker) before anything parses it, and goes on with the
//! whole datagrams that come out. On DPDK that is `rte_ip_frag`
//! ([`dpdk::FragTable`], see `crate::io::dpdk`); the in-memory I/O of the
//! tests without DPDK does not reassemble (fragments go on one by one, as
//! before), which is the trait's default.
//!
//! On the way out a reassembled datagram is cut again into fragments no
//! larger than the largest one it came in (Linux's `frag_max_size`, see
//! [`crate::io::PacketIo::frag_size`]), or than the egress MTU if that is
//! smaller: [`Fragmenter`], used by the router plane and by bridge mode.

use crate::io::PacketIo;
use crate::packet::checksum::{checksum_of, sum};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
/// IPv6's fragment header (next header 44).
const IPV6_FRAGMENT: u8 = 44;
/// The smallest IPv6 link MTU: Linux's `ip6_fragment` fragments to no less.
pub const IPV6_MIN_MTU: usize = 1280;

/// What reassembly made of a received packet.
pub enum Reassembled<P> {
    /// Not a fragment (or no reassembly here): the packet as it came.
    Pass(P),
    /// The last fragment of a datagram: the whole datagram.
    Done(P),
    /// Held (more fragments to come) or dropped (counted in
    /// [`FragTotals`]).
    Gone,
}

/// Counts of reassembly and of fragmenting again, one worker's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FragTotals {
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Fragments received and offered to reassembly.
    pub fragments: u64,
    /// Fragments dropped: their datagram did not complete in time.
    pub timeout: u64,
    /// Fragments dropped: the table had no room for another datagram.
    pub no_space: u64,
    /// Datagrams dropped: too big for one buffer once whole.
    pub too_big: u64,
    /// Datagrams dropped: a bad fragment (empty, truncated, too many,
    /// overlapping or duplicated).
    pub bad: u64,
    /// Datagrams dropped: no buffer free for the whole datagram.
    pub no_mbuf: u64,
    /// Bridge mode: reassembled datagrams fragmented again on the way out,
    /// and the fragments sent (router mode counts them in the router's
    /// `fragmented` / `fragments`).
    pub refragmented: u64,
    pub refragments: u64,
    /// Reassembled datagrams that could not be fragmented again (IPv4
    /// options, no buffer): dropped.
    pub refragment_failed: u64,
}

impl FragTotals {
    /// How many counts [`FragTotals::as_array`] has.
    pub const COUNT: usize = 10;
    /// The counts' names, in [`FragTotals::as_array`]'s order (the label
    /// values of `ctrack_frag_events_total`).
    pub const NAMES: [&'static str; Self::COUNT] = [
        "reassembled",
        "fragments",
        "timeout",
        "no_space",
        "too_big",
        "bad",
        "no_mbuf",
        "refragmented",
        "refragments",
        "refragment_failed",
    ];

    pub fn as_array(&self) -> [u64; Self::COUNT] {
        [
            self.reassembled,
            self.fragments,
            self.timeout,
            self.no_space,
            self.too_big,
            self.bad,
            self.no_mbuf,
            self.refragmented,
            self.refragments,
            self.refragment_failed,
        ]
    }

    pub fn from_array(a: [u64; Self::COUNT]) -> FragTotals {
        FragTotals {
            reassembled: a[0],
            fragments: a[1],
            timeout: a[2],
            no_space: a[3],
            too_big: a[4],
            bad: a[5],
            no_mbuf: a[6],
            refragmented: a[7],
            refragments: a[8],
            refragment_failed: a[9],
        }
    }

    /// Every count with its name.
    pub fn named(&self) -> [(&'static str, u64); Self::COUNT] {
        let a = self.as_array();
        std::array::from_fn(|i| (Self::NAMES[i], a[i]))
    }

    /// Packets dropped, for a summary: fragments lost to the timeout or a
    /// full table, datagrams refused whole.
    pub fn dropped(&self) -> u64 {
        self.timeout
            + self.no_space
            + self.too_big
            + self.bad
            + self.no_mbuf
            + self.refragment_failed
    }
}

/// Whether Ethernet frame `f` is an IP fragment (IPv4 with MF or an
/// offset; IPv6 with a fragment header right after the fixed header, the
/// one place `rte_ip_frag` looks): what the worker offers to reassembly.
#[inline]
pub fn is_fragment(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([0x08, 0x00]) => f
            .get(20..22)
            .is_some_and(|w| u16::from_be_bytes([w[0], w[1]]) & 0x3fff != 0),
        Some([0x86, 0xdd]) => f.get(20) == Some(&IPV6_FRAGMENT),
        _ => false,
    }
}

/// The IP length of Ethernet frame `f`'s packet (IPv4 total length, IPv6
/// 40 + payload length).
pub fn ip_len(f: &[u8]) -> Option<usize> {
    match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        ETH_IPV4 => Some(usize::from(u16::from_be_bytes([*f.get(16)?, *f.get(17)?]))),
        ETH_IPV6 => Some(40 + usize::from(u16::from_be_bytes([*f.get(18)?, *f.get(19)?]))),
        _ => None,
    }
}

/// Why [`Fragmenter::split`] could not fragment a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// Not IPv4 without options nor IPv6, or shorter than its length.
    Unsupported,
    /// The size leaves no room for data.
    TooSmall,
    /// No buffer for a fragment (those made before it were sent).
    NoBuffer,
}

/// Cuts packets into fragments (one per worker: its buffer is where each
/// fragment is built, 14 + 65535 bytes, allocated once).
pub struct Fragmenter {
    buf: Box<[u8]>,
    /// The next IPv6 fragment identification (IPv4 keeps the datagram's).
    next_id: u32,
}

impl Fragmenter {
    /// `seed` starts the IPv6 identifications.
    pub fn new(seed: u32) -> Fragmenter {
        Fragmenter {
            buf: vec![0; 14 + 65535].into_boxed_slice(),
            next_id: seed,
        }
    }

    /// One without a buffer (allocates nothing), to stand in while the
    /// real one is lent out.
    pub fn empty() -> Fragmenter {
        Fragmenter {
            buf: Box::default(),
            next_id: 0,
        }
    }

    /// Sends Ethernet frame `f` as fragments of at most `size` IP bytes,
    /// each a new packet from `io` given to `each`: IPv4 (a 20-byte header;
    /// a fragment already keeps its offset, and its MF on the last piece),
    /// as Linux's `ip_do_fragment`; IPv6 (the fixed header, then a fragment
    /// header with a new identification), as `ip6_fragment`. Returns how
    /// many were sent.
    pub fn split<I: PacketIo>(
        &mut self,
        io: &mut I,
        f: &[u8],
        size: usize,
        mut each: impl FnMut(&mut I, I::Packet),
    ) -> Result<usize, SplitError> {
        let v6 = match f.get(12..14) {
            Some([0x08, 0x00]) if f.get(14) == Some(&0x45) => false,
            Some([0x86, 0xdd]) => true,
            _ => return Err(SplitError::Unsupported),
        };
        let head = if v6 { 48 } else { 20 };
        let max_data = size.saturating_sub(head) & !7;
        if max_data == 0 {
            return Err(SplitError::TooSmall);
        }
        let id = self.next_id;
        if v6 {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let mut at = 0;
        let mut sent = 0;
        loop {
            let piece = if v6 {
                v6_fragment(f, at, max_data, id, &mut self.buf)
            } else {
                v4_fragment(f, at, max_data, &mut self.buf)
            };
            let Some((n, next_at)) = piece else {
                return Err(SplitError::Unsupported);
            };
            match io.alloc(&self.buf[..n]) {
                Some(p) => {
                    sent += 1;
                    each(io, p);
                }
                None => return Err(SplitError::NoBuffer),
            }
            match next_at {
                Some(a) => at = a,
                None => return Ok(sent),
            }
        }
    }
}

/// Writes into `out` the fragment of IPv4 frame `f` (20-byte header) that
/// carries its payload from byte `at` (a multiple of 8), at most `max_data`
/// bytes (a multiple of 8): Ethernet and IP header copied, total length,
/// MF and offset set (the original's offset added, its MF kept on the last
/// piece), header checksum computed. Returns the fragment's length and the
/// next piece's `at` (`None`: this was the last); `None` if `f` is too
/// short for its total length or `out` for the fragment.
pub fn v4_fragment(
    f: &[u8],
    at: usize,
    max_data: usize,
    out: &mut [u8],
) -> Option<(usize, Option<usize>)> {
    let total = usize::from(u16::from_be_bytes([*f.get(16)?, *f.get(17)?]));
    let payload = f.get(34..14 + total)?;
    let chunk = max_data.min(payload.len().checked_sub(at)?);
    let last = at + chunk == payload.len();
    let n = 34 + chunk;
    let o = out.get_mut(..n)?;
    o[..34].copy_from_slice(&f[..34]);
    o[34..].copy_from_slice(&payload[at..at + chunk]);
    o[16..18].copy_from_slice(&((20 + chunk) as u16).to_be_bytes());
    let word = u16::from_be_bytes([f[20], f[21]]);
    let offset = usize::from(word & 0x1fff) * 8 + at;
    let mf = !last || word & 0x2000 != 0;
    let word = (word & 0x4000) | if mf { 0x2000 } else { 0 } | (offset / 8) as u16 & 0x1fff;
    o[20..22].copy_from_slice(&word.to_be_bytes());
    o[24..26].fill(0);
    let c = checksum_of(sum(&o[14..34], 0));
    o[24..26].copy_from_slice(&c.to_be_bytes());
    Some((n, (!last).then_some(at + chunk)))
}

/// Writes into `out` the fragment of IPv6 frame `f` (the fixed header, the
/// rest fragmentable: what reassembly leaves) that carries its payload
/// from byte `at`, at most `max_data` bytes (a multiple of 8), with
/// identification `id`. Returns the fragment's length and the next
/// piece's `at` (`None`: this was the last).
pub fn v6_fragment(
    f: &[u8],
    at: usize,
    max_data: usize,
    id: u32,
    out: &mut [u8],
) -> Option<(usize, Option<usize>)> {
    let plen = usize::from(u16::from_be_bytes([*f.get(18)?, *f.get(19)?]));
    let next = *f.get(20)?;
    let payload = f.get(54..54 + plen)?;
    let chunk = max_data.min(payload.len().checked_sub(at)?);
    let last = at + chunk == payload.len();
    let n = 62 + chunk;
    let o = out.get_mut(..n)?;
    o[..54].copy_from_slice(&f[..54]);
    o[18..20].copy_from_slice(&((8 + chunk) as u16).to_be_bytes());
    o[20] = IPV6_FRAGMENT;
    o[54] = next;
    o[55] = 0;
    let word = (at as u16 & !7) | u16::from(!last);
    o[56..58].copy_from_slice(&word.to_be_bytes());
    o[58..62].copy_from_slice(&id.to_be_bytes());
    o[62..].copy_from_slice(&payload[at..at + chunk]);
    Some((n, (!last).then_some(at + chunk)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemIo;

    fn v4(len: usize, frag_word: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(len as u16).to_be_bytes());
        f[18..20].copy_from_slice(&0x4242u16.to_be_bytes());
        f[20..22].copy_from_slice(&frag_word.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        for (i, b) in f[34..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn v6(plen: usize) -> Vec<u8> {
        let mut f = vec![0u8; 54 + plen];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
        f[20] = 17;
        f[21] = 64;
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = (i * 3) as u8;
        }
        f
    }

    #[test]
    fn fragments_are_recognised() {
        assert!(!is_fragment(&v4(100, 0)));
        assert!(!is_fragment(&v4(100, 0x4000)), "DF alone");
        assert!(is_fragment(&v4(100, 0x2000)), "MF");
        assert!(is_fragment(&v4(100, 0x0010)), "an offset");
        let mut f = v6(100);
        assert!(!is_fragment(&f));
        f[20] = 44;
        assert!(is_fragment(&f));
        assert!(!is_fragment(&[0u8; 13]));
    }

    /// The pieces put back together give the datagram again; each fits
    /// the size; IPv4 keeps the identification, IPv6 gets a new one.
    #[test]
    fn split_pieces_add_up() {
        let mut io = MemIo::pair();
        let mut fr = Fragmenter::new(7);
        let f = v4(4028, 0);
        let mut out = Vec::new();
        let n = fr
            .split(&mut io, &f, 1500, |_, p| out.push(p))
            .expect("split");
        assert_eq!(n, 3);
        let mut data = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(ip_len(p).unwrap() <= 1500);
            let word = u16::from_be_bytes([p[20], p[21]]);
            assert_eq!(usize::from(word & 0x1fff) * 8, data.len());
            assert_eq!(word & 0x2000 != 0, i < 2, "MF on all but the last");
            assert_eq!(&p[18..20], &[0x42, 0x42]);
            assert_eq!(checksum_of(sum(&p[14..34], 0)), 0);
            data.extend_from_slice(&p[34..]);
        }
        assert_eq!(data, f[34..]);

        let f = v6(5008);
        out.clear();
        let n = fr
            .split(&mut io, &f, 1500, |_, p| out.push(p))
            .expect("split");
        assert_eq!(n, 4);
        let mut data = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(ip_len(p).unwrap() <= 1500);
            assert_eq!((p[20], p[54]), (44, 17));
            let word = u16::from_be_bytes([p[56], p[57]]);
            assert_eq!(usize::from(word & !7), data.len());
            assert_eq!(word & 1 != 0, i < 3);
            assert_eq!(&p[58..62], &7u32.to_be_bytes());
            data.extend_from_slice(&p[62..]);
        }
        assert_eq!(data, f[54..]);
        assert_eq!(fr.next_id, 8);

        let mut opts = v4(100, 0);
        opts[14] = 0x46;
        assert_eq!(
            fr.split(&mut io, &opts, 60, |_, _| {}),
            Err(SplitError::Unsupported)
        );
        assert_eq!(
            fr.split(&mut io, &v4(100, 0), 24, |_, _| {}),
            Err(SplitError::TooSmall)
        );
    }
}
