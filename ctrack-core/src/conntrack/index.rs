//! The connection index: a bucketized cuckoo hash (as DPDK's `rte_hash`).
//!
//! 64-byte buckets of [`WAYS`] slots (a 16-bit hash signature and a `u32`
//! value each), sized once for a number of keys at <= 90% load, never
//! rehashed. A key lives in its primary or its secondary bucket; an insert
//! that finds both full moves other keys to their alternatives along a path
//! found by a bounded breadth-first search ([`MAX_PATH_NODES`] buckets). Each
//! bucket counts the keys of which it is the primary that live in their
//! secondary, so a lookup (also a miss) reads one cache line unless that
//! count is non-zero.
//!
//! The index stores no keys. A value is opaque to it (the table stores
//! `entry << 1 | slot kind`, see `table.rs`); whoever calls it says how a
//! value's key compares to the one looked up (`find`'s `matches`) and what a
//! value's key hashes to (`insert`'s `hash_of`, needed to move a key to its
//! alternative bucket). That keeps it testable on its own (the tests below use
//! a plain array of hashes).

use crate::hugemem::HugeSlice;
use crate::prefetch::prefetch;

/// Slots per bucket.
pub const WAYS: usize = 10;
/// Buckets the insert's breadth-first search for room may visit.
pub const MAX_PATH_NODES: usize = 64;
/// Load target (keys / slots).
pub const LOAD_NUM: u64 = 9;
pub const LOAD_DEN: u64 = 10;

/// A free slot's value.
pub const EMPTY: u32 = u32::MAX;

/// One bucket: a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Bucket {
    sig: [u16; WAYS],
    /// A value, or [`EMPTY`].
    idx: [u32; WAYS],
    /// Keys whose primary bucket is this one that sit in their secondary.
    overflow: u16,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sig: [0; WAYS],
        idx: [EMPTY; WAYS],
        overflow: 0,
    };

    /// The occupied slots' values whose signature is `sig`, in way order. The
    /// ten signatures are compared at once (a fixed-size compare the compiler
    /// turns into SIMD) instead of with a branch per way.
    #[inline]
    pub fn candidates(&self, sig: u16) -> impl Iterator<Item = u32> + '_ {
        let mut m = 0u32;
        for w in 0..WAYS {
            m |= u32::from(self.sig[w] == sig) << w;
        }
        core::iter::from_fn(move || {
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                m &= m - 1;
                if self.idx[w] != EMPTY {
                    return Some(self.idx[w]);
                }
            }
            None
        })
    }

    /// Whether some key of which this is the primary bucket lives in its
    /// secondary (a lookup that misses here must read that one too).
    #[inline]
    pub fn overflowed(&self) -> bool {
        self.overflow != 0
    }

    /// Way `w`'s value ([`EMPTY`] if free).
    #[inline]
    pub fn value(&self, w: usize) -> u32 {
        self.idx[w]
    }

    /// The occupied slots' values, in way order.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.idx.iter().copied().filter(|&v| v != EMPTY)
    }
}

/// A key's signature: the low 16 bits of its hash.
#[inline]
pub fn sig_of(h: u64) -> u16 {
    h as u16
}

/// The cuckoo index (see the module doc).
pub struct Index {
    /// On huge pages (see [`crate::hugemem`]).
    buckets: HugeSlice<Bucket>,
}

impl Index {
    /// An index with room for `keys` keys at <= 90% load (at least two
    /// buckets).
    pub fn new(keys: u64) -> Index {
        let nb = Self::buckets_for(keys);
        Index {
            buckets: HugeSlice::new(nb, Bucket::EMPTY),
        }
    }

    /// Buckets an index for `keys` keys has.
    pub fn buckets_for(keys: u64) -> usize {
        (keys * LOAD_DEN).div_ceil(WAYS as u64 * LOAD_NUM).max(2) as usize
    }

    /// Bytes one key costs at the load target (6.4-byte slots at 90%: 7.1
    /// bytes, rounded up).
    pub const fn bytes_per_key() -> u64 {
        (64 * LOAD_DEN).div_ceil(WAYS as u64 * LOAD_NUM)
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * core::mem::size_of::<Bucket>()
    }

    #[inline]
    pub fn bucket(&self, b: usize) -> &Bucket {
        &self.buckets[b]
    }

    /// Prefetches bucket `b`.
    #[inline]
    pub fn prefetch(&self, b: usize) {
        prefetch(&self.buckets[b]);
    }

