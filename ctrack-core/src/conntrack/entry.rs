//! One tracked connection, and its id.
//!
//! The entry is laid out for the packet path (see `docs/conntrack.md`): what
//! a packet reads or writes (key, TCP state, counters, last-seen time, flags)
//! is one 128-byte, 128-byte-aligned [`Entry`]. Its first cache line holds
//! all that an established UDP packet or a fast-tracked packet reads and
//! writes: the key, last-seen time, flags, generation, the TCP timeout
//! class, and the low bits of the counters (whose carries go to the second
//! line: once per 256 packets, once per 4 GiB). The second line holds the
//! TCP tracker's state, which only the full TCP path reads. What a packet
//! rarely touches (timer links, the rate window, the mark) is a 24-byte
//! [`Cold`] record in a parallel arena. The reply tuple is not stored (it is derived
//! from the original, see [`super::key`]); fasttrack counters live in a side
//! arena that only exists for chunks holding fast-tracked connections.

use core::fmt;

use super::key::Key;
use super::tcp::{TcpConn, TcpState};
use super::{Dir, Instant};
use crate::flow::proto;

/// A connection's id: stable while the entry lives, unique across shards.
/// Packs `worker << 48 | generation << 32 | slot`. Shown as RouterOS shows
/// ids: `*` and lower-case hex (`*1000000002a`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(pub u64);

impl ConnId {
    pub const fn new(worker: u16, slot: u32, generation: u16) -> ConnId {
        ConnId((worker as u64) << 48 | (generation as u64) << 32 | slot as u64)
    }

    pub const fn worker(self) -> u16 {
        (self.0 >> 48) as u16
    }

    pub const fn slot(self) -> u32 {
        self.0 as u32
    }

    pub const fn generation(self) -> u16 {
        (self.0 >> 32) as u16
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*{:x}", self.0)
    }
}

/// Why a connection id did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad connection id {0:?}: expected * and hex digits, e.g. *1f2a")]
pub struct ConnIdError(pub String);

impl core::str::FromStr for ConnId {
    type Err = ConnIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .trim()
            .strip_prefix('*')
            .ok_or_else(|| ConnIdError(s.to_string()))?;
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConnIdError(s.to_string()));
        }
        u64::from_str_radix(hex, 16)
            .map(ConnId)
            .map_err(|_| ConnIdError(s.to_string()))
    }
}

/// Protocol-specific state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProtoState {
    Tcp(TcpConn),
    /// GRE: the encapsulated protocol (EtherType) and, for PPTP (version 1),
    /// the first call id seen (shown as `gre-key`).
    Gre {
        protocol: u16,
        call_id: u16,
    },
    /// UDP, ICMP and generic: everything is in the key and the flags.
    Plain,
}

pub(crate) mod flag {
    pub const LIVE: u8 = 0x01;
    pub const ASSURED: u8 = 0x02;
    pub const SEEN_REPLY: u8 = 0x04;
    pub const FASTTRACK: u8 = 0x08;
    pub const SRCNAT: u8 = 0x10;
    pub const DSTNAT: u8 = 0x20;
    pub const EXPECTED: u8 = 0x40;
    /// The reply key is stored (NAT: not the original's inverse), in the
    /// arena's side array, and the connection has two index slots.
    pub const NAT_REPLY: u8 = 0x80;
}

