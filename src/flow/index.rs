//! The flow table's hash index: key hash → slab slot. One `u64` a bucket, holding the key's
//! 32-bit hash and the slot together, in one array with linear probing (at most half full), so
//! that finding, adding or removing a flow reads one cache line of the index in the common
//! case — `hashbrown` reads two (its control bytes, then the bucket) — and the line can be
//! prefetched before the packet gets there ([`Index::prefetch`]). Removal shifts the entries
//! after the hole back (no tombstones: a flood's churn never degrades it and never calls for a
//! rebuild). The hash is the table's seeded one, so crafted keys cannot aim at one run.

use crate::prefetch::prefetch;

/// An empty bucket; a full one holds `hash << 32 | (slot + 1)`.
const EMPTY: u64 = 0;
/// Buckets of the first allocation.
const MIN_BUCKETS: usize = 16;

fn bucket(hash: u32, slot: u32) -> u64 {
    debug_assert!(slot < u32::MAX);
    (u64::from(hash) << 32) | (u64::from(slot) + 1)
}

fn hash_of(b: u64) -> u32 {
    (b >> 32) as u32
}

fn slot_of(b: u64) -> u32 {
    (b as u32).wrapping_sub(1)
}

/// Slots by key hash; the caller tells which slot holds its key.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// A power of two long (or empty); never more than half full.
    buckets: Vec<u64>,
    len: usize,
}

impl Index {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// Where a probe for `hash` starts.
    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask()
    }

    /// Asks for the cache line where a probe for `hash` starts.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        if let Some(b) = self.buckets.get(self.home(hash)) {
            prefetch(b);
        }
    }

    /// The first slot stored with `hash` for which `is(slot)` holds (the caller compares keys).
    #[inline]
    pub fn find(&self, hash: u32, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let b = *self.buckets.get(i)?;
            if b == EMPTY {
                return None;
            }
            if hash_of(b) == hash && is(slot_of(b)) {
                return Some(slot_of(b));
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `slot` under `hash` (the caller knows its key is not in yet).
    pub fn insert(&mut self, hash: u32, slot: u32) {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        self.place(bucket(hash, slot));
        self.len += 1;
    }

    /// Puts a bucket in the first empty place of its probe.
    fn place(&mut self, b: u64) {
        let mask = self.mask();
        let mut i = self.home(hash_of(b));
        while let Some(x) = self.buckets.get_mut(i) {
            if *x == EMPTY {
                *x = b;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let n = (self.buckets.len() * 2).max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, crate::prefetch::huge_vec(EMPTY, n));
        for b in old.into_iter().filter(|&b| b != EMPTY) {
            self.place(b);
        }
    }

    /// Removes `slot` stored under `hash`; false if it was not there.
    pub fn remove(&mut self, hash: u32, slot: u32) -> bool {
        let want = bucket(hash, slot);
        let mask = self.mask();
        let mut hole = self.home(hash);
        loop {
            match self.buckets.get(hole) {
                Some(&b) if b == want => break,
                Some(&b) if b != EMPTY => hole = (hole + 1) & mask,
                _ => return false,
            }
        }
        // Shift back every later bucket of the run that may sit in the hole: one whose home
        // is not between the hole and itself.
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let b = self.buckets.get(j).copied().unwrap_or(EMPTY);
            if b == EMPTY {
                break;
            }
            let home = self.home(hash_of(b));
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                if let Some(h) = self.buckets.get_mut(hole) {
                    *h = b;
                }
                hole = j;
            }
        }
        if let Some(h) = self.buckets.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts and removes, with hashes crowded into few homes (long runs, wrapping
    /// around the end), agree with a map at every step.
    #[test]
    fn agrees_with_a_map() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for spread in [u32::MAX, 0xff, 0x7, 0x8000_000f] {
            let mut ix = Index::default();
            let mut model: HashMap<u32, u32> = HashMap::new(); // slot -> hash
            for step in 0..20_000u32 {
                if next() % 3 == 0 && !model.is_empty() {
                    let slot = *model
                        .keys()
                        .nth(next() as usize % model.len())
                        .unwrap_or(&0);
                    let h = model.remove(&slot).unwrap_or(0);
                    assert!(ix.remove(h, slot));
                    assert!(!ix.remove(h, slot));
                } else {
                    let h = next() as u32 & spread;
                    ix.insert(h, step);
                    model.insert(step, h);
                }
                assert_eq!(ix.len(), model.len());
                if step % 97 == 0 {
                    for (&slot, &h) in &model {
                        assert_eq!(ix.find(h, |s| s == slot), Some(slot));
                    }
                    assert_eq!(ix.find(1, |s| s == u32::MAX - 1), None);
                }
            }
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        let mut ix = Index::default();
        assert_eq!(ix.find(7, |_| true), None);
        assert!(!ix.remove(7, 1));
        ix.prefetch(7);
    }
}
