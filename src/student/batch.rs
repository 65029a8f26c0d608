//! From records to tensors: the unified code vocabulary, per-record id lists (visit window and code
//! truncation applied, counted) and batches packed without padding.

use crate::data::record::Record;
use crate::data::vocab::Vocab;
pub use crate::nn::layers::Packing;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// Token 0 of the unified vocabulary.
pub const PAD: u32 = 0;

/// One token space for every code: `[PAD]`, then medications, diagnoses and procedures in
/// `vocab.json` order. Diagnosis and procedure codes get separate tokens even when their strings are
/// equal (the reference merges them, §7.13); the reference's unused `[CLS]`/`[MASK]` are left out.
pub struct CodeVocab {
    medications: HashMap<String, u32>,
    diagnoses: HashMap<String, u32>,
    procedures: HashMap<String, u32>,
    /// Profile fields in `vocab.json` order; an unseen or missing value maps to index `values.len()`.
    profile: Vec<(String, HashMap<String, u32>)>,
    size: usize,
}

/// What encoding changed or could not place; reported, never silently dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct EncodeStats {
    pub records: usize,
    /// Input codes read (all streams, before truncation).
    pub codes: usize,
    /// Records with more than `max_visits` visits (their earliest visits are left out).
    pub records_visits_truncated: usize,
    /// Codes beyond `max_codes` in one visit and stream.
    pub codes_truncated: usize,
    /// Input codes absent from the vocabulary (skipped).
    pub unknown_codes: usize,
    /// Profile values absent from the vocabulary, or missing fields (mapped to the "unseen" slot).
    pub unknown_profile_values: usize,
}

impl EncodeStats {
    pub fn summary(&self) -> String {
        format!(
            "{} records, {} codes; {} with more than the visit window (earliest visits left out); {} codes over the per-visit limit truncated; {} unknown codes skipped; {} unknown profile values",
            self.records, self.codes, self.records_visits_truncated, self.codes_truncated, self.unknown_codes, self.unknown_profile_values
        )
    }
}

/// A record as token ids, window applied.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRecord {
    pub subject_id: u64,
    /// Per kept visit (target last): unified ids.
    pub diagnoses: Vec<Vec<u32>>,
    pub procedures: Vec<Vec<u32>>,
    /// Medications of the kept visits except the target, unified ids (the model shifts them by one).
    pub prior_medications: Vec<Vec<u32>>,
    /// One value index per profile field.
    pub profile: Vec<u32>,
    /// Target medications as medication indices (0..M); empty when scoring unlabelled records.
    pub labels: Vec<u32>,
}

impl CodeVocab {
    pub fn new(vocab: &Vocab) -> Self {
        let index = |codes: &[crate::data::vocab::CodeEntry], offset: usize| {
            codes.iter().enumerate().map(|(i, e)| (e.code.clone(), (offset + i) as u32)).collect::<HashMap<_, _>>()
        };
        let (m, d) = (vocab.medications.len(), vocab.diagnoses.len());
        let profile = vocab
            .profile
            .iter()
            .map(|(field, values)| {
                (field.clone(), values.iter().enumerate().map(|(i, v)| (v.clone(), i as u32)).collect())
            })
            .collect();
        Self {
            medications: index(&vocab.medications, 1),
            diagnoses: index(&vocab.diagnoses, 1 + m),
            procedures: index(&vocab.procedures, 1 + m + d),
            profile,
            size: 1 + m + d + vocab.procedures.len(),
        }
    }

    /// Number of tokens, PAD included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Embedding rows per profile field (its values plus the "unseen" slot).
    pub fn profile_sizes(&self) -> Vec<usize> {
        self.profile.iter().map(|(_, values)| values.len() + 1).collect()
    }

    fn codes(map: &HashMap<String, u32>, codes: &[String], max_codes: usize, stats: &mut EncodeStats) -> Vec<u32> {
        let mut ids = Vec::with_capacity(codes.len().min(max_codes));
        stats.codes += codes.len();
        for code in codes {
            match map.get(code) {
                Some(&id) if ids.len() < max_codes => ids.push(id),
                Some(_) => stats.codes_truncated += 1,
                None => stats.unknown_codes += 1,
            }
        }
        ids
    }

