//! Learning the site (optional, `[learning]`). For a learning period the daemon keeps a bounded
//! uniform sample (a reservoir) of the flows it scores; when the period is over it grows a
//! forest on them in a background thread — the running model's features, transforms and forest
//! size, the threshold from a false-alarm budget on a held-out share of the sample — saves it to
//! `learning.output`, and the daemon scores with it from then on.
//!
//! The running model keeps alerting during the period. Sources a host or session alert names
//! are forgotten (their sampled flows dropped, later ones not taken): a scanner or a password
//! guesser active while the sensor learns does not teach the model its traffic. An attack the
//! sensor does not see during the period is learned as normal: that is the poisoning risk.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;

use thiserror::Error;

use crate::features::{Feature, FlowRecord};
use crate::forest::train::{self, Params, Rng};
use crate::forest::{Model, ModelFile, Transform, fit};

/// What the learning period is and where its model goes (built from `[learning]`).
#[derive(Clone, Debug, PartialEq)]
pub struct LearnConfig {
    /// The period ends after this many scored flows...
    pub flows: u64,
    /// ...or this much flow time (µs) after the first, whichever comes first, provided
    /// `min_flows` were seen.
    pub max_duration_us: i64,
    pub min_flows: u64,
    /// Flows kept (the reservoir); a uniform sample of every flow of the period.
    pub sample: usize,
    /// Share of benign flows allowed to alert, counted on the held-out share.
    pub fpr_budget: f64,
    pub holdout: f64,
    pub seed: u64,
    pub output: PathBuf,
}

#[derive(Debug, Error)]
pub enum LearnError {
    #[error("learning period: training failed: {0}")]
    Train(String),
    #[error("learning period: training thread panicked")]
    Panicked,
    #[error("learning period: cannot save the learned model: {0}")]
    Save(#[from] crate::forest::ModelError),
}

/// A model the learning period produced, saved at `path`.
pub struct Learned {
    pub model: Model,
    pub path: PathBuf,
    pub flows_seen: u64,
    pub rows: usize,
    pub threshold: f64,
}

enum State {
    Collecting,
    Training(JoinHandle<Result<ModelFile, String>>),
    Done,
}

/// The learning period's state: the reservoir, then the training thread.
pub struct Learner {
    cfg: LearnConfig,
    features: Vec<Feature>,
    transforms: Vec<Transform>,
    params: Params,
    /// Reservoir rows (raw values, `features.len()` each) and each row's source.
    rows: Vec<f64>,
    sources: Vec<IpAddr>,
    forgotten: HashSet<IpAddr>,
    seen: u64,
    first_us: Option<i64>,
    rng: Rng,
    state: State,
}

/// Forgotten sources kept at most (a flood of alerts must not grow memory without bound).
const MAX_FORGOTTEN: usize = 65_536;

impl Learner {
    /// A learner for a model like `model` (its features, transforms, trees and sample size).
    pub fn new(cfg: LearnConfig, model: &Model) -> Learner {
        let file = model.file();
        let params = Params {
            trees: model.trees(),
            sample_size: (file.max_samples as usize).max(2),
            seed: cfg.seed,
        };
        Learner {
            features: model.features().to_vec(),
            transforms: file.transforms.clone(),
            params,
            rows: Vec::new(),
            sources: Vec::new(),
            forgotten: HashSet::new(),
            seen: 0,
            first_us: None,
            rng: Rng::new(cfg.seed),
            state: State::Collecting,
            cfg,
        }
    }

    /// Flows seen in the period so far and flows kept.
    pub fn progress(&self) -> (u64, usize) {
        (self.seen, self.sources.len())
    }

    pub fn collecting(&self) -> bool {
        matches!(self.state, State::Collecting)
    }

