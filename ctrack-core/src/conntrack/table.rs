//! The per-worker connection table: the [`Shard`] that puts together the
//! cuckoo index ([`super::index`]), the entry arena (`arena.rs`), the
//! timer wheel (`wheel.rs`) and the per-protocol rules (TCP in
//! [`super::tcp`], ICMP in [`super::icmp`], GRE in [`super::gre`]; UDP and
//! generic protocols have none beyond their timeouts), and runs the packet
//! path.
//!
//! Each connection is indexed once, under its canonical key
//! ([`Key::canonical`]: the smaller of its original and reply tuples), which
//! packets of both directions compute; the index value is `entry << 1 | d`,
//! `d` being 1 when the canonical key is the entry's reply key.
//!
//! A `Shard` is single-threaded: the worker owns it and calls management
//! functions between bursts. FastTrack (the short path and its policy) is in
//! [`super::fasttrack`].

use super::arena::Arena;
use super::entry::{Cold, ConnId, Entry, FtSlot, ProtoState, flag, tcp_class};
use super::events::{ConnEvent, DestroyReason, EventBuf, EventKind};
use super::fasttrack::fasttrack_eligible;
use super::index::{EMPTY, Index, WAYS, sig_of};
use super::key::{HashSeed, Key};
use super::settings::Settings;
use super::snapshot::RawConn;
use super::tcp::{TcpConn, TcpInvalid, TcpOpts, TcpResult, TcpState};
use super::time::Duration;
use super::verdict::{
    Action, Decision, DropReason, InvalidReason, OtherInvalid, ShardStats, UntrackedReason, Verdict,
};
pub use super::wheel::{TICK_NS, WHEEL_SLOTS};
use super::wheel::{TICK_SHIFT, Wheel};
use super::{Dir, Instant, gre, icmp};
use crate::flow::{FlowRepr, L4, proto};
use crate::prefetch::{prefetch, prefetch_all};

/// Entries whose timer is moved per `poll_expired` call after a settings
/// change made a timeout shorter.
const RESCAN_BATCH: u32 = 4096;
/// Largest table: entry indices must leave the top bit of a `u32` free.
pub const MAX_ENTRIES_LIMIT: u32 = 1 << 30;

const NIL: u32 = super::arena::NIL;

/// How big a shard may grow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableConfig {
    /// The ceiling: `max-entries`. The index is sized for it at once; the
    /// entries grow in chunks up to it.
    pub max_entries: u32,
    /// Room in the index for a NAT reply key per connection (two keys
    /// each), so that a table of NAT connections fills to `max_entries`;
    /// without it about half of that fits before inserts fail
    /// ([`DropReason::IndexFull`]). Costs one more index key per entry
    /// (7.1 bytes).
    pub nat: bool,
}

impl TableConfig {
    pub fn new(max_entries: u32) -> TableConfig {
        TableConfig {
            max_entries: max_entries.clamp(1, MAX_ENTRIES_LIMIT),
            nat: false,
        }
    }

    /// With (or without) [`TableConfig::nat`]'s room.
    pub fn with_nat(self, nat: bool) -> TableConfig {
        TableConfig { nat, ..self }
    }

    /// Bytes one connection costs at the ceiling: its entry (hot and cold
    /// parts) plus its share of the index (one key at <= 90% load in
    /// 6.4-byte slots: 7.1 bytes, rounded up).
    pub const fn bytes_per_entry() -> u64 {
        (core::mem::size_of::<Entry>() + core::mem::size_of::<Cold>()) as u64
            + Index::bytes_per_key()
    }

    /// The largest `max_entries` whose table fits `bytes_budget` when full
    /// ("from memory", as RouterOS sizes max-entries from RAM).
    pub fn from_memory(bytes_budget: u64) -> TableConfig {
        let fixed = (WHEEL_SLOTS * 4) as u64 + 4096;
        let n = bytes_budget.saturating_sub(fixed) / Self::bytes_per_entry();
        TableConfig::new(n.min(u64::from(MAX_ENTRIES_LIMIT)) as u32)
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

/// What [`Shard::reorders`] says of a packet while others are pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reorder {
    /// It must wait for the next lookup phase.
    Wait,
    /// It may go on; it was looked up and is of no connection, existing or
    /// pending.
    Missed,
    /// It may go on; not looked up.
    No,
}

/// Packets that may wait for a decision in one lookup phase (and entries
/// freed after them): the phase ends early when either is reached.
pub const PENDING_MAX: usize = 64;

/// The word and bit of [`Shard`]'s pending filter for a connection hash
/// (bits the index does not use for buckets or signatures are as good as
/// any: the filter only saves walks).
#[inline]
fn pending_bit(hash: u64) -> (usize, u64) {
    (((hash >> 40) & 3) as usize, 1 << ((hash >> 42) & 63))
}

/// The two-phase packet path's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Between calls (management, expiry): frees go on the free list at once.
    Idle,
    /// In [`Shard::lookup_burst`]: a miss becomes a [`Pending`].
    Lookup,
    /// In [`Shard::commit_burst`], committing a packet with this decision,
    /// or in [`Shard::decided_burst`], whose decision it is for every new
    /// connection: a miss creates the connection.
    Commit(Decision),
}

/// A packet of the lookup phase that waits for the caller's decision: what
/// the commit needs, so that it neither rehashes nor re-validates.
#[derive(Clone, Copy)]
struct Pending {
    /// The packet's position in the segment.
    pos: u32,
    key: Key,
    hk: Hashed,
    related: bool,
    /// The new connection's state; `None` when the packet is deferred:
    /// another pending packet of the segment opens its connection (or, for
    /// an ICMP error, is the connection it quotes), so it is looked up again
    /// once that one is committed.
    state: Option<ProtoState>,
}

/// One worker's connection table (see the module doc).
pub struct Shard {
    pub(super) settings: Settings,
    /// `settings`' TCP timeouts by timeout class (see
    /// [`Shard::tcp_timeouts_of`]).
    /// (256: indexed by a `u8` without a bounds check.)
    tcp_timeouts: [Duration; 256],
    worker: u16,
    max_entries: u32,
    seed: HashSeed,
    pub(super) index: Index,
    pub(super) arena: Arena,
    pub(super) wheel: Wheel,
    pub(super) live: u32,
    rescan: Option<u32>,
    /// `handle_burst`'s lookups in flight ([`PIPE`] of them), kept between
    /// calls (no allocation on the packet path).
    preps: Vec<Prep>,
    /// Where the two-phase packet path is (see [`Phase`]).
    phase: Phase,
    /// The segment's packets that wait for the caller's decision, in packet
    /// order (at most [`PENDING_MAX`]; no allocation on the packet path).
    pending: Vec<Pending>,
    /// Entries freed during the lookup phase after a pending packet, with
    /// that packet's position: they leave the index and the wheel and go
    /// back on the free list at commit, in packet order (so that index ways,
    /// early-drop candidates and connection ids are those that
    /// packet-by-packet handling would give).
    freed: Vec<(u32, u32)>,
    /// Position of the packet being resolved in the lookup phase.
    cur_pos: u32,
    /// The lookup phase must end after the packet being resolved.
    seg_end: bool,
    /// Pending packets of this lookup phase that open a connection.
    opening: u32,
    /// A filter over the pending packets' connection hashes (bit
    /// `pending_bit(hash)` set for each): most packets that are of no
    /// pending connection are told so without a walk of `pending`.
    pending_bits: [u64; 4],
    /// A pending packet of this lookup phase will need room made (the
    /// table is full): a later packet that finds a connection waits for the
    /// next phase (see `reorders`).
    evicting: bool,
    /// This commit created a connection with a NAT reply key.
    nat_committed: bool,
    /// Connections with a NAT reply key in the index.
    nat_live: u32,
    /// Mark connections fast-tracked when they become eligible (see
    /// [`Shard::set_fasttrack_established`]).
    pub(super) ft_established: bool,
    /// Fasttrack counters exist for every chunk, present and future, so
    /// that a rule may mark any connection without allocating (see
    /// [`Shard::set_fasttrack_ready`]).
    pub(super) ft_ready: bool,
    /// What `enabled=auto` resolves to (see [`Shard::set_auto_tracking`]).
    auto_tracking: bool,
    /// [`Shard::is_tracking`], kept current by the two calls that change it.
    tracking: bool,
    pub(super) stats: ShardStats,
    /// Connection events, when on (see [`super::events`]).
    events: EventBuf,
    /// The latest time the shard was given (the time of events raised
    /// where no time is passed: a management `remove`).
    clock: Instant,
    /// Connections per source block over all shards, for
    /// `connection-limit` (see [`Shard::set_conncount`]).
    conncount: Option<std::sync::Arc<super::ConnCount>>,
    /// Connection helpers and expectations (see [`super::helping`]).
    pub(super) helpers: super::helping::HelperSide,
}

