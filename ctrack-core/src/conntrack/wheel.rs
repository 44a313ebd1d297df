//! The timer wheel: [`WHEEL_SLOTS`] slots of [`TICK_NS`] (~134 ms), a
//! horizon of ~18 minutes.
//!
//! A packet only updates its entry's `last_seen`; the deadline is
//! `last_seen + timeout(state, settings)`. An entry sits in one slot, an
//! intrusive doubly linked list through its [`super::entry::Cold`] part
//! (`next`, `prev`; a slot's first entry has `prev = HEAD | slot`). When its
//! slot comes due and the deadline has not passed the table moves it to the
//! right slot (lazy re-slotting), so longer timeouts and later packets cost
//! nothing per packet. The wheel knows positions, not deadlines: the table
//! (`poll_expired`) decides what expires.

use super::Instant;
use super::arena::{Arena, NIL};

/// Tick length: 2^27 ns (~134 ms).
pub const TICK_SHIFT: u32 = 27;
pub const TICK_NS: u64 = 1 << TICK_SHIFT;
pub const WHEEL_SLOTS: usize = 8192;
/// A `prev` link's mark for "head of wheel slot `prev & !HEAD`".
const HEAD: u32 = 0x8000_0000;

/// Words of the occupancy bitmap, one bit per slot.
const WORDS: usize = WHEEL_SLOTS / 64;

/// The wheel (see the module doc).
pub struct Wheel {
    slots: Vec<u32>,
    /// Bit `s` is set while slot `s` holds an entry: `poll_expired` jumps
    /// over empty slots a word (64 ticks) at a time instead of loading each
    /// head, which matters when the clock jumps far or the table is sparse.
    occupied: Vec<u64>,
    /// The first tick not yet passed by `poll_expired`.
    pub(crate) cur_tick: u64,
    started: bool,
}

impl Wheel {
    pub fn new() -> Wheel {
        Wheel {
            slots: vec![NIL; WHEEL_SLOTS],
            occupied: vec![0; WORDS],
            cur_tick: 0,
            started: false,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * 4 + self.occupied.len() * 8
    }

    /// The first tick in `from..to` whose slot holds an entry, if any.
    /// `to - from` is at most [`WHEEL_SLOTS`] (one turn).
    pub fn next_occupied(&self, from: u64, to: u64) -> Option<u64> {
        let mut t = from;
        while t < to {
            let s = (t % WHEEL_SLOTS as u64) as usize;
            // The bits of this word from slot `s` on.
            let bits = self.occupied[s / 64] >> (s % 64);
            if bits != 0 {
                let found = t + u64::from(bits.trailing_zeros());
                return (found < to).then_some(found);
            }
            t += 64 - (s % 64) as u64;
        }
        None
    }

    /// Starts the clock at the first time the table sees.
    #[inline]
    pub fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.cur_tick = now.nanos() >> TICK_SHIFT;
        }
    }

    /// The first entry of the slot of tick `t`, or [`NIL`].
    #[inline]
    pub fn head(&self, t: u64) -> u32 {
        self.slots[(t % WHEEL_SLOTS as u64) as usize]
    }

    /// Links entry `i` (not linked) into the slot of `deadline`, clamped to
    /// the wheel's horizon.
    pub fn link(&mut self, arena: &mut Arena, i: u32, deadline: u64) {
        let t = (deadline >> TICK_SHIFT)
            .max(self.cur_tick)
            .min(self.cur_tick + WHEEL_SLOTS as u64 - 1);
        let slot = (t % WHEEL_SLOTS as u64) as u32;
        let head = self.slots[slot as usize];
        {
            let c = arena.c_mut(i);
            c.next = head;
            c.prev = HEAD | slot;
        }
        if head != NIL {
            arena.c_mut(head).prev = i;
        }
        self.slots[slot as usize] = i;
        self.occupied[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// Unlinks entry `i` (a no-op if it is not linked).
    pub fn unlink(&mut self, arena: &mut Arena, i: u32) {
        let (p, n) = {
            let c = arena.c(i);
            (c.prev, c.next)
        };
        if p == NIL {
            return;
        }
        if p & HEAD != 0 {
            let slot = (p & !HEAD) as usize;
            self.slots[slot] = n;
            if n == NIL {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
        } else {
            arena.c_mut(p).next = n;
        }
        if n != NIL {
            arena.c_mut(n).prev = p;
        }
        let c = arena.c_mut(i);
        c.next = NIL;
        c.prev = NIL;
    }

    /// Walks the list of every slot marked occupied, checking its back
    /// links, and returns how many entries the wheel holds; `live` is a bound
    /// (a longer walk is a cycle) and `is_live` says whether an entry may be
    /// in the wheel. A slot holding entries without its occupancy bit shows
    /// as fewer entries in the wheel than live ones (the caller compares);
    /// only the marked slots are walked, so the check costs the entries, not
    /// the wheel's 8192 slots.
    pub fn check(
        &self,
        arena: &Arena,
        live: u32,
        is_live: impl Fn(u32) -> bool,
    ) -> Result<u32, String> {
        let mut in_wheel = 0u32;
        for (w, &word) in self.occupied.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let s = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let head = self.slots[s];
                if head == NIL {
                    return Err(format!("wheel slot {s}: marked occupied but empty"));
                }
                let mut prev = HEAD | s as u32;
                let mut i = head;
                while i != NIL {
                    let c = arena.c(i);
                    if !is_live(i) || c.prev != prev {
                        return Err(format!("wheel slot {s}: bad link at entry {i}"));
                    }
                    in_wheel += 1;
                    if in_wheel > live {
                        return Err("wheel holds more entries than the table".into());
                    }
                    prev = i;
                    i = c.next;
                }
            }
        }
        Ok(in_wheel)
    }
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_occupied_follows_links_and_wraps() {
        let mut arena = Arena::new(8);
        let mut w = Wheel::new();
        w.start(Instant::ZERO);
        assert_eq!(w.next_occupied(0, WHEEL_SLOTS as u64), None);
        let (a, b) = (arena.alloc(false).unwrap(), arena.alloc(false).unwrap());
        // Slot 70 (second word) and the last slot.
        w.link(&mut arena, a, 70 << TICK_SHIFT);
        w.link(&mut arena, b, (WHEEL_SLOTS as u64 - 1) << TICK_SHIFT);
        assert_eq!(w.next_occupied(0, WHEEL_SLOTS as u64), Some(70));
        assert_eq!(w.next_occupied(70, 71), Some(70));
        assert_eq!(w.next_occupied(0, 70), None, "the end is exclusive");
        assert_eq!(
            w.next_occupied(71, WHEEL_SLOTS as u64),
            Some(WHEEL_SLOTS as u64 - 1)
        );
        // Past the end of the wheel, ticks wrap onto slot 70 again.
        w.unlink(&mut arena, b);
        let from = WHEEL_SLOTS as u64 - 1;
        assert_eq!(
            w.next_occupied(from, from + 100),
            Some(WHEEL_SLOTS as u64 + 70)
        );
        w.unlink(&mut arena, a);
        assert_eq!(w.next_occupied(0, 2 * WHEEL_SLOTS as u64), None);
        assert_eq!(w.check(&arena, 0, |_| true), Ok(0));
    }
}
