//! LR, the logistic-regression row of the SafeDrug (Yang et al., IJCAI 2021) and GAMENet (Shang et
//! al., AAAI 2019) papers, as SafeDrug's `src/LR.py` trains it: scikit-learn's
//! `OneVsRestClassifier(LogisticRegression())` on the multi-hot of one visit's diagnoses and
//! procedures, every visit of every training patient a sample, no history. So a first-visit patient
//! needs nothing else. The objective is scikit-learn's (per medication: ½‖w‖² + C · Σ log-loss, the
//! intercept unpenalised, C = 1); we minimise it, summed over medications and divided by C·N·M, with
//! mini-batch Adam from zero weights instead of lbfgs, and keep the epoch with the best validation
//! PRAUC.

use super::{BaselineInfo, BaselineKind, BaselineSummary, INFO};
use crate::data::record::{Record, Visit};
use crate::data::vocab::Vocab;
use crate::eval::metrics::mean_average_precision;
use crate::io::output::RunDir;
use crate::io::TrainLog;
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::rng::TensorRng;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const DEFAULT_CONFIG: &str = include_str!("../../configs/baseline-lr.toml");
pub const MODEL: &str = "model.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";
const PROGRESS: &str = "progress";
const LOG: &str = "train_log.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrConfig {
    pub model: LrModelSection,
    pub train: LrTrainSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrModelSection {
    /// Inverse L2 strength (scikit-learn's C).
    pub c: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrTrainSection {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Input positions: diagnoses first, then procedures (the two code sets may share strings).
struct Features {
    diagnoses: HashMap<String, u32>,
    procedures: HashMap<String, u32>,
}

impl Features {
    fn new(vocab: &Vocab) -> Self {
        let d = vocab.diagnoses.len();
        Self {
            diagnoses: vocab.diagnoses.iter().enumerate().map(|(i, e)| (e.code.clone(), i as u32)).collect(),
            procedures: vocab.procedures.iter().enumerate().map(|(i, e)| (e.code.clone(), (d + i) as u32)).collect(),
        }
    }

    fn len(&self) -> usize {
        self.diagnoses.len() + self.procedures.len()
    }

    /// The input positions of a visit's codes (codes outside the vocabulary have none).
    fn of(&self, visit: &Visit) -> Vec<u32> {
        let d = visit.diagnoses.iter().filter_map(|c| self.diagnoses.get(c));
        d.chain(visit.procedures.iter().filter_map(|c| self.procedures.get(c))).copied().collect()
    }

    /// The multi-hot rows [B, F] of `rows`.
    fn multi_hot(&self, rows: &[&[u32]], device: &Device) -> Result<Tensor> {
        let f = self.len();
        let mut x = vec![0f32; rows.len() * f];
        for (i, row) in rows.iter().enumerate() {
            row.iter().for_each(|&j| x[i * f + j as usize] = 1.0);
        }
        Ok(Tensor::from_vec(x, (rows.len(), f), device)?)
    }
}

/// `x · Wᵀ + b`: one logit per medication for each multi-hot row of `x`.
fn logits(weight: &Tensor, bias: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
}

/// The scikit-learn objective over one batch, scaled: mean BCE over the batch's entries plus
/// ‖W‖² / (2·C·N·M) for N training samples (the bias is not penalised).
pub fn objective(weight: &Tensor, bias: &Tensor, x: &Tensor, y: &Tensor, c: f64, n: usize) -> Result<Tensor> {
    let m = weight.dim(0)?;
    let penalty = (weight.sqr()?.sum_all()? / (2.0 * c * n as f64 * m as f64))?;
    Ok((crate::nn::loss::bce_with_logits(&logits(weight, bias, x)?, y)? + penalty)?)
}

/// A trained LR, for scoring.
pub struct LrModel {
    weight: Tensor,
    bias: Tensor,
    features: Features,
}

impl LrModel {
    pub fn load(path: &Path, vocab: &Vocab) -> Result<Self> {
        let t = candle_core::safetensors::load(path, &Device::Cpu).with_context(|| path.display().to_string())?;
        let get = |name: &str| t.get(name).cloned().with_context(|| format!("{}: no tensor {name}", path.display()));
        let (weight, bias, features) = (get("weight")?, get("bias")?, Features::new(vocab));
        ensure!(
            weight.dims() == [vocab.num_medications(), features.len()],
            "{}: weight {:?} does not fit the vocabulary ({} medications, {} codes)",
            path.display(),
            weight.dims(),
            vocab.num_medications(),
            features.len()
        );
        Ok(Self { weight, bias, features })
    }

    /// Probabilities of the target (last) visit of each record, row-major [n, M].
    pub fn probabilities(&self, records: &[Record]) -> Result<Vec<f32>> {
        let rows: Vec<Vec<u32>> =
            records.iter().map(|r| r.visits.last().map(|v| self.features.of(v)).unwrap_or_default()).collect();
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let x = self.features.multi_hot(&refs, &Device::Cpu)?;
        let logits = logits(&self.weight, &self.bias, &x)?;
        Ok(candle_nn::ops::sigmoid(&logits)?.flatten_all()?.to_vec1()?)
    }
}

/// Progress, saved inside the checkpoint file (one atomic write holds weights, optimiser and
/// progress): epochs done, the best epoch and the exact bits of its validation PRAUC.
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

/// One sample per visit: its input positions and its medications' indices.
fn samples(records: &[Record], features: &Features, vocab: &Vocab) -> Vec<(Vec<u32>, Vec<usize>)> {
    let meds = vocab.medication_index();
    let mut out = Vec::new();
    for r in records {
        for v in &r.visits {
            let labels = v.medications.iter().filter_map(|m| meds.get(m.as_str()).copied()).collect();
            out.push((features.of(v), labels));
        }
    }
    out
}

/// Trains into `run` (resuming from its checkpoint when `resume`); see the module docs.
pub fn train(
    cfg: &LrConfig,
    vocab: &Vocab,
    train: &[Record],
    valid: &[Record],
    run: &mut RunDir,
    resume: bool,
) -> Result<BaselineSummary> {
    let t = &cfg.train;
    ensure!(t.epochs > 0 && t.batch_size > 0, "train.epochs and train.batch_size must be positive");
    ensure!(cfg.model.c.is_finite() && cfg.model.c > 0.0, "model.c = {}: must be positive", cfg.model.c);
    let features = Features::new(vocab);
    let samples = samples(train, &features, vocab);
    let (m, f, n) = (vocab.num_medications(), features.len(), samples.len());
    let device = Device::Cpu;
    let weight = Var::zeros((m, f), DType::F32, &device)?;
    let bias = Var::zeros(m, DType::F32, &device)?;
    let vars = vec![("bias".to_string(), bias.clone()), ("weight".to_string(), weight.clone())];
    let adam = AdamWConfig { lr: t.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut opt = AdamW::new(vars, adam)?;
    let (checkpoint, log_path) = (run.entry(CHECKPOINT)?, run.entry(LOG)?);
    let (mut state, mut log) = if resume {
        let mut saved = candle_core::safetensors::load(&checkpoint, &device).context("reading the checkpoint")?;
        let mut take = |name: &str| saved.remove(name).with_context(|| format!("{}: no {name}", checkpoint.display()));
        weight.set(&take("weight")?)?;
        bias.set(&take("bias")?)?;
        let state = Progress::from_tensor(&take(PROGRESS)?)?;
        opt.load_state(&saved)?;
        let log = TrainLog::resume(&log_path, |_, e| e["epoch"].as_u64().is_some_and(|x| x as usize <= state.epoch))?;
        (state, log)
    } else {
        vocab.save(&run.entry("vocab.json")?)?;
        (Progress::default(), TrainLog::new(&log_path))
    };
    crate::config::save(cfg, &run.entry("config.toml")?)?;
    let (model_path, info_path) = (run.entry(MODEL)?, run.entry(INFO)?);
    let valid_labels: Vec<Vec<usize>> = {
        let meds = vocab.medication_index();
        valid.iter().map(|r| r.labels.iter().filter_map(|l| meds.get(l.as_str()).copied()).collect()).collect()
    };
    // Shares the variables' storage: it scores with the current weights.
    let model = LrModel { weight: weight.as_tensor().clone(), bias: bias.as_tensor().clone(), features };
    let bar = crate::progress::bar(t.epochs as u64, "train-baseline lr");
    bar.set_position(state.epoch as u64);
    while state.epoch < t.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        TensorRng::derive(t.seed, &[state.epoch as u64]).shuffle(&mut order);
        let mut loss_sum = 0.0;
        for batch in order.chunks(t.batch_size) {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| samples[i].0.as_slice()).collect();
            let x = model.features.multi_hot(&rows, &device)?;
            let mut y = vec![0f32; batch.len() * m];
            for (row, &i) in batch.iter().enumerate() {
                samples[i].1.iter().for_each(|&l| y[row * m + l] = 1.0);
            }
            let y = Tensor::from_vec(y, (batch.len(), m), &device)?;
            let loss = objective(weight.as_tensor(), bias.as_tensor(), &x, &y, cfg.model.c, n)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * batch.len() as f64;
            opt.step(&loss.backward()?)?;
        }
        state.epoch += 1;
        let probs = model.probabilities(valid)?;
        let prauc = mean_average_precision(valid_labels.iter().map(Vec::as_slice).zip(probs.chunks(m.max(1))));
        log.push(&serde_json::json!({"epoch": state.epoch, "train_loss": loss_sum / n as f64, "valid_prauc": prauc}))?;
        let weights =
            || HashMap::from([("weight".to_string(), model.weight.clone()), ("bias".into(), model.bias.clone())]);
        if state.best_epoch == 0 || prauc > f64::from_bits(state.best_prauc_bits) {
            (state.best_epoch, state.best_prauc_bits) = (state.epoch, prauc.to_bits());
            crate::io::write_safetensors(&model_path, &weights())?;
            let info = BaselineInfo {
                kind: BaselineKind::Lr,
                vocab_fingerprint: vocab.fingerprint(),
                best_epoch: state.epoch,
                best_valid_prauc: prauc,
            };
            crate::io::write_json(&info_path, &info)?;
        }
        // The log first: a crash before the checkpoint leaves entries that resume drops.
        log.save()?;
        let mut saved = opt.state()?;
        saved.extend(weights());
        saved.insert(PROGRESS.to_string(), state.tensor()?);
        crate::io::write_safetensors(&checkpoint, &saved)?;
        bar.println(format!("epoch {}: valid PRAUC {prauc:.4}", state.epoch));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(BaselineSummary {
        epochs_done: state.epoch,
        best_epoch: state.best_epoch,
        best_valid_prauc: f64::from_bits(state.best_prauc_bits),
    })
}
