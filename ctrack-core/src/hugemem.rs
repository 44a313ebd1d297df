//! Fixed-size arrays on transparent huge pages: the connection table's index
//! and entry arena. An audited `unsafe` spot (raw allocation and `madvise`).
//!
//! A table of a million connections spans ~160 MB. On 4 KiB pages nearly
//! every packet's lookup misses the TLB, and under a hypervisor each miss is a
//! two-dimensional page walk. Arrays of at least [`HUGE`] bytes are therefore
//! allocated 2 MiB-aligned and advised `MADV_HUGEPAGE` before their first
//! write, so the kernel backs them with 2 MiB pages when it can (Linux's
//! default `transparent_hugepage=madvise` honours the advice). If it cannot,
//! the memory is ordinary pages: the advice is a hint, its failure is ignored.
#![allow(unsafe_code)]

use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};

/// The huge page size, and the size from which arrays are advised.
pub const HUGE: usize = 2 << 20;

/// An owned, fixed-length array of `T`, on huge pages when large enough.
pub struct HugeSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: `HugeSlice` owns its elements as a `Box<[T]>` would; sending or
// sharing it is sending or sharing `T`s.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}
// SAFETY: as above; `&HugeSlice` only gives `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugeSlice<T> {}

impl<T: Copy> HugeSlice<T> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> HugeSlice<T> {
        let bytes = core::mem::size_of::<T>()
            .checked_mul(len)
            .expect("HugeSlice: size overflows usize");
        let huge = bytes >= HUGE;
        let align = if huge {
            HUGE.max(core::mem::align_of::<T>())
        } else {
            core::mem::align_of::<T>()
        };
        // A zero-sized allocation is not allowed: allocate at least one byte.
        let layout = Layout::from_size_align(bytes.max(1), align).expect("HugeSlice: bad layout");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        if huge {
            // Failure (e.g. THP disabled) leaves ordinary pages: ignored.
            // SAFETY: `raw..raw + bytes` is the allocation just made, 2 MiB
            // (so page) aligned; the advice never changes contents.
            unsafe { libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        for i in 0..len {
            // SAFETY: `i < len` and the allocation holds `len` `T`s, aligned
            // for `T`; writing (not assigning) initialises without reading.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        HugeSlice { ptr, len, layout }
    }
}

impl<T: Copy> Deref for HugeSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised `T`s owned by `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout; `T: Copy` has
        // no drop glue to run.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_arrays_hold_their_fill_and_are_aligned() {
        let mut small = HugeSlice::new(3, 7u32);
        assert_eq!(&*small, &[7, 7, 7]);
        small[1] = 9;
        assert_eq!(&*small, &[7, 9, 7]);
        let big = HugeSlice::new(HUGE / 8 + 5, 1u64);
        assert_eq!(big.len(), HUGE / 8 + 5);
        assert!(big.iter().all(|&x| x == 1));
        assert_eq!(big.as_ptr() as usize % HUGE, 0);
        let empty = HugeSlice::new(0, 0u8);
        assert!(empty.is_empty());
    }
}
