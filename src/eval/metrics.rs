//! Per-record metrics exactly as the reference computes them (reference doc §6): Jaccard, precision,
//! recall and F1 of the thresholded prediction, and sklearn's `average_precision_score` over the M
//! medications as PRAUC.

/// The decision rule turning a probability into "prescribed". The reference uses `p > 0.3` for the
/// student and `p >= 0.5` for the teacher.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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
    let positives = truth.iter().filter(|t| **t).count();
    if positives == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut prev_recall) = (0usize, 0usize, 0f64, 0f64);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            tp += truth[order[i]] as usize;
            seen += 1;
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - prev_recall) * (tp as f64 / seen as f64);
        prev_recall = recall;
    }
    ap
}

/// All per-record metrics of `probs` against the multi-hot `truth`.
pub fn score_record(truth: &[bool], probs: &[f32], threshold: Threshold) -> RecordScores {
    let (mut hit, mut predicted, mut actual) = (0usize, 0usize, 0usize);
    for (t, p) in truth.iter().zip(probs) {
        let pred = threshold.predicts(*p);
        hit += (pred && *t) as usize;
        predicted += pred as usize;
        actual += *t as usize;
    }
    let union = predicted + actual - hit;
    let jaccard = if union == 0 { 0.0 } else { hit as f64 / union as f64 };
    let precision = if predicted == 0 { 0.0 } else { hit as f64 / predicted as f64 };
    let recall = if actual == 0 { 0.0 } else { hit as f64 / actual as f64 };
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    RecordScores { jaccard, precision, recall, f1, prauc: average_precision(truth, probs), num_predicted: predicted }
}
