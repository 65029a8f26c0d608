//! `leader train-student` (no teacher) and `leader distill` (feature KD from a teacher cache, or from
//! the teacher itself run online on each batch): Adam, early stopping on validation PRAUC, a checkpoint
//! per epoch and bit-identical `--resume`.

use super::batch::{CodeVocab, EncodeStats, EncodedRecord};
use super::checkpoint::{self, RunInfo, TrainState};
use super::config::{StudentConfig, TeacherSection, DEFAULT};
use super::kd::KdTarget;
use super::losses::TrainingHeads;
use super::model::{ModelShape, StudentNet};
use super::step::Trainer;
use crate::config::TrainArgs;
use crate::data::record::{read_records, split_path};
use crate::data::vocab::Vocab;
use crate::eval::metrics::{score_record, Threshold};
use crate::io::output::{OutputKind, RunDir, RunInputs};
use crate::io::TrainLog;
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::device::{DeviceSpec, Precision};
use crate::nn::parallel;
use crate::nn::params::SeededVarMap;
use crate::nn::rng::TensorRng;
use crate::progress;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug, Clone, Default)]
pub struct TrainStudentArgs {
    #[command(flatten)]
    pub common: TrainArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DistillArgs {
    #[command(flatten)]
    pub common: TrainArgs,
    /// Offline KD: teacher cache (safetensors `hidden` [n, H], `subject_id` [n]) over the train split
    /// (teacher.cache).
    #[arg(long, conflicts_with = "teacher")]
    pub teacher_cache: Option<PathBuf>,
    /// Online KD: a trained teacher run folder, run frozen on every training batch's prompts
    /// (teacher.run).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Device of the online teacher: cpu, cuda or cuda:N (teacher.device).
    #[arg(long)]
    pub teacher_device: Option<DeviceSpec>,
    /// Compute dtype of the online teacher: f32, bf16 or f16 (teacher.dtype).
    #[arg(long)]
    pub teacher_dtype: Option<Precision>,
    /// Weight of the feature KD loss (loss.alpha).
    #[arg(long)]
    pub alpha: Option<f64>,
}

/// Where the KD target comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherSource {
    None,
    Cache(PathBuf),
    /// A teacher run folder, loaded onto `device` (cpu, cuda, cuda:N) with its base in `dtype`.
    Online {
        run: PathBuf,
        device: DeviceSpec,
        dtype: Precision,
    },
}

impl TeacherSource {
    /// The source a config's `[teacher]` section names (at most one of `cache` and `run`).
    pub fn from_section(t: &TeacherSection) -> Result<Self> {
        let (cache, run) = (!t.cache.as_os_str().is_empty(), !t.run.as_os_str().is_empty());
        ensure!(!(cache && run), "teacher.cache and teacher.run are both set; online or offline KD, not both");
        Ok(if cache {
            Self::Cache(t.cache.clone())
        } else if run {
            Self::Online { run: t.run.clone(), device: t.device, dtype: t.dtype }
        } else {
            Self::None
        })
    }

    /// `section` naming this source (device and dtype are kept unless online).
    fn recorded_in(&self, section: &TeacherSection) -> TeacherSection {
        let none = TeacherSection { cache: PathBuf::new(), run: PathBuf::new(), ..section.clone() };
        match self {
            Self::None => none,
            Self::Cache(path) => TeacherSection { cache: path.clone(), ..none },
            Self::Online { run, device, dtype } => {
                TeacherSection { run: run.clone(), device: *device, dtype: *dtype, ..none }
            }
        }
    }

    /// The KD targets, standardised per dimension when `standardise` (`loss.standardise_teacher`).
    fn load(&self, data_dir: &Path, vocab: &Vocab, train_set: &[EncodedRecord], standardise: bool) -> Result<KdTarget> {
        match self {
            Self::None => Ok(KdTarget::None),
            Self::Cache(path) => {
                let subjects: Vec<u64> = train_set.iter().map(|r| r.subject_id).collect();
                KdTarget::from_cache(path, &subjects, standardise)
            }
            Self::Online { run, device, dtype } => {
                KdTarget::online(run, &device.open()?, dtype.dtype(), data_dir, vocab, standardise)
            }
        }
    }
}

