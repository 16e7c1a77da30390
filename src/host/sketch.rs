//! Small fixed-size summaries the host context keeps per host: exponentially decayed counts
//! over three time scales ([`Decayed`]) and a distinct-value sketch that answers "how many
//! different values in the last W seconds" for any W ([`Distinct`]). Both are O(1) per update
//! and never allocate.

use std::cell::Cell;

/// The time scales of every host feature, seconds.
pub const SCALES_S: [f64; 3] = [1.0, 10.0, 60.0];

/// Decay factors for an elapsed time, one per scale (computed once per host update and shared
/// by all of that host's counters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decay(pub [f32; 3]);

thread_local! {
    /// The last elapsed time asked for on this thread and its factors: a host hit at a steady
    /// rate (a flood's victim, one event per packet) asks for the same one again and again.
    static LAST_DECAY: Cell<(i64, Decay)> = const { Cell::new((0, Decay([1.0; 3]))) };
}

impl Decay {
    pub fn after(elapsed_us: i64) -> Decay {
        if elapsed_us <= 0 {
            return Decay([1.0; 3]);
        }
        LAST_DECAY.with(|last| match last.get() {
            (e, d) if e == elapsed_us => d,
            _ => {
                let dt = elapsed_us as f64 / 1e6;
                let d = Decay(SCALES_S.map(|s| (-dt / s).exp() as f32));
                last.set((elapsed_us, d));
                d
            }
        })
    }
}

/// A count decayed with time constant `SCALES_S[i]` at each scale: after a burst, it falls to
/// 1/e of its value once per time constant, so `value[i]` is roughly "events in the last
/// `SCALES_S[i]` seconds".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decayed(pub [f32; 3]);

impl Decayed {
    pub fn decay(&mut self, d: Decay) {
        for (v, k) in self.0.iter_mut().zip(d.0) {
            *v *= k;
        }
    }
    pub fn add(&mut self, x: f32) {
        for v in &mut self.0 {
            *v += x;
        }
    }
    pub fn at(&self, scale: usize) -> f32 {
        self.0.get(scale).copied().unwrap_or(0.0)
    }
}

/// Buckets of a [`Distinct`] sketch.
const BUCKETS: usize = 64;
/// Sketch time resolution, µs (10 ms).
const TICK_US: i64 = 10_000;

/// Distinct values seen in a recent window, approximately (linear counting): each value hashes
/// to one of 64 buckets that remembers when it was last hit; the number of buckets hit within
/// the window estimates the distinct count. Exact up to a few values, within ~10% up to about
/// 100, and saturating at [`Distinct::MAX`] (every bucket hit) — a port scan reads as "≥ 266".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distinct {
    /// Last hit of each bucket in ticks since the sketch's base, +1 (0 = never hit).
    last: [u32; BUCKETS],
    base_us: i64,
}

impl Distinct {
    /// The largest estimate (all buckets hit): 64 · ln 64 rounded.
    pub const MAX: f64 = 266.0;

    pub fn new(base_us: i64) -> Distinct {
        Distinct {
            last: [0; BUCKETS],
            base_us,
        }
    }

    fn tick(&self, ts_us: i64) -> u32 {
        ((ts_us - self.base_us).max(0) / TICK_US).min(i64::from(u32::MAX - 1)) as u32 + 1
    }

    /// Records `value` (any 64-bit hash of it) at `ts_us`.
    pub fn insert(&mut self, value: u64, ts_us: i64) {
        let b = (mix(value) % BUCKETS as u64) as usize;
        let t = self.tick(ts_us);
        if let Some(slot) = self.last.get_mut(b) {
            *slot = (*slot).max(t);
        }
    }

    /// Estimated distinct values seen in the `window_us` before `now_us`.
    pub fn count(&self, now_us: i64, window_us: i64) -> f64 {
        let from = self.tick(now_us - window_us);
        let hit = self.last.iter().filter(|t| **t != 0 && **t >= from).count();
        if hit >= BUCKETS {
            return Distinct::MAX;
        }
        let m = BUCKETS as f64;
        (-m * (1.0 - hit as f64 / m).ln()).round()
    }
}

/// A 64-bit finaliser (splitmix64): spreads small integers such as ports over the buckets.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decayed_counts_fall_by_e_per_time_constant() {
        let mut c = Decayed::default();
        c.add(100.0);
        c.decay(Decay::after(10_000_000));
        assert!(c.at(0) < 0.01, "{}", c.at(0));
        assert!((c.at(1) - 36.79).abs() < 0.01, "{}", c.at(1));
        assert!((c.at(2) - 84.65).abs() < 0.01, "{}", c.at(2));
    }

    #[test]
    fn distinct_counts_are_close_and_windowed() {
        let mut d = Distinct::new(0);
        for port in 0..20u64 {
            d.insert(port, 1_000_000);
        }
        let n = d.count(1_000_000, 10_000_000);
        assert!((17.0..=23.0).contains(&n), "{n}");
        // The same values again add nothing.
        for port in 0..20u64 {
            d.insert(port, 2_000_000);
        }
        assert_eq!(d.count(2_000_000, 10_000_000), n);
        // Outside the window they are gone.
        assert_eq!(d.count(20_000_000, 5_000_000), 0.0);
        // A scan saturates.
        for port in 0..2000u64 {
            d.insert(port, 3_000_000);
        }
        assert_eq!(d.count(3_000_000, 1_000_000), Distinct::MAX);
        assert_eq!(Distinct::new(0).count(5, 1_000_000), 0.0);
    }
}
