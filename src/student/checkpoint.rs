//! The run folder: `config.json` (model dims, vocabulary fingerprint, teacher hidden size),
//! `model.safetensors` (best weights), `checkpoint.safetensors` (last epoch: weights, Adam state and
//! the early-stopping state, in one file so they can never disagree), all written atomically.

use super::config::ModelDims;
use super::model::{ModelShape, StudentNet};
use crate::data::vocab::Vocab;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const RUN_INFO: &str = "config.json";
pub const BEST_MODEL: &str = "model.safetensors";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const VOCAB: &str = "vocab.json";
pub const TRAIN_LOG: &str = "train_log.jsonl";

/// `config.json`: everything needed to rebuild the network and to refuse mismatched records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub model: ModelDims,
    pub shape: ModelShape,
    pub vocab_fingerprint: String,
    /// H of the teacher distilled from, if any.
    pub teacher_hidden: Option<usize>,
}

/// Early-stopping progress after `epochs_done` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub best_score: f64,
    pub best_epoch: usize,
    pub epochs_without_improvement: usize,
}

impl TrainState {
    pub fn fresh() -> Self {
        Self { epochs_done: 0, best_score: f64::NEG_INFINITY, best_epoch: 0, epochs_without_improvement: 0 }
    }

    fn to_tensors(self, out: &mut HashMap<String, Tensor>) -> Result<()> {
        let ints = [self.epochs_done as i64, self.best_epoch as i64, self.epochs_without_improvement as i64];
        out.insert("state.counters".into(), Tensor::new(&ints, &Device::Cpu)?);
        out.insert("state.best_score".into(), Tensor::new(&[self.best_score], &Device::Cpu)?);
        Ok(())
    }

    fn from_tensors(map: &HashMap<String, Tensor>) -> Result<Self> {
        let get = |k: &str| map.get(k).with_context(|| format!("checkpoint lacks {k}"));
        let c = get("state.counters")?.to_vec1::<i64>()?;
        ensure!(c.len() == 3, "checkpoint state.counters has {} entries, expected 3", c.len());
        let best_score = get("state.best_score")?.to_vec1::<f64>()?[0];
        Ok(Self {
            epochs_done: c[0] as usize,
            best_score,
            best_epoch: c[1] as usize,
            epochs_without_improvement: c[2] as usize,
        })
    }
}

fn var_tensors(vars: &[(String, Var)]) -> HashMap<String, Tensor> {
    vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
}

pub fn save_weights(vars: &[(String, Var)], path: &Path) -> Result<()> {
    crate::io::write_safetensors(path, &var_tensors(vars))
}

/// Writes the resumable checkpoint: weights (`model.NAME`), Adam state and [`TrainState`].
pub fn save_checkpoint(
    vars: &[(String, Var)],
    adam: HashMap<String, Tensor>,
    state: TrainState,
    path: &Path,
) -> Result<()> {
    let mut map: HashMap<String, Tensor> =
        var_tensors(vars).into_iter().map(|(n, t)| (format!("model.{n}"), t)).collect();
    map.extend(adam);
    state.to_tensors(&mut map)?;
    crate::io::write_safetensors(path, &map)
}

/// Reads a checkpoint into `vars` and returns the Adam state and the training state.
pub fn load_checkpoint(vars: &[(String, Var)], path: &Path) -> Result<(HashMap<String, Tensor>, TrainState)> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("reading checkpoint {}", path.display()))?;
    for (name, var) in vars {
        let t =
            map.get(&format!("model.{name}")).with_context(|| format!("{}: no weights for {name}", path.display()))?;
        ensure!(
            t.shape() == var.shape(),
            "{}: {name} has shape {:?}, the model expects {:?}",
            path.display(),
            t.shape(),
            var.shape()
        );
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    let state = TrainState::from_tensors(&map).with_context(|| format!("reading {}", path.display()))?;
    Ok((map, state))
}

/// A trained student ready to score records.
pub struct TrainedStudent {
    pub info: RunInfo,
    pub vocab: Vocab,
    pub model: StudentNet,
}

impl TrainedStudent {
    pub fn load(run_dir: &Path) -> Result<Self> {
        let info: RunInfo = crate::io::read_json(&run_dir.join(RUN_INFO))?;
        let vocab = Vocab::load(&run_dir.join(VOCAB))?;
        ensure!(
            vocab.fingerprint() == info.vocab_fingerprint,
            "{}: vocab.json does not match the fingerprint in config.json",
            run_dir.display()
        );
        let weights_path = run_dir.join(BEST_MODEL);
        crate::io::require_file(&weights_path, "the best weights of a student run (model.safetensors)")?;
        let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .with_context(|| format!("reading {}", weights_path.display()))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let model = StudentNet::new(vb, &info.model, &info.shape)
            .and_then(StudentNet::for_inference)
            .with_context(|| format!("loading {}", weights_path.display()))?;
        Ok(Self { info, vocab, model })
    }
}
