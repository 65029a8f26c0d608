//! Where the teacher vector of a training batch comes from. Offline KD reads the teacher cache; online
//! KD runs the frozen fine-tuned LLaMA on the batch's prompts, computing exactly what
//! `export-hidden` would have cached (same tokenisation, truncation, EOS and pooling).

use crate::data::record::{read_records, split_path};
use crate::data::vocab::Vocab;
use crate::teacher::cache::TeacherCache;
use crate::teacher::Teacher;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub enum KdTarget {
    /// No teacher: α is ignored (the "w/o KD" ablation).
    None,
    /// Cached last-token hidden states, one row per training record.
    Cache { hidden: Tensor, rows: HashMap<u64, usize> },
    /// The frozen teacher and the train split's prompts by subject.
    Online { teacher: Box<Teacher>, prompts: HashMap<u64, String> },
}

impl KdTarget {
    /// Loads a teacher cache and checks it against the training records: same number of rows, every
    /// subject present exactly once.
    pub fn from_cache(path: &Path, train_subjects: &[u64]) -> Result<Self> {
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
        Ok(Self::Cache { hidden: cache.hidden, rows })
    }

    /// Loads the teacher run onto `device` and the prompts of `data_dir`'s train split. The teacher
    /// must have been trained on `vocab`; every training record needs a prompt and its own subject.
    pub fn online(run: &Path, device: &Device, dtype: DType, data_dir: &Path, vocab: &Vocab) -> Result<Self> {
        let teacher =
            Teacher::load(run, device, dtype).with_context(|| format!("loading teacher {}", run.display()))?;
        teacher.check_vocab(vocab, data_dir)?;
        let path = split_path(data_dir, "train")?;
        let mut prompts = HashMap::new();
        for (line, record) in read_records(&path)?.into_iter().enumerate() {
            let at = format!("{}:{}", path.display(), line + 1);
            ensure!(!record.prompt.trim().is_empty(), "{at}: empty `prompt`; online KD needs the teacher prompt");
            ensure!(
                prompts.insert(record.subject_id, record.prompt).is_none(),
                "{at}: subject_id of an earlier line repeats"
            );
        }
        Ok(Self::Online { teacher: Box::new(teacher), prompts })
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
            Self::Online { teacher, prompts } => {
                let batch = subject_ids
                    .iter()
                    .map(|s| {
                        prompts
                            .get(s)
                            .map(String::as_str)
                            .ok_or_else(|| anyhow::anyhow!("a training record has no prompt"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(teacher.pooled_hidden(&batch)?.to_device(device)?.to_dtype(dtype)?))
            }
        }
    }
}
