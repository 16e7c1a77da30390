//! Where each feature's values fell in a model's training data: per model feature, the cleaned
//! raw value at fixed percentile levels, stored in the model file by `flowsentry train` so an
//! alert can say "4149 bytes: above 99% of the training flows". Optional in the file: models
//! written before it (or exported from scikit-learn) load without it, and alerts then carry no
//! percentile.

use serde::{Deserialize, Serialize};

use super::clean;

/// Percentile levels stored: fine at the tails, where anomalies sit.
pub const LEVELS: [f64; 25] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0,
    70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 98.0, 99.0, 100.0,
];

/// The `quantiles` object of a model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantiles {
    /// Percentile levels, ascending, within 0..=100.
    pub levels: Vec<f64>,
    /// Per model feature (model order): the cleaned raw training value at each level
    /// (linear interpolation between order statistics, numpy's default).
    pub values: Vec<Vec<f64>>,
    /// Training rows they summarise.
    pub rows: u64,
}

impl Quantiles {
    /// Computes the quantiles of row-major `values` with `cols` columns (raw feature values,
    /// cleaned here as the model cleans them).
    pub fn compute(values: &[f64], cols: usize) -> Quantiles {
        let rows = values.len().checked_div(cols).unwrap_or(0);
        let mut col = Vec::with_capacity(rows);
        let per_feature = (0..cols)
            .map(|c| {
                col.clear();
                col.extend(values.iter().skip(c).step_by(cols).map(|v| clean(*v)));
                col.sort_by(f64::total_cmp);
                LEVELS.iter().map(|p| at(&col, *p)).collect()
            })
            .collect();
        Quantiles {
            levels: LEVELS.to_vec(),
            values: per_feature,
            rows: rows as u64,
        }
    }

    /// Checks the object against a model with `features` features.
    pub fn validate(&self, features: usize) -> Result<(), String> {
        let l = &self.levels;
        if l.len() < 2 || l.len() > 1001 {
            return Err(format!("quantiles: {} levels; expected 2 to 1001", l.len()));
        }
        if l.iter().any(|p| !(0.0..=100.0).contains(p)) || l.windows(2).any(|w| w[0] >= w[1]) {
            return Err("quantiles: levels must rise strictly within 0..100".into());
        }
        if self.values.len() != features {
            return Err(format!(
                "quantiles: {} rows of values for {features} features",
                self.values.len()
            ));
        }
        for (i, v) in self.values.iter().enumerate() {
            if v.len() != l.len() {
                return Err(format!(
                    "quantiles: feature {i} has {} values for {} levels",
                    v.len(),
                    l.len()
                ));
            }
            if v.iter().any(|x| !x.is_finite()) || v.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!(
                    "quantiles: feature {i}: values must be finite and non-decreasing"
                ));
            }
        }
        Ok(())
    }

    /// The share of training values at or below `raw` for model feature `i`, in percent
    /// (interpolated between the stored levels); `None` if `i` is out of range.
    pub fn percentile(&self, i: usize, raw: f64) -> Option<f64> {
        let q = self.values.get(i)?;
        let (first, last) = (*q.first()?, *q.last()?);
        let v = clean(raw);
        if v < first {
            return Some(0.0);
        }
        if v >= last {
            return Some(100.0);
        }
        // Levels whose value is ≤ v; v < last, so j < len.
        let j = q.partition_point(|x| *x <= v);
        let (lo, hi) = (j - 1, j);
        if q[lo] == v {
            return Some(self.levels[lo]);
        }
        let t = (v - q[lo]) / (q[hi] - q[lo]);
        Some(self.levels[lo] + t * (self.levels[hi] - self.levels[lo]))
    }
}

/// Quantile at level `p` (percent) of sorted `s`, linear between order statistics.
fn at(s: &[f64], p: f64) -> f64 {
    match s.len() {
        0 => 0.0,
        n => {
            let pos = p / 100.0 * (n - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            let a = s[i.min(n - 1)];
            let b = s[(i + 1).min(n - 1)];
            a + frac * (b - a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_column() {
        // One feature, values 1..=101: the value at level p is p + 1.
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        let q = Quantiles::compute(&v, 1);
        assert_eq!(q.rows, 101);
        assert_eq!(q.values[0][LEVELS.len() - 1], 101.0);
        assert_eq!(q.values[0][12], 51.0); // median
        assert!(q.validate(1).is_ok());
        assert_eq!(q.percentile(0, 0.0), Some(0.0));
        assert_eq!(q.percentile(0, 51.0), Some(50.0));
        assert_eq!(q.percentile(0, 1000.0), Some(100.0));
        let p = q.percentile(0, 97.5).unwrap_or(-1.0);
        assert!((p - 96.5).abs() < 1e-9, "{p}");
        assert_eq!(q.percentile(1, 5.0), None);
    }

    #[test]
    fn a_plateau_reports_its_top_level() {
        // 60% zeros: a zero is at or below 60% of the training values... reported as the
        // highest stored level whose value is 0 (60).
        let mut v = vec![0.0; 60];
        v.extend((1..=40).map(f64::from));
        let q = Quantiles::compute(&v, 1);
        let p = q.percentile(0, 0.0).unwrap_or(-1.0);
        assert!((55.0..=60.0).contains(&p), "{p}");
    }

    #[test]
    fn bad_objects_are_refused() {
        let mut q = Quantiles::compute(&[1.0, 2.0, 3.0, 4.0], 2);
        assert!(q.validate(2).is_ok());
        assert!(q.validate(3).is_err());
        q.values[0][3] = -5.0;
        assert!(q.validate(2).is_err());
        q.levels[0] = 200.0;
        assert!(q.validate(2).is_err());
    }
}
