//! A cache prefetch hint, the crate's second and last `unsafe` (the first is
//! `capture::sys`). Under a flood the flow table and the host context miss the cache on almost
//! every packet (a 1 M-flow index, a 14 MB array of single-flow hosts); the pipeline asks for
//! the lines a packet will need a few packets before it gets there, so the misses overlap
//! instead of queueing one after another (`flow::table`, `host::context`).
//!
//! Sound for any address: `prefetcht0` is a hint that never faults, never writes and has no
//! effect a program can observe but time (Intel SDM, PREFETCHh: "does not affect program
//! behavior"); here it is only ever given the address of a live reference. Elsewhere than
//! x86_64 it does nothing.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `*r` into its caches; returns at once.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing a program sees and cannot fault (module doc); the
    // pointer comes from a reference, so it is even valid.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