/// A training job, independent of the command line.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub config: StudentConfig,
    pub teacher: TeacherSource,
    /// Continue the run in `run_dir` (its checkpoint must exist).
    pub resume: bool,
    /// Replace an earlier run in `run_dir` (a new run only).
    pub overwrite: bool,
}

/// The data folder's files a student run reads.
const DATA_FILES: [&str; 3] = ["vocab.json", "train.jsonl", "valid.jsonl"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StudentSummary {
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_valid_prauc: f64,
}

/// One line of `train_log.jsonl`. Epoch times go to the progress lines only: the log holds what a
/// resumed run reproduces bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_bce: f64,
    pub train_kd: Option<f64>,
    pub train_align: Option<f64>,
    pub valid_prauc: f64,
    pub valid_jaccard: f64,
    pub valid_f1: f64,
    pub best_valid_prauc: f64,
}

pub fn run_train_student(args: &TrainStudentArgs) -> Result<()> {
    // The "w/o KD" ablation: no teacher, so α is 0 in the saved config too.
    let opts = options(&args.common, &[crate::config::flag("loss.alpha", 0.0)], &[])?;
    train(&opts).map(|_| ())
}

/// The config keys distill's teacher flags set; on `--resume` they may change (a moved cache or run
/// folder, another device).
const TEACHER_KEYS: [&str; 4] = ["teacher.cache", "teacher.run", "teacher.device", "teacher.dtype"];

pub fn run_distill(args: &DistillArgs) -> Result<()> {
    use crate::config::flag;
    let mut flags: Vec<String> = args.alpha.iter().map(|&a| flag("loss.alpha", a)).collect();
    // One source at a time: naming one clears the other (the config may have set it).
    if let Some(cache) = &args.teacher_cache {
        flags.extend([flag("teacher.cache", cache), flag("teacher.run", "")]);
    }
    if let Some(run) = &args.teacher {
        flags.extend([flag("teacher.run", run), flag("teacher.cache", "")]);
    }
    flags.extend(args.teacher_device.iter().map(|d| flag("teacher.device", d)));
    flags.extend(args.teacher_dtype.iter().map(|d| flag("teacher.dtype", d)));
    let mut opts = options(&args.common, &flags, &TEACHER_KEYS)?;
    opts.teacher = TeacherSource::from_section(&opts.config.teacher)?;
    ensure!(
        opts.teacher != TeacherSource::None,
        "distill needs a teacher: --teacher RUN (online KD) or --teacher-cache FILE (offline KD)"
    );
    train(&opts).map(|_| ())
}

/// Resolves the config: defaults, --config, --set, then the explicit flags and the command's own
/// `forced` assignments; on --resume the run's saved config and data, where only --epochs and the
/// keys in `may_change` may differ. The teacher is left out (`TeacherSource::None`) for the caller to set.
fn options(args: &TrainArgs, forced: &[String], may_change: &[&str]) -> Result<TrainOptions> {
    let mut flags = args.flags("seed");
    flags.extend(forced.iter().cloned());
    let (run_dir, config, data_dir, resume) = match (&args.run.resume, &args.run.out) {
        (Some(run), _) => {
            let may_change: Vec<&str> = ["train.epochs"].iter().chain(may_change).copied().collect();
            let config = crate::config::resume(run, &args.config, &flags, &may_change)?;
            let saved: RunInputs = crate::io::read_json(&run.join(RunInputs::FILE))?;
            (run.clone(), config, args.data.clone().unwrap_or(saved.data), true)
        }
        (None, Some(out)) => {
            let config = crate::config::resolve(DEFAULT, &args.config, &flags)?;
            (out.clone(), config, args.data.clone().context("give --data DIR")?, false)
        }
        (None, None) => bail!("give --out RUN (a new run) or --resume RUN"),
    };
    Ok(TrainOptions { data_dir, run_dir, config, teacher: TeacherSource::None, resume, overwrite: args.run.overwrite })
}

