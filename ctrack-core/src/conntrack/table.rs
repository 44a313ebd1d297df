//! The per-worker connection table: index, entry arena, timer wheel.
//!
//! - **Index**: a bucketized cuckoo hash (as DPDK's `rte_hash`): 64-byte
//!   buckets of 10 slots (a 16-bit hash signature and a `u32` entry reference
//!   each), sized once for `max_entries` keys at <= 90% load. Each connection
//!   is indexed once, under its canonical key ([`Key::canonical`]: the smaller
//!   of its original and reply tuples), which packets of both directions
//!   compute; the slot says which of the two it is. A key lives
//!   in its primary or its secondary bucket; an insert that finds both full
//!   moves other keys to their alternatives along a path found by a bounded
//!   breadth-first search. Each bucket counts the keys of which it is the
//!   primary that live in their secondary, so a lookup (also a miss) reads
//!   one cache line unless that count is non-zero. Never rehashed.
//! - **Arena**: entries live in chunks of [`CHUNK`] allocated on demand up to
//!   `max_entries`; live entries never move; freed slots are reused through a
//!   free list, with a generation so stale [`ConnId`]s miss.
//! - **Timer wheel**: [`WHEEL_SLOTS`] slots of [`TICK_NS`] (~134 ms), a
//!   horizon of ~18 minutes. A packet only updates `last_seen`; the deadline is
//!   `last_seen + timeout(state, settings)`. An entry sits in one slot (an
//!   intrusive doubly linked list); when its slot comes due and the deadline
//!   has not passed it is moved to the right slot (lazy re-slotting), so
//!   longer timeouts and later packets cost nothing per packet.
//!
//! A `Shard` is single-threaded: the worker owns it and calls management
//! functions between bursts.

use super::entry::{Cold, ConnId, Entry, FtSlot, ProtoState, flag};
use super::key::{HashSeed, IcmpKind, Key, icmp_kind};
use super::settings::Settings;
use super::snapshot::RawConn;
use super::tcp::{TcpConn, TcpInvalid, TcpResult, TcpState};
use super::time::Duration;
use super::verdict::{
    DropReason, InvalidReason, OtherInvalid, ShardStats, UntrackedReason, Verdict,
};
use super::{Dir, Instant};
use crate::flow::{FlowRepr, L4, proto};
use crate::hugemem::HugeSlice;
use crate::prefetch::{prefetch, prefetch_all};

/// Entries per arena chunk: 2 MiB of entries, one huge page.
pub const CHUNK: usize = 16384;
const CHUNK_SHIFT: u32 = 14;
const _: () = assert!(CHUNK == 1 << CHUNK_SHIFT);
const _: () = assert!(CHUNK * core::mem::size_of::<Entry>() == crate::hugemem::HUGE);
/// Slots per index bucket.
const WAYS: usize = 10;
/// Buckets the insert's breadth-first search for room may visit.
pub const MAX_PATH_NODES: usize = 64;
/// Index load target (keys / slots).
const LOAD_NUM: u64 = 9;
const LOAD_DEN: u64 = 10;
/// Timer wheel: tick length is 2^27 ns (~134 ms).
const TICK_SHIFT: u32 = 27;
pub const TICK_NS: u64 = 1 << TICK_SHIFT;
pub const WHEEL_SLOTS: usize = 8192;
/// Entries whose timer is moved per `poll_expired` call after a settings
/// change made a timeout shorter.
const RESCAN_BATCH: u32 = 4096;
/// Largest table: entry indices must leave the top bit of a `u32` free.
pub const MAX_ENTRIES_LIMIT: u32 = 1 << 30;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0x8000_0000;
const EMPTY: u32 = u32::MAX;

/// How big a shard may grow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableConfig {
    /// The ceiling: `max-entries`. The index is sized for it at once; the
    /// entries grow in chunks up to it.
    pub max_entries: u32,
}

impl TableConfig {
    pub fn new(max_entries: u32) -> TableConfig {
        TableConfig {
            max_entries: max_entries.clamp(1, MAX_ENTRIES_LIMIT),
        }
    }

    /// Bytes one connection costs at the ceiling: its entry (hot and cold
    /// parts) plus its share of the index (one key at <= 90% load in
    /// 6.4-byte slots: 7.1 bytes, rounded up).
    pub const fn bytes_per_entry() -> u64 {
        (core::mem::size_of::<Entry>() + core::mem::size_of::<Cold>()) as u64
            + (64 * LOAD_DEN).div_ceil(WAYS as u64 * LOAD_NUM)
    }

    /// The largest `max_entries` whose table fits `bytes_budget` when full
    /// ("from memory", as RouterOS sizes max-entries from RAM).
    pub fn from_memory(bytes_budget: u64) -> TableConfig {
        let fixed = (WHEEL_SLOTS * 4) as u64 + 4096;
        let n = bytes_budget.saturating_sub(fixed) / Self::bytes_per_entry();
        TableConfig::new(n.min(u64::from(MAX_ENTRIES_LIMIT)) as u32)
    }
}

/// One index bucket: a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    sig: [u16; WAYS],
    /// `entry << 1 | dir`, or [`EMPTY`]: `dir` is 1 when the canonical key
    /// the slot stands for is the entry's reply key.
    idx: [u32; WAYS],
    /// Keys whose primary bucket is this one that sit in their secondary.
    overflow: u16,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sig: [0; WAYS],
        idx: [EMPTY; WAYS],
        overflow: 0,
    };

    /// The occupied slots whose signature is `sig`, in way order. The ten
    /// signatures are compared at once (a fixed-size compare the compiler
    /// turns into SIMD) instead of with a branch per way.
    #[inline]
    fn candidates(&self, sig: u16) -> impl Iterator<Item = u32> + '_ {
        let mut m = 0u32;
        for w in 0..WAYS {
            m |= u32::from(self.sig[w] == sig) << w;
        }
        core::iter::from_fn(move || {
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                m &= m - 1;
                if self.idx[w] != EMPTY {
                    return Some(self.idx[w]);
                }
            }
            None
        })
    }
}

/// `handle_burst`'s prefetch distance, in packets: a packet's bucket is
/// prefetched this many packets before its entry is, and its entry this many
/// before it is resolved.
const PREFETCH_DIST: usize = 6;
/// Lookups `handle_burst` keeps in flight (a power of two > 2 * distance).
const PIPE: usize = 32;
const _: () = assert!(PIPE.is_power_of_two() && PIPE > 2 * PREFETCH_DIST);

/// What `prepare` found for one packet before the table is touched.
#[derive(Clone, Copy)]
enum Prep {
    /// `key` is the packet's own key; `hash` is the hash of its canonical
    /// form, `bucket` its primary bucket, and `flipped` says that the
    /// canonical form is `key.reply()`.
    Lookup {
        key: Key,
        hash: u64,
        bucket: u32,
        flipped: bool,
        related: bool,
    },
    Done(Verdict),
}

