//! `leader train-baseline`: classic medication-recommendation models trained on the very records,
//! split and vocabularies LEADER uses, scored by `leader predict --model RUN` and evaluated by
//! `leader eval` with the same metrics, single-visit patients included (the original baselines'
//! code drops patients with one admission). Each model says what it is ([`model::Model`]); one
//! loop trains them all ([`train`]). SafeDrug and MoleRec need drug structures (SMILES), which no
//! input of ours carries, and are left out.
//!
//! A run folder: `config.toml`, `vocab.json`, `baseline.json` (what was trained and on which
//! vocabulary), `model.safetensors` (the weights with the best validation PRAUC),
//! `checkpoint.safetensors` (the latest weights, optimiser state and progress, in one atomic file,
//! from which `--resume RUN` continues bit for bit) and `train_log.jsonl`.

pub mod gamenet;
pub mod losses;
pub mod lr;
pub mod micron;
pub mod model;
pub mod retain;
pub mod train;
pub mod transformer;
pub mod visits;

use crate::config::{ConfigArgs, TrainArgs};
use crate::data::ddi::DdiPairs;
use crate::data::record::{read_records, Record};
use crate::data::vocab::{check_records_vocabulary, Vocab};
use crate::io::output::{OutputKind, RunDir, RunInputs};
use crate::nn::params::SeededVarMap;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device};
use clap::{Args, ValueEnum};
use model::{BaselineConfig, Model, TrainingData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The baselines `train-baseline` trains.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    /// One-vs-rest logistic regression on a visit's diagnoses and procedures.
    Lr,
    /// RETAIN: reverse-time two-level attention over visits.
    Retain,
    /// GAMENet: graph-augmented memory of co-prescriptions and DDIs, DDI-aware training.
    Gamenet,
    /// MICRON: medication changes predicted from changes of the health representation.
    Micron,
    /// PyHealth's Transformer over the visit sequence of code embeddings.
    Transformer,
}

