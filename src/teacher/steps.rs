//! The optimisation loop `train-teacher` and `pretrain` share: AdamW with linear decay to 0 and no
//! warm-up, gradient accumulation over micro-batches, global-norm clipping, a training-loss log,
//! periodic validation keeping the best checkpoint, and a last checkpoint (trainable weights,
//! optimiser state, progress) from which `--resume` continues bit for bit.
//!
//! Determinism: what a step computes depends on the step alone (the trainee draws its data and
//! dropout from it, the learning rate is a function of it), so a resumed run redraws exactly what
//! the uninterrupted run would have.

use crate::io::{AtomicDir, TrainLog};
use crate::nn::adamw::{accumulate, AdamW, AdamWConfig};
use crate::nn::rng::TensorRng;
use anyhow::{ensure, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How a run optimises and when things happen: a command's `[train]` section (pretrain's whole one).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub lr: f64,
    pub weight_decay: f64,
    pub micro_batch: usize,
    pub max_steps: u64,
    pub grad_accum: usize,
    pub clip_grad_norm: f64,
    pub log_every: u64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    /// Seed of the data order, dropout masks and fresh adapters.
    pub seed: u64,
    /// Stop (after a checkpoint) once this many steps were taken in this invocation (a flag, not
    /// a config key).
    #[serde(skip)]
    pub stop_after_steps: Option<u64>,
}

impl Schedule {
    /// Refuses values no run can use, naming the `[train]` key.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.micro_batch > 0 && self.grad_accum > 0 && self.max_steps > 0,
            "train.micro_batch, train.grad_accum and train.max_steps must be positive"
        );
        ensure!(
            self.eval_every > 0 && self.checkpoint_every > 0 && self.log_every > 0,
            "train.eval_every, train.checkpoint_every and train.log_every must be positive"
        );
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "train.lr = {}: the learning rate must be a positive number",
            self.lr
        );
        ensure!(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "train.weight_decay = {}: must be 0 or more",
            self.weight_decay
        );
        ensure!(
            self.clip_grad_norm.is_finite() && self.clip_grad_norm > 0.0,
            "train.clip_grad_norm = {}: must be positive",
            self.clip_grad_norm
        );
        Ok(())
    }

    /// AdamW (β = 0.9, 0.999, ε = 1e-8) over `vars` at the peak learning rate.
    pub fn optimizer(&self, vars: Vec<(String, Var)>) -> Result<AdamW> {
        let cfg = AdamWConfig { lr: self.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: self.weight_decay };
        Ok(AdamW::new(vars, cfg)?)
    }
}

/// One validation: the fields logged, the score best-checkpoint selection maximises, and its
/// progress-line form.
pub struct Validation {
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Higher is better (PRAUC; minus the held-out loss for pretraining).
    pub score: f64,
    pub shown: String,
}

/// What the loop trains.
pub trait Trainee {
    /// Micro-batch `micro` of `step`: its unscaled loss (an f64 scalar left on the device, read once
    /// per step), the gradients of `scale · loss` for the trainable variables, and its real tokens.
    fn micro_batch(&mut self, step: u64, micro: usize, scale: f64) -> Result<(Tensor, GradStore, usize)>;
    fn validate(&self) -> Result<Validation>;
    /// Writes the weights a user keeps (the best checkpoint) into `dir`.
    fn save_best(&self, dir: &Path, step: u64, score: f64) -> Result<()>;
    /// Writes the trainable weights (for resuming) into `dir`; `best` is the best score so far.
    fn save_last(&self, dir: &Path, step: u64, best: Option<f64>) -> Result<()>;
    /// Restores the trainable weights from a `save_last` folder.
    fn load_last(&self, dir: &Path) -> Result<()>;
}

