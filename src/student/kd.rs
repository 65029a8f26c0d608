//! Where the teacher vector of a training batch comes from. Offline KD reads the teacher cache; online
//! KD runs the frozen fine-tuned LLaMA on the batch's prompts, computing exactly what
//! `export-hidden` would have cached (same tokenisation, truncation, EOS and pooling).
//!
//! With `loss.standardise_teacher` (our default) each dimension of the teacher vectors is standardised
//! with its mean and standard deviation over the training split (the cache's rows, or one pass of
//! the online teacher before training), so the KD loss weighs every dimension alike whatever the
//! teacher's scale. On the demo cohort, distilling its tiny teacher's vectors as exported made the
//! student worse (test PRAUC 0.677 against 0.681 without KD), standardised they made it better
//! (0.696). The reference distils the vectors as they are (`false`).

use crate::data::record::{read_records, split_path};
use crate::data::vocab::Vocab;
use crate::nn::standardise::Standardise;
use crate::teacher::cache::TeacherCache;
use crate::teacher::Teacher;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Prompts per teacher pass when the online teacher's statistics are measured (export-hidden's default).
pub const STATISTICS_BATCH: usize = 8;

pub enum KdTarget {
    /// No teacher: α is ignored (the "w/o KD" ablation).
    None,
    /// Cached last-token hidden states (standardised already where asked), one row per training record.
    Cache { hidden: Tensor, rows: HashMap<u64, usize> },
    /// The frozen teacher and the train split's prompts by subject.
    Online { teacher: Box<Teacher>, prompts: HashMap<u64, String>, scale: Option<Standardise> },
}

impl KdTarget {
    /// Loads a teacher cache and checks it against the training records: same number of rows, every
    /// subject present exactly once.
    pub fn from_cache(path: &Path, train_subjects: &[u64], standardise: bool) -> Result<Self> {
        let cache = TeacherCache::load(path)?;
        let rows = cache.rows();
        ensure!(
            rows.len() == cache.subject_ids.len(),
            "{}: {} rows but only {} distinct subject ids",
            path.display(),
            cache.subject_ids.len(),
            rows.len()
        );
        // Records are named by their line in train.jsonl, never by subject_id.
        let missing: Vec<usize> =
            train_subjects.iter().enumerate().filter(|(_, s)| !rows.contains_key(s)).map(|(i, _)| i + 1).collect();
        if !missing.is_empty() {
            bail!(
                "{}: {} of {} training records have no teacher vector (train.jsonl lines {:?}); export the cache from this data folder's train split",
                path.display(),
                missing.len(),
                train_subjects.len(),
                &missing[..missing.len().min(5)]
            );
        }
        ensure!(
            cache.subject_ids.len() == train_subjects.len(),
            "{}: {} teacher vectors for {} training records; the cache must hold exactly the train split",
            path.display(),
            cache.subject_ids.len(),
            train_subjects.len()
        );
        // Standardised once here rather than per batch: the same values (the operation is per element).
        let hidden = match standardise {
            true => Standardise::measure(std::iter::once(Ok(cache.hidden.clone())))?.apply(&cache.hidden)?,
            false => cache.hidden,
        };
        Ok(Self::Cache { hidden, rows })
    }

    /// Loads the teacher run onto `device` and the prompts of `data_dir`'s train split. The teacher
    /// must have been trained on `vocab`; every training record needs a prompt and its own subject.
    /// Standardising costs one teacher pass over the split, in batches of [`STATISTICS_BATCH`].
    pub fn online(
        run: &Path,
        device: &Device,
        dtype: DType,
        data_dir: &Path,
        vocab: &Vocab,
        standardise: bool,
    ) -> Result<Self> {
        let teacher =
            Teacher::load(run, device, dtype).with_context(|| format!("loading teacher {}", run.display()))?;
        teacher.check_vocab(vocab, data_dir)?;
        let path = split_path(data_dir, "train")?;
        let records = read_records(&path)?;
        let mut subjects = std::collections::HashSet::new();
        for (line, record) in records.iter().enumerate() {
            let at = format!("{}:{}", path.display(), line + 1);
            ensure!(!record.prompt.trim().is_empty(), "{at}: empty `prompt`; online KD needs the teacher prompt");
            ensure!(subjects.insert(record.subject_id), "{at}: subject_id of an earlier line repeats");
        }
        let scale =
            match standardise {
                true => Some(Standardise::measure(records.chunks(STATISTICS_BATCH).map(|chunk| {
                    teacher.pooled_hidden(&chunk.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>())
                }))?),
                false => None,
            };
        let prompts = records.into_iter().map(|r| (r.subject_id, r.prompt)).collect();
        Ok(Self::Online { teacher: Box::new(teacher), prompts, scale })
    }

    /// The teacher's hidden size, if there is a teacher.
    pub fn hidden_size(&self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Cache { hidden, .. } => hidden.dim(1).ok(),
            Self::Online { teacher, .. } => Some(teacher.model.hidden_size()),
        }
    }

    /// The teacher vectors of a batch, [B, H], or `None` without a teacher.
    pub fn targets(&self, subject_ids: &[u64], dtype: DType, device: &Device) -> Result<Option<Tensor>> {
        match self {
            Self::None => Ok(None),
            Self::Cache { hidden, rows } => {
                let index = subject_ids
                    .iter()
                    .map(|s| {
                        rows.get(s)
                            .map(|&r| r as u32)
                            .ok_or_else(|| anyhow::anyhow!("a training record has no teacher vector"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let index = Tensor::new(index.as_slice(), &Device::Cpu)?;
                Ok(Some(hidden.index_select(&index, 0)?.to_dtype(dtype)?.to_device(device)?))
            }
            Self::Online { teacher, prompts, scale } => {
                let batch = subject_ids
                    .iter()
                    .map(|s| {
                        prompts
                            .get(s)
                            .map(String::as_str)
                            .ok_or_else(|| anyhow::anyhow!("a training record has no prompt"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let pooled = teacher.pooled_hidden(&batch)?;
                let x = match scale {
                    Some(s) => s.apply(&pooled)?,
                    None => pooled,
                };
                Ok(Some(x.to_device(device)?.to_dtype(dtype)?))
            }
        }
    }
}
