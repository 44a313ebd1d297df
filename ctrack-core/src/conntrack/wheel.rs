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

/// The wheel (see the module doc).
pub struct Wheel {
    slots: Vec<u32>,
    /// The first tick not yet passed by `poll_expired`.
    pub(crate) cur_tick: u64,
    started: bool,
}

impl Wheel {
    pub fn new() -> Wheel {
        Wheel {
            slots: vec![NIL; WHEEL_SLOTS],
            cur_tick: 0,
            started: false,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * 4
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
            self.slots[(p & !HEAD) as usize] = n;
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

    /// Walks every slot's list, checking its back links, and returns how
    /// many entries the wheel holds; `live` is a bound (a longer walk is a
    /// cycle) and `is_live` says whether an entry may be in the wheel.
    pub fn check(
        &self,
        arena: &Arena,
        live: u32,
        is_live: impl Fn(u32) -> bool,
    ) -> Result<u32, String> {
        let mut in_wheel = 0u32;
        for (s, &head) in self.slots.iter().enumerate() {
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
        Ok(in_wheel)
    }
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new()
    }
}
