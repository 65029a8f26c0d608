//! `leader train-teacher`: fine-tunes LoRA adapters and the classification head with BCE (reference
//! §3.3): AdamW with linear decay to 0, gradient accumulation, clipping, periodic validation PRAUC
//! with best-checkpoint selection, atomic checkpoints and bit-identical `--resume`.
//!
//! Determinism: the data order is a stream of seeded epoch permutations indexed by sample position,
//! dropout masks are keyed by `(seed, step, micro-batch, module)`, and the learning rate is a function
//! of the step, so a resumed run redraws exactly what the uninterrupted run would have.

use super::grads::loss_and_grads;
use super::lora::{DropoutKey, LoraConfig, Pass};
use super::model::{HeadKind, TeacherModel};
use super::peft::{self, TeacherMeta};
use super::run::{BEST, LAST};
use super::steps::{self, Checkpoints, Order, RunState, Schedule, Trainee, Validation};
use super::weights::{recorded_base, BaseModel};
use crate::config::ConfigArgs;
use crate::data::record::{read_records, Record};
use crate::data::vocab::Vocab;
use crate::eval::metrics::mean_average_precision;
use crate::io::output::{OutputKind, RunArgs, RunDir, RunInputs};
use crate::io::TrainLog;
use crate::nn::device::{DeviceSpec, Precision};
use anyhow::{bail, ensure, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = include_str!("../../configs/teacher.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    pub model: ModelSection,
    pub lora: LoraConfig,
    pub head: HeadSection,
    pub train: TrainSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSection {
    pub kind: HeadKind,
    /// Training prompts (the first, in file order) the standardised head's statistics are measured on.
    pub statistics_prompts: usize,
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

impl TrainSection {
    /// The step loop's schedule, stopping early after `stop_after_steps` when given.
    pub fn schedule(&self, stop_after_steps: Option<u64>) -> Schedule {
        Schedule {
            lr: self.lr,
            weight_decay: self.weight_decay,
            micro_batch: self.micro_batch,
            max_steps: self.max_steps,
            grad_accum: self.grad_accum,
            clip_grad_norm: self.clip_grad_norm,
            log_every: self.log_every,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            seed: self.seed,
            stop_after_steps,
        }
    }
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
    #[command(flatten)]
    pub run: RunArgs,
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
            flags.push(flag("model.base", recorded_base(v)?));
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
        let mut cfg: TeacherConfig = match &self.run.resume {
            Some(run) => crate::config::resume(run, &self.config, &flags, &["train.max_steps"])?,
            None => crate::config::resolve(DEFAULT_CONFIG, &self.config, &flags)?,
        };
        let m = &mut cfg.model;
        ensure!(!m.base.is_empty(), "no base model: give --model DIR|HUB_ID|random:SHAPE");
        m.base = recorded_base(&m.base)?;
        cfg.train.schedule(None).check()?;
        Ok(cfg)
    }

    /// The data the run trains on: the resumed run's (checked unchanged), or `--data` for a new run
    /// (whose `--out` is checked before any work).
    fn inputs(&self) -> Result<RunInputs> {
        match (&self.run.resume, &self.run.out) {
            (Some(run), _) => RunInputs::for_resume(run, self.data.as_deref(), &DATA_FILES),
            (None, Some(out)) => {
                RunDir::check(out, OutputKind::TrainTeacher, self.run.overwrite)?;
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
        match (&self.run.resume, &self.run.out) {
            (Some(run), _) => RunDir::resume(run, OutputKind::TrainTeacher),
            (None, Some(out)) => {
                let mut dir = RunDir::create(out, OutputKind::TrainTeacher, self.run.overwrite)?;
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

/// The teacher as the step loop sees it: the model, its data and what every checkpoint records.
struct TeacherTrainee<'a> {
    model: TeacherModel,
    train: Examples,
    valid: Examples,
    order: Order,
    cfg: &'a TeacherConfig,
    vocab: Vocab,
    /// Only the step and the validation PRAUC change between checkpoints.
    meta: TeacherMeta,
}

impl TeacherTrainee<'_> {
    /// Mean per-record average precision (the evaluation's PRAUC) of the model on the valid split.
    fn valid_prauc(&self) -> Result<f64> {
        let mut probs = Vec::with_capacity(self.valid.prompts.len());
        for chunk in self.valid.prompts.chunks(self.cfg.train.eval_batch) {
            let prompts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            probs.extend(self.model.probabilities(&prompts)?);
        }
        let labels = self.valid.labels.iter().map(Vec::as_slice);
        Ok(mean_average_precision(labels.zip(probs.iter().map(Vec::as_slice))))
    }

    fn save(&self, dir: &Path, step: u64, valid_prauc: Option<f64>) -> Result<()> {
        peft::save(
            dir,
            &self.model,
            &self.cfg.lora,
            &self.vocab,
            &TeacherMeta { step, valid_prauc, ..self.meta.clone() },
        )
    }
}

impl Trainee for TeacherTrainee<'_> {
    fn micro_batch(&mut self, step: u64, micro: usize, scale: f64) -> Result<(Tensor, GradStore, usize)> {
        let t = &self.cfg.train;
        let rows = self.order.rows((step * t.grad_accum as u64 + micro as u64) * t.micro_batch as u64, t.micro_batch);
        let prompts: Vec<&str> = rows.iter().map(|&r| self.train.prompts[r].as_str()).collect();
        let batch = self.model.batch(&prompts)?;
        let labels = self.train.multi_hot(&rows, self.model.num_medications(), self.model.llama.device())?;
        let pass = Pass::train(Some(DropoutKey { seed: t.seed, step, micro: micro as u64 }));
        let (loss, grads) = loss_and_grads(&self.model, &batch, &labels, pass, scale, t.checkpoint_layers)?;
        Ok((loss, grads, batch.real_tokens()))
    }

    fn validate(&self) -> Result<Validation> {
        let prauc = self.valid_prauc()?;
        let fields = serde_json::json!({"valid_prauc": prauc}).as_object().cloned().unwrap_or_default();
        Ok(Validation { fields, score: prauc, shown: format!("valid PRAUC {prauc:.4}") })
    }

    fn save_best(&self, dir: &Path, step: u64, score: f64) -> Result<()> {
        self.save(dir, step, Some(score))
    }

    fn save_last(&self, dir: &Path, step: u64, best: Option<f64>) -> Result<()> {
        self.save(dir, step, best)
    }

    fn load_last(&self, dir: &Path) -> Result<()> {
        peft::load_into(dir, &self.model)
    }
}

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
    let model = TeacherModel::new(&base, &cfg.lora, cfg.head.kind, m, t.seed, dtype, &device, cfg.model.max_tokens)?;
    // Deterministic from the base and the data, so a resumed run measures the same (and then loads them).
    let measured = train.prompts.len().min(cfg.head.statistics_prompts);
    model.start_head(&train.prompts[..measured], &train.labels, t.eval_batch)?;
    let vars = model.trainable();
    let schedule = t.schedule(args.stop_after_steps);
    let mut opt = schedule.optimizer(vars.clone())?;
    let mut run = args.open_run(&inputs)?;
    let meta = TeacherMeta {
        base_model: cfg.model.base.clone(),
        revision: Some(cfg.model.revision.clone()).filter(|r| r != "main"),
        base_seed: t.seed,
        base_fingerprint: base.fingerprint()?,
        max_tokens: cfg.model.max_tokens,
        head: cfg.head.kind,
        hidden_size: model.hidden_size(),
        num_medications: m,
        vocab_fingerprint: vocab.fingerprint(),
        step: 0,
        valid_prauc: None,
    };
    let order = Order::new(train.prompts.len(), t.seed);
    let mut trainee = TeacherTrainee { model, train, valid, order, cfg: &cfg, vocab, meta };
    let out = run.path().to_path_buf();
    let log_path = run.entry(steps::LOG)?;
    let (best, last) = (run.entry(BEST)?, run.entry(LAST)?);
    let (mut state, mut log) = match args.run.resume {
        Some(_) => steps::restore(&out, &last, &trainee, &mut opt, &device, "train-teacher")?,
        None => (RunState::default(), TrainLog::new(&log_path)),
    };
    crate::config::save(&cfg, &run.entry("config.toml")?)?;
    let checkpoints = Checkpoints { best: &best, last: &last };
    steps::run_steps(&schedule, &mut trainee, &mut opt, &vars, (&mut state, &mut log), checkpoints, "train-teacher")?;
    if state.step == t.max_steps {
        run.finish()?;
    }
    Ok(TeacherSummary { steps: state.step, best_prauc: state.best(), best_step: state.best_step })
}