impl BaselineKind {
    /// The name `--model` takes.
    pub fn name(self) -> String {
        self.to_possible_value().expect("no kind is skipped").get_name().to_string()
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct TrainBaselineArgs {
    /// Which baseline (config: `configs/baseline-NAME.toml`); on --resume, the run's. GAMENet and
    /// MICRON also read the data folder's ddi.json.
    #[arg(long = "model", value_enum)]
    pub kind: Option<BaselineKind>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// What `baseline.json` records: the model and the vocabulary it was trained on, and its best
/// epoch so far (0 until the first epoch ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineInfo {
    pub kind: BaselineKind,
    pub vocab_fingerprint: String,
    pub best_epoch: usize,
    pub best_valid_prauc: f64,
}

pub const INFO: &str = "baseline.json";

/// The data folder's files a baseline run reads (`ddi.json` too where it exists).
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
    let kind = match &args.train.run.resume {
        Some(run) => {
            let info: BaselineInfo = crate::io::read_json(&run.join(INFO))?;
            if let Some(kind) = args.kind.filter(|k| *k != info.kind) {
                bail!("--resume {}: the run trains {}, not {}", run.display(), info.kind.name(), kind.name());
            }
            info.kind
        }
        None => args.kind.with_context(|| format!("give --model NAME ({})", kind_names()))?,
    };
    match kind {
        BaselineKind::Lr => train_model::<lr::Lr>(&args.train),
        BaselineKind::Retain => train_model::<retain::Retain>(&args.train),
        BaselineKind::Gamenet => train_model::<gamenet::Gamenet>(&args.train),
        BaselineKind::Micron => train_model::<micron::Micron>(&args.train),
        BaselineKind::Transformer => train_model::<transformer::Transformer>(&args.train),
    }
}

fn kind_names() -> String {
    BaselineKind::value_variants().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// [`train_baseline`] for model `M`.
fn train_model<M: Model>(args: &TrainArgs) -> Result<BaselineSummary> {
    let flags = args.flags("train.seed");
    let (cfg, inputs): (BaselineConfig<M::Dims>, _) = match (&args.run.resume, &args.run.out) {
        (Some(run), _) => (
            crate::config::resume(run, &args.config, &flags, &["train.epochs"])?,
            RunInputs::for_resume(run, args.data.as_deref(), &DATA_FILES)?,
        ),
        (None, Some(out)) => {
            let cfg = crate::config::resolve(M::DEFAULT_CONFIG, &args.config, &flags)?;
            RunDir::check(out, OutputKind::TrainBaseline, args.run.overwrite)?;
            (cfg, RunInputs::of(args.data.as_deref().context("give --data DIR")?, &DATA_FILES)?)
        }
        (None, None) => bail!("give --out RUN (a new run) or --resume RUN"),
    };
    // Everything that can fail on the inputs or the config happens before the run folder is made.
    let t = &cfg.train;
    ensure!(t.epochs > 0 && t.batch_size > 0, "train.epochs and train.batch_size must be positive");
    ensure!(t.lr.is_finite() && t.lr > 0.0, "train.lr = {}: must be positive", t.lr);
    let data = &inputs.data;
    let vocab = Vocab::load(&data.join("vocab.json"))?;
    let train = read_records(&data.join("train.jsonl"))?;
    let valid = read_records(&data.join("valid.jsonl"))?;
    ensure!(!train.is_empty() && !valid.is_empty(), "{}: train and valid splits need records", data.display());
    report_codes_outside(&vocab, &train, "the train split");
    report_codes_outside(&vocab, &valid, "the valid split");
    let ddi_path = data.join("ddi.json");
    let ddi = if ddi_path.is_file() { Some(DdiPairs::load(&ddi_path)?) } else { None };
    let training = TrainingData { vocab: &vocab, train: &train, ddi: ddi.as_ref() };
    let buffers = M::buffers(&cfg.model, &training).with_context(|| format!("{}", data.display()))?;
    let params = SeededVarMap::new(cfg.train.seed);
    let model = M::new(&cfg.model, &vocab, &buffers, params.var_builder(DType::F32, &Device::Cpu))?;
    let mut run = match &args.run.resume {
        Some(run) => RunDir::resume(run, OutputKind::TrainBaseline)?,
        None => {
            let out = args.run.out.as_deref().expect("checked above");
            let mut run = RunDir::create(out, OutputKind::TrainBaseline, args.run.overwrite)?;
            inputs.save(&mut run)?;
            vocab.save(&run.entry("vocab.json")?)?;
            // Written now so that a run interrupted before its first epoch ends can be resumed.
            let info = BaselineInfo {
                kind: M::KIND,
                vocab_fingerprint: vocab.fingerprint(),
                best_epoch: 0,
                best_valid_prauc: 0.0,
            };
            crate::io::write_json(&run.entry(INFO)?, &info)?;
            run
        }
    };
    let trained = train::Trained { model: &model, params: &params, buffers: &buffers };
    let summary = train::train(&cfg, trained, &training, &valid, &mut run, args.run.resume.is_some())?;
    if summary.epochs_done == cfg.train.epochs {
        run.finish()?;
    }
    Ok(summary)
}

/// Says how many codes of `records` the models skip because `vocab.json` has no place for them.
fn report_codes_outside(vocab: &Vocab, records: &[Record], what: &str) {
    let outside = visits::codes_outside(vocab, records);
    if outside > 0 {
        crate::progress::say(format!("{what}: {outside} codes outside vocab.json are skipped"));
    }
}

/// Scoring, whatever the model.
trait Scores {
    fn probabilities(&self, records: &[Record]) -> Result<Vec<f32>>;
}

impl<M: Model> Scores for M {
    fn probabilities(&self, records: &[Record]) -> Result<Vec<f32>> {
        train::probabilities(self, records)
    }
}

fn load_model<M: Model + 'static>(run: &Path, vocab: &Vocab) -> Result<Box<dyn Scores>> {
    let cfg: BaselineConfig<M::Dims> = crate::config::resume(run, &ConfigArgs::default(), &[], &[])?;
    Ok(Box::new(train::load::<M>(run, &cfg.model, vocab)?))
}

/// A trained baseline, loaded for scoring.
pub struct BaselineScorer {
    model: Box<dyn Scores>,
    vocab: Vocab,
}

impl BaselineScorer {
    pub fn load(run: &Path) -> Result<Self> {
        let info: BaselineInfo = crate::io::read_json(&run.join(INFO))?;
        ensure!(info.best_epoch > 0, "{}: the run has not finished an epoch yet (resume it)", run.display());
        let vocab = Vocab::load(&run.join("vocab.json"))?;
        ensure!(
            vocab.fingerprint() == info.vocab_fingerprint,
            "{}: vocab.json does not match the fingerprint in {INFO}",
            run.display()
        );
        let model = match info.kind {
            BaselineKind::Lr => load_model::<lr::Lr>(run, &vocab)?,
            BaselineKind::Retain => load_model::<retain::Retain>(run, &vocab)?,
            BaselineKind::Gamenet => load_model::<gamenet::Gamenet>(run, &vocab)?,
            BaselineKind::Micron => load_model::<micron::Micron>(run, &vocab)?,
            BaselineKind::Transformer => load_model::<transformer::Transformer>(run, &vocab)?,
        };
        Ok(Self { model, vocab })
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
        let path = records;
        let records: Vec<Record> = read_records(path)?;
        report_codes_outside(&self.vocab, &records, &path.display().to_string());
        for chunk in records.chunks(batch_size.unwrap_or(512).max(1)) {
            let probs = self.model.probabilities(chunk)?;
            for (record, p) in chunk.iter().zip(probs.chunks(self.vocab.num_medications().max(1))) {
                write(record.subject_id, p)?;
            }
        }
        Ok(())
    }
}
