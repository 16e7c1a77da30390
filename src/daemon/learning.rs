//! The learning period in `run` and `replay`: starting it, and swapping its model in.

use std::cell::RefCell;
use std::sync::Arc;

use super::Scorer;
use super::emit::Detect;
use crate::config::Config;
use crate::learn::Learner;

/// The learning period to run, if `[learning]` is on and has not produced a model yet.
pub fn start(cfg: &Config, scorer: &Scorer) -> Option<Learner> {
    if let Some(p) = cfg.learning.learned_model() {
        tracing::info!(
            "learning period over: scoring with the site model {} (delete it to learn again)",
            p.display()
        );
    }
    let c = cfg.learning.learn_config()?;
    tracing::info!(
        "learning period: sampling up to {} of the next {} flows (or {} h) to learn the site; {} alerts meanwhile",
        c.sample,
        c.flows,
        cfg.learning.max_hours,
        scorer.origin.model
    );
    Some(Learner::new(c, &scorer.model))
}

/// When the learning period's model is ready (`wait`: block until training ends, as replay
/// does so its output does not depend on timing), scores with it from now on. True when the
/// model changed.
pub fn swap_in(detect: &mut Detect, scorer: &mut Scorer, wait: bool) -> bool {
    let Some(l) = detect.learn.as_mut() else {
        return false;
    };
    if l.collecting() {
        return false;
    }
    let Some(done) = l.poll(wait) else {
        return false;
    };
    detect.learn = None;
    match done {
        Ok(m) => {
            tracing::info!(
                "learning period over: trained on {} of {} flows, threshold {:.6}; scoring with the site model {} from now on",
                m.rows,
                m.flows_seen,
                m.threshold,
                m.path.display()
            );
            scorer.threshold = m.threshold;
            scorer.cache = RefCell::new(m.model.score_cache());
            scorer.model = Arc::new(m.model);
            scorer.origin.model = m
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            true
        }
        Err(e) => {
            tracing::error!("{e}; keeping the running model");
            false
        }
    }
}

/// The learning period's progress for the stats log, while it samples.
pub fn progress(detect: &Detect, cfg: &Config) -> Option<String> {
    let l = detect.learn.as_ref().filter(|l| l.collecting())?;
    let (seen, kept) = l.progress();
    Some(format!(
        "learning: {seen} of {} flows seen, {kept} kept",
        cfg.learning.flows
    ))
}
