//! From rows to a model file: the training core shared by `flowsentry train` (rows from CSVs or
//! flow events) and the daemon's learning period (rows collected live). Rows are raw feature
//! values, row-major, one column per model input; cleaning and transforms happen here, as in
//! scoring.

use super::train::{self, Matrix, Params};
use super::{FORMAT, FORMAT_VERSION, Model, ModelFile, Provenance, Quantiles, Transform, clean};
use crate::features::Feature;

/// Grows a forest on `raw` rows (`features.len()` values each). The threshold is scikit-learn's
/// default (0.5) until [`calibrate`] sets it; `provenance` names the trainer, the rows and the
/// parameters, and the caller adds the files it read.
pub fn fit(
    raw: &[f64],
    features: &[Feature],
    transforms: &[Transform],
    p: Params,
    trainer: &str,
    on_tree: impl FnMut(usize),
) -> Result<ModelFile, String> {
    let cols = features.len();
    if cols == 0 || transforms.len() != cols {
        return Err(format!(
            "{} features and {} transforms: need one transform per feature",
            cols,
            transforms.len()
        ));
    }
    let rows = raw.len() / cols;
    if rows < 2 {
        return Err(format!("only {rows} training rows; need at least 2"));
    }
    let x: Vec<f32> = raw
        .iter()
        .zip(transforms.iter().cycle())
        .map(|(v, t)| t.apply(clean(*v)) as f32)
        .collect();
    let (trees, max_samples) = train::grow(&Matrix { data: &x, cols }, p, on_tree);
    let mut params = serde_json::Map::new();
    params.insert("trees".into(), p.trees.into());
    params.insert("sample_size".into(), p.sample_size.into());
    params.insert("seed".into(), p.seed.into());
    let file = ModelFile {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        features: features.iter().map(|f| f.name().to_string()).collect(),
        transforms: transforms.to_vec(),
        max_samples: max_samples as u64,
        offset: -0.5,
        threshold: 0.5,
        trees,
        provenance: Provenance {
            trainer: trainer.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            training_files: Vec::new(),
            rows_used: rows as u64,
            params,
            notes: String::new(),
        },
        quantiles: Some(Quantiles::compute(raw, cols)),
    };
    Model::from_file(file.clone())?;
    Ok(file)
}

/// Sets `file`'s threshold from a false-alarm budget: a share `budget` of the benign
/// `calibration` rows (raw, never trained on) scores above it. Returns how many do.
pub fn calibrate(file: &mut ModelFile, calibration: &[f64], budget: f64) -> Result<usize, String> {
    let cols = file.features.len().max(1);
    let n = calibration.len() / cols;
    if n == 0 {
        return Err("no calibration rows for the false-alarm budget".into());
    }
    let model = Model::from_file(file.clone())?;
    let mut scores = vec![0.0; n];
    model.score_rows(calibration, &mut scores);
    file.threshold = train::quantile_threshold(&scores, budget);
    file.offset = -file.threshold;
    Ok(scores.iter().filter(|s| **s > file.threshold).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::train::Rng;

    fn rows(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        // Clustered (a sum of uniforms), so a far point stands out.
        (0..n * 2)
            .map(|_| 25.0 * (rng.unit() + rng.unit() + rng.unit() + rng.unit()))
            .collect()
    }

    #[test]
    fn fits_and_calibrates_to_the_budget() {
        let features = [Feature::FlowDuration, Feature::TotalFwdPackets];
        let t = [Transform::None, Transform::Log1p];
        let p = Params {
            trees: 50,
            sample_size: 64,
            seed: 3,
        };
        let mut file = fit(&rows(500, 1), &features, &t, p, "test", |_| {}).unwrap();
        assert_eq!(file.provenance.rows_used, 500);
        assert_eq!(file.threshold, 0.5);
        let cal = rows(1000, 2);
        let over = calibrate(&mut file, &cal, 0.01).unwrap();
        assert!(over <= 10, "{over} of 1,000 over a 1% budget");
        assert!(file.threshold > 0.3 && file.threshold < 0.9);
        // Far outside the training range scores above the threshold.
        let m = Model::from_file(file.clone()).unwrap();
        assert!(m.score_values(&[1e9, 1e9]) > file.threshold);
    }

    #[test]
    fn refuses_too_few_rows_and_mismatched_transforms() {
        let p = Params {
            trees: 5,
            sample_size: 8,
            seed: 1,
        };
        let f = [Feature::FlowDuration];
        assert!(fit(&[1.0], &f, &[Transform::None], p, "t", |_| {}).is_err());
        assert!(fit(&[1.0, 2.0], &f, &[], p, "t", |_| {}).is_err());
        let mut file = fit(&[1.0, 2.0, 3.0], &f, &[Transform::None], p, "t", |_| {}).unwrap();
        assert!(calibrate(&mut file, &[], 0.01).is_err());
    }
}
