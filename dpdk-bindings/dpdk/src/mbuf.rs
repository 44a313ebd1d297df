use std::ptr::NonNull;

use crate::Mempool;

/// Largest burst [`MbufBurst`] holds.
pub const MAX_BURST: usize = 64;

/// One owned packet buffer. Freed on drop, into the pool it came from, which
/// stays allocated until [`Eal::cleanup`](crate::Eal::cleanup) (see
/// [`Mempool`]); never cloned (a clone would free twice).
#[derive(Debug)]
pub struct Mbuf {
    raw: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving that ownership to
// another thread is how DPDK hands packets between lcores.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// The raw mbuf, still owned by `self`.
    pub(crate) fn as_raw(&self) -> *mut dpdk_sys::rte_mbuf {
        self.raw.as_ptr()
    }

    /// An empty mbuf from `pool`, or `None` if the pool is exhausted.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: valid pool; the result is checked for NULL.
        let raw = unsafe { dpdk_sys::ctrack_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(raw).map(|raw| Mbuf { raw })
    }

    /// Appends `data` at the end of the packet; false if it does not fit.
    pub fn append(&mut self, data: &[u8]) -> bool {
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        // SAFETY: we own the mbuf; append returns NULL if there is no room.
        let dst = unsafe { dpdk_sys::ctrack_rte_pktmbuf_append(self.raw.as_ptr(), len) };
        if dst.is_null() {
            return false;
        }
        // SAFETY: append reserved `len` writable bytes at `dst`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.cast::<u8>(), data.len()) };
        true
    }

    /// The bytes of the first segment (all of a non-chained packet).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: an owned mbuf's first segment holds data_len initialised
        // bytes at buf_addr + data_off, valid while we hold the mbuf.
        unsafe {
            let m = self.raw.as_ref();
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); &mut self guarantees exclusive access.
        unsafe {
            let m = self.raw.as_mut();
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: reading a field of an owned, valid mbuf.
        unsafe { self.raw.as_ref().pkt_len }
    }

    /// The NIC's RSS hash, if the driver set one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        // SAFETY: reading fields of an owned, valid mbuf; the union member is
        // only read when ol_flags says the NIC wrote it.
        unsafe {
            let m = self.raw.as_ref();
            (m.ol_flags & dpdk_sys::RTE_MBUF_F_RX_RSS_HASH != 0)
                .then_some(m.__bindgen_anon_2.hash.rss)
        }
    }

    /// The port this packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: reading a field of an owned, valid mbuf.
        unsafe { self.raw.as_ref().port }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nothing else references it.
        unsafe { dpdk_sys::ctrack_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// One checksum's RX offload flag (`RTE_MBUF_F_RX_{IP,L4}_CKSUM_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RxCksum {
    /// Not checked (or the port does not report it).
    Unknown,
    /// Checked: correct.
    Good,
    /// Checked: wrong.
    Bad,
    /// The field is not filled in, but the data is known intact (e.g. a
    /// virtio peer that never computed it).
    None,
}

impl RxCksum {
    fn from_bits(masked: u64, good: u64, bad: u64, none: u64) -> RxCksum {
        if masked == none {
            RxCksum::None
        } else if masked == good {
            RxCksum::Good
        } else if masked == bad {
            RxCksum::Bad
        } else {
            RxCksum::Unknown
        }
    }
}

/// A reusable array of up to [`MAX_BURST`] owned mbufs: filled by RX, drained
/// by TX. Whatever is still in it when cleared or dropped is freed, so a packet
/// that could not be sent is never leaked.
pub struct MbufBurst {
    ptrs: [*mut dpdk_sys::rte_mbuf; MAX_BURST],
    len: usize,
    cap: usize,
}

