//! The `parse_track` target: parse + track, with the table's invariants
//! asserted after every step.
//!
//! # Input format
//!
//! ```text
//! byte 0   config: bits 0-2 max-entries (64 64 64 32 16 8 4 1),
//!          bit 3 loose-tcp-tracking=no, bits 4-5 clock base
//!          (0, 1.7e18 ns as a pcap's epoch times, 2^62, 1 s),
//!          bits 6-7 initial timeouts (defaults, 1 s, 10 ms, mixed)
//! byte 1   hash seed (HashSeed::from_u64)
//! records, until the input ends:
//!   op     bits 0-1 kind, bits 2-7 time step (see `step_nanos`)
//!   kind 0 len, len bytes: an Ethernet frame, handle_packet
//!   kind 1 len, len bytes: an Ethernet frame, queued for handle_burst
//!   kind 2 len, len bytes: a raw IP packet (parse_ip), handle_packet
//!   kind 3 sub, arg: a call between packets (see `control`)
//! ```
//!
//! `len` is one byte; a record cut short by the end of the input takes what
//! is left. Time only moves forward.
//!
//! # What runs
//!
//! Two shards with the same configuration and hash seed receive the same
//! calls. Shard `a` gets queued packets through `handle_burst` (flushed at 40
//! packets, before time moves, before any other record and at the end);
//! shard `b` gets every packet through `handle_packet`. Every 4th packet
//! record is followed by `poll_expired(now, 4)` on both.
//!
//! # What is asserted
//!
//! After every step:
//! - `a.check_invariants()` is `Ok` (every entry found by both keys, wheel
//!   links, live count, packet accounting) every [`DEEP_EVERY`] checked
//!   steps and at the end; `b`'s every [`DEEP_EVERY_B`] steps and at the
//!   end. (It walks the whole 8192-slot timer wheel: run after every step it
//!   was most of the target's time, see `docs/fuzzing.md`.);
//! - `total_entries() <= max_entries()`;
//! - the stats agree with the verdicts seen: per-reason invalid, untracked and
//!   dropped counts, `related`, packets and bytes per direction (tracked +
//!   accepted fast-path packets; related ICMP errors are counted on none),
//!   `drop == dropped[table_full]`,
//!   `insert_failed == dropped[index_full] == 0` (not expected below
//!   max-entries), and `insert == total_entries + expired + early_drop +
//!   closed + removed`;
//! - burst and per-packet handling agree: identical verdicts, stats and entry
//!   counts on `a` and `b`.
//!
//! Per packet handled one at a time (on `a`):
//! - a parse that is `Ok` is consistent ([`crate::parse::check_flow`]), in
//!   particular `ip_len` is within the input;
//! - `Tracked`: the packet counted once in its direction with its `ip_len`; a
//!   created entry is `Orig` and raised `insert`; if the entry is still there
//!   (otherwise the tracker must have closed it), it is found by the packet's
//!   key in that direction, its `last_seen` is now and its deadline is ahead;
//! - `Related`: only for an ICMP error with a quote; the entry exists, is
//!   found by the quoted key in the opposite direction, `related` + 1, no
//!   packet is counted on any connection, and nothing is created;
//! - `Invalid`, `Untracked`, `Dropped`: no packet counted, no entry created;
//!   `table_full` only with the table at max-entries; with `enabled=no`
//!   every packet is `Untracked(tracking_disabled)` and nothing else moves.
//!
//! Calls between packets: `poll_expired` removes at most its budget, exactly
//! what `expired` and the entry count say; with an unlimited budget it leaves
//! no entry whose deadline is before the current tick; `remove`,
//! `set_fasttrack`, `handle_fasttrack` and `set_connection_mark` act exactly
//! when the id is live (and stale ids change nothing); snapshots list every
//! live entry once (whole and in chunks), with the entry's counters, and each
//! property they show matches itself in `where PROP=VALUE`.