/// Whether `s` tracks, `auto` meaning `auto_on`.
fn settings_tracking(s: &Settings, auto_on: bool) -> bool {
    match s.enabled {
        super::Enabled::Yes => true,
        super::Enabled::No => false,
        super::Enabled::Auto => auto_on,
    }
}

/// A connection as the firewall's conntrack matchers see it
/// ([`Shard::conn_view`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnView {
    /// `connection-mark` (0: none).
    pub mark: u32,
    /// Packets and bytes over both directions, the current packet included
    /// once it was tracked.
    pub packets: u64,
    pub bytes: u64,
    /// Bits per second over both directions (last complete 1 s window).
    pub rate_bps: u64,
    pub seen_reply: bool,
    pub fasttrack: bool,
    /// Whether it may be fast-tracked now (established TCP, a UDP stream:
    /// [`super::fasttrack::fasttrack_eligible`]).
    pub fasttrack_eligible: bool,
    pub srcnat: bool,
    pub dstnat: bool,
    /// The firewall's layer7 results ([`Shard::set_l7_state`]; 0: none).
    pub l7: u64,
    /// `connection-type`: the helper ([`crate::helper::HelperKind`] as
    /// `u8`), 0 for none.
    pub helper: u8,
    pub expected: bool,
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

impl Shard {
    /// A shard for `worker` with the given ceiling and hash `seed` (the
    /// caller draws it: the core reads no entropy; see
    /// `dataplane::worker::random_seed`). Allocates the index (and the timer
    /// wheel) now, entries later.
    pub fn new(config: TableConfig, settings: Settings, worker: u16, seed: HashSeed) -> Shard {
        let max = config.max_entries.clamp(1, MAX_ENTRIES_LIMIT);
        let tracking = settings_tracking(&settings, true);
        Shard {
            tcp_timeouts: Self::tcp_timeouts_of(&settings),
            settings,
            worker,
            max_entries: max,
            seed,
            index: Index::new(u64::from(max) * if config.nat { 2 } else { 1 }),
            arena: Arena::new(max),
            wheel: Wheel::new(),
            live: 0,
            rescan: None,
            preps: vec![Prep::Done(Verdict::Untracked(UntrackedReason::TrackingDisabled)); PIPE],
            phase: Phase::Idle,
            pending: Vec::with_capacity(PENDING_MAX),
            freed: Vec::with_capacity(PENDING_MAX),
            cur_pos: 0,
            seg_end: false,
            opening: 0,
            pending_bits: [0; 4],
            evicting: false,
            nat_committed: false,
            nat_live: 0,
            ft_established: false,
            ft_ready: false,
            auto_tracking: true,
            tracking,
            stats: ShardStats::default(),
            events: EventBuf::default(),
            clock: Instant::ZERO,
            conncount: None,
            helpers: Default::default(),
        }
    }

