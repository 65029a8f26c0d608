//! The one training loop of every baseline. Each visit of each training patient is a target, its
//! history the visits before it (so first visits are targets too, as in GAMENet's and PyHealth's
//! training, and unlike SafeDrug's RETAIN and MICRON, which skip them); Adam over shuffled
//! mini-batches; after every epoch the validation PRAUC of each validation patient's last visit,
//! the best epoch's weights kept. One atomic checkpoint file holds the weights, the optimiser state
//! and the progress, so `--resume` continues bit for bit.

use super::model::{BaselineConfig, Buffers, Model, Step, TrainSection, TrainingData};
use super::{BaselineInfo, BaselineSummary, INFO};
use crate::data::record::{Record, Visit};
use crate::data::vocab::Vocab;
use crate::eval::metrics::mean_average_precision;
use crate::io::output::RunDir;
use crate::io::TrainLog;
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::layers::Dropout;
use crate::nn::params::SeededVarMap;
use crate::nn::rng::TensorRng;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

pub const MODEL: &str = "model.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";
const PROGRESS: &str = "progress";
const LOG: &str = "train_log.jsonl";
/// The names of a model's buffers in its weights file start with this.
pub const BUFFER_PREFIX: &str = "buffers.";
/// Histories scored at once when validating and predicting.
const SCORING_CHUNK: usize = 512;

/// Progress, saved inside the checkpoint file: epochs done, the best epoch and the exact bits of
/// its validation PRAUC.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    epoch: usize,
    best_epoch: usize,
    best_prauc_bits: u64,
}

impl Progress {
    fn tensor(self) -> Result<Tensor> {
        let values = [self.epoch as i64, self.best_epoch as i64, self.best_prauc_bits as i64];
        Ok(Tensor::new(&values, &Device::Cpu)?)
    }

    fn from_tensor(t: &Tensor) -> Result<Self> {
        let v: Vec<i64> = t.to_vec1()?;
        ensure!(v.len() == 3, "checkpoint: a progress record of {} values", v.len());
        Ok(Self { epoch: v[0] as usize, best_epoch: v[1] as usize, best_prauc_bits: v[2] as u64 })
    }
}

/// Probabilities [n, M] (row-major) of each record's target visit.
pub fn probabilities<M: Model>(model: &M, records: &[Record]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in records.chunks(SCORING_CHUNK) {
        let histories: Vec<&[Visit]> = chunk.iter().map(|r| r.visits.as_slice()).collect();
        let logits = model.logits(&histories, &mut Dropout::off())?;
        out.extend(candle_nn::ops::sigmoid(&logits)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Each record's visits' medications as indices (codes outside the vocabulary have none).
fn medication_lists<'a>(visits: impl Iterator<Item = &'a Visit>, vocab: &Vocab) -> Vec<Vec<usize>> {
    let index = vocab.medication_index();
    visits.map(|v| v.medications.iter().filter_map(|m| index.get(m.as_str()).copied()).collect()).collect()
}

/// The multi-hot [B, M] of `lists`, in f32 (the models train in f32).
fn multi_hot(lists: &[&[usize]], m: usize) -> Result<Tensor> {
    let mut y = vec![0f32; lists.len() * m];
    for (row, list) in lists.iter().enumerate() {
        list.iter().for_each(|&l| y[row * m + l] = 1.0);
    }
    Ok(Tensor::from_vec(y, (lists.len(), m), &Device::Cpu)?)
}

/// A trained model's weights and buffers from its `model.safetensors`.
pub fn load<M: Model>(run: &Path, dims: &M::Dims, vocab: &Vocab) -> Result<M> {
    let path = run.join(MODEL);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).with_context(|| path.display().to_string())?;
    let (buffers, weights): (HashMap<_, _>, HashMap<_, _>) =
        tensors.into_iter().partition(|(name, _)| name.starts_with(BUFFER_PREFIX));
    let buffers = buffers.into_iter().map(|(k, v)| (k[BUFFER_PREFIX.len()..].to_string(), v)).collect();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    M::new(dims, vocab, &buffers, vb).with_context(|| format!("{}: weights that do not fit the model", path.display()))
}

/// The model being trained: built from `params` (its variables) and `buffers`.
pub struct Trained<'a, M> {
    pub model: &'a M,
    pub params: &'a SeededVarMap,
    pub buffers: &'a Buffers,
}

/// The training targets: every visit of every training patient, as (record, visit) pairs, with each
/// visit's medications.
struct Targets<'a> {
    records: &'a [Record],
    pairs: Vec<(usize, usize)>,
    medications: Vec<Vec<Vec<usize>>>,
    m: usize,
}

impl<'a> Targets<'a> {
    fn new(records: &'a [Record], vocab: &Vocab) -> Self {
        let pairs =
            records.iter().enumerate().flat_map(|(r, rec)| (0..rec.visits.len()).map(move |v| (r, v))).collect();
        let medications = records.iter().map(|r| medication_lists(r.visits.iter(), vocab)).collect();
        Self { records, pairs, medications, m: vocab.num_medications() }
    }

