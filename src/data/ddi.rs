//! `ddi.json`: interacting medication pairs, restricted to the medication vocabulary.

use crate::data::vocab::Vocab;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DdiPairs {
    pub pairs: Vec<[String; 2]>,
}

impl DdiPairs {
    pub fn load(path: &Path) -> Result<Self> {
        crate::io::read_json(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_json(path, self)
    }

    /// A symmetric M×M adjacency (row-major) over the vocabulary's medication indices; pairs with a
    /// code outside the vocabulary are ignored.
    pub fn adjacency(&self, vocab: &Vocab) -> Vec<bool> {
        let index = vocab.medication_index();
        let m = vocab.num_medications();
        let mut adj = vec![false; m * m];
        for [a, b] in &self.pairs {
            if let (Some(&i), Some(&j)) = (index.get(a.as_str()), index.get(b.as_str())) {
                if i != j {
                    adj[i * m + j] = true;
                    adj[j * m + i] = true;
                }
            }
        }
        adj
    }
}
