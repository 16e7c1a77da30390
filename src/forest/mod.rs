//! Stage 5: score. The Isolation Forest: the versioned model file ([`ModelFile`]), loading with
//! full validation into flat arrays ([`Model`]), scikit-learn-exact scoring, and training
//! ([`train`]). A finished [`FlowRecord`] goes in; an anomaly score in (0, 1] comes out.

mod cache;
pub mod fit;
mod layout;
pub mod quantiles;
pub mod sets;
pub mod train;

pub use cache::ScoreCache;
pub use layout::MAX_INPUTS;
pub use quantiles::Quantiles;

use layout::{BATCH, DENSE_DEPTH, Dense, Inputs, LANES, Layout, Node, SLOTS};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::{Feature, FlowRecord};

/// The model file's `format` field.
pub const FORMAT: &str = "flowsentry-isolation-forest";
/// The model file format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bounds that keep a hostile model file from costing unbounded memory or time.
pub const MAX_TREES: usize = 10_000;
pub const MAX_NODES_PER_TREE: usize = 1 << 20;
/// A node's child index has 24 bits (one slot is kept for the padding leaf).
pub const MAX_TOTAL_NODES: usize = (1 << 24) - 1;
pub const MAX_DEPTH: usize = 64;
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Per-feature input transform, applied after cleaning and before the trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    #[default]
    None,
    /// Signed log: sign(x)·ln(1+|x|) (defined for the −1 the reference writes for empty rates).
    Log1p,
}

impl Transform {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Transform::None => x,
            Transform::Log1p => x.signum() * x.abs().ln_1p(),
        }
    }
}

/// Makes a raw feature value usable: NaN → 0, ±Infinity → ±f32::MAX (the CIC-IDS2017 CSVs hold
/// `NaN` and `Infinity` in the rate columns). The same rule is applied in training, scoring and
/// the scikit-learn parity script.
#[inline]
pub fn clean(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else if x.is_nan() {
        0.0
    } else {
        f64::from(f32::MAX).copysign(x)
    }
}

/// One tree as stored: parallel arrays, node 0 is the root, `left[i] == -1` marks a leaf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeFile {
    /// Index into the model's `features`; ignored at leaves.
    pub feature: Vec<i64>,
    pub threshold: Vec<f64>,
    pub left: Vec<i64>,
    pub right: Vec<i64>,
    /// Training samples that reached the node (used at leaves for the path-length correction).
    pub n_samples: Vec<u64>,
}

/// Where a model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// "flowsentry train" or "scikit-learn x.y.z".
    pub trainer: String,
    pub created: String,
    #[serde(default)]
    pub training_files: Vec<TrainingFile>,
    #[serde(default)]
    pub rows_used: u64,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub notes: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingFile {
    pub path: String,
    pub sha256: String,
    pub rows: u64,
}

/// The model file (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    /// Feature names in model order (either CSV spelling is accepted; written in CFM4 spelling).
    pub features: Vec<String>,
    pub transforms: Vec<Transform>,
    /// Subsample size each tree was grown on (scikit-learn's `max_samples_`).
    pub max_samples: u64,
    /// scikit-learn's `offset_` (decision_function = score_samples − offset).
    pub offset: f64,
    /// Alert threshold on the anomaly score: a flow is anomalous when its score is above it.
    pub threshold: f64,
    pub trees: Vec<TreeFile>,
    pub provenance: Provenance,
    /// Training-data percentiles per feature, for explanations (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Quantiles>,
}