    /// The histories of targets `batch` (indices into `pairs`) and their labels [B, M].
    fn batch(&self, batch: &[usize]) -> Result<(Vec<&'a [Visit]>, Tensor)> {
        let histories = batch.iter().map(|&i| &self.records[self.pairs[i].0].visits[..=self.pairs[i].1]).collect();
        let lists: Vec<&[usize]> =
            batch.iter().map(|&i| self.medications[self.pairs[i].0][self.pairs[i].1].as_slice()).collect();
        Ok((histories, multi_hot(&lists, self.m)?))
    }
}

/// The checkpoint's variables, optimiser state and progress, or a fresh start.
fn restore(
    checkpoint: &Path,
    log_path: &Path,
    vars: &[(String, Var)],
    opt: &mut AdamW,
    resume: bool,
) -> Result<(Progress, TrainLog)> {
    if !resume {
        return Ok((Progress::default(), TrainLog::new(log_path)));
    }
    let mut saved = candle_core::safetensors::load(checkpoint, &Device::Cpu).context("reading the checkpoint")?;
    for (name, var) in vars {
        var.set(&saved.remove(name).with_context(|| format!("{}: no {name}", checkpoint.display()))?)?;
    }
    let state = Progress::from_tensor(&saved.remove(PROGRESS).context("checkpoint: no progress")?)?;
    opt.load_state(&saved)?;
    let log = TrainLog::resume(log_path, |_, e| e["epoch"].as_u64().is_some_and(|x| x as usize <= state.epoch))?;
    Ok((state, log))
}

/// One pass over the targets in the epoch's shuffled order; the mean training loss.
fn train_epoch<M: Model>(model: &M, targets: &Targets, opt: &mut AdamW, t: &TrainSection, epoch: usize) -> Result<f64> {
    let n = targets.pairs.len();
    let mut order: Vec<usize> = (0..n).collect();
    TensorRng::derive(t.seed, &[epoch as u64]).shuffle(&mut order);
    let mut loss_sum = 0.0;
    for (b, batch) in order.chunks(t.batch_size).enumerate() {
        let (histories, labels) = targets.batch(batch)?;
        let rng = TensorRng::derive(t.seed, &[epoch as u64, b as u64, 1]);
        let loss = model.loss(&histories, &labels, &mut Step { rng: Some(rng), samples: n, epoch })?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * batch.len() as f64;
        opt.step(&loss.backward()?)?;
    }
    Ok(loss_sum / n as f64)
}

/// Trains into `run` (resuming from its checkpoint when `resume`); see the module docs.
pub fn train<M: Model>(
    cfg: &BaselineConfig<M::Dims>,
    trained: Trained<M>,
    data: &TrainingData,
    valid: &[Record],
    run: &mut RunDir,
    resume: bool,
) -> Result<BaselineSummary> {
    let (t, vocab) = (&cfg.train, data.vocab);
    let Trained { model, params, buffers } = trained;
    let vars = params.named_vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::adam(t.lr))?;
    let (checkpoint, log_path) = (run.entry(CHECKPOINT)?, run.entry(LOG)?);
    let (mut state, mut log) = restore(&checkpoint, &log_path, &vars, &mut opt, resume)?;
    crate::config::save(cfg, &run.entry("config.toml")?)?;
    let (model_path, info_path) = (run.entry(MODEL)?, run.entry(INFO)?);
    let targets = Targets::new(data.train, vocab);
    let valid_labels = medication_lists(valid.iter().map(Record::target), vocab);
    let variables = || vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone()));
    let bar = crate::progress::bar(t.epochs as u64, &format!("train-baseline {}", M::KIND.name()));
    bar.set_position(state.epoch as u64);
    while state.epoch < t.epochs {
        let train_loss = train_epoch(model, &targets, &mut opt, t, state.epoch)?;
        state.epoch += 1;
        let probs = probabilities(model, valid)?;
        let prauc = mean_average_precision(valid_labels.iter().map(Vec::as_slice).zip(probs.chunks(targets.m.max(1))));
        log.push(&serde_json::json!({"epoch": state.epoch, "train_loss": train_loss, "valid_prauc": prauc}))?;
        if state.best_epoch == 0 || prauc > f64::from_bits(state.best_prauc_bits) {
            (state.best_epoch, state.best_prauc_bits) = (state.epoch, prauc.to_bits());
            let mut weights: HashMap<String, Tensor> = variables().collect();
            weights.extend(buffers.iter().map(|(k, v)| (format!("{BUFFER_PREFIX}{k}"), v.clone())));
            crate::io::write_safetensors(&model_path, &weights)?;
            let (kind, vocab_fingerprint) = (M::KIND, vocab.fingerprint());
            let info = BaselineInfo { kind, vocab_fingerprint, best_epoch: state.epoch, best_valid_prauc: prauc };
            crate::io::write_json(&info_path, &info)?;
        }
        // The log first: a crash before the checkpoint leaves entries that resume drops.
        log.save()?;
        let mut saved = opt.state()?;
        saved.extend(variables());
        saved.insert(PROGRESS.to_string(), state.tensor()?);
        crate::io::write_safetensors(&checkpoint, &saved)?;
        bar.println(format!("epoch {}: valid PRAUC {prauc:.4}", state.epoch));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let best_valid_prauc = f64::from_bits(state.best_prauc_bits);
    Ok(BaselineSummary { epochs_done: state.epoch, best_epoch: state.best_epoch, best_valid_prauc })
}
