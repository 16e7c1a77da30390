//! Scores remembered by input: a flood repeats the same flow shape (one SYN, same window and
//! options, duration 0) millions of times, and a forest's score depends only on the inputs its
//! splits test. [`ScoreCache`] keys each flow by those inputs (as f32 bits, so equality is
//! exact) in a small direct-mapped table; a hit returns the score the trees gave the same
//! inputs before, bit for bit, and a miss is scored in batches like [`Model::score_many`].

use super::{BATCH, Inputs, Model, SLOTS};
use crate::features::FlowRecord;

/// Entries of the table (a power of two).
const ENTRIES: usize = 4096;

/// A direct-mapped table from split inputs to scores, for one model.
#[derive(Clone, Debug)]
pub struct ScoreCache {
    /// Input slots tested by at least one split, ascending.
    split_slots: Vec<u8>,
    /// `ENTRIES` keys of `split_slots.len()` f32 bit patterns each.
    keys: Vec<u32>,
    scores: Vec<f64>,
    filled: Vec<bool>,
    hits: u64,
    lookups: u64,
    /// The last flow's raw value (f64 bits) and input of each model feature: a value equal to
    /// the last one keeps its input (a flood's flows differ in a port or two, and a transform
    /// such as `ln_1p` costs more than the comparison).
    last_raw: Vec<u64>,
    last_input: Vec<f32>,
}

impl ScoreCache {
    /// Lookups answered from the table, and lookups in all.
    pub fn hits(&self) -> (u64, u64) {
        (self.hits, self.lookups)
    }

    /// The key of inputs `x` into `key`; returns its table entry.
    fn key_of(&self, x: &Inputs, key: &mut [u32]) -> usize {
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for (k, s) in key.iter_mut().zip(&self.split_slots) {
            *k = x[usize::from(*s)].to_bits();
            h = (h ^ u64::from(*k)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        ((h >> 32) as usize) & (ENTRIES - 1)
    }
}

impl Model {
    /// An empty cache for this model's splits.
    pub fn score_cache(&self) -> ScoreCache {
        let mut used = [false; SLOTS];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.left() as usize != i {
                used[n.slot()] = true;
            }
        }
        let split_slots: Vec<u8> = (0..SLOTS)
            .filter(|s| used[*s])
            .filter_map(|s| u8::try_from(s).ok())
            .collect();
        ScoreCache {
            keys: vec![0; ENTRIES * split_slots.len()],
            split_slots,
            scores: vec![0.0; ENTRIES],
            filled: vec![false; ENTRIES],
            hits: 0,
            lookups: 0,
            last_raw: vec![0f64.to_bits(); self.features.len()],
            last_input: (0..self.features.len())
                .map(|i| self.input(i, 0.0))
                .collect(),
        }
    }

    /// [`Model::score_many`] through a cache made by [`Model::score_cache`] of this model: the
    /// same scores, bit for bit.
    pub fn score_many_cached(&self, flows: &[FlowRecord], out: &mut [f64], c: &mut ScoreCache) {
        let n = flows.len().min(out.len());
        let k = c.split_slots.len();
        let mut key = [0u32; SLOTS];
        // Misses wait here to be scored together: (flow index, table entry) and inputs.
        let mut pending = [(0usize, 0usize); BATCH];
        let mut xs = [[0f32; SLOTS]; BATCH];
        let mut np = 0;
        for i in 0..n {
            // `inputs` writes the same slots for every flow of a model, and only those are
            // read: no need to clear the rest between flows.
            let x = &mut xs[np];
            self.inputs_from_last(&flows[i], x, c);
            let e = c.key_of(x, &mut key[..k]);
            c.lookups += 1;
            if c.filled[e] && c.keys[e * k..(e + 1) * k] == key[..k] {
                c.hits += 1;
                out[i] = c.scores[e];
                continue;
            }
            c.keys[e * k..(e + 1) * k].copy_from_slice(&key[..k]);
            c.filled[e] = false;
            pending[np] = (i, e);
            np += 1;
            if np == BATCH {
                self.score_pending(&xs, &pending[..np], out, c);
                np = 0;
            }
        }
        self.score_pending(&xs, &pending[..np], out, c);
    }

    /// [`Model::inputs`], each feature's input taken from the last flow's when its raw value
    /// is the same bit for bit (the input is a function of the raw value alone).
    fn inputs_from_last(&self, r: &FlowRecord, x: &mut Inputs, c: &mut ScoreCache) {
        if self.direct {
            self.inputs(r, x);
            return;
        }
        let last = c.last_raw.iter_mut().zip(c.last_input.iter_mut());
        for (i, ((s, f), (raw, input))) in
            self.slots.iter().zip(&self.features).zip(last).enumerate()
        {
            let v = r.get(*f);
            if *raw != v.to_bits() {
                *raw = v.to_bits();
                *input = self.input(i, v);
            }
            x[*s] = *input;
        }
    }

    fn score_pending(
        &self,
        xs: &[Inputs; BATCH],
        pending: &[(usize, usize)],
        out: &mut [f64],
        c: &mut ScoreCache,
    ) {
        if pending.is_empty() {
            return;
        }
        if self.dense.slot.is_empty() {
            for (x, &(i, e)) in xs.iter().zip(pending) {
                let s = self.score_inputs(x);
                out[i] = s;
                c.scores[e] = s;
                c.filled[e] = true;
            }
            return;
        }
        let totals = self.sum_dense_batch(xs);
        for (t, &(i, e)) in totals.iter().zip(pending) {
            let s = (-t / self.denominator).exp2();
            out[i] = s;
            // Two misses of one batch may share an entry: the later key is the one stored.
            c.scores[e] = s;
            c.filled[e] = true;
        }
    }
}