/// One tracked connection: the part a packet touches. Two cache lines, in
/// this order (`repr(C)`): the first is all that an established UDP packet
/// and a fast-tracked packet touch (the index bucket aside), the second is
/// the TCP tracker's state and the counters' high bits.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(128))]
pub struct Entry {
    // ---- line 0 ----
    /// The original direction's key.
    pub(crate) key: Key,
    /// Time of the last packet that refreshed the timeout (ns).
    pub(crate) last_seen: u64,
    /// Per direction, the low 32 bits of the byte counter (the rate
    /// window's snapshot is taken of these: see [`Cold::roll`]).
    bytes_lo: [u32; 2],
    pub(crate) generation: u16,
    pub(crate) flags: u8,
    /// The connection's helper ([`crate::helper::HelperKind`] as `u8`, 0:
    /// none): `connection-type`. Set at creation from the service ports,
    /// or from the expectation that opened it (then with `expected`).
    pub(crate) helper: u8,
    /// Per direction, the low 8 bits of the packet counter.
    packets_lo: [u8; 2],
    /// The TCP timeout class: 0 for any other protocol, else
    /// `1 + state * 3 + cap` ([`tcp_class`]), kept in step with the
    /// tracker's state by [`Entry::sync_class`], so that the timeout (and
    /// with it whether the entry is alive) is read from this line.
    pub(crate) class: u8,
    _spare: u8,
    // ---- line 1 ----
    pub(crate) proto: ProtoState,
    /// Per direction, the byte counter's bits 32..64.
    bytes_hi: [u32; 2],
    /// Per direction, the packet counter's bits 8..56 (little-endian):
    /// packet counters are 56 bits wide (2^56 packets: 22 years at
    /// 100 Mpps).
    packets_hi: [[u8; 6]; 2],
}

/// The packet counters' width: they wrap at 2^56.
pub(crate) const PACKETS_MASK: u64 = (1 << 56) - 1;

/// The timeout class of a TCP connection in state `st` with cap `cap`
/// (see [`Entry::class`]); at most `1 + 3 * TcpState::ALL.len() - 1`.
pub(crate) fn tcp_class(c: &TcpConn) -> u8 {
    use super::tcp::TimeoutCap;
    let cap = match c.timeout_cap() {
        TimeoutCap::None => 0,
        TimeoutCap::MaxRetrans => 1,
        TimeoutCap::Unacked => 2,
    };
    1 + c.state().index() as u8 * 3 + cap
}

/// The number of timeout classes (0 and the TCP ones).
pub(crate) const CLASSES: usize = 1 + 3 * TcpState::ALL.len();

/// The rest of a connection: what a packet touches only when its 1 s rate
/// window rolls over, or when the connection is created, expires or is
/// managed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cold {
    /// Timer wheel links (entry indices, or a slot head marker); the free list
    /// reuses `next`.
    pub(crate) next: u32,
    pub(crate) prev: u32,
    pub(crate) mark: u32,
    /// Per direction: low 32 bits of `bytes` at the start of the window of
    /// `last_seen` (1 s windows) ...
    pub(crate) rate_snap: [u32; 2],
    /// ... and the bytes of the window before it, as a [`RateBytes`]
    /// (exact below 4096, else 12 significant bits).
    pub(crate) rate_last: [RateBytes; 2],
}

/// With the index's 7.1 bytes per connection at its 90% load, at most 160
/// bytes per tracked connection (`docs/conntrack.md`).
const _: () = assert!(core::mem::size_of::<Entry>() == 128);
const _: () = assert!(core::mem::offset_of!(Entry, proto) == 64);
const _: () = assert!(CLASSES <= 256);
const _: () = assert!(core::mem::align_of::<Entry>() == 128);
const _: () = assert!(core::mem::size_of::<Cold>() == 24);
const _: () = assert!(core::mem::size_of::<Key>() == 40);
const _: () = assert!(core::mem::size_of::<ProtoState>() == 44);

/// A byte count of one rate window in 16 bits, a small float: 5 bits of
/// exponent `e` and 11 of mantissa `m`. `e == 0` stands for `m` itself
/// (0..2047); otherwise the value is `(2048 + m) << (e - 1)`. Counts below
/// 4096 are exact; larger ones are rounded to the nearest value with 12
/// significant bits (a relative error of at most 2^-12, 0.025%). Every `u32`
/// fits (`u32::MAX` rounds up to 2^32, exponent 22).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RateBytes(u16);

impl RateBytes {
    pub(crate) const ZERO: RateBytes = RateBytes(0);

