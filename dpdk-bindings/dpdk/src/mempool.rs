use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};

/// A packet-mbuf mempool. Multi-thread safe (DPDK's mempool is), so it is
/// `Send + Sync`; freed on drop, which must happen before `Eal::cleanup` and
/// after every port using it was closed.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
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
        // SAFETY: cname is a valid C string; the returned pointer is checked.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
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
        // SAFETY: we own the pool; the ports that used it are closed by the
        // caller's shutdown order (Port drops close them first).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
