//! Per-record metrics: hand-computed cases, an independent sklearn-style oracle for PRAUC, and
//! properties.

use leader::eval::metrics::{average_precision, average_precision_of, score_labels, score_record, Threshold};
use rand::{Rng, SeedableRng};

const STUDENT: Threshold = Threshold { value: 0.3, inclusive: false };
const TEACHER: Threshold = Threshold { value: 0.5, inclusive: true };

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn truth(bits: &[u8]) -> Vec<bool> {
    bits.iter().map(|b| *b == 1).collect()
}

/// sklearn's `precision_recall_curve` + `average_precision_score`, transcribed independently: sort by
/// decreasing score, take a curve point at the last index of every distinct score, then
/// Σ (R_n − R_{n−1})·P_n.
fn sklearn_ap(truth: &[bool], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = truth.iter().filter(|t| **t).count() as f64;
    let (mut tp, mut ap, mut last_recall) = (0.0, 0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        tp += truth[i] as u8 as f64;
        let last_of_tie = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_tie {
            let recall = tp / positives;
            ap += (recall - last_recall) * tp / (k + 1) as f64;
            last_recall = recall;
        }
    }
    ap
}

#[test]
fn ap_hand_cases() {
    // sklearn's documented example: y_true [0,0,1,1], scores [0.1,0.4,0.35,0.8] → 0.8333.
    // Ranked: 0.8 (pos: P=1, R=1/2), 0.4 (neg), 0.35 (pos: P=2/3, R=1) → ½·1 + ½·⅔ = 5/6.
    assert!(close(average_precision(&truth(&[0, 0, 1, 1]), &[0.1, 0.4, 0.35, 0.8]), 5.0 / 6.0));
    // Tie between a positive and a negative at the top: the group enters together with P = 1/2,
    // R = 1/2; then 0.2 (pos) P = 2/3, R = 1 → ½·½ + ½·⅔ = 7/12. (Ranking the positive first would
    // give 5/6, so this fails if ties are not grouped.)
    assert!(close(average_precision(&truth(&[1, 0, 1]), &[0.5, 0.5, 0.2]), 7.0 / 12.0));
    // All scores equal: a single threshold with R = 1, P = 2/5.
    assert!(close(average_precision(&truth(&[0, 1, 0, 1, 0]), &[0.4; 5]), 0.4));
    // A single label ranked third of five (no ties): R jumps to 1 at P = 1/3.
    assert!(close(average_precision(&truth(&[0, 0, 1, 0, 0]), &[0.9, 0.8, 0.7, 0.6, 0.5]), 1.0 / 3.0));
    // A single label ranked first: 1.
    assert!(close(average_precision(&truth(&[0, 1, 0]), &[0.1, 0.2, 0.05]), 1.0));
    // Two positives tied at the bottom of four, under two negatives: one group, P = 2/4 → 0.5.
    assert!(close(average_precision(&truth(&[0, 0, 1, 1]), &[0.9, 0.8, 0.1, 0.1]), 0.5));
    // No positive label: 0 (sklearn warns and scores 0 as the reference never meets it).
    assert_eq!(average_precision(&truth(&[0, 0]), &[0.3, 0.6]), 0.0);
}

#[test]
fn ap_matches_the_sklearn_oracle_on_random_tied_scores() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for case in 0..3000 {
        let m = rng.random_range(1..40);
        // Few distinct levels → many ties; a few cases with continuous scores.
        let levels = if case % 5 == 0 { 1_000_000 } else { rng.random_range(1..6) };
        let scores: Vec<f32> = (0..m).map(|_| rng.random_range(0..levels) as f32 / levels as f32).collect();
        let mut t: Vec<bool> = (0..m).map(|_| rng.random_bool(0.3)).collect();
        t[rng.random_range(0..m)] = true;
        let want = sklearn_ap(&t, &scores);
        let got = average_precision(&t, &scores);
        assert!((got - want).abs() < 1e-12, "case {case}: {got} vs {want} for {t:?} {scores:?}");
        let labels: Vec<usize> = (0..m).filter(|&i| t[i]).collect();
        assert_eq!(average_precision_of(&labels, &scores), got);
    }
}