use ctrack_model::settings::KEYS;
use ctrack_model::{ConnSnapshot, SettingsExt, format_table};
use dataplane::conntrack::key::HashSeed;
use dataplane::conntrack::table::TICK_NS;
use dataplane::conntrack::{
    ConnId, Dir, DropReason, Enabled, Instant, InvalidReason, Key, Settings, Shard,
    ShardStats, TableConfig, UntrackedReason, Verdict,
};
use dataplane::flow::{FlowRepr, L4};
use dataplane::packet::{parse_ethernet, parse_ip};

use crate::parse::check_flow;

const WORKER: u16 = 3;
/// `a.check_invariants()` at least every this many checked steps.
pub const DEEP_EVERY: u32 = 8;
/// `b.check_invariants()` every this many checked steps.
pub const DEEP_EVERY_B: u32 = 64;
const BURST_MAX: usize = 40;
const MAX_ENTRIES: [u32; 8] = [64, 64, 64, 32, 16, 8, 4, 1];

/// The time step of an op byte's upper six bits: 0-150 ms in 10 ms steps,
/// 1-16 s, 30 s - 8 min, 5-60 min, then one tick, 1 day, 1 day + 1 s and
/// 7 days (beyond the wheel's ~18 min horizon).
pub fn step_nanos(k: u8) -> u64 {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;
    let k = u64::from(k & 63);
    match k {
        0..=15 => k * 10 * MS,
        16..=31 => (k - 15) * S,
        32..=47 => (k - 31) * 30 * S,
        48..=59 => (k - 47) * 300 * S,
        60 => TICK_NS,
        61 => 86_400 * S,
        62 => 86_401 * S,
        _ => 7 * 86_400 * S,
    }
}

/// Timeouts all set to `d`.
fn all_timeouts(s: &mut Settings, d: dataplane::conntrack::Duration) {
    s.tcp_syn_sent_timeout = d;
    s.tcp_syn_received_timeout = d;
    s.tcp_established_timeout = d;
    s.tcp_fin_wait_timeout = d;
    s.tcp_close_wait_timeout = d;
    s.tcp_last_ack_timeout = d;
    s.tcp_time_wait_timeout = d;
    s.tcp_close_timeout = d;
    s.udp_timeout = d;
    s.udp_stream_timeout = d;
    s.icmp_timeout = d;
    s.generic_timeout = d;
}

/// Settings from a selector: `sel & 3` the timeouts, bit 2 loose off, bits
/// 3-4 `enabled` (auto, yes, no, auto).
fn settings_of(sel: u8) -> Settings {
    use dataplane::conntrack::Duration as D;
    let mut s = Settings::default();
    match sel & 3 {
        0 => {}
        1 => all_timeouts(&mut s, D::from_secs(1)),
        2 => all_timeouts(&mut s, D::from_millis(10)),
        _ => {
            // Mixed: short handshake and close, long established and streams.
            s.tcp_syn_sent_timeout = D::from_millis(300);
            s.tcp_syn_received_timeout = D::from_secs(2);
            s.tcp_established_timeout = D::from_secs(7 * 86_400);
            s.tcp_time_wait_timeout = D::from_millis(50);
            s.udp_timeout = D::from_millis(200);
            s.udp_stream_timeout = D::from_secs(3_600);
            s.icmp_timeout = D::from_secs(1);
            s.generic_timeout = D::from_secs(30 * 60);
        }
    }
    s.loose_tcp_tracking = sel & 4 == 0;
    s.enabled = match (sel >> 3) & 3 {
        1 => Enabled::Yes,
        2 => Enabled::No,
        _ => Enabled::Auto,
    };
    s
}

/// Values tried with `Settings::set` (some refused on purpose).
const SET_VALUES: [&str; 12] = [
    "1s", "10ms", "0s", "3m", "1d2h3m4s", "500ms", "1w", "yes", "no", "auto", "00:01:30", "x",
];

