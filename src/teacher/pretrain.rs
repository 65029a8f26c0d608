//! `leader pretrain`: causal-LM training of a LLaMA base on a text corpus — every paragraph of a
//! folder of `.txt` files and/or the prompts of a data folder's train split — fully (small models)
//! or with LoRA (large ones), with the step loop, checkpoints and `--resume` of `train-teacher`
//! ([`super::steps`]). `RUN/best` is a Hugging Face `LlamaForCausalLM` folder with the lowest
//! held-out loss, which `train-teacher --model` and transformers load.

use super::lm::{CausalLm, TrainedWeights};
use super::lora::{DropoutKey, LoraConfig, Pass};
use super::run::{BEST, LAST};
use super::steps::{self, Checkpoints, Order, RunState, Schedule, Trainee, Validation};
use super::tokenizer::PromptTokenizer;
use super::weights::{recorded_base, BaseModel};
use crate::config::{flag, ConfigArgs};
use crate::data::record::read_records;
use crate::io::output::{OutputKind, RunArgs, RunDir};
use crate::io::{absolute_folder, TrainLog};
use crate::nn::adamw::accumulate;
use crate::nn::device::{DeviceSpec, Precision};
use anyhow::{bail, ensure, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = include_str!("../../configs/pretrain.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub model: PretrainModel,
    pub lora: LoraConfig,
    pub corpus: CorpusSection,
    pub train: Schedule,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainModel {
    pub base: String,
    pub revision: String,
    pub trained: TrainedWeights,
    pub seq_len: usize,
    pub dtype: Precision,
    pub device: DeviceSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusSection {
    /// Empty: none.
    pub text: PathBuf,
    /// Empty: none.
    pub records: PathBuf,
    pub heldout_every: u64,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PretrainArgs {
    /// Base model: a folder, a hub repo id, or random:tiny|1b|7b (model.base).
    #[arg(long)]
    pub model: Option<String>,
    /// Hub revision of --model.
    #[arg(long)]
    pub revision: Option<String>,
    /// A folder of .txt files; each paragraph is a document (corpus.text).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// A preprocessed data folder whose train split's prompts are documents too (corpus.records).
    #[arg(long)]
    pub records: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// full (every weight) or lora (model.trained).
    #[arg(long, value_enum)]
    pub trained: Option<TrainedWeights>,
    /// Optimiser steps (train.max_steps).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Peak learning rate, decayed linearly to 0 (train.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Tokens per training row (model.seq_len).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Rows per forward pass (train.micro_batch).
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Seed of the data order, dropout, adapters and random: weights (train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// f32, bf16 or f16 (model.dtype).
    #[arg(long)]
    pub dtype: Option<Precision>,
    /// cpu, cuda or cuda:N (model.device).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Stop (after writing a checkpoint) once this many steps were taken in this invocation.
    #[arg(long)]
    pub stop_after_steps: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl PretrainArgs {
    fn flags(&self) -> Result<Vec<String>> {
        let mut flags = Vec::new();
        if let Some(v) = &self.model {
            flags.push(flag("model.base", recorded_base(v)?));
        }
        flags.extend(self.revision.iter().map(|v| flag("model.revision", v)));
        if let Some(dir) = &self.corpus {
            flags.push(flag("corpus.text", absolute_folder(dir)?));
        }
        if let Some(dir) = &self.records {
            flags.push(flag("corpus.records", absolute_folder(dir)?));
        }
        flags.extend(self.trained.iter().map(|v| flag("model.trained", v)));
        flags.extend(self.seq_len.iter().map(|&v| flag("model.seq_len", v)));
        flags.extend(self.dtype.iter().map(|v| flag("model.dtype", v)));
        flags.extend(self.device.iter().map(|v| flag("model.device", v)));
        flags.extend(self.max_steps.iter().map(|&v| flag("train.max_steps", v)));
        flags.extend(self.lr.iter().map(|&v| flag("train.lr", v)));
        flags.extend(self.micro_batch.iter().map(|&v| flag("train.micro_batch", v)));
        flags.extend(self.seed.iter().map(|&v| flag("train.seed", v)));
        Ok(flags)
    }

    /// Defaults, --config, --set, then the flags; on --resume the run's saved config, which only
    /// --max-steps may change.
    pub fn effective_config(&self) -> Result<PretrainConfig> {
        let flags = self.flags()?;
        let mut cfg: PretrainConfig = match &self.run.resume {
            Some(run) => crate::config::resume(run, &self.config, &flags, &["train.max_steps"])?,
            None => crate::config::resolve(DEFAULT_CONFIG, &self.config, &flags)?,
        };
        ensure!(!cfg.model.base.is_empty(), "no base model: give --model DIR|HUB_ID|random:SHAPE");
        // Inputs named by --config or --set are recorded absolutely too, as the flags' are.
        cfg.model.base = recorded_base(&cfg.model.base)?;
        for folder in [&mut cfg.corpus.text, &mut cfg.corpus.records] {
            if !folder.as_os_str().is_empty() {
                *folder = absolute_folder(folder)?;
            }
        }
        let (m, c, t) = (&cfg.model, &cfg.corpus, &cfg.train);
        ensure!(
            !c.text.as_os_str().is_empty() || !c.records.as_os_str().is_empty(),
            "no corpus: give --corpus DIR (.txt files) and/or --records DATA_DIR (its train prompts)"
        );
        ensure!(m.seq_len >= 2, "model.seq_len = {}: a row needs at least two tokens", m.seq_len);
        ensure!(c.heldout_every >= 2, "corpus.heldout_every = {}: must be at least 2", c.heldout_every);
        t.check()?;
        Ok(cfg)
    }
}

/// Rows of token ids.
pub type TokenRows = Vec<Vec<u32>>;

/// The corpus as documents, split into training and held-out ones.
#[derive(Debug)]
pub struct Corpus {
    pub train: Vec<String>,
    pub heldout: Vec<String>,
}

/// What a run was started on (`RUN/corpus.json`): a resumed run refuses a changed corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CorpusRecord {
    documents: usize,
    heldout: usize,
    /// blake3 of every document in order.
    fingerprint: String,
}

impl Corpus {
    /// Paragraphs of the `.txt` files under `text` (name order, recursively), then the prompts of
    /// `records/train.jsonl`; a document whose text hashes to 0 mod `heldout_every` is held out.
    pub fn read(section: &CorpusSection) -> Result<Self> {
        let mut documents = Vec::new();
        if !section.text.as_os_str().is_empty() {
            let mut files = Vec::new();
            text_files(&section.text, &mut files)?;
            ensure!(!files.is_empty(), "{}: no .txt files", section.text.display());
            for file in files {
                let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let text = String::from_utf8(bytes).map_err(|e| {
                    let at = e.utf8_error().valid_up_to();
                    let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                    anyhow::anyhow!("{}:{line}: not UTF-8 text (byte {at})", file.display())
                })?;
                documents.extend(paragraphs(&text));
            }
        }
        if !section.records.as_os_str().is_empty() {
            let path = section.records.join("train.jsonl");
            documents.extend(read_records(&path)?.into_iter().map(|r| r.prompt));
        }
        let (heldout, train): (Vec<String>, Vec<String>) = documents
            .into_iter()
            .partition(|d| crate::nn::rng::fnv1a(d.as_bytes()).is_multiple_of(section.heldout_every));
        ensure!(!train.is_empty(), "the corpus has no training documents");
        ensure!(
            !heldout.is_empty(),
            "no document of the corpus was held out (one in {}): lower corpus.heldout_every or add text",
            section.heldout_every
        );
        Ok(Self { train, heldout })
    }

    /// Token rows of the training and the held-out documents: each document's tokens and EOS, cut
    /// into windows of `seq_len` (a last window of one token predicts nothing and is dropped).
    pub fn rows(&self, tokenizer: &PromptTokenizer, seq_len: usize) -> Result<(TokenRows, TokenRows)> {
        let rows = |documents: &[String]| -> Result<TokenRows> {
            let mut out = Vec::new();
            for d in documents {
                let ids = tokenizer.encode_document(d)?;
                out.extend(ids.chunks(seq_len).filter(|w| w.len() >= 2).map(<[u32]>::to_vec));
            }
            Ok(out)
        };
        Ok((rows(&self.train)?, rows(&self.heldout)?))
    }

    fn record(&self) -> CorpusRecord {
        let mut hasher = blake3::Hasher::new();
        for d in self.train.iter().chain(&self.heldout) {
            hasher.update(&(d.len() as u64).to_le_bytes());
            hasher.update(d.as_bytes());
        }
        CorpusRecord {
            documents: self.train.len() + self.heldout.len(),
            heldout: self.heldout.len(),
            fingerprint: hasher.finalize().to_hex().to_string(),
        }
    }
}

/// `.txt` files under `dir`, recursively, sorted by path.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the corpus folder {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.map(|e| Ok(e?.path())).collect::<std::io::Result<_>>()?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            text_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "txt") {
            out.push(path);
        }
    }
    Ok(())
}

/// The paragraphs of `text`: runs of non-blank lines, joined by newlines.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    out
}

/// Pretraining as the step loop sees it.
struct PretrainTrainee<'a> {
    lm: CausalLm,
    base: &'a BaseModel,
    train: Vec<Vec<u32>>,
    heldout: Vec<Vec<u32>>,
    order: Order,
    cfg: &'a PretrainConfig,
}

