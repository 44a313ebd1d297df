//! IP reassembly with DPDK's `rte_ip_frag`: RouterOS reassembles fragments
//! when connection tracking is on (as Linux's `nf_defrag`), so router mode
//! reassembles IPv4 and IPv6 fragments before tracking and NAT.
//!
//! One [`FragTable`] per worker (the table is not thread-safe: `Send`, not
//! `Sync`). A fragment goes in, and either the whole datagram comes out (one
//! contiguous mbuf, its IPv4 header checksum filled: DPDK leaves it to TX
//! offload), or the fragment is held, or the datagram could not be made
//! (too big for one mbuf: freed, for the caller to count). Fragments of
//! datagrams that never complete are freed by [`FragTable::expire`] after
//! the table's timeout, and when the table is full DPDK drops the oldest;
//! every mbuf DPDK gives up goes through the table's death row, which this
//! type empties after each call, so none is leaked.

use std::ptr::NonNull;

use crate::Mbuf;
use crate::eal::Live;
use crate::error::{DpdkError, Result};

/// What [`FragTable::reassemble`] did with a packet.
#[derive(Debug)]
pub enum Reassembly {
    /// The whole datagram, in one segment.
    Done(Mbuf),
    /// Held until the other fragments arrive (or the timeout).
    Held,
    /// The datagram did not fit one mbuf: every fragment is freed.
    TooBig,
    /// Not a fragment DPDK reassembles (not IPv4/IPv6, not fragmented, an
    /// IPv6 fragment header not right after the fixed header): given back.
    NotFragment(Mbuf),
}

/// A reassembly table (see the module doc).
pub struct FragTable {
    raw: NonNull<dpdk_sys::rte_ip_frag_tbl>,
    death_row: Box<dpdk_sys::rte_ip_frag_death_row>,
    _live: Live,
}

impl std::fmt::Debug for FragTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragTable").finish_non_exhaustive()
    }
}

// SAFETY: the table and its death row are used only through &mut self, by
// one thread at a time; moving them between threads is fine (DPDK keeps no
// thread affinity for them).
unsafe impl Send for FragTable {}

impl FragTable {
    /// A table of `buckets` x `entries_per_bucket` flows, at most
    /// `max_entries` datagrams in progress, each held at most
    /// `timeout_cycles` TSC cycles (see [`crate::tsc_hz`]).
    pub fn new(
        buckets: u32,
        entries_per_bucket: u32,
        max_entries: u32,
        timeout_cycles: u64,
    ) -> Result<FragTable> {
        let live = Live::enter("rte_ip_frag_table_create")?;
        // SAFETY: the EAL is running; the result is checked.
        let raw = unsafe {
            dpdk_sys::rte_ip_frag_table_create(
                buckets,
                entries_per_bucket,
                max_entries,
                timeout_cycles,
                0,
            )
        };
        let raw = NonNull::new(raw)
            .ok_or_else(|| DpdkError::from_rte_errno("rte_ip_frag_table_create"))?;
        Ok(FragTable {
            raw,
            death_row: Box::default(),
            _live: live,
        })
    }

    /// Offers `m` (an Ethernet frame whose IP header starts at `l2_len`) at
    /// time `now_cycles` (TSC).
    pub fn reassemble(&mut self, m: Mbuf, l2_len: u16, now_cycles: u64) -> Reassembly {
        let mut status = 0;
        let raw = m.into_raw();
        // SAFETY: the table and death row are ours (&mut self); DPDK takes
        // ownership of `raw` unless it gives it back (NOT_FRAGMENT), and
        // returns a packet it owned or NULL.
        let out = unsafe {
            dpdk_sys::ctrack_ip_reassemble(
                self.raw.as_ptr(),
                &mut *self.death_row,
                raw.as_ptr(),
                now_cycles,
                l2_len,
                &mut status,
            )
        };
        self.free_death_row();
        let out = NonNull::new(out);
        match (status, out) {
            (dpdk_sys::CTRACK_FRAG_DONE, Some(p)) => {
                // SAFETY: DPDK made the packet and gave it to us.
                Reassembly::Done(unsafe { Mbuf::from_raw(p) })
            }
            (dpdk_sys::CTRACK_FRAG_NOT_FRAGMENT, Some(p)) => {
                // SAFETY: the very packet we passed, given back untouched.
                Reassembly::NotFragment(unsafe { Mbuf::from_raw(p) })
            }
            (dpdk_sys::CTRACK_FRAG_TOO_BIG, _) => Reassembly::TooBig,
            _ => Reassembly::Held,
        }
    }

    /// Frees the fragments of datagrams older than the timeout.
    pub fn expire(&mut self, now_cycles: u64) {
        // SAFETY: table and death row are ours.
        unsafe {
            dpdk_sys::ctrack_ip_frag_expire(self.raw.as_ptr(), &mut *self.death_row, now_cycles)
        };
        self.free_death_row();
    }

    fn free_death_row(&mut self) {
        if self.death_row.cnt > 0 {
            // SAFETY: the death row holds mbufs DPDK gave up; freeing them
            // is what it is for.
            unsafe { dpdk_sys::rte_ip_frag_free_death_row(&mut *self.death_row, 0) };
        }
    }
}

impl Drop for FragTable {
    fn drop(&mut self) {
        self.free_death_row();
        // SAFETY: created by rte_ip_frag_table_create, destroyed once; it
        // frees the fragments it still holds.
        unsafe { dpdk_sys::rte_ip_frag_table_destroy(self.raw.as_ptr()) };
    }
}