/// Progress of a run, saved with every checkpoint (`state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub step: u64,
    /// For reading; `best_score_bits` is what a resumed run compares against.
    #[serde(alias = "best_prauc")]
    best_score: Option<f64>,
    /// The exact bits of `best_score`: serde_json's float parsing may be off by one ulp, which would
    /// let a resumed run pick a different best checkpoint on a tie.
    #[serde(alias = "best_prauc_bits")]
    best_score_bits: Option<u64>,
    pub best_step: Option<u64>,
    /// Losses (as bits) of the steps since the last log line, so a resumed run logs the same means.
    loss_window_bits: Vec<u64>,
}

impl RunState {
    pub fn best(&self) -> Option<f64> {
        self.best_score_bits.map(f64::from_bits)
    }
}

pub const LOG: &str = "train_log.jsonl";
const STATE: &str = "state.json";
const OPTIMIZER: &str = "optimizer.safetensors";

/// The run's state and log at the checkpoint in `last` (fresh when it has none yet), with the
/// trainee's weights and the optimiser restored from it.
pub fn restore(
    run: &Path,
    last: &Path,
    trainee: &impl Trainee,
    opt: &mut AdamW,
    device: &Device,
    label: &str,
) -> Result<(RunState, TrainLog)> {
    let log_path = run.join(LOG);
    if !last.join(STATE).is_file() {
        crate::progress::say(format!("{label}: {} has no checkpoint yet; starting at step 0", run.display()));
        return Ok((RunState::default(), TrainLog::new(&log_path)));
    }
    trainee.load_last(last)?;
    let opt_path = last.join(OPTIMIZER);
    let saved = candle_core::safetensors::load(&opt_path, device).with_context(|| opt_path.display().to_string())?;
    opt.load_state(&saved)?;
    let state: RunState = crate::io::read_json(&last.join(STATE))?;
    let log = TrainLog::resume(&log_path, |_, e| e["step"].as_u64().is_some_and(|s| s <= state.step))?;
    crate::progress::say(format!("{label}: resuming {} at step {}", run.display(), state.step));
    Ok((state, log))
}

/// The folders a run writes its checkpoints to.
pub struct Checkpoints<'a> {
    pub best: &'a Path,
    pub last: &'a Path,
}

/// What one invocation of [`run_steps`] did: real tokens trained on and seconds taken.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub tokens: usize,
    pub seconds: f64,
}

impl Throughput {
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }
}

