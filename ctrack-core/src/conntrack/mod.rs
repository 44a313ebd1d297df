//! The sans-io connection tracking core.
//!
//! This module contains no I/O and reads no clock: every input is a value
//! ([`Instant`], [`crate::flow::FlowRepr`], [`Settings`]) and every output is
//! returned ([`Verdict`], expired counts, [`ConnSnapshot`]s). The worker owns
//! one [`Shard`] and calls, in this order per loop iteration:
//!
//! - packets, in two phases per burst, as OVS's `conn_not_found` splits
//!   creation: [`Shard::lookup_burst`] tracks the packets of known
//!   connections and leaves those that would open one waiting
//!   ([`Verdict::New`], nothing inserted or evicted); the caller decides for
//!   each (rules, NAT, mangle: a [`Decision`]) and [`Shard::commit_burst`]
//!   creates the accepted ones. [`Shard::handle_burst`] and
//!   [`Shard::handle_packet`] do both with the default decision (accept).
//!   [`Shard::handle_fasttrack`] serves fast-tracked connections;
//! - `poll_*` for time: [`Shard::poll_expired`] with a work budget, and
//!   [`Shard::next_deadline`] to know when that next has work;
//! - management, between bursts: [`Shard::apply_settings`],
//!   [`Shard::snapshot_chunk`], [`Shard::remove`], [`Shard::set_connection_mark`],
//!   [`Shard::set_fasttrack`], and the plain getters ([`Shard::stats`],
//!   [`Shard::total_entries`], [`Shard::max_entries`]).
//!
//! Files by concern: [`table`] (the shard and its packet path), [`index`]
//! (the cuckoo index), `arena` (entries), `wheel` (timers), [`fasttrack`],
//! per-protocol rules in [`tcp`], [`icmp`] and [`gre`], [`key`] (tuples and
//! hashing), [`entry`], [`verdict`].
//!
//! See `docs/conntrack.md` for the table layout, the timer wheel and where we
//! differ from Linux and RouterOS.

pub(crate) mod arena;
pub mod entry;
pub mod fasttrack;
pub mod gre;
pub mod icmp;
pub mod index;
pub mod key;
pub mod settings;
pub mod snapshot;
pub mod table;
pub mod tcp;
pub mod time;
pub mod verdict;
pub(crate) mod wheel;

#[cfg(test)]
mod tests;

pub use entry::{ConnId, ConnIdError, Entry, FtCounters, ProtoState};
pub use key::Key;
pub use settings::{Enabled, Settings, SettingsError};
pub use snapshot::{ConnSnapshot, FilterError, RawConn, format_table, protocol_name};
pub use table::{Census, Shard, TableConfig};
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
