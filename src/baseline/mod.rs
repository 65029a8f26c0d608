//! `leader train-baseline`: classic medication-recommendation models trained on the very records,
//! split and vocabularies LEADER uses, scored by `leader predict --model RUN` and evaluated by
//! `leader eval` with the same metrics, single-visit patients included (the original baselines'
//! code drops patients with one admission). Implemented: [`lr`]. RETAIN, GAMENet, MICRON and the
//! Transformer are not written yet; SafeDrug and MoleRec need drug structures (SMILES), which no
//! input of ours carries, and are left out.
//!
//! A run folder: `config.toml`, `vocab.json`, `baseline.json` (what was trained and on which
//! vocabulary), `model.safetensors` (the weights with the best validation PRAUC),
//! `checkpoint.safetensors` (the latest weights, optimiser state and progress, in one atomic file,
//! from which `--resume RUN` continues bit for bit) and `train_log.jsonl`.

pub mod lr;

use crate::config::{flag, ConfigArgs};
use crate::data::record::{read_records, Record};
use crate::data::vocab::{check_records_vocabulary, Vocab};
use crate::io::output::{OutputKind, RunArgs, RunDir, RunInputs};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The baselines `train-baseline` trains.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    /// One-vs-rest logistic regression on a visit's diagnoses and procedures.
    Lr,
}

#[derive(Args, Debug, Clone, Default)]
pub struct TrainBaselineArgs {
    /// Which baseline (config: `configs/baseline-NAME.toml`); on --resume, the run's.
    #[arg(long = "model", value_enum)]
    pub kind: Option<BaselineKind>,
    /// Preprocessed data folder (train.jsonl, valid.jsonl, vocab.json); on --resume, the run's.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Passes over the training data (train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of the training order (train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What `baseline.json` records: the model and the vocabulary it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineInfo {
    pub kind: BaselineKind,
    pub vocab_fingerprint: String,
    pub best_epoch: usize,
    pub best_valid_prauc: f64,
}

pub const INFO: &str = "baseline.json";

/// The data folder's files a baseline run reads.
const DATA_FILES: [&str; 3] = ["vocab.json", "train.jsonl", "valid.jsonl"];

/// Whether `run` is a baseline run (for `leader predict --model`).
pub fn is_baseline_run(run: &Path) -> bool {
    run.join(INFO).is_file()
}

/// What a finished (or resumed and finished) run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineSummary {
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_valid_prauc: f64,
}

pub fn run_train_baseline(args: &TrainBaselineArgs) -> Result<()> {
    let s = train_baseline(args)?;
    crate::progress::say(format!(
        "train-baseline: {} epochs, best valid PRAUC {:.4} at epoch {}",
        s.epochs_done, s.best_valid_prauc, s.best_epoch
    ));
    Ok(())
}

/// Trains (or resumes) a baseline run as `args` say.
pub fn train_baseline(args: &TrainBaselineArgs) -> Result<BaselineSummary> {
    let mut flags: Vec<String> = args.epochs.iter().map(|&e| flag("train.epochs", e)).collect();
    flags.extend(args.seed.iter().map(|&s| flag("train.seed", s)));
    let (kind, cfg, inputs, mut run) = match (&args.run.resume, &args.run.out) {
        (Some(run), _) => {
            let info: BaselineInfo = crate::io::read_json(&run.join(INFO))?;
            if let Some(kind) = args.kind.filter(|k| *k != info.kind) {
                bail!("--resume {}: the run trains {:?}, not {kind:?}", run.display(), info.kind);
            }
            let cfg: lr::LrConfig = crate::config::resume(run, &args.config, &flags, &["train.epochs"])?;
            let inputs = RunInputs::for_resume(run, args.data.as_deref(), &DATA_FILES)?;
            (info.kind, cfg, inputs, RunDir::resume(run, OutputKind::TrainBaseline)?)
        }
        (None, Some(out)) => {
            let kind = args.kind.context("give --model NAME (lr)")?;
            let cfg: lr::LrConfig = crate::config::resolve(lr::DEFAULT_CONFIG, &args.config, &flags)?;
            RunDir::check(out, OutputKind::TrainBaseline, args.run.overwrite)?;
            let inputs = RunInputs::of(args.data.as_deref().context("give --data DIR")?, &DATA_FILES)?;
            let mut dir = RunDir::create(out, OutputKind::TrainBaseline, args.run.overwrite)?;
            inputs.save(&mut dir)?;
            (kind, cfg, inputs, dir)
        }
        (None, None) => bail!("give --out RUN (a new run) or --resume RUN"),
    };
    let BaselineKind::Lr = kind;
    let data = &inputs.data;
    let vocab = Vocab::load(&data.join("vocab.json"))?;
    let train = read_records(&data.join("train.jsonl"))?;
    let valid = read_records(&data.join("valid.jsonl"))?;
    ensure!(!train.is_empty() && !valid.is_empty(), "{}: train and valid splits need records", data.display());
    let summary = lr::train(&cfg, &vocab, &train, &valid, &mut run, args.run.resume.is_some())?;
    if summary.epochs_done == cfg.train.epochs {
        run.finish()?;
    }
    Ok(summary)
}

/// A trained baseline, loaded for scoring.
pub struct BaselineScorer {
    model: lr::LrModel,
    vocab: Vocab,
}

impl BaselineScorer {
    pub fn load(run: &Path) -> Result<Self> {
        let info: BaselineInfo = crate::io::read_json(&run.join(INFO))?;
        let vocab = Vocab::load(&run.join("vocab.json"))?;
        ensure!(
            vocab.fingerprint() == info.vocab_fingerprint,
            "{}: vocab.json does not match the fingerprint in {INFO}",
            run.display()
        );
        let BaselineKind::Lr = info.kind;
        Ok(Self { model: lr::LrModel::load(&run.join(lr::MODEL), &vocab)?, vocab })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Scores the records of `records` (checked against `data`'s vocabulary, or one beside the file),
    /// handing each record's probabilities to `write` in input order.
    pub fn score(
        &self,
        records: &Path,
        data: Option<&Path>,
        batch_size: Option<usize>,
        mut write: impl FnMut(u64, &[f32]) -> Result<()>,
    ) -> Result<()> {
        check_records_vocabulary(data, records, &self.vocab.fingerprint())?;
        let records: Vec<Record> = read_records(records)?;
        for chunk in records.chunks(batch_size.unwrap_or(512).max(1)) {
            let probs = self.model.probabilities(chunk)?;
            for (record, p) in chunk.iter().zip(probs.chunks(self.vocab.num_medications().max(1))) {
                write(record.subject_id, p)?;
            }
        }
        Ok(())
    }
}
