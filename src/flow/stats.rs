//! Streaming summary statistics (count, sum, mean, sample variance, min, max) in O(1) memory,
//! the way the reference tool's `SummaryStatistics` reports them.

/// Welford accumulator.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    n: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Stats {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        if self.n == 1 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    pub fn n(&self) -> u64 {
        self.n
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
    /// Mean; 0 when empty.
    pub fn mean(&self) -> f64 {
        self.mean
    }
    /// Sample variance (n − 1); 0 for fewer than two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
    /// Sample standard deviation; 0 for fewer than two values.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }
    /// 0 when empty.
    pub fn min(&self) -> f64 {
        self.min
    }
    /// 0 when empty.
    pub fn max(&self) -> f64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_textbook_formulas() {
        let xs = [0.0, 447.0, 0.0, 0.0, 0.0, 0.0];
        let mut s = Stats::default();
        xs.iter().for_each(|x| s.add(*x));
        let mean = xs.iter().sum::<f64>() / 6.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert_eq!(s.n(), 6);
        assert!((s.mean() - 74.5).abs() < 1e-12);
        assert!((s.variance() - var).abs() < 1e-9);
        // The dataset's Fwd Packet Length Std for this flow.
        assert!((s.std() - 182.4869858373468).abs() < 1e-9);
        assert_eq!((s.min(), s.max(), s.sum()), (0.0, 447.0, 447.0));
    }

    #[test]
    fn empty_and_single() {
        let mut s = Stats::default();
        assert_eq!((s.mean(), s.std(), s.min(), s.max()), (0.0, 0.0, 0.0, 0.0));
        s.add(5.0);
        assert_eq!((s.mean(), s.std(), s.min(), s.max()), (5.0, 0.0, 5.0, 5.0));
    }
}
