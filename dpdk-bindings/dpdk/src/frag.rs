//! IP reassembly with DPDK's `rte_ip_frag`: RouterOS reassembles fragments
//! when connection tracking is on (as Linux's `nf_defrag`), so router mode
//! reassembles IPv4 and IPv6 fragments before tracking and NAT.
//!
//! One [`FragTable`] per worker (the table is not thread-safe: `Send`, not
//! `Sync`). A fragment goes in, and either the whole datagram comes out (one
//! contiguous mbuf, its IPv4 header checksum filled: DPDK leaves it to TX
//! offload), or the fragment is held, or the datagram could not be made
//! (too big for one mbuf, no room in the table, a bad set of fragments:
//! freed, and counted in [`FragCounts`]). Fragments of datagrams that never
//! complete are freed by [`FragTable::expire`] after the table's timeout
//! (or reclaimed by a later datagram of the same bucket); every mbuf DPDK
//! gives up goes through the table's death row, which this type empties
//! after each call, so none is leaked.
//!
//! With a pool for whole datagrams ([`FragTable::with_pool`]) a datagram of
//! several fragments is copied into one mbuf of that pool (data room up to
//! 64 KiB, where the packet pool's 2 KiB buffers could not hold it), and
//! the size of its largest fragment is kept in the mbuf
//! ([`FragTable::frag_size`]): what Linux keeps as `frag_max_size`, the
//! size it fragments the datagram to again on the way out.
//!
//! Time is whatever unit the caller passes, consistently: the timeout
//! given to [`FragTable::new`] and every `now` (ctrack passes nanoseconds).

use std::ptr::NonNull;

use std::sync::Arc;

use crate::eal::Live;
use crate::error::{DpdkError, Result};
use crate::{Mbuf, Mempool};

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
    /// The table had no room for another datagram: the fragment is freed.
    NoSpace,
    /// A bad fragment (empty or truncated, beyond DPDK's limit of
    /// fragments per datagram, or a set that does not add up: overlaps,
    /// duplicates): the datagram's fragments are freed.
    Bad,
    /// The pool for whole datagrams was empty: every fragment is freed.
    NoMbuf,
}

/// What a [`FragTable`] did, in fragments (mbufs) or datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounts {
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Fragments taken (held until their datagram is whole).
    pub fragments: u64,
    /// Fragments freed because their datagram timed out.
    pub timeout: u64,
    /// Fragments freed because the table had no room.
    pub no_space: u64,
    /// Datagrams dropped: too big for one mbuf.
    pub too_big: u64,
    /// Datagrams dropped: a bad fragment (see [`Reassembly::Bad`]).
    pub bad: u64,
    /// Datagrams dropped: no mbuf free in the pool for whole datagrams.
    pub no_mbuf: u64,
}

