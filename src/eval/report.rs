//! `metrics.json`: every metric for every group, on the whole split and over the resampling rounds.

use crate::eval::groups::{groups_of, GROUPS};
use crate::eval::metrics::Threshold;
use crate::eval::resample::{bootstrap_sample, mean_std, percentile, subsample, ResampleOptions};
use crate::eval::scoring::Outcome;
use crate::nn::parallel;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The reported metrics, by their `metrics.json` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Prauc,
    Jaccard,
    F1,
    Precision,
    Recall,
    /// Interacting pairs / all pairs among predicted medications, summed over records first (the
    /// reference's global ratio).
    DdiRate,
    /// Mean number of predicted medications.
    AvgMeds,
    /// The DDI rate of the true medications, for comparison.
    LabelDdiRate,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Prauc,
        Metric::Jaccard,
        Metric::F1,
        Metric::Precision,
        Metric::Recall,
        Metric::DdiRate,
        Metric::AvgMeds,
        Metric::LabelDdiRate,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Metric::Prauc => "prauc",
            Metric::Jaccard => "jaccard",
            Metric::F1 => "f1",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::DdiRate => "ddi_rate",
            Metric::AvgMeds => "avg_meds",
            Metric::LabelDdiRate => "label_ddi_rate",
        }
    }

    fn needs_ddi(self) -> bool {
        matches!(self, Metric::DdiRate | Metric::LabelDdiRate)
    }
}

/// One metric of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// On the whole split.
    pub value: f64,
    /// Mean and population std over the rounds in which the group had records (`None` without).
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// 2.5th and 97.5th percentiles over the bootstrap resamples, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Records in the group.
    pub n: usize,
    /// Rounds whose subsample held at least one of the group's records.
    pub rounds_used: usize,
    /// Metric key → statistic; the DDI rates are absent without a DDI list.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, Stat>,
}

impl GroupReport {
    pub fn get(&self, metric: Metric) -> Option<&Stat> {
        self.metrics.get(metric.key())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// `student`, `teacher` or `baseline:<name>`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_kind: Option<String>,
    pub threshold: f32,
    /// `>` or `>=`.
    pub threshold_rule: String,
    pub seed: u64,
    pub rounds: usize,
    pub subsample_fraction: f64,
    pub bootstrap: usize,
    /// Group key (see [`GROUPS`]) → report; groups without records are left out (the reference
    /// reports zeros for them, which reads like a result).
    pub groups: BTreeMap<String, GroupReport>,
}

impl MetricsReport {
    pub fn load(path: &Path) -> Result<Self> {
        crate::io::read_json(path).with_context(|| format!("reading metrics {}", path.display()))
    }

    pub fn group(&self, key: &str) -> Option<&GroupReport> {
        self.groups.get(key)
    }
}

/// Sums over the records of one group in one sample.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    n: usize,
    sums: [f64; 6],
    predicted_pairs: u64,
    predicted_interacting: u64,
    label_pairs: u64,
    label_interacting: u64,
}

impl Totals {
    /// Adds `o` `times` times (a bootstrap resample may hold a record more than once).
    fn add(&mut self, o: &Outcome, times: u32) {
        let s = &o.scores;
        let values = [s.prauc, s.jaccard, s.f1, s.precision, s.recall, s.num_predicted as f64];
        let (k, kf) = (times as u64, times as f64);
        self.n += times as usize;
        self.sums.iter_mut().zip(values).for_each(|(sum, v)| *sum += kf * v);
        self.predicted_pairs += k * o.predicted_pairs.pairs;
        self.predicted_interacting += k * o.predicted_pairs.interacting;
        self.label_pairs += k * o.label_pairs.pairs;
        self.label_interacting += k * o.label_pairs.interacting;
    }