    /// Encodes `record`, keeping its last `max_visits` visits and at most `max_codes` codes per visit
    /// and stream. With `need_labels`, a label outside the medication vocabulary is an error.
    pub fn encode(
        &self,
        record: &Record,
        max_visits: usize,
        max_codes: usize,
        need_labels: bool,
        stats: &mut EncodeStats,
    ) -> Result<EncodedRecord> {
        if record.visits.is_empty() {
            bail!("the record has no visits");
        }
        stats.records += 1;
        let start = record.visits.len().saturating_sub(max_visits);
        stats.records_visits_truncated += (start > 0) as usize;
        let kept = &record.visits[start..];
        let stream = |pick: fn(&crate::data::record::Visit) -> &Vec<String>,
                      map: &HashMap<String, u32>,
                      visits: &[crate::data::record::Visit],
                      stats: &mut EncodeStats| {
            visits.iter().map(|v| Self::codes(map, pick(v), max_codes, stats)).collect::<Vec<_>>()
        };
        let diagnoses = stream(|v| &v.diagnoses, &self.diagnoses, kept, stats);
        let procedures = stream(|v| &v.procedures, &self.procedures, kept, stats);
        let prior_medications = stream(|v| &v.medications, &self.medications, &kept[..kept.len() - 1], stats);
        let profile = self
            .profile
            .iter()
            .map(|(field, values)| match record.profile.get(field).and_then(|v| values.get(v)) {
                Some(&i) => i,
                None => {
                    stats.unknown_profile_values += 1;
                    values.len() as u32
                }
            })
            .collect();
        let mut labels = Vec::new();
        if need_labels {
            for code in &record.labels {
                match self.medications.get(code) {
                    Some(&id) => labels.push(id - 1),
                    None => bail!("label {code:?} is not in the medication vocabulary"),
                }
            }
            labels.sort_unstable();
            labels.dedup();
        }
        Ok(EncodedRecord { subject_id: record.subject_id, diagnoses, procedures, prior_medications, profile, labels })
    }
}

#[derive(Debug, Clone)]
pub struct CodeSets {
    pub ids: Tensor,
    pub packing: Packing,
}

impl CodeSets {
    pub fn new<'a>(
        sets: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let lengths: Vec<usize> = sets.clone().map(<[u32]>::len).collect();
        let ids: Vec<u32> = sets.flat_map(|s| s.iter().copied()).collect();
        let n = ids.len();
        Ok(Self { ids: Tensor::from_vec(ids, n, device)?, packing: Packing::from_lengths(&lengths, dtype, device)? })
    }
}

/// A batch. Only the non-empty code sets of real visits go through the set encoders, packed without
/// padding; `slot_rows` then places their pooled vectors into the three visit streams (packed too),
/// so padded slots and empty sets cost nothing.
#[derive(Debug, Clone)]
pub struct Batch {
    pub size: usize,
    /// The non-empty diagnosis sets of all real visits, record by record.
    pub diagnoses: CodeSets,
    pub procedures: CodeSets,
    /// The non-empty medication sets of the visits before each target (the model's history).
    pub medications: CodeSets,
    /// [T] u32, the visit tokens of the three streams (diagnoses of records 0..B, then procedures,
    /// then medications; each record's visits in order): the row of each in the table [pooled
    /// diagnoses; pooled procedures; pooled medications; B profile prompts; one zero row].
    /// Medication slot 0 is the prompt; slot t >= 1 holds visit t-1's drugs; empty sets point at
    /// the zero row.
    pub slot_rows: Tensor,
    /// Packing of the 3B visit streams (each as long as its record's history).
    pub visit_packing: Packing,
    /// [B, F] profile value indices.
    pub profile: Tensor,
    /// [B, M] multi-hot targets.
    pub labels: Tensor,
    /// The target medication sets as unified ids (for the alignment loss).
    pub target_medications: CodeSets,
    pub subject_ids: Vec<u64>,
}

