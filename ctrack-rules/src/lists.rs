//! Address lists at run time: static entries in the [`crate::Ruleset`],
//! dynamic entries (added by `add-src-to-address-list` /
//! `add-dst-to-address-list`, with timeouts) per worker.
//!
//! Design (kept simple on purpose):
//! - Static entries (from `/ip firewall address-list` without `timeout=`)
//!   are compiled into one sorted, merged range set per list: a lookup is a
//!   binary search, shared by all workers, never written.
//! - Each worker owns a [`DynamicLists`]: a hash map from (list, address) to
//!   the expiry time, allocated once with a fixed capacity. A rule that adds
//!   an address writes there (no lock, no allocation; when the map is full
//!   the addition is counted in [`DynamicLists::full`] and dropped). Entries
//!   with `timeout=` in the script are seeded into every worker's map when
//!   the worker state is built, with expiry `now + timeout`.
//! - Every addition is also queued in a bounded outbox. The worker hands the
//!   outbox to control between bursts ([`DynamicLists::drain_outbox`]);
//!   control merges what every worker sent (latest expiry wins) and sends the
//!   additions that came from one worker to the others, which apply them with
//!   [`DynamicLists::apply`]. A worker therefore sees its own additions at
//!   once and the others' one control round trip later; RouterOS has one
//!   shared list, and the difference is only that delay.
//! - Expired entries read as absent at once and are removed by
//!   [`DynamicLists::poll_expired`], which the worker calls between bursts.

use std::collections::HashMap;

use ctrack_core::conntrack::Instant;

/// Index of an address list in a [`crate::Ruleset`] (per family).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ListId(pub u16);

/// A sorted set of disjoint inclusive ranges.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RangeSet(Vec<(u128, u128)>);

impl RangeSet {
    /// Builds the set from arbitrary (possibly overlapping) ranges.
    pub fn from_ranges(mut v: Vec<(u128, u128)>) -> RangeSet {
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        RangeSet(out)
    }

