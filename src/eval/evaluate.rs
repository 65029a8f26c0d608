//! The in-memory entry points the training loops and the demo call.

use crate::data::ddi::DdiPairs;
use crate::data::record::Record;
use crate::data::vocab::Vocab;
use crate::eval::ddi::DdiCounter;
use crate::eval::metrics::{mean_average_precision, Threshold};
use crate::eval::report::{build_report, MetricsReport};
use crate::eval::resample::ResampleOptions;
use crate::eval::scoring::{targets, Scorer};
use crate::nn::parallel::threads;
use anyhow::{ensure, Result};

/// Checks that `probabilities` holds one row of M values per record.
fn check_shape(records: &[Record], probabilities: &[f32], vocab: &Vocab) -> Result<usize> {
    let m = vocab.num_medications();
    ensure!(
        probabilities.len() == records.len() * m,
        "{} probabilities for {} records × {m} medications (expected {})",
        probabilities.len(),
        records.len(),
        records.len() * m
    );
    Ok(m)
}

/// All metrics of `probabilities` (row-major, one row of M = vocab medications per record, in
/// `vocab.json` medication order) for every group, with resampled mean ± std (rounds on every core).
pub fn evaluate(
    records: &[Record],
    probabilities: &[f32],
    vocab: &Vocab,
    ddi: Option<&DdiPairs>,
    threshold: Threshold,
    opts: &ResampleOptions,
) -> Result<MetricsReport> {
    let m = check_shape(records, probabilities, vocab)?;
    let scorer = Scorer::new(threshold, ddi.map(|d| DdiCounter::new(d, vocab)), m);
    let outcomes: Vec<_> =
        targets(records, vocab)?.iter().zip(probabilities.chunks_exact(m)).map(|(t, p)| scorer.score(t, p)).collect();
    Ok(build_report(&outcomes, threshold, scorer.has_ddi(), opts, None, threads(0)))
}

/// The mean per-record PRAUC alone (no threshold, no resampling): the validation score for early
/// stopping, as the reference's trainer uses it.
pub fn mean_prauc(records: &[Record], probabilities: &[f32], vocab: &Vocab) -> Result<f64> {
    let m = check_shape(records, probabilities, vocab)?;
    ensure!(!records.is_empty(), "mean PRAUC of no records");
    let targets = targets(records, vocab)?;
    Ok(mean_average_precision(targets.iter().map(|t| t.labels.as_slice()).zip(probabilities.chunks_exact(m))))
}