#[test]
fn record_scores_by_hand() {
    // Labels {0, 2, 3}; p > 0.3 predicts {0, 1, 2}: hit 2, |P| = 3, |T| = 3, union 4.
    let t = truth(&[1, 0, 1, 1, 0]);
    let s = score_record(&t, &[0.9, 0.8, 0.31, 0.3, 0.1], STUDENT);
    assert!(close(s.jaccard, 0.5));
    assert!(close(s.precision, 2.0 / 3.0));
    assert!(close(s.recall, 2.0 / 3.0));
    assert!(close(s.f1, 2.0 / 3.0));
    assert_eq!(s.num_predicted, 3);
    // PRAUC: ranked 0.9 (pos, P=1), 0.8 (neg), 0.31 (pos, P=2/3), 0.3 (pos, P=3/4) → (1 + 2/3 + 3/4)/3.
    assert!(close(s.prauc, (1.0 + 2.0 / 3.0 + 0.75) / 3.0));
}

#[test]
fn threshold_rules_at_the_boundary() {
    // 0.3 exactly is not predicted by `> 0.3`; 0.5 exactly is predicted by `>= 0.5`.
    assert!(!STUDENT.predicts(0.3));
    assert!(STUDENT.predicts(0.300_000_04));
    assert!(TEACHER.predicts(0.5));
    assert!(!TEACHER.predicts(0.499_999_97));
    let t = truth(&[1, 1]);
    assert_eq!(score_record(&t, &[0.5, 0.3], TEACHER).num_predicted, 1);
    assert_eq!(score_record(&t, &[0.5, 0.3], STUDENT).num_predicted, 1);
    assert_eq!(score_record(&t, &[0.3, 0.3], STUDENT).num_predicted, 0);
}

#[test]
fn no_predicted_drug_scores_zero_but_keeps_prauc() {
    let t = truth(&[0, 1, 0, 1]);
    let s = score_record(&t, &[0.1, 0.2, 0.05, 0.3], STUDENT);
    assert_eq!((s.jaccard, s.precision, s.recall, s.f1, s.num_predicted), (0.0, 0.0, 0.0, 0.0, 0));
    // Ranked: 0.3 (pos), 0.2 (pos), ... → AP 1 even though nothing crosses the threshold.
    assert!(close(s.prauc, 1.0));
}

#[test]
fn all_scores_equal_predicts_all_or_nothing() {
    let t = truth(&[1, 0, 0, 0]);
    let all = score_record(&t, &[0.5; 4], TEACHER);
    // Everything predicted: hit 1, |P| 4 → Jaccard 1/4, precision 1/4, recall 1, F1 = 2·¼·1/(¼+1) = 0.4.
    assert!(close(all.jaccard, 0.25) && close(all.precision, 0.25) && close(all.recall, 1.0) && close(all.f1, 0.4));
    assert!(close(all.prauc, 0.25));
    let none = score_record(&t, &[0.3; 4], STUDENT);
    assert_eq!((none.jaccard, none.f1, none.num_predicted), (0.0, 0.0, 0));
    assert!(close(none.prauc, 0.25));
}

#[test]
fn properties_on_random_records() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..2000 {
        let m = rng.random_range(1..30);
        let probs: Vec<f32> = (0..m).map(|_| (rng.random_range(0..10) as f32) / 9.0).collect();
        let labels: Vec<usize> = (0..m).filter(|_| rng.random_bool(0.3)).collect();
        let threshold = if rng.random_bool(0.5) { STUDENT } else { TEACHER };
        let s = score_labels(&labels, &probs, threshold);
        for v in [s.jaccard, s.precision, s.recall, s.f1, s.prauc] {
            assert!((0.0..=1.0).contains(&v), "{s:?}");
        }
        // F1 of sets is the Dice coefficient 2|P∩T|/(|P|+|T|) ≥ |P∩T|/|P∪T|.
        assert!(s.jaccard <= s.f1 + 1e-15, "{s:?}");
        // Relabelling the medications (same permutation of scores and labels) changes nothing.
        let mut perm: Vec<usize> = (0..m).collect();
        perm.reverse();
        perm.rotate_left(rng.random_range(0..m));
        let mut permuted = vec![0.0; m];
        perm.iter().enumerate().for_each(|(i, &p)| permuted[p] = probs[i]);
        let permuted_labels: Vec<usize> = labels.iter().map(|&i| perm[i]).collect();
        let p = score_labels(&permuted_labels, &permuted, threshold);
        assert_eq!((p.jaccard, p.f1, p.num_predicted), (s.jaccard, s.f1, s.num_predicted));
        assert!((p.prauc - s.prauc).abs() < 1e-12);
    }
}