    /// The metric over this group's records (call only with n > 0).
    fn metric(&self, metric: Metric) -> f64 {
        let mean = |k: usize| self.sums[k] / self.n as f64;
        let rate = |hits: u64, all: u64| if all == 0 { 0.0 } else { hits as f64 / all as f64 };
        match metric {
            Metric::Prauc => mean(0),
            Metric::Jaccard => mean(1),
            Metric::F1 => mean(2),
            Metric::Precision => mean(3),
            Metric::Recall => mean(4),
            Metric::AvgMeds => mean(5),
            Metric::DdiRate => rate(self.predicted_interacting, self.predicted_pairs),
            Metric::LabelDdiRate => rate(self.label_interacting, self.label_pairs),
        }
    }
}

/// Per-group totals over the records at `indices` (every record when `None`). The records are
/// visited in file order, each as often as `indices` names it: reading a million outcomes in a
/// shuffled order was mostly cache misses.
fn group_totals(outcomes: &[Outcome], indices: Option<&[usize]>) -> [Totals; GROUPS.len()] {
    let mut totals = [Totals::default(); GROUPS.len()];
    let mut add = |o: &Outcome, times| groups_of(o.prior_visits).into_iter().for_each(|g| totals[g].add(o, times));
    match indices {
        None => outcomes.iter().for_each(|o| add(o, 1)),
        Some(indices) => {
            let mut times = vec![0u32; outcomes.len()];
            indices.iter().for_each(|&i| times[i] += 1);
            outcomes.iter().zip(times).filter(|(_, k)| *k > 0).for_each(|(o, k)| add(o, k));
        }
    }
    totals
}

/// The values of `metric` in group `g` over the samples where the group has records.
fn sample_values(samples: &[[Totals; GROUPS.len()]], g: usize, metric: Metric) -> Vec<f64> {
    samples.iter().filter(|t| t[g].n > 0).map(|t| t[g].metric(metric)).collect()
}

/// Aggregates scored records into the report: whole-split values, then the same metrics within each
/// round's subsample (one subsample per round, shared by all groups) and each bootstrap resample,
/// on up to `threads` threads.
pub fn build_report(
    outcomes: &[Outcome],
    threshold: Threshold,
    has_ddi: bool,
    opts: &ResampleOptions,
    model_kind: Option<String>,
    threads: usize,
) -> MetricsReport {
    let n = outcomes.len();
    let full = group_totals(outcomes, None);
    // Rounds and resamples are independent (each has its own seeded stream): one per thread at a time.
    let sampled = |draw: &(dyn Fn(usize) -> Vec<usize> + Sync), count: usize| {
        let totals = parallel::map((0..count).collect(), threads, |k| Ok(group_totals(outcomes, Some(&draw(k)))));
        totals.expect("totals never fail")
    };
    let rounds = sampled(&|r| subsample(n, opts.fraction, opts.seed, r), opts.rounds);
    let boots = sampled(&|b| bootstrap_sample(n, opts.seed, b), opts.bootstrap);
    let groups = GROUPS
        .iter()
        .enumerate()
        .filter(|(g, _)| full[*g].n > 0)
        .map(|(g, key)| {
            let metrics = Metric::ALL
                .iter()
                .filter(|m| has_ddi || !m.needs_ddi())
                .map(|&m| {
                    let (mean, std) = mean_std(&sample_values(&rounds, g, m)).unzip();
                    let boot = sample_values(&boots, g, m);
                    let ci95 = percentile(&boot, 2.5).zip(percentile(&boot, 97.5)).map(|(lo, hi)| [lo, hi]);
                    (m.key().to_string(), Stat { value: full[g].metric(m), mean, std, ci95 })
                })
                .collect();
            let rounds_used = rounds.iter().filter(|t| t[g].n > 0).count();
            (key.to_string(), GroupReport { n: full[g].n, rounds_used, metrics })
        })
        .collect();
    MetricsReport {
        model_kind,
        threshold: threshold.value,
        threshold_rule: threshold.rule().to_string(),
        seed: opts.seed,
        rounds: opts.rounds,
        subsample_fraction: opts.fraction,
        bootstrap: opts.bootstrap,
        groups,
    }
}
