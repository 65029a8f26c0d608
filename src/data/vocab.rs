//! `vocab.json`: the code vocabularies and profile values. The medication list order is the order of
//! every probability vector the models produce.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