/// Reads and encodes one split; labels outside the vocabulary are errors naming the line.
pub fn load_split(
    data_dir: &Path,
    split: &str,
    codes: &CodeVocab,
    cfg: &StudentConfig,
) -> Result<(Vec<EncodedRecord>, EncodeStats)> {
    let path = split_path(data_dir, split)?;
    let mut stats = EncodeStats::default();
    let records = read_records(&path)?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            codes
                .encode(r, cfg.model.max_visits, cfg.model.max_codes, true, &mut stats)
                .with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((records, stats))
}

/// Mean PRAUC, Jaccard and F1 over `records` (threshold from the config).
pub fn valid_scores(
    model: &StudentNet,
    records: &[EncodedRecord],
    num_medications: usize,
    cfg: &StudentConfig,
) -> Result<(f64, f64, f64)> {
    let refs: Vec<&EncodedRecord> = records.iter().collect();
    let threads = parallel::threads(cfg.threads);
    let probs = super::predict::probabilities(model, &refs, num_medications, cfg.train.eval_batch_size, threads)?;
    let threshold = Threshold { value: cfg.train.threshold, inclusive: false };
    let mut sums = (0.0, 0.0, 0.0);
    for (r, p) in records.iter().zip(probs.chunks(num_medications.max(1))) {
        let mut truth = vec![false; num_medications];
        r.labels.iter().for_each(|&m| truth[m as usize] = true);
        let s = score_record(&truth, p, threshold);
        sums = (sums.0 + s.prauc, sums.1 + s.jaccard, sums.2 + s.f1);
    }
    let n = records.len().max(1) as f64;
    Ok((sums.0 / n, sums.1 / n, sums.2 / n))
}

/// Both splits of `data_dir`, encoded, with their summaries printed; neither may be empty.
fn load_train_and_valid(
    data_dir: &Path,
    codes: &CodeVocab,
    cfg: &StudentConfig,
) -> Result<(Vec<EncodedRecord>, Vec<EncodedRecord>)> {
    let (train_set, train_stats) = load_split(data_dir, "train", codes, cfg)?;
    let (valid_set, valid_stats) = load_split(data_dir, "valid", codes, cfg)?;
    ensure!(!train_set.is_empty(), "{}: the train split is empty", data_dir.join("train.jsonl").display());
    ensure!(
        !valid_set.is_empty(),
        "{}: the valid split is empty; early stopping and the best model are chosen on it",
        data_dir.join("valid.jsonl").display()
    );
    progress::say(format!("train: {}", train_stats.summary()));
    progress::say(format!("valid: {}", valid_stats.summary()));
    Ok((train_set, valid_set))
}

/// Refuses to resume `run` on another vocabulary, teacher size or model than it was started with.
fn check_resumed_run(run: &Path, info: &RunInfo, vocab_path: &Path, teacher: &TeacherSource) -> Result<()> {
    let saved: RunInfo = crate::io::read_json(&run.join(checkpoint::RUN_INFO))?;
    ensure!(
        saved.vocab_fingerprint == info.vocab_fingerprint,
        "{}: the run was trained on another vocabulary than {}",
        run.display(),
        vocab_path.display()
    );
    ensure!(
        saved.teacher_hidden == info.teacher_hidden,
        "{}: the run was distilled from a teacher of hidden size {:?}, but {teacher:?} gives {:?}",
        run.display(),
        saved.teacher_hidden,
        info.teacher_hidden
    );
    ensure!(
        saved == *info,
        "{}: the run's model ({saved:?}) differs from what this data and teacher give ({info:?})",
        run.display()
    );
    Ok(())
}