/// What `RUN/best/pretrain.json` records beside the model.
#[derive(Serialize)]
struct PretrainMeta<'a> {
    base_model: &'a str,
    trained: TrainedWeights,
    step: u64,
    heldout_loss: f64,
    heldout_perplexity: f64,
}

const WEIGHTS: &str = "weights.safetensors";

impl PretrainTrainee<'_> {
    /// Mean cross-entropy per predicted token over the held-out rows.
    fn heldout_loss(&self) -> Result<f64> {
        let (mut sum, mut tokens) = (0.0, 0usize);
        for chunk in self.heldout.chunks(self.cfg.train.micro_batch) {
            let (loss, n) = self.lm.loss(chunk, Pass::frozen())?;
            sum += loss.to_scalar::<f64>()? * n as f64;
            tokens += n;
        }
        Ok(sum / tokens as f64)
    }
}

impl Trainee for PretrainTrainee<'_> {
    fn micro_batch(&mut self, step: u64, micro: usize, scale: f64) -> Result<(Tensor, GradStore, usize)> {
        let t = &self.cfg.train;
        let start = (step * t.grad_accum as u64 + micro as u64) * t.micro_batch as u64;
        let rows: Vec<Vec<u32>> =
            self.order.rows(start, t.micro_batch).iter().map(|&r| self.train[r].clone()).collect();
        let pass = Pass::train(Some(DropoutKey { seed: t.seed, step, micro: micro as u64 }));
        let (loss, n) = self.lm.loss(&rows, pass)?;
        let mut grads = GradStore::default();
        accumulate(&mut grads, &(&loss * scale)?.backward()?, &self.lm.trainable())?;
        Ok((loss.detach(), grads, n))
    }

    fn validate(&self) -> Result<Validation> {
        let loss = self.heldout_loss()?;
        let perplexity = loss.exp();
        let fields = serde_json::json!({"heldout_loss": loss, "heldout_perplexity": perplexity});
        Ok(Validation {
            fields: fields.as_object().cloned().unwrap_or_default(),
            score: -loss,
            shown: format!("held-out loss {loss:.4}, perplexity {perplexity:.2}"),
        })
    }

    fn save_best(&self, dir: &Path, step: u64, score: f64) -> Result<()> {
        let stored = self.base.config.stored_dtype.unwrap_or(super::llama_config::StoredDtype::Float32);
        self.lm.save_hf(dir, self.base, stored)?;
        let meta = PretrainMeta {
            base_model: &self.cfg.model.base,
            trained: self.cfg.model.trained,
            step,
            heldout_loss: -score,
            heldout_perplexity: (-score).exp(),
        };
        crate::io::write_json(&dir.join("pretrain.json"), &meta)
    }

    fn save_last(&self, dir: &Path, _step: u64, _best: Option<f64>) -> Result<()> {
        crate::io::write_safetensors(&dir.join(WEIGHTS), &self.lm.trainable_tensors()?)
    }

    fn load_last(&self, dir: &Path) -> Result<()> {
        self.lm.load_trainable(&dir.join(WEIGHTS))
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    pub steps: u64,
    pub best_heldout_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Predicted tokens per second of this invocation's steps (validation and checkpoints included).
    pub tokens_per_second: f64,
}