/// One worker's connection table (see the module doc).
pub struct Shard {
    settings: Settings,
    worker: u16,
    max_entries: u32,
    seed: HashSeed,
    /// The index and the entry chunks live on huge pages (see
    /// [`crate::hugemem`]).
    buckets: HugeSlice<Bucket>,
    chunks: Vec<HugeSlice<Entry>>,
    /// The entries' cold parts, chunk for chunk.
    colds: Vec<HugeSlice<Cold>>,
    /// Fasttrack counters, per arena chunk, allocated when a connection of
    /// that chunk is first fast-tracked.
    ft: Vec<Option<Box<[FtSlot]>>>,
    free_head: u32,
    high_water: u32,
    live: u32,
    wheel: Vec<u32>,
    cur_tick: u64,
    started: bool,
    rescan: Option<u32>,
    /// `handle_burst`'s lookups in flight ([`PIPE`] of them), kept between
    /// calls (no allocation on the packet path).
    preps: Vec<Prep>,
    fasttrack: FastTrackMode,
    stats: ShardStats,
}

/// Which connections are fast-tracked automatically. Until firewall rules
/// exist (RouterOS marks connections with an `action=fasttrack-connection`
/// rule), this setting stands in for that rule; see `docs/dataplane.md`
/// (FastTrack).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FastTrackMode {
    /// No connection is fast-tracked automatically.
    #[default]
    No,
    /// Established TCP connections and UDP streams (assured) are.
    Established,
}

impl core::str::FromStr for FastTrackMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" => Ok(FastTrackMode::No),
            "established" => Ok(FastTrackMode::Established),
            _ => Err(format!(
                "bad fasttrack mode {s:?}: expected no or established"
            )),
        }
    }
}

/// Live connections by protocol and TCP state, counted by
/// [`Shard::census_chunk`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// `(protocol number, tcp state index or u8::MAX) -> count`.
    pub counts: std::collections::BTreeMap<(u8, u8), u64>,
}

/// A looked-up key's canonical hash and orientation (see [`Prep::Lookup`]).
#[derive(Clone, Copy)]
struct Hashed {
    hash: u64,
    flipped: bool,
}

/// One arena chunk's fasttrack counters: `len` of them, the chunk's length
/// (a small table's only chunk is shorter than [`CHUNK`]).
fn new_ft_chunk(len: usize) -> Box<[FtSlot]> {
    vec![FtSlot::default(); len].into_boxed_slice()
}

#[inline]
fn sig_of(h: u64) -> u16 {
    h as u16
}

impl Shard {
    /// A shard for `worker` with the given ceiling. Allocates the index (and
    /// the timer wheel) now, entries later.
    pub fn new(config: TableConfig, settings: Settings, worker: u16) -> Shard {
        Shard::with_seed(config, settings, worker, HashSeed::random())
    }

    /// As [`Shard::new`] with a fixed hash seed (tests, reproducible replays).
    pub fn with_seed(
        config: TableConfig,
        settings: Settings,
        worker: u16,
        seed: HashSeed,
    ) -> Shard {
        let max = config.max_entries.clamp(1, MAX_ENTRIES_LIMIT);
        let keys = u64::from(max);
        let nb = (keys * LOAD_DEN).div_ceil(WAYS as u64 * LOAD_NUM).max(2) as usize;
        Shard {
            settings,
            worker,
            max_entries: max,
            seed,
            buckets: HugeSlice::new(nb, Bucket::EMPTY),
            chunks: Vec::new(),
            colds: Vec::new(),
            ft: Vec::new(),
            free_head: NIL,
            high_water: 0,
            live: 0,
            wheel: vec![NIL; WHEEL_SLOTS],
            cur_tick: 0,
            started: false,
            rescan: None,
            preps: vec![Prep::Done(Verdict::Untracked(UntrackedReason::TrackingDisabled)); PIPE],
            fasttrack: FastTrackMode::No,
            stats: ShardStats::default(),
        }
    }

    /// Sets which connections are fast-tracked from now on. Turning it on
    /// allocates the fasttrack counters of every arena chunk (and of chunks
    /// added later) so that marking a connection never allocates on the
    /// packet path. Turning it off returns every connection to the full path.
    pub fn set_fasttrack_mode(&mut self, mode: FastTrackMode) {
        self.fasttrack = mode;
        match mode {
            FastTrackMode::Established => {
                for (slot, chunk) in self.ft.iter_mut().zip(&self.chunks) {
                    slot.get_or_insert_with(|| new_ft_chunk(chunk.len()));
                }
            }
            FastTrackMode::No => {
                for i in 0..self.high_water {
                    self.ft_unmark(i);
                }
            }
        }
    }

    /// Puts entry `i` on the short path, noting its counters (the fasttrack
    /// arena chunk must exist: it does in `Established` mode, and
    /// [`Shard::set_fasttrack`] allocates it).
    fn ft_mark(&mut self, i: u32) {
        if self.e(i).has(flag::FASTTRACK) {
            return;
        }
        let base = self.e(i).counters();
        if let Some(slot) = self.ft_slot_mut(i) {
            slot.base = base;
        }
        self.e_mut(i).flags |= flag::FASTTRACK;
    }

    /// Takes entry `i` off the short path, keeping what it counted there.
    fn ft_unmark(&mut self, i: u32) {
        let e = *self.e(i);
        if !e.has(flag::FASTTRACK) {
            return;
        }
        if let Some(slot) = self.ft_slot_mut(i) {
            slot.done = slot.read(&e);
        }
        self.e_mut(i).flags &= !flag::FASTTRACK;
    }

    /// Entry `i`'s fasttrack counters, if its chunk has them.
    fn ft_slot(&self, i: u32) -> Option<&FtSlot> {
        let (c, o) = Self::at(i);
        self.ft.get(c)?.as_ref().map(|ft| &ft[o])
    }

    fn ft_slot_mut(&mut self, i: u32) -> Option<&mut FtSlot> {
        let (c, o) = Self::at(i);
        self.ft.get_mut(c)?.as_mut().map(|ft| &mut ft[o])
    }

    pub fn fasttrack_mode(&self) -> FastTrackMode {
        self.fasttrack
    }

    /// Counts live connections by protocol and TCP state from arena position
    /// `cursor` on, at most `max` positions; returns where to continue, or
    /// `None` at the end. Bounded work, for metrics between bursts.
    pub fn census_chunk(&self, cursor: u32, max: usize, out: &mut Census) -> Option<u32> {
        let end = cursor
            .saturating_add(max.max(1) as u32)
            .min(self.high_water);
        for i in cursor..end {
            let e = self.e(i);
            if e.is_live() {
                let state = e.tcp_state().map_or(u8::MAX, |s| s.index() as u8);
                *out.counts.entry((e.protocol(), state)).or_default() += 1;
            }
        }
        (end < self.high_water).then_some(end)
    }

    // ---- read-only properties ------------------------------------------

