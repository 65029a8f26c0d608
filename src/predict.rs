//! `leader predict`: scores records with a trained student (`--model RUN`) or teacher
//! (`--teacher RUN`) and writes probabilities in the evaluation's predictions format (or a top-k CSV).
//! The models score and hand over probabilities; this module owns the arguments and the output.

use crate::data::record::split_path;
use crate::data::vocab::Vocab;
use crate::eval::predictions::PredictionWriter;
use crate::io::output::{OutputFile, OutputKind};
use crate::io::AtomicFile;
use crate::student::predict::StudentScorer;
use crate::teacher::Teacher;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A trained student (or train-baseline) run folder.
    #[arg(long, required_unless_present = "teacher", conflicts_with = "teacher")]
    pub model: Option<PathBuf>,
    /// A trained teacher run folder.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// A preprocessed data folder; use with --split.
    #[arg(long, requires = "split", conflicts_with = "records")]
    pub data: Option<PathBuf>,
    /// train, valid, test (or records for a `--no-split` folder).
    #[arg(long)]
    pub split: Option<String>,
    /// A records file (JSON Lines), e.g. an exported cohort from `preprocess --no-split`.
    #[arg(long, required_unless_present = "data")]
    pub records: Option<PathBuf>,
    /// Output file (new, or an earlier prediction with --overwrite); its config goes to FILE.config.toml.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier output of `leader predict` at --out.
    #[arg(long)]
    pub overwrite: bool,
    #[arg(long, value_enum, default_value_t = PredictFormat::Jsonl)]
    pub format: PredictFormat,
    /// Drugs per record in the CSV format.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Records scored at once (default: the model's config).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// cpu or cuda (teacher only; the student runs on the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: crate::nn::device::DeviceSpec,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictFormat {
    /// `{"subject_id", "probabilities"}` per line: what `leader eval` reads.
    Jsonl,
    /// `subject_id,rank,atc_code,atc_name,probability`, the top-k drugs per record.
    Csv,
}

impl PredictArgs {
    /// The records file to score.
    pub fn records_path(&self) -> Result<PathBuf> {
        match (&self.records, &self.data, &self.split) {
            (Some(path), _, _) => Ok(path.clone()),
            (None, Some(dir), Some(split)) => split_path(dir, split),
            _ => bail!("give --records FILE or --data DIR --split NAME"),
        }
    }
}

/// What was scored, written as `OUT.config.toml`; `leader eval` reads `model_kind` from it to pick
/// the model's threshold, and `vocab_fingerprint` to check that the probabilities are in its data
/// folder's medication order.
#[derive(Serialize)]
struct PredictMeta<'a> {
    model_kind: &'a str,
    model_run: &'a Path,
    records: PathBuf,
    format: PredictFormat,
    top_k: usize,
    records_scored: usize,
    vocab_fingerprint: String,
}

/// What a sink wrote.
pub struct Scored {
    pub records: usize,
    /// The fingerprint of the vocabulary whose medication order the probabilities follow.
    pub vocab_fingerprint: String,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let out = OutputFile::create(&args.out, OutputKind::Predict, args.overwrite)?;
    let records = args.records_path()?;
    let (data, batch_size) = (args.data.as_deref(), args.batch_size);
    let (kind, run_dir, sink) = match (&args.model, &args.teacher) {
        (_, Some(run)) => {
            // The base runs in f32 (`leader predict` has no dtype flag).
            let teacher = Teacher::load(run, &args.device.open()?, DType::F32)?;
            let mut sink = PredictionSink::create(args, &teacher.vocab)?;
            crate::teacher::predict::score(&teacher, &records, data, batch_size, |id, p| sink.write(id, p))?;
            ("teacher", run, sink)
        }
        (Some(run), None) if crate::baseline::is_baseline_run(run) => {
            let baseline = crate::baseline::BaselineScorer::load(run)?;
            let mut sink = PredictionSink::create(args, baseline.vocab())?;
            baseline.score(&records, data, batch_size, |id, p| sink.write(id, p))?;
            ("baseline", run, sink)
        }
        (Some(run), None) => {
            let student = StudentScorer::load(run)?;
            let mut sink = PredictionSink::create(args, student.vocab())?;
            student.score(&records, data, batch_size, |id, p| sink.write(id, p))?;
            ("student", run, sink)
        }
        (None, None) => bail!("give --model STUDENT_RUN or --teacher TEACHER_RUN"),
    };
    // The sidecar (model kind, medication order) is written before the predictions appear: a file
    // without its sidecar would be scored with the wrong threshold.
    let scored = sink.finish(|content, scored| {
        let meta = PredictMeta {
            model_kind: kind,
            model_run: run_dir,
            records,
            format: args.format,
            top_k: args.top_k,
            records_scored: scored.records,
            vocab_fingerprint: scored.vocab_fingerprint.clone(),
        };
        out.write_sidecar(content, &meta)
    })?;
    crate::progress::say(format!("predict: {} records scored by the {kind} -> {}", scored.records, args.out.display()));
    Ok(())
}

