use super::*;
use crate::features::NUM_FEATURES;

const F: [Feature; 2] = [Feature::FlowDuration, Feature::TotalFwdPackets];

fn base_model() -> Model {
    // Any model with two inputs: the learner copies its shape, not its trees.
    let raw: Vec<f64> = (0..64).flat_map(|i| [i as f64, 1.0]).collect();
    let p = Params {
        trees: 20,
        sample_size: 32,
        seed: 1,
    };
    let t = [Transform::None, Transform::Log1p];
    Model::from_file(fit::fit(&raw, &F, &t, p, "test", |_| {}).unwrap()).unwrap()
}

fn flow(src: u8, duration: f64, packets: f64, end_us: i64) -> FlowRecord {
    let mut v = [0.0; NUM_FEATURES];
    v[Feature::FlowDuration as usize] = duration;
    v[Feature::TotalFwdPackets as usize] = packets;
    let mut r = FlowRecord::from_values(v);
    r.src_ip = IpAddr::from([10, 0, 0, src]);
    r.end_us = end_us;
    r
}

fn cfg(dir: &std::path::Path, flows: u64, sample: usize) -> LearnConfig {
    LearnConfig {
        flows,
        max_duration_us: i64::MAX,
        min_flows: 100,
        sample,
        fpr_budget: 0.01,
        holdout: 0.3,
        seed: 7,
        output: dir.join("learned.json"),
    }
}

/// Site traffic: durations clustered around 1,500 µs (1,000-2,000), 3-6 packets, from ten
/// clients.
fn site(n: usize, t0: i64) -> Vec<FlowRecord> {
    let mut rng = Rng::new(11);
    (0..n)
        .map(|i| {
            let d = 1000.0 + 250.0 * (rng.unit() + rng.unit() + rng.unit() + rng.unit());
            let p = 3.0 + (3.0 * rng.unit()).floor();
            flow((i % 10) as u8, d, p, t0 + i as i64 * 1000)
        })
        .collect()
}

#[test]
fn learns_the_site_after_the_period_and_saves_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Learner::new(cfg(dir.path(), 3000, 1000), &base_model());
    l.offer(&site(2999, 0));
    assert!(l.collecting());
    assert_eq!(
        l.progress(),
        (2999, 1000),
        "the reservoir stays at its size"
    );
    assert!(
        l.poll(true).is_none(),
        "nothing to learn before the period ends"
    );
    l.offer(&site(10, 3_000_000));
    assert!(!l.collecting());
    let learned = l.poll(true).expect("trained").expect("saved");
    assert_eq!(learned.flows_seen, 3000);
    assert_eq!(learned.rows, 700, "70% of the 1,000 kept rows trained on");
    let loaded = Model::load(&learned.path).unwrap();
    assert_eq!(loaded.threshold(), learned.threshold);
    assert_eq!(loaded.features(), &F);
    assert!(loaded.file().provenance.notes.contains("of 3000 flows"));
    // Site-like flows mostly pass; a flow unlike the site alerts.
    let normal = site(500, 0)
        .iter()
        .filter(|r| loaded.score(r) > learned.threshold)
        .count();
    assert!(
        normal <= 25,
        "{normal} of 500 site flows over the threshold"
    );
    let odd = loaded.score(&flow(1, 9e8, 5000.0, 0));
    assert!(odd > learned.threshold, "{odd} vs {}", learned.threshold);
    assert!(l.poll(true).is_none(), "the model is handed over once");
    l.offer(&site(10, 0));
    assert_eq!(
        l.progress().0,
        3000,
        "nothing is collected after the period"
    );
}

#[test]
fn alerted_sources_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Learner::new(cfg(dir.path(), 10_000, 5000), &base_model());
    l.offer(&site(1000, 0));
    assert_eq!(l.progress(), (1000, 1000));
    l.forget(IpAddr::from([10, 0, 0, 3]));
    assert_eq!(
        l.progress(),
        (1000, 900),
        "its 100 sampled flows are dropped"
    );
    assert!(l.sources.iter().all(|s| *s != IpAddr::from([10, 0, 0, 3])));
    assert_eq!(l.rows.len(), 900 * F.len());
    l.offer(&site(1000, 0));
    assert_eq!(
        l.progress(),
        (1900, 1800),
        "and its later flows are not taken"
    );
    // The rows still belong to their sources: every kept row of source 3 is gone and the
    // others' values are intact (site values only).
    assert!(l.rows.chunks(2).all(|r| r[0] >= 1000.0 && r[1] >= 3.0));
}

#[test]
fn the_period_ends_on_flow_time_once_enough_flows_were_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), u64::MAX, 1000);
    c.max_duration_us = 1_000_000;
    let mut l = Learner::new(c, &base_model());
    // 50 flows spread over 2 s: the time is up but 100 flows are needed.
    let sparse: Vec<FlowRecord> = site(50, 0)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.end_us = i as i64 * 40_000;
            r
        })
        .collect();
    l.offer(&sparse);
    assert!(l.collecting());
    l.offer(&site(60, 2_000_000));
    assert!(!l.collecting(), "the 100th flow ends the period");
    assert_eq!(l.progress().0, 100);
    assert!(l.poll(true).expect("trained").is_ok());
}

#[test]
fn a_failed_save_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 200, 200);
    c.output = dir.path().join("missing-dir").join("learned.json");
    let mut l = Learner::new(c, &base_model());
    l.offer(&site(200, 0));
    match l.poll(true) {
        Some(Err(LearnError::Save(_))) => {}
        other => panic!(
            "expected a save error, got {:?}",
            other.map(|r| r.map(|l| l.path))
        ),
    }
}
