use std::ffi::CString;
use std::ptr::NonNull;

use crate::eal::{Live, retire_mempool};
use crate::error::{DpdkError, Result};

/// A packet-mbuf mempool. Multi-thread safe (DPDK's mempool is), so it is
/// `Send + Sync`.
///
/// An [`Mbuf`](crate::Mbuf) frees itself into the pool it came from, so the
/// pool must outlive its mbufs, which may be anywhere (in a ring, on another
/// thread). Dropping the handle therefore does not free the pool: it is
/// retired, and [`Eal::cleanup`](crate::Eal::cleanup) frees it once every
/// mbuf has come back. Its name stays taken until then.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    _live: Live,
}

// SAFETY: rte_mempool get/put operations are multi-thread safe; the pointer is
// only freed in Drop, which needs exclusive ownership.
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only allows counting and allocation, both MT-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `rte_pktmbuf_pool_create`: `n` mbufs with `data_room` bytes each
    /// (headroom included), a per-lcore cache of `cache` mbufs.
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new("rte_pktmbuf_pool_create", libc::EINVAL))?;
        let live = Live::enter("rte_pktmbuf_pool_create")?;
        // SAFETY: the EAL is running (live); cname is a valid C string; the
        // returned pointer is checked.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw, _live: live })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Mbufs currently allocated from the pool (held by drivers, queues or us).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: valid mempool pointer; the count is a racy but safe read.
        unsafe { dpdk_sys::ctrack_rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Mbufs available in the pool (including per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: as for in_use_count.
        unsafe { dpdk_sys::ctrack_rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Allocates one mbuf with its data length set to `data.len()` and `data`
    /// copied in. `None` if the pool is empty or `data` does not fit.
    pub fn alloc_with(&self, data: &[u8]) -> Option<crate::Mbuf> {
        crate::Mbuf::alloc(self).and_then(|mut m| m.append(data).then_some(m))
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Not freed: mbufs may still point to it (see the type's docs).
        retire_mempool(self.raw.as_ptr());
    }
}