    /// Counts this shard's connections in `c` from now on (`None`: in no
    /// table): every live connection is added now (O(connections), between
    /// bursts), each new one when it becomes live, each freed one taken away
    /// (see [`super::conncount`]). The same table again changes nothing.
    pub fn set_conncount(&mut self, c: Option<std::sync::Arc<super::ConnCount>>) {
        if match (&self.conncount, &c) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        } {
            return;
        }
        if let Some(c) = &c {
            for i in 0..self.arena.high_water() {
                let e = self.e(i);
                if e.is_live() {
                    c.add(e.key.family, &e.key.src);
                }
            }
        }
        self.conncount = c;
    }

    /// The table [`Shard::set_conncount`] gave.
    pub fn conncount(&self) -> Option<&std::sync::Arc<super::ConnCount>> {
        self.conncount.as_ref()
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

    /// Whether this shard tracks: `enabled=yes`, or `auto` while
    /// [`Shard::set_auto_tracking`] says so (the default).
    #[inline]
    pub fn is_tracking(&self) -> bool {
        self.tracking
    }

    /// What `enabled=auto` means for this shard: the caller knows whether a
    /// firewall rule needs connection tracking (RouterOS: tracking is on as
    /// soon as one does). Takes effect as `enabled` itself does (see
    /// [`Shard::apply_settings`]).
    pub fn set_auto_tracking(&mut self, on: bool) {
        self.auto_tracking = on;
        self.tracking = settings_tracking(&self.settings, on);
    }

    /// What `enabled=auto` resolves to here.
    pub fn auto_tracking(&self) -> bool {
        self.auto_tracking
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Bytes held by this shard: index, entry chunks, fasttrack chunks, wheel.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self.arena.memory_bytes()
            + self.wheel.memory_bytes()
            + self.helpers.memory_bytes()
            + core::mem::size_of::<Shard>()
    }

    /// [`Shard::memory_bytes`] by structure, as `(name, bytes)`: the index,
    /// the hot entries, the cold records, the timer wheel, and the rest
    /// (FastTrack, NAT and helper side arenas, the `Shard` itself). The
    /// parts sum to [`Shard::memory_bytes`].
    pub fn memory_parts(&self) -> [(&'static str, usize); 5] {
        let index = self.index.memory_bytes();
        let (hot, cold) = self.arena.entry_bytes();
        let wheel = self.wheel.memory_bytes();
        let rest = self.memory_bytes() - index - hot - cold - wheel;
        [
            ("index", index),
            ("entries", hot),
            ("cold", cold),
            ("wheel", wheel),
            ("other", rest),
        ]
    }

    // ---- arena -----------------------------------------------------------

    #[inline]
    pub(super) fn e(&self, i: u32) -> &Entry {
        self.arena.e(i)
    }

    #[inline]
    pub(super) fn e_mut(&mut self, i: u32) -> &mut Entry {
        self.arena.e_mut(i)
    }

    #[inline]
    pub(super) fn c(&self, i: u32) -> &Cold {
        self.arena.c(i)
    }

    #[inline]
    fn c_mut(&mut self, i: u32) -> &mut Cold {
        self.arena.c_mut(i)
    }

    pub(super) fn ft_slot(&self, i: u32) -> Option<&FtSlot> {
        self.arena.ft_slot(i)
    }

    pub(super) fn ft_slot_mut(&mut self, i: u32) -> Option<&mut FtSlot> {
        self.arena.ft_slot_mut(i)
    }

    fn alloc(&mut self) -> Option<u32> {
        self.arena.alloc(self.ft_established || self.ft_ready)
    }

    pub(super) fn id_of(&self, i: u32) -> ConnId {
        ConnId::new(self.worker, i, self.e(i).generation)
    }

    /// The entry index of `id` if it names a live entry of this shard.
    pub(super) fn resolve_id(&self, id: ConnId) -> Option<u32> {
        self.resolve_id_inline(id)
    }

    /// [`Shard::resolve_id`] inlined (for the NAT rewrite's fast path;
    /// elsewhere the call keeps its callers small).
    #[inline(always)]
    fn resolve_id_inline(&self, id: ConnId) -> Option<u32> {
        let i = id.slot();
        if id.worker() != self.worker || i >= self.arena.high_water() {
            return None;
        }
        let e = self.e(i);
        (e.is_live() && e.generation == id.generation()).then_some(i)
    }

    // ---- index -----------------------------------------------------------

    #[inline]
    fn key_in_dir(arena: &Arena, i: u32, dir: u32) -> Key {
        let k = arena.e(i).key;
        if dir == 0 { k } else { k.reply() }
    }

    /// Finds the entry (and the direction) of `key`, whose canonical form
    /// hashes to `h`, in primary bucket `b1` (`flipped`: see
    /// [`Prep::Lookup`]).
    #[inline(always)]
    fn find(&self, key: &Key, h: u64, b1: usize, flipped: bool) -> Option<(u32, Dir)> {
        let arena = &self.arena;
        self.index.find(h, b1, |v| {
            let (i, s) = (v >> 1, v & 1);
            let e = arena.e(i);
            // Un-NATed: the slot's canonical key is the entry's key in
            // direction `s`; the packet's key is that one, or its reply if
            // flipped. NAT: slot `s` stands for the original key (0) or the
            // stored reply key (1), whatever the packet's orientation. A dead
            // entry is in the index only between the two phases (see `free`).
            let (k, d) = if e.flags & flag::NAT_REPLY == 0 {
                let d = s ^ u32::from(flipped);
                (if d == 0 { e.key } else { e.key.reply() }, d)
            } else if s == 0 {
                (e.key, 0)
            } else {
                (arena.nat_reply(i), 1)
            };
            (k == *key && e.is_live()).then_some((i, if d == 0 { Dir::Orig } else { Dir::Reply }))
        })
    }

    /// [`Shard::find`] for a key not yet canonicalised.
    fn find_key(&self, key: &Key) -> Option<(u32, Dir)> {
        let (c, flipped) = key.canonical();
        let h = c.hash(&self.seed);
        self.find(key, h, self.index.primary_of(h), flipped)
    }

    /// Hash of the key an index value stands for (read from its entry).
    fn hash_of_value(arena: &Arena, seed: &HashSeed, v: u32) -> u64 {
        let i = v >> 1;
        if arena.e(i).flags & flag::NAT_REPLY == 0 {
            Self::key_in_dir(arena, i, v & 1).hash(seed)
        } else {
            let k = if v & 1 == 0 {
                arena.e(i).key
            } else {
                arena.nat_reply(i)
            };
            k.canonical().0.hash(seed)
        }
    }

    /// The key that reply packets of entry `i` carry.
    pub(super) fn reply_of(&self, i: u32) -> Key {
        let e = self.e(i);
        if e.has(flag::NAT_REPLY) {
            self.arena.nat_reply(i)
        } else {
            e.key.reply()
        }
    }

    fn index_insert(&mut self, h: u64, v: u32) -> bool {
        let (arena, seed) = (&self.arena, &self.seed);
        self.index
            .insert(h, v, |x| Self::hash_of_value(arena, seed, x))
    }

    // ---- timers ----------------------------------------------------------

    /// The TCP timeout under `s` of each timeout class (the entry's
    /// `class`: state and Linux's cap, see [`super::entry::tcp_class`]):
    /// looked up per packet as one load, from the entry's first line,
    /// instead of a match over the state and the settings' fields.
    fn tcp_timeouts_of(s: &Settings) -> [Duration; 256] {
        let mut t = [Duration::ZERO; 256];
        for st in TcpState::ALL {
            let base = match st {
                TcpState::None | TcpState::SynSent | TcpState::SynSent2 => s.tcp_syn_sent_timeout,
                TcpState::SynReceived => s.tcp_syn_received_timeout,
                TcpState::Established => s.tcp_established_timeout,
                TcpState::FinWait => s.tcp_fin_wait_timeout,
                TcpState::CloseWait => s.tcp_close_wait_timeout,
                TcpState::LastAck => s.tcp_last_ack_timeout,
                TcpState::TimeWait => s.tcp_time_wait_timeout,
                TcpState::Close => s.tcp_close_timeout,
            };
            // Linux's caps: repeats, then unacknowledged data.
            let c = 1 + st.index() * 3;
            t[c] = base;
            t[c + 1] = base.min(s.tcp_max_retrans_timeout);
            t[c + 2] = base.min(s.tcp_unacked_timeout);
        }
        t
    }

    /// The TCP tracker's settings.
    #[inline]
    fn tcp_opts(&self) -> TcpOpts {
        TcpOpts {
            loose: self.settings.loose_tcp_tracking,
            liberal: self.settings.liberal_tcp_tracking,
        }
    }

    /// The timeout that applies to `e` now, from the current settings: read
    /// from the entry's first line only (its TCP timeout class).
    #[inline]
    fn timeout_of(&self, e: &Entry) -> Duration {
        if e.class != 0 {
            self.tcp_timeouts[usize::from(e.class)]
        } else {
            self.settings
                .proto_timeout(e.key.proto, e.has(flag::ASSURED))
        }
    }

    pub(super) fn deadline_of(&self, e: &Entry) -> u64 {
        e.last_seen.saturating_add(self.timeout_of(e).as_nanos())
    }

    fn wheel_link(&mut self, i: u32, deadline: u64) {
        self.wheel.link(&mut self.arena, i, deadline);
    }

    fn wheel_unlink(&mut self, i: u32) {
        self.wheel.unlink(&mut self.arena, i);
    }

    /// Removes entry `i`: it is dead at once (lookups and ids miss it, the
    /// counts drop); it leaves index, wheel and arena at once too, except in
    /// the lookup phase after a pending packet, where that waits for the
    /// commit (see [`Shard::freed`]): the index's way order and the free
    /// list then change in packet order, as packet by packet.
    fn free(&mut self, i: u32, why: DestroyReason) {
        if self.events.on {
            self.emit(i, EventKind::Destroy(why));
        }
        if let Some(c) = &self.conncount {
            let k = &self.arena.e(i).key;
            c.remove(k.family, &k.src);
        }
        if self.e(i).helper != 0 && !self.e(i).has(flag::EXPECTED) {
            self.helper_on_free(i);
        }
        let e = self.e_mut(i);
        let pk = e.packets_total();
        // Dead; `NAT_REPLY` stays until its slots leave the index.
        e.flags &= flag::NAT_REPLY;
        e.generation = e.generation.wrapping_add(1);
        self.live -= 1;
        self.stats.packets_retired = self.stats.packets_retired.wrapping_add(pk);
        if self.phase == Phase::Lookup && !self.pending.is_empty() {
            self.freed.push((self.cur_pos, i));
            if self.freed.len() >= PENDING_MAX {
                self.seg_end = true;
            }
        } else {
            self.unlink_free(i);
        }
    }

    /// Takes dead entry `i` out of index and wheel, onto the free list.
    fn unlink_free(&mut self, i: u32) {
        let e = self.e(i);
        if e.has(flag::NAT_REPLY) {
            self.unlink_nat_slots(i);
        } else {
            let (c, flipped) = e.key.canonical();
            self.index
                .remove(c.hash(&self.seed), i << 1 | u32::from(flipped));
        }
        self.wheel_unlink(i);
        if let Some(slot) = self.ft_slot_mut(i) {
            *slot = FtSlot::default();
        }
        self.arena.push_free(i);
    }

    /// Takes both index slots of NAT connection `i` out; the flag goes with
    /// them. Out of line, so that the un-NATed free path stays small enough
    /// to be inlined whole (callgrind: 75 instructions per freed connection
    /// when this was in `unlink_free`).
    #[inline(never)]
    fn unlink_nat_slots(&mut self, i: u32) {
        let c = self.e(i).key.canonical().0;
        let r = self.arena.nat_reply(i).canonical().0;
        self.index.remove(c.hash(&self.seed), i << 1);
        self.index.remove(r.hash(&self.seed), i << 1 | 1);
        self.e_mut(i).flags &= !flag::NAT_REPLY;
        self.nat_live -= 1;
    }

    /// Expires up to `budget` connections whose timeout has passed, and
    /// returns how many it removed. Also moves a bounded number of timers
    /// after a settings change made a timeout shorter. Bounded work: at most
    /// `4 * budget + 64` entries examined, one turn of the wheel's (empty)
    /// slots passed, plus one rescan batch.
    pub fn poll_expired(&mut self, now: Instant, budget: usize) -> usize {
        self.helper_sweep(now);
        self.wheel.start(now);
        self.clock = now;
        if let Some(cursor) = self.rescan {
            let end = cursor
                .saturating_add(RESCAN_BATCH)
                .min(self.arena.high_water());
            for i in cursor..end {
                if self.e(i).is_live() {
                    let d = self.deadline_of(self.e(i));
                    self.wheel_unlink(i);
                    self.wheel_link(i, d);
                }
            }
            self.rescan = (end < self.arena.high_water()).then_some(end);
        }
        let now_tick = now.nanos() >> TICK_SHIFT;
        let n = WHEEL_SLOTS as u64;
        if now_tick > self.wheel.cur_tick + n {
            // Every slot is due: visit each once, starting anywhere.
            self.wheel.cur_tick = now_tick - n;
        }
        let max_work = budget.saturating_mul(4).saturating_add(64);
        let (mut removed, mut work) = (0, 0);
        while self.wheel.cur_tick < now_tick && removed < budget && work < max_work {
            let head = self.wheel.head(self.wheel.cur_tick);
            if head == NIL {
                // Jump over empty slots (the occupancy bitmap, 64 per word)
                // to the next one holding an entry, or to `now_tick`. At most
                // one turn: the jump never passes a slot that holds one.
                match self.wheel.next_occupied(self.wheel.cur_tick, now_tick) {
                    Some(t) => self.wheel.cur_tick = t,
                    None => {
                        self.wheel.cur_tick = now_tick;
                        break;
                    }
                }
                continue;
            }
            work += 1;
            let d = self.deadline_of(self.e(head));
            if d <= now.nanos() {
                self.free(head, DestroyReason::Expired);
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
            return Some(Instant(self.wheel.cur_tick << TICK_SHIFT));
        }
        let n = WHEEL_SLOTS as u64;
        (self.wheel.cur_tick..self.wheel.cur_tick + n)
            .find(|&t| self.wheel.head(t) != NIL)
            .map(|t| Instant((t + 1).saturating_mul(TICK_NS)))
    }

    /// Applies new settings. Live connections keep their last-packet time;
    /// their deadline follows the new timeout. A longer timeout needs nothing
    /// (timers re-slot lazily); a shorter one starts an incremental rescan that
    /// [`Shard::poll_expired`] finishes ([`RESCAN_BATCH`] entries per call).
    pub fn apply_settings(&mut self, s: &Settings) {
        let shorter = s.any_shorter_than(&self.settings);
        self.settings = s.clone();
        self.tracking = settings_tracking(s, self.auto_tracking);
        self.tcp_timeouts = Self::tcp_timeouts_of(s);
        if shorter && self.arena.high_water() > 0 {
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
        if self.is_tracking()
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
            bucket: self.index.primary_of(hash) as u32,
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
        if !self.is_tracking() {
            return done(slot, Verdict::Untracked(UntrackedReason::TrackingDisabled));
        }
        let normal =
            |slot: &mut Prep| self.prepare_lookup(Key::of_packet(&pkt.tuple, &pkt.l4), false, slot);
        match (pkt.tuple.proto, &pkt.l4) {
            (proto::TCP, L4::Tcp(_)) | (proto::UDP, L4::Udp) => normal(slot),
            (proto::ICMP | proto::ICMPV6, L4::Icmp(i)) => {
                match icmp::classify(pkt.tuple.proto == proto::ICMPV6, i) {
                    icmp::IcmpClass::Lookup => normal(slot),
                    icmp::IcmpClass::Related(inner) => {
                        // Looked up as the answer to the quoted packet:
                        // the quote is a packet as it left (translated, for
                        // NAT), so its inverse is the key this error's
                        // direction carries (a NAT connection's stored
                        // reply key, or the original), found as it is.
                        self.prepare_lookup(Key::of_quoted(inner).reply(), true, slot)
                    }
                    icmp::IcmpClass::Done(v) => done(slot, v),
                }
            }
            (proto::GRE, L4::Gre(g)) => match gre::check(g) {
                // Version 1 by call ids where PPTP announced them.
                Ok(()) => self.prepare_lookup(self.key_of(pkt), false, slot),
                Err(o) => invalid(slot, o),
            },
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

    /// Takes back an invalid verdict [`Shard::lookup_burst`] counted, for a
    /// packet the caller hands to another worker, which tracks it there
    /// (an ICMP error about a NAT connection that worker holds).
    pub fn uncount_invalid(&mut self, reason: InvalidReason) {
        let n = &mut self.stats.invalid[reason.index()];
        *n = n.saturating_sub(1);
    }

    fn count(&mut self, v: Verdict) -> Verdict {
        match v {
            Verdict::Invalid(r) => self.stats.invalid[r.index()] += 1,
            Verdict::Untracked(r) => self.stats.untracked[r.index()] += 1,
            Verdict::Dropped(r) => self.stats.dropped[r.index()] += 1,
            Verdict::Tracked { .. }
            | Verdict::Related { .. }
            | Verdict::New
            | Verdict::Refused(_) => {}
        }
        v
    }

    #[inline(always)]
    pub(super) fn account(&mut self, i: u32, now: Instant, dir: Dir, ip_len: u32, refresh: bool) {
        let (e, c) = self.arena.both_mut(i);
        if refresh && e.window_rolls(now) {
            // Once per connection and second at most: the cold part.
            c.roll(e, now);
        }
        e.account(now, dir, ip_len, refresh);
        let d = dir.index();
        self.stats.packets[d] = self.stats.packets[d].wrapping_add(1);
        self.stats.bytes[d] = self.stats.bytes[d].wrapping_add(u64::from(ip_len));
    }

    /// Tracks one packet with the default decision ([`Decision::ACCEPT`]):
    /// [`Shard::lookup_burst`] and [`Shard::commit_burst`] of one packet.
    pub fn handle_packet(&mut self, now: Instant, pkt: &FlowRepr) -> Verdict {
        let mut v = [Verdict::Untracked(UntrackedReason::TrackingDisabled)];
        self.begin_lookup(Phase::Lookup);
        self.clock = now;
        let mut prep = Prep::Done(Verdict::Untracked(UntrackedReason::TrackingDisabled));
        self.prepare(pkt, &mut prep);
        self.resolve(now, pkt, prep, &mut v[0]);
        self.phase = Phase::Idle;
        if !self.pending.is_empty() {
            self.commit_with(now, core::slice::from_ref(pkt), &mut v, |_| {
                Decision::ACCEPT
            });
        }
        v[0]
    }

    /// Tracks a burst with the default decision ([`Decision::ACCEPT`] for
    /// every new connection): [`Shard::decided_burst`] until every packet
    /// is done. The verdicts are those that [`Shard::handle_packet`] gives
    /// packet by packet, and those of [`Shard::lookup_burst`] and
    /// [`Shard::commit_burst`] accepting every new connection. Writes
    /// `min(pkts.len(), out.len())` verdicts.
    #[inline(never)] // one call per burst; a symbol for callgrind's `--toggle-collect`
    pub fn handle_burst(&mut self, now: Instant, pkts: &[FlowRepr], out: &mut [Verdict]) {
        let n = pkts.len().min(out.len());
        let mut done = 0;
        while done < n {
            done += self.decided_burst(now, &pkts[done..n], &mut out[done..n], Decision::ACCEPT);
        }
    }

    /// Both phases in one pass, for a caller whose decision for every new
    /// connection is `d`, known before the lookup (a worker without rules,
    /// NAT or per-packet decision data): a packet that would open a
    /// connection opens it at once with `d`, in packet order, as
    /// [`Shard::commit_burst`] would; no verdict is [`Verdict::New`]. The
    /// verdicts, ids and counters are those of `lookup_burst` then
    /// `commit_burst` with `d` for every new connection.
    ///
    /// `d.reply` is ignored: a translation is a per-connection decision.
    /// Returns how many packets it handled, as `lookup_burst` does (all of
    /// them: with nothing pending, no packet has to wait). It saves the
    /// pending list, a second look at each new packet and the copies of its
    /// state (callgrind: about 120 instructions per new connection; see
    /// `scripts/bench-icount.sh`).
    pub fn decided_burst(
        &mut self,
        now: Instant,
        pkts: &[FlowRepr],
        out: &mut [Verdict],
        d: Decision,
    ) -> usize {
        let d = Decision { reply: None, ..d };
        self.lookup_in(now, pkts, out, Phase::Commit(d))
    }

    /// Phase 1 of the packet path: looks a burst up and tracks every packet
    /// of a known connection (exactly as [`Shard::handle_packet`] would);
    /// a packet that would open a connection gets [`Verdict::New`] and
    /// waits, with nothing inserted and nothing evicted, for the caller's
    /// [`Decision`] and [`Shard::commit_burst`], which must come next (no
    /// other call on this shard in between).
    ///
    /// Looks up the first `m` packets, `m >= 1` (unless the burst is empty),
    /// and returns `m`: the phase ends early when [`PENDING_MAX`] packets
    /// wait, or before a packet that must see what the commit of a pending
    /// one does (see `reorders`: a TCP packet of an existing connection, or
    /// any packet of one once a pending connection will need room made in
    /// a full table). The caller commits those `m` and calls
    /// again with the rest. These rules make the verdicts, ids and counters
    /// those of packet-by-packet handling when every decision accepts.
    ///
    /// A later packet of a connection that an earlier packet of the same
    /// phase opens (two first packets of one tuple, a reply in the same
    /// burst, an ICMP error about it) also gets [`Verdict::New`]: the commit
    /// tracks it on that connection, if it was accepted.
    ///
    /// A software pipeline, so that the cache misses of different packets
    /// overlap (as DPDK's `rte_hash_lookup_bulk` does, but with a fixed
    /// distance rather than a fixed group): packet `j` is hashed and its
    /// primary bucket prefetched; packet `j - D` has its bucket read and the
    /// entry its signature points to prefetched (and its secondary bucket,
    /// if keys overflowed there); packet `j - 2D` is resolved, in order. `D`
    /// is [`PREFETCH_DIST`]. The prefetches are hints: resolving looks
    /// everything up again, so a table changed by an earlier packet of the
    /// burst only costs a wasted prefetch.
    pub fn lookup_burst(&mut self, now: Instant, pkts: &[FlowRepr], out: &mut [Verdict]) -> usize {
        self.lookup_in(now, pkts, out, Phase::Lookup)
    }

    /// `lookup_burst` in `phase`: [`Phase::Lookup`] (new connections wait
    /// for the caller's decisions), or [`Phase::Commit`] with the decision
    /// for all of them (they are created as they come; nothing waits, so
    /// nothing reorders).
    #[inline(always)]
    fn lookup_in(
        &mut self,
        now: Instant,
        pkts: &[FlowRepr],
        out: &mut [Verdict],
        phase: Phase,
    ) -> usize {
        let n = pkts.len().min(out.len());
        self.begin_lookup(phase);
        self.clock = now;
        if !self.is_tracking() {
            // `enabled=no`: every packet untracked, counted at once.
            let v = Verdict::Untracked(UntrackedReason::TrackingDisabled);
            out[..n].fill(v);
            self.stats.untracked[UntrackedReason::TrackingDisabled.index()] += n as u64;
            self.phase = Phase::Idle;
            return n;
        }
        const D: usize = PREFETCH_DIST;
        let mut pipe = std::mem::take(&mut self.preps);
        let mut m = n;
        for j in 0..n + 2 * D {
            if j < n {
                let slot = &mut pipe[j % PIPE];
                self.prepare(&pkts[j], slot);
                if let Prep::Lookup { bucket, .. } = *slot {
                    self.index.prefetch(bucket as usize);
                }
            }
            if let Some(k) = j.checked_sub(D).filter(|&k| k < n)
                && let Prep::Lookup {
                    hash, bucket, key, ..
                } = pipe[k % PIPE]
            {
                let b = self.index.bucket(bucket as usize);
                if let Some(v) = b.candidates(sig_of(hash)).next() {
                    // The entry's first line is all that an established UDP
                    // or fast-tracked packet touches; TCP's full path reads
                    // the tracker's state in the second too.
                    if key.proto == proto::TCP {
                        prefetch_all(self.e(v >> 1));
                    } else {
                        prefetch(self.e(v >> 1));
                    }
                } else if b.overflowed() {
                    self.index.prefetch(self.index.buckets_of(hash).1);
                }
            }
            if let Some(k) = j.checked_sub(2 * D) {
                let mut missed = false;
                if !self.pending.is_empty() {
                    match self.reorders(&pipe[k % PIPE]) {
                        Reorder::Wait => {
                            m = k;
                            break;
                        }
                        Reorder::Missed => missed = true,
                        Reorder::No => {}
                    }
                }
                self.cur_pos = k as u32;
                if missed {
                    self.resolve_missed(now, &pkts[k], pipe[k % PIPE], &mut out[k]);
                } else {
                    self.resolve(now, &pkts[k], pipe[k % PIPE], &mut out[k]);
                }
                if self.seg_end {
                    m = k + 1;
                    break;
                }
            }
        }
        self.preps = pipe;
        self.phase = Phase::Idle;
        m
    }

    /// Phase 2: commits the packets that [`Shard::lookup_burst`] left
    /// waiting ([`Verdict::New`]), in packet order, each with
    /// `decisions[k]` (`k` its position in `pkts`; other positions are not
    /// read), and writes their final verdicts into `out`. `pkts` and `out`
    /// are those given to `lookup_burst` (at least its first `m`).
    ///
    /// An accepted packet creates its connection (making room by early drop
    /// if the table is full) with the decision's mark and FastTrack flag; a
    /// deferred one (see `lookup_burst`) is tracked on the connection that an
    /// earlier packet created, ignoring its own decision. A dropped packet
    /// gets [`Verdict::Refused`] with the decision's reason: nothing is
    /// inserted and nothing evicted (the caller counts it).
    pub fn commit_burst(
        &mut self,
        now: Instant,
        pkts: &[FlowRepr],
        decisions: &[Decision],
        out: &mut [Verdict],
    ) {
        self.commit_with(now, pkts, out, |k| {
            decisions.get(k).copied().unwrap_or(Decision::ACCEPT)
        });
    }

    /// Starts a lookup phase. Should the previous phase's commit not have
    /// come (a caller's bug), its waiting packets are forgotten (none was
    /// inserted) and the entries it freed are released now.
    fn begin_lookup(&mut self, phase: Phase) {
        let freed = std::mem::take(&mut self.freed);
        for &(_, i) in &freed {
            self.unlink_free(i);
        }
        self.freed = freed;
        self.freed.clear();
        self.pending.clear();
        self.seg_end = false;
        self.opening = 0;
        self.pending_bits = [0; 4];
        self.evicting = false;
        self.cur_pos = 0;
        self.phase = phase;
    }

    fn commit_with(
        &mut self,
        now: Instant,
        pkts: &[FlowRepr],
        out: &mut [Verdict],
        decide: impl Fn(usize) -> Decision,
    ) {
        let pending = std::mem::take(&mut self.pending);
        let freed = std::mem::take(&mut self.freed);
        let mut f = 0;
        self.nat_committed = false;
        for p in &pending {
            let k = p.pos as usize;
            if k >= pkts.len().min(out.len()) {
                break;
            }
            // Entries freed before this packet (or by it: a dead entry
            // reaped, a TCP connection reopened) are free for it.
            while f < freed.len() && freed[f].0 <= p.pos {
                self.unlink_free(freed[f].1);
                f += 1;
            }
            let d = decide(k);
            if let Action::Drop(reason) = d.action {
                out[k] = Verdict::Refused(reason);
                continue;
            }
            self.phase = Phase::Commit(d);
            // A NAT connection committed in this burst may own this packet's
            // key (its reply key): look it up again rather than create.
            let state = p.state.filter(|_| {
                !self.nat_committed
                    || self
                        .find(
                            &p.key,
                            p.hk.hash,
                            self.index.primary_of(p.hk.hash),
                            p.hk.flipped,
                        )
                        .is_none()
            });
            match state {
                Some(state) => out[k] = self.create(now, p.key, p.hk, state, &pkts[k], &d),
                None => {
                    let prep = Prep::Lookup {
                        key: p.key,
                        hash: p.hk.hash,
                        bucket: self.index.primary_of(p.hk.hash) as u32,
                        flipped: p.hk.flipped,
                        related: p.related,
                    };
                    self.resolve(now, &pkts[k], prep, &mut out[k]);
                }
            }
        }
        for &(_, i) in &freed[f..] {
            self.unlink_free(i);
        }
        self.phase = Phase::Idle;
        self.pending = pending;
        self.pending.clear();
        self.pending_bits = [0; 4];
        self.freed = freed;
        self.freed.clear();
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
        self.wheel.start(now);
        let found = self.find(&key, hash, bucket, flipped);
        if related {
            *out = match found {
                Some((i, d)) if self.deadline_of(self.e(i)) > now.nanos() => {
                    // As Linux: the error is `related` to the connection but
                    // counted nowhere on it (no packets, no bytes, no refresh).
                    // The key was the quote's inverse: `d` is the error's own
                    // direction.
                    let dir = d;
                    self.stats.related += 1;
                    Verdict::Related {
                        id: self.id_of(i),
                        dir,
                    }
                }
                _ if self.phase == Phase::Lookup && self.pending_conn(&key, hash) => {
                    self.wait(key, hk, true, None)
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
            self.free(i, DestroyReason::Expired);
            self.stats.expired += 1;
        }
        *out = self.miss(now, key, hk, pkt, false);
    }

    /// [`Shard::resolve`] of a packet that [`Shard::reorders`] just looked
    /// up and found of no connection, existing or pending: neither is looked
    /// for again (a flood of new TCP connections would otherwise search the
    /// index twice per SYN). Apart from `resolve`, so that the established
    /// path's code stays as it was.
    fn resolve_missed(&mut self, now: Instant, pkt: &FlowRepr, prep: Prep, out: &mut Verdict) {
        match prep {
            Prep::Lookup {
                key,
                hash,
                flipped,
                related: false,
                ..
            } => {
                self.wheel.start(now);
                *out = self.miss(now, key, Hashed { hash, flipped }, pkt, true);
            }
            _ => self.resolve(now, pkt, prep, out),
        }
    }

    /// A packet of no known connection: in the lookup phase it waits for the
    /// caller's decision (if it may open a connection); in the commit it
    /// opens one with the decision being committed. `no_pending`: no pending
    /// packet of this phase is of this connection (known from `reorders`).
    #[cold]
    fn miss(
        &mut self,
        now: Instant,
        key: Key,
        hk: Hashed,
        pkt: &FlowRepr,
        no_pending: bool,
    ) -> Verdict {
        match self.phase {
            Phase::Commit(d) => match self.new_state(&key, pkt) {
                Ok(state) => self.create(now, key, hk, state, pkt, &d),
                Err(v) => self.count(v),
            },
            _ if !no_pending && self.pending_conn(&key, hk.hash) => self.wait(key, hk, false, None),
            _ => match self.new_state(&key, pkt) {
                Ok(state) => {
                    // Room is made at commit, in packet order. If this one
                    // will need it, no later packet of the phase may see a
                    // connection that the eviction could take (see
                    // `reorders`); later new ones still join the phase.
                    if self.live + self.opening >= self.max_entries {
                        self.evicting = true;
                    }
                    self.opening += 1;
                    self.wait(key, hk, false, Some(state))
                }
                Err(v) => self.count(v),
            },
        }
    }

    /// Whether a packet must wait for the next lookup phase because a packet
    /// of this one is pending:
    ///
    /// - a TCP packet of another, existing connection may move that
    ///   connection's timer (a shorter timeout), and the wheel's order of two
    ///   timers in one slot must be the one that packet-by-packet handling
    ///   gives, so the pending connection is committed (and its timer linked)
    ///   first;
    /// - once a pending packet will need room made (`evicting`), any packet
    ///   that finds a connection (or an ICMP error about one) waits: the
    ///   eviction at commit may take that connection, or that packet's
    ///   update may change which one the eviction takes.
    ///
    /// A packet that finds no connection moves no timer and sees nothing an
    /// eviction takes (it waits too, or is counted), so a flood of new
    /// connections keeps the whole burst in one phase, also into a full
    /// table: the index lookup here is the one its resolve does next, on
    /// lines the pipeline already prefetched.
    ///
    /// [`Reorder::Missed`] says the search found neither, which `resolve`
    /// then need not repeat.
    fn reorders(&self, prep: &Prep) -> Reorder {
        match *prep {
            Prep::Lookup {
                key,
                hash,
                bucket,
                flipped,
                related,
            } if (self.evicting || (key.proto == proto::TCP && !related))
                && !self.pending_conn(&key, hash) =>
            {
                if self.find(&key, hash, bucket as usize, flipped).is_some() {
                    Reorder::Wait
                } else {
                    Reorder::Missed
                }
            }
            _ => Reorder::No,
        }
    }

    /// Whether a pending packet of this lookup phase is of the connection
    /// of `key` (either direction), whose canonical form hashes to `hash`.
    fn pending_conn(&self, key: &Key, hash: u64) -> bool {
        let (w, b) = pending_bit(hash);
        self.pending_bits[w] & b != 0 && {
            let r = key.reply();
            self.pending
                .iter()
                .any(|p| p.hk.hash == hash && (p.key == *key || p.key == r))
        }
    }

    /// Makes the packet being resolved wait for the caller's decision.
    fn wait(&mut self, key: Key, hk: Hashed, related: bool, state: Option<ProtoState>) -> Verdict {
        let (w, b) = pending_bit(hk.hash);
        self.pending_bits[w] |= b;
        self.pending.push(Pending {
            pos: self.cur_pos,
            key,
            hk,
            related,
            state,
        });
        if self.pending.len() >= PENDING_MAX {
            self.seg_end = true;
        }
        Verdict::New
    }

    /// The state of a connection that `pkt` (of key `key`) would open, or
    /// the verdict that says why it opens none.
    fn new_state(&self, key: &Key, pkt: &FlowRepr) -> Result<ProtoState, Verdict> {
        Ok(match &pkt.l4 {
            L4::Tcp(info) => match TcpConn::new_with(info, self.tcp_opts()) {
                Ok(c) => ProtoState::Tcp(c),
                Err(TcpInvalid::NotSynLooseOff) => {
                    return Err(Verdict::Untracked(UntrackedReason::TcpNotSynLooseOff));
                }
                Err(r) => return Err(Verdict::Invalid(InvalidReason::Tcp(r))),
            },
            L4::Icmp(i) => icmp::new_state(key.proto == proto::ICMPV6, i.icmp_type)?,
            L4::Gre(g) => gre::new_state(g),
            L4::Udp | L4::Other => ProtoState::Plain,
        })
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
        if self.ft_established
            && let Verdict::Tracked { id: vid, .. } = *out
            && vid == id
            && self.e(i).is_live()
            && fasttrack_eligible(self.e(i))
        {
            self.ft_mark(i);
        }
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
        // No TCP state (timeout class 0) and not a TCP packet: the entry's
        // second line, where the protocol state is, is not read.
        if self.e(i).class == 0 && !matches!(pkt.l4, L4::Tcp(_)) {
            return self.update_plain(now, i, id, dir, pkt, out);
        }
        let opts = self.tcp_opts();
        // The tracker steps the entry's own TCP state, in place (it leaves
        // it as it was when it refuses a segment), so the old timeout is
        // taken first. A stepped copy written back into the entry would be
        // read just after being built, with wider loads than its stores,
        // and stall on store forwarding.
        let old_timeout = self.timeout_of(self.e(i));
        // A connection whose payload a helper resized (FTP through NAT):
        // the tracker sees acknowledgements in the sender's own numbers
        // (see `seqadj`).
        let adjusted;
        let pkt = if self.has_seqadj() {
            adjusted = self.ack_adjusted(i, dir, pkt);
            &adjusted
        } else {
            pkt
        };
        match (&mut self.e_mut(i).proto, &pkt.l4) {
            (ProtoState::Tcp(conn), L4::Tcp(info)) => {
                // What an update event compares.
                let old_state = conn.state();
                let result = conn.handle_with(dir, info, opts);
                let (seen_reply, assured) = (conn.seen_reply(), conn.assured());
                // The timeout class follows the state (the tracker leaves
                // the state as it was when it refuses a segment).
                let class = tcp_class(conn);
                match result {
                    TcpResult::Accept(o) => {
                        self.account(i, now, dir, pkt.ip_len, true);
                        let e = self.e_mut(i);
                        e.class = class;
                        let old_flags = e.flags;
                        if dir == Dir::Reply || seen_reply {
                            e.flags |= flag::SEEN_REPLY;
                        }
                        if o.became_assured || assured {
                            e.flags |= flag::ASSURED;
                        }
                        // A NAT connection stays (closed, for the close
                        // timeout) so that the RST is still translated by
                        // it: Linux kills such a connection at once, but
                        // the packet keeps its reference and NAT
                        // translates it; here the rewrite reads the
                        // connection after the table is done.
                        if o.remove_now && !e.has(flag::NAT_REPLY) {
                            self.free(i, DestroyReason::Closed);
                            self.stats.closed += 1;
                        } else {
                            self.reslot_if_sooner(i, old_timeout);
                            if self.events.on {
                                self.emit_if_changed(i, old_flags, Some(old_state));
                            }
                        }
                        *out = Verdict::Tracked {
                            id,
                            dir,
                            created: false,
                        };
                    }
                    TcpResult::Invalid(r) => {
                        // (The state of a refused segment is kept; written
                        // anyway, so that the class cannot drift.)
                        self.e_mut(i).class = class;
                        *out = self.count(Verdict::Invalid(InvalidReason::Tcp(r)));
                    }
                    TcpResult::Reopen => {
                        self.free(i, DestroyReason::Closed);
                        self.stats.closed += 1;
                        *out = self.miss(now, key, hk, pkt, false);
                    }
                }
            }
            (ProtoState::Tcp(_), _) | (_, L4::Tcp(_)) => {
                *out = self.count(Verdict::Invalid(InvalidReason::Other(
                    OtherInvalid::L4Mismatch,
                )));
            }
            _ => self.update_plain(now, i, id, dir, pkt, out),
        }
    }

    /// [`Shard::update_full`] of a connection without TCP state, for a
    /// packet that is not TCP: from the entry's first line only.
    #[inline(always)]
    fn update_plain(
        &mut self,
        now: Instant,
        i: u32,
        id: ConnId,
        dir: Dir,
        pkt: &FlowRepr,
        out: &mut Verdict,
    ) {
        self.account(i, now, dir, pkt.ip_len, true);
        if dir == Dir::Reply {
            let e = self.e_mut(i);
            let old_flags = e.flags;
            e.flags |= flag::SEEN_REPLY;
            // Linux: UDP and GRE become streams (assured) once both
            // directions were seen; ICMP and generic never do.
            if matches!(e.key.proto, proto::UDP | proto::GRE) {
                e.flags |= flag::ASSURED;
            }
            if self.events.on {
                self.emit_if_changed(i, old_flags, None);
            }
        }
        *out = Verdict::Tracked {
            id,
            dir,
            created: false,
        };
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

    /// Creates the connection of `pkt` (its first packet, of key `key`) in
    /// `state`, as decided by `d`.
    fn create(
        &mut self,
        now: Instant,
        key: Key,
        hk: Hashed,
        state: ProtoState,
        pkt: &FlowRepr,
        d: &Decision,
    ) -> Verdict {
        let hash = hk.hash;
        // The reply key must be no other connection's (Linux refuses such a
        // clash at confirm time): a NAT reply key, or, while NAT
        // connections exist, the inverse (a NAT connection's original key
        // may be it). Nothing is created or evicted then.
        let nat = d.reply.filter(|r| *r != key.reply());
        if (nat.is_some() || self.nat_live > 0)
            && self.find_key(&nat.unwrap_or_else(|| key.reply())).is_some()
        {
            self.stats.insert_failed += 1;
            return self.count(Verdict::Dropped(DropReason::ReplyTaken));
        }
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
            e.sync_class();
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
        match nat {
            Some(r) => {
                // NAT: a slot per key.
                self.arena.set_nat_reply(i, r);
                // `srcnat`/`dstnat` as Linux's IPS_SRC_NAT/IPS_DST_NAT: the
                // side of the original tuple the translation changed.
                let t = r.reply();
                let mut f = flag::NAT_REPLY;
                if t.src != key.src || t.sport != key.sport {
                    f |= flag::SRCNAT;
                }
                if t.dst != key.dst || t.dport != key.dport {
                    f |= flag::DSTNAT;
                }
                self.e_mut(i).flags |= f;
                let rh = r.canonical().0.hash(&self.seed);
                if !self.index_insert(hash, i << 1) {
                    return self.insert_failed(i, DropReason::IndexFull);
                }
                if !self.index_insert(rh, i << 1 | 1) {
                    self.index.remove(hash, i << 1);
                    return self.insert_failed(i, DropReason::IndexFull);
                }
                self.nat_committed = true;
                self.nat_live += 1;
            }
            _ => {
                if !self.index_insert(hash, i << 1 | u32::from(hk.flipped)) {
                    return self.insert_failed(i, DropReason::IndexFull);
                }
            }
        }
        self.live += 1;
        self.stats.insert += 1;
        if let Some(c) = &self.conncount {
            c.add(key.family, &key.src);
        }
        self.account(i, now, Dir::Orig, pkt.ip_len, true);
        let deadline = self.deadline_of(self.e(i));
        self.wheel_link(i, deadline);
        self.c_mut(i).mark = d.mark;
        if let Some(m) = self.helper_on_create(i, pkt, now)
            && d.mark == 0
        {
            // Expected: the master's mark, unless the rules set one.
            self.c_mut(i).mark = m;
        }
        if d.fasttrack {
            // Once per arena chunk at most, as the chunk itself.
            self.arena.ft_alloc(i);
            self.ft_mark(i);
        }
        if self.events.on {
            self.emit_from(i, EventKind::New, d.in_port);
        }
        Verdict::Tracked {
            id: self.id_of(i),
            dir: Dir::Orig,
            created: true,
        }
    }

    fn insert_failed(&mut self, i: u32, why: DropReason) -> Verdict {
        self.e_mut(i).flags = 0;
        self.arena.push_free(i);
        self.stats.insert_failed += 1;
        self.count(Verdict::Dropped(why))
    }

    /// Makes room for one new connection: the first entry, among a bounded
    /// set of candidates, whose timeout has passed (reaped) or that is not
    /// assured (early drop). Candidates come soonest-expiring first: the
    /// soonest wheel slots (at most 64 slots, 32 entries), then the new
    /// key's two index buckets. The search stops at the first usable one.
    /// Assured entries are never evicted.
    fn early_drop(&mut self, now: Instant, hash: u64) -> bool {
        let mut seen = 0;
        let end = self.wheel.cur_tick + 64;
        let mut t = self.wheel.cur_tick;
        while seen < 32
            && let Some(occupied) = self.wheel.next_occupied(t, end)
        {
            t = occupied;
            let mut i = self.wheel.head(t);
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
        let (b1, b2) = self.index.buckets_of(hash);
        for b in [b1, b2] {
            for w in 0..WAYS {
                let v = self.index.bucket(b).value(w);
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
            self.free(i, DestroyReason::Expired);
            self.stats.expired += 1;
            true
        } else if !e.has(flag::ASSURED) {
            self.free(i, DestroyReason::EarlyDrop);
            self.stats.early_drop += 1;
            true
        } else {
            false
        }
    }

    // ---- events ------------------------------------------------------------

    /// Records an event about live entry `i` (see [`super::events`]).
    #[cold]
    #[inline(never)]
    fn emit(&mut self, i: u32, kind: EventKind) {
        self.emit_from(i, kind, Decision::UNKNOWN_PORT);
    }

    /// [`Shard::emit`], saying the port the packet entered on.
    #[cold]
    #[inline(never)]
    fn emit_from(&mut self, i: u32, kind: EventKind, in_port: u16) {
        let ev = ConnEvent {
            kind,
            time: self.clock,
            id: self.id_of(i),
            entry: *self.e(i),
            reply: self.reply_of(i),
            mark: self.c(i).mark,
            in_port,
        };
        self.events.push(ev);
    }

    /// Records an update event if entry `i`'s seen-reply or assured flag, or
    /// its TCP state, differ from `old_flags` and `old_state`.
    #[cold]
    #[inline(never)]
    fn emit_if_changed(&mut self, i: u32, old_flags: u8, old_state: Option<TcpState>) {
        let e = self.e(i);
        const SHOWN: u8 = flag::ASSURED | flag::SEEN_REPLY;
        if (e.flags & SHOWN, e.tcp_state()) != (old_flags & SHOWN, old_state) {
            self.emit(i, EventKind::Update);
        }
    }

    /// Switches connection events on, with room for `capacity` events between
    /// drains (allocated now), or off with 0. Between bursts.
    pub fn set_events(&mut self, capacity: usize) {
        self.events.set_capacity(capacity);
    }

    /// Whether events are on.
    pub fn events_on(&self) -> bool {
        self.events.on
    }

    /// Takes the events recorded since the last drain, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ConnEvent> {
        self.events.drain()
    }

    /// Events waiting to be drained.
    pub fn events_pending(&self) -> usize {
        self.events.len()
    }

    /// Events lost because the buffer was full when they happened.
    pub fn events_overflow(&self) -> u64 {
        self.events.overflow
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

    /// Live connections with a NAT reply key (0: no packet needs
    /// rewriting).
    #[inline]
    pub fn nat_connections(&self) -> u32 {
        self.nat_live
    }

    /// Prefetches what rewriting a packet of connection `id` reads besides
    /// its entry (its stored NAT reply key), if it has one.
    #[inline]
    pub fn prefetch_nat(&self, id: ConnId) {
        // Not validated (a prefetch reads nothing): the slot's place in
        // its chunk's side array, if that chunk has one.
        if id.worker() == self.worker {
            self.arena.prefetch_nat_reply(id.slot());
        }
    }

    /// The tuple (as a key) that a packet of direction `dir` of NAT
    /// connection `id` leaves with, uninverted and by reference: the
    /// stored reply key for the original direction, the original key for
    /// the reply direction (a packet leaves with their addresses and ports
    /// swapped). `None` when `id` is gone or not translated (`srcnat` and
    /// `dstnat` are only set with a stored reply key).
    #[inline]
    pub fn nat_target_inverse(&self, id: ConnId, dir: Dir) -> Option<&Key> {
        let i = self.resolve_id_inline(id)?;
        let e = self.e(i);
        if !e.has(flag::NAT_REPLY) || (!e.srcnat() && !e.dstnat()) {
            return None;
        }
        match dir {
            Dir::Orig => self.arena.nat_reply_ref(i),
            Dir::Reply => Some(&e.key),
        }
    }

    /// The key that reply packets of connection `id` carry: the inverse of
    /// its original key, or the NAT reply key its decision gave.
    pub fn reply_key(&self, id: ConnId) -> Option<Key> {
        self.resolve_id(id).map(|i| self.reply_of(i))
    }

    /// Looks a tuple key up, as a packet would (either direction).
    pub fn lookup(&self, key: &Key) -> Option<(ConnId, Dir)> {
        self.find_key(key).map(|(i, d)| (self.id_of(i), d))
    }

    /// Removes connection `id` (`remove` in the management API).
    pub fn remove(&mut self, id: ConnId) -> bool {
        match self.resolve_id(id) {
            Some(i) => {
                self.free(i, DestroyReason::Removed);
                self.stats.removed += 1;
                true
            }
            None => false,
        }
    }

    /// What a firewall rule may ask about connection `id` as of `now` (see
    /// [`ConnView`]); `None` when it is gone. Cheap: reads the entry and its
    /// cold part, which the packet's lookup just touched.
    #[inline]
    pub fn conn_view(&self, id: ConnId, now: Instant) -> Option<ConnView> {
        let i = self.resolve_id(id)?;
        let (e, c) = (self.e(i), self.c(i));
        Some(ConnView {
            mark: c.mark,
            packets: e.packets_total(),
            bytes: e.bytes_total(),
            rate_bps: c.rate(e, now, 0).saturating_add(c.rate(e, now, 1)),
            seen_reply: e.has(super::entry::flag::SEEN_REPLY),
            fasttrack: e.has(super::entry::flag::FASTTRACK),
            fasttrack_eligible: fasttrack_eligible(e),
            srcnat: e.srcnat(),
            dstnat: e.dstnat(),
            l7: self.arena.l7(i),
            helper: e.helper,
            expected: e.expected(),
        })
    }

    /// Stores the firewall's layer7 results in connection `id` (bits of
    /// the layer7 protocols that matched its first packets; the arena keeps
    /// them beside the entry, allocated per chunk on first use, and clears
    /// them when the connection is freed). `false` when it is gone.
    pub fn set_l7_state(&mut self, id: ConnId, bits: u64) -> bool {
        match self.resolve_id(id) {
            Some(i) => {
                self.arena.set_l7(i, bits);
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

    /// Checks the table's invariants (O(entries); for tests and fuzzing):
    /// every live entry is found by both its keys (the index holds one key per
    /// live entry, each where its hash says), is in exactly one wheel slot,
    /// counts add up, and the table is within its ceiling.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut live = 0u32;
        let mut nat = 0usize;
        let mut packets = 0u64;
        for i in 0..self.arena.high_water() {
            let e = self.e(i);
            if !e.is_live() {
                continue;
            }
            live += 1;
            packets = packets.wrapping_add(e.packets_total());
            if !e.class_in_step() {
                return Err(format!(
                    "entry {i}: timeout class {} not its state's",
                    e.class
                ));
            }
            let k = e.key;
            let r = self.reply_of(i);
            if e.has(flag::NAT_REPLY) {
                nat += 1;
            }
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
        // One index key per connection (two for NAT), and nothing else.
        let mut keys = 0usize;
        for v in self.index.values() {
            keys += 1;
            let i = v >> 1;
            if i >= self.arena.high_water() || !self.e(i).is_live() {
                return Err(format!("index value {v:#x} names no live entry"));
            }
        }
        if keys != self.live as usize + nat {
            return Err(format!(
                "{keys} index keys for {} live entries ({nat} with NAT)",
                self.live
            ));
        }
        let (arena, seed) = (&self.arena, &self.seed);
        self.index.check(|v| Self::hash_of_value(arena, seed, v))?;
        if self.live > self.max_entries {
            return Err(format!(
                "{} entries over max {}",
                self.live, self.max_entries
            ));
        }
        let in_wheel = self
            .wheel
            .check(&self.arena, self.live, |i| self.e(i).is_live())?;
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

// Listing and counting (between bursts).
impl Shard {
    /// Counts live connections by protocol and TCP state from arena position
    /// `cursor` on, at most `max` positions; returns where to continue, or
    /// `None` at the end. Bounded work, for metrics between bursts.
    pub fn census_chunk(&self, cursor: u32, max: usize, out: &mut Census) -> Option<u32> {
        let end = cursor
            .saturating_add(max.max(1) as u32)
            .min(self.arena.high_water());
        for i in cursor..end {
            let e = self.e(i);
            if e.is_live() {
                let state = e.tcp_state().map_or(u8::MAX, |s| s.index() as u8);
                *out.counts.entry((e.protocol(), state)).or_default() += 1;
            }
        }
        (end < self.arena.high_water()).then_some(end)
    }

    fn raw_of(&self, i: u32, now: Instant) -> RawConn {
        let e = self.e(i);
        let c = self.c(i);
        let ft = self.ft_slot(i).map(|s| s.read(e)).unwrap_or_default();
        let deadline = self.deadline_of(e);
        RawConn {
            entry: *e,
            reply: self.reply_of(i),
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
        for i in 0..self.arena.high_water() {
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
        while i < self.arena.high_water() {
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
}