/// What the verdicts seen so far say the stats must be.
#[derive(Default, Clone)]
struct Model {
    invalid: Vec<u64>,
    untracked: Vec<u64>,
    dropped: Vec<u64>,
    related: u64,
    packets: [u64; 2],
    bytes: [u64; 2],
    removed: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            invalid: vec![0; InvalidReason::COUNT],
            untracked: vec![0; UntrackedReason::COUNT],
            dropped: vec![0; DropReason::COUNT],
            ..Model::default()
        }
    }

    fn count(&mut self, v: &Verdict, ip_len: u32) {
        match *v {
            Verdict::Tracked { dir, .. } => self.packet(dir, ip_len),
            // As Linux: counted nowhere on the connection.
            Verdict::Related { .. } => self.related += 1,
            Verdict::Invalid(r) => self.invalid[r.index()] += 1,
            Verdict::Untracked(r) => self.untracked[r.index()] += 1,
            Verdict::Dropped(r) => self.dropped[r.index()] += 1,
            // The conveniences decide (accept) and commit every new packet.
            Verdict::New | Verdict::Refused(_) => panic!("{v:?} out of handle_*"),
        }
    }

    fn packet(&mut self, dir: Dir, ip_len: u32) {
        self.packets[dir.index()] += 1;
        self.bytes[dir.index()] = self.bytes[dir.index()].wrapping_add(u64::from(ip_len));
    }

    fn check(&self, s: &ShardStats, total: u32) {
        assert_eq!(
            s.invalid.as_slice(),
            self.invalid.as_slice(),
            "invalid counters"
        );
        assert_eq!(
            s.untracked.as_slice(),
            self.untracked.as_slice(),
            "untracked counters"
        );
        assert_eq!(
            s.dropped.as_slice(),
            self.dropped.as_slice(),
            "dropped counters"
        );
        assert_eq!(s.related, self.related, "related");
        assert_eq!(
            s.packets, self.packets,
            "packets counted != packets tracked"
        );
        assert_eq!(
            s.bytes, self.bytes,
            "bytes counted != ip_len of packets tracked"
        );
        assert_eq!(s.removed, self.removed, "removed");
        assert_eq!(
            s.drop,
            s.dropped[DropReason::TableFull.index()],
            "drop vs table_full"
        );
        assert_eq!(
            s.insert_failed,
            s.dropped[DropReason::IndexFull.index()],
            "insert_failed vs index_full"
        );
        assert_eq!(s.insert_failed, 0, "index_full below max-entries");
        assert_eq!(
            s.insert,
            u64::from(total) + s.expired + s.early_drop + s.closed + s.removed,
            "insert != live + expired + early_drop + closed + removed: {s:?}"
        );
    }
}

struct State {
    a: Shard,
    b: Shard,
    model: Model,
    now: Instant,
    pending: Vec<FlowRepr>,
    ids: Vec<ConnId>,
    packets: u32,
    steps: u32,
    /// `apply_settings` ran and no `poll_expired` since.
    settings_changed: bool,
    /// The tick of the first `poll_expired` after the last settings change:
    /// its rescan may park overdue entries in the current slot, which fires
    /// at the next tick (docs/conntrack.md: reaped "within a second").
    rescan_tick: Option<u64>,
    /// Some call reached the shards since the last check: a step that did
    /// not (a frame that failed to parse, a queued frame) is not checked.
    touched: bool,
    /// The next check runs `check_invariants` whatever the step count (the
    /// end of the input).
    deep: bool,
}

/// Runs the `parse_track` target on one input.
pub fn run(data: &[u8]) {
    run_stats(data);
}

