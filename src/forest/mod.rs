//! Stage 5: score. The Isolation Forest: the versioned model file ([`ModelFile`]), loading with
//! full validation into flat arrays ([`Model`]), scikit-learn-exact scoring, and training
//! ([`train`]). A finished [`FlowRecord`] goes in; an anomaly score in (0, 1] comes out.

pub mod sets;
pub mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::{Feature, FlowRecord, NUM_FEATURES};

/// The model file's `format` field.
pub const FORMAT: &str = "flowsentry-isolation-forest";
/// The model file format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bounds that keep a hostile model file from costing unbounded memory or time.
pub const MAX_TREES: usize = 10_000;
pub const MAX_NODES_PER_TREE: usize = 1 << 20;
pub const MAX_TOTAL_NODES: usize = 1 << 26;
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

/// Flat node, 12 bytes. Children are adjacent (`right = left + 1`). `threshold` is the largest
/// f32 not above the f64 threshold, so `x <= threshold` gives the same answer as scikit-learn's
/// float32-input-against-float64-threshold test for every f32 `x`. A leaf points to itself
/// (`left` = its own index, threshold +∞, so walking on stays put) and keeps its path length
/// (depth + c(n_samples)) in `leaf_values` at its own index.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    threshold: f32,
    feature: u16,
    left: u32,
}

