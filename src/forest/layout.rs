//! The in-memory layout of a validated forest: every tree's nodes in one flat array (8-byte
//! nodes, children adjacent), and, when no tree is deeper than 8, the same trees as complete
//! binary trees for branch-free walks. Built once by [`super::Model::from_file`], which
//! validates each tree while laying it out.

use super::{MAX_DEPTH, MAX_NODES_PER_TREE, TreeFile, average_path_length};
use crate::features::NUM_FEATURES;

/// Flat node, 8 bytes. `link` holds the left child's index (high 24 bits) and the input slot
/// the node tests (low 8 bits); children are adjacent (`right = left + 1`). `threshold` is the
/// largest f32 not above the f64 threshold, so `x <= threshold` gives the same answer as
/// scikit-learn's float32-input-against-float64-threshold test for every f32 `x`. A leaf points
/// to itself (threshold +∞, so walking on stays put) and keeps its path length
/// (depth + c(n_samples)) in `leaf_values` at its own index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Node {
    threshold: f32,
    link: u32,
}

impl Node {
    pub(super) fn new(threshold: f32, slot: usize, left: usize) -> Node {
        Node {
            threshold,
            link: ((left as u32) << 8) | (slot as u32 & 0xff),
        }
    }
    pub(super) fn leaf(at: usize) -> Node {
        Node::new(f32::INFINITY, 0, at)
    }
    #[inline(always)]
    pub(super) fn left(self) -> u32 {
        self.link >> 8
    }
    #[inline(always)]
    pub(super) fn slot(self) -> usize {
        (self.link & (SLOTS as u32 - 1)) as usize
    }
    /// The next node for inputs `x`: left child, right child, or itself at a leaf.
    #[inline(always)]
    pub(super) fn step(self, x: &Inputs) -> u32 {
        self.left() + u32::from(x[self.slot()] > self.threshold)
    }
}

/// Number of input slots: a power of two above [`NUM_FEATURES`], so that a node's slot needs no
/// bounds check.
pub(super) const SLOTS: usize = 256;
/// Most model inputs: a feature may appear more than once with different transforms (e.g. as
/// it is and log-scaled); every input needs its own slot.
pub const MAX_INPUTS: usize = SLOTS;
const _: () = assert!(NUM_FEATURES <= SLOTS);

/// A flow's model inputs as f32, at the slots the nodes test.
pub(super) type Inputs = [f32; SLOTS];

/// Trees walked side by side when scoring one flow.
pub(super) const LANES: usize = 16;

/// Flows scored side by side by [`Model::score_many`].
pub(super) const BATCH: usize = 16;

/// Depth of a [`DenseTree`]: scikit-learn's and our depth limit for 256 samples.
pub(super) const DENSE_DEPTH: usize = 8;

/// A tree of depth ≤ [`DENSE_DEPTH`] as a complete binary tree in 1-based heap order (node `h`
/// has children `2h` and `2h+1`; the root is 1), so a walk needs no child pointers: each step is
/// `h = 2h + (x[slot[h]] > threshold[h])`, and after exactly [`DENSE_DEPTH`] steps `h - 256`
/// is the leaf. A leaf above the last level becomes a chain of nodes with threshold +∞ (always
/// left) down to the last level. The compiler sees `h < 256` before every step and
/// `256 ≤ h < 512` after the last, so the walk has no bounds checks and no branches.
#[derive(Clone, Debug)]
pub(super) struct DenseTree {
    pub(super) threshold: [f32; 256],
    pub(super) slot: [u8; 256],
    pub(super) leaf: [f64; 256],
}

/// Every tree of a model as [`DenseTree`]s, field by field.
#[derive(Clone, Debug, Default)]
pub(super) struct Dense {
    pub(super) threshold: Vec<[f32; 256]>,
    pub(super) slot: Vec<[u8; 256]>,
    pub(super) leaf: Vec<[f64; 256]>,
}

impl DenseTree {
    fn empty() -> DenseTree {
        DenseTree {
            threshold: [f32::INFINITY; 256],
            slot: [0; 256],
            leaf: [0.0; 256],
        }
    }