/// Runs steps from `state.step` to the schedule's end (or its stop), checkpointing as it goes.
pub fn run_steps(
    s: &Schedule,
    trainee: &mut impl Trainee,
    opt: &mut AdamW,
    vars: &[(String, Var)],
    (state, log): (&mut RunState, &mut TrainLog),
    dirs: Checkpoints,
    label: &str,
) -> Result<Throughput> {
    let bar = crate::progress::bar(s.max_steps, label);
    bar.set_position(state.step);
    let (started, mut tokens_seen, mut steps_this_run) = (Instant::now(), 0usize, 0u64);
    while state.step < s.max_steps {
        let (loss, grad_norm, tokens) = one_step(s, trainee, opt, vars, state.step, dirs.last)?;
        state.step += 1;
        steps_this_run += 1;
        tokens_seen += tokens;
        state.loss_window_bits.push(loss.to_bits());
        // Speed goes to the progress line only: the log holds what a resumed run reproduces exactly.
        let tok_s = tokens_seen as f64 / started.elapsed().as_secs_f64();
        bar.set_message(format!("loss {loss:.4} {tok_s:.0} tok/s"));
        bar.inc(1);
        let at_end = state.step == s.max_steps;
        if state.step % s.log_every == 0 || at_end {
            let window = std::mem::take(&mut state.loss_window_bits);
            let mean = window.iter().map(|&b| f64::from_bits(b)).sum::<f64>() / window.len() as f64;
            log.push(&serde_json::json!({"step": state.step, "kind": "train", "loss": mean, "lr": opt.config.lr,
                "grad_norm": grad_norm}))?;
        }
        if state.step % s.eval_every == 0 || at_end {
            let v = trainee.validate()?;
            let mut entry = serde_json::json!({"step": state.step, "kind": "valid"});
            entry.as_object_mut().expect("an object").extend(v.fields);
            log.push(&entry)?;
            bar.println(format!("step {}: {}", state.step, v.shown));
            if state.best().is_none_or(|b| v.score > b) {
                (state.best_score, state.best_score_bits, state.best_step) =
                    (Some(v.score), Some(v.score.to_bits()), Some(state.step));
                let dir = AtomicDir::create(dirs.best)?;
                trainee.save_best(dir.path(), state.step, v.score)?;
                dir.commit()?;
            }
        }
        let stopping = s.stop_after_steps.is_some_and(|n| steps_this_run >= n);
        if state.step % s.checkpoint_every == 0 || at_end || stopping {
            save_last(trainee, opt, state, log, dirs.last)?;
        }
        if stopping {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(Throughput { tokens: tokens_seen, seconds: started.elapsed().as_secs_f64() })
}

/// One optimiser step at `step`: returns the loss, the gradient norm before clipping and the tokens.
fn one_step(
    s: &Schedule,
    trainee: &mut impl Trainee,
    opt: &mut AdamW,
    vars: &[(String, Var)],
    step: u64,
    last: &Path,
) -> Result<(f64, f64, usize)> {
    opt.set_lr(s.lr * (1.0 - step as f64 / s.max_steps as f64));
    let (mut grads, mut losses, mut tokens) = (GradStore::default(), Vec::with_capacity(s.grad_accum), 0);
    let scale = 1.0 / s.grad_accum as f64;
    for micro in 0..s.grad_accum {
        let (loss, g, n) = trainee.micro_batch(step, micro, scale)?;
        accumulate(&mut grads, &g, vars)?;
        losses.push((loss * scale)?);
        tokens += n;
    }
    let loss = Tensor::stack(&losses, 0)?.sum_all()?.to_scalar::<f64>()?;
    ensure!(
        loss.is_finite(),
        "step {}: the loss is {loss}; stopping. The last good checkpoint is kept in {}",
        step + 1,
        last.display()
    );
    let grad_norm = opt.clip_grad_norm(&mut grads, s.clip_grad_norm)?;
    opt.step(&grads)?;
    Ok((loss, grad_norm, tokens))
}

/// Writes the last checkpoint: trainable weights, optimiser state (on the host), progress, and the log.
fn save_last(trainee: &impl Trainee, opt: &AdamW, state: &RunState, log: &TrainLog, last: &Path) -> Result<()> {
    let dir = AtomicDir::create(last)?;
    trainee.save_last(dir.path(), state.step, state.best())?;
    let opt_state = opt
        .state()?
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(&Device::Cpu)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    crate::io::write_safetensors(&dir.path().join(OPTIMIZER), &opt_state)?;
    crate::io::write_json(&dir.path().join(STATE), state)?;
    // The log first: a crash before the checkpoint's rename leaves entries that resume drops.
    log.save()?;
    dir.commit()
}

/// Sample positions → record indices: position p lies in epoch p / n, whose order is a seeded
/// permutation, so any step's micro-batches can be recomputed from the step alone.
pub struct Order {
    n: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl Order {
    pub fn new(n: usize, seed: u64) -> Self {
        Self { n, seed, epoch: None }
    }

    /// The items at sample positions `start..start + count`.
    pub fn rows(&mut self, start: u64, count: usize) -> Vec<usize> {
        (start..start + count as u64)
            .map(|p| {
                let epoch = p / self.n as u64;
                if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut perm: Vec<usize> = (0..self.n).collect();
                    TensorRng::derive(self.seed, &[0x5eed, epoch]).shuffle(&mut perm);
                    self.epoch = Some((epoch, perm));
                }
                self.epoch.as_ref().expect("set above").1[(p % self.n as u64) as usize]
            })
            .collect()
    }
}