    /// Offers scored flows to the sample; starts training when the period is over.
    pub fn offer(&mut self, flows: &[FlowRecord]) {
        if !self.collecting() {
            return;
        }
        for r in flows {
            if self.forgotten.contains(&r.src_ip) {
                continue;
            }
            let first = *self.first_us.get_or_insert(r.end_us);
            self.seen += 1;
            let kept = self.sources.len();
            let slot = if kept < self.cfg.sample {
                Some(kept)
            } else {
                // Reservoir sampling: the n-th flow replaces a kept one with chance sample/n.
                let j = self.rng.below(self.seen as usize);
                (j < self.cfg.sample).then_some(j)
            };
            if let Some(i) = slot {
                let cols = self.features.len();
                let values = self.features.iter().map(|f| r.get(*f));
                if i == kept {
                    self.rows.extend(values);
                    self.sources.push(r.src_ip);
                } else {
                    for (dst, v) in self.rows[i * cols..(i + 1) * cols].iter_mut().zip(values) {
                        *dst = v;
                    }
                    self.sources[i] = r.src_ip;
                }
            }
            let over = self.seen >= self.cfg.flows
                || r.end_us.saturating_sub(first) >= self.cfg.max_duration_us;
            if over && self.seen >= self.cfg.min_flows {
                self.start_training();
                return;
            }
        }
    }

    /// Drops what was sampled from `ip` and takes no more of its flows (it was named by a host
    /// or session alert).
    pub fn forget(&mut self, ip: IpAddr) {
        if !self.collecting() || self.forgotten.len() >= MAX_FORGOTTEN {
            return;
        }
        if !self.forgotten.insert(ip) {
            return;
        }
        let cols = self.features.len();
        let mut keep = 0;
        for i in 0..self.sources.len() {
            if self.sources[i] != ip {
                self.sources.swap(keep, i);
                for c in 0..cols {
                    self.rows.swap(keep * cols + c, i * cols + c);
                }
                keep += 1;
            }
        }
        self.sources.truncate(keep);
        self.rows.truncate(keep * cols);
    }

    fn start_training(&mut self) {
        tracing::info!(
            "learning period: {} flows seen; training on a sample of {} in the background",
            self.seen,
            self.sources.len()
        );
        let rows = std::mem::take(&mut self.rows);
        self.sources = Vec::new();
        self.forgotten = HashSet::new();
        let (features, transforms, params) =
            (self.features.clone(), self.transforms.clone(), self.params);
        let (budget, holdout, seen) = (self.cfg.fpr_budget, self.cfg.holdout, self.seen);
        let spawned = std::thread::Builder::new()
            .name("learn".into())
            .spawn(move || {
                let cols = features.len();
                let (kept, held) = train::hold_out(&rows, cols, holdout, params.seed);
                let trainer = format!("flowsentry {} learning period", env!("CARGO_PKG_VERSION"));
                let mut file = fit::fit(&kept, &features, &transforms, params, &trainer, |_| {})?;
                let over = fit::calibrate(&mut file, &held, budget)?;
                file.provenance.notes = format!(
                    "learned from a uniform sample of {} of {seen} flows of the learning period; threshold from a false-alarm budget of {budget}: {over} of {} held-out flows score above it",
                    rows.len() / cols.max(1),
                    held.len() / cols.max(1)
                );
                Ok(file)
            });
        self.state = match spawned {
            Ok(h) => State::Training(h),
            Err(e) => {
                tracing::error!("learning period: cannot start the training thread: {e}");
                State::Done
            }
        };
    }

    /// The learned model once training has finished (saved to `output`); `wait` blocks until
    /// then (end of a replay). `None` while collecting or training, and after it was taken.
    pub fn poll(&mut self, wait: bool) -> Option<Result<Learned, LearnError>> {
        let State::Training(h) = &self.state else {
            return None;
        };
        if !wait && !h.is_finished() {
            return None;
        }
        let State::Training(h) = std::mem::replace(&mut self.state, State::Done) else {
            return None;
        };
        Some(self.finish(h))
    }

    fn finish(&self, h: JoinHandle<Result<ModelFile, String>>) -> Result<Learned, LearnError> {
        let file = h
            .join()
            .map_err(|_| LearnError::Panicked)?
            .map_err(LearnError::Train)?;
        // Written whole, then renamed: a crash never leaves half a model where the next start
        // looks for it.
        let tmp = self.cfg.output.with_extension("json.tmp");
        Model::save(&file, &tmp)?;
        std::fs::rename(&tmp, &self.cfg.output).map_err(|source| {
            crate::forest::ModelError::Write {
                path: self.cfg.output.clone(),
                source,
            }
        })?;
        let threshold = file.threshold;
        let rows = file.provenance.rows_used as usize;
        let model = Model::from_file(file).map_err(LearnError::Train)?;
        Ok(Learned {
            model,
            path: self.cfg.output.clone(),
            flows_seen: self.seen,
            rows,
            threshold,
        })
    }
}

#[cfg(test)]
mod tests;
