//! The entry arena: where connections live, by index.
//!
//! Entries live in chunks of [`CHUNK`] allocated on demand up to the
//! table's ceiling (the last chunk holds only what is left up to it, so a
//! full table costs exactly its entries); live entries never move; freed
//! slots are reused through a free list (threaded through [`Cold::next`]),
//! with a generation so stale [`super::ConnId`]s miss. Three parallel arenas
//! share the positions: the hot [`Entry`]s, their [`Cold`] parts, and the
//! fasttrack counters ([`FtSlot`]), of which a chunk only has an array once
//! a connection in it was fast-tracked (or FastTrack was turned on).

use super::entry::{Cold, Entry, FtSlot};
use super::key::Key;
use crate::hugemem::HugeSlice;

/// Entries per arena chunk: 2 MiB of entries, one huge page.
pub const CHUNK: usize = 16384;
const CHUNK_SHIFT: u32 = 14;
const _: () = assert!(CHUNK == 1 << CHUNK_SHIFT);
const _: () = assert!(CHUNK * core::mem::size_of::<Entry>() == crate::hugemem::HUGE);

/// End of a list (free list, timer wheel slot).
pub const NIL: u32 = u32::MAX;

/// One arena chunk's fasttrack counters: `len` of them, the chunk's length
/// (a small table's only chunk is shorter than [`CHUNK`]).
pub fn new_ft_chunk(len: usize) -> Box<[FtSlot]> {
    vec![FtSlot::default(); len].into_boxed_slice()
}

/// The arena (see the module doc).
pub struct Arena {
    max_entries: u32,
    /// The entry chunks live on huge pages (see [`crate::hugemem`]).
    chunks: Vec<HugeSlice<Entry>>,
    /// The entries' cold parts, chunk for chunk.
    colds: Vec<HugeSlice<Cold>>,
    /// Fasttrack counters, per arena chunk.
    ft: Vec<Option<Box<[FtSlot]>>>,
    /// Stored reply keys of NAT connections, per arena chunk: allocated when
    /// the chunk's first such connection is created.
    nat: Vec<Option<Box<[Key]>>>,
    /// Layer7 results (the firewall's `L7State` bits), per arena chunk:
    /// allocated when the chunk's first connection matched a layer7
    /// protocol, so that a table without layer7 rules pays nothing.
    l7: Vec<Option<Box<[u64]>>>,
    /// Whether any chunk has layer7 bits (a free clears them only then).
    l7_used: bool,
    free_head: u32,
    high_water: u32,
}

impl Arena {
    /// An empty arena for at most `max_entries` entries (allocates nothing).
    pub fn new(max_entries: u32) -> Arena {
        Arena {
            max_entries,
            chunks: Vec::new(),
            colds: Vec::new(),
            ft: Vec::new(),
            nat: Vec::new(),
            l7: Vec::new(),
            l7_used: false,
            free_head: NIL,
            high_water: 0,
        }
    }

    /// Entry `i`'s chunk and its position in it (in every parallel arena).
    #[inline]
    pub fn at(i: u32) -> (usize, usize) {
        ((i >> CHUNK_SHIFT) as usize, i as usize & (CHUNK - 1))
    }

    /// Positions ever handed out: every live entry is below it.
    #[inline]
    pub fn high_water(&self) -> u32 {
        self.high_water
    }

    #[inline]
    pub fn e(&self, i: u32) -> &Entry {
        let (c, o) = Self::at(i);
        &self.chunks[c][o]
    }

    #[inline]
    pub fn e_mut(&mut self, i: u32) -> &mut Entry {
        let (c, o) = Self::at(i);
        &mut self.chunks[c][o]
    }

    #[inline]
    pub fn c(&self, i: u32) -> &Cold {
        let (c, o) = Self::at(i);
        &self.colds[c][o]
    }

    #[inline]
    pub fn c_mut(&mut self, i: u32) -> &mut Cold {
        let (c, o) = Self::at(i);
        &mut self.colds[c][o]
    }

    /// Entry `i` and its cold part, both mutable.
    #[inline]
    pub fn both_mut(&mut self, i: u32) -> (&mut Entry, &mut Cold) {
        let (c, o) = Self::at(i);
        (&mut self.chunks[c][o], &mut self.colds[c][o])
    }

    /// Entry `i`'s fasttrack counters, if its chunk has them.
    pub fn ft_slot(&self, i: u32) -> Option<&FtSlot> {
        let (c, o) = Self::at(i);
        self.ft.get(c)?.as_ref().map(|ft| &ft[o])
    }

    pub fn ft_slot_mut(&mut self, i: u32) -> Option<&mut FtSlot> {
        let (c, o) = Self::at(i);
        self.ft.get_mut(c)?.as_mut().map(|ft| &mut ft[o])
    }

    /// Gives entry `i`'s chunk its fasttrack counters if it has none
    /// (allocates: never on the packet path).
    pub fn ft_alloc(&mut self, i: u32) {
        let c = Self::at(i).0;
        if let (Some(slot), Some(chunk)) = (self.ft.get_mut(c), self.chunks.get(c)) {
            slot.get_or_insert_with(|| new_ft_chunk(chunk.len()));
        }
    }

