//! DPDK's longest-prefix-match tables: `rte_lpm` (IPv4, DIR-24-8) and
//! `rte_lpm6`, for router mode's forwarding table.
//!
//! A table is built (and changed) off the fast path and then only read:
//! lookups take `&self`, changes `&mut self`, so a table shared read-only
//! between workers (`Arc<Lpm>`) is never changed under them; router mode
//! builds a new table on a route change and swaps the `Arc` (see
//! docs/nat.md). Next hops are 24-bit values (`rte_lpm`'s limit; `rte_lpm6`
//! allows 21 bits in 22.11: [`MAX_NEXT_HOP6`]).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::eal::Live;
use crate::error::{DpdkError, Result};

/// The largest next hop `rte_lpm` stores.
pub const MAX_NEXT_HOP: u32 = (1 << 24) - 1;
/// The largest next hop `rte_lpm6` stores (21 bits in DPDK 22.11).
pub const MAX_NEXT_HOP6: u32 = (1 << 21) - 1;
/// The entry bit `rte_lpm_lookup_bulk` sets on a hit.
const LOOKUP_SUCCESS: u32 = 0x0100_0000;

/// DPDK names every table; each gets a unique one.
fn unique_name(prefix: &str) -> CString {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    CString::new(format!("{prefix}{n}")).expect("no NUL in a generated name")
}

/// An IPv4 longest-prefix-match table.
#[derive(Debug)]
pub struct Lpm {
    raw: NonNull<dpdk_sys::rte_lpm>,
    _live: Live,
}

// SAFETY: the table is changed only through &mut self; DPDK's lookups only
// read it, so concurrent lookups through &self from several threads are
// sound (rte_lpm documents lock-free readers).
unsafe impl Send for Lpm {}
// SAFETY: as above: &self gives lookups only.
unsafe impl Sync for Lpm {}

impl Lpm {
    /// A table for at most `max_rules` prefixes, with `tbl8s` groups for
    /// prefixes longer than /24 (each such /24 takes one).
    pub fn new(max_rules: u32, tbl8s: u32) -> Result<Lpm> {
        let name = unique_name("ctlpm");
        let config = dpdk_sys::rte_lpm_config {
            max_rules,
            number_tbl8s: tbl8s,
            flags: 0,
        };
        let live = Live::enter("rte_lpm_create")?;
        // SAFETY: the EAL is running (live); name and config are valid for
        // the call; the result is checked.
        let raw = unsafe { dpdk_sys::rte_lpm_create(name.as_ptr(), 0, &config) };
        NonNull::new(raw)
            .map(|raw| Lpm { raw, _live: live })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_lpm_create"))
    }

    /// Adds (or replaces) `ip/depth` -> `next_hop`.
    pub fn add(&mut self, ip: u32, depth: u8, next_hop: u32) -> Result<()> {
        if depth == 0 || depth > 32 || next_hop > MAX_NEXT_HOP {
            return Err(DpdkError::new("rte_lpm_add", libc::EINVAL));
        }
        // SAFETY: a valid table, changed through &mut self only.
        let rc = unsafe { dpdk_sys::rte_lpm_add(self.raw.as_ptr(), ip, depth, next_hop) };
        if rc < 0 {
            Err(DpdkError::new("rte_lpm_add", -rc))
        } else {
            Ok(())
        }
    }

    /// Removes `ip/depth`.
    pub fn delete(&mut self, ip: u32, depth: u8) -> Result<()> {
        // SAFETY: a valid table, changed through &mut self only.
        let rc = unsafe { dpdk_sys::rte_lpm_delete(self.raw.as_ptr(), ip, depth) };
        if rc < 0 {
            Err(DpdkError::new("rte_lpm_delete", -rc))
        } else {
            Ok(())
        }
    }

