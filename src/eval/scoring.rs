//! From a record and its probability vector to everything the report aggregates: the per-record
//! metrics, the DDI pair counts of the prediction and of the labels, and the record's visit count.

use crate::data::record::Record;
use crate::data::vocab::Vocab;
use crate::eval::ddi::{DdiCounter, MedSet, PairCounts};
use crate::eval::metrics::{score_labels, RecordScores, Threshold};
use crate::io::parallel_lines::{read_lines_parallel, CHUNK_BYTES};
use anyhow::{anyhow, bail, Context, Result};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// What evaluation needs of a record: who it is, how many visits precede the target, and the true
/// medications as indices into the vocabulary's medication list.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub subject_id: u64,
    pub prior_visits: usize,
    pub labels: Vec<usize>,
}

impl Target {
    /// Maps label codes to medication indices; a code outside the vocabulary or listed twice is an
    /// error (the record and the vocabulary do not belong together).
    fn new(subject_id: u64, visits: usize, labels: &[impl AsRef<str>], index: &HashMap<&str, usize>) -> Result<Self> {
        if visits == 0 {
            bail!("the record has no visit (expected the target visit at least)");
        }
        let mut indices = Vec::with_capacity(labels.len());
        for code in labels.iter().map(AsRef::as_ref) {
            let i = *index.get(code).ok_or_else(|| anyhow!("label {code:?} is not a vocab.json medication"))?;
            if indices.contains(&i) {
                bail!("label {code:?} is listed twice");
            }
            indices.push(i);
        }
        Ok(Self { subject_id, prior_visits: visits - 1, labels: indices })
    }

    pub fn from_record(record: &Record, vocab_index: &HashMap<&str, usize>) -> Result<Self> {
        Self::new(record.subject_id, record.visits.len(), &record.labels, vocab_index)
    }
}

/// The targets of in-memory records.
pub fn targets(records: &[Record], vocab: &Vocab) -> Result<Vec<Target>> {
    let index = vocab.medication_index();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| Target::from_record(r, &index).with_context(|| format!("record {}", i + 1)))
        .collect()
}

/// The targets of a records file, parsed on `threads` threads: visits are counted, not kept, and
/// prompts are skipped.
pub fn read_targets(path: &Path, vocab: &Vocab, threads: usize) -> Result<Vec<Target>> {
    #[derive(Deserialize)]
    struct TargetLine<'a> {
        subject_id: u64,
        #[serde(deserialize_with = "count_items")]
        visits: usize,
        #[serde(borrow)]
        labels: Vec<Label<'a>>,
    }
    /// A label code borrowed from the line unless escaped (a bare `Cow` in a `Vec` is always owned).
    #[derive(Deserialize)]
    struct Label<'a>(#[serde(borrow)] Cow<'a, str>);
    impl AsRef<str> for Label<'_> {
        fn as_ref(&self) -> &str {
            &self.0
        }
    }
    let index = vocab.medication_index();
    let parsed = read_lines_parallel(path, threads, CHUNK_BYTES, |_: &mut (), line| {
        let t: TargetLine = serde_json::from_slice(line).map_err(|e| anyhow!("column {}: {e}", e.column()))?;
        Target::new(t.subject_id, t.visits, &t.labels, &index)
    })?;
    Ok(parsed.into_iter().map(|(_, target)| target).collect())
}

/// Deserialises a JSON array as the number of its elements.
fn count_items<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of visits")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    deserializer.deserialize_seq(Count)
}

/// Everything one scored record contributes to the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub prior_visits: usize,
    pub scores: RecordScores,
    /// Pairs among the predicted medications (zero counts without a DDI list).
    pub predicted_pairs: PairCounts,
    /// Pairs among the true medications.
    pub label_pairs: PairCounts,
}

/// Scores records against one threshold and (optionally) one DDI list.
pub struct Scorer {
    pub threshold: Threshold,
    ddi: Option<DdiCounter>,
    num_medications: usize,
}

impl Scorer {
    pub fn new(threshold: Threshold, ddi: Option<DdiCounter>, num_medications: usize) -> Self {
        Self { threshold, ddi, num_medications }
    }

    pub fn num_medications(&self) -> usize {
        self.num_medications
    }

    pub fn has_ddi(&self) -> bool {
        self.ddi.is_some()
    }

    /// `probs` must hold one probability per vocabulary medication.
    pub fn score(&self, target: &Target, probs: &[f32]) -> Outcome {
        assert_eq!(probs.len(), self.num_medications, "probability vector length differs from the vocabulary");
        let scores = score_labels(&target.labels, probs, self.threshold);
        let (predicted_pairs, label_pairs) = match &self.ddi {
            None => (PairCounts::default(), PairCounts::default()),
            Some(counter) => {
                let mut set = MedSet::predicted(probs, self.threshold);
                let predicted = counter.count(&set);
                set.clear();
                target.labels.iter().for_each(|&i| set.insert(i));
                (predicted, counter.count(&set))
            }
        };
        Outcome { prior_visits: target.prior_visits, scores, predicted_pairs, label_pairs }
    }
}