    /// Gives every chunk its fasttrack counters.
    pub fn ft_alloc_all(&mut self) {
        for (slot, chunk) in self.ft.iter_mut().zip(&self.chunks) {
            slot.get_or_insert_with(|| new_ft_chunk(chunk.len()));
        }
    }

    /// Entry `i`'s stored reply key, by reference (`None`: none stored).
    #[inline]
    pub fn nat_reply_ref(&self, i: u32) -> Option<&Key> {
        let (c, o) = Self::at(i);
        match self.nat.get(c) {
            Some(Some(keys)) => keys.get(o),
            _ => None,
        }
    }

    /// Entry `i`'s stored reply key (meaningful only while its entry has
    /// `NAT_REPLY`; the default key if its chunk has none).
    #[inline]
    pub fn nat_reply(&self, i: u32) -> Key {
        let (c, o) = Self::at(i);
        match self.nat.get(c) {
            Some(Some(keys)) => keys[o],
            _ => Key::default(),
        }
    }

    /// Prefetches entry `i`'s stored reply key (before a rewrite reads it).
    #[inline]
    pub fn prefetch_nat_reply(&self, i: u32) {
        let (c, o) = Self::at(i);
        if let Some(Some(keys)) = self.nat.get(c)
            && let Some(k) = keys.get(o)
        {
            crate::prefetch::prefetch(k);
        }
    }

    /// Stores entry `i`'s reply key, allocating its chunk's array on first
    /// use (once per chunk, like the chunk itself).
    pub fn set_nat_reply(&mut self, i: u32, k: Key) {
        let (c, o) = Self::at(i);
        if let Some(slot) = self.nat.get_mut(c) {
            slot.get_or_insert_with(|| vec![Key::default(); CHUNK].into_boxed_slice())[o] = k;
        }
    }

    /// Entry `i`'s layer7 bits (0 if its chunk has none).
    #[inline]
    pub fn l7(&self, i: u32) -> u64 {
        let (c, o) = Self::at(i);
        match self.l7.get(c) {
            Some(Some(bits)) => bits[o],
            _ => 0,
        }
    }

    /// Stores entry `i`'s layer7 bits, allocating its chunk's array on the
    /// first non-zero value (once per chunk, like the chunk itself).
    pub fn set_l7(&mut self, i: u32, bits: u64) {
        let (c, o) = Self::at(i);
        if let Some(slot) = self.l7.get_mut(c) {
            match slot {
                Some(a) => a[o] = bits,
                None if bits != 0 => {
                    self.l7_used = true;
                    slot.get_or_insert_with(|| vec![0; CHUNK].into_boxed_slice())[o] = bits
                }
                None => {}
            }
        }
    }

    /// Puts entry `i` (no longer in the index or the wheel) on the free list.
    #[inline]
    pub fn push_free(&mut self, i: u32) {
        if self.l7_used {
            self.set_l7(i, 0);
        }
        let free_head = self.free_head;
        let c = self.c_mut(i);
        c.next = free_head;
        c.prev = NIL;
        self.free_head = i;
    }

    /// A free position: a freed one, else the next one (a new chunk when the
    /// last is full, with fasttrack counters if `with_ft`); `None` at the
    /// ceiling.
    pub fn alloc(&mut self, with_ft: bool) -> Option<u32> {
        if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.c(i).next;
            return Some(i);
        }
        if self.high_water >= self.max_entries {
            return None;
        }
        if self.high_water as usize >= self.chunks.len() * CHUNK {
            // The last chunk holds only what is left up to the ceiling, so a
            // full table costs exactly its entries.
            let len = CHUNK.min((self.max_entries - self.high_water) as usize);
            self.chunks.push(HugeSlice::new(len, Entry::EMPTY));
            self.colds.push(HugeSlice::new(len, Cold::EMPTY));
            self.ft.push(with_ft.then(|| new_ft_chunk(len)));
            self.nat.push(None);
            self.l7.push(None);
        }
        let i = self.high_water;
        self.high_water += 1;
        Some(i)
    }

    /// Bytes held: entry and cold chunks, fasttrack chunks, and the chunk
    /// lists.
    /// The bytes of the hot entries and of the cold records (the part of
    /// [`Arena::memory_bytes`] that every connection slot costs).
    pub fn entry_bytes(&self) -> (usize, usize) {
        let slots = self.chunks.iter().map(|c| c.len()).sum::<usize>();
        (
            slots * core::mem::size_of::<Entry>(),
            slots * core::mem::size_of::<Cold>(),
        )
    }

    pub fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum::<usize>()
            * (core::mem::size_of::<Entry>() + core::mem::size_of::<Cold>())
            + self.ft.iter().flatten().map(|f| f.len()).sum::<usize>()
                * core::mem::size_of::<FtSlot>()
            + self.ft.len() * core::mem::size_of::<Option<Box<[FtSlot]>>>()
            + self.nat.iter().flatten().count() * CHUNK * core::mem::size_of::<Key>()
            + self.nat.len() * core::mem::size_of::<Option<Box<[Key]>>>()
            + self.l7.iter().flatten().count() * CHUNK * core::mem::size_of::<u64>()
            + self.l7.len() * core::mem::size_of::<Option<Box<[u64]>>>()
            + self.chunks.len() * core::mem::size_of::<HugeSlice<Entry>>()
            + self.colds.len() * core::mem::size_of::<HugeSlice<Cold>>()
    }
}