    pub(crate) fn encode(v: u32) -> RateBytes {
        if v < 4096 {
            // e = 0 holds 0..2047, e = 1 holds 2048..4095: both are `v`.
            return RateBytes(v as u16);
        }
        let shift = 20 - v.leading_zeros(); // bits below the 12 kept: 1..=20
        let mut m = u64::from(v) >> shift; // 2048..=4095
        // Round to nearest, ties up.
        m += (u64::from(v) >> (shift - 1)) & 1;
        let mut e = shift + 1;
        if m == 4096 {
            m = 2048;
            e += 1;
        }
        RateBytes(((e as u16) << 11) | (m - 2048) as u16)
    }

    pub(crate) fn decode(self) -> u64 {
        let e = u32::from(self.0 >> 11);
        let m = u64::from(self.0 & 0x7ff);
        if e == 0 { m } else { (2048 + m) << (e - 1) }
    }
}

pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;

impl Entry {
    pub(crate) const EMPTY: Entry = Entry {
        key: Key {
            src: crate::flow::Addr([0; 16]),
            dst: crate::flow::Addr([0; 16]),
            sport: 0,
            dport: 0,
            proto: 0,
            family: crate::flow::Family::V4,
            ver: 0,
        },
        last_seen: 0,
        bytes_lo: [0; 2],
        generation: 0,
        flags: 0,
        helper: 0,
        packets_lo: [0; 2],
        class: 0,
        _spare: 0,
        proto: ProtoState::Plain,
        bytes_hi: [0; 2],
        packets_hi: [[0; 6]; 2],
    };

    pub(crate) fn is_live(&self) -> bool {
        self.flags & flag::LIVE != 0
    }

    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Counts a packet; refreshes `last_seen` when `refresh`. The caller
    /// first rolls the rate window ([`Cold::roll`]) if
    /// [`Entry::window_rolls`].
    #[inline]
    pub(crate) fn account(&mut self, now: Instant, dir: Dir, ip_len: u32, refresh: bool) {
        let d = dir.index();
        let (p, carry) = self.packets_lo[d].overflowing_add(1);
        self.packets_lo[d] = p;
        if carry {
            self.carry_packet(d);
        }
        let (b, carry) = self.bytes_lo[d].overflowing_add(ip_len);
        self.bytes_lo[d] = b;
        if carry {
            self.carry_bytes(d);
        }
        if refresh && now.nanos() > self.last_seen {
            self.last_seen = now.nanos();
        }
    }

