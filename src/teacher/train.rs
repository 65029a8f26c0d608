//! `leader train-teacher`: fine-tunes LoRA adapters and the classification head with BCE (reference
//! §3.3): AdamW with linear decay to 0, gradient accumulation, clipping, periodic validation PRAUC
//! with best-checkpoint selection, atomic checkpoints and bit-identical `--resume`.
//!
//! Determinism: the data order is a stream of seeded epoch permutations indexed by sample position,
//! dropout masks are keyed by `(seed, step, micro-batch, module)`, and the learning rate is a function
//! of the step, so a resumed run redraws exactly what the uninterrupted run would have.

use super::grads::loss_and_grads;
use super::lora::{DropoutKey, LoraConfig, Pass};
use super::model::TeacherModel;
use super::peft::{self, TeacherMeta};
use super::run::{last_dir, BEST, LAST};
use super::weights::BaseModel;
use crate::config::ConfigArgs;
use crate::data::record::{read_records, Record};
use crate::data::vocab::Vocab;
use crate::eval::metrics::mean_average_precision;
use crate::io::output::{OutputKind, RunDir, RunInputs};
use crate::io::{AtomicDir, TrainLog};
use crate::nn::adamw::accumulate;
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::device::{DeviceSpec, Precision};
use crate::nn::rng::TensorRng;
use anyhow::{bail, ensure, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const DEFAULT_CONFIG: &str = include_str!("../../configs/teacher.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    pub model: ModelSection,
    pub lora: LoraConfig,
    pub train: TrainSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub base: String,
    pub revision: String,
    pub max_tokens: usize,
    pub dtype: Precision,
    pub device: DeviceSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub lr: f64,
    pub weight_decay: f64,
    pub micro_batch: usize,
    pub grad_accum: usize,
    pub max_steps: u64,
    pub clip_grad_norm: f64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    pub eval_batch: usize,
    pub log_every: u64,
    pub seed: u64,
    pub checkpoint_layers: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct TrainTeacherArgs {
    /// Preprocessed data folder (train.jsonl, valid.jsonl, vocab.json); on --resume, the run's.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Base model: a folder, a hub repo id, or random:tiny|1b|7b.
    #[arg(long)]
    pub model: Option<String>,
    /// Hub revision of --model.
    #[arg(long)]
    pub revision: Option<String>,
    /// New run folder (absent or empty; an earlier run with --overwrite).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Replace an earlier run of train-teacher at --out.
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Continue the run in this folder from its last checkpoint, with its saved config and data
    /// (--max-steps may extend it; any other option must repeat the saved value).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// f32, bf16 or f16 (compute dtype of the frozen base).
    #[arg(long)]
    pub dtype: Option<Precision>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub micro_batch: Option<usize>,
    #[arg(long)]
    pub grad_accum: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Recompute each layer in the backward pass instead of keeping its activations.
    #[arg(long)]
    pub checkpoint_layers: bool,
    /// Stop (after writing a checkpoint) once this many steps were taken in this invocation; continue
    /// later with --resume. For time-sliced jobs.
    #[arg(long)]
    pub stop_after_steps: Option<u64>,
    /// Benchmark instead of training: one warm-up step, then this many timed steps on random token ids
    /// (no data needed), printing tokens/s and device memory as one JSON line. Nothing is written.
    #[arg(long)]
    pub bench_steps: Option<u64>,
    /// Tokens per row in benchmark mode.
    #[arg(long, default_value_t = 1024)]
    pub bench_seq_len: usize,
    /// Benchmark the frozen forward pass (what export-hidden and predict run) instead of training.
    #[arg(long)]
    pub bench_forward_only: bool,
    /// Instead of training: one micro-batch of random token ids on --device in --dtype and on the CPU
    /// in f32 (same --model folder, same adapters); prints the largest relative differences of the
    /// pooled vectors, the loss and the LoRA/head gradients as one JSON line. Nothing is written.
    #[arg(long, conflicts_with = "bench_steps")]
    pub check_against_cpu: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The data folder's files a teacher run reads.
const DATA_FILES: [&str; 3] = ["vocab.json", "train.jsonl", "valid.jsonl"];

impl TrainTeacherArgs {
    /// The explicit flags as config assignments.
    fn flags(&self) -> Result<Vec<String>> {
        use crate::config::flag;
        let mut flags = Vec::new();
        if let Some(v) = &self.model {
            // A local folder is recorded absolutely so the checkpoint loads from any working directory.
            let base = if Path::new(v).is_dir() {
                std::fs::canonicalize(v)?.to_string_lossy().into_owned()
            } else {
                v.clone()
            };
            flags.push(flag("model.base", base));
        }
        flags.extend(self.revision.iter().map(|v| flag("model.revision", v.as_str())));
        flags.extend(self.dtype.iter().map(|v| flag("model.dtype", v)));
        flags.extend(self.device.iter().map(|v| flag("model.device", v)));
        flags.extend(self.max_tokens.iter().map(|&v| flag("model.max_tokens", v)));
        flags.extend(self.max_steps.iter().map(|&v| flag("train.max_steps", v)));
        flags.extend(self.seed.iter().map(|&v| flag("train.seed", v)));
        flags.extend(self.micro_batch.iter().map(|&v| flag("train.micro_batch", v)));
        flags.extend(self.grad_accum.iter().map(|&v| flag("train.grad_accum", v)));
        flags.extend(self.lr.iter().map(|&v| flag("train.lr", v)));
        if self.checkpoint_layers {
            flags.push(flag("train.checkpoint_layers", true));
        }
        Ok(flags)
    }

    /// The effective config: defaults, then --config/--set, then the explicit flags; on --resume the
    /// run's saved config, which only --max-steps may change.
    pub fn effective_config(&self) -> Result<TeacherConfig> {
        let flags = self.flags()?;
        let mut cfg: TeacherConfig = match &self.resume {
            Some(run) => crate::config::resume(run, &self.config, &flags, &["train.max_steps"])?,
            None => crate::config::resolve(DEFAULT_CONFIG, &self.config, &flags)?,
        };
        let (m, t) = (&mut cfg.model, &cfg.train);
        ensure!(!m.base.is_empty(), "no base model: give --model DIR|HUB_ID|random:SHAPE");
        if Path::new(&m.base).is_dir() {
            m.base = std::fs::canonicalize(&m.base)?.to_string_lossy().into_owned();
        }
        ensure!(
            t.micro_batch > 0 && t.grad_accum > 0 && t.max_steps > 0,
            "micro_batch, grad_accum and max_steps must be positive"
        );
        ensure!(
            t.eval_every > 0 && t.checkpoint_every > 0 && t.log_every > 0,
            "eval_every, checkpoint_every and log_every must be positive"
        );
        ensure!(t.lr.is_finite() && t.lr > 0.0, "train.lr = {}: the learning rate must be a positive number", t.lr);
        ensure!(
            t.weight_decay.is_finite() && t.weight_decay >= 0.0,
            "train.weight_decay = {}: must be 0 or more",
            t.weight_decay
        );
        ensure!(
            t.clip_grad_norm.is_finite() && t.clip_grad_norm > 0.0,
            "train.clip_grad_norm = {}: must be positive",
            t.clip_grad_norm
        );
        Ok(cfg)
    }

    /// The data the run trains on: the resumed run's (checked unchanged), or `--data` for a new run
    /// (whose `--out` is checked before any work).
    fn inputs(&self) -> Result<RunInputs> {
        match (&self.resume, &self.out) {
            (Some(run), _) => RunInputs::for_resume(run, self.data.as_deref(), &DATA_FILES),
            (None, Some(out)) => {
                RunDir::check(out, OutputKind::TrainTeacher, self.overwrite)?;
                RunInputs::of(
                    self.data.as_deref().context("give --data DIR (the preprocessed data folder)")?,
                    &DATA_FILES,
                )
            }
            (None, None) => bail!("give --out RUN (a new run) or --resume RUN (or --bench-steps N)"),
        }
    }

    /// The run folder, created (or reopened by --resume) and locked once the inputs have loaded, so
    /// a failed start leaves no run behind.
    fn open_run(&self, inputs: &RunInputs) -> Result<RunDir> {
        match (&self.resume, &self.out) {
            (Some(run), _) => RunDir::resume(run, OutputKind::TrainTeacher),
            (None, Some(out)) => {
                let mut dir = RunDir::create(out, OutputKind::TrainTeacher, self.overwrite)?;
                inputs.save(&mut dir)?;
                Ok(dir)
            }
            (None, None) => bail!("give --out RUN (a new run) or --resume RUN"),
        }
    }
}

/// Records with their label indices.
struct Examples {
    prompts: Vec<String>,
    labels: Vec<Vec<usize>>,
}

impl Examples {
    fn read(path: &Path, vocab: &Vocab) -> Result<Self> {
        let records = read_records(path)?;
        Self::from_records(&records, vocab).with_context(|| path.display().to_string())
    }

    fn from_records(records: &[Record], vocab: &Vocab) -> Result<Self> {
        let index = vocab.medication_index();
        let mut labels = Vec::with_capacity(records.len());
        for (row, r) in records.iter().enumerate() {
            let ids = r.labels.iter().map(|c| {
                index
                    .get(c.as_str())
                    .copied()
                    .with_context(|| format!("line {}: label {c:?} is not in vocab.json's medications", row + 1))
            });
            labels.push(ids.collect::<Result<Vec<_>>>()?);
        }
        Ok(Self { prompts: records.iter().map(|r| r.prompt.clone()).collect(), labels })
    }

    fn multi_hot(&self, rows: &[usize], m: usize, device: &Device) -> Result<Tensor> {
        let mut y = vec![0f32; rows.len() * m];
        for (i, &r) in rows.iter().enumerate() {
            for &l in &self.labels[r] {
                y[i * m + l] = 1.0;
            }
        }
        Ok(Tensor::from_vec(y, (rows.len(), m), device)?)
    }
}

/// Sample positions → record indices: position p lies in epoch p / n, whose order is a seeded
/// permutation, so any step's micro-batches can be recomputed from the step alone.
struct Order {
    n: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl Order {
    fn rows(&mut self, start: u64, count: usize) -> Vec<usize> {
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

/// Mean per-record average precision (the evaluation's PRAUC) of the model on `data`.
fn valid_prauc(model: &TeacherModel, data: &Examples, batch: usize) -> Result<f64> {
    let mut probs = Vec::with_capacity(data.prompts.len());
    for chunk in data.prompts.chunks(batch) {
        let prompts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        probs.extend(model.probabilities(&prompts)?);
    }
    Ok(mean_average_precision(data.labels.iter().map(Vec::as_slice).zip(probs.iter().map(Vec::as_slice))))
}

/// Progress of a run, saved with every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunState {
    step: u64,
    /// For reading; `best_prauc_bits` is what a resumed run compares against.
    best_prauc: Option<f64>,
    /// The exact bits of `best_prauc`: serde_json's float parsing may be off by one ulp, which would
    /// let a resumed run pick a different best checkpoint on a tie.
    best_prauc_bits: Option<u64>,
    best_step: Option<u64>,
    /// Losses (as bits) of the steps since the last log line, so a resumed run logs the same means.
    loss_window_bits: Vec<u64>,
}

impl RunState {
    fn best(&self) -> Option<f64> {
        self.best_prauc_bits.map(f64::from_bits)
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TeacherSummary {
    pub steps: u64,
    pub best_prauc: Option<f64>,
    pub best_step: Option<u64>,
}

pub(crate) struct Setup {
    pub cfg: TeacherConfig,
    pub device: Device,
    pub dtype: DType,
    pub base: BaseModel,
}

pub(crate) fn setup(args: &TrainTeacherArgs) -> Result<Setup> {
    let cfg = args.effective_config()?;
    let device = cfg.model.device.open()?;
    let dtype = cfg.model.dtype.dtype();
    let revision = Some(cfg.model.revision.as_str()).filter(|r| *r != "main");
    let base = BaseModel::resolve(&cfg.model.base, revision, cfg.train.seed)?;
    Ok(Setup { cfg, device, dtype, base })
}

/// The run's state and log at its last checkpoint (fresh when it has none yet).
fn restore(run: &Path, model: &TeacherModel, opt: &mut AdamW, device: &Device) -> Result<(RunState, TrainLog)> {
    let last = last_dir(run);
    let log_path = run.join(LOG);
    if !last.join("state.json").is_file() {
        crate::progress::say(format!("train-teacher: {} has no checkpoint yet; starting at step 0", run.display()));
        return Ok((RunState::default(), TrainLog::new(&log_path)));
    }
    peft::load_into(&last, model)?;
    let opt_path = last.join("optimizer.safetensors");
    opt.load_state(
        &candle_core::safetensors::load(&opt_path, device).with_context(|| opt_path.display().to_string())?,
    )?;
    let state: RunState = crate::io::read_json(&last.join("state.json"))?;
    let log = TrainLog::resume(&log_path, |_, e| e["step"].as_u64().is_some_and(|s| s <= state.step))?;
    crate::progress::say(format!("train-teacher: resuming {} at step {}", run.display(), state.step));
    Ok((state, log))
}

const LOG: &str = "train_log.jsonl";

/// Trains a teacher as `args` say; the library entry point behind `leader train-teacher`.
pub fn train_teacher(args: &TrainTeacherArgs) -> Result<TeacherSummary> {
    let Setup { cfg, device, dtype, base } = setup(args)?;
    let inputs = args.inputs()?;
    let data = &inputs.data;
    let vocab = Vocab::load(&data.join("vocab.json"))?;
    let train = Examples::read(&data.join("train.jsonl"), &vocab)?;
    let valid = Examples::read(&data.join("valid.jsonl"), &vocab)?;
    ensure!(!train.prompts.is_empty(), "{}: no training records", data.join("train.jsonl").display());
    ensure!(
        !valid.prompts.is_empty(),
        "{}: no validation records; the best checkpoint is chosen on them",
        data.join("valid.jsonl").display()
    );
    let t = &cfg.train;
    let m = vocab.num_medications();
    let model = TeacherModel::new(&base, &cfg.lora, m, t.seed, dtype, &device, cfg.model.max_tokens)?;
    let vars = model.trainable();
    let adam = AdamWConfig { lr: t.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: t.weight_decay };
    let mut opt = AdamW::new(vars.clone(), adam)?;
    let mut run = args.open_run(&inputs)?;
    let out = run.path().to_path_buf();
    let log_path = run.entry(LOG)?;
    let (mut state, mut log) = match args.resume {
        Some(_) => restore(&out, &model, &mut opt, &device)?,
        None => (RunState::default(), TrainLog::new(&log_path)),
    };
    crate::config::save(&cfg, &run.entry("config.toml")?)?;
    let (best, last) = (run.entry(BEST)?, run.entry(LAST)?);
    // What every checkpoint records; only the step and its validation PRAUC change.
    let trained_on = TeacherMeta {
        base_model: cfg.model.base.clone(),
        revision: Some(cfg.model.revision.clone()).filter(|r| r != "main"),
        base_seed: t.seed,
        base_fingerprint: base.fingerprint()?,
        max_tokens: cfg.model.max_tokens,
        hidden_size: model.hidden_size(),
        num_medications: m,
        vocab_fingerprint: vocab.fingerprint(),
        step: 0,
        valid_prauc: None,
    };
    let meta = |step: u64, valid_prauc: Option<f64>| TeacherMeta { step, valid_prauc, ..trained_on.clone() };
    let mut order = Order { n: train.prompts.len(), seed: t.seed, epoch: None };
    let bar = crate::progress::bar(t.max_steps, "train-teacher");
    bar.set_position(state.step);
    let (started, mut tokens_seen, mut steps_this_run) = (Instant::now(), 0usize, 0u64);
    while state.step < t.max_steps {
        let step = state.step;
        opt.set_lr(t.lr * (1.0 - step as f64 / t.max_steps as f64));
        let mut grads = GradStore::default();
        let mut losses = Vec::with_capacity(t.grad_accum);
        for micro in 0..t.grad_accum {
            let rows = order.rows((step * t.grad_accum as u64 + micro as u64) * t.micro_batch as u64, t.micro_batch);
            let prompts: Vec<&str> = rows.iter().map(|&r| train.prompts[r].as_str()).collect();
            let batch = model.batch(&prompts)?;
            tokens_seen += batch.real_tokens();
            let key = DropoutKey { seed: t.seed, step, micro: micro as u64 };
            let labels = train.multi_hot(&rows, m, &device)?;
            let scale = 1.0 / t.grad_accum as f64;
            let (l, g) = loss_and_grads(&model, &batch, &labels, Pass::train(Some(key)), scale, t.checkpoint_layers)?;
            accumulate(&mut grads, &g, &vars)?;
            losses.push((l * scale)?);
        }
        let loss = Tensor::stack(&losses, 0)?.sum_all()?.to_scalar::<f64>()?;
        ensure!(
            loss.is_finite(),
            "step {}: the loss is {loss}; stopping. The last good checkpoint is kept in {}",
            step + 1,
            last.display()
        );
        let grad_norm = opt.clip_grad_norm(&mut grads, t.clip_grad_norm)?;
        opt.step(&grads)?;
        state.step += 1;
        steps_this_run += 1;
        state.loss_window_bits.push(loss.to_bits());
        // Speed goes to the progress line only: the log holds what a resumed run reproduces exactly.
        let tok_s = tokens_seen as f64 / started.elapsed().as_secs_f64();
        bar.set_message(format!("loss {loss:.4} {tok_s:.0} tok/s"));
        bar.inc(1);
        let at_end = state.step == t.max_steps;
        if state.step % t.log_every == 0 || at_end {
            let window = std::mem::take(&mut state.loss_window_bits);
            let mean = window.iter().map(|&b| f64::from_bits(b)).sum::<f64>() / window.len() as f64;
            log.push(&serde_json::json!({"step": state.step, "kind": "train", "loss": mean, "lr": opt.config.lr,
                "grad_norm": grad_norm}))?;
        }
        if state.step % t.eval_every == 0 || at_end {
            let prauc = valid_prauc(&model, &valid, cfg.train.eval_batch)?;
            log.push(&serde_json::json!({"step": state.step, "kind": "valid", "valid_prauc": prauc}))?;
            bar.println(format!("step {}: valid PRAUC {prauc:.4}", state.step));
            if state.best().is_none_or(|b| prauc > b) {
                state.best_prauc = Some(prauc);
                state.best_prauc_bits = Some(prauc.to_bits());
                state.best_step = Some(state.step);
                let dir = AtomicDir::create(&best)?;
                peft::save(dir.path(), &model, &cfg.lora, &vocab, &meta(state.step, Some(prauc)))?;
                dir.commit()?;
            }
        }
        let stopping = args.stop_after_steps.is_some_and(|n| steps_this_run >= n);
        if state.step % t.checkpoint_every == 0 || at_end || stopping {
            let dir = AtomicDir::create(&last)?;
            peft::save(dir.path(), &model, &cfg.lora, &vocab, &meta(state.step, state.best()))?;
            let opt_state = opt
                .state()?
                .into_iter()
                .map(|(k, v)| Ok((k, v.to_device(&Device::Cpu)?)))
                .collect::<Result<HashMap<_, _>>>()?;
            crate::io::write_safetensors(&dir.path().join("optimizer.safetensors"), &opt_state)?;
            crate::io::write_json(&dir.path().join("state.json"), &state)?;
            // The log first: a crash before the checkpoint's rename leaves entries that resume drops.
            log.save()?;
            dir.commit()?;
        }
        if stopping {
            break;
        }
    }
    bar.finish_and_clear();
    if state.step == t.max_steps {
        run.finish()?;
    }
    Ok(TeacherSummary { steps: state.step, best_prauc: state.best(), best_step: state.best_step })
}
