//! Memory hints, the crate's second and last `unsafe` (the first is `capture::sys`): a cache
//! prefetch, and 2 MiB pages for large arrays read at random ([`huge_vec`]). Under a flood the flow table and the host context miss the cache on almost
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

/// A `Vec` of `n` copies of `x` whose memory the kernel is asked to back with 2 MiB pages
/// (`madvise(MADV_HUGEPAGE)`, before the first write): for the large arrays a flood reads at
/// random (the host context's pending array, the flow index), where with 4 KiB pages nearly
/// every access also walks the page tables. Only advice: where the kernel has no huge page
/// (or transparent huge pages are off) the memory is ordinary pages, and the values are the
/// same either way.
pub fn huge_vec<T: Clone>(x: T, n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge(v.spare_capacity_mut());
    v.resize(n, x);
    v
}

/// Before a push: a full `Vec` doubles, and its new room is advised 2 MiB pages as in
/// [`huge_vec`] (the flow table's slab, where a flood's flows sit).
pub fn grow_huge<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve(v.capacity().max(64));
        advise_huge(v.spare_capacity_mut());
    }
}

/// Advises 2 MiB pages for the whole pages inside `s` (nothing for small slices).
fn advise_huge<T>(s: &mut [std::mem::MaybeUninit<T>]) {
    const HUGE_BYTES: usize = 2 << 20;
    const PAGE_BYTES: usize = 4096;
    let bytes = std::mem::size_of_val(s);
    if bytes < HUGE_BYTES {
        return;
    }
    let start = s.as_mut_ptr() as usize;
    let (lo, hi) = (
        start.next_multiple_of(PAGE_BYTES),
        (start + bytes) & !(PAGE_BYTES - 1),
    );
    if hi <= lo {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `MADV_HUGEPAGE` only sets which page size backs the range (whole pages inside
    // memory we own exclusively, `s`): it does not change, move or free any byte, and its
    // failure (no transparent huge pages) leaves the memory as it was; the result is ignored.
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_vectors_hold_what_vec_would() {
        for n in [0, 1, 1000, (4 << 20) / 8 + 3] {
            assert_eq!(huge_vec(7u64, n), vec![7u64; n]);
        }
        let mut v: Vec<u32> = Vec::new();
        for i in 0..3_000_000u32 {
            grow_huge(&mut v);
            v.push(i);
        }
        assert!(v.iter().copied().eq(0..3_000_000));
    }
}
