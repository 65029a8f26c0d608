//! The model-ready record: one per patient, the target being the patient's last visit.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub hadm_id: u64,
    /// Admission time as written in the source table (`YYYY-MM-DD HH:MM:SS`).
    pub admittime: String,
    pub diagnoses: Vec<String>,
    pub procedures: Vec<String>,
    /// ATC codes at the configured level; for the last visit these are the labels.
    pub medications: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub subject_id: u64,
    /// All visits in order, the target visit last (its medications are the labels, never an input).
    pub visits: Vec<Visit>,
    /// Profile field → value (`unknown` where missing); the fields are those of `vocab.json`.
    pub profile: BTreeMap<String, String>,
    /// The target visit's medication codes.
    pub labels: Vec<String>,
    /// The teacher's natural-language prompt.
    pub prompt: String,
}

impl Record {
    /// Visits before the target visit.
    pub fn prior_visits(&self) -> usize {
        self.visits.len().saturating_sub(1)
    }

    pub fn is_single_visit(&self) -> bool {
        self.visits.len() == 1
    }

    pub fn target(&self) -> &Visit {
        self.visits.last().expect("a record has at least one visit")
    }
}

/// The splits `preprocess` writes; `records` is the unsplit output of `--no-split`.
pub const SPLITS: [&str; 4] = ["train", "valid", "test", "records"];

/// The file of a split inside a preprocessed data folder.
pub fn split_path(data_dir: &Path, split: &str) -> Result<std::path::PathBuf> {
    ensure!(SPLITS.contains(&split), "unknown split {split:?}: expected one of {SPLITS:?}");
    Ok(data_dir.join(format!("{split}.jsonl")))
}

/// Reads a whole records file (JSON Lines); errors name the file, line and column.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    crate::io::read_jsonl(path)
}
