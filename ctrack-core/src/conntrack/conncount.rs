//! Connections per source block, over all shards: what the firewall's
//! `connection-limit=N,MASK` asks (Linux's `nf_conncount`, behind
//! `xt_connlimit`).
//!
//! A source's connections live on several shards (the symmetric RSS hash
//! spreads them by port), so one count per shard would not do. One
//! [`ConnCount`] is shared by every shard: each shard adds a connection when
//! it becomes live and takes it away when it is freed, for every (family,
//! netmask) the ruleset asks about, with atomics only (no lock) and only on
//! those two paths, never per packet. A count is exact across shards at any
//! moment a packet is evaluated (each shard's changes are its own, done
//! before it evaluates its next packet).
//!
//! The table is a fixed array of 64-bit words, allocated once: the key's
//! tag in the upper [`TAG_BITS`] bits, the count in the lower
//! [`COUNT_BITS`], so a key and its count change together in one
//! compare-and-swap. Keys are claimed in empty slots only (linear probing,
//! at most [`PROBE`] slots) and never removed, so two shards adding the same
//! new key race for the same slot and the loser finds the winner's key: no
//! key is ever in two slots. A key whose count fell to 0 keeps its slot for
//! its return; a table whose probes are all taken counts the connection in
//! [`ConnCount::full`] and leaves it uncounted (and a free finds no slot and
//! takes nothing away). Control builds a new table when the ruleset's masks
//! change, and each shard counts its live connections into it
//! ([`super::Shard::set_conncount`]).
//!
//! IPv4 tags are exact (a flag, the mask's index, the 32-bit block). IPv6
//! tags are a 39-bit hash of the mask's index and the /MASK block: two blocks
//! share a count with a probability of 2^-39 per pair.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::flow::{Addr, Family};

/// Bits of a slot's count (16 777 215 connections per block at most; the
/// count saturates there).
pub const COUNT_BITS: u32 = 24;
/// Bits of a slot's key tag.
pub const TAG_BITS: u32 = 40;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
/// Slots probed for a key.
pub const PROBE: usize = 32;
/// Most distinct (family, netmask) pairs one table counts.
pub const MAX_MASKS: usize = 127;

/// The shared per-source-block connection counts (see the module doc).
pub struct ConnCount {
    masks: Vec<(Family, u8)>,
    slots: Box<[AtomicU64]>,
    /// Connections left uncounted because no slot was free.
    full: AtomicU64,
}

impl core::fmt::Debug for ConnCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnCount")
            .field("masks", &self.masks)
            .field("slots", &self.slots.len())
            .field("full", &self.full())
            .finish()
    }
}

/// The block of `a` under a `/mask` (bits past the family's length
/// cleared), as an integer (IPv4 in the low 32 bits).
pub fn block(family: Family, a: &Addr, mask: u8) -> u128 {
    match family {
        Family::V4 => {
            let v = u128::from(u32::from_be_bytes(a.v4_octets()));
            let m = u32::from(mask.min(32));
            if m == 0 { 0 } else { v >> (32 - m) << (32 - m) }
        }
        Family::V6 => {
            let v = u128::from_be_bytes(a.0);
            let m = u32::from(mask.min(128));
            if m == 0 {
                0
            } else {
                v >> (128 - m) << (128 - m)
            }
        }
    }
}

impl ConnCount {
    /// A table counting per (family, netmask) of `masks` (at most
    /// [`MAX_MASKS`]; more are ignored), with `slots` slots (rounded up to
    /// a power of two, at least [`PROBE`]). Allocates `8 * slots` bytes.
    pub fn new(masks: &[(Family, u8)], slots: usize) -> ConnCount {
        let n = slots.max(PROBE).next_power_of_two();
        ConnCount {
            masks: masks.iter().copied().take(MAX_MASKS).collect(),
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            full: AtomicU64::new(0),
        }
    }

    /// The (family, netmask) pairs counted.
    pub fn masks(&self) -> &[(Family, u8)] {
        &self.masks
    }

    /// Connections left uncounted because no slot was free.
    pub fn full(&self) -> u64 {
        self.full.load(Relaxed)
    }

    fn tag(&self, m: usize, family: Family, b: u128) -> u64 {
        match family {
            // 1 | mask index (7 bits) | block (32 bits).
            Family::V4 => 1 << 39 | (m as u64) << 32 | b as u64,
            Family::V6 => {
                let mut h = (b as u64) ^ ((b >> 64) as u64).rotate_left(29) ^ (m as u64) << 56;
                h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
                h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
                h ^= h >> 33;
                // Non-zero, below the IPv4 flag.
                (h % ((1 << 39) - 1)) + 1
            }
        }
    }

    fn start(&self, tag: u64) -> usize {
        (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24) as usize & (self.slots.len() - 1)
    }

