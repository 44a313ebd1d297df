//! A cache prefetch hint: one of the crate's two audited `unsafe` spots
//! (the other is `hugemem`).
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

/// [`prefetch`] for every cache line `*p` touches (values larger than one
/// line, at any alignment: a 128-byte value not aligned to 64 spans three).
#[inline(always)]
pub fn prefetch_all<T>(p: &T) {
    let start = (p as *const T).cast::<u8>();
    let first = start as usize & !63;
    let last = (start as usize + core::mem::size_of::<T>().max(1) - 1) & !63;
    for line in (first..=last).step_by(64) {
        prefetch_line(start.wrapping_add(line.wrapping_sub(start as usize)));
    }
}
