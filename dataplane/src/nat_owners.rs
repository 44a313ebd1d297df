//! Which worker holds a NAT connection created away from its original
//! tuple's worker: the shared, read-mostly owner table (see docs/nat.md,
//! "Port forwards on several workers").
//!
//! A port forward (`dst-nat` keeping the client's port) has exactly one
//! reply tuple, and its symmetric dispatch hash may give another worker
//! than the original tuple's. Its first packet is then handed to the
//! reply's owner ([`crate::nat::NatDrop::Elsewhere`]), which creates the
//! connection there and records *original key -> owner* here; later
//! original-direction packets land on the first worker, miss in its shard,
//! find the owner here before anything is created, and are handed over too.
//! Replies arrive at the owner by the hash.
//!
//! Fixed size (allocated once per run), lock-free: each slot is two
//! `AtomicU64`s, a 64-bit tag of the key (never 0) and the owning
//! connection's [`ConnId`] (+1, 0 while being written). A key is looked for
//! in [`PROBES`] consecutive slots. Only the owner writes, clears and
//! sweeps its entries ([`OwnerTable::sweep`]: an entry whose connection is
//! gone is cleared); a full neighbourhood refuses the entry (counted by the
//! caller). The table is a cache, not the truth: a missing or stale entry
//! costs a rule walk on the first worker, whose NAT decision hands the
//! packet to the same owner again (the first candidate reply tuple is the
//! same on every worker), and a stale one a miss on the owner, which then
//! decides as for a new connection, on the right worker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::conntrack::ConnId;
use crate::conntrack::key::Key;

/// Slots in the table (16 bytes each: 1 MiB).
pub const OWNER_SLOTS: usize = 1 << 16;
/// Consecutive slots a key may occupy.
pub const PROBES: usize = 8;

#[derive(Default)]
struct Slot {
    tag: AtomicU64,
    /// `ConnId.0 + 1`; 0: empty or being written.
    conn: AtomicU64,
}

/// The owner table shared by all workers of a run.
pub struct OwnerTable {
    slots: Box<[Slot]>,
    seed: u64,
    /// Entries in the table (a hint: 0 lets a local miss skip the lookup).
    live: AtomicUsize,
}

impl OwnerTable {
    /// A table of `slots` (a power of two, at least [`PROBES`]) keyed with
    /// `seed`.
    pub fn new(slots: usize, seed: u64) -> OwnerTable {
        let n = slots.next_power_of_two().max(PROBES);
        OwnerTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            seed,
            live: AtomicUsize::new(0),
        }
    }

    fn tag(&self, k: &Key) -> u64 {
        let mut h = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut add = |x: u64| {
            h = (h ^ x).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 31;
        };
        for w in [k.src.0, k.dst.0] {
            add(u64::from_le_bytes(w[..8].try_into().unwrap_or_default()));
            add(u64::from_le_bytes(w[8..].try_into().unwrap_or_default()));
        }
        add(u64::from(k.sport)
            | u64::from(k.dport) << 16
            | u64::from(k.proto) << 32
            | u64::from(k.ver) << 40
            | u64::from(k.family as u8) << 48);
        h.max(1)
    }

    fn home(&self, tag: u64) -> usize {
        (tag as usize) & (self.slots.len() - 1)
    }

    fn slot(&self, home: usize, i: usize) -> &Slot {
        &self.slots[(home + i) & (self.slots.len() - 1)]
    }

    /// Whether the table is empty (one relaxed load: the per-miss check).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live.load(Ordering::Relaxed) == 0
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The connection holding original key `k`, if one is recorded.
    #[inline]
    pub fn lookup(&self, k: &Key) -> Option<ConnId> {
        let tag = self.tag(k);
        let home = self.home(tag);
        for i in 0..PROBES {
            let s = self.slot(home, i);
            if s.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            let c = s.conn.load(Ordering::Acquire);
            // Re-read: the slot may have been cleared and reused meanwhile.
            if c != 0 && s.tag.load(Ordering::Acquire) == tag {
                return Some(ConnId(c - 1));
            }
        }
        None
    }

    /// Records that connection `id` (of worker `id.worker()`) holds
    /// original key `k`; false if the key's slots are all taken.
    pub fn insert(&self, k: &Key, id: ConnId) -> bool {
        let tag = self.tag(k);
        let home = self.home(tag);
        for i in 0..PROBES {
            let s = self.slot(home, i);
            if s.tag.load(Ordering::Acquire) == tag {
                s.conn.store(id.0 + 1, Ordering::Release);
                return true;
            }
        }
        for i in 0..PROBES {
            let s = self.slot(home, i);
            if s.tag
                .compare_exchange(0, tag, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                s.conn.store(id.0 + 1, Ordering::Release);
                self.live.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Clears up to `budget` slots from `cursor` on that belong to worker
    /// `worker` and whose connection `alive` says is gone; returns where to
    /// go on next time.
    pub fn sweep(
        &self,
        worker: u16,
        cursor: usize,
        budget: usize,
        mut alive: impl FnMut(ConnId) -> bool,
    ) -> usize {
        let n = self.slots.len();
        if self.is_empty() {
            return cursor;
        }
        for i in 0..budget.min(n) {
            let s = &self.slots[(cursor + i) & (n - 1)];
            let c = s.conn.load(Ordering::Acquire);
            if c == 0 {
                continue;
            }
            let id = ConnId(c - 1);
            if id.worker() == worker && !alive(id) {
                s.conn.store(0, Ordering::Release);
                s.tag.store(0, Ordering::Release);
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
        (cursor + budget) & (n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Addr, Family};

    fn key(sport: u16) -> Key {
        Key {
            src: Addr::from_v4([192, 0, 2, 7]),
            dst: Addr::from_v4([198, 51, 100, 1]),
            sport,
            dport: 80,
            proto: 6,
            family: Family::V4,
            ver: 0,
        }
    }

    #[test]
    fn insert_lookup_sweep() {
        let t = OwnerTable::new(64, 7);
        assert!(t.is_empty());
        let a = ConnId::new(1, 5, 2);
        assert!(t.insert(&key(1000), a));
        assert_eq!(t.lookup(&key(1000)), Some(a));
        assert_eq!(t.lookup(&key(1001)), None);
        // Re-recorded: one entry.
        let b = ConnId::new(1, 6, 2);
        assert!(t.insert(&key(1000), b));
        assert_eq!((t.lookup(&key(1000)), t.len()), (Some(b), 1));
        // Another worker's sweep leaves it; the owner's clears it once gone.
        t.sweep(0, 0, 64, |_| false);
        assert_eq!(t.len(), 1);
        t.sweep(1, 0, 64, |id| id != b);
        assert_eq!((t.lookup(&key(1000)), t.len()), (None, 0));
    }

    #[test]
    fn a_full_neighbourhood_refuses() {
        let t = OwnerTable::new(PROBES, 1);
        let ok = (0..PROBES as u16 + 1)
            .filter(|&p| t.insert(&key(p), ConnId::new(0, u32::from(p), 0)))
            .count();
        assert_eq!(ok, PROBES);
        assert_eq!(t.len(), PROBES);
    }
}
