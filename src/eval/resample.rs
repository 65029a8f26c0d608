//! Resampled confidence: the reference's rounds of an 80% subsample without replacement (mean and
//! population std, `utils/utils.py:302-325`) and an optional percentile bootstrap interval.

use crate::nn::rng::TensorRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResampleOptions {
    /// Subsampling rounds (reference: 10); 0 reports no mean/std.
    pub rounds: usize,
    /// Fraction of records per round, drawn without replacement (reference: 0.8).
    pub fraction: f64,
    pub seed: u64,
    /// Bootstrap resamples for a 95% percentile interval; 0 turns it off.
    pub bootstrap: usize,
}

impl Default for ResampleOptions {
    fn default() -> Self {
        Self { rounds: 10, fraction: 0.8, seed: 42, bootstrap: 0 }
    }
}

/// Round `round`'s subsample: `floor(fraction·n)` distinct indices (as the reference's
/// `int(0.8·n)` after a shuffle), drawn by a partial Fisher–Yates shuffle from its own seeded stream.
pub fn subsample(n: usize, fraction: f64, seed: u64, round: usize) -> Vec<usize> {
    let k = ((fraction * n as f64).floor() as usize).min(n);
    let mut rng = TensorRng::derive(seed, &[0, round as u64]);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        indices.swap(i, j);
    }
    indices.truncate(k);
    indices
}

/// Bootstrap resample `b`: n indices drawn with replacement.
pub fn bootstrap_sample(n: usize, seed: u64, b: usize) -> Vec<usize> {
    let mut rng = TensorRng::derive(seed, &[1, b as u64]);
    (0..n).map(|_| rng.below(n)).collect()
}

/// Mean and population standard deviation (NumPy `std`, ddof 0); `None` for no values.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// The `q`-th percentile (0..=100) with linear interpolation between order statistics (NumPy's
/// default); `None` for no values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}