/// One epoch of optimiser steps over `train_set` in the epoch's seeded order; returns the sums of the
/// loss parts (total, BCE, KD, alignment) over its steps, and the step count. A non-finite loss stops
/// the run (the checkpoint of the previous epoch stays).
fn train_epoch(
    trainer: &Trainer,
    opt: &mut AdamW,
    train_set: &[EncodedRecord],
    cfg: &StudentConfig,
    epoch: usize,
    checkpoint_path: &Path,
) -> Result<([f64; 4], usize)> {
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    TensorRng::derive(cfg.seed, &[epoch as u64]).shuffle(&mut order);
    let steps = order.len().div_ceil(cfg.train.batch_size);
    let bar = progress::bar(steps as u64, &format!("epoch {epoch}"));
    let mut sums = [0f64; 4];
    for (step, chunk) in order.chunks(cfg.train.batch_size).enumerate() {
        let records: Vec<&EncodedRecord> = chunk.iter().map(|&i| &train_set[i]).collect();
        let dropout = |shard: usize| Some(TensorRng::derive(cfg.seed, &[epoch as u64, step as u64, shard as u64]));
        let (losses, grads) = trainer.step(&records, dropout)?;
        if !losses.total.is_finite() {
            bail!(
                "epoch {epoch}, step {}: the loss is {}; stopping. The last good checkpoint (after epoch {}) is kept in {}",
                step + 1,
                losses.total,
                epoch - 1,
                checkpoint_path.display()
            );
        }
        opt.step(&grads)?;
        let parts = [losses.total, losses.bce, losses.kd.unwrap_or(0.0), losses.align.unwrap_or(0.0)];
        sums.iter_mut().zip(parts).for_each(|(s, p)| *s += p);
        bar.set_message(format!("loss {:.4}", sums[0] / (step + 1) as f64));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((sums, steps))
}

/// The files a run keeps its progress in.
struct RunFiles {
    log: PathBuf,
    checkpoint: PathBuf,
    /// The weights of the best validation epoch.
    best: PathBuf,
}

/// The run folder, made (or locked, on resume) once the inputs have loaded, so a failed start leaves
/// no run; with the config, run info and vocabulary saved, on resume too (a longer run records its
/// new epoch count).
fn open_run(
    opts: &TrainOptions,
    kind: OutputKind,
    inputs: &RunInputs,
    cfg: &StudentConfig,
    info: &RunInfo,
    vocab: &Vocab,
    vocab_path: &Path,
) -> Result<RunDir> {
    let mut run = if opts.resume {
        let run = RunDir::resume(&opts.run_dir, kind)?;
        check_resumed_run(run.path(), info, vocab_path, &opts.teacher)?;
        run
    } else {
        let mut run = RunDir::create(&opts.run_dir, kind, opts.overwrite)?;
        inputs.save(&mut run)?;
        run
    };
    crate::config::save(cfg, &run.entry("config.toml")?)?;
    crate::io::write_json(&run.entry(checkpoint::RUN_INFO)?, info)?;
    vocab.save(&run.entry(checkpoint::VOCAB)?)?;
    Ok(run)
}

/// The next epoch: training, validation, the best weights when it improved, the log and the checkpoint.
fn run_epoch(
    trainer: &Trainer,
    opt: &mut AdamW,
    (train_set, valid_set): (&[EncodedRecord], &[EncodedRecord]),
    cfg: &StudentConfig,
    state: &mut TrainState,
    log: &mut TrainLog,
    files: &RunFiles,
) -> Result<()> {
    let epoch = state.epochs_done + 1;
    let started = Instant::now();
    let (sums, steps) = train_epoch(trainer, opt, train_set, cfg, epoch, &files.checkpoint)?;
    let (prauc, jaccard, f1) = valid_scores(trainer.model, valid_set, trainer.num_medications, cfg)?;
    state.epochs_done = epoch;
    if prauc > state.best_score {
        *state = TrainState { best_score: prauc, best_epoch: epoch, epochs_without_improvement: 0, ..*state };
        checkpoint::save_weights(trainer.vars, &files.best)?;
    } else {
        state.epochs_without_improvement += 1;
    }
    let mean = |s: f64| s / steps as f64;
    log.push(&EpochLog {
        epoch,
        train_loss: mean(sums[0]),
        train_bce: mean(sums[1]),
        train_kd: trainer.teacher.hidden_size().map(|_| mean(sums[2])),
        train_align: (cfg.loss.beta > 0.0).then(|| mean(sums[3])),
        valid_prauc: prauc,
        valid_jaccard: jaccard,
        valid_f1: f1,
        best_valid_prauc: state.best_score,
    })?;
    // The log first: a crash before the checkpoint only leaves an entry that resume drops.
    log.save()?;
    checkpoint::save_checkpoint(trainer.vars, opt.state()?, *state, &files.checkpoint)?;
    progress::say(format!(
        "epoch {epoch}: loss {:.4}, valid PRAUC {prauc:.4} Jaccard {jaccard:.4} F1 {f1:.4} (best {:.4} at epoch {}) [{:.1}s]",
        mean(sums[0]),
        state.best_score,
        state.best_epoch,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Trains (or resumes) a student run; see the module docs.
pub fn train(opts: &TrainOptions) -> Result<StudentSummary> {
    // The saved config records the teacher actually used, whatever the config said.
    let cfg = &StudentConfig { teacher: opts.teacher.recorded_in(&opts.config.teacher), ..opts.config.clone() };
    cfg.validate()?;
    let kind = if opts.teacher == TeacherSource::None { OutputKind::TrainStudent } else { OutputKind::Distill };
    let inputs = if opts.resume {
        RunInputs::for_resume(&opts.run_dir, Some(&opts.data_dir), &DATA_FILES)?
    } else {
        RunDir::check(&opts.run_dir, kind, opts.overwrite)?;
        RunInputs::of(&opts.data_dir, &DATA_FILES)?
    };
    let data_dir = &inputs.data;
    let (device, dtype) = (Device::Cpu, DType::F32);
    let vocab_path = data_dir.join("vocab.json");
    let vocab = Vocab::load(&vocab_path)?;
    let codes = CodeVocab::new(&vocab);
    let (train_set, valid_set) = load_train_and_valid(data_dir, &codes, cfg)?;
    let teacher = opts.teacher.load(data_dir, &vocab, &train_set, cfg.loss.standardise_teacher)?;
    let m = vocab.num_medications();
    let info = RunInfo {
        model: cfg.model.clone(),
        shape: ModelShape { num_codes: codes.size(), num_medications: m, profile_sizes: codes.profile_sizes() },
        vocab_fingerprint: vocab.fingerprint(),
        teacher_hidden: teacher.hidden_size(),
    };
    let mut run = open_run(opts, kind, &inputs, cfg, &info, &vocab, &vocab_path)?;
    let files = RunFiles {
        log: run.entry(checkpoint::TRAIN_LOG)?,
        checkpoint: run.entry(checkpoint::CHECKPOINT)?,
        best: run.entry(checkpoint::BEST_MODEL)?,
    };

    let params = SeededVarMap::new(cfg.seed);
    let vb = params.var_builder(dtype, &device);
    let model = StudentNet::new(vb.clone(), &cfg.model, &info.shape)?;
    let heads = TrainingHeads::new(vb.pp("train_heads"), cfg.model.hidden, info.teacher_hidden)?;
    let vars = params.named_vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::adam(cfg.train.lr))?;
    opt.threads = cfg.threads;
    let (mut state, mut log) = if opts.resume && files.checkpoint.is_file() {
        let (adam, state) = checkpoint::load_checkpoint(&vars, &files.checkpoint)?;
        opt.load_state(&adam)?;
        let log = TrainLog::resume(&files.log, |i, _| i < state.epochs_done)?;
        progress::say(format!("resuming {} after epoch {}", run.path().display(), state.epochs_done));
        (state, log)
    } else {
        (TrainState::fresh(), TrainLog::new(&files.log))
    };

    let threads = parallel::threads(cfg.threads);
    let trainer = Trainer {
        model: &model,
        heads: &heads,
        teacher: &teacher,
        loss: &cfg.loss,
        vars: &vars,
        num_medications: m,
        dtype,
        shards: cfg.train.shards,
        threads,
    };
    while state.epochs_done < cfg.train.epochs && state.epochs_without_improvement < cfg.train.patience {
        let sets = (&train_set[..], &valid_set[..]);
        run_epoch(&trainer, &mut opt, sets, cfg, &mut state, &mut log, &files)?;
    }
    progress::say(format!(
        "best validation PRAUC {:.4} at epoch {} of {}; model in {}",
        state.best_score,
        state.best_epoch,
        state.epochs_done,
        files.best.display()
    ));
    if state.epochs_done == cfg.train.epochs || state.epochs_without_improvement >= cfg.train.patience {
        run.finish()?;
    }
    Ok(StudentSummary {
        epochs_done: state.epochs_done,
        best_epoch: state.best_epoch,
        best_valid_prauc: state.best_score,
    })
}