// SAFETY: the burst owns the mbufs it holds (see Mbuf's Send).
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst").field("len", &self.len).finish()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        Self::with_capacity(MAX_BURST)
    }

    /// A burst that RX fills with at most `cap` (clamped to 1..=MAX_BURST) mbufs.
    pub const fn with_capacity(cap: usize) -> Self {
        let cap = if cap == 0 {
            1
        } else if cap > MAX_BURST {
            MAX_BURST
        } else {
            cap
        };
        MbufBurst {
            ptrs: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
            cap,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len >= self.cap
    }

    /// Packet bytes of mbuf `i` (first segment).
    ///
    /// # Panics
    /// If `i >= len()`.
    #[inline]
    pub fn data(&self, i: usize) -> &[u8] {
        let m = self.ptrs[..self.len][i];
        // SAFETY: slots below len hold owned, valid mbufs (see data() on Mbuf).
        unsafe {
            let m = &*m;
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The NIC's RSS hash of mbuf `i`, if the driver set one.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[inline]
    pub fn rss_hash(&self, i: usize) -> Option<u32> {
        let m = self.ptrs[..self.len][i];
        // SAFETY: slots below len hold owned, valid mbufs; the union member
        // is only read when ol_flags says the NIC wrote it.
        unsafe {
            let m = &*m;
            (m.ol_flags & dpdk_sys::RTE_MBUF_F_RX_RSS_HASH != 0)
                .then_some(m.__bindgen_anon_2.hash.rss)
        }
    }

    /// What the NIC reported about mbuf `i`'s IPv4 header checksum and its
    /// L4 (TCP/UDP) checksum, from its RX offload flags: `(ip, l4)`.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[inline]
    pub fn rx_cksum(&self, i: usize) -> (RxCksum, RxCksum) {
        let m = self.ptrs[..self.len][i];
        // SAFETY: slots below len hold owned, valid mbufs; reading a field.
        let f = unsafe { (*m).ol_flags };
        (
            RxCksum::from_bits(
                f & dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK,
                dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD,
                dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_NONE,
            ),
            RxCksum::from_bits(
                f & dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK,
                dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_BAD,
                dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_NONE,
            ),
        )
    }

    /// Writable packet bytes of mbuf `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[inline]
    pub fn data_mut(&mut self, i: usize) -> &mut [u8] {
        let m = self.ptrs[..self.len][i];
        // SAFETY: as in data(); &mut self gives exclusive access to the burst's mbufs.
        unsafe {
            let m = &mut *m;
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Adds an mbuf; gives it back if the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes mbuf `i` (the last one takes its place), or `None` if out of range.
    pub fn swap_remove(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        let raw = self.ptrs[i];
        self.len -= 1;
        self.ptrs[i] = self.ptrs[self.len];
        // SAFETY: the slot held an owned, non-null mbuf; ownership moves out.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    /// Keeps the mbufs for which `keep(index_before, bytes)` is true, in order;
    /// frees the rest. Returns how many were freed.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, &[u8]) -> bool) -> usize {
        let mut w = 0;
        let n = self.len;
        for r in 0..n {
            if keep(r, self.data(r)) {
                self.ptrs[w] = self.ptrs[r];
                w += 1;
            } else {
                // SAFETY: slot r holds an owned mbuf that we now free.
                unsafe { dpdk_sys::ctrack_rte_pktmbuf_free(self.ptrs[r]) };
            }
        }
        self.len = w;
        n - w
    }

    /// Moves every mbuf out, in order, to `f(index, mbuf)`.
    pub fn drain_each(&mut self, mut f: impl FnMut(usize, Mbuf)) {
        let n = self.len;
        // Empty first: if `f` panics, the mbufs not yet handed out leak
        // rather than being freed twice.
        self.len = 0;
        for i in 0..n {
            if let Some(raw) = NonNull::new(self.ptrs[i]) {
                // SAFETY: slot i held an owned mbuf; ownership moves to `f`
                // and the burst no longer counts it.
                f(i, unsafe { Mbuf::from_raw(raw) });
            }
        }
    }

    /// Frees every mbuf still held; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            // SAFETY: slots below len hold owned mbufs; they are freed once and
            // the burst is emptied.
            unsafe { dpdk_sys::ctrack_rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n as u32) };
        }
        self.len = 0;
        n
    }

    /// The raw slots to fill from `rte_eth_rx_burst`.
    pub(crate) fn spare_ptrs(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        let spare = self.cap.saturating_sub(self.len);
        // SAFETY: len <= cap <= MAX_BURST so the offset stays inside the array.
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            spare as u16,
        )
    }

    /// Marks `n` more slots (filled by RX) as owned.
    ///
    /// # Safety
    /// The `n` slots after `len()` must hold valid mbufs that the burst now owns.
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// The owned pointers for `rte_eth_tx_burst`.
    pub(crate) fn ptrs_mut(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        (self.ptrs.as_mut_ptr(), self.len as u16)
    }

    /// Forgets the first `n` mbufs (the driver took them) and moves the rest
    /// to the front.
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}
