//! A cache prefetch hint: the one audited `unsafe` spot in this crate.
//!
//! `core::arch::x86_64::_mm_prefetch` is an `unsafe fn` in Rust 1.95 even
//! though SSE is in the x86_64 baseline and a prefetch cannot fault. Callers
//! pass references, so the addresses are valid anyway.
#![allow(unsafe_code)]

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the
    // address, and reads nothing the program can observe; SSE, which provides
    // it, is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints the CPU to bring the cache line holding the start of `*p` closer.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    prefetch_line((p as *const T).cast::<u8>());
}

/// [`prefetch`] for every cache line of `*p` (values larger than one line).
#[inline(always)]
pub fn prefetch_all<T>(p: &T) {
    let base = (p as *const T).cast::<u8>();
    for off in (0..core::mem::size_of::<T>()).step_by(64) {
        prefetch_line(base.wrapping_add(off));
    }
}