/// Pretrains as `args` say; the library entry point behind `leader pretrain`.
pub fn pretrain(args: &PretrainArgs) -> Result<PretrainSummary> {
    let cfg = args.effective_config()?;
    if let Some(out) = &args.run.out {
        RunDir::check(out, OutputKind::Pretrain, args.run.overwrite)?;
    }
    let (m, t) = (&cfg.model, &cfg.train);
    let corpus = Corpus::read(&cfg.corpus)?;
    let record = corpus.record();
    if let Some(run) = &args.run.resume {
        let saved: CorpusRecord = crate::io::read_json(&run.join("corpus.json"))?;
        ensure!(
            saved == record,
            "--resume {}: the corpus changed since the run started ({} documents, fingerprint {} then; {}, {} now); \
             start a new run with --out",
            run.display(),
            saved.documents,
            saved.fingerprint,
            record.documents,
            record.fingerprint
        );
    }
    let (device, dtype) = (m.device.open()?, m.dtype.dtype());
    let revision = Some(m.revision.as_str()).filter(|r| *r != "main");
    let base = BaseModel::resolve(&m.base, revision, t.seed)?;
    let tokenizer = base.prompt_tokenizer(m.seq_len)?;
    let (train, heldout) = corpus.rows(&tokenizer, m.seq_len)?;
    ensure!(!train.is_empty() && !heldout.is_empty(), "the corpus tokenises to no row of two or more tokens");
    crate::progress::say(format!(
        "pretrain: {} training rows, {} held-out rows of at most {} tokens",
        train.len(),
        heldout.len(),
        m.seq_len
    ));
    let lm = CausalLm::new(&base, m.trained, &cfg.lora, t.seed, dtype, &device)?;
    let vars = lm.trainable();
    let schedule = Schedule { stop_after_steps: args.stop_after_steps, ..t.clone() };
    let mut opt = schedule.optimizer(vars.clone())?;
    let mut run = match (&args.run.resume, &args.run.out) {
        (Some(run), _) => RunDir::resume(run, OutputKind::Pretrain)?,
        (None, Some(out)) => {
            let mut dir = RunDir::create(out, OutputKind::Pretrain, args.run.overwrite)?;
            crate::io::write_json(&dir.entry("corpus.json")?, &record)?;
            dir
        }
        (None, None) => bail!("give --out RUN (a new run) or --resume RUN"),
    };
    let order = Order::new(train.len(), t.seed);
    let mut trainee = PretrainTrainee { lm, base: &base, train, heldout, order, cfg: &cfg };
    let out = run.path().to_path_buf();
    let log_path = run.entry(steps::LOG)?;
    let (best, last) = (run.entry(BEST)?, run.entry(LAST)?);
    let (mut state, mut log) = match args.run.resume {
        Some(_) => steps::restore(&out, &last, &trainee, &mut opt, &device, "pretrain")?,
        None => (RunState::default(), TrainLog::new(&log_path)),
    };
    crate::config::save(&cfg, &run.entry("config.toml")?)?;
    let checkpoints = Checkpoints { best: &best, last: &last };
    let speed =
        steps::run_steps(&schedule, &mut trainee, &mut opt, &vars, (&mut state, &mut log), checkpoints, "pretrain")?;
    if state.step == t.max_steps {
        run.finish()?;
    }
    Ok(PretrainSummary {
        steps: state.step,
        best_heldout_loss: state.best().map(|s| -s),
        best_step: state.best_step,
        tokens_per_second: speed.tokens_per_second(),
    })
}

pub fn run(args: &PretrainArgs) -> Result<()> {
    let s = pretrain(args)?;
    let best = match (s.best_heldout_loss, s.best_step) {
        (Some(loss), Some(step)) => {
            format!("best held-out loss {loss:.4} (perplexity {:.2}) at step {step}", loss.exp())
        }
        _ => "no evaluation yet".to_string(),
    };
    crate::progress::say(format!("pretrain: {} steps, {best}, {:.0} tokens/s", s.steps, s.tokens_per_second));
    Ok(())
}
