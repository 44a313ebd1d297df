//! FastTrack: the short path for marked connections.
//!
//! Which connections are marked is the caller's policy, not the table's: a
//! [`super::Decision`] marks a new one, [`Shard::set_fasttrack`] any one,
//! and [`Shard::set_fasttrack_established`] asks the table to mark each
//! connection on the packet that makes it eligible (established TCP, a UDP
//! stream), which costs nothing extra per packet (the dataplane's
//! `fasttrack = established` setting is that).
//!
//! A fast-tracked connection's packets skip the tracker: the table only
//! counts them and refreshes `last_seen` (a FIN or RST gives the connection
//! back to the full path). Its counters since marking are kept in a side
//! arena (`FtSlot`), whose chunk exists only once a connection of that
//! chunk was marked, or while marking on eligibility is on (so that marking
//! never allocates on the packet path).

use super::entry::{ConnId, Entry, flag};
use super::table::Shard;
use super::tcp::TcpState;
use super::{Dir, Instant};
use crate::flow::proto;

/// Established TCP and UDP streams may be fast-tracked.
/// (UDP is told from the key, on the entry's first line: only TCP reads
/// the tracker's state, on the second.)
pub fn fasttrack_eligible(e: &Entry) -> bool {
    e.has(flag::ASSURED)
        && (e.key.proto == proto::UDP || e.tcp_state() == Some(TcpState::Established))
}

impl Shard {
    /// The caller's policy: whether the table marks each connection
    /// fast-tracked on the packet that makes it eligible (established TCP,
    /// a UDP stream; see [`fasttrack_eligible`]). Turning it on allocates the
    /// fasttrack counters of every arena chunk (and of chunks added later)
    /// so that marking never allocates on the packet path. Turning it off
    /// returns every connection to the full path.
    pub fn set_fasttrack_established(&mut self, on: bool) {
        self.ft_established = on;
        if on {
            self.arena.ft_alloc_all();
        } else {
            for i in 0..self.arena.high_water() {
                self.ft_unmark(i);
            }
        }
    }

    /// Makes [`Shard::set_fasttrack`] free of allocation from now on: every
    /// arena chunk, present and future, gets its fasttrack counters (a
    /// ruleset with `fasttrack-connection` asks for this before its first
    /// packet, so that marking stays off the allocator on the packet path).
    pub fn set_fasttrack_ready(&mut self) {
        self.ft_ready = true;
        self.arena.ft_alloc_all();
    }

    pub fn fasttrack_established(&self) -> bool {
        self.ft_established
    }

    /// Puts entry `i` on the short path, noting its counters (the fasttrack
    /// arena chunk must exist: it does while marking on eligibility, and
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
        self.stats.fasttrack_packets[dir.index()] += 1;
        self.stats.fasttrack_bytes[dir.index()] += u64::from(ip_len);
    }

    /// Marks connection `id` fast-tracked (or not). Allocates the fasttrack
    /// counters of its arena chunk on first use, unless
    /// [`Shard::set_fasttrack_ready`] was called (then it never allocates and
    /// may be called on the packet path).
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
