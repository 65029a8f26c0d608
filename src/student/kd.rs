//! Where the teacher vector of a training batch comes from. Offline KD reads the teacher cache; the
//! online teacher (a forward pass of the fine-tuned LLaMA per batch) plugs in as another variant.

use crate::teacher::cache::TeacherCache;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub enum KdTarget {
    /// No teacher: α is ignored (the "w/o KD" ablation).
    None,
    /// Cached last-token hidden states, one row per training record.
    Cache { hidden: Tensor, rows: HashMap<u64, usize> },
    // Online KD (`distill --teacher RUN`) adds a variant holding the loaded teacher here and
    // computes `targets` by running it on the batch's prompts.
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
        let missing: Vec<u64> = train_subjects.iter().filter(|s| !rows.contains_key(s)).copied().collect();
        if !missing.is_empty() {
            bail!(
                "{}: {} of {} training records have no teacher vector (first: {:?}); export the cache from this data folder's train split",
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

    /// The teacher's hidden size, if there is a teacher.
    pub fn hidden_size(&self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Cache { hidden, .. } => hidden.dim(1).ok(),
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
                        rows.get(s).map(|&r| r as u32).ok_or_else(|| anyhow::anyhow!("subject {s}: no teacher vector"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let index = Tensor::new(index.as_slice(), &Device::Cpu)?;
                Ok(Some(hidden.index_select(&index, 0)?.to_dtype(dtype)?.to_device(device)?))
            }
        }
    }
}
