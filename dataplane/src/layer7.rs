//! What the firewall reads from a packet beyond conntrack's [`FlowRepr`]
//! ([`ip_fields`]: TTL or hop limit, DSCP, the L4 payload), and the layer7
//! payload windows ([`L7Windows`]).
//!
//! RouterOS matches a `layer7-protocol` regexp against "the first 10 packets
//! or 2KB of a connection" and remembers the result (help.mikrotik.com,
//! Firewall / Layer7 protocol). A pattern may span packets (an HTTP request
//! split in two segments), so the payload of a connection's first packets is
//! kept, in order of arrival over both directions (as l7-filter keeps it),
//! up to [`L7_BYTES`]. Keeping 2 KiB in every connection would grow every
//! entry for the few connections being inspected; instead each worker has one
//! bounded side table of windows keyed by connection id, allocated once when
//! a ruleset with layer7 rules is installed. A connection gets a window only
//! once a layer7 rule looked at it (the engine's [`Verdict::l7_scanned`]),
//! and loses it after its first [`L7_PACKETS`] packets or [`L7_BYTES`] of
//! payload; the result (one bit per protocol that matched) is stored in the
//! connection ([`crate::conntrack::Shard::set_l7_state`]), so later packets
//! are never scanned. A full table counts the connection
//! ([`L7Windows::full`]) and its packets are then matched one by one (a
//! pattern spanning packets is missed for it) until one finds a free slot.
//!
//! [`Verdict::l7_scanned`]: ctrack_rules::Verdict::l7_scanned

use crate::conntrack::ConnId;
use crate::flow::{Family, FlowRepr, L4};
use crate::packet::{ethernet, ipv6};
pub use ctrack_rules::engine::{L7_BYTES, L7_PACKETS};

/// Connections a worker inspects at once at most (2 KiB of payload each:
/// 2 MiB per worker).
pub const L7_WINDOWS: usize = 1024;

/// Slots probed for a connection's window (linear probing from its hash).
const PROBE: usize = 8;

const WINDOW: usize = L7_BYTES as usize;

/// The firewall's view of a packet's IP header and payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpFields<'a> {
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The DSCP (the upper six bits of the IPv4 TOS / IPv6 traffic class).
    pub dscp: u8,
    /// TCP or UDP payload (empty for other protocols), bounded by the IP
    /// length (Ethernet padding excluded).
    pub payload: &'a [u8],
}

/// Reads TTL, DSCP and payload from `frame`, which parsed into `f` (so its
/// headers are known to be whole). Defaults where the frame is not what `f`
/// says (never panics).
pub fn ip_fields<'a>(frame: &'a [u8], f: &FlowRepr) -> IpFields<'a> {
    let Ok(u) = ethernet::strip(frame) else {
        return IpFields::default();
    };
    let ip = u.payload;
    let total = (f.ip_len as usize).min(ip.len());
    let ip = &ip[..total];
    let (ttl, tos, l4) = match f.tuple.family {
        Family::V4 => {
            let (Some(&b0), Some(&tos), Some(&ttl)) = (ip.first(), ip.get(1), ip.get(8)) else {
                return IpFields::default();
            };
            let ihl = usize::from(b0 & 0x0f) * 4;
            (ttl, tos, ip.get(ihl..).unwrap_or(&[]))
        }
        Family::V6 => {
            let (Some(&b0), Some(&b1), Some(&next), Some(&hl)) =
                (ip.first(), ip.get(1), ip.get(6), ip.get(7))
            else {
                return IpFields::default();
            };
            let tc = (b0 << 4) | (b1 >> 4);
            let rest = ip.get(ipv6::HEADER_LEN..).unwrap_or(&[]);
            let l4 = match ipv6::walk(next, rest) {
                Ok(w) => rest.get(w.offset..).unwrap_or(&[]),
                Err(_) => &[],
            };
            (hl, tc, l4)
        }
    };
    let payload = match f.l4 {
        // The segment's data ends the IP packet.
        L4::Tcp(t) => l4
            .len()
            .checked_sub(t.payload_len as usize)
            .and_then(|s| l4.get(s..))
            .unwrap_or(&[]),
        L4::Udp => {
            let len = l4
                .get(4..6)
                .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            l4.get(8..len.min(l4.len())).unwrap_or(&[])
        }
        _ => &[],
    };
    IpFields {
        ttl,
        dscp: tos >> 2,
        payload,
    }
}

/// The per-worker side table of layer7 payload windows (see the module doc).
/// Allocated once; no allocation afterwards.
pub struct L7Windows {
    /// `ConnId.0 + 1` of the slot's connection; 0: free.
    ids: Box<[u64]>,
    lens: Box<[u16]>,
    bufs: Box<[u8]>,
    /// Insertions that found no free slot (the connection is inspected
    /// packet by packet until a later packet finds one).
    pub full: u64,
}

impl Default for L7Windows {
    fn default() -> Self {
        L7Windows::new(L7_WINDOWS)
    }
}

impl L7Windows {
    /// A table of `n` windows (allocates `n` * 2 KiB).
    pub fn new(n: usize) -> L7Windows {
        let n = n.max(PROBE);
        L7Windows {
            ids: vec![0; n].into_boxed_slice(),
            lens: vec![0; n].into_boxed_slice(),
            bufs: vec![0; n * WINDOW].into_boxed_slice(),
            full: 0,
        }
    }