    /// The packet counter's carry into its high bits (the second line).
    #[cold]
    #[inline(never)]
    fn carry_packet(&mut self, d: usize) {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.packets_hi[d]);
        let hi = u64::from_le_bytes(b).wrapping_add(1);
        self.packets_hi[d].copy_from_slice(&hi.to_le_bytes()[..6]);
    }

    #[cold]
    #[inline(never)]
    fn carry_bytes(&mut self, d: usize) {
        self.bytes_hi[d] = self.bytes_hi[d].wrapping_add(1);
    }

    /// The packet counter of direction `d` (56 bits).
    fn packets_of(&self, d: usize) -> u64 {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.packets_hi[d]);
        u64::from_le_bytes(b) << 8 | u64::from(self.packets_lo[d])
    }

    /// The byte counter of direction `d`.
    fn bytes_of(&self, d: usize) -> u64 {
        u64::from(self.bytes_hi[d]) << 32 | u64::from(self.bytes_lo[d])
    }

    /// Packets of both directions (wrapping at 2^56 each).
    pub(crate) fn packets_total(&self) -> u64 {
        self.packets_of(0).wrapping_add(self.packets_of(1))
    }

    /// Bytes of both directions.
    pub(crate) fn bytes_total(&self) -> u64 {
        self.bytes_of(0).wrapping_add(self.bytes_of(1))
    }

    /// Sets [`Entry::class`] from the protocol state: after the TCP
    /// tracker stepped it, and at creation.
    #[inline]
    pub(crate) fn sync_class(&mut self) {
        self.class = match &self.proto {
            ProtoState::Tcp(c) => tcp_class(c),
            _ => 0,
        };
    }

    /// Whether [`Entry::class`] is the one of the protocol state.
    pub(crate) fn class_in_step(&self) -> bool {
        let mut e = *self;
        e.sync_class();
        e.class == self.class
    }

    /// Whether a refreshing packet at `now` starts a new 1 s rate window.
    #[inline]
    pub(crate) fn window_rolls(&self, now: Instant) -> bool {
        now.nanos() / NS_PER_SEC > self.last_seen / NS_PER_SEC
    }

    // ---- read-only accessors (the seed's properties) ----

    /// The original direction's tuple key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The reply direction's tuple key.
    /// (Derived: for a connection with a stored NAT reply key, use
    /// `Shard::reply_key`.)
    pub fn reply_key(&self) -> Key {
        self.key.reply()
    }

    pub fn protocol(&self) -> u8 {
        self.key.proto
    }

    pub fn tcp_state(&self) -> Option<TcpState> {
        match &self.proto {
            ProtoState::Tcp(c) => Some(c.state()),
            _ => None,
        }
    }

    pub fn proto_state(&self) -> &ProtoState {
        &self.proto
    }

    pub fn assured(&self) -> bool {
        self.has(flag::ASSURED)
    }

    pub fn seen_reply(&self) -> bool {
        self.has(flag::SEEN_REPLY)
    }

    /// Every entry in the table is confirmed: entries are created when their
    /// first packet is accepted.
    pub fn confirmed(&self) -> bool {
        self.is_live()
    }

    pub fn fasttrack(&self) -> bool {
        self.has(flag::FASTTRACK)
    }

    pub fn srcnat(&self) -> bool {
        self.has(flag::SRCNAT)
    }

    pub fn dstnat(&self) -> bool {
        self.has(flag::DSTNAT)
    }

    pub fn expected(&self) -> bool {
        self.has(flag::EXPECTED)
    }

    /// `connection-type`: the helper of the connection (of its master, for
    /// an expected one).
    pub fn helper(&self) -> Option<crate::helper::HelperKind> {
        crate::helper::HelperKind::from_u8(self.helper)
    }

    /// Packets in direction `dir` (56 bits: wraps at 2^56).
    pub fn packets(&self, dir: Dir) -> u64 {
        self.packets_of(dir.index())
    }

    pub fn bytes(&self, dir: Dir) -> u64 {
        self.bytes_of(dir.index())
    }

    pub fn last_seen(&self) -> Instant {
        Instant(self.last_seen)
    }

    /// The GRE key shown as `gre-key`: the v0 key, or PPTP's first call id.
    pub fn gre_key(&self) -> Option<u32> {
        if self.key.proto != proto::GRE {
            return None;
        }
        match self.proto {
            ProtoState::Gre { call_id, .. } if self.key.ver == 2 => Some(u32::from(call_id)),
            _ => Some(u32::from(self.key.sport) << 16 | u32::from(self.key.dport)),
        }
    }
}

impl Cold {
    pub(crate) const EMPTY: Cold = Cold {
        next: u32::MAX,
        prev: u32::MAX,
        mark: 0,
        rate_snap: [0; 2],
        rate_last: [RateBytes::ZERO; 2],
    };

    /// Moves the rate window of `e` to the one of `now` (before `e` counts
    /// the packet that moves it).
    pub(crate) fn roll(&mut self, e: &Entry, now: Instant) {
        let now_win = now.nanos() / NS_PER_SEC;
        let win = e.last_seen / NS_PER_SEC;
        for i in 0..2 {
            let cur = e.bytes_lo[i];
            self.rate_last[i] = if now_win == win + 1 {
                // Modulo 2^32: up to 4 GiB (34 Gbit/s) per window.
                RateBytes::encode(cur.wrapping_sub(self.rate_snap[i]))
            } else {
                RateBytes::ZERO
            };
            self.rate_snap[i] = cur;
        }
    }

    /// Rate in bits/s of direction `d` of `e` over the last complete 1 s
    /// window.
    pub(crate) fn rate(&self, e: &Entry, now: Instant, d: usize) -> u64 {
        let now_win = now.nanos() / NS_PER_SEC;
        let win = e.last_seen / NS_PER_SEC;
        let bytes = if now_win == win {
            self.rate_last[d].decode()
        } else if now_win == win + 1 {
            u64::from(e.bytes_lo[d].wrapping_sub(self.rate_snap[d]))
        } else {
            0
        };
        bytes * 8
    }
}