impl Batch {
    pub fn new(records: &[&EncodedRecord], num_medications: usize, dtype: DType, device: &Device) -> Result<Self> {
        let b = records.len();
        let streams: [Vec<&Vec<Vec<u32>>>; 3] = [
            records.iter().map(|r| &r.diagnoses).collect(),
            records.iter().map(|r| &r.procedures).collect(),
            records.iter().map(|r| &r.prior_medications).collect(),
        ];
        let sets = |s: usize| streams[s].iter().flat_map(|visits| visits.iter()).filter(|set| !set.is_empty());
        let prompts: usize = (0..3).map(|s| sets(s).count()).sum();
        let zero = (prompts + b) as u32;
        let mut slot_rows = Vec::new();
        let mut next = 0u32;
        for (s, stream) in streams.iter().enumerate() {
            for (row, (record, visits)) in records.iter().zip(stream).enumerate() {
                // Medication slot t holds visit t-1's set, slot 0 the profile prompt.
                let (shift, start) = ((s == 2) as usize, slot_rows.len());
                slot_rows.resize(start + record.diagnoses.len(), zero);
                if s == 2 {
                    slot_rows[start] = (prompts + row) as u32;
                }
                for (t, _) in visits.iter().enumerate().filter(|(_, set)| !set.is_empty()) {
                    slot_rows[start + t + shift] = next;
                    next += 1;
                }
            }
        }
        let lengths: Vec<usize> = records.iter().map(|r| r.diagnoses.len()).collect();
        let visit_tokens = slot_rows.len();
        let stacked: Vec<usize> = lengths.iter().chain(&lengths).chain(&lengths).copied().collect();
        let profile: Vec<u32> = records.iter().flat_map(|r| r.profile.iter().copied()).collect();
        let fields = records.first().map_or(0, |r| r.profile.len());
        let mut labels = vec![0f32; b * num_medications];
        for (row, r) in records.iter().enumerate() {
            for &m in &r.labels {
                labels[row * num_medications + m as usize] = 1.0;
            }
        }
        let targets: Vec<Vec<u32>> = records.iter().map(|r| r.labels.iter().map(|m| m + 1).collect()).collect();
        let code_sets = |s: usize| {
            let rows: Vec<&[u32]> = sets(s).map(Vec::as_slice).collect();
            CodeSets::new(rows.into_iter(), dtype, device)
        };
        Ok(Self {
            size: b,
            diagnoses: code_sets(0)?,
            procedures: code_sets(1)?,
            medications: code_sets(2)?,
            slot_rows: Tensor::from_vec(slot_rows, visit_tokens, device)?,
            visit_packing: Packing::from_lengths(&stacked, dtype, device)?,
            profile: Tensor::from_vec(profile, (b, fields), device)?,
            labels: Tensor::from_vec(labels, (b, num_medications), device)?.to_dtype(dtype)?,
            target_medications: CodeSets::new(targets.iter().map(Vec::as_slice), dtype, device)?,
            subject_ids: records.iter().map(|r| r.subject_id).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(diagnoses: Vec<Vec<u32>>, procedures: Vec<Vec<u32>>, prior_medications: Vec<Vec<u32>>) -> EncodedRecord {
        EncodedRecord { subject_id: 1, diagnoses, procedures, prior_medications, profile: vec![0], labels: vec![] }
    }

    /// Packing by hand: record A has 2 visits, record B 1 visit (B = 2).
    /// Non-empty diagnosis sets: A0, A1, B0 → rows 0, 1, 2. Procedure sets: A1 only (A0 and B0 are
    /// empty) → row 3. Medication history: A's visit 0 → row 4. Prompts: rows 5 (A) and 6 (B); zero
    /// row 7. Visit tokens, stream by stream and record by record: diag A [0, 1], diag B [2],
    /// proc A [empty→7, 3], proc B [7], med A [prompt 5, A's visit 0 → 4], med B [prompt 6].
    #[test]
    fn slot_rows_place_each_packed_set_in_its_visit_slot() {
        let a = record(vec![vec![5, 6], vec![7]], vec![vec![], vec![9, 10, 11]], vec![vec![1, 2]]);
        let b = record(vec![vec![8]], vec![vec![]], vec![]);
        let batch = Batch::new(&[&a, &b], 3, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(batch.slot_rows.to_vec1::<u32>().unwrap(), vec![0, 1, 2, 7, 3, 7, 5, 4, 6]);
        assert_eq!(batch.diagnoses.ids.to_vec1::<u32>().unwrap(), vec![5, 6, 7, 8]);
        assert_eq!(batch.procedures.ids.to_vec1::<u32>().unwrap(), vec![9, 10, 11]);
        assert_eq!(batch.medications.ids.to_vec1::<u32>().unwrap(), vec![1, 2]);
        // Visit streams of lengths [2, 1, 2, 1, 2, 1].
        let p = &batch.visit_packing;
        assert_eq!((p.rows, p.tokens), (6, 9));
        assert_eq!(p.sets.probability_count(1), 4 + 1 + 4 + 1 + 4 + 1);
        assert_eq!(p.token_row.to_vec1::<u32>().unwrap(), vec![0, 0, 1, 2, 2, 3, 4, 4, 5]);
        let weights: Vec<f32> = p.token_weight.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(weights, vec![0.5, 0.5, 1.0, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0]);
    }
}