    /// The slot of `tag`, claiming an empty one if `claim`.
    fn slot(&self, tag: u64, claim: bool) -> Option<&AtomicU64> {
        let s = self.start(tag);
        for k in 0..PROBE {
            let slot = &self.slots[(s + k) & (self.slots.len() - 1)];
            let mut w = slot.load(Relaxed);
            if w == 0 {
                if !claim {
                    return None;
                }
                // Claim it with a count of 0; the loser of a race for it
                // re-reads the winner's key.
                match slot.compare_exchange(0, tag << COUNT_BITS, Relaxed, Relaxed) {
                    Ok(_) => return Some(slot),
                    Err(now) => w = now,
                }
            }
            if w >> COUNT_BITS == tag {
                return Some(slot);
            }
        }
        None
    }

    /// Counts a new connection from `src` (under every mask of its family).
    pub fn add(&self, family: Family, src: &Addr) {
        for (m, &(f, mask)) in self.masks.iter().enumerate() {
            if f != family {
                continue;
            }
            let tag = self.tag(m, family, block(family, src, mask));
            match self.slot(tag, true) {
                Some(slot) => {
                    // Saturates: a block at the maximum stays there.
                    let _ = slot.fetch_update(Relaxed, Relaxed, |w| {
                        (w & COUNT_MAX < COUNT_MAX).then_some(w + 1)
                    });
                }
                None => {
                    self.full.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Takes away a freed connection from `src`.
    pub fn remove(&self, family: Family, src: &Addr) {
        for (m, &(f, mask)) in self.masks.iter().enumerate() {
            if f != family {
                continue;
            }
            let tag = self.tag(m, family, block(family, src, mask));
            if let Some(slot) = self.slot(tag, false) {
                let _ =
                    slot.fetch_update(Relaxed, Relaxed, |w| (w & COUNT_MAX > 0).then_some(w - 1));
            }
        }
    }

    /// Live connections from `src`'s `/mask` block (0 for a mask the table
    /// does not count).
    pub fn count(&self, family: Family, src: &Addr, mask: u8) -> u32 {
        let Some(m) = self
            .masks
            .iter()
            .position(|&(f, k)| f == family && k == mask)
        else {
            return 0;
        };
        let tag = self.tag(m, family, block(family, src, mask));
        self.slot(tag, false)
            .map_or(0, |s| (s.load(Relaxed) & COUNT_MAX) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    #[test]
    fn counts_per_block_and_mask() {
        let c = ConnCount::new(&[(Family::V4, 24), (Family::V4, 32)], 64);
        for _ in 0..3 {
            c.add(Family::V4, &v4([10, 0, 0, 1]));
        }
        c.add(Family::V4, &v4([10, 0, 0, 2]));
        c.add(Family::V4, &v4([10, 0, 1, 1]));
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 200]), 24), 4);
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 1]), 32), 3);
        assert_eq!(c.count(Family::V4, &v4([10, 0, 1, 9]), 24), 1);
        // A mask nobody counts.
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 1]), 16), 0);
        c.remove(Family::V4, &v4([10, 0, 0, 1]));
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 1]), 32), 2);
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 1]), 24), 3);
        // An unknown source takes nothing; a count never goes below 0.
        c.remove(Family::V4, &v4([10, 0, 0, 2]));
        for _ in 0..5 {
            c.remove(Family::V4, &v4([192, 0, 2, 1]));
        }
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 2]), 32), 0);
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 1]), 24), 2);
        c.remove(Family::V4, &v4([10, 0, 0, 2]));
        assert_eq!(c.count(Family::V4, &v4([10, 0, 0, 2]), 32), 0);
    }

    #[test]
    fn ipv6_blocks() {
        let c = ConnCount::new(&[(Family::V6, 64), (Family::V4, 24)], 64);
        let a = Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        let b = Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 9]);
        let other = Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        c.add(Family::V6, &a);
        c.add(Family::V6, &b);
        assert_eq!(c.count(Family::V6, &a, 64), 2);
        assert_eq!(c.count(Family::V6, &other, 64), 0);
        assert_eq!(c.count(Family::V4, &v4([0, 0, 0, 0]), 24), 0);
    }

    #[test]
    fn a_full_table_counts_what_it_leaves_out() {
        let c = ConnCount::new(&[(Family::V4, 32)], PROBE);
        for i in 0..=PROBE as u8 {
            c.add(Family::V4, &v4([10, 0, 0, i]));
        }
        assert_eq!(c.full(), 1);
        let counted: u32 = (0..=PROBE as u8)
            .map(|i| c.count(Family::V4, &v4([10, 0, 0, i]), 32))
            .sum();
        assert_eq!(counted, PROBE as u32);
    }

    #[test]
    fn threads_adding_and_removing_the_same_keys_agree() {
        let c = std::sync::Arc::new(ConnCount::new(&[(Family::V4, 24)], 1024));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let a = v4([10, (i % 7) as u8, 0, t]);
                        c.add(Family::V4, &a);
                        if i % 2 == 1 {
                            c.remove(Family::V4, &a);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total: u32 = (0..7)
            .map(|b| c.count(Family::V4, &v4([10, b, 0, 0]), 24))
            .sum();
        assert_eq!(total, 4 * 500);
    }
}