    pub fn total_entries(&self) -> u32 {
        self.live
    }

    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    pub fn worker(&self) -> u16 {
        self.worker
    }

    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Bytes held by this shard: index, entry chunks, fasttrack chunks, wheel.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * core::mem::size_of::<Bucket>()
            + self.chunks.iter().map(|c| c.len()).sum::<usize>()
                * (core::mem::size_of::<Entry>() + core::mem::size_of::<Cold>())
            + self.ft.iter().flatten().map(|f| f.len()).sum::<usize>()
                * core::mem::size_of::<FtSlot>()
            + self.ft.len() * core::mem::size_of::<Option<Box<[FtSlot]>>>()
            + self.chunks.len() * core::mem::size_of::<HugeSlice<Entry>>()
            + self.colds.len() * core::mem::size_of::<HugeSlice<Cold>>()
            + self.wheel.len() * 4
            + core::mem::size_of::<Shard>()
    }

    // ---- arena -----------------------------------------------------------

    /// Entry `i`'s chunk and its position in it (in `chunks`, `colds` and
    /// `ft` alike).
    #[inline]
    fn at(i: u32) -> (usize, usize) {
        ((i >> CHUNK_SHIFT) as usize, i as usize & (CHUNK - 1))
    }

    #[inline]
    fn e(&self, i: u32) -> &Entry {
        let (c, o) = Self::at(i);
        &self.chunks[c][o]
    }

    #[inline]
    fn e_mut(&mut self, i: u32) -> &mut Entry {
        let (c, o) = Self::at(i);
        &mut self.chunks[c][o]
    }

    #[inline]
    fn c(&self, i: u32) -> &Cold {
        let (c, o) = Self::at(i);
        &self.colds[c][o]
    }

    #[inline]
    fn c_mut(&mut self, i: u32) -> &mut Cold {
        let (c, o) = Self::at(i);
        &mut self.colds[c][o]
    }

    /// Puts entry `i` (no longer in the index or the wheel) on the free list.
    fn push_free(&mut self, i: u32) {
        let free_head = self.free_head;
        let c = self.c_mut(i);
        c.next = free_head;
        c.prev = NIL;
        self.free_head = i;
    }

    fn alloc(&mut self) -> Option<u32> {
        if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.c(i).next;
            return Some(i);
        }
        if self.high_water >= self.max_entries {
            return None;
        }
        if self.high_water as usize >= self.chunks.len() * CHUNK {
            // The last chunk holds only what is left up to the ceiling, so a
            // full table costs exactly its entries.
            let len = CHUNK.min((self.max_entries - self.high_water) as usize);
            self.chunks.push(HugeSlice::new(len, Entry::EMPTY));
            self.colds.push(HugeSlice::new(len, Cold::EMPTY));
            let ft = (self.fasttrack == FastTrackMode::Established).then(|| new_ft_chunk(len));
            self.ft.push(ft);
        }
        let i = self.high_water;
        self.high_water += 1;
        Some(i)
    }

    fn id_of(&self, i: u32) -> ConnId {
        ConnId::new(self.worker, i, self.e(i).generation)
    }

    /// The entry index of `id` if it names a live entry of this shard.
    fn resolve_id(&self, id: ConnId) -> Option<u32> {
        let i = id.slot();
        if id.worker() != self.worker || i >= self.high_water {
            return None;
        }
        let e = self.e(i);
        (e.is_live() && e.generation == id.generation()).then_some(i)
    }

    // ---- index -----------------------------------------------------------

    /// The key's primary bucket (see [`Shard::buckets_of`]).
    #[inline]
    fn primary_of(&self, h: u64) -> usize {
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    /// The key's two candidate buckets: primary and secondary (never equal).
    #[inline]
    fn buckets_of(&self, h: u64) -> (usize, usize) {
        let nb = self.buckets.len() as u128;
        let b1 = self.primary_of(h);
        let h2 = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let mut b2 = ((u128::from(h2) * nb) >> 64) as usize;
        if b2 == b1 {
            b2 = if b1 + 1 == self.buckets.len() {
                0
            } else {
                b1 + 1
            };
        }
        (b1, b2)
    }

    #[inline]
    fn key_in_dir(&self, i: u32, dir: u32) -> Key {
        let k = self.e(i).key;
        if dir == 0 { k } else { k.reply() }
    }

    #[inline]
    fn scan(&self, b: usize, sig: u16, key: &Key, flipped: bool) -> Option<(u32, Dir)> {
        for v in self.buckets[b].candidates(sig) {
            // The slot's canonical key is the entry's key in direction
            // `v & 1`; the packet's key is that one, or its reply if flipped.
            let d = (v & 1) ^ u32::from(flipped);
            if self.key_in_dir(v >> 1, d) == *key {
                let dir = if d == 0 { Dir::Orig } else { Dir::Reply };
                return Some((v >> 1, dir));
            }
        }
        None
    }

    /// Finds the entry (and the direction) of `key`, whose canonical form
    /// hashes to `h`, in primary bucket `b1` (`flipped`: see
    /// [`Prep::Lookup`]): the primary bucket, and the secondary only if some
    /// key of this primary lives there.
    #[inline]
    fn find(&self, key: &Key, h: u64, b1: usize, flipped: bool) -> Option<(u32, Dir)> {
        let sig = sig_of(h);
        if let Some(hit) = self.scan(b1, sig, key, flipped) {
            return Some(hit);
        }
        if self.buckets[b1].overflow == 0 {
            return None;
        }
        self.scan(self.buckets_of(h).1, sig, key, flipped)
    }

    /// [`Shard::find`] for a key not yet canonicalised.
    fn find_key(&self, key: &Key) -> Option<(u32, Dir)> {
        let (c, flipped) = key.canonical();
        let h = c.hash(&self.seed);
        self.find(key, h, self.primary_of(h), flipped)
    }

    fn free_way(&self, b: usize) -> Option<usize> {
        self.buckets[b].idx.iter().position(|&x| x == EMPTY)
    }

    /// Hash of the key an index value stands for (read from its entry).
    fn hash_of_value(&self, v: u32) -> u64 {
        self.key_in_dir(v >> 1, v & 1).hash(&self.seed)
    }

    /// Places `(sig, v)` of a key hashing to `h` in bucket `b`, way `w`.
    fn place(&mut self, b: usize, w: usize, h: u64, v: u32) {
        let (b1, _) = self.buckets_of(h);
        self.buckets[b].idx[w] = v;
        self.buckets[b].sig[w] = sig_of(h);
        if b != b1 {
            self.buckets[b1].overflow = self.buckets[b1].overflow.saturating_add(1);
        }
    }

    /// Clears bucket `b`, way `w`, holding a key hashing to `h`.
    fn clear(&mut self, b: usize, w: usize, h: u64) {
        let (b1, _) = self.buckets_of(h);
        self.buckets[b].idx[w] = EMPTY;
        if b != b1 {
            self.buckets[b1].overflow = self.buckets[b1].overflow.saturating_sub(1);
        }
    }

    /// Inserts a key: its primary bucket, else its secondary, else moves
    /// other keys to their alternative buckets along the shortest path a
    /// bounded breadth-first search finds ([`MAX_PATH_NODES`] buckets), as
    /// DPDK's `rte_hash` does.
    fn index_insert(&mut self, h: u64, v: u32) -> bool {
        let (b1, b2) = self.buckets_of(h);
        for b in [b1, b2] {
            if let Some(w) = self.free_way(b) {
                self.place(b, w, h, v);
                return true;
            }
        }
        // (bucket, parent node, way in the parent whose key moves here)
        let mut nodes = [(0usize, usize::MAX, 0usize); MAX_PATH_NODES];
        nodes[0] = (b1, usize::MAX, 0);
        nodes[1] = (b2, usize::MAX, 0);
        let mut len = 2;
        let mut at = 0;
        while at < len {
            let b = nodes[at].0;
            for w in 0..WAYS {
                let vh = self.hash_of_value(self.buckets[b].idx[w]);
                let (p1, p2) = self.buckets_of(vh);
                let alt = if b == p1 { p2 } else { p1 };
                if let Some(fw) = self.free_way(alt) {
                    // Found room: shift keys down the path, leaf first.
                    self.move_key(b, w, alt, fw);
                    let (mut node, mut freed) = (at, w);
                    while nodes[node].1 != usize::MAX {
                        let (nb, parent, pw) = nodes[node];
                        self.move_key(nodes[parent].0, pw, nb, freed);
                        node = parent;
                        freed = pw;
                    }
                    self.place(nodes[node].0, freed, h, v);
                    return true;
                }
                if len < MAX_PATH_NODES && !nodes[..len].iter().any(|n| n.0 == alt) {
                    nodes[len] = (alt, at, w);
                    len += 1;
                }
            }
            at += 1;
        }
        false
    }

    fn move_key(&mut self, from: usize, fw: usize, to: usize, tw: usize) {
        let v = self.buckets[from].idx[fw];
        let h = self.hash_of_value(v);
        self.clear(from, fw, h);
        self.place(to, tw, h, v);
    }

    fn index_remove(&mut self, h: u64, v: u32) -> bool {
        let (b1, b2) = self.buckets_of(h);
        for b in [b1, b2] {
            if let Some(w) = self.buckets[b].idx.iter().position(|&x| x == v) {
                self.clear(b, w, h);
                return true;
            }
        }
        false
    }

    // ---- timers ----------------------------------------------------------

    fn tcp_timeout(&self, st: TcpState) -> Duration {
        let s = &self.settings;
        match st {
            TcpState::None | TcpState::SynSent | TcpState::SynSent2 => s.tcp_syn_sent_timeout,
            TcpState::SynReceived => s.tcp_syn_received_timeout,
            TcpState::Established => s.tcp_established_timeout,
            TcpState::FinWait => s.tcp_fin_wait_timeout,
            TcpState::CloseWait => s.tcp_close_wait_timeout,
            TcpState::LastAck => s.tcp_last_ack_timeout,
            TcpState::TimeWait => s.tcp_time_wait_timeout,
            TcpState::Close => s.tcp_close_timeout,
        }
    }

    /// The timeout that applies to `e` now, from the current settings.
    fn timeout_of(&self, e: &Entry) -> Duration {
        match &e.proto {
            ProtoState::Tcp(c) => self.tcp_timeout(c.state()),
            _ => self
                .settings
                .proto_timeout(e.key.proto, e.has(flag::ASSURED)),
        }
    }

    fn deadline_of(&self, e: &Entry) -> u64 {
        e.last_seen.saturating_add(self.timeout_of(e).as_nanos())
    }

    fn wheel_link(&mut self, i: u32, deadline: u64) {
        let t = (deadline >> TICK_SHIFT)
            .max(self.cur_tick)
            .min(self.cur_tick + WHEEL_SLOTS as u64 - 1);
        let slot = (t % WHEEL_SLOTS as u64) as u32;
        let head = self.wheel[slot as usize];
        {
            let c = self.c_mut(i);
            c.next = head;
            c.prev = HEAD | slot;
        }
        if head != NIL {
            self.c_mut(head).prev = i;
        }
        self.wheel[slot as usize] = i;
    }

    fn wheel_unlink(&mut self, i: u32) {
        let (p, n) = {
            let c = self.c(i);
            (c.prev, c.next)
        };
        if p == NIL {
            return;
        }
        if p & HEAD != 0 {
            self.wheel[(p & !HEAD) as usize] = n;
        } else {
            self.c_mut(p).next = n;
        }
        if n != NIL {
            self.c_mut(n).prev = p;
        }
        let c = self.c_mut(i);
        c.next = NIL;
        c.prev = NIL;
    }

    fn start_clock(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.cur_tick = now.nanos() >> TICK_SHIFT;
        }
    }

    /// Removes entry `i` from index, wheel and arena.
    fn free(&mut self, i: u32) {
        let (c, flipped) = self.e(i).key.canonical();
        self.index_remove(c.hash(&self.seed), i << 1 | u32::from(flipped));
        self.wheel_unlink(i);
        if let Some(slot) = self.ft_slot_mut(i) {
            *slot = FtSlot::default();
        }
        let e = self.e_mut(i);
        let pk = e.packets[0].wrapping_add(e.packets[1]);
        e.flags = 0;
        e.generation = e.generation.wrapping_add(1);
        self.push_free(i);
        self.live -= 1;
        self.stats.packets_retired = self.stats.packets_retired.wrapping_add(pk);
    }

    /// Expires up to `budget` connections whose timeout has passed, and
    /// returns how many it removed. Also moves a bounded number of timers
    /// after a settings change made a timeout shorter. Bounded work: at most
    /// `4 * budget + 64` entries examined, one turn of the wheel's (empty)
    /// slots passed, plus one rescan batch.
    pub fn poll_expired(&mut self, now: Instant, budget: usize) -> usize {
        self.start_clock(now);
        if let Some(cursor) = self.rescan {
            let end = cursor.saturating_add(RESCAN_BATCH).min(self.high_water);
            for i in cursor..end {
                if self.e(i).is_live() {
                    let d = self.deadline_of(self.e(i));
                    self.wheel_unlink(i);
                    self.wheel_link(i, d);
                }
            }
            self.rescan = (end < self.high_water).then_some(end);
        }
        let now_tick = now.nanos() >> TICK_SHIFT;
        let n = WHEEL_SLOTS as u64;
        if now_tick > self.cur_tick + n {
            // Every slot is due: visit each once, starting anywhere.
            self.cur_tick = now_tick - n;
        }
        let max_work = budget.saturating_mul(4).saturating_add(64);
        let (mut removed, mut work, mut empty) = (0, 0, 0);
        while self.cur_tick < now_tick && removed < budget && work < max_work {
            let head = self.wheel[(self.cur_tick % n) as usize];
            if head == NIL {
                // Passing an empty slot is one load: allow a whole turn.
                empty += 1;
                if empty > WHEEL_SLOTS {
                    break;
                }
                self.cur_tick += 1;
                continue;
            }
            work += 1;
            let d = self.deadline_of(self.e(head));
            if d <= now.nanos() {
                self.free(head);
                self.stats.expired += 1;
                removed += 1;
            } else {
                self.wheel_unlink(head);
                self.wheel_link(head, d);
            }
        }
        removed
    }

    /// When [`Shard::poll_expired`] next has work: the end of the first
    /// non-empty wheel slot (an entry parked beyond the horizon, or refreshed
    /// since, makes this early, never late). `None` when the table is empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        if self.rescan.is_some() {
            return Some(Instant(self.cur_tick << TICK_SHIFT));
        }
        let n = WHEEL_SLOTS as u64;
        (self.cur_tick..self.cur_tick + n)
            .find(|t| self.wheel[(t % n) as usize] != NIL)
            .map(|t| Instant((t + 1).saturating_mul(TICK_NS)))
    }

    /// Applies new settings. Live connections keep their last-packet time;
    /// their deadline follows the new timeout. A longer timeout needs nothing
    /// (timers re-slot lazily); a shorter one starts an incremental rescan that
    /// [`Shard::poll_expired`] finishes ([`RESCAN_BATCH`] entries per call).
    pub fn apply_settings(&mut self, s: &Settings) {
        let shorter = s.any_shorter_than(&self.settings);
        self.settings = s.clone();
        if shorter && self.high_water > 0 {
            self.rescan = Some(0);
        }
    }

    // ---- packets ---------------------------------------------------------

    /// The packet's lookup record, written into `slot` (the pipeline's
    /// ring). TCP and UDP, nearly all traffic, take a straight path that
    /// stores the record's fields into the slot; building it in a temporary
    /// and copying that would stall on store forwarding (see
    /// [`Shard::resolve`]).
    #[inline]
    fn prepare(&self, pkt: &FlowRepr, slot: &mut Prep) {
        if self.settings.enabled.is_tracking()
            && matches!(
                (pkt.tuple.proto, &pkt.l4),
                (proto::TCP, L4::Tcp(_)) | (proto::UDP, L4::Udp)
            )
        {
            self.prepare_lookup(Key::of_packet(&pkt.tuple, &pkt.l4), false, slot);
        } else {
            self.prepare_other(pkt, slot);
        }
    }

    #[inline(always)]
    fn prepare_lookup(&self, key: Key, related: bool, slot: &mut Prep) {
        let (c, flipped) = key.canonical();
        let hash = c.hash(&self.seed);
        *slot = Prep::Lookup {
            key,
            hash,
            bucket: self.primary_of(hash) as u32,
            flipped,
            related,
        };
    }

    /// [`Shard::prepare`] for everything but TCP and UDP (and for any
    /// packet while tracking is off).
    #[cold]
    fn prepare_other(&self, pkt: &FlowRepr, slot: &mut Prep) {
        use OtherInvalid as O;
        let done = |slot: &mut Prep, v| *slot = Prep::Done(v);
        let invalid = |slot: &mut Prep, o| done(slot, Verdict::Invalid(InvalidReason::Other(o)));
        if !self.settings.enabled.is_tracking() {
            return done(slot, Verdict::Untracked(UntrackedReason::TrackingDisabled));
        }
        let normal =
            |slot: &mut Prep| self.prepare_lookup(Key::of_packet(&pkt.tuple, &pkt.l4), false, slot);
        match (pkt.tuple.proto, &pkt.l4) {
            (proto::TCP, L4::Tcp(_)) | (proto::UDP, L4::Udp) => normal(slot),
            (proto::ICMP | proto::ICMPV6, L4::Icmp(i)) => {
                if let Some(inner) = &i.inner {
                    return self.prepare_lookup(Key::of_quoted(inner), true, slot);
                }
                match icmp_kind(pkt.tuple.proto == proto::ICMPV6, i.icmp_type) {
                    IcmpKind::Request | IcmpKind::Reply => normal(slot),
                    IcmpKind::Error => invalid(slot, O::IcmpErrorTruncated),
                    IcmpKind::NdMld => done(slot, Verdict::Untracked(UntrackedReason::Icmpv6NdMld)),
                    IcmpKind::Other => invalid(slot, O::IcmpBadType),
                }
            }
            (proto::GRE, L4::Gre(g)) if g.version <= 1 => normal(slot),
            (proto::GRE, L4::Gre(_)) => invalid(slot, O::GreBadVersion),
            (proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6 | proto::GRE, _) => {
                invalid(slot, O::L4Mismatch)
            }
            (_, L4::Other) => normal(slot),
            (_, _) => invalid(slot, O::L4Mismatch),
        }
    }

    /// Counts a packet found invalid before it reached the table (a bad
    /// checksum: [`OtherInvalid::BadChecksum`]) and returns its verdict.
    /// Nothing else changes: no connection is created or counted on.
    pub fn count_invalid(&mut self, reason: InvalidReason) -> Verdict {
        self.count(Verdict::Invalid(reason))
    }

    fn count(&mut self, v: Verdict) -> Verdict {
        match v {
            Verdict::Invalid(r) => self.stats.invalid[r.index()] += 1,
            Verdict::Untracked(r) => self.stats.untracked[r.index()] += 1,
            Verdict::Dropped(r) => self.stats.dropped[r.index()] += 1,
            Verdict::Tracked { .. } | Verdict::Related { .. } => {}
        }
        v
    }

    #[inline]
    fn account(&mut self, i: u32, now: Instant, dir: Dir, ip_len: u32, refresh: bool) {
        let (ci, ei) = Self::at(i);
        let e = &mut self.chunks[ci][ei];
        if refresh && e.window_rolls(now) {
            // Once per connection and second at most: the cold part.
            self.colds[ci][ei].roll(e, now);
        }
        e.account(now, dir, ip_len, refresh);
        let d = dir.index();
        self.stats.packets[d] = self.stats.packets[d].wrapping_add(1);
        self.stats.bytes[d] = self.stats.bytes[d].wrapping_add(u64::from(ip_len));
    }

    /// Tracks one packet. See [`Verdict`].
    pub fn handle_packet(&mut self, now: Instant, pkt: &FlowRepr) -> Verdict {
        let mut prep = Prep::Done(Verdict::Untracked(UntrackedReason::TrackingDisabled));
        self.prepare(pkt, &mut prep);
        let mut v = Verdict::Untracked(UntrackedReason::TrackingDisabled);
        self.resolve(now, pkt, prep, &mut v);
        v
    }

    /// Tracks a burst as a software pipeline, so that the cache misses of
    /// different packets overlap (as DPDK's `rte_hash_lookup_bulk` does, but
    /// with a fixed distance rather than a fixed group): packet `j` is hashed
    /// and its primary bucket prefetched; packet `j - D` has its bucket read
    /// and the entry its signature points to prefetched (and its secondary
    /// bucket, if keys overflowed there); packet `j - 2D` is resolved, in
    /// order. `D` is [`PREFETCH_DIST`]. The prefetches are hints: resolving
    /// looks everything up again, so a table changed by an earlier packet of
    /// the burst only costs a wasted prefetch. Writes
    /// `min(pkts.len(), out.len())` verdicts.
    pub fn handle_burst(&mut self, now: Instant, pkts: &[FlowRepr], out: &mut [Verdict]) {
        let n = pkts.len().min(out.len());
        if !self.settings.enabled.is_tracking() {
            // `enabled=no`: every packet untracked, counted at once.
            let v = Verdict::Untracked(UntrackedReason::TrackingDisabled);
            out[..n].fill(v);
            self.stats.untracked[UntrackedReason::TrackingDisabled.index()] += n as u64;
            return;
        }
        const D: usize = PREFETCH_DIST;
        let mut pipe = std::mem::take(&mut self.preps);
        for j in 0..n + 2 * D {
            if j < n {
                let slot = &mut pipe[j % PIPE];
                self.prepare(&pkts[j], slot);
                if let Prep::Lookup { bucket, .. } = *slot {
                    prefetch(&self.buckets[bucket as usize]);
                }
            }
            if let Some(k) = j.checked_sub(D).filter(|&k| k < n)
                && let Prep::Lookup { hash, bucket, .. } = pipe[k % PIPE]
            {
                let b = &self.buckets[bucket as usize];
                if let Some(v) = b.candidates(sig_of(hash)).next() {
                    prefetch_all(self.e(v >> 1));
                } else if b.overflow != 0 {
                    prefetch(&self.buckets[self.buckets_of(hash).1]);
                }
            }
            if let Some(k) = j.checked_sub(2 * D) {
                self.resolve(now, &pkts[k], pipe[k % PIPE], &mut out[k]);
            }
        }
        self.preps = pipe;
    }

    /// Resolves one prepared packet into `out`.
    ///
    /// Verdicts are written where the caller reads them, on every path,
    /// rather than returned: a `Verdict` merged from several paths goes
    /// through a stack temporary whose copy stalls on store forwarding
    /// (`docs/dataplane.md#store-forwarding`).
    fn resolve(&mut self, now: Instant, pkt: &FlowRepr, prep: Prep, out: &mut Verdict) {
        let (key, hash, bucket, flipped, related) = match prep {
            Prep::Done(v) => {
                *out = self.count(v);
                return;
            }
            Prep::Lookup {
                key,
                hash,
                bucket,
                flipped,
                related,
            } => (key, hash, bucket as usize, flipped, related),
        };
        let hk = Hashed { hash, flipped };
        self.start_clock(now);
        let found = self.find(&key, hash, bucket, flipped);
        if related {
            *out = match found {
                Some((i, d)) if self.deadline_of(self.e(i)) > now.nanos() => {
                    // As Linux: the error is `related` to the connection but
                    // counted nowhere on it (no packets, no bytes, no refresh).
                    let dir = d.flip();
                    self.stats.related += 1;
                    Verdict::Related {
                        id: self.id_of(i),
                        dir,
                    }
                }
                _ => self.count(Verdict::Invalid(InvalidReason::Other(
                    OtherInvalid::IcmpErrorNoConnection,
                ))),
            };
            return;
        }
        if let Some((i, dir)) = found {
            if self.deadline_of(self.e(i)) > now.nanos() {
                return self.update(now, i, dir, key, hk, pkt, out);
            }
            // Dead but not reaped yet: reap it, and treat this packet as new.
            self.free(i);
            self.stats.expired += 1;
        }
        *out = self.create(now, key, hk, pkt);
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        now: Instant,
        i: u32,
        dir: Dir,
        key: Key,
        hk: Hashed,
        pkt: &FlowRepr,
        out: &mut Verdict,
    ) {
        self.stats.found += 1;
        let id = self.id_of(i);
        if self.e(i).has(flag::FASTTRACK) {
            // The short path: no tracker, only counters and last-seen. A FIN
            // or RST gives the connection back to the full path.
            match &pkt.l4 {
                L4::Tcp(info) if TcpConn::closes(info) => self.ft_unmark(i),
                _ => {
                    self.fast_account(i, now, dir, pkt.ip_len);
                    *out = Verdict::Tracked {
                        id,
                        dir,
                        created: false,
                    };
                    return;
                }
            }
        }
        self.update_full(now, i, id, dir, key, hk, pkt, out);
        if self.fasttrack == FastTrackMode::Established
            && let Verdict::Tracked { id: vid, .. } = *out
            && vid == id
            && self.e(i).is_live()
            && self.fasttrack_eligible(self.e(i))
        {
            self.ft_mark(i);
        }
    }

    /// Established TCP and UDP streams may be fast-tracked.
    fn fasttrack_eligible(&self, e: &Entry) -> bool {
        e.has(flag::ASSURED)
            && match e.tcp_state() {
                Some(st) => st == TcpState::Established,
                None => e.key.proto == proto::UDP,
            }
    }

    /// The short path's accounting: the entry and the shard's counters only
    /// (the fasttrack counters follow from the entry's, see [`FtSlot`]).
    #[inline]
    fn fast_account(&mut self, i: u32, now: Instant, dir: Dir, ip_len: u32) {
        self.account(i, now, dir, ip_len, true);
        self.stats.fasttrack_packets[dir.index()] += 1;
        self.stats.fasttrack_bytes[dir.index()] += u64::from(ip_len);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_full(
        &mut self,
        now: Instant,
        i: u32,
        id: ConnId,
        dir: Dir,
        key: Key,
        hk: Hashed,
        pkt: &FlowRepr,
        out: &mut Verdict,
    ) {
        let loose = self.settings.loose_tcp_tracking;
        // The tracker steps the entry's own TCP state, in place (it leaves
        // it as it was when it refuses a segment), so the old timeout is
        // taken first. A stepped copy written back into the entry would be
        // read just after being built, with wider loads than its stores,
        // and stall on store forwarding.
        let old_timeout = self.timeout_of(self.e(i));
        match (&mut self.e_mut(i).proto, &pkt.l4) {
            (ProtoState::Tcp(conn), L4::Tcp(info)) => {
                let result = conn.handle(dir, info, loose);
                let (seen_reply, assured) = (conn.seen_reply(), conn.assured());
                match result {
                    TcpResult::Accept(o) => {
                        self.account(i, now, dir, pkt.ip_len, true);
                        let e = self.e_mut(i);
                        if dir == Dir::Reply || seen_reply {
                            e.flags |= flag::SEEN_REPLY;
                        }
                        if o.became_assured || assured {
                            e.flags |= flag::ASSURED;
                        }
                        if o.remove_now {
                            self.free(i);
                            self.stats.closed += 1;
                        } else {
                            self.reslot_if_sooner(i, old_timeout);
                        }
                        *out = Verdict::Tracked {
                            id,
                            dir,
                            created: false,
                        };
                    }
                    TcpResult::Invalid(r) => {
                        *out = self.count(Verdict::Invalid(InvalidReason::Tcp(r)));
                    }
                    TcpResult::Reopen => {
                        self.free(i);
                        self.stats.closed += 1;
                        *out = self.create(now, key, hk, pkt);
                    }
                }
            }
            (ProtoState::Tcp(_), _) | (_, L4::Tcp(_)) => {
                *out = self.count(Verdict::Invalid(InvalidReason::Other(
                    OtherInvalid::L4Mismatch,
                )));
            }
            _ => {
                self.account(i, now, dir, pkt.ip_len, true);
                if dir == Dir::Reply {
                    let e = self.e_mut(i);
                    e.flags |= flag::SEEN_REPLY;
                    // Linux: UDP and GRE become streams (assured) once both
                    // directions were seen; ICMP and generic never do.
                    if matches!(e.key.proto, proto::UDP | proto::GRE) {
                        e.flags |= flag::ASSURED;
                    }
                }
                *out = Verdict::Tracked {
                    id,
                    dir,
                    created: false,
                };
            }
        }
    }

    /// Moves `i`'s timer if its timeout just became shorter (TCP closing):
    /// lazily re-slotted timers only ever fire early, never late.
    fn reslot_if_sooner(&mut self, i: u32, old_timeout: Duration) {
        if self.timeout_of(self.e(i)) < old_timeout {
            let d = self.deadline_of(self.e(i));
            self.wheel_unlink(i);
            self.wheel_link(i, d);
        }
    }

    fn create(&mut self, now: Instant, key: Key, hk: Hashed, pkt: &FlowRepr) -> Verdict {
        let hash = hk.hash;
        let state = match &pkt.l4 {
            L4::Tcp(info) => match TcpConn::new(info, self.settings.loose_tcp_tracking) {
                Ok(c) => ProtoState::Tcp(c),
                Err(TcpInvalid::NotSynLooseOff) => {
                    return self.count(Verdict::Untracked(UntrackedReason::TcpNotSynLooseOff));
                }
                Err(r) => return self.count(Verdict::Invalid(InvalidReason::Tcp(r))),
            },
            L4::Icmp(i) => {
                if icmp_kind(key.proto == proto::ICMPV6, i.icmp_type) != IcmpKind::Request {
                    return self.count(Verdict::Invalid(InvalidReason::Other(
                        OtherInvalid::IcmpUnsolicitedReply,
                    )));
                }
                ProtoState::Plain
            }
            L4::Gre(g) => ProtoState::Gre {
                protocol: g.protocol,
                call_id: g.call_id().unwrap_or(0),
            },
            L4::Udp | L4::Other => ProtoState::Plain,
        };
        if self.live >= self.max_entries && !self.early_drop(now, hash) {
            self.stats.drop += 1;
            return self.count(Verdict::Dropped(DropReason::TableFull));
        }
        let Some(i) = self.alloc() else {
            self.stats.drop += 1;
            return self.count(Verdict::Dropped(DropReason::TableFull));
        };
        {
            let e = self.e_mut(i);
            let generation = e.generation;
            *e = Entry::EMPTY;
            e.generation = generation;
            e.key = key;
            e.proto = state;
            e.flags = flag::LIVE;
            e.last_seen = now.nanos();
            if let ProtoState::Tcp(c) = state
                && c.assured()
            {
                e.flags |= flag::ASSURED;
            }
        }
        *self.c_mut(i) = Cold::EMPTY;
        // The packet's key is the original: the canonical key is the reply
        // when the packet's key was flipped.
        if !self.index_insert(hash, i << 1 | u32::from(hk.flipped)) {
            return self.insert_failed(i);
        }
        self.live += 1;
        self.stats.insert += 1;
        self.account(i, now, Dir::Orig, pkt.ip_len, true);
        let d = self.deadline_of(self.e(i));
        self.wheel_link(i, d);
        Verdict::Tracked {
            id: self.id_of(i),
            dir: Dir::Orig,
            created: true,
        }
    }

    fn insert_failed(&mut self, i: u32) -> Verdict {
        self.e_mut(i).flags = 0;
        self.push_free(i);
        self.stats.insert_failed += 1;
        self.count(Verdict::Dropped(DropReason::IndexFull))
    }

    /// Makes room for one new connection: the first entry, among a bounded
    /// set of candidates, whose timeout has passed (reaped) or that is not
    /// assured (early drop). Candidates come soonest-expiring first: the
    /// soonest wheel slots (at most 64 slots, 32 entries), then the new
    /// key's two index buckets. The search stops at the first usable one.
    /// Assured entries are never evicted.
    fn early_drop(&mut self, now: Instant, hash: u64) -> bool {
        let slots = WHEEL_SLOTS as u64;
        let mut seen = 0;
        let mut t = self.cur_tick;
        while t < self.cur_tick + 64 && seen < 32 {
            let mut i = self.wheel[(t % slots) as usize];
            while i != NIL && seen < 32 {
                // Judged as reached: a walk that stops at the first usable
                // entry reads no further links.
                if self.evict_if_allowed(i, now) {
                    return true;
                }
                seen += 1;
                i = self.c(i).next;
            }
            t += 1;
        }
        let (b1, b2) = self.buckets_of(hash);
        for b in [b1, b2] {
            for w in 0..WAYS {
                let v = self.buckets[b].idx[w];
                if v != EMPTY && self.evict_if_allowed(v >> 1, now) {
                    return true;
                }
            }
        }
        false
    }

    /// Frees entry `i` if its timeout has passed or it is not assured.
    fn evict_if_allowed(&mut self, i: u32, now: Instant) -> bool {
        let e = self.e(i);
        if self.deadline_of(e) <= now.nanos() {
            self.free(i);
            self.stats.expired += 1;
            true
        } else if !e.has(flag::ASSURED) {
            self.free(i);
            self.stats.early_drop += 1;
            true
        } else {
            false
        }
    }

    // ---- management (between bursts) -------------------------------------

    /// The live entry `id` names, if any.
    pub fn get(&self, id: ConnId) -> Option<&Entry> {
        self.resolve_id(id).map(|i| self.e(i))
    }

    /// Time left before `id` times out (0 when its deadline passed).
    pub fn remaining(&self, id: ConnId, now: Instant) -> Option<Duration> {
        let i = self.resolve_id(id)?;
        Some(Duration::from_nanos(
            self.deadline_of(self.e(i)).saturating_sub(now.nanos()),
        ))
    }

    /// Looks a tuple key up, as a packet would (either direction).
    pub fn lookup(&self, key: &Key) -> Option<(ConnId, Dir)> {
        self.find_key(key).map(|(i, d)| (self.id_of(i), d))
    }

    fn raw_of(&self, i: u32, now: Instant) -> RawConn {
        let e = self.e(i);
        let c = self.c(i);
        let ft = self.ft_slot(i).map(|s| s.read(e)).unwrap_or_default();
        let deadline = self.deadline_of(e);
        RawConn {
            entry: *e,
            id: self.id_of(i),
            worker: self.worker,
            remaining: Duration::from_nanos(deadline.saturating_sub(now.nanos())),
            dying: deadline <= now.nanos(),
            ft,
            rate: [c.rate(e, now, 0), c.rate(e, now, 1)],
            mark: c.mark,
        }
    }

    /// A typed record of connection `id` as of `now` (the RouterOS row is
    /// made from it by `ctrack-model`).
    pub fn snapshot(&self, id: ConnId, now: Instant) -> Option<RawConn> {
        self.resolve_id(id).map(|i| self.raw_of(i, now))
    }

    /// Calls `f` with a record of every live connection.
    pub fn for_each_snapshot(&self, now: Instant, mut f: impl FnMut(RawConn)) {
        for i in 0..self.high_water {
            if self.e(i).is_live() {
                f(self.raw_of(i, now));
            }
        }
    }

    /// Appends records of up to `max` live connections from arena position
    /// `cursor` on (at least one), and returns the cursor to continue from
    /// (`None` when the end was reached). Start with 0. Connections created
    /// or removed between chunks may or may not appear; none appears twice.
    /// A record is a copy of the entry, no formatting (what a worker hands
    /// to the control thread). Pushes at most `max` records, so a buffer
    /// with that capacity never reallocates.
    pub fn raw_chunk(
        &self,
        now: Instant,
        cursor: u32,
        max: usize,
        out: &mut Vec<RawConn>,
    ) -> Option<u32> {
        self.chunk(cursor, max, |i| out.push(self.raw_of(i, now)))
    }

    /// Calls `f` with up to `max` (at least one) live arena positions from
    /// `cursor` on; returns where to continue, `None` at the end.
    fn chunk(&self, cursor: u32, max: usize, mut f: impl FnMut(u32)) -> Option<u32> {
        let mut i = cursor;
        let mut n = 0;
        let max = max.max(1);
        while i < self.high_water {
            if n >= max {
                return Some(i);
            }
            if self.e(i).is_live() {
                f(i);
                n += 1;
            }
            i += 1;
        }
        None
    }

    /// Removes connection `id` (`remove` in the management API).
    pub fn remove(&mut self, id: ConnId) -> bool {
        match self.resolve_id(id) {
            Some(i) => {
                self.free(i);
                self.stats.removed += 1;
                true
            }
            None => false,
        }
    }

    /// `connection-mark` of connection `id` (0 when unset).
    pub fn connection_mark(&self, id: ConnId) -> Option<u32> {
        self.resolve_id(id).map(|i| self.c(i).mark)
    }

    /// Sets `connection-mark` (0 clears it).
    pub fn set_connection_mark(&mut self, id: ConnId, mark: u32) -> bool {
        match self.resolve_id(id) {
            Some(i) => {
                self.c_mut(i).mark = mark;
                true
            }
            None => false,
        }
    }

    /// Marks connection `id` fast-tracked (or not). Allocates the fasttrack
    /// counters of its arena chunk on first use (never on the packet path).
    pub fn set_fasttrack(&mut self, id: ConnId, on: bool) -> bool {
        let Some(i) = self.resolve_id(id) else {
            return false;
        };
        if on {
            let c = Self::at(i).0;
            if let (Some(slot), Some(chunk)) = (self.ft.get_mut(c), self.chunks.get(c)) {
                slot.get_or_insert_with(|| new_ft_chunk(chunk.len()));
            }
            self.ft_mark(i);
        } else {
            self.ft_unmark(i);
        }
        true
    }

    /// The fast path: counts a packet of a fast-tracked connection (its
    /// counters, fasttrack counters, rate and last-seen time) without running
    /// the tracker. Returns false if the entry is gone or its timeout passed;
    /// the packet then takes the full path.
    pub fn handle_fasttrack(&mut self, now: Instant, id: ConnId, dir: Dir, ip_len: u32) -> bool {
        let Some(i) = self.resolve_id(id) else {
            return false;
        };
        if self.deadline_of(self.e(i)) <= now.nanos() {
            return false;
        }
        self.fast_account(i, now, dir, ip_len);
        true
    }

    /// Checks the table's invariants (O(entries); for tests and fuzzing):
    /// every live entry is found by both its keys (the index holds one key per
    /// live entry), is in exactly one wheel
    /// slot, counts add up, and the table is within its ceiling.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut live = 0u32;
        let mut packets = 0u64;
        for i in 0..self.high_water {
            let e = self.e(i);
            if !e.is_live() {
                continue;
            }
            live += 1;
            packets = packets
                .wrapping_add(e.packets[0])
                .wrapping_add(e.packets[1]);
            let k = e.key;
            let r = k.reply();
            match self.find_key(&k) {
                Some((j, d)) if j == i && (d == Dir::Orig || k == r) => {}
                other => return Err(format!("entry {i} not found by its key {k:?}: {other:?}")),
            }
            match self.find_key(&r) {
                Some((j, d)) if j == i && (d == Dir::Reply || k == r) => {}
                other => return Err(format!("entry {i} not found by its reply {r:?}: {other:?}")),
            }
        }
        if live != self.live {
            return Err(format!("live count {} but {live} live entries", self.live));
        }
        // One index key per connection, and nothing else in the index.
        let keys = self
            .buckets
            .iter()
            .map(|b| b.idx.iter().filter(|&&v| v != EMPTY).count())
            .sum::<usize>();
        if keys != self.live as usize {
            return Err(format!("{keys} index keys for {} live entries", self.live));
        }
        if self.live > self.max_entries {
            return Err(format!(
                "{} entries over max {}",
                self.live, self.max_entries
            ));
        }
        let mut in_wheel = 0u32;
        for (s, &head) in self.wheel.iter().enumerate() {
            let mut prev = HEAD | s as u32;
            let mut i = head;
            while i != NIL {
                let c = self.c(i);
                if !self.e(i).is_live() || c.prev != prev {
                    return Err(format!("wheel slot {s}: bad link at entry {i}"));
                }
                in_wheel += 1;
                if in_wheel > self.live {
                    return Err("wheel holds more entries than the table".into());
                }
                prev = i;
                i = c.next;
            }
        }
        if in_wheel != self.live {
            return Err(format!(
                "{in_wheel} entries in the wheel, {} live",
                self.live
            ));
        }
        let fed = self.stats.packets[0].wrapping_add(self.stats.packets[1]);
        if packets.wrapping_add(self.stats.packets_retired) != fed {
            return Err(format!(
                "packets on entries {packets} + retired {} != counted {fed}",
                self.stats.packets_retired
            ));
        }
        Ok(())
    }
}