/// A reassembly table (see the module doc).
pub struct FragTable {
    raw: NonNull<dpdk_sys::rte_ip_frag_tbl>,
    death_row: Box<dpdk_sys::rte_ip_frag_death_row>,
    /// The pool whole datagrams are copied into, and the offset of the
    /// mbuf field that holds their largest fragment's size.
    pool: Option<(Arc<Mempool>, usize)>,
    counts: FragCounts,
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
            pool: None,
            counts: FragCounts::default(),
            _live: live,
        })
    }

    /// Copies each datagram of several fragments into one mbuf of `pool`
    /// (its data room is the largest datagram reassembled) and keeps its
    /// largest fragment's size there ([`FragTable::frag_size`]).
    pub fn with_pool(mut self, pool: Arc<Mempool>) -> Result<FragTable> {
        // SAFETY: plain registration call (idempotent); the result is checked.
        let off = unsafe { dpdk_sys::ctrack_frag_field() };
        let off = usize::try_from(off)
            .map_err(|_| DpdkError::from_rte_errno("rte_mbuf_dynfield_register"))?;
        self.pool = Some((pool, off));
        Ok(self)
    }

    /// The size (IP header included) of the largest fragment `m` was
    /// reassembled from, if `m` is a datagram this table's pool holds
    /// (see [`FragTable::with_pool`]); 0 otherwise.
    #[inline]
    pub fn frag_size(&self, m: &Mbuf) -> u16 {
        let Some((pool, off)) = &self.pool else {
            return 0;
        };
        let raw = m.as_raw();
        // SAFETY: `m` is a valid mbuf we can read; its pool pointer is a
        // plain field.
        if unsafe { (*raw).pool } != pool.as_ptr() {
            return 0;
        }
        // An mbuf of our pool is only made by `reassemble`, which wrote the
        // registered dynamic field before handing it out.
        // SAFETY: that field is 2 bytes at `off` inside the mbuf structure,
        // aligned by the registration, and written (above).
        unsafe { raw.cast::<u8>().add(*off).cast::<u16>().read() }
    }

    /// What the table did so far.
    pub fn counts(&self) -> FragCounts {
        self.counts
    }

    /// Offers `m` (an Ethernet frame whose IP header starts at `l2_len`) at
    /// time `now`.
    pub fn reassemble(&mut self, m: Mbuf, l2_len: u16, now: u64) -> Reassembly {
        let mut status = 0;
        let mut frag_max = 0u16;
        let mut expired = 0u32;
        let raw = m.into_raw();
        let big = self
            .pool
            .as_ref()
            .map_or(std::ptr::null_mut(), |(p, _)| p.as_ptr());
        // SAFETY: the table and death row are ours (&mut self); DPDK takes
        // ownership of `raw` unless it gives it back (NOT_FRAGMENT), and
        // returns a packet it owned or NULL; `big` is a live pool or NULL.
        let out = unsafe {
            dpdk_sys::ctrack_ip_reassemble(
                self.raw.as_ptr(),
                &mut *self.death_row,
                raw.as_ptr(),
                now,
                l2_len,
                big,
                &mut status,
                &mut frag_max,
                &mut expired,
            )
        };
        self.free_death_row();
        let c = &mut self.counts;
        c.timeout += u64::from(expired);
        let out = NonNull::new(out);
        match (status, out) {
            (dpdk_sys::CTRACK_FRAG_DONE, Some(p)) => {
                c.fragments += 1;
                c.reassembled += 1;
                // SAFETY: DPDK made the packet and gave it to us.
                Reassembly::Done(unsafe { Mbuf::from_raw(p) })
            }
            (dpdk_sys::CTRACK_FRAG_NOT_FRAGMENT, Some(p)) => {
                // SAFETY: the very packet we passed, given back untouched.
                Reassembly::NotFragment(unsafe { Mbuf::from_raw(p) })
            }
            (dpdk_sys::CTRACK_FRAG_TOO_BIG, _) => {
                c.fragments += 1;
                c.too_big += 1;
                Reassembly::TooBig
            }
            (dpdk_sys::CTRACK_FRAG_NO_SPACE, _) => {
                c.fragments += 1;
                c.no_space += 1;
                Reassembly::NoSpace
            }
            (dpdk_sys::CTRACK_FRAG_BAD, _) => {
                c.fragments += 1;
                c.bad += 1;
                Reassembly::Bad
            }
            (dpdk_sys::CTRACK_FRAG_NO_MBUF, _) => {
                c.fragments += 1;
                c.no_mbuf += 1;
                Reassembly::NoMbuf
            }
            _ => {
                c.fragments += 1;
                Reassembly::Held
            }
        }
    }

    /// Frees the fragments of datagrams older than the timeout; returns
    /// how many fragments (counted in [`FragCounts::timeout`]).
    pub fn expire(&mut self, now: u64) -> u32 {
        // SAFETY: table and death row are ours.
        unsafe { dpdk_sys::ctrack_ip_frag_expire(self.raw.as_ptr(), &mut *self.death_row, now) };
        let n = self.death_row.cnt;
        self.counts.timeout += u64::from(n);
        self.free_death_row();
        n
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
