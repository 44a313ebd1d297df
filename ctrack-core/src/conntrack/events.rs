//! Connection events: what a shard reports about its connections' lives,
//! for flow export (`/ip traffic-flow`) and for `listen` (conntrack `-E`,
//! RouterOS `print follow`).
//!
//! A shard with events on ([`super::Shard::set_events`]) copies a
//! [`ConnEvent`] into a fixed-capacity buffer when a connection is created
//! (new), changes what `print` shows of its state (update: TCP state,
//! seen-reply, assured) or goes (destroy, with the reason). The worker drains
//! the buffer between bursts ([`super::Shard::drain_events`]). Nothing is
//! allocated on the packet path: the buffer is allocated when events are
//! switched on, and an event that finds it full is counted
//! ([`super::Shard::events_overflow`]) and lost. With events off (the
//! default) the packet path pays one predictable branch per event site.
//!
//! An event is a copy of the entry as it stands after the change: both
//! tuples (the stored reply key of a translated connection), counters of
//! both directions, last-seen time, TCP state and flags, mark. The core does
//! not keep a connection's first-seen time (the entry has no room for it):
//! the `New` event's `time` is that time, and a consumer that needs it keeps
//! it (the flow exporter's cache does).

use super::entry::{ConnId, Entry};
use super::key::Key;
use super::{Dir, Instant};

/// Why a connection went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DestroyReason {
    /// Its timeout passed (reaped by expiry, or found dead by a packet).
    Expired,
    /// Evicted unassured to make room for a new one (Linux `early_drop`).
    EarlyDrop,
    /// Removed through the management API.
    Removed,
    /// Ended by its tracker: an RST answering a SYN, a SYN reopening a
    /// closed or time-wait connection.
    Closed,
}

impl DestroyReason {
    /// The name `listen` shows.
    pub fn name(self) -> &'static str {
        match self {
            DestroyReason::Expired => "timeout",
            DestroyReason::EarlyDrop => "early-drop",
            DestroyReason::Removed => "remove",
            DestroyReason::Closed => "close",
        }
    }
}

/// What happened to the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventKind {
    /// Created (its first packet was committed).
    New,
    /// Its TCP state changed, or it became seen-reply or assured.
    Update,
    /// It is gone.
    Destroy(DestroyReason),
}

impl EventKind {
    /// conntrack's names: `new`, `update`, `destroy`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Update => "update",
            EventKind::Destroy(_) => "destroy",
        }
    }
}

/// One event: the connection as it stands after the change (see the module
/// doc). Plain data, copied out of the table.
#[derive(Clone, Copy, Debug)]
pub struct ConnEvent {
    pub kind: EventKind,
    /// The shard's time when it happened (the caller's clock, as every
    /// [`Instant`] the shard is given). For `New`, the first packet's time.
    pub time: Instant,
    pub id: ConnId,
    /// The entry: original key, protocol state, flags, counters, last seen.
    pub entry: Entry,
    /// The key reply packets carry (stored for a translated connection).
    pub reply: Key,
    /// `connection-mark`.
    pub mark: u32,
    /// `New`: the port its first packet entered on, as the caller's
    /// decision said ([`super::Decision::in_port`]); otherwise, and when the
    /// caller did not say, [`super::Decision::UNKNOWN_PORT`].
    pub in_port: u16,
}

impl ConnEvent {
    /// The original direction's key.
    pub fn key(&self) -> &Key {
        self.entry.key()
    }

    /// Packets counted in direction `d`.
    pub fn packets(&self, d: Dir) -> u64 {
        self.entry.packets(d)
    }

    /// Bytes (IP packet lengths) counted in direction `d`.
    pub fn bytes(&self, d: Dir) -> u64 {
        self.entry.bytes(d)
    }

    /// Time of the last packet that refreshed the connection.
    pub fn last_seen(&self) -> Instant {
        self.entry.last_seen()
    }
}

/// The shard's event buffer: off (capacity 0, nothing allocated) or a
/// fixed-capacity vector that never grows.
#[derive(Debug, Default)]
pub(crate) struct EventBuf {
    pub(crate) on: bool,
    buf: Vec<ConnEvent>,
    cap: usize,
    pub(crate) overflow: u64,
}

impl EventBuf {
    /// Switches events on with room for `capacity` between drains (0: off,
    /// and the buffer is freed).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.on = capacity > 0;
        self.cap = capacity;
        if capacity == 0 {
            self.buf = Vec::new();
        } else if self.buf.capacity() < capacity {
            self.buf.reserve_exact(capacity - self.buf.len());
        }
        self.buf.truncate(capacity);
    }

    /// Keeps `ev`, or counts it lost when the buffer is full.
    #[inline]
    pub(crate) fn push(&mut self, ev: ConnEvent) {
        if self.buf.len() < self.cap {
            self.buf.push(ev);
        } else {
            self.overflow += 1;
        }
    }

    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, ConnEvent> {
        self.buf.drain(..)
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}
