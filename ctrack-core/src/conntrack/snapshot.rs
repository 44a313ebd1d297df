//! Typed, owned records of connections, copied out of a shard: what `print`,
//! the REST API and `ctrack replay` show, before any formatting.
//!
//! The core gives [`RawConn`]s; turning one into the RouterOS row (names,
//! addresses and times as text, the `where` matcher, the `print` table) is
//! presentation and lives in the `ctrack-model` crate, so the core stays
//! free of strings on this path and of any particular view.

use super::Dir;
use super::entry::{ConnId, Entry, FtCounters};
use super::key::Key;
use super::time::Duration;

/// A connection's raw state, copied out of the table as it stands at one
/// instant: plain data, no formatting. A worker hands these to the control
/// thread, which formats them off the packet path.
#[derive(Clone, Copy, Debug)]
pub struct RawConn {
    pub(crate) entry: Entry,
    /// The reply direction's key: the stored one of a translated connection
    /// (NAT), else the inverse of the original.
    pub(crate) reply: Key,
    pub(crate) id: ConnId,
    pub(crate) worker: u16,
    pub(crate) remaining: Duration,
    pub(crate) dying: bool,
    pub(crate) ft: FtCounters,
    pub(crate) rate: [u64; 2],
    pub(crate) mark: u32,
}

impl RawConn {
    /// The record an event carries ([`super::ConnEvent`]: the entry as it
    /// stood after the change), for `listen` to show as a row. What an event
    /// does not carry is zero: time left (a destroyed connection is
    /// `dying`), FastTrack counters and rates.
    pub fn from_event(ev: &super::ConnEvent) -> RawConn {
        RawConn {
            entry: ev.entry,
            reply: ev.reply,
            id: ev.id,
            worker: ev.id.worker(),
            remaining: Duration::ZERO,
            dying: matches!(ev.kind, super::EventKind::Destroy(_)),
            ft: FtCounters::default(),
            rate: [0, 0],
            mark: ev.mark,
        }
    }

    /// The connection's id (as `print` shows it: `*1f2a`).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The entry: keys, protocol state, flags, counters.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The reply direction's key as the table indexes it: for a translated
    /// connection (NAT) the stored reply tuple, not the inverse of the
    /// original (which [`Entry::reply_key`] derives).
    pub fn reply_key(&self) -> &Key {
        &self.reply
    }

    /// The worker (shard) that owns the connection.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// Time left before the connection times out (0 once its deadline passed).
    pub fn remaining(&self) -> Duration {
        self.remaining
    }

    /// Whether its deadline has passed (it goes at the next expiry poll).
    pub fn dying(&self) -> bool {
        self.dying
    }

    /// Packets and bytes that went the FastTrack way, per direction.
    pub fn fasttrack_counters(&self) -> FtCounters {
        self.ft
    }

    /// Bits per second in direction `dir`, over the last whole window.
    pub fn rate(&self, dir: Dir) -> u64 {
        self.rate[dir.index()]
    }

    /// `connection-mark` (0 when unset).
    pub fn mark(&self) -> u32 {
        self.mark
    }
}