    /// Lays out the tree rooted at `root` of a flat node array (already validated).
    fn build(nodes: &[Node], leaf_values: &[f64], root: u32) -> Option<DenseTree> {
        let mut t = DenseTree::empty();
        // (flat index, heap index (1-based: children of h are 2h and 2h+1), depth)
        let mut stack = vec![(root, 1usize, 0usize)];
        while let Some((i, heap, depth)) = stack.pop() {
            let n = *nodes.get(i as usize)?;
            if n.left() == i {
                let mut h = heap;
                for _ in depth..DENSE_DEPTH {
                    h *= 2;
                }
                *t.leaf.get_mut(h.checked_sub(256)?)? = *leaf_values.get(i as usize)?;
                continue;
            }
            if depth >= DENSE_DEPTH {
                return None;
            }
            *t.threshold.get_mut(heap)? = n.threshold;
            *t.slot.get_mut(heap)? = u8::try_from(n.slot()).ok()?;
            stack.push((n.left(), 2 * heap, depth + 1));
            stack.push((n.left() + 1, 2 * heap + 1, depth + 1));
        }
        Some(t)
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
pub(super) fn f32_floor(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

/// Validates one tree and appends it in breadth-first order with adjacent children. Returns
/// the depth of its deepest leaf.
fn flatten_tree(
    t: &TreeFile,
    slots: &[usize],
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
    let blank = Node::leaf(0);
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
            out[at] = Node::leaf(at);
            leaf_values[at] = depth as f64 + average_path_length(t.n_samples[i] as f64);
            continue;
        }
        let l = idx(t.left[i], n, "left child", i)?;
        let r = idx(t.right[i], n, "right child", i)?;
        let f = idx(t.feature[i], slots.len(), "feature", i)?;
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
        out[at] = Node::new(f32_floor(t.threshold[i]), slots[f], left_at);
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

/// A forest laid out for scoring (the fields of [`super::Model`] that hold the trees).
pub(super) struct Layout {
    pub nodes: Vec<Node>,
    /// Path length at each leaf, indexed like `nodes` (0 at internal nodes).
    pub leaf_values: Vec<f64>,
    /// Tree roots, padded to a multiple of [`LANES`] with a leaf worth 0.
    pub roots: Vec<u32>,
    /// Deepest leaf of each group of [`LANES`] trees (`roots` in chunks).
    pub chunk_depth: Vec<u32>,
    /// The same trees as complete binary trees, when none is deeper than [`DENSE_DEPTH`].
    pub dense: Dense,
}

/// Validates and lays out `trees` (`total` nodes in all) with the input slot of each model
/// feature.
pub(super) fn lay_out(trees: &[TreeFile], slots: &[usize], total: usize) -> Result<Layout, String> {
    let mut nodes = Vec::with_capacity(total + 1);
    let mut leaf_values = Vec::with_capacity(total + 1);
    let mut roots = Vec::with_capacity(trees.len() + LANES);
    let mut depths = Vec::with_capacity(trees.len() + LANES);
    for (t, tree) in trees.iter().enumerate() {
        roots.push(nodes.len() as u32);
        let d = flatten_tree(tree, slots, &mut nodes, &mut leaf_values)
            .map_err(|m| format!("tree {t}: {m}"))?;
        depths.push(d as u32);
    }
    // A leaf worth 0 fills the last group of trees: it adds nothing to the sum.
    let pad = nodes.len();
    nodes.push(Node::leaf(pad));
    leaf_values.push(0.0);
    while roots.len() % LANES != 0 {
        roots.push(pad as u32);
        depths.push(0);
    }
    let chunk_depth = depths
        .chunks(LANES)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let mut dense = Dense::default();
    if depths.iter().all(|d| *d as usize <= DENSE_DEPTH) {
        for r in &roots {
            match DenseTree::build(&nodes, &leaf_values, *r) {
                Some(t) => {
                    dense.threshold.push(t.threshold);
                    dense.slot.push(t.slot);
                    dense.leaf.push(t.leaf);
                }
                None => {
                    dense = Dense::default();
                    break;
                }
            }
        }
    }
    Ok(Layout {
        nodes,
        leaf_values,
        roots,
        chunk_depth,
        dense,
    })
}