    /// The key's primary bucket (see [`Index::buckets_of`]).
    #[inline]
    pub fn primary_of(&self, h: u64) -> usize {
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    /// The key's two candidate buckets: primary and secondary (never equal).
    #[inline]
    pub fn buckets_of(&self, h: u64) -> (usize, usize) {
        let nb = self.buckets.len() as u128;
        let b1 = self.primary_of(h);
        let h2 = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let mut b2 = ((u128::from(h2) * nb) >> 64) as usize;
        if b2 == b1 {
            b2 = if b1 + 1 == self.buckets.len() {
                0
            } else {
                b1 + 1
            };
        }
        (b1, b2)
    }

    /// The first value in bucket `b` with `h`'s signature for which
    /// `matches` holds, with what `matches` returned.
    #[inline(always)]
    fn scan<T>(&self, b: usize, h: u64, matches: &mut impl FnMut(u32) -> Option<T>) -> Option<T> {
        for v in self.buckets[b].candidates(sig_of(h)) {
            if let Some(t) = matches(v) {
                return Some(t);
            }
        }
        None
    }

    /// Finds a key hashing to `h` whose primary bucket is `b1`: the first
    /// value with its signature for which `matches` returns something, in
    /// the primary bucket, then in the secondary only if some key of this
    /// primary lives there.
    #[inline(always)]
    pub fn find<T>(
        &self,
        h: u64,
        b1: usize,
        mut matches: impl FnMut(u32) -> Option<T>,
    ) -> Option<T> {
        if let Some(hit) = self.scan(b1, h, &mut matches) {
            return Some(hit);
        }
        if !self.buckets[b1].overflowed() {
            return None;
        }
        self.scan(self.buckets_of(h).1, h, &mut matches)
    }

    fn free_way(&self, b: usize) -> Option<usize> {
        self.buckets[b].idx.iter().position(|&x| x == EMPTY)
    }

    /// Places `v`, of a key hashing to `h`, in bucket `b`, way `w`.
    fn place(&mut self, b: usize, w: usize, h: u64, v: u32) {
        let (b1, _) = self.buckets_of(h);
        self.buckets[b].idx[w] = v;
        self.buckets[b].sig[w] = sig_of(h);
        if b != b1 {
            self.buckets[b1].overflow = self.buckets[b1].overflow.saturating_add(1);
        }
    }

    /// Clears bucket `b`, way `w`, holding a key hashing to `h`.
    fn clear(&mut self, b: usize, w: usize, h: u64) {
        let (b1, _) = self.buckets_of(h);
        self.buckets[b].idx[w] = EMPTY;
        if b != b1 {
            self.buckets[b1].overflow = self.buckets[b1].overflow.saturating_sub(1);
        }
    }

    /// Inserts value `v` (not [`EMPTY`]) of a key hashing to `h`: its
    /// primary bucket, else its secondary, else moves other keys to their
    /// alternative buckets along the shortest path a bounded breadth-first
    /// search finds ([`MAX_PATH_NODES`] buckets), as DPDK's `rte_hash` does.
    /// `hash_of` gives the hash of the key any stored value stands for.
    /// Returns false (and changes nothing) when no room was found.
    pub fn insert(&mut self, h: u64, v: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        debug_assert_ne!(v, EMPTY);
        let (b1, b2) = self.buckets_of(h);
        for b in [b1, b2] {
            if let Some(w) = self.free_way(b) {
                self.place(b, w, h, v);
                return true;
            }
        }
        // (bucket, parent node, way in the parent whose key moves here)
        let mut nodes = [(0usize, usize::MAX, 0usize); MAX_PATH_NODES];
        nodes[0] = (b1, usize::MAX, 0);
        nodes[1] = (b2, usize::MAX, 0);
        let mut len = 2;
        let mut at = 0;
        while at < len {
            let b = nodes[at].0;
            for w in 0..WAYS {
                let vh = hash_of(self.buckets[b].idx[w]);
                let (p1, p2) = self.buckets_of(vh);
                let alt = if b == p1 { p2 } else { p1 };
                if let Some(fw) = self.free_way(alt) {
                    // Found room: shift keys down the path, leaf first.
                    self.move_key(b, w, alt, fw, &hash_of);
                    let (mut node, mut freed) = (at, w);
                    while nodes[node].1 != usize::MAX {
                        let (nb, parent, pw) = nodes[node];
                        self.move_key(nodes[parent].0, pw, nb, freed, &hash_of);
                        node = parent;
                        freed = pw;
                    }
                    self.place(nodes[node].0, freed, h, v);
                    return true;
                }
                if len < MAX_PATH_NODES && !nodes[..len].iter().any(|n| n.0 == alt) {
                    nodes[len] = (alt, at, w);
                    len += 1;
                }
            }
            at += 1;
        }
        false
    }

    fn move_key(
        &mut self,
        from: usize,
        fw: usize,
        to: usize,
        tw: usize,
        hash_of: &impl Fn(u32) -> u64,
    ) {
        let v = self.buckets[from].idx[fw];
        let h = hash_of(v);
        self.clear(from, fw, h);
        self.place(to, tw, h, v);
    }

    /// Removes value `v` of a key hashing to `h`; false if it is not there.
    pub fn remove(&mut self, h: u64, v: u32) -> bool {
        let (b1, b2) = self.buckets_of(h);
        for b in [b1, b2] {
            if let Some(w) = self.buckets[b].idx.iter().position(|&x| x == v) {
                self.clear(b, w, h);
                return true;
            }
        }
        false
    }

    /// Every stored value (O(buckets); for invariant checks).
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| b.values())
    }

    /// Checks the overflow counts against where each value sits (O(buckets);
    /// for tests and fuzzing). `hash_of` as for [`Index::insert`].
    pub fn check(&self, hash_of: impl Fn(u32) -> u64) -> Result<(), String> {
        let mut overflow = vec![0u32; self.buckets.len()];
        for (b, bucket) in self.buckets.iter().enumerate() {
            for w in 0..WAYS {
                let v = bucket.idx[w];
                if v == EMPTY {
                    continue;
                }
                let h = hash_of(v);
                let (b1, b2) = self.buckets_of(h);
                if bucket.sig[w] != sig_of(h) {
                    return Err(format!("bucket {b} way {w}: signature of another key"));
                }
                if b == b2 {
                    overflow[b1] += 1;
                } else if b != b1 {
                    return Err(format!("bucket {b} way {w}: in neither of its buckets"));
                }
            }
        }
        for (b, &n) in overflow.iter().enumerate() {
            if u32::from(self.buckets[b].overflow) != n.min(u32::from(u16::MAX)) {
                return Err(format!(
                    "bucket {b}: overflow count {} but {n} keys overflowed",
                    self.buckets[b].overflow
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes of value `v`: a fixed pseudo-random function of it.
    fn h(v: u32) -> u64 {
        let mut z = u64::from(v).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^ (z >> 31)
    }

    fn find(ix: &Index, v: u32) -> Option<u32> {
        let hv = h(v);
        ix.find(hv, ix.primary_of(hv), |x| (x == v).then_some(x))
    }

    #[test]
    fn fills_to_its_load_target_and_finds_every_key() {
        let n = 10_000u32;
        let mut ix = Index::new(u64::from(n));
        for v in 0..n {
            assert!(ix.insert(h(v), v, h), "insert {v} failed");
        }
        ix.check(h).unwrap();
        assert_eq!(ix.values().count(), n as usize);
        for v in 0..n {
            assert_eq!(find(&ix, v), Some(v));
        }
        assert_eq!(find(&ix, n + 1), None);
    }

    #[test]
    fn remove_takes_out_only_that_value_and_keeps_counts_right() {
        let n = 5_000u32;
        let mut ix = Index::new(u64::from(n));
        for v in 0..n {
            assert!(ix.insert(h(v), v, h));
        }
        for v in (0..n).step_by(2) {
            assert!(ix.remove(h(v), v));
            assert!(!ix.remove(h(v), v), "removed {v} twice");
        }
        ix.check(h).unwrap();
        for v in 0..n {
            assert_eq!(find(&ix, v).is_some(), v % 2 == 1, "value {v}");
        }
        // Room again for as many.
        for v in n..n + n / 2 {
            assert!(ix.insert(h(v), v, h));
        }
        ix.check(h).unwrap();
    }

    #[test]
    fn a_full_index_refuses_and_changes_nothing() {
        // Two buckets, 20 slots: the 21st key cannot fit.
        let mut ix = Index::new(1);
        assert_eq!(ix.bucket_count(), 2);
        for v in 0..20 {
            assert!(ix.insert(h(v), v, h));
        }
        assert!(!ix.insert(h(20), 20, h));
        ix.check(h).unwrap();
        assert_eq!(ix.values().count(), 20);
        assert_eq!(find(&ix, 20), None);
    }

    #[test]
    fn keys_past_a_full_primary_overflow_to_their_secondary_and_are_found() {
        let mut ix = Index::new(1);
        // Fifteen keys whose primary is bucket 0: five must live in bucket 1.
        let keys: Vec<u32> = (0..)
            .filter(|&v| ix.primary_of(h(v)) == 0)
            .take(15)
            .collect();
        for &v in &keys {
            assert!(ix.insert(h(v), v, h));
        }
        ix.check(h).unwrap();
        assert!(ix.bucket(0).overflowed());
        assert!(!ix.bucket(1).overflowed());
        for &v in &keys {
            assert_eq!(find(&ix, v), Some(v));
        }
        // Removing the overflowed keys clears the count.
        for &v in &keys[10..] {
            assert!(ix.remove(h(v), v));
        }
        ix.check(h).unwrap();
        assert!(!ix.bucket(0).overflowed());
    }
}