    fn start(&self, id: ConnId) -> usize {
        // Fibonacci hashing of the id (slot, generation and worker bits).
        (id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % self.ids.len()
    }

    /// The slot holding `id`'s window.
    pub fn find(&self, id: ConnId) -> Option<usize> {
        let s = self.start(id);
        (0..PROBE)
            .map(|k| (s + k) % self.ids.len())
            .find(|&i| self.ids[i] == id.0.wrapping_add(1))
    }

    /// A slot for `id`, holding `payload` as its first bytes: a free one, or
    /// one whose connection is gone (`alive` says no). `None` (counted in
    /// [`L7Windows::full`]) when every probed slot is taken.
    pub fn insert(
        &mut self,
        id: ConnId,
        payload: &[u8],
        alive: impl Fn(ConnId) -> bool,
    ) -> Option<usize> {
        let s = self.start(id);
        let n = self.ids.len();
        let slot = (0..PROBE).map(|k| (s + k) % n).find(|&i| {
            let held = self.ids[i];
            held == 0 || !alive(ConnId(held.wrapping_sub(1)))
        });
        let Some(i) = slot else {
            self.full += 1;
            return None;
        };
        self.ids[i] = id.0.wrapping_add(1);
        let k = payload.len().min(WINDOW);
        self.bufs[i * WINDOW..i * WINDOW + k].copy_from_slice(&payload[..k]);
        self.lens[i] = k as u16;
        Some(i)
    }

    /// Appends `payload` to slot `i`'s window (what does not fit in
    /// [`L7_BYTES`] is left out) and returns the whole window.
    pub fn append(&mut self, i: usize, payload: &[u8]) -> &[u8] {
        let len = usize::from(self.lens[i]);
        let k = payload.len().min(WINDOW - len);
        let w = &mut self.bufs[i * WINDOW..(i + 1) * WINDOW];
        w[len..len + k].copy_from_slice(&payload[..k]);
        self.lens[i] = (len + k) as u16;
        &w[..len + k]
    }

    /// Whether slot `i`'s window holds [`L7_BYTES`] already.
    pub fn is_full(&self, i: usize) -> bool {
        usize::from(self.lens[i]) >= WINDOW
    }

    /// Frees slot `i`.
    pub fn remove(&mut self, i: usize) {
        self.ids[i] = 0;
        self.lens[i] = 0;
    }

    /// Windows in use (O(n): for tests and reports).
    pub fn live(&self) -> usize {
        self.ids.iter().filter(|&&i| i != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_ethernet;

    fn v4_frame(tos: u8, ttl: u8, proto: u8, l4: &[u8], pad: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![
            0x45,
            tos,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            ttl,
            proto,
        ];
        ip.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let sum = crate::packet::checksum::checksum_of(crate::packet::checksum::sum(&ip, 0));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f.extend(std::iter::repeat_n(0xee, pad));
        f
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        let mut u = vec![0x30, 0x39, 0, 53, (len >> 8) as u8, len as u8, 0, 0];
        u.extend_from_slice(payload);
        u
    }

    #[test]
    fn fields_of_an_ipv4_udp_datagram_without_padding() {
        let f = v4_frame(0xb8, 17, 17, &udp(b"query"), 13);
        let r = parse_ethernet(&f).unwrap();
        let x = ip_fields(&f, &r);
        assert_eq!((x.ttl, x.dscp, x.payload), (17, 46, &b"query"[..]));
    }

    #[test]
    fn fields_of_an_ipv4_tcp_segment() {
        let mut tcp = vec![
            0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
        ];
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let f = v4_frame(0x28, 63, 6, &tcp, 0);
        let r = parse_ethernet(&f).unwrap();
        let x = ip_fields(&f, &r);
        assert_eq!((x.ttl, x.dscp), (63, 10));
        assert_eq!(x.payload, b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn garbage_gives_defaults() {
        let r = FlowRepr::default();
        assert_eq!(ip_fields(&[1, 2, 3], &r), IpFields::default());
    }

    #[test]
    fn windows_append_up_to_the_limit_and_count_when_full() {
        let mut w = L7Windows::new(8);
        let a = ConnId(7);
        let i = w.insert(a, b"GE", |_| true).unwrap();
        assert_eq!(w.find(a), Some(i));
        assert_eq!(w.append(i, b"T /"), b"GET /");
        let big = vec![b'x'; 3000];
        assert_eq!(w.append(i, &big).len(), WINDOW);
        assert!(w.is_full(i));
        // Eight probes, eight slots: the ninth live connection finds none.
        for k in 0..7 {
            assert!(w.insert(ConnId(100 + k), b"", |_| true).is_some());
        }
        assert_eq!(w.insert(ConnId(999), b"", |_| true), None);
        assert_eq!(w.full, 1);
        // A slot whose connection is gone is taken over.
        let j = w.insert(ConnId(999), b"x", |id| id != a).unwrap();
        assert_eq!(j, i);
        assert_eq!(w.find(a), None);
        w.remove(j);
        assert_eq!(w.live(), 7);
    }
}
