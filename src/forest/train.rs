//! Training an Isolation Forest: scikit-learn's algorithm (a random subsample per tree, a random
//! non-constant feature per node, a threshold uniform between the node's min and max, depth
//! limit ceil(log2(sample size))) with a seeded, portable random generator, so a seed gives the
//! same forest on every machine.

use super::{TreeFile, average_path_length};

/// SplitMix64: tiny, fast, fully specified (the same stream everywhere).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Training parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub trees: usize,
    pub sample_size: usize,
    pub seed: u64,
}

/// Rows of model inputs (cleaned, transformed, as f32), row-major.
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub cols: usize,
}

impl Matrix<'_> {
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.cols).unwrap_or(0)
    }
    fn at(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.cols + col]
    }
}

/// Grows the forest. Returns the trees and the subsample size used (`max_samples`).
pub fn grow(x: &Matrix<'_>, p: Params, on_tree: impl FnMut(usize)) -> (Vec<TreeFile>, usize) {
    grow_padded(x, p, 0.0, on_tree)
}

/// [`grow`], except that a node holding a feature's largest training value draws 90% of its
/// splits on that feature past that value, up to `range_pad` × the feature's training range
/// above it. Values beyond everything
/// seen in training (a flood's rate, a scan's port count) then fall into an empty leaf after a
/// few steps instead of following the most extreme training point down the tree: the standard
/// Isolation Forest scores every point past the training range about like that extreme point.
/// `range_pad` 0 is the standard forest (scikit-learn's).
pub fn grow_padded(
    x: &Matrix<'_>,
    p: Params,
    range_pad: f64,
    mut on_tree: impl FnMut(usize),
) -> (Vec<TreeFile>, usize) {
    let mut top = vec![f32::NEG_INFINITY; x.cols];
    let mut bottom = vec![f32::INFINITY; x.cols];
    for r in 0..x.rows() {
        for (f, (t, b)) in top.iter_mut().zip(bottom.iter_mut()).enumerate() {
            *t = t.max(x.at(r, f));
            *b = b.min(x.at(r, f));
        }
    }
    let pads: Vec<(f32, f64)> = top
        .iter()
        .zip(&bottom)
        .map(|(t, b)| (*t, f64::from(*t - *b).max(1.0) * range_pad.max(0.0)))
        .collect();
    let n = x.rows();
    let sample = p.sample_size.min(n).max(1);
    let max_depth = (sample as f64).log2().ceil().max(0.0) as usize;
    let mut rng = Rng::new(p.seed);
    let mut trees = Vec::with_capacity(p.trees);
    let mut pool: Vec<usize> = (0..n).collect();
    for t in 0..p.trees {
        // Partial Fisher-Yates: the first `sample` entries become a sample without replacement.
        for i in 0..sample.min(n) {
            let j = i + rng.below(n - i);
            pool.swap(i, j);
        }
        let mut idx: Vec<usize> = pool[..sample.min(n)].to_vec();
        let mut tree = TreeFile {
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            n_samples: vec![],
        };
        build(x, &mut idx, 0, max_depth, &mut rng, &pads, &mut tree);
        trees.push(tree);
        on_tree(t + 1);
    }
    (trees, sample)
}

fn push_node(t: &mut TreeFile, n: usize) -> usize {
    t.feature.push(-2);
    t.threshold.push(-2.0);
    t.left.push(-1);
    t.right.push(-1);
    t.n_samples.push(n as u64);
    t.feature.len() - 1
}