/// Model loading and validation errors; each names the file.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{path}: cannot read model: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: model file is {size} bytes, over the {MAX_MODEL_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: not a valid model file: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{path}: invalid model: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{path}: cannot write model: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A validated model, ready to score: every tree's nodes in one flat array.
#[derive(Clone, Debug)]
pub struct Model {
    file: ModelFile,
    features: Vec<Feature>,
    /// Input slot of each model feature: its schema index when the features are distinct,
    /// else its position in the model.
    slots: Vec<usize>,
    /// Model feature at each input slot (`usize::MAX` where none); for `top_features`.
    slot_feature: Vec<usize>,
    /// Distinct features, no transforms: a flow's inputs are its values, slot for slot.
    direct: bool,
    nodes: Vec<Node>,
    /// Path length at each leaf, indexed like `nodes` (0 at internal nodes).
    leaf_values: Vec<f64>,
    /// Tree roots, padded to a multiple of [`LANES`] with a leaf worth 0.
    roots: Vec<u32>,
    /// Deepest leaf of each group of [`LANES`] trees (`roots` in chunks).
    chunk_depth: Vec<u32>,
    /// The same trees as complete binary trees, when none is deeper than [`DENSE_DEPTH`]
    /// (every forest grown on 256 samples or fewer), padded to a multiple of [`LANES`].
    dense: Dense,
    trees: usize,
    /// c(max_samples) · number of trees.
    denominator: f64,
}

