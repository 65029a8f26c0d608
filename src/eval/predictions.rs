//! The predictions file: JSON Lines, one `{"subject_id": .., "probabilities": [M floats]}` per
//! record, probabilities in `vocab.json` medication order. Written by `leader predict`, read by
//! `leader eval`.

use crate::io::AtomicFile;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub subject_id: u64,
    pub probabilities: Vec<f32>,
}

/// Streams predictions to a file that appears only when [`PredictionWriter::finish`] succeeds.
pub struct PredictionWriter {
    file: AtomicFile,
    path: PathBuf,
    count: usize,
}

impl PredictionWriter {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(Self { file: AtomicFile::create(path)?, path: path.to_path_buf(), count: 0 })
    }

    pub fn write(&mut self, subject_id: u64, probabilities: &[f32]) -> Result<()> {
        #[derive(Serialize)]
        struct Line<'a> {
            subject_id: u64,
            probabilities: &'a [f32],
        }
        serde_json::to_writer(&mut self.file, &Line { subject_id, probabilities })?;
        self.file.write_all(b"\n").with_context(|| format!("writing {}", self.path.display()))?;
        self.count += 1;
        Ok(())
    }

    /// Commits the file and returns how many predictions it holds.
    pub fn finish(self) -> Result<usize> {
        self.file.commit()?;
        Ok(self.count)
    }
}