/// Receives probabilities record by record, checks them and writes them in the chosen format,
/// atomically.
pub struct PredictionSink {
    format: Sink,
    vocab: Vocab,
    records: PathBuf,
    written: usize,
}

enum Sink {
    Jsonl(PredictionWriter),
    Csv { file: Box<csv::Writer<AtomicFile>>, top_k: usize },
}

impl PredictionSink {
    pub fn create(args: &PredictArgs, vocab: &Vocab) -> Result<Self> {
        let format = match args.format {
            PredictFormat::Jsonl => Sink::Jsonl(PredictionWriter::create(&args.out)?),
            PredictFormat::Csv => {
                let mut file = Box::new(csv::Writer::from_writer(AtomicFile::create(&args.out)?));
                file.write_record(["subject_id", "rank", "atc_code", "atc_name", "probability"])?;
                Sink::Csv { file, top_k: args.top_k }
            }
        };
        Ok(Self { format, vocab: vocab.clone(), records: args.records_path()?, written: 0 })
    }

    /// Writes one record's probabilities; a non-finite one (a model with broken weights) fails the
    /// whole output.
    pub fn write(&mut self, subject_id: u64, probabilities: &[f32]) -> Result<()> {
        if let Some(i) = probabilities.iter().position(|p| !p.is_finite()) {
            bail!(
                "the model gave probability {} for {} on record {} of {}: its weights hold NaN or infinite values; \
                 nothing was written",
                probabilities[i],
                self.vocab.medications.get(i).map_or("?", |m| m.code.as_str()),
                self.written + 1,
                self.records.display()
            );
        }
        self.written += 1;
        let vocab = &self.vocab;
        match &mut self.format {
            Sink::Jsonl(w) => w.write(subject_id, probabilities),
            Sink::Csv { file, top_k } => {
                let mut order: Vec<usize> = (0..probabilities.len()).collect();
                order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
                for (rank, &i) in order.iter().take(*top_k).enumerate() {
                    let entry = &vocab.medications[i];
                    let (subject, rank, p) =
                        (subject_id.to_string(), (rank + 1).to_string(), probabilities[i].to_string());
                    file.write_record([&subject, &rank, &entry.code, &entry.name, &p])
                        .context("writing predictions CSV")?;
                }
                Ok(())
            }
        }
    }

    /// Commits the output, running `before` on the complete file (under its temporary name) first.
    pub fn finish(self, before: impl FnOnce(&Path, &Scored) -> Result<()>) -> Result<Scored> {
        let scored = Scored { records: self.written, vocab_fingerprint: self.vocab.fingerprint() };
        let before = |content: &Path| before(content, &scored);
        match self.format {
            Sink::Jsonl(w) => {
                w.finish_after(before)?;
            }
            Sink::Csv { file, .. } => file
                .into_inner()
                .map_err(|e| e.into_error())
                .context("writing predictions CSV")?
                .commit_after(before)?,
        }
        Ok(scored)
    }
}
