//! Per-record metrics exactly as the reference computes them (reference doc §6): Jaccard, precision,
//! recall and F1 of the thresholded prediction, and sklearn's `average_precision_score` over the M
//! medications as PRAUC.

/// The decision rule turning a probability into "prescribed". The reference uses `p > 0.3` for the
/// student and `p >= 0.5` for the teacher. The comparison is made in f32, as NumPy compares a float32
/// probability array with a Python float.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: f32,
    /// `>=` when true, `>` when false.
    pub inclusive: bool,
}

impl Threshold {
    pub fn predicts(&self, p: f32) -> bool {
        if self.inclusive {
            p >= self.value
        } else {
            p > self.value
        }
    }

    /// The comparison as written in reports: `>` or `>=`.
    pub fn rule(&self) -> &'static str {
        if self.inclusive {
            ">="
        } else {
            ">"
        }
    }
}

/// The metrics of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordScores {
    pub jaccard: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub prauc: f64,
    pub num_predicted: usize,
}

/// sklearn's `average_precision_score` for one record: Σ_n (R_n − R_{n−1})·P_n over the distinct
/// score thresholds taken in decreasing order (tied scores enter together). 0 when there is no
/// positive label.
pub fn average_precision(truth: &[bool], scores: &[f32]) -> f64 {
    assert_eq!(truth.len(), scores.len(), "labels and scores differ in length");
    let labels: Vec<usize> = truth.iter().enumerate().filter(|(_, t)| **t).map(|(i, _)| i).collect();
    average_precision_of(&labels, scores)
}

/// The mean per-record PRAUC of `(positives, scores)` pairs (0 for none): the validation score of both
/// models' early stopping and the evaluation's PRAUC.
pub fn mean_average_precision<'a>(records: impl ExactSizeIterator<Item = (&'a [usize], &'a [f32])>) -> f64 {
    let n = records.len();
    let total: f64 = records.map(|(labels, scores)| average_precision_of(labels, scores)).sum();
    total / n.max(1) as f64
}

/// [`average_precision`] with the positives given as distinct indices into `scores`.
///
/// Every positive i enters at the threshold s_i, together with all items scored ≥ s_i, so the sum
/// over thresholds regroups as (1/|T|)·Σ_{i∈T} TP(≥ s_i) / N(≥ s_i): a positive tied with others
/// contributes the precision of its whole tie group, exactly as sklearn's step-wise curve does. This
/// needs no sort, only counts (vectorised, O(|T|·M)).
pub fn average_precision_of(labels: &[usize], scores: &[f32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let sum: f64 = labels
        .iter()
        .map(|&i| {
            let s = scores[i];
            let positives_at_least = labels.iter().filter(|&&j| scores[j] >= s).count();
            positives_at_least as f64 / count_at_least(scores, s) as f64
        })
        .sum();
    sum / labels.len() as f64
}

/// How many scores are ≥ `s`: a wrapping fold, so that it vectorises even where overflow checks are
/// on (dev builds), which a plain `filter().count()` does not.
fn count_at_least(scores: &[f32], s: f32) -> u32 {
    scores.iter().fold(0u32, |n, &x| n.wrapping_add((x >= s) as u32))
}

/// All per-record metrics of `probs` against the multi-hot `truth`.
pub fn score_record(truth: &[bool], probs: &[f32], threshold: Threshold) -> RecordScores {
    assert_eq!(truth.len(), probs.len(), "labels and scores differ in length");
    let labels: Vec<usize> = truth.iter().enumerate().filter(|(_, t)| **t).map(|(i, _)| i).collect();
    score_labels(&labels, probs, threshold)
}

/// [`score_record`] with the true medications given as distinct indices into `probs`.
pub fn score_labels(labels: &[usize], probs: &[f32], threshold: Threshold) -> RecordScores {
    let hit = labels.iter().filter(|&&i| threshold.predicts(probs[i])).count();
    let predicted = probs.iter().filter(|&&p| threshold.predicts(p)).count();
    let actual = labels.len();
    let union = predicted + actual - hit;
    let jaccard = ratio(hit, union);
    let precision = ratio(hit, predicted);
    let recall = ratio(hit, actual);
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    RecordScores {
        jaccard,
        precision,
        recall,
        f1,
        prauc: average_precision_of(labels, probs),
        num_predicted: predicted,
    }
}

/// `a / b`, or 0 when `b` is 0 (the reference's convention for empty sets).
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
