//! FastTrack: the short path for marked connections, and the policy of
//! which connections are marked.
//!
//! A fast-tracked connection's packets skip the tracker: the table only
//! counts them and refreshes `last_seen` (a FIN or RST gives the connection
//! back to the full path). Its counters since marking are kept in a side
//! arena (`FtSlot`), whose chunk exists only once a connection of that
//! chunk was marked, or while [`FastTrackMode::Established`] is on (so that
//! marking never allocates on the packet path).

use super::entry::{ConnId, Entry, flag};
use super::table::Shard;
use super::tcp::TcpState;
use super::{Dir, Instant};
use crate::flow::proto;

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

/// Established TCP and UDP streams may be fast-tracked.
pub fn fasttrack_eligible(e: &Entry) -> bool {
    e.has(flag::ASSURED)
        && match e.tcp_state() {
            Some(st) => st == TcpState::Established,
            None => e.key.proto == proto::UDP,
        }
}

impl Shard {
    /// Sets which connections are fast-tracked from now on. Turning it on
    /// allocates the fasttrack counters of every arena chunk (and of chunks
    /// added later) so that marking a connection never allocates on the
    /// packet path. Turning it off returns every connection to the full path.
    pub fn set_fasttrack_mode(&mut self, mode: FastTrackMode) {
        self.fasttrack = mode;
        match mode {
            FastTrackMode::Established => self.arena.ft_alloc_all(),
            FastTrackMode::No => {
                for i in 0..self.arena.high_water() {
                    self.ft_unmark(i);
                }
            }
        }
    }

    pub fn fasttrack_mode(&self) -> FastTrackMode {
        self.fasttrack
    }

    /// Puts entry `i` on the short path, noting its counters (the fasttrack
    /// arena chunk must exist: it does in `Established` mode, and
    /// [`Shard::set_fasttrack`] allocates it).
    pub(super) fn ft_mark(&mut self, i: u32) {
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
    pub(super) fn ft_unmark(&mut self, i: u32) {
        let e = *self.e(i);
        if !e.has(flag::FASTTRACK) {
            return;
        }
        if let Some(slot) = self.ft_slot_mut(i) {
            slot.done = slot.read(&e);
        }
        self.e_mut(i).flags &= !flag::FASTTRACK;
    }

    /// The short path's accounting: the entry and the shard's counters only
    /// (the fasttrack counters follow from the entry's, see `FtSlot`).
    #[inline]
    pub(super) fn fast_account(&mut self, i: u32, now: Instant, dir: Dir, ip_len: u32) {
        self.account(i, now, dir, ip_len, true);
        self.stats.fasttrack_packets += 1;
        self.stats.fasttrack_bytes += u64::from(ip_len);
    }

    /// Marks connection `id` fast-tracked (or not). Allocates the fasttrack
    /// counters of its arena chunk on first use (never on the packet path).
    pub fn set_fasttrack(&mut self, id: ConnId, on: bool) -> bool {
        let Some(i) = self.resolve_id(id) else {
            return false;
        };
        if on {
            self.arena.ft_alloc(i);
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
}
