//! A forest fitted and exported by scikit-learn 1.5.2 (tests/parity/sklearn_parity.py --fixture)
//! scores every row exactly as scikit-learn's `-score_samples` did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use flowsentry::forest::Model;

#[test]
fn scores_equal_sklearn_score_samples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let model = Model::load(&dir.join("sklearn_small_model.json")).unwrap();
    assert_eq!(model.trees(), 10);
    let mut rdr = csv::Reader::from_path(dir.join("sklearn_small_scores.csv")).unwrap();
    let mut rows = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let vals: Vec<f64> = rec.iter().map(|c| c.parse().unwrap()).collect();
        let (x, want) = vals.split_at(vals.len() - 1);
        let got = model.score_values(x);
        assert!(
            (got - want[0]).abs() <= 1e-12,
            "row {rows}: ours {got} sklearn {}",
            want[0]
        );
        rows += 1;
    }
    assert_eq!(rows, 200);
}

#[test]
fn shipped_model_loads_and_uses_schema_features() {
    let m = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json")).unwrap();
    assert_eq!(m.trees(), 100);
    // The `shape` set: 3 spreads as they are, 5 sizes and 3 flag counts (FIN, SYN, RST)
    // log-scaled.
    assert_eq!(m.features().len(), 11);
    assert_eq!(m.file().provenance.params["fpr_budget"], 0.005);
    assert!(m.threshold() > 0.0 && m.threshold() < 1.0);
}

#[test]
fn batch_scoring_equals_single_scoring() {
    use flowsentry::features::{FlowRecord, NUM_FEATURES};
    use flowsentry::forest::train::Rng;
    let m = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json")).unwrap();
    let mut rng = Rng::new(9);
    let flows: Vec<FlowRecord> = (0..150)
        .map(|_| {
            let mut values = [0.0; NUM_FEATURES];
            for v in values.iter_mut() {
                *v = (rng.unit() * 1e5).floor();
            }
            FlowRecord::from_values(values)
        })
        .collect();
    let mut out = vec![0.0; flows.len()];
    m.score_many(&flows, &mut out);
    for (f, s) in flows.iter().zip(&out) {
        assert_eq!(m.score(f).to_bits(), s.to_bits());
    }
}
