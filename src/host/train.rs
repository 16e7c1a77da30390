//! Training the host model: benign captures go through the same pipeline and host context as
//! the daemon; every time a host is due for scoring its feature vector becomes a training row.
//! The forest is grown by [`crate::forest::train::grow`] on log1p-scaled features, and the
//! threshold is the score that a budget of those benign rows exceeds.

use std::path::Path;

use super::context::{HostConfig, HostContext};
use super::features::{HostFeature, HostVector, NUM_HOST_FEATURES};
use crate::capture::CaptureError;
use crate::features::FlowRecord;
use crate::flow::{FlowConfig, FlowReply, FlowSink, FlowStart};
use crate::forest::train::{self, Matrix, Params};
use crate::forest::{FORMAT, FORMAT_VERSION, Model, ModelFile, Provenance, Transform};
use crate::pipeline;

/// Feeds the host context from the flow table and keeps every vector scored.
struct Collect<'a> {
    ctx: &'a mut HostContext,
    rows: &'a mut Vec<HostVector>,
}

impl FlowSink for Collect<'_> {
    fn ended(&mut self, r: FlowRecord) {
        self.ctx.ended(&r);
    }
    fn started(&mut self, s: &FlowStart) {
        let rows = &mut *self.rows;
        self.ctx.on_start(s, |_, v, _| rows.push(*v));
    }
    fn replied(&mut self, r: &FlowReply) {
        self.ctx.replied(r);
    }
}

/// The host vectors a capture produces (one per host each time it is due for scoring).
pub fn collect(
    path: &Path,
    flow: FlowConfig,
    host: HostConfig,
) -> Result<Vec<HostVector>, CaptureError> {
    let mut ctx = HostContext::new(host);
    let mut rows = Vec::new();
    let mut sink = Collect {
        ctx: &mut ctx,
        rows: &mut rows,
    };
    pipeline::run_file(path, flow, &mut |_, _| {}, &mut sink)?;
    Ok(rows)
}

/// Training settings of a host model.
#[derive(Clone, Copy, Debug)]
pub struct HostTraining {
    pub params: Params,
    /// How far past a feature's largest benign value splits may fall ([`train::grow_padded`]).
    pub range_pad: f64,
    /// Share of rows dropped as most anomalous by a first forest before the final one is
    /// grown: captures "from the wild" hold the odd scan.
    pub trim: f64,
    /// Share of the kept rows allowed above the threshold.
    pub fpr_budget: f64,
    /// The threshold is never below this score.
    pub min_threshold: f64,
}

/// Grows a host model on benign rows; returns the model file and the rows kept after trimming.
pub fn fit(
    rows: &[HostVector],
    t: HostTraining,
    provenance: Provenance,
) -> Result<(ModelFile, usize), String> {
    let first = grow(rows, t, provenance.clone())?;
    let mut kept: Vec<HostVector> = rows.to_vec();
    if t.trim > 0.0 {
        let scores = score(&first, rows)?;
        let cut = train::quantile_threshold(&scores, t.trim);
        kept = rows
            .iter()
            .zip(&scores)
            .filter(|(_, s)| **s < cut)
            .map(|(r, _)| *r)
            .collect();
        if kept.is_empty() {
            kept = rows.to_vec();
        }
    }
    let mut file = grow(&kept, t, provenance)?;
    let scores = score(&file, &kept)?;
    file.threshold = train::quantile_threshold(&scores, t.fpr_budget).max(t.min_threshold);
    file.offset = -file.threshold;
    Ok((file, kept.len()))
}

fn score(file: &ModelFile, rows: &[HostVector]) -> Result<Vec<f64>, String> {
    let model = Model::from_file(file.clone())?;
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut scores = vec![0.0; rows.len()];
    model.score_rows(&flat, &mut scores);
    Ok(scores)
}

fn grow(rows: &[HostVector], t: HostTraining, provenance: Provenance) -> Result<ModelFile, String> {
    if rows.is_empty() {
        return Err("no host rows to train on (no host reached the scoring minimum)".into());
    }
    let tf = Transform::Log1p;
    let data: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.iter()
                .map(move |x| tf.apply(crate::forest::clean(*x)) as f32)
        })
        .collect();
    let (trees, max_samples) = train::grow_padded(
        &Matrix {
            data: &data,
            cols: NUM_HOST_FEATURES,
        },
        t.params,
        t.range_pad,
        |_| {},
    );
    Ok(ModelFile {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        features: HostFeature::all().map(|f| f.name().to_string()).collect(),
        transforms: vec![tf; NUM_HOST_FEATURES],
        max_samples: max_samples as u64,
        offset: -0.5,
        threshold: 0.5,
        trees,
        quantiles: Default::default(),
        provenance,
    })
}