/// As [`run`], and returns the final stats of the burst-fed shard (`None`
/// for an input shorter than its two header bytes).
pub fn run_stats(data: &[u8]) -> Option<ShardStats> {
    let [cfg, seed, rest @ ..] = data else {
        return None;
    };
    let max = MAX_ENTRIES[usize::from(cfg & 7)];
    let mut settings = settings_of(cfg >> 6);
    settings.loose_tcp_tracking = cfg & 8 == 0;
    let base = match (cfg >> 4) & 3 {
        0 => 0,
        1 => 1_700_000_000_000_000_000,
        2 => 1 << 62,
        _ => 1_000_000_000,
    };
    let shard = || {
        Shard::new(
            TableConfig::new(max),
            settings.clone(),
            WORKER,
            HashSeed::from_u64(u64::from(*seed)),
        )
    };
    let mut st = State {
        a: shard(),
        b: shard(),
        model: Model::new(),
        now: Instant(base),
        pending: Vec::with_capacity(BURST_MAX),
        ids: Vec::new(),
        packets: 0,
        steps: 0,
        settings_changed: false,
        rescan_tick: None,
        touched: true,
        deep: true,
    };
    assert_eq!(st.a.max_entries(), max);

    let mut input = rest;
    while let [op, tail @ ..] = input {
        input = tail;
        let kind = op & 3;
        let dt = step_nanos(op >> 2);
        if kind != 1 || dt != 0 {
            st.flush();
        }
        st.now = st.now.add_nanos(dt);
        if kind == 3 {
            let sub = take(&mut input, 1).first().copied().unwrap_or(0);
            let arg = take(&mut input, 1).first().copied().unwrap_or(0);
            st.control(sub, arg);
        } else {
            let len = take(&mut input, 1).first().copied().unwrap_or(0);
            let bytes = take(&mut input, usize::from(len));
            st.packet(kind, bytes);
        }
        st.check_step();
    }
    st.flush();
    st.touched = true;
    st.deep = true;
    st.check_step();
    st.b.check_invariants().unwrap();
    st.snapshots(0);
    Some(st.a.stats().clone())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(input.len());
    let (head, tail) = input.split_at(n);
    *input = tail;
    head
}

fn same_key(k: &Key) -> bool {
    k.reply() == *k
}

impl State {
    fn packet(&mut self, kind: u8, bytes: &[u8]) {
        let parsed = if kind == 2 {
            parse_ip(bytes)
        } else {
            parse_ethernet(bytes)
        };
        let Ok(flow) = parsed else {
            return;
        };
        let ip_bytes = if kind == 2 {
            bytes.len()
        } else {
            bytes.len() - 14
        };
        check_flow(&flow, ip_bytes);
        self.packets += 1;
        if kind == 1 {
            self.pending.push(flow);
            if self.pending.len() >= BURST_MAX {
                self.flush();
            }
        } else {
            self.single(&flow);
        }
        if self.packets.is_multiple_of(4) {
            self.flush();
            self.poll(4);
        }
    }