/// Average path length of an unsuccessful BST search, c(n), as scikit-learn computes it.
pub fn average_path_length(n: f64) -> f64 {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

impl Model {
    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let io = |source| ModelError::Io {
            path: path.into(),
            source,
        };
        // Regular files only, read with a hard limit: a FIFO or /dev/zero is refused at once.
        let text = crate::readfile::read_regular(path, MAX_MODEL_BYTES).map_err(io)?;
        let file: ModelFile = serde_json::from_str(&text).map_err(|e| ModelError::Parse {
            path: path.into(),
            msg: e.to_string(),
        })?;
        Model::from_file(file).map_err(|msg| ModelError::Invalid {
            path: path.into(),
            msg,
        })
    }

    /// Validates a parsed model: indices in range, every node reached once from its root (no
    /// cycles, no sharing), depth bounded, known feature names, finite numbers.
    pub fn from_file(file: ModelFile) -> Result<Model, String> {
        if file.format != FORMAT {
            return Err(format!("format is {:?}, expected {FORMAT:?}", file.format));
        }
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not supported (this build reads {FORMAT_VERSION})",
                file.version
            ));
        }
        if file.features.is_empty() || file.features.len() > MAX_INPUTS {
            return Err(format!(
                "{} features; expected 1 to {MAX_INPUTS}",
                file.features.len()
            ));
        }
        // A host model names host features (src/host/features.rs); a flow model, CIC ones.
        let host = file
            .features
            .iter()
            .all(|n| crate::host::HostFeature::from_name(n).is_some());
        let features = if host {
            Vec::new()
        } else {
            file.features
                .iter()
                .map(|n| {
                    Feature::from_name(n).ok_or_else(|| {
                        format!("unknown feature {n:?} (not in the CICFlowMeter schema)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if file.transforms.len() != file.features.len() {
            return Err(format!(
                "{} transforms for {} features",
                file.transforms.len(),
                file.features.len()
            ));
        }
        if file.trees.is_empty() || file.trees.len() > MAX_TREES {
            return Err(format!(
                "{} trees; expected 1 to {MAX_TREES}",
                file.trees.len()
            ));
        }
        // One sample per tree gives c(1) = 0: every score would be 2^(-x/0).
        if file.max_samples < 2 || file.max_samples > u64::from(u32::MAX) {
            return Err(format!(
                "max_samples {} out of range (2 to {})",
                file.max_samples,
                u32::MAX
            ));
        }
        if !file.offset.is_finite() {
            return Err("offset must be finite".into());
        }
        // Scores lie in (0, 1]: a threshold outside (0, 1) alerts on every flow or on none.
        if !(file.threshold > 0.0 && file.threshold < 1.0) {
            return Err(format!(
                "threshold {} must be in (0, 1) (scores lie in (0, 1])",
                file.threshold
            ));
        }
        let total: usize = file.trees.iter().map(|t| t.feature.len()).sum();
        if total > MAX_TOTAL_NODES {
            return Err(format!(
                "{total} nodes in all; the limit is {MAX_TOTAL_NODES}"
            ));
        }
        let mut distinct = features.clone();
        distinct.sort();
        distinct.dedup();
        let slots: Vec<usize> = if host {
            (0..file.features.len()).collect()
        } else if distinct.len() == features.len() {
            features.iter().map(|f| *f as usize).collect()
        } else {
            (0..features.len()).collect()
        };
        let mut slot_feature = vec![usize::MAX; SLOTS];
        for (i, s) in slots.iter().enumerate() {
            slot_feature[*s] = i;
        }
        let plain = file.transforms.iter().all(|t| *t == Transform::None);
        let direct = !host && plain && distinct.len() == features.len();

        let Layout {
            nodes,
            leaf_values,
            roots,
            chunk_depth,
            dense,
        } = layout::lay_out(&file.trees, &slots, total)?;
        if let Some(q) = &file.quantiles {
            q.validate(features.len())?;
        }
        let trees = file.trees.len();
        let denominator = average_path_length(file.max_samples as f64) * trees as f64;
        Ok(Model {
            file,
            features,
            slots,
            slot_feature,
            direct,
            nodes,
            leaf_values,
            roots,
            chunk_depth,
            dense,
            trees,
            denominator,
        })
    }

    /// Writes the model as JSON.
    pub fn save(file: &ModelFile, path: &Path) -> Result<(), ModelError> {
        let w = |source| ModelError::Write {
            path: path.into(),
            source,
        };
        let text = serde_json::to_string(file).map_err(|e| w(std::io::Error::other(e)))?;
        std::fs::write(path, text).map_err(w)
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }
    pub fn features(&self) -> &[Feature] {
        &self.features
    }
    /// Where `raw` falls among the training values of feature `f`, in percent at or below it;
    /// `None` when the model has no quantiles or does not use `f`.
    pub fn percentile(&self, f: Feature, raw: f64) -> Option<f64> {
        let q = self.file.quantiles.as_ref()?;
        let i = self.features.iter().position(|x| *x == f)?;
        q.percentile(i, raw)
    }

    /// Alert threshold on the anomaly score.
    pub fn threshold(&self) -> f64 {
        self.file.threshold
    }
    pub fn trees(&self) -> usize {
        self.trees
    }

    /// The model's input for one raw value of model feature `i`: cleaned, transformed, as f32
    /// (scikit-learn scores float32 inputs).
    #[inline]
    fn input(&self, i: usize, raw: f64) -> f32 {
        let x = clean(raw);
        match self.file.transforms.get(i) {
            Some(t) if *t != Transform::None => t.apply(x) as f32,
            _ => x as f32,
        }
    }

    /// A flow's inputs at their slots.
    #[inline]
    fn inputs(&self, r: &FlowRecord, x: &mut Inputs) {
        // The common case (the shipped model, any scikit-learn export without transforms): the
        // values convert slot for slot. `clean` only changes non-finite values.
        if self.direct && r.values.iter().fold(true, |ok, v| ok & v.is_finite()) {
            for (s, v) in x.iter_mut().zip(&r.values) {
                *s = *v as f32;
            }
        } else {
            for (i, (s, f)) in self.slots.iter().zip(&self.features).enumerate() {
                x[*s] = self.input(i, r.get(*f));
            }
        }
    }

    /// Anomaly score of raw feature values in model order. Equals −`score_samples` of
    /// scikit-learn; in (0, 1].
    pub fn score_values(&self, raw: &[f64]) -> f64 {
        let mut x = [0f32; SLOTS];
        for (i, s) in self.slots.iter().enumerate() {
            x[*s] = self.input(i, raw.get(i).copied().unwrap_or(0.0));
        }
        self.score_inputs(&x)
    }

    /// Anomaly score of a finished flow. No allocation.
    pub fn score(&self, r: &FlowRecord) -> f64 {
        let mut x = [0f32; SLOTS];
        self.inputs(r, &mut x);
        self.score_inputs(&x)
    }

    #[inline]
    fn score_inputs(&self, x: &Inputs) -> f64 {
        if self.dense.slot.is_empty() {
            self.score_sparse(x)
        } else {
            self.score_dense(x)
        }
    }

    /// [`Model::score_inputs`] on the complete-tree layout: LANES trees side by side, exactly
    /// [`DENSE_DEPTH`] steps each, no branch and no bounds check per node.
    #[inline]
    fn score_dense(&self, x: &Inputs) -> f64 {
        let mut total = 0.0;
        let d = &self.dense;
        for ((slots, thrs), leaves) in d
            .slot
            .chunks_exact(LANES)
            .zip(d.threshold.chunks_exact(LANES))
            .zip(d.leaf.chunks_exact(LANES))
        {
            let mut at = [1usize; LANES];
            for _ in 0..DENSE_DEPTH {
                for ((a, s), t) in at.iter_mut().zip(slots).zip(thrs) {
                    let right = x[usize::from(s[*a])] > t[*a];
                    *a = 2 * *a + usize::from(right);
                }
            }
            for (a, l) in at.iter().zip(leaves) {
                total += l[*a - 256];
            }
        }
        (-total / self.denominator).exp2()
    }

    /// [`Model::score_inputs`] on the pointer layout (any depth).
    #[inline]
    fn score_sparse(&self, x: &Inputs) -> f64 {
        // Walk LANES trees at once for exactly as many steps as the deepest leaf of the group
        // (a leaf points to itself, so a finished walk stays put): no branch per node, and the
        // node loads of different trees do not depend on each other, so the CPU overlaps them.
        // Leaf values are added in tree order (the same sum as one tree after another).
        let mut total = 0.0;
        for (c, &depth) in self.roots.chunks_exact(LANES).zip(&self.chunk_depth) {
            let mut at = [0u32; LANES];
            at.copy_from_slice(c);
            for _ in 0..depth {
                for a in at.iter_mut() {
                    *a = self.nodes[*a as usize].step(x);
                }
            }
            for a in at {
                total += self.leaf_values[a as usize];
            }
        }
        (-total / self.denominator).exp2()
    }

    /// Anomaly scores of many flows (`out[i]` for `flows[i]`). Same results as [`Model::score`],
    /// bit for bit, and about twice as fast: see [`Model::score_batched`].
    pub fn score_many(&self, flows: &[FlowRecord], out: &mut [f64]) {
        self.score_batched(flows.len(), |i, x| self.inputs(&flows[i], x), out);
    }

    /// Anomaly scores of rows of raw values in model order, one row after another in `values`
    /// (the layout of a [`crate::features::dataset::Dataset`]). Same results as
    /// [`Model::score_values`] row by row.
    pub fn score_rows(&self, values: &[f64], out: &mut [f64]) {
        let d = self.slots.len().max(1);
        self.score_batched(
            values.len() / d,
            |i, x| {
                for (j, (s, v)) in self
                    .slots
                    .iter()
                    .zip(&values[i * d..(i + 1) * d])
                    .enumerate()
                {
                    x[*s] = self.input(j, *v);
                }
            },
            out,
        );
    }

    /// Scores `n` items (`out[i]` for item `i`; `fill(i, x)` writes item `i`'s inputs). On the
    /// complete-tree layout the items are taken [`BATCH`] at a time and each tree is walked for
    /// all of them while it sits in the L1 cache, [`BATCH`] independent walks interleaved.
    fn score_batched(&self, n: usize, fill: impl Fn(usize, &mut Inputs), out: &mut [f64]) {
        let n = n.min(out.len());
        if self.dense.slot.is_empty() {
            let mut x = [0f32; SLOTS];
            for (i, o) in out[..n].iter_mut().enumerate() {
                fill(i, &mut x);
                *o = self.score_inputs(&x);
            }
            return;
        }
        let mut x = [[0f32; SLOTS]; BATCH];
        for (c, outs) in out[..n].chunks_mut(BATCH).enumerate() {
            for (k, row) in x.iter_mut().enumerate().take(outs.len()) {
                fill(c * BATCH + k, row);
            }
            let totals = self.sum_dense_batch(&x);
            for (o, t) in outs.iter_mut().zip(totals) {
                *o = (-t / self.denominator).exp2();
            }
        }
    }

    /// Path-length sums of [`BATCH`] items on the complete-tree layout, tree after tree (each
    /// item's sum in tree order, as in [`Model::score_inputs`]).
    #[inline]
    fn sum_dense_batch(&self, x: &[Inputs; BATCH]) -> [f64; BATCH] {
        let mut total = [0f64; BATCH];
        let d = &self.dense;
        for ((s, t), l) in d
            .slot
            .iter()
            .zip(&d.threshold)
            .zip(&d.leaf)
            .take(self.trees)
        {
            let mut at = [1usize; BATCH];
            for _ in 0..DENSE_DEPTH {
                for (a, xk) in at.iter_mut().zip(x) {
                    let right = xk[usize::from(s[*a])] > t[*a];
                    *a = 2 * *a + usize::from(right);
                }
            }
            for (tot, a) in total.iter_mut().zip(at) {
                *tot += l[a - 256];
            }
        }
        total
    }

    pub fn is_anomaly(&self, score: f64) -> bool {
        score > self.file.threshold
    }

    /// The features that isolated this flow soonest: for each tree, the split features on its
    /// path weighted by 1/(depth+1); the top `k` by total weight. Allocates (alerts only).
    pub fn top_features(&self, r: &FlowRecord, k: usize) -> Vec<(Feature, f64)> {
        let mut x = [0f32; SLOTS];
        self.inputs(r, &mut x);
        let w = self.path_weights(&x);
        // A feature the model reads twice (as it is and log-scaled) is one feature to a reader:
        // its inputs' weights add up.
        let mut out: Vec<(Feature, f64)> = Vec::with_capacity(w.len());
        for (f, v) in self.features.iter().zip(w) {
            match out.iter_mut().find(|(g, _)| g == f) {
                Some((_, acc)) => *acc += v,
                None => out.push((*f, v)),
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        out
    }

    /// [`Model::top_features`] for raw values in model order (host models): (model feature
    /// index, weight), heaviest first.
    pub fn top_inputs(&self, raw: &[f64], k: usize) -> Vec<(usize, f64)> {
        let mut x = [0f32; SLOTS];
        for (i, s) in self.slots.iter().enumerate() {
            x[*s] = self.input(i, raw.get(i).copied().unwrap_or(0.0));
        }
        let mut out: Vec<(usize, f64)> = self.path_weights(&x).into_iter().enumerate().collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        out
    }

    /// Per model feature: how soon it split this input off, summed over trees (weights sum to 1).
    fn path_weights(&self, x: &Inputs) -> Vec<f64> {
        let mut w = vec![0.0f64; self.file.features.len()];
        for &root in &self.roots[..self.trees] {
            let mut i = root;
            let mut depth = 0.0;
            loop {
                let n = self.nodes[i as usize];
                let next = n.step(x);
                if next == i {
                    break;
                }
                if let Some(v) = w.get_mut(self.slot_feature[n.slot()]) {
                    *v += 1.0 / (depth + 1.0);
                }
                depth += 1.0;
                i = next;
            }
        }
        let sum: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        w.into_iter().map(|v| v / sum).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::layout::f32_floor;
    use super::*;
    use crate::features::NUM_FEATURES;

    #[test]
    fn top_features_merge_a_feature_read_twice() {
        // Flow Duration as it is (input 0) and log-scaled (input 1), Total Fwd Packet (input 2).
        let mut f = stump();
        f.features = vec![
            "Flow Duration".into(),
            "Flow Duration".into(),
            "Total Fwd Packet".into(),
        ];
        f.transforms = vec![Transform::None, Transform::Log1p, Transform::None];
        f.trees = vec![
            TreeFile {
                feature: vec![0, 1, -2, -2, -2],
                threshold: vec![10.0, 1.0, -2.0, -2.0, -2.0],
                left: vec![1, 2, -1, -1, -1],
                right: vec![4, 3, -1, -1, -1],
                n_samples: vec![4, 3, 1, 2, 1],
            },
            TreeFile {
                feature: vec![2, -2, -2],
                threshold: vec![3.0, -2.0, -2.0],
                left: vec![1, -1, -1],
                right: vec![2, -1, -1],
                n_samples: vec![4, 3, 1],
            },
        ];
        let m = Model::from_file(f).unwrap();
        let mut v = [0.0; NUM_FEATURES];
        v[Feature::FlowDuration as usize] = 5.0;
        v[Feature::TotalFwdPackets as usize] = 1.0;
        // Tree 1: Flow Duration at depth 0 (weight 1) and depth 1 (1/2); tree 2: Total Fwd
        // Packet at depth 0 (1). Flow Duration is listed once with 1.5 / 2.5.
        let top = m.top_features(&FlowRecord::from_values(v), 5);
        assert_eq!(top.len(), 2, "{top:?}");
        assert_eq!(top[0].0, Feature::FlowDuration);
        assert!((top[0].1 - 0.6).abs() < 1e-12 && (top[1].1 - 0.4).abs() < 1e-12);
    }

    fn stump() -> ModelFile {
        ModelFile {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            features: vec!["Flow Duration".into()],
            transforms: vec![Transform::None],
            max_samples: 4,
            offset: -0.5,
            threshold: 0.5,
            trees: vec![TreeFile {
                feature: vec![0, -2, -2],
                threshold: vec![10.0, -2.0, -2.0],
                left: vec![1, -1, -1],
                right: vec![2, -1, -1],
                n_samples: vec![4, 3, 1],
            }],
            provenance: Provenance::default(),
            quantiles: None,
        }
    }

    #[test]
    fn quantiles_are_optional_and_checked() {
        let mut f = stump();
        let old = Model::from_file(f.clone()).unwrap();
        assert_eq!(old.percentile(Feature::FlowDuration, 5.0), None);
        f.quantiles = Some(Quantiles::compute(&[1.0, 2.0, 3.0, 4.0, 5.0], 1));
        let m = Model::from_file(f.clone()).unwrap();
        assert_eq!(m.percentile(Feature::FlowDuration, 3.0), Some(50.0));
        assert_eq!(m.percentile(Feature::TotalFwdPackets, 3.0), None);
        // A model file without the key (every file before quantiles) still parses.
        let mut json: serde_json::Value = serde_json::to_value(stump()).unwrap();
        assert!(json.get("quantiles").is_none());
        json.as_object_mut().unwrap().remove("quantiles");
        let back: ModelFile = serde_json::from_value(json).unwrap();
        assert!(Model::from_file(back).is_ok());
        // Quantiles for the wrong number of features are refused.
        f.quantiles = Some(Quantiles::compute(&[1.0, 2.0], 2));
        assert!(Model::from_file(f).unwrap_err().contains("quantiles"));
    }

    #[test]
    fn f32_floor_preserves_the_comparison() {
        for t in [10.0, 0.1, -0.1, 1e-40, 3.4e38, 1e39, -1e39, 12345.678901234] {
            let t32 = f32_floor(t);
            for x in [
                t as f32,
                (t as f32).next_up(),
                (t as f32).next_down(),
                0.0,
                f32::MAX,
                -f32::MAX,
            ] {
                assert_eq!(f64::from(x) <= t, x <= t32, "t {t} x {x}");
            }
        }
    }

    #[test]
    fn c_of_n_matches_sklearn() {
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        // 2·(ln 255 + γ) − 2·255/256, computed independently in Python.
        assert!((average_path_length(256.0) - 10.244_770_920_119_917).abs() < 1e-12);
    }

    #[test]
    fn stump_scores_by_hand() {
        let m = Model::from_file(stump()).unwrap();
        let c4 = average_path_length(4.0);
        // x ≤ 10 → left leaf at depth 1 holding 3 samples: h = 1 + c(3).
        let want = (-(1.0 + average_path_length(3.0)) / c4).exp2();
        assert!((m.score_values(&[5.0]) - want).abs() < 1e-15);
        let want = (-1.0 / c4).exp2();
        assert!((m.score_values(&[50.0]) - want).abs() < 1e-15);
        // f32 comparison: 10.000000001 rounds to 10.0f32 and goes left, like sklearn.
        assert_eq!(m.score_values(&[10.000_000_001]), m.score_values(&[5.0]));
    }

    #[test]
    fn hostile_models_are_rejected() {
        let mut f = stump();
        f.trees[0].left[0] = 0;
        assert!(Model::from_file(f).unwrap_err().contains("twice"));
        let mut f = stump();
        f.trees[0].right[0] = 7;
        assert!(Model::from_file(f).unwrap_err().contains("out of range"));
        let mut f = stump();
        f.features[0] = "Bogus".into();
        assert!(Model::from_file(f).unwrap_err().contains("unknown feature"));
        let mut f = stump();
        f.trees[0].threshold[0] = f64::NAN;
        assert!(Model::from_file(f).unwrap_err().contains("not finite"));
        let mut f = stump();
        f.trees[0].n_samples.pop();
        assert!(Model::from_file(f).is_err());
        let mut f = stump();
        f.version = 99;
        assert!(Model::from_file(f).is_err());
    }

    #[test]
    fn corrupt_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, "{\"format\": 3").unwrap();
        let e = Model::load(&p).unwrap_err().to_string();
        assert!(e.contains("m.json"), "{e}");
        std::fs::write(&p, serde_json::to_string(&stump()).unwrap()).unwrap();
        assert!(Model::load(&p).is_ok());
    }

    /// A tree that is a chain: node 2k tests `x <= k`, its left child is a leaf, its right
    /// child the next test; the last test has two leaves.
    fn chain(depth: usize) -> TreeFile {
        let mut t = TreeFile {
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            n_samples: vec![],
        };
        for k in 0..depth {
            let at = t.feature.len() as i64;
            let last = k + 1 == depth;
            t.feature.push(0);
            t.threshold.push(k as f64);
            t.left.push(at + 1);
            t.right.push(at + 2);
            t.n_samples.push(100);
            t.feature.push(-2);
            t.threshold.push(-2.0);
            t.left.push(-1);
            t.right.push(-1);
            t.n_samples.push(3);
            if last {
                t.feature.push(-2);
                t.threshold.push(-2.0);
                t.left.push(-1);
                t.right.push(-1);
                t.n_samples.push(1);
            }
        }
        t
    }

    #[test]
    fn deep_trees_score_on_the_pointer_layout() {
        let mut f = stump();
        f.max_samples = 4096;
        f.trees = vec![chain(12), chain(3)];
        let m = Model::from_file(f).unwrap();
        assert!(
            m.dense.slot.is_empty(),
            "a depth-12 tree has no dense layout"
        );
        // x = 5.5 goes right past thresholds 0..=5 and left at 6: a leaf of 3 at depth 7 in the
        // chain of 12; in the chain of 3 it goes right at 0, 1, 2: the last leaf (1 sample).
        let h = (7.0 + average_path_length(3.0)) + 3.0;
        let want = (-h / (2.0 * average_path_length(4096.0))).exp2();
        assert!((m.score_values(&[5.5]) - want).abs() < 1e-15);
        let mut out = [0.0; 2];
        m.score_rows(&[5.5, 0.5], &mut out);
        assert_eq!(out, [m.score_values(&[5.5]), m.score_values(&[0.5])]);
    }

    #[test]
    fn shallow_chains_score_on_the_dense_layout_like_the_pointer_layout() {
        let mut f = stump();
        f.max_samples = 256;
        f.trees = (1..=8).map(chain).collect();
        let m = Model::from_file(f).unwrap();
        assert_eq!(m.dense.slot.len(), LANES);
        for v in [-1.0, 0.0, 0.5, 3.0, 3.5, 7.0, 7.5, 100.0] {
            let mut x = [0f32; SLOTS];
            x[m.slots[0]] = v as f32;
            assert_eq!(m.score_dense(&x), m.score_sparse(&x), "x = {v}");
        }
    }

    /// Every way of scoring gives the same bits on the shipped model, for inputs placed on and
    /// around its thresholds (where an off-by-one in a layout would show), and for non-finite
    /// values.
    #[test]
    fn scoring_paths_agree_bit_for_bit_on_the_shipped_model() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json");
        let m = Model::load(&path).unwrap();
        assert!(!m.dense.slot.is_empty());
        let thresholds: Vec<f64> = m
            .file
            .trees
            .iter()
            .flat_map(|t| t.threshold.clone())
            .collect();
        let mut rng = train::Rng::new(7);
        let mut flows = Vec::new();
        for n in 0..1000 {
            let mut values = [0.0; NUM_FEATURES];
            for v in values.iter_mut() {
                let t = thresholds[rng.below(thresholds.len())];
                *v = match rng.below(6) {
                    0 => t,
                    1 => (t as f32).next_up().into(),
                    2 => (t as f32).next_down().into(),
                    3 => t * rng.unit() * 3.0,
                    4 => rng.unit() * 1e7,
                    _ => 0.0,
                };
            }
            if n % 50 == 0 {
                values[n % NUM_FEATURES] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][n % 3];
            }
            flows.push(FlowRecord::from_values(values));
        }
        let mut many = vec![0.0; flows.len()];
        m.score_many(&flows, &mut many);
        let rows: Vec<f64> = flows
            .iter()
            .flat_map(|r| m.features().iter().map(|f| r.get(*f)).collect::<Vec<_>>())
            .collect();
        let mut by_rows = vec![0.0; flows.len()];
        m.score_rows(&rows, &mut by_rows);
        let mut distinct = std::collections::BTreeSet::new();
        for (i, r) in flows.iter().enumerate() {
            let one = m.score(r);
            let mut x = [0f32; SLOTS];
            m.inputs(r, &mut x);
            assert_eq!(one.to_bits(), m.score_dense(&x).to_bits());
            assert_eq!(one.to_bits(), m.score_sparse(&x).to_bits(), "flow {i}");
            assert_eq!(one.to_bits(), many[i].to_bits(), "flow {i}");
            let values: Vec<f64> = m.features().iter().map(|f| r.get(*f)).collect();
            assert_eq!(one.to_bits(), m.score_values(&values).to_bits(), "flow {i}");
            assert_eq!(one.to_bits(), by_rows[i].to_bits(), "flow {i}");
            assert!(one > 0.0 && one <= 1.0);
            distinct.insert(one.to_bits());
        }
        assert!(
            distinct.len() > 500,
            "inputs too alike: {} scores",
            distinct.len()
        );
        // Through the cache: every flow twice, interleaved with repeats and with a distinct
        // Source Port (not a model input) on the repeats, so that entries hit and collide.
        let mut cache = m.score_cache();
        let mut again = flows.clone();
        for (i, r) in again.iter_mut().enumerate() {
            r.values[Feature::SrcPort as usize] = i as f64;
        }
        let mixed: Vec<FlowRecord> = flows
            .iter()
            .zip(&again)
            .flat_map(|(a, b)| [a.clone(), b.clone(), a.clone()])
            .collect();
        for round in 0..2 {
            let mut cached = vec![0.0; mixed.len()];
            m.score_many_cached(&mixed, &mut cached, &mut cache);
            for (i, s) in cached.iter().enumerate() {
                assert_eq!(s.to_bits(), many[i / 3].to_bits(), "round {round} row {i}");
            }
        }
        let (hits, lookups) = cache.hits();
        assert_eq!(lookups, 6000);
        assert!(hits > 2000, "{hits} hits");
    }

    proptest::proptest! {
        #[test]
        fn mutated_models_never_panic(i in 0usize..3, l in -3i64..5, r in -3i64..5, f in -2i64..3) {
            let mut m = stump();
            m.trees[0].left[i] = l;
            m.trees[0].right[i] = r;
            m.trees[0].feature[i] = f;
            if let Ok(model) = Model::from_file(m) {
                let s = model.score_values(&[3.0]);
                proptest::prop_assert!(s > 0.0 && s <= 1.0);
            }
        }
    }
}
