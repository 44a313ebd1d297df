//! The sans-io connection tracking core.
//!
//! This module contains no I/O and reads no clock: every input is a value
//! ([`Instant`], [`crate::flow::FlowRepr`], [`Settings`]) and every output is
//! returned ([`Verdict`], expired counts, [`RawConn`] records). The worker
//! (`dataplane/src/worker.rs`) owns one [`Shard`] and calls, per loop:
//!
//! - packets, in two phases per burst, as OVS's `conn_not_found` splits
//!   creation: [`Shard::lookup_burst`] tracks the packets of known
//!   connections and leaves those that would open one waiting
//!   ([`Verdict::New`], nothing inserted or evicted); the caller decides for
//!   each (rules, NAT, mangle: a [`Decision`]) and [`Shard::commit_burst`]
//!   creates the accepted ones. [`Shard::handle_burst`] and
//!   [`Shard::handle_packet`] do both with the default decision (accept).
//!   [`Shard::count_invalid`] counts a packet found invalid before the
//!   table (a bad checksum). Fast-tracked connections take the same calls:
//!   the table checks the entry's fasttrack flag itself.
//!   [`Shard::handle_fasttrack`] (count a packet of a known fast-tracked id
//!   without a lookup) is not called by the worker: only tests and the
//!   fuzzer use it;
//! - for time: [`Shard::poll_expired`] with a work budget
//!   ([`Shard::next_deadline`] says when that next has work; the worker polls
//!   every loop instead);
//! - management, between bursts: [`Shard::apply_settings`],
//!   [`Shard::set_fasttrack_established`], [`Shard::raw_chunk`], [`Shard::snapshot`],
//!   [`Shard::remove`], [`Shard::census_chunk`], and the plain getters
//!   ([`Shard::stats`], [`Shard::total_entries`], [`Shard::max_entries`]).
//!   [`Shard::set_connection_mark`] and [`Shard::set_fasttrack`] have no
//!   worker command yet;
//! - events, when switched on ([`Shard::set_events`]): the worker drains
//!   them between bursts ([`Shard::drain_events`]; see [`events`]).
//!
//! Files by concern: [`table`] (the shard and its packet path), [`index`]
//! (the cuckoo index), `arena` (entries), `wheel` (timers), [`fasttrack`],
//! per-protocol rules in [`tcp`], [`icmp`] and [`gre`], [`key`] (tuples and
//! hashing), [`entry`], [`verdict`].
//!
//! See `docs/conntrack.md` for the table layout, the timer wheel and where we
//! differ from Linux and RouterOS.

pub(crate) mod arena;
pub mod conncount;
pub mod entry;
pub mod events;
pub mod expect;
pub mod fasttrack;
pub mod gre;
pub mod gre_keymap;
pub mod helping;
pub mod icmp;
pub mod index;
pub mod key;
pub mod nat;
pub mod seqadj;
pub mod settings;
pub mod snapshot;
pub mod table;
pub mod tcp;
pub mod time;
pub mod verdict;
pub(crate) mod wheel;

#[cfg(test)]
mod tests;

pub use conncount::ConnCount;
pub use entry::{ConnId, ConnIdError, Entry, FtCounters, ProtoState};
pub use events::{ConnEvent, DestroyReason, EventKind};
pub use key::Key;
pub use settings::{Enabled, InvalidSetting, Settings};
pub use snapshot::RawConn;
pub use table::{Census, ConnView, Shard, TableConfig};
pub use time::{Duration, DurationError, format_duration, format_duration_exact, parse_duration};
pub use verdict::{
    Action, Decision, DropReason, InvalidReason, OtherInvalid, ShardStats, UntrackedReason, Verdict,
};

/// Direction of a packet relative to the connection that it belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Dir {
    /// From the connection's originator (the sender of its first packet).
    Orig = 0,
    /// From the responder.
    Reply = 1,
}

impl Dir {
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn flip(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }
}

/// Conntrack's notion of time: nanoseconds since an arbitrary epoch chosen by
/// the driver (the worker's TSC-derived clock, or a capture's timestamps).
/// Conntrack never reads a clock itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    pub const fn saturating_sub(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub const fn add_nanos(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
}
