//! Label-only baselines: scores that use no model, a floor every model must beat.

use crate::eval::scoring::Target;
use serde::Serialize;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Every record gets each drug's share of training records that were prescribed it.
    Frequency,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Frequency => "frequency",
        }
    }
}

/// The fraction of `train` records whose labels hold each medication.
pub fn label_frequency(train: &[Target], num_medications: usize) -> Vec<f32> {
    let mut counts = vec![0usize; num_medications];
    train.iter().flat_map(|t| &t.labels).for_each(|&i| counts[i] += 1);
    let n = train.len().max(1) as f64;
    counts.into_iter().map(|c| (c as f64 / n) as f32).collect()
}
