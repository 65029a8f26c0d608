//! `stats.json`: cohort figures users compare with papers, the funnel of every step, and every row that
//! could not be parsed (counted per file, the first ones listed with file, line and column).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many unparseable rows are listed individually (all are counted).
const LISTED_BAD_ROWS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    pub file: String,
    pub line: usize,
    pub column: String,
    pub value: String,
    pub expected: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BadRows {
    pub total: usize,
    pub per_file: BTreeMap<String, usize>,
    /// The first rows, in reading order.
    pub listed: Vec<BadRow>,
}

impl BadRows {
    /// Adds `other`'s rows after this one's (a table read on another thread).
    pub fn merge(&mut self, other: BadRows) {
        self.total += other.total;
        for (file, n) in other.per_file {
            *self.per_file.entry(file).or_default() += n;
        }
        let room = LISTED_BAD_ROWS.saturating_sub(self.listed.len());
        self.listed.extend(other.listed.into_iter().take(room));
    }

    pub fn record(&mut self, file: &str, line: usize, column: &str, value: &str, expected: &str) {
        self.total += 1;
        *self.per_file.entry(file.to_string()).or_default() += 1;
        if self.listed.len() < LISTED_BAD_ROWS {
            let value: String = value.chars().take(80).collect();
            let (column, expected) = (column.to_string(), expected.to_string());
            self.listed.push(BadRow { file: file.to_string(), line, column, value, expected });
        }
    }
}

/// One step: what went in, what came out, and why the difference was dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub step: String,
    /// What is counted: "rows", "admissions" or "patients".
    pub unit: String,
    pub rows_in: usize,
    pub rows_out: usize,
    /// Reason → count; they add up to rows_in − rows_out.
    pub dropped: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Funnel(pub Vec<FunnelStep>);

impl Funnel {
    /// Appends a step; fails, naming the step, when it leaves nothing.
    pub fn push(&mut self, step: &str, unit: &str, rows_in: usize, dropped: &[(&str, usize)]) -> Result<usize> {
        let lost: usize = dropped.iter().map(|(_, n)| n).sum();
        debug_assert!(lost <= rows_in, "{step}: dropped {lost} of {rows_in}");
        let rows_out = rows_in - lost;
        let dropped = dropped.iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.to_string(), *n)).collect();
        self.0.push(FunnelStep { step: step.into(), unit: unit.into(), rows_in, rows_out, dropped });
        if rows_out == 0 {
            bail!(
                "step \"{step}\" left no {unit} (of {rows_in}); see the reasons: {:?}",
                self.0.last().unwrap().dropped
            );
        }
        Ok(rows_out)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerKind<T> {
    pub diagnoses: T,
    pub procedures: T,
    pub medications: T,
}

impl<T> PerKind<T> {
    /// The entry of "diagnoses", "procedures" or "medications".
    pub fn kind(&self, kind: &str) -> &T {
        match kind {
            "diagnoses" => &self.diagnoses,
            "procedures" => &self.procedures,
            _ => &self.medications,
        }
    }

    /// The entry of "diagnoses", "procedures" or "medications".
    pub fn kind_mut(&mut self, kind: &str) -> &mut T {
        match kind {
            "diagnoses" => &mut self.diagnoses,
            "procedures" => &mut self.procedures,
            _ => &mut self.medications,
        }
    }
}

/// What the steps collect on the way: the funnel, unparseable rows, out-of-vocabulary drops.
#[derive(Debug, Default)]
pub struct Report {
    pub funnel: Funnel,
    pub bad: BadRows,
    pub out_of_vocab: PerKind<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub source: String,
    pub patients: usize,
    pub visits: usize,
    pub single_visit_patients: usize,
    pub multi_visit_patients: usize,
    pub max_visits: usize,
    pub mean_visits_per_patient: f64,
    /// Vocabulary sizes (of the reused vocabulary with `--vocab`).
    pub vocab_sizes: PerKind<usize>,
    /// True per-visit means over all visits.
    pub mean_codes_per_visit: PerKind<f64>,
    pub mean_prompt_chars: f64,
    /// Interacting pairs among each record's labels / all label pairs (global ratio, as the reference's
    /// DDI metric); absent without `--ddi-pairs`.
    pub label_ddi_rate: Option<f64>,
    pub ddi_pairs: Option<usize>,
    /// Records per output file.
    pub splits: BTreeMap<String, usize>,
    pub funnel: Funnel,
    pub bad_rows: BadRows,
    /// With `--vocab`: code rows dropped because the code is outside the reused vocabulary.
    pub out_of_vocab: Option<PerKind<usize>>,
    /// With `--vocab`: profile values outside the vocabulary, replaced by "unknown", per field.
    pub profile_out_of_vocab: BTreeMap<String, usize>,
}

impl Stats {
    /// The human-readable summary printed after a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<34} {v}\n"));
        line("source", self.source.clone());
        line("patients", self.patients.to_string());
        line("  single-visit / multi-visit", format!("{} / {}", self.single_visit_patients, self.multi_visit_patients));
        line("visits (max per patient)", format!("{} ({})", self.visits, self.max_visits));
        line("mean visits per patient", format!("{:.3}", self.mean_visits_per_patient));
        let v = &self.vocab_sizes;
        line("vocab: medications/diag/proc", format!("{} / {} / {}", v.medications, v.diagnoses, v.procedures));
        let m = &self.mean_codes_per_visit;
        line(
            "mean codes per visit: med/diag/proc",
            format!("{:.2} / {:.2} / {:.2}", m.medications, m.diagnoses, m.procedures),
        );
        line("mean prompt length (chars)", format!("{:.1}", self.mean_prompt_chars));
        if let Some(rate) = self.label_ddi_rate {
            line("label DDI rate", format!("{rate:.4} ({} pairs)", self.ddi_pairs.unwrap_or(0)));
        }
        line("records per file", format!("{:?}", self.splits));
        line("unparseable rows", format!("{} {:?}", self.bad_rows.total, self.bad_rows.per_file));
        if let Some(o) = &self.out_of_vocab {
            line("out-of-vocab rows: med/diag/proc", format!("{} / {} / {}", o.medications, o.diagnoses, o.procedures));
        }
        s.push_str("funnel:\n");
        for f in &self.funnel.0 {
            s.push_str(&format!("  {:<44} {:>9} -> {:>9} {}", f.step, f.rows_in, f.rows_out, f.unit));
            for (why, n) in &f.dropped {
                s.push_str(&format!("\n      - {n} {why}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn funnel_counts_and_names_the_emptying_step() {
        let mut f = Funnel::default();
        assert_eq!(f.push("read", "rows", 10, &[("bad", 3), ("none", 0)]).unwrap(), 7);
        assert_eq!(f.0[0].dropped.len(), 1, "zero counts are not listed");
        let err = f.push("top-N", "rows", 7, &[("rare", 7)]).unwrap_err().to_string();
        assert!(err.contains("top-N") && err.contains("rare"), "{err}");
    }

    #[test]
    fn bad_rows_are_all_counted_but_listed_up_to_the_cap() {
        let mut b = BadRows::default();
        for i in 0..LISTED_BAD_ROWS + 5 {
            b.record("A.csv", i + 2, "hadm_id", "x", "an id");
        }
        assert_eq!(
            (b.total, b.per_file["A.csv"], b.listed.len()),
            (LISTED_BAD_ROWS + 5, LISTED_BAD_ROWS + 5, LISTED_BAD_ROWS)
        );
    }
}