/// Fasttrack counters of one connection: packets and bytes per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtCounters {
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

/// A connection's slot in the fasttrack side arena. The short path counts
/// only in the entry; the slot is written when the connection enters or
/// leaves FastTrack, never per packet: while fast-tracked, its fasttrack
/// counters are `done + (entry counters - base)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FtSlot {
    /// The entry's counters when it last entered FastTrack.
    pub(crate) base: FtCounters,
    /// Fast-tracked packets of earlier FastTrack periods.
    pub(crate) done: FtCounters,
}

impl Entry {
    pub(crate) fn counters(&self) -> FtCounters {
        FtCounters {
            packets: [self.packets_of(0), self.packets_of(1)],
            bytes: [self.bytes_of(0), self.bytes_of(1)],
        }
    }
}

impl FtSlot {
    /// The connection's fasttrack counters, given its entry now.
    pub(crate) fn read(&self, e: &Entry) -> FtCounters {
        if !e.has(flag::FASTTRACK) {
            return self.done;
        }
        let now = e.counters();
        let mut out = self.done;
        for d in 0..2 {
            out.packets[d] += now.packets[d].wrapping_sub(self.base.packets[d]) & PACKETS_MASK;
            out.bytes[d] += now.bytes[d].wrapping_sub(self.base.bytes[d]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_into_the_second_line() {
        let mut e = Entry::EMPTY;
        let now = Instant(1);
        let (mut p, mut b) = (0u64, 0u64);
        // Past the packet counter's low byte, several times.
        for n in 0..1000u32 {
            let len = 1500 + n;
            e.account(now, Dir::Reply, len, true);
            p += 1;
            b += u64::from(len);
            assert_eq!((e.packets(Dir::Reply), e.bytes(Dir::Reply)), (p, b));
        }
        assert_eq!((e.packets(Dir::Orig), e.bytes(Dir::Orig)), (0, 0));
        // Past the byte counter's low 32 bits.
        e.bytes_lo[0] = u32::MAX - 10;
        e.account(now, Dir::Orig, 100, true);
        assert_eq!(e.bytes(Dir::Orig), u64::from(u32::MAX) + 90);
        // The packet counter's high bits, up to its 56-bit wrap.
        e.packets_hi[0] = [0xff; 6];
        e.packets_lo[0] = 0xfe;
        e.account(now, Dir::Orig, 1, true);
        assert_eq!(e.packets(Dir::Orig), PACKETS_MASK);
        e.account(now, Dir::Orig, 1, true);
        assert_eq!(e.packets(Dir::Orig), 0);
        assert_eq!(e.packets_total(), p);
    }

    #[test]
    fn rate_bytes_round_trip() {
        for v in 0..=8192u32 {
            let got = RateBytes::encode(v).decode();
            if v < 4096 {
                assert_eq!(got, u64::from(v));
            }
            assert!(
                got.abs_diff(u64::from(v)) * 4096 <= u64::from(v),
                "{v} -> {got}"
            );
        }
        let mut v = 1u64;
        while v <= u64::from(u32::MAX) {
            for x in [v - 1, v, v + 1, v * 3 / 2] {
                let x = x.min(u64::from(u32::MAX)) as u32;
                let got = RateBytes::encode(x).decode();
                assert!(
                    got.abs_diff(u64::from(x)) * 4096 <= u64::from(x),
                    "{x} -> {got}"
                );
            }
            v *= 2;
        }
        let max = RateBytes::encode(u32::MAX);
        assert_eq!(max.0 >> 11, 22);
        assert_eq!(max.decode(), 1 << 32);
        // Monotone.
        let mut last = 0;
        for v in (0..u32::MAX).step_by(65_521) {
            let got = RateBytes::encode(v).decode();
            assert!(got >= last);
            last = got;
        }
    }
}