/// A validated model, ready to score: every tree's nodes in one flat array.
#[derive(Clone, Debug)]
pub struct Model {
    file: ModelFile,
    features: Vec<Feature>,
    nodes: Vec<Node>,
    /// Path length at each leaf, indexed like `nodes` (unused at internal nodes).
    leaf_values: Vec<f64>,
    roots: Vec<u32>,
    /// Every transform is `None`.
    plain: bool,
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
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MODEL_BYTES {
            return Err(ModelError::TooLarge {
                path: path.into(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
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
        if file.features.is_empty() || file.features.len() > NUM_FEATURES {
            return Err(format!(
                "{} features; expected 1 to {NUM_FEATURES}",
                file.features.len()
            ));
        }
        let features = file
            .features
            .iter()
            .map(|n| {
                Feature::from_name(n).ok_or_else(|| {
                    format!("unknown feature {n:?} (not in the CICFlowMeter schema)")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if file.transforms.len() != features.len() {
            return Err(format!(
                "{} transforms for {} features",
                file.transforms.len(),
                features.len()
            ));
        }
        if file.trees.is_empty() || file.trees.len() > MAX_TREES {
            return Err(format!(
                "{} trees; expected 1 to {MAX_TREES}",
                file.trees.len()
            ));
        }
        if file.max_samples < 1 || file.max_samples > u64::from(u32::MAX) {
            return Err(format!("max_samples {} out of range", file.max_samples));
        }
        if !file.offset.is_finite() || !file.threshold.is_finite() {
            return Err("offset and threshold must be finite".into());
        }
        let total: usize = file.trees.iter().map(|t| t.feature.len()).sum();
        if total > MAX_TOTAL_NODES {
            return Err(format!(
                "{total} nodes in all; the limit is {MAX_TOTAL_NODES}"
            ));
        }
        let mut nodes = Vec::with_capacity(total);
        let mut leaf_values = Vec::with_capacity(total);
        let mut roots = Vec::with_capacity(file.trees.len());
        for (t, tree) in file.trees.iter().enumerate() {
            roots.push(nodes.len() as u32);
            flatten_tree(tree, features.len(), &mut nodes, &mut leaf_values)
                .map_err(|m| format!("tree {t}: {m}"))?;
        }
        let denominator = average_path_length(file.max_samples as f64) * file.trees.len() as f64;
        let file_plain = file.transforms.iter().all(|t| *t == Transform::None);
        Ok(Model {
            file,
            features,
            nodes,
            leaf_values,
            roots,
            plain: file_plain,
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
    /// Alert threshold on the anomaly score.
    pub fn threshold(&self) -> f64 {
        self.file.threshold
    }
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// The model's input for one raw value of feature `i`: cleaned, transformed, as f32
    /// (scikit-learn scores float32 inputs).
    #[inline]
    fn input(&self, i: usize, raw: f64) -> f32 {
        let x = clean(raw);
        if self.plain {
            x as f32
        } else {
            self.file.transforms[i].apply(x) as f32
        }
    }

    /// Anomaly score of raw feature values in model order. Equals −`score_samples` of
    /// scikit-learn; in (0, 1].
    pub fn score_values(&self, raw: &[f64]) -> f64 {
        let mut x = [0f32; NUM_FEATURES];
        for (i, v) in x.iter_mut().enumerate().take(self.features.len()) {
            *v = self.input(i, raw.get(i).copied().unwrap_or(0.0));
        }
        self.score_inputs(&x)
    }

    /// Anomaly score of a finished flow. No allocation.
    pub fn score(&self, r: &FlowRecord) -> f64 {
        let mut x = [0f32; NUM_FEATURES];
        for (i, (v, f)) in x.iter_mut().zip(&self.features).enumerate() {
            *v = self.input(i, r.get(*f));
        }
        self.score_inputs(&x)
    }

    fn score_inputs(&self, x: &[f32; NUM_FEATURES]) -> f64 {
        // Walk LANES trees at once: the node loads of different trees do not depend on each
        // other, so the CPU overlaps them. Leaf values are added in tree order (the same sum as
        // one tree after another).
        const LANES: usize = 8;
        let mut total = 0.0;
        let mut chunks = self.roots.chunks_exact(LANES);
        for c in &mut chunks {
            let mut at = [0usize; LANES];
            for (a, r) in at.iter_mut().zip(c) {
                *a = *r as usize;
            }
            loop {
                let mut moving = false;
                for a in at.iter_mut() {
                    let n = self.nodes[*a];
                    if n.left as usize != *a {
                        *a = n.left as usize + usize::from(x[usize::from(n.feature)] > n.threshold);
                        moving = true;
                    }
                }
                if !moving {
                    break;
                }
            }
            for a in at {
                total += self.leaf_values[a];
            }
        }
        for &root in chunks.remainder() {
            total += self.path_length(root, x);
        }
        (-total / self.denominator).exp2()
    }

    /// Anomaly scores of many flows (`out[i]` for `flows[i]`), for `score`-style bulk work: the
    /// flows are taken 64 at a time and each tree is walked for all of them while it sits in
    /// cache, 8 flows interleaved. Same results as [`Model::score`], bit for bit.
    pub fn score_many(&self, flows: &[FlowRecord], out: &mut [f64]) {
        const BATCH: usize = 64;
        const LANES: usize = 8;
        let mut x = [[0f32; NUM_FEATURES]; BATCH];
        for (chunk, outs) in flows.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let n = chunk.len();
            for (row, r) in x.iter_mut().zip(chunk) {
                for (i, (v, f)) in row.iter_mut().zip(&self.features).enumerate() {
                    *v = self.input(i, r.get(*f));
                }
            }
            let mut total = [0f64; BATCH];
            for &root in &self.roots {
                let mut start = 0;
                while start < n {
                    let lanes = LANES.min(n - start);
                    let mut at = [root as usize; LANES];
                    loop {
                        let mut moving = false;
                        for (k, a) in at.iter_mut().enumerate().take(lanes) {
                            let node = self.nodes[*a];
                            if node.left as usize != *a {
                                let v = x[start + k][usize::from(node.feature)];
                                *a = node.left as usize + usize::from(v > node.threshold);
                                moving = true;
                            }
                        }
                        if !moving {
                            break;
                        }
                    }
                    for (k, a) in at.iter().enumerate().take(lanes) {
                        total[start + k] += self.leaf_values[*a];
                    }
                    start += lanes;
                }
            }
            for (o, t) in outs.iter_mut().zip(&total[..n]) {
                *o = (-t / self.denominator).exp2();
            }
        }
    }

    pub fn is_anomaly(&self, score: f64) -> bool {
        score > self.file.threshold
    }

    #[inline]
    fn path_length(&self, root: u32, x: &[f32; NUM_FEATURES]) -> f64 {
        let mut i = root as usize;
        loop {
            let n = self.nodes[i];
            if n.left as usize == i {
                return self.leaf_values[i];
            }
            i = n.left as usize + usize::from(x[usize::from(n.feature)] > n.threshold);
        }
    }

    /// The features that isolated this flow soonest: for each tree, the split features on its
    /// path weighted by 1/(depth+1); the top `k` by total weight. Allocates (alerts only).
    pub fn top_features(&self, r: &FlowRecord, k: usize) -> Vec<(Feature, f64)> {
        let mut w = vec![0.0f64; self.features.len()];
        for &root in &self.roots {
            let mut i = root as usize;
            let mut depth = 0.0;
            loop {
                let n = self.nodes[i];
                if n.left as usize == i {
                    break;
                }
                let f = usize::from(n.feature);
                w[f] += 1.0 / (depth + 1.0);
                depth += 1.0;
                let x = self.input(f, r.get(self.features[f]));
                i = n.left as usize + usize::from(x > n.threshold);
            }
        }
        let sum: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut out: Vec<(Feature, f64)> = self
            .features
            .iter()
            .copied()
            .zip(w.into_iter().map(|v| v / sum))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(k);
        out
    }
}

fn idx(v: i64, len: usize, what: &str, at: usize) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| format!("node {at}: {what} {v} out of range"))
}

/// The largest f32 that is not above `t`: for every f32 `x`, `x <= t` (compared in f64) equals
/// `x <= f32_floor(t)`.
fn f32_floor(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

/// Validates one tree and appends it in breadth-first order with adjacent children. Returns
/// the depth of its deepest leaf.
fn flatten_tree(
    t: &TreeFile,
    n_features: usize,
    out: &mut Vec<Node>,
    leaf_values: &mut Vec<f64>,
) -> Result<usize, String> {
    let n = t.feature.len();
    if n == 0 || n > MAX_NODES_PER_TREE {
        return Err(format!("{n} nodes; expected 1 to {MAX_NODES_PER_TREE}"));
    }
    if [
        t.threshold.len(),
        t.left.len(),
        t.right.len(),
        t.n_samples.len(),
    ]
    .iter()
    .any(|l| *l != n)
    {
        return Err("node arrays differ in length".into());
    }
    let blank = Node {
        threshold: f32::INFINITY,
        feature: 0,
        left: 0,
    };
    let start = out.len();
    out.push(blank);
    leaf_values.push(0.0);
    let mut seen = vec![false; n];
    seen[0] = true;
    // (index in the file, index in `out`, depth)
    let mut queue = std::collections::VecDeque::from([(0usize, start, 0usize)]);
    let (mut placed, mut max_depth) = (1usize, 0usize);
    while let Some((i, at, depth)) = queue.pop_front() {
        if depth > MAX_DEPTH {
            return Err(format!("depth over {MAX_DEPTH}"));
        }
        max_depth = max_depth.max(depth);
        if t.left[i] == -1 {
            if t.right[i] != -1 {
                return Err(format!("node {i}: leaf with a right child"));
            }
            out[at] = Node {
                threshold: f32::INFINITY,
                feature: 0,
                left: at as u32,
            };
            leaf_values[at] = depth as f64 + average_path_length(t.n_samples[i] as f64);
            continue;
        }
        let l = idx(t.left[i], n, "left child", i)?;
        let r = idx(t.right[i], n, "right child", i)?;
        let f = idx(t.feature[i], n_features, "feature", i)?;
        if !t.threshold[i].is_finite() {
            return Err(format!(
                "node {i}: threshold {} is not finite",
                t.threshold[i]
            ));
        }
        for c in [l, r] {
            if seen[c] {
                return Err(format!("node {c} is reached twice (cycle or shared node)"));
            }
            seen[c] = true;
        }
        let left_at = out.len();
        out.extend([blank, blank]);
        leaf_values.extend([0.0, 0.0]);
        placed += 2;
        out[at] = Node {
            threshold: f32_floor(t.threshold[i]),
            feature: f as u16,
            left: left_at as u32,
        };
        queue.push_back((l, left_at, depth + 1));
        queue.push_back((r, left_at + 1, depth + 1));
    }
    if placed != n {
        return Err(format!(
            "{} of {n} nodes are not reachable from the root",
            n - placed
        ));
    }
    Ok(max_depth)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
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