    /// The next hop of the longest prefix holding `ip`.
    #[inline]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        let mut hop = 0u32;
        // SAFETY: a valid table, read only; hop is a valid out pointer.
        let rc = unsafe { dpdk_sys::ctrack_rte_lpm_lookup(self.raw.as_ptr(), ip, &mut hop) };
        (rc == 0).then_some(hop)
    }

    /// Looks up `ips` into `hops` (`None` where no prefix holds the
    /// address); `hops` must be as long as `ips` (the shorter bounds it).
    #[inline]
    pub fn lookup_bulk(&self, ips: &[u32], hops: &mut [Option<u32>]) {
        let mut raw = [0u32; 64];
        for (ips, hops) in ips.chunks(64).zip(hops.chunks_mut(64)) {
            let n = ips.len().min(hops.len());
            // SAFETY: a valid table, read only; ips and raw hold n values.
            unsafe {
                dpdk_sys::ctrack_rte_lpm_lookup_bulk(
                    self.raw.as_ptr(),
                    ips.as_ptr(),
                    raw.as_mut_ptr(),
                    n as u32,
                )
            };
            for (h, &r) in hops.iter_mut().zip(&raw[..n]) {
                *h = (r & LOOKUP_SUCCESS != 0).then_some(r & MAX_NEXT_HOP);
            }
        }
    }
}

impl Drop for Lpm {
    fn drop(&mut self) {
        // SAFETY: created by rte_lpm_create, freed once, no lookup can run
        // (we hold the only handle).
        unsafe { dpdk_sys::rte_lpm_free(self.raw.as_ptr()) };
    }
}

/// An IPv6 longest-prefix-match table.
#[derive(Debug)]
pub struct Lpm6 {
    raw: NonNull<dpdk_sys::rte_lpm6>,
    _live: Live,
}

// SAFETY: as for Lpm: changes through &mut self, lookups only read.
unsafe impl Send for Lpm6 {}
// SAFETY: as above.
unsafe impl Sync for Lpm6 {}

impl Lpm6 {
    /// A table for at most `max_rules` prefixes and `tbl8s` groups.
    pub fn new(max_rules: u32, tbl8s: u32) -> Result<Lpm6> {
        let name = unique_name("ctlpm6_");
        let config = dpdk_sys::rte_lpm6_config {
            max_rules,
            number_tbl8s: tbl8s,
            flags: 0,
        };
        let live = Live::enter("rte_lpm6_create")?;
        // SAFETY: the EAL is running; name and config valid for the call.
        let raw = unsafe { dpdk_sys::rte_lpm6_create(name.as_ptr(), 0, &config) };
        NonNull::new(raw)
            .map(|raw| Lpm6 { raw, _live: live })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_lpm6_create"))
    }

    /// Adds (or replaces) `ip/depth` -> `next_hop`.
    pub fn add(&mut self, ip: &[u8; 16], depth: u8, next_hop: u32) -> Result<()> {
        if depth == 0 || depth > 128 || next_hop > MAX_NEXT_HOP6 {
            return Err(DpdkError::new("rte_lpm6_add", libc::EINVAL));
        }
        // SAFETY: a valid table, changed through &mut self; ip has 16 bytes.
        let rc = unsafe { dpdk_sys::rte_lpm6_add(self.raw.as_ptr(), ip.as_ptr(), depth, next_hop) };
        if rc < 0 {
            Err(DpdkError::new("rte_lpm6_add", -rc))
        } else {
            Ok(())
        }
    }

    /// Removes `ip/depth`.
    pub fn delete(&mut self, ip: &[u8; 16], depth: u8) -> Result<()> {
        // SAFETY: a valid table, changed through &mut self; ip has 16 bytes.
        let rc = unsafe { dpdk_sys::rte_lpm6_delete(self.raw.as_ptr(), ip.as_ptr(), depth) };
        if rc < 0 {
            Err(DpdkError::new("rte_lpm6_delete", -rc))
        } else {
            Ok(())
        }
    }

    /// The next hop of the longest prefix holding `ip`.
    #[inline]
    pub fn lookup(&self, ip: &[u8; 16]) -> Option<u32> {
        let mut hop = 0u32;
        // SAFETY: a valid table, read only; ip has 16 bytes; hop is valid.
        let rc = unsafe { dpdk_sys::rte_lpm6_lookup(self.raw.as_ptr(), ip.as_ptr(), &mut hop) };
        (rc == 0).then_some(hop)
    }
}

impl Drop for Lpm6 {
    fn drop(&mut self) {
        // SAFETY: created by rte_lpm6_create, freed once, only handle.
        unsafe { dpdk_sys::rte_lpm6_free(self.raw.as_ptr()) };
    }
}
