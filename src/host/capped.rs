//! The eviction both capped tables of this stage use (hosts, sessions): keys in creation order,
//! and room made by removing the oldest entry that is cheap to lose.

use std::collections::VecDeque;
use std::hash::Hash;

use hashbrown::HashMap;

/// How deep [`evict_oldest`] looks before giving up.
pub const EVICT_DEPTH: usize = 64;

/// Removes the oldest entry (by `order`, looking at most [`EVICT_DEPTH`] deep) that
/// `evictable` accepts; entries it passes over go to the back of `order`. False when none was
/// found: the caller refuses the new entry and counts it.
pub fn evict_oldest<K: Hash + Eq + Copy, V>(
    map: &mut HashMap<K, V>,
    order: &mut VecDeque<K>,
    evictable: impl Fn(&V) -> bool,
) -> bool {
    for _ in 0..EVICT_DEPTH {
        let Some(k) = order.pop_front() else {
            return false;
        };
        match map.get(&k) {
            Some(v) if evictable(v) => {
                map.remove(&k);
                return true;
            }
            Some(_) => order.push_back(k),
            None => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_evictable_goes_and_the_others_stay_in_order() {
        let mut map: HashMap<u32, u32> = (0..5).map(|k| (k, k % 2)).collect();
        let mut order: VecDeque<u32> = (0..5).collect();
        // Odd values are kept: key 0 (value 0) goes first.
        assert!(evict_oldest(&mut map, &mut order, |v| *v == 0));
        assert!(!map.contains_key(&0));
        assert!(evict_oldest(&mut map, &mut order, |v| *v == 0));
        assert!(!map.contains_key(&2));
        assert_eq!(order, VecDeque::from([3, 4, 1]));
        assert!(evict_oldest(&mut map, &mut order, |v| *v == 0));
        assert!(!evict_oldest(&mut map, &mut order, |v| *v == 0));
        assert_eq!(map.len(), 2);
    }
}
