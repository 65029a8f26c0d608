//! What a baseline gives the harness: its `[model]` config section, the fixed tensors it derives
//! from the training data, its parameters (through a `VarBuilder`), the logits of a batch of
//! histories and its training loss. The harness does the rest the same way for every model.

use super::BaselineKind;
use crate::data::ddi::DdiPairs;
use crate::data::record::{Record, Visit};
use crate::data::vocab::Vocab;
use crate::nn::layers::Dropout;
use crate::nn::rng::TensorRng;
use anyhow::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Tensors a model derives from the training data and does not train (GAMENet's graphs), saved
/// beside its weights under `buffers.NAME`.
pub type Buffers = HashMap<String, Tensor>;

/// What a model may derive its buffers from.
pub struct TrainingData<'a> {
    pub vocab: &'a Vocab,
    pub train: &'a [Record],
    /// The data folder's `ddi.json`, where it has one.
    pub ddi: Option<&'a DdiPairs>,
}

/// The state of one training step a loss may use.
pub struct Step {
    /// Dropout's random stream; `None` turns dropout off (gradient checks).
    pub rng: Option<TensorRng>,
    /// Training targets in an epoch.
    pub samples: usize,
    /// Epochs finished before this one.
    pub epoch: usize,
}

impl Step {
    /// A step without randomness, as scoring runs (gradient checks).
    pub fn deterministic(samples: usize, epoch: usize) -> Self {
        Self { rng: None, samples, epoch }
    }

    pub fn dropout(&mut self) -> Dropout<'_> {
        match &mut self.rng {
            Some(rng) => Dropout::on(rng),
            None => Dropout::off(),
        }
    }

    /// A uniform draw in [0, 1) from the step's stream; 0 without one.
    pub fn uniform(&mut self) -> f64 {
        self.rng.as_mut().map_or(0.0, TensorRng::uniform_f64)
    }
}

/// A medication-recommendation baseline the harness trains and scores.
pub trait Model: Sized {
    const KIND: BaselineKind;
    /// `configs/baseline-NAME.toml`.
    const DEFAULT_CONFIG: &'static str;
    /// The `[model]` section of its config.
    type Dims: Serialize + DeserializeOwned + Clone + std::fmt::Debug;

    /// The fixed tensors it derives from the training data.
    fn buffers(_dims: &Self::Dims, _data: &TrainingData) -> Result<Buffers> {
        Ok(Buffers::new())
    }

    fn new(dims: &Self::Dims, vocab: &Vocab, buffers: &Buffers, vb: VarBuilder) -> Result<Self>;

    /// Logits [B, M] of each history's target (last) visit.
    fn logits(&self, histories: &[&[Visit]], drop: &mut Dropout) -> Result<Tensor>;

    /// The loss of a batch, `labels` [B, M] the multi-hot of each target visit's medications (in
    /// the model's dtype). BCE with logits unless the model trains with more.
    fn loss(&self, histories: &[&[Visit]], labels: &Tensor, step: &mut Step) -> Result<Tensor> {
        Ok(crate::nn::loss::bce_with_logits(&self.logits(histories, &mut step.dropout())?, labels)?)
    }
}

/// A config file of a baseline: its model section and the harness's training section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig<D> {
    pub model: D,
    pub train: TrainSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training targets; the epoch with the best validation PRAUC is kept.
    pub epochs: usize,
    /// Targets (visits with their history) per Adam step.
    pub batch_size: usize,
    pub lr: f64,
    /// Seed of the initial weights, the target order and dropout.
    pub seed: u64,
}

/// Refuses a zero `model.embedding` and dropout rates outside [0, 1), naming the config key: a
/// model's `new` calls it before any run folder is made.
pub fn check_dims(embedding: usize, dropouts: &[(&str, f64)]) -> Result<()> {
    anyhow::ensure!(embedding > 0, "model.embedding = 0: must be positive");
    for (key, p) in dropouts {
        anyhow::ensure!((0.0..1.0).contains(p), "model.{key} = {p}: a dropout rate must be in [0, 1)");
    }
    Ok(())
}