    /// One packet through `handle_packet`, with the per-packet assertions.
    fn single(&mut self, flow: &FlowRepr) {
        self.touched = true;
        let now = self.now;
        let before = self.a.stats().clone();
        let entries = self.a.total_entries();
        let v = self.a.handle_packet(now, flow);
        let vb = self.b.handle_packet(now, flow);
        assert_eq!(v, vb, "same packet, same table, different verdict");
        self.model.count(&v, flow.ip_len);
        let after = self.a.stats().clone();
        let entries_after = self.a.total_entries();
        let disabled = !self.a.settings().enabled.is_tracking();
        if disabled {
            assert_eq!(v, Verdict::Untracked(UntrackedReason::TrackingDisabled));
            assert_eq!(entries_after, entries);
            let mut expect = before.clone();
            expect.untracked[UntrackedReason::TrackingDisabled.index()] += 1;
            assert_eq!(after, expect, "enabled=no changed more than a counter");
        } else {
            assert_ne!(v, Verdict::Untracked(UntrackedReason::TrackingDisabled));
        }
        let counted = after.packets[0] + after.packets[1] - before.packets[0] - before.packets[1];
        match v {
            Verdict::Tracked { id, dir, created } => {
                assert_eq!(id.worker(), WORKER);
                assert_eq!(counted, 1, "a tracked packet counted {counted} times");
                assert!(entries_after <= entries + 1);
                if created {
                    assert_eq!(dir, Dir::Orig, "a connection created by a reply");
                    assert!(after.insert > before.insert, "created without insert");
                }
                self.remember(id);
                match self.a.get(id) {
                    Some(e) => {
                        let k = Key::of_packet(&flow.tuple, &flow.l4);
                        let found = self.a.lookup(&k);
                        if same_key(&k) {
                            assert_eq!(found.map(|f| f.0), Some(id), "{flow:?}");
                        } else {
                            assert_eq!(found, Some((id, dir)), "packet key lookup: {flow:?}");
                        }
                        assert!(e.packets(dir) >= 1);
                        assert_eq!(e.last_seen(), now, "a tracked packet did not refresh");
                        let left = self.a.remaining(id, now).unwrap();
                        assert!(left.as_nanos() > 0, "just refreshed, already dead");
                    }
                    None => assert!(
                        after.closed > before.closed,
                        "tracked entry {id} gone without being closed"
                    ),
                }
            }
            Verdict::Related { id, dir } => {
                assert_eq!(counted, 0, "a related ICMP error counted on a connection");
                assert_eq!(after.related, before.related + 1);
                assert_eq!(
                    entries_after, entries,
                    "an ICMP error changed the table size"
                );
                let L4::Icmp(icmp) = &flow.l4 else {
                    panic!("Related for a non-ICMP packet: {flow:?}");
                };
                let inner = icmp.inner.expect("Related without a quoted tuple");
                assert!(self.a.get(id).is_some(), "Related to a gone entry");
                let k = Key::of_quoted(&inner);
                let found = self.a.lookup(&k);
                if same_key(&k) {
                    assert_eq!(found.map(|f| f.0), Some(id));
                } else {
                    assert_eq!(found, Some((id, dir.flip())), "quoted key lookup: {flow:?}");
                }
                self.remember(id);
            }
            Verdict::New | Verdict::Refused(_) => panic!("{v:?} out of handle_packet"),
            Verdict::Invalid(_) | Verdict::Untracked(_) | Verdict::Dropped(_) => {
                assert_eq!(counted, 0, "{v:?} counted a packet");
                assert!(entries_after <= entries, "{v:?} added an entry");
                assert_eq!(after.insert, before.insert, "{v:?} inserted");
                if v == Verdict::Dropped(DropReason::TableFull) {
                    assert_eq!(
                        entries,
                        self.a.max_entries(),
                        "table_full below max-entries"
                    );
                    assert_eq!(entries_after, entries);
                }
            }
        }
    }

