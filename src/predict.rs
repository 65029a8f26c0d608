//! `leader predict`: scores records with a trained student (`--model RUN`) or teacher
//! (`--teacher RUN`) and writes probabilities in the evaluation's predictions format (or a top-k CSV).

use crate::data::record::split_path;
use crate::data::vocab::Vocab;
use crate::eval::predictions::PredictionWriter;
use crate::io::AtomicFile;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A trained student run folder.
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
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
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
    pub device: String,
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
/// the model's threshold.
#[derive(Serialize)]
struct PredictMeta<'a> {
    model_kind: &'a str,
    model_run: &'a Path,
    records: PathBuf,
    format: PredictFormat,
    top_k: usize,
    records_scored: usize,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let (kind, run_dir, scored) = match (&args.model, &args.teacher) {
        (_, Some(teacher)) => ("teacher", teacher, crate::teacher::predict::run(args)?),
        (Some(model), None) => ("student", model, crate::student::predict::run(args)?),
        (None, None) => bail!("give --model STUDENT_RUN or --teacher TEACHER_RUN"),
    };
    let meta = PredictMeta {
        model_kind: kind,
        model_run: run_dir,
        records: args.records_path()?,
        format: args.format,
        top_k: args.top_k,
        records_scored: scored,
    };
    crate::config::save(&meta, &crate::config::sidecar_path(&args.out))?;
    crate::progress::say(format!("predict: {scored} records scored by the {kind} -> {}", args.out.display()));
    Ok(())
}

/// Receives probabilities record by record and writes them in the chosen format, atomically.
pub enum PredictionSink {
    Jsonl(PredictionWriter),
    Csv { file: AtomicFile, vocab: Vocab, top_k: usize, count: usize },
}

impl PredictionSink {
    pub fn create(args: &PredictArgs, vocab: &Vocab) -> Result<Self> {
        Ok(match args.format {
            PredictFormat::Jsonl => Self::Jsonl(PredictionWriter::create(&args.out)?),
            PredictFormat::Csv => {
                let mut file = AtomicFile::create(&args.out)?;
                writeln!(file, "subject_id,rank,atc_code,atc_name,probability")?;
                Self::Csv { file, vocab: vocab.clone(), top_k: args.top_k, count: 0 }
            }
        })
    }

    pub fn write(&mut self, subject_id: u64, probabilities: &[f32]) -> Result<()> {
        match self {
            Self::Jsonl(w) => w.write(subject_id, probabilities),
            Self::Csv { file, vocab, top_k, count } => {
                let mut order: Vec<usize> = (0..probabilities.len()).collect();
                order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
                for (rank, &i) in order.iter().take(*top_k).enumerate() {
                    let entry = &vocab.medications[i];
                    let name = entry.name.replace('"', "\"\"");
                    writeln!(file, "{subject_id},{},{},\"{name}\",{}", rank + 1, entry.code, probabilities[i])
                        .context("writing predictions CSV")?;
                }
                *count += 1;
                Ok(())
            }
        }
    }

    /// Commits the output; returns the number of records written.
    pub fn finish(self) -> Result<usize> {
        match self {
            Self::Jsonl(w) => w.finish(),
            Self::Csv { file, count, .. } => {
                file.commit()?;
                Ok(count)
            }
        }
    }
}
