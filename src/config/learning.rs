//! `[learning]`: the optional learning period (`src/learn/`). Off by default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::learn::LearnConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningSection {
    pub enabled: bool,
    /// The period ends after this many scored flows...
    pub flows: u64,
    /// ...or after this many hours of traffic (flow time), whichever comes first, once at least
    /// `min_flows` were seen.
    pub max_hours: f64,
    pub min_flows: u64,
    /// Flows kept for training: a uniform sample of the period (about 110 bytes each with the
    /// shipped model's 11 inputs: 8 per input and the source address).
    pub sample: usize,
    /// Share of the site's benign flows allowed to alert, counted on 30% of the sample held out
    /// of training.
    pub fpr_budget: f64,
    /// Where the learned model is written. While it exists the daemon scores with it and does
    /// not learn again: delete it to learn anew. Relative paths are taken from the config
    /// file's folder.
    pub output: PathBuf,
}

impl Default for LearningSection {
    fn default() -> Self {
        LearningSection {
            enabled: false,
            flows: 1_000_000,
            max_hours: 168.0,
            min_flows: 10_000,
            sample: 100_000,
            fpr_budget: 0.005,
            output: PathBuf::from("/var/lib/flowsentry/site-forest.json"),
        }
    }
}

/// Held-out share of the sample the threshold is set on.
const HOLDOUT: f64 = 0.3;
/// The learned forest's seed (the shipped model's).
const SEED: u64 = 42;

impl LearningSection {
    pub(super) fn problems(&self, cfg: &Config, p: &mut Vec<String>) {
        if !self.enabled {
            return;
        }
        if !(self.fpr_budget.is_finite() && self.fpr_budget > 0.0 && self.fpr_budget < 0.5) {
            p.push(format!(
                "learning.fpr_budget must be in (0, 0.5), e.g. 0.005, got {}",
                self.fpr_budget
            ));
        }
        if !(self.max_hours.is_finite() && self.max_hours > 0.0 && self.max_hours <= 8760.0) {
            p.push(format!(
                "learning.max_hours must be in (0, 8760], got {}",
                self.max_hours
            ));
        }
        if !(1000..=1_000_000).contains(&self.sample) {
            p.push(format!(
                "learning.sample must be 1000 to 1000000 flows, got {}",
                self.sample
            ));
        }
        if self.min_flows < 1000 || self.min_flows > self.flows {
            p.push(format!(
                "learning.min_flows must be at least 1000 and at most learning.flows ({}), got {}",
                self.flows, self.min_flows
            ));
        }
        if cfg.model.threshold.is_some() {
            p.push(
                "learning.enabled with model.threshold: the learned model sets its own threshold from learning.fpr_budget; remove model.threshold".into(),
            );
        }
        if cfg.capture.workers > 1 {
            p.push("learning.enabled needs capture.workers = 1".into());
        }
        match self.output.parent() {
            Some(d) if d.as_os_str().is_empty() || d.is_dir() => {}
            Some(d) => p.push(format!(
                "learning.output: folder {} does not exist",
                d.display()
            )),
            None => p.push("learning.output must name a file".into()),
        }
    }

    /// The learned model, when the learning period is on and has produced it.
    pub fn learned_model(&self) -> Option<&PathBuf> {
        (self.enabled && self.output.is_file()).then_some(&self.output)
    }

    /// The learning period to run: on, and no learned model yet.
    pub fn learn_config(&self) -> Option<LearnConfig> {
        (self.enabled && !self.output.exists()).then(|| LearnConfig {
            flows: self.flows,
            max_duration_us: (self.max_hours * 3.6e9).round() as i64,
            min_flows: self.min_flows,
            sample: self.sample,
            fpr_budget: self.fpr_budget,
            holdout: HOLDOUT,
            seed: SEED,
            output: self.output.clone(),
        })
    }
}