fn build(
    x: &Matrix<'_>,
    idx: &mut [usize],
    depth: usize,
    max_depth: usize,
    rng: &mut Rng,
    pads: &[(f32, f64)],
    t: &mut TreeFile,
) -> usize {
    let me = push_node(t, idx.len());
    if idx.len() <= 1 || depth >= max_depth {
        return me;
    }
    // Draw features in random order until one is not constant on this node.
    let mut order: Vec<usize> = (0..x.cols).collect();
    for k in 0..order.len() {
        let j = k + rng.below(order.len() - k);
        order.swap(k, j);
        let f = order[k];
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &r in idx.iter() {
            let v = x.at(r, f);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi <= lo {
            continue;
        }
        let top = pads.get(f).copied().filter(|(t, p)| *p > 0.0 && hi >= *t);
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        let mut thr = match top {
            // The node holds the feature's largest value: most such splits fall past it,
            // within `pad`, and cut off what lies beyond the training data.
            Some((_, pad)) if rng.unit() < 0.9 => hi + pad * rng.unit(),
            _ => lo + (hi - lo) * rng.unit(),
        };
        if thr >= hi && top.is_none() {
            thr = lo;
        }
        // Partition: x ≤ thr to the left.
        let mut m = 0;
        for i in 0..idx.len() {
            if f64::from(x.at(idx[i], f)) <= thr {
                idx.swap(i, m);
                m += 1;
            }
        }
        let (left_idx, right_idx) = idx.split_at_mut(m);
        t.feature[me] = f as i64;
        t.threshold[me] = thr;
        let l = build(x, left_idx, depth + 1, max_depth, rng, pads, t);
        let r = build(x, right_idx, depth + 1, max_depth, rng, pads, t);
        t.left[me] = l as i64;
        t.right[me] = r as i64;
        return me;
    }
    me
}

/// The score threshold at which a fraction `contamination` of `scores` is flagged.
pub fn quantile_threshold(scores: &[f64], contamination: f64) -> f64 {
    let mut s: Vec<f64> = scores.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    if s.is_empty() {
        return 0.5;
    }
    let k = ((contamination * s.len() as f64).floor() as usize).min(s.len() - 1);
    s[k]
}

/// Splits row-major `values` (`cols` per row) into (kept, held out): a share `holdout` of the
/// rows, chosen with `seed`, is held out; both keep the input order.
pub fn hold_out(values: &[f64], cols: usize, holdout: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let n = values.len().checked_div(cols).unwrap_or(0);
    let k = ((holdout * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ 0xCA11_B4A7);
    for i in 0..k {
        let j = i + rng.below(n - i);
        order.swap(i, j);
    }
    let mut held_rows = vec![false; n];
    for &r in &order[..k] {
        held_rows[r] = true;
    }
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for (r, row) in values.chunks_exact(cols.max(1)).enumerate() {
        if held_rows[r] {
            held.extend_from_slice(row);
        } else {
            kept.extend_from_slice(row);
        }
    }
    (kept, held)
}

/// The leaf-size correction at the root, exposed for reports.
pub fn expected_depth(max_samples: usize) -> f64 {
    average_path_length(max_samples as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::{FORMAT, FORMAT_VERSION, Model, ModelFile, Provenance, Transform};

    fn data(n: usize, outliers: usize) -> Vec<f32> {
        let mut rng = Rng::new(7);
        let mut v = Vec::new();
        for i in 0..n {
            let far = i < outliers;
            for _ in 0..3 {
                let base = rng.unit() as f32;
                v.push(if far { 50.0 + base } else { base });
            }
        }
        v
    }

    fn model(trees: Vec<TreeFile>, ms: usize) -> Model {
        Model::from_file(ModelFile {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            features: vec![
                "Flow Duration".into(),
                "Total Fwd Packet".into(),
                "Total Bwd packets".into(),
            ],
            transforms: vec![Transform::None; 3],
            max_samples: ms as u64,
            offset: -0.5,
            threshold: 0.5,
            trees,
            provenance: Provenance::default(),
            quantiles: None,
        })
        .unwrap()
    }

    #[test]
    fn same_seed_same_forest_and_outliers_score_higher() {
        let d = data(2000, 10);
        let x = Matrix { data: &d, cols: 3 };
        let p = Params {
            trees: 50,
            sample_size: 256,
            seed: 42,
        };
        let (a, ms) = grow(&x, p, |_| {});
        let (b, _) = grow(&x, p, |_| {});
        assert_eq!(a, b);
        assert_eq!(ms, 256);
        let depth = a.iter().map(|t| t.n_samples.len()).max().unwrap();
        assert!(depth > 10);
        let m = model(a, ms);
        let outlier = m.score_values(&[50.5, 50.5, 50.5]);
        let inlier = m.score_values(&[0.5, 0.5, 0.5]);
        assert!(
            outlier > 0.6 && inlier < 0.5,
            "outlier {outlier} inlier {inlier}"
        );
        let (c, _) = grow(&x, Params { seed: 43, ..p }, |_| {});
        assert_ne!(model(c, ms).score_values(&[0.5, 0.5, 0.5]), inlier);
    }

    #[test]
    fn hold_out_is_seeded_and_disjoint() {
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        let (kept, held) = hold_out(&v, 2, 0.2, 42);
        assert_eq!((kept.len(), held.len()), (80, 20));
        assert_eq!(hold_out(&v, 2, 0.2, 42), (kept.clone(), held.clone()));
        assert_ne!(hold_out(&v, 2, 0.2, 43).1, held);
        // Rows stay whole (an even value starts every row) and none is in both parts.
        assert!(
            held.chunks(2)
                .all(|r| r[0] % 2.0 == 0.0 && r[1] == r[0] + 1.0)
        );
        assert!(held.iter().all(|x| !kept.contains(x)));
    }

    #[test]
    fn quantile() {
        let s = [0.9, 0.1, 0.5, 0.7];
        assert_eq!(quantile_threshold(&s, 0.25), 0.7);
        assert_eq!(quantile_threshold(&s, 0.0), 0.9);
    }
}
