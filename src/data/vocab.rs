//! `vocab.json`: the code vocabularies and profile values. The medication list order is the order of
//! every probability vector the models produce.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Refuses records built with another vocabulary than the model's (`fingerprint`): the data folder's
/// `vocab.json` (or, for a records file given alone, one beside it) must match. Returns whether a
/// vocabulary was there to compare (a lone records file may have none).
pub fn check_records_vocabulary(data: Option<&Path>, records_path: &Path, fingerprint: &str) -> Result<bool> {
    let beside = match (data, records_path.parent()) {
        (Some(dir), _) => dir.join("vocab.json"),
        (None, Some(parent)) => parent.join("vocab.json"),
        (None, None) => return Ok(false),
    };
    if !beside.is_file() {
        ensure!(data.is_none(), "{} not found: a data folder needs its vocab.json", beside.display());
        return Ok(false);
    }
    let theirs = Vocab::load(&beside)?.fingerprint();
    if theirs != fingerprint {
        bail!(
            "{} (fingerprint {theirs}) is not the vocabulary the model was trained with (fingerprint {fingerprint}); these records cannot be scored by this model",
            beside.display()
        );
    }
    Ok(true)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeEntry {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    pub medications: Vec<CodeEntry>,
    pub diagnoses: Vec<CodeEntry>,
    pub procedures: Vec<CodeEntry>,
    /// Profile field → its values; index = position in the list.
    pub profile: BTreeMap<String, Vec<String>>,
}

impl Vocab {
    pub fn load(path: &Path) -> Result<Self> {
        crate::io::read_json(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_json(path, self)
    }

    pub fn num_medications(&self) -> usize {
        self.medications.len()
    }

    /// Medication code → index in the probability vector.
    pub fn medication_index(&self) -> HashMap<&str, usize> {
        self.medications.iter().enumerate().map(|(i, e)| (e.code.as_str(), i)).collect()
    }

    /// A fingerprint of the vocabulary, stored with every checkpoint so a model is never applied to
    /// records built with another vocabulary.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("vocab serialises");
        format!("{:016x}", crate::nn::rng::fnv1a(&bytes))
    }
}