    pub fn contains(&self, a: u128) -> bool {
        // The last range starting at or below `a`.
        let i = self.0.partition_point(|&(lo, _)| lo <= a);
        i > 0 && self.0[i - 1].1 >= a
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One dynamic addition: what a worker reports and what others apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ListAdd {
    /// `true` for an `/ipv6` list.
    pub v6: bool,
    pub list: ListId,
    /// The address in the engine's form (IPv4 in the low 32 bits).
    pub addr: u128,
    /// `None`: no timeout (`none-dynamic`/`none-static`).
    pub expires: Option<Instant>,
}

/// A worker's dynamic address-list entries.
#[derive(Debug)]
pub struct DynamicLists {
    map: HashMap<(bool, ListId, u128), u64>,
    cap: usize,
    outbox: Vec<ListAdd>,
    outbox_cap: usize,
    /// Additions dropped because the map was full.
    pub full: u64,
    /// Additions not reported to control because the outbox was full.
    pub outbox_dropped: u64,
}

const NEVER: u64 = u64::MAX;

impl DynamicLists {
    /// A map for up to `cap` entries and an outbox of `outbox_cap`; both are
    /// allocated here, never on the packet path.
    pub fn new(cap: usize, outbox_cap: usize) -> DynamicLists {
        DynamicLists {
            map: HashMap::with_capacity(cap),
            cap,
            outbox: Vec::with_capacity(outbox_cap),
            outbox_cap,
            full: 0,
            outbox_dropped: 0,
        }
    }

    /// Whether `addr` is in `list` at `now`.
    #[inline]
    pub fn contains(&self, v6: bool, list: ListId, addr: u128, now: Instant) -> bool {
        match self.map.get(&(v6, list, addr)) {
            Some(&exp) => exp == NEVER || now.nanos() < exp,
            None => false,
        }
    }

    /// Adds (or refreshes) an entry from a rule of this worker, and queues it
    /// for control. Returns false when the map is full.
    pub fn add_local(&mut self, add: ListAdd) -> bool {
        if !self.insert(add) {
            return false;
        }
        if self.outbox.len() < self.outbox_cap {
            self.outbox.push(add);
        } else {
            self.outbox_dropped += 1;
        }
        true
    }

    /// Applies additions made by other workers (sent by control).
    pub fn apply(&mut self, adds: &[ListAdd]) {
        for a in adds {
            self.insert(*a);
        }
    }

    fn insert(&mut self, a: ListAdd) -> bool {
        let exp = a.expires.map(|e| e.nanos()).unwrap_or(NEVER);
        let key = (a.v6, a.list, a.addr);
        if let Some(cur) = self.map.get_mut(&key) {
            // RouterOS refreshes the timeout of an entry added again.
            if *cur != NEVER {
                *cur = if exp == NEVER { NEVER } else { exp.max(*cur) };
            }
            return true;
        }
        if self.map.len() >= self.cap {
            self.full += 1;
            return false;
        }
        self.map.insert(key, exp);
        true
    }

    /// Moves the queued additions into `out` (between bursts).
    pub fn drain_outbox(&mut self, out: &mut Vec<ListAdd>) {
        out.append(&mut self.outbox);
    }

    /// Removes expired entries; returns how many.
    pub fn poll_expired(&mut self, now: Instant) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, exp| *exp == NEVER || now.nanos() < *exp);
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry with its expiry, for control's view.
    pub fn entries(&self) -> impl Iterator<Item = ListAdd> + '_ {
        self.map.iter().map(|(&(v6, list, addr), &exp)| ListAdd {
            v6,
            list,
            addr,
            expires: (exp != NEVER).then_some(Instant(exp)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_searches() {
        let s = RangeSet::from_ranges(vec![(10, 20), (15, 30), (31, 31), (50, 60), (0, 0)]);
        assert_eq!(s.len(), 3);
        for a in [0, 10, 20, 30, 31, 50, 60] {
            assert!(s.contains(a), "{a}");
        }
        for a in [1, 9, 32, 49, 61, u128::MAX] {
            assert!(!s.contains(a), "{a}");
        }
        assert!(!RangeSet::default().contains(0));
    }

    fn add(addr: u128, expires: Option<u64>) -> ListAdd {
        ListAdd {
            v6: false,
            list: ListId(0),
            addr,
            expires: expires.map(Instant::from_secs),
        }
    }

    #[test]
    fn timeouts_refresh_and_expire() {
        let mut d = DynamicLists::new(2, 1);
        assert!(d.add_local(add(1, Some(10))));
        assert!(d.contains(false, ListId(0), 1, Instant::from_secs(9)));
        assert!(!d.contains(false, ListId(0), 1, Instant::from_secs(10)));
        assert!(
            !d.contains(true, ListId(0), 1, Instant::from_secs(1)),
            "families are apart"
        );
        // Added again with a later timeout: refreshed.
        assert!(d.add_local(add(1, Some(20))));
        assert!(d.contains(false, ListId(0), 1, Instant::from_secs(15)));
        assert_eq!(d.outbox_dropped, 1, "outbox holds one");
        assert!(d.add_local(add(2, None)));
        assert!(!d.add_local(add(3, None)), "map full");
        assert_eq!(d.full, 1);
        assert_eq!(d.poll_expired(Instant::from_secs(25)), 1);
        assert!(d.contains(false, ListId(0), 2, Instant::from_secs(1_000_000)));
        let mut out = Vec::new();
        d.drain_outbox(&mut out);
        assert_eq!(out, vec![add(1, Some(10))]);
        let mut other = DynamicLists::new(4, 4);
        other.apply(&out);
        assert!(other.contains(false, ListId(0), 1, Instant::from_secs(1)));
        d.drain_outbox(&mut out);
        assert_eq!(out.len(), 1, "drained once");
    }
}
