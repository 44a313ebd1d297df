use std::ffi::CString;
use std::ptr::NonNull;

use crate::eal::Live;
use crate::error::{DpdkError, Result};

/// DPDK's `rte_hash` (cuckoo hash, CRC32 hash function), used as the baseline
/// conntrack's own table is measured against.
#[derive(Debug)]
pub struct RteHash {
    raw: NonNull<dpdk_sys::rte_hash>,
    key_len: usize,
    _live: Live,
}

// SAFETY: the table is only reached through &mut self for writes; DPDK's
// lookups are safe from one thread at a time, which &self/&mut self ensure
// together with !Sync.
unsafe impl Send for RteHash {}

impl RteHash {
    /// A table for `entries` keys of `key_len` bytes.
    pub fn new(name: &str, entries: u32, key_len: u32) -> Result<RteHash> {
        let cname =
            CString::new(name).map_err(|_| DpdkError::new("rte_hash_create", libc::EINVAL))?;
        let params = dpdk_sys::rte_hash_parameters {
            name: cname.as_ptr(),
            entries,
            reserved: 0,
            key_len,
            hash_func: Some(dpdk_sys::ctrack_rte_hash_crc),
            hash_func_init_val: 0,
            socket_id: 0,
            extra_flag: 0,
        };
        let live = Live::enter("rte_hash_create")?;
        // SAFETY: the EAL is running (live); params and name are valid for
        // the call; the result is checked.
        let raw = unsafe { dpdk_sys::rte_hash_create(&params) };
        NonNull::new(raw)
            .map(|raw| RteHash {
                raw,
                key_len: key_len as usize,
                _live: live,
            })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_hash_create"))
    }

    /// Adds `key` with `data`; returns the key's position.
    pub fn add(&mut self, key: &[u8], data: u64) -> Result<i32> {
        assert_eq!(key.len(), self.key_len, "key length");
        // SAFETY: valid table; key has key_len bytes; data is stored as a
        // pointer-sized value and never dereferenced by DPDK.
        let rc = unsafe {
            dpdk_sys::rte_hash_add_key_data(
                self.raw.as_ptr(),
                key.as_ptr().cast(),
                data as usize as *mut _,
            )
        };
        if rc < 0 {
            Err(DpdkError::new("rte_hash_add_key_data", rc))
        } else {
            Ok(rc)
        }
    }

    /// Looks up to 64 keys at once (`rte_hash_lookup_bulk_data`); `found[i]`
    /// gets the data of `keys[i]` or `None`. Returns the number of hits.
    pub fn lookup_bulk(&self, keys: &[&[u8]], found: &mut [Option<u64>]) -> usize {
        let n = keys.len().min(found.len()).min(64);
        let mut ptrs = [std::ptr::null::<std::ffi::c_void>(); 64];
        for (p, k) in ptrs.iter_mut().zip(keys) {
            assert_eq!(k.len(), self.key_len, "key length");
            *p = k.as_ptr().cast();
        }
        let mut hits: u64 = 0;
        let mut data = [std::ptr::null_mut::<std::ffi::c_void>(); 64];
        // SAFETY: n <= 64 valid key pointers of key_len bytes; data has 64 slots.
        let rc = unsafe {
            dpdk_sys::rte_hash_lookup_bulk_data(
                self.raw.as_ptr(),
                ptrs.as_mut_ptr(),
                n as u32,
                &mut hits,
                data.as_mut_ptr(),
            )
        };
        for (i, f) in found.iter_mut().take(n).enumerate() {
            *f = (hits >> i & 1 == 1).then_some(data[i] as usize as u64);
        }
        rc.max(0) as usize
    }
}

impl Drop for RteHash {
    fn drop(&mut self) {
        // SAFETY: we own the table.
        unsafe { dpdk_sys::rte_hash_free(self.raw.as_ptr()) }
    }
}