    /// Hands the queued packets to `a` as a burst and to `b` one by one.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.touched = true;
        let now = self.now;
        let mut out =
            vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); self.pending.len()];
        self.a.handle_burst(now, &self.pending, &mut out);
        let pending = std::mem::take(&mut self.pending);
        for (p, v) in pending.iter().zip(&out) {
            let vb = self.b.handle_packet(now, p);
            assert_eq!(*v, vb, "burst and single verdicts differ for {p:?}");
            self.model.count(v, p.ip_len);
            if let Verdict::Tracked { id, .. } | Verdict::Related { id, .. } = *v {
                self.remember(id);
            }
        }
        self.pending = pending;
        self.pending.clear();
    }

    fn remember(&mut self, id: ConnId) {
        if self.ids.len() >= 16 {
            self.ids.remove(0);
        }
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    fn pick(&self, arg: u8) -> Option<ConnId> {
        if self.ids.is_empty() {
            None
        } else {
            Some(self.ids[usize::from(arg) % self.ids.len()])
        }
    }

    /// `poll_expired` on both shards, with the assertions.
    fn poll(&mut self, budget: usize) -> usize {
        self.touched = true;
        let before = self.a.stats().clone();
        let entries = self.a.total_entries();
        if self.settings_changed {
            self.settings_changed = false;
            self.rescan_tick = Some(self.now.nanos() / TICK_NS);
        }
        let n = self.a.poll_expired(self.now, budget);
        let nb = self.b.poll_expired(self.now, budget);
        assert_eq!(n, nb);
        assert!(
            n <= budget,
            "poll_expired removed {n} with a budget of {budget}"
        );
        let after = self.a.stats();
        assert_eq!(
            after.expired - before.expired,
            n as u64,
            "expired counter vs removed"
        );
        assert_eq!(
            entries - self.a.total_entries(),
            n as u32,
            "entries vs removed"
        );
        if let Some(d) = self.a.next_deadline() {
            assert!(self.a.total_entries() > 0);
            let _ = d;
        } else {
            assert_eq!(
                self.a.total_entries(),
                0,
                "next_deadline None with live entries"
            );
        }
        n
    }

    /// A call between packets.
    fn control(&mut self, sub: u8, arg: u8) {
        self.touched = true;
        match sub & 15 {
            1 => self.drain(),
            2 => {
                let s = settings_of(arg);
                self.apply(&s);
                assert_eq!(*self.a.settings(), s);
            }
            3 => {
                if let Some(id) = self.pick(arg) {
                    let live = self.a.get(id).is_some();
                    let entries = self.a.total_entries();
                    let removed = self.a.remove(id);
                    assert_eq!(removed, self.b.remove(id));
                    assert_eq!(removed, live, "remove({id}) vs get");
                    if removed {
                        self.model.removed += 1;
                        assert_eq!(self.a.total_entries(), entries - 1);
                        assert!(self.a.get(id).is_none(), "removed {id} still there");
                        assert!(!self.a.remove(id), "removed {id} twice");
                        assert!(!self.b.remove(id));
                    }
                }
            }
            4 => {
                if let Some(id) = self.pick(arg >> 1) {
                    let on = arg & 1 == 0;
                    let live = self.a.get(id).is_some();
                    let ok = self.a.set_fasttrack(id, on);
                    assert_eq!(ok, self.b.set_fasttrack(id, on));
                    assert_eq!(ok, live);
                    if let Some(e) = self.a.get(id) {
                        assert_eq!(e.fasttrack(), on);
                    }
                }
            }
            5 => {
                if let Some(id) = self.pick(arg >> 1) {
                    let dir = if arg & 1 == 0 { Dir::Orig } else { Dir::Reply };
                    let ip_len = u32::from(arg) * 8;
                    let alive = self
                        .a
                        .remaining(id, self.now)
                        .is_some_and(|r| r.as_nanos() > 0);
                    let before = self.a.get(id).map(|e| e.packets(dir));
                    let ok = self.a.handle_fasttrack(self.now, id, dir, ip_len);
                    assert_eq!(ok, self.b.handle_fasttrack(self.now, id, dir, ip_len));
                    assert_eq!(ok, alive, "handle_fasttrack({id}) vs its deadline");
                    if ok {
                        self.model.packet(dir, ip_len);
                        let e = self.a.get(id).unwrap();
                        assert_eq!(Some(e.packets(dir)), before.map(|p| p + 1));
                        assert_eq!(e.last_seen(), self.now);
                    }
                }
            }
            6 => {
                if let Some(id) = self.pick(arg) {
                    let mark = u32::from(arg) * 0x0101;
                    let live = self.a.get(id).is_some();
                    let ok = self.a.set_connection_mark(id, mark);
                    assert_eq!(ok, self.b.set_connection_mark(id, mark));
                    assert_eq!(ok, live);
                    if live {
                        assert_eq!(self.a.connection_mark(id), Some(mark));
                    }
                }
            }
            7 => self.snapshots(arg),
            8 => self.flush(),
            9 => {
                let key = KEYS[usize::from(arg & 15)];
                let value = SET_VALUES[usize::from(arg >> 4) % SET_VALUES.len()];
                let mut s = self.a.settings().clone();
                if s.set(key, value).is_ok() {
                    // What `get` prints sets the same value again.
                    let shown = s.get(key).unwrap();
                    let mut again = s.clone();
                    again.set(key, &shown).unwrap();
                    assert_eq!(
                        again, s,
                        "{key}={value} shown as {shown} does not round-trip"
                    );
                    self.apply(&s);
                }
            }
            _ => {
                self.poll(usize::from(arg & 15));
            }
        }
    }

    fn apply(&mut self, s: &Settings) {
        self.a.apply_settings(s);
        self.b.apply_settings(s);
        self.settings_changed = true;
    }

    /// `poll_expired` with no budget limit: afterwards no entry's deadline
    /// may be before the current tick (a slot fires early, never late),
    /// unless a settings change was applied within this tick.
    fn drain(&mut self) {
        for _ in 0..3 {
            if self.poll(usize::MAX) == 0 {
                break;
            }
        }
        let t0 = self.now.nanos() / TICK_NS * TICK_NS;
        if t0 == 0 || self.rescan_tick == Some(self.now.nanos() / TICK_NS) {
            return;
        }
        let mut late = Vec::new();
        self.a.for_each_snapshot(Instant(t0 - 1), |s| {
            if s.remaining().as_nanos() == 0 {
                late.push(s.id());
            }
        });
        assert!(
            late.is_empty(),
            "after poll_expired({:?}, unlimited), entries {late:?} expired before tick start {t0}",
            self.now
        );
    }

    /// Snapshots: every live entry once, in full and in chunks, counters as
    /// the entry has them, every shown property matching itself.
    fn snapshots(&mut self, arg: u8) {
        let now = self.now;
        let mut all = Vec::new();
        let mut raws = Vec::new();
        self.a.for_each_snapshot(now, |s| {
            all.push(ConnSnapshot::from_raw(&s));
            raws.push(s);
        });
        assert_eq!(
            all.len(),
            self.a.total_entries() as usize,
            "snapshot count vs total_entries"
        );
        let mut all_b = Vec::new();
        self.b
            .for_each_snapshot(now, |s| all_b.push(ConnSnapshot::from_raw(&s)));
        assert_eq!(all, all_b, "burst and single tables differ");
        let mut chunked = Vec::new();
        let mut cursor = Some(0);
        let mut rounds = 0;
        while let Some(c) = cursor {
            cursor = self
                .a
                .raw_chunk(now, c, usize::from(arg % 7), &mut chunked);
            rounds += 1;
            assert!(rounds <= 1 + all.len() + 70, "raw_chunk does not end");
        }
        let chunked: Vec<ConnSnapshot> = chunked.iter().map(ConnSnapshot::from_raw).collect();
        assert_eq!(chunked, all, "raw_chunk vs for_each_snapshot");
        let _ = format_table(&all);
        for (s, raw) in all.iter().zip(&raws) {
            let id: ConnId = s.id.parse().expect("snapshot id does not parse");
            assert_eq!(id, raw.id());
            let e = self.a.get(id).expect("snapshot of a dead id");
            let snap = ConnSnapshot::from_raw(&self.a.snapshot(id, now).unwrap());
            assert_eq!(&snap, s);
            assert_eq!(s.orig_packets, e.packets(Dir::Orig));
            assert_eq!(s.repl_packets, e.packets(Dir::Reply));
            assert_eq!(s.orig_bytes, e.bytes(Dir::Orig));
            assert_eq!(s.repl_bytes, e.bytes(Dir::Reply));
            assert!(s.confirmed);
            assert_eq!(s.dying, raw.remaining().as_nanos() == 0);
            let props = ConnSnapshot::PROPERTIES.iter().copied();
            for p in props.chain(["nonexistent-property"]) {
                match s.get(p) {
                    Ok(Some(v)) => assert_eq!(
                        s.matches(p, &v),
                        Ok(true),
                        "{p}={v} does not match its own snapshot"
                    ),
                    Ok(None) => assert_eq!(s.matches(p, "0"), Ok(false)),
                    Err(_) => assert_eq!(p, "nonexistent-property"),
                }
            }
        }
    }

    fn check_step(&mut self) {
        if !std::mem::take(&mut self.touched) {
            return;
        }
        self.steps += 1;
        if (std::mem::take(&mut self.deep) || self.steps.is_multiple_of(DEEP_EVERY))
            && let Err(e) = self.a.check_invariants()
        {
            panic!("check_invariants: {e}");
        }
        let total = self.a.total_entries();
        assert!(total <= self.a.max_entries(), "{total} entries over max");
        assert_eq!(
            total,
            self.b.total_entries(),
            "burst and single entry counts differ"
        );
        // Queued packets are not yet in `a` or `b`.
        self.model.check(self.a.stats(), total);
        assert_eq!(
            self.a.stats(),
            self.b.stats(),
            "burst and single stats differ"
        );
        if self.steps.is_multiple_of(DEEP_EVERY_B)
            && let Err(e) = self.b.check_invariants()
        {
            panic!("check_invariants (b): {e}");
        }
    }
}
