//! `leader eval`: scores a predictions file (or a label-only baseline) against a data folder's split
//! and writes `metrics.json`, `metrics.md` and `config.toml`; or, with `--compare`, puts several
//! `metrics.json` side by side in one table.

use crate::config::ConfigArgs;
use crate::data::ddi::DdiPairs;
use crate::data::record::split_path;
use crate::data::vocab::Vocab;
use crate::eval::baseline::{label_frequency, Baseline};
use crate::eval::ddi::DdiCounter;
use crate::eval::groups::GROUPS;
use crate::eval::metrics::Threshold;
use crate::eval::predictions::read_predictions;
use crate::eval::report::{build_report, MetricsReport};
use crate::eval::resample::ResampleOptions;
use crate::eval::scoring::{read_targets, Outcome, Scorer, Target};
use crate::eval::table::{compare_table, group_table};
use crate::io::output::{OutputDir, OutputFile, OutputKind};
use crate::io::require_file;
use crate::nn::parallel::threads;
use crate::progress::say;
use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = include_str!("../../configs/eval.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub split: String,
    pub model_kind: ModelKind,
    pub threads: usize,
    pub threshold: Thresholds,
    pub resample: ResampleOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub student: Threshold,
    pub teacher: Threshold,
    pub baseline: Threshold,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// From the predictions' sidecar `FILE.config.toml`, else student.
    Auto,
    Student,
    Teacher,
    /// A `train-baseline` model.
    Baseline,
}

impl EvalConfig {
    pub fn load(args: &ConfigArgs) -> Result<Self> {
        crate::config::load(DEFAULT_CONFIG, args)
    }
}

impl Thresholds {
    fn of_mut(&mut self, kind: ModelKind) -> &mut Threshold {
        match kind {
            ModelKind::Teacher => &mut self.teacher,
            ModelKind::Baseline => &mut self.baseline,
            ModelKind::Student | ModelKind::Auto => &mut self.student,
        }
    }

    /// The threshold of a resolved model kind (`auto` counts as the student).
    fn of(&self, kind: ModelKind) -> &Threshold {
        match kind {
            ModelKind::Teacher => &self.teacher,
            ModelKind::Baseline => &self.baseline,
            ModelKind::Student | ModelKind::Auto => &self.student,
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct EvalArgs {
    /// A preprocessed data folder: vocab.json, ddi.json (optional), the split's records, and
    /// train.jsonl for --baseline.
    #[arg(long, required_unless_present = "compare")]
    pub data: Option<PathBuf>,
    /// train, valid, test or records (default: the config's, test).
    #[arg(long)]
    pub split: Option<String>,
    /// Predictions (JSON Lines, `{"subject_id", "probabilities"}` per record, as `leader predict` writes).
    #[arg(long, conflicts_with = "baseline")]
    pub predictions: Option<PathBuf>,
    /// Score a label-only baseline instead of a predictions file.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// Decision threshold for the model kind in use (its `>` or `>=` rule is kept).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Whose default threshold applies (default: auto, from the predictions' sidecar config).
    #[arg(long, value_enum)]
    pub model_kind: Option<ModelKind>,
    /// Subsampling rounds for mean ± std.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seed of the subsampling rounds and the bootstrap.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Bootstrap resamples for a 95% interval (0 = off).
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// Threads parsing the predictions file (0 = all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder for metrics.json, metrics.md and config.toml (new or empty); with --compare, a
    /// markdown file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an earlier output of `leader eval` at --out.
    #[arg(long)]
    pub overwrite: bool,
    /// metrics.json files to show side by side instead of scoring.
    #[arg(long, num_args = 1.., conflicts_with_all = ["data", "predictions", "baseline"])]
    pub compare: Vec<PathBuf>,
    /// Row names for --compare, one per file (default: each file's folder name).
    #[arg(long, num_args = 1.., requires = "compare")]
    pub labels: Vec<String>,
    /// The group --compare shows: overall (default), single, multi, prior_visits_0, ...
    #[arg(long, requires = "compare")]
    pub group: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What is scored.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Predictions(&'a Path),
    Baseline(Baseline),
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if !args.compare.is_empty() {
        return run_compare(args);
    }
    let data = args.data.as_deref().ok_or_else(|| anyhow!("give --data DIR (or --compare FILES)"))?;
    let out = args.out.as_deref().ok_or_else(|| anyhow!("give --out DIR for metrics.json and metrics.md"))?;
    let source = match (&args.predictions, args.baseline) {
        (Some(path), _) => Source::Predictions(path),
        (None, Some(baseline)) => Source::Baseline(baseline),
        (None, None) => bail!("give --predictions FILE or --baseline frequency"),
    };
    use crate::config::flag;
    let mut flags: Vec<String> = args.split.iter().map(|v| flag("split", v)).collect();
    flags.extend(args.model_kind.iter().map(|v| flag("model_kind", v)));
    flags.extend(args.rounds.iter().map(|v| flag("resample.rounds", v)));
    flags.extend(args.seed.iter().map(|v| flag("resample.seed", v)));
    flags.extend(args.bootstrap.iter().map(|v| flag("resample.bootstrap", v)));
    flags.extend(args.threads.iter().map(|v| flag("threads", v)));
    let mut cfg: EvalConfig = crate::config::resolve(DEFAULT_CONFIG, &args.config, &flags)?;
    cfg.model_kind = resolve_model_kind(cfg.model_kind, source)?;
    if let Some(value) = args.threshold {
        cfg.threshold.of_mut(cfg.model_kind).value = value;
    }
    let folder = OutputDir::create(out, OutputKind::Eval, args.overwrite)?;
    let report = score(data, source, &cfg)?;
    write_outputs(&report, &cfg, folder.path())?;
    folder.commit()?;
    println!("{}", group_table(&report));
    say(format!("eval: wrote {}", out.join("metrics.json").display()));
    Ok(())
}

/// Scores `source` against `data_dir`'s split as `cfg` says.
pub fn score(data_dir: &Path, source: Source, cfg: &EvalConfig) -> Result<MetricsReport> {
    ensure!(cfg.resample.fraction > 0.0 && cfg.resample.fraction <= 1.0, "resample.fraction must be in (0, 1]");
    let vocab_path = data_dir.join("vocab.json");
    require_file(&vocab_path, "the data folder's vocab.json")?;
    let vocab = Vocab::load(&vocab_path)?;
    let m = vocab.num_medications();
    let ddi_path = data_dir.join("ddi.json");
    let ddi = if ddi_path.is_file() {
        Some(DdiCounter::new(&DdiPairs::load(&ddi_path)?, &vocab))
    } else {
        say(format!("eval: no {}; DDI rates are left out", ddi_path.display()));
        None
    };
    let records_path = split_path(data_dir, &cfg.split)?;
    require_file(&records_path, &format!("the {} split's records", cfg.split))?;
    let targets = read_targets(&records_path, &vocab, threads(cfg.threads))?;
    ensure!(!targets.is_empty(), "{}: no records to evaluate", records_path.display());
    let empty = targets.iter().filter(|t| t.labels.is_empty()).count();
    if empty > 0 {
        say(format!("eval: {empty} records of {} have no label (their recall and PRAUC count as 0)", cfg.split));
    }
    if let Source::Predictions(path) = source {
        check_medication_order(path, &vocab, &vocab_path)?;
    }
    let kind = resolve_model_kind(cfg.model_kind, source)?;
    let threshold = *cfg.threshold.of(kind);
    let scorer = Scorer::new(threshold, ddi, m);
    let (outcomes, kind_name) = match source {
        Source::Predictions(path) => {
            let kind_name = format!("{kind:?}").to_lowercase();
            (score_predictions(path, &targets, &scorer, &records_path, threads(cfg.threads))?, kind_name)
        }
        Source::Baseline(Baseline::Frequency) => {
            let train_path = data_dir.join("train.jsonl");
            require_file(&train_path, "the training records the frequency baseline counts")?;
            let frequency = label_frequency(&read_targets(&train_path, &vocab, threads(cfg.threads))?, m);
            let outcomes = targets.iter().map(|t| scorer.score(t, &frequency)).collect();
            (outcomes, format!("baseline:{}", Baseline::Frequency.name()))
        }
    };
    say(format!(
        "eval: {} records of {} scored (p {} {})",
        outcomes.len(),
        cfg.split,
        threshold.rule(),
        threshold.value
    ));
    Ok(build_report(&outcomes, threshold, scorer.has_ddi(), &cfg.resample, Some(kind_name), threads(cfg.threads)))
}

/// The sidecar `FILE.config.toml` of a predictions file, checked to belong to it; `None` without one
/// (predictions made by another tool).
fn prediction_sidecar(path: &Path) -> Result<Option<toml::Table>> {
    let sidecar = crate::io::output::sidecar_path(path);
    if !sidecar.is_file() {
        return Ok(None);
    }
    if let Some(written) = crate::io::output::read_written(path)? {
        crate::io::output::check_sidecar_matches(path, &written)?;
    }
    let text = std::fs::read_to_string(&sidecar).with_context(|| format!("reading {}", sidecar.display()))?;
    text.parse().map(Some).map_err(|e| anyhow!("{}: {e}", sidecar.display()))
}

/// Fails unless the predictions' probabilities follow `vocab`'s medication order (as recorded by
/// `leader predict` in the sidecar); predictions without a sidecar cannot be checked, which is said.
fn check_medication_order(path: &Path, vocab: &Vocab, vocab_path: &Path) -> Result<()> {
    let recorded = prediction_sidecar(path)?.and_then(|t| t.get("vocab_fingerprint")?.as_str().map(str::to_string));
    match recorded {
        Some(f) if f == vocab.fingerprint() => Ok(()),
        Some(f) => bail!(
            "{}: the probabilities follow another medication order than {} (vocabulary fingerprint {f}, the data \
             folder's is {}); score the model on this data folder, or evaluate against the data it was scored on",
            path.display(),
            vocab_path.display(),
            vocab.fingerprint()
        ),
        None => {
            say(format!(
                "eval: {} records no vocabulary fingerprint; its probabilities are taken to follow the medication \
                 order of {}",
                path.display(),
                vocab_path.display()
            ));
            Ok(())
        }
    }
}

/// `auto` becomes the kind in the predictions' sidecar config (student without one, and for
/// baselines).
pub fn resolve_model_kind(kind: ModelKind, source: Source) -> Result<ModelKind> {
    let (ModelKind::Auto, Source::Predictions(path)) = (kind, source) else {
        return Ok(if kind == ModelKind::Auto { ModelKind::Student } else { kind });
    };
    let sidecar = crate::io::output::sidecar_path(path);
    let Some(table) = prediction_sidecar(path)? else {
        say(format!("eval: no {}; using the student threshold", sidecar.display()));
        return Ok(ModelKind::Student);
    };
    match table.get("model_kind").and_then(|v| v.as_str()) {
        Some("student") => Ok(ModelKind::Student),
        Some("teacher") => Ok(ModelKind::Teacher),
        Some("baseline") => Ok(ModelKind::Baseline),
        None => {
            say(format!("eval: {} has no model_kind; using the student threshold", sidecar.display()));
            Ok(ModelKind::Student)
        }
        Some(other) => {
            bail!("{}: model_kind = {other:?}; expected \"student\", \"teacher\" or \"baseline\"", sidecar.display())
        }
    }
}

/// Streams the predictions, checking that every record has exactly one; outcomes come back in
/// record order, so the report does not depend on the order of the predictions file.
fn score_predictions(
    path: &Path,
    targets: &[Target],
    scorer: &Scorer,
    records_path: &Path,
    threads: usize,
) -> Result<Vec<Outcome>> {
    let mut index = HashMap::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        if let Some(first) = index.insert(t.subject_id, i) {
            bail!(
                "{}: lines {} and {} are records of one patient (the same subject_id); predictions cannot be matched",
                records_path.display(),
                first + 1,
                i + 1
            );
        }
    }
    // Patients are named by line numbers, never by subject_id: errors end up in logs and tickets.
    let scored = read_predictions(path, scorer.num_medications(), threads, |subject_id, probs| {
        let &i = index
            .get(&subject_id)
            .ok_or_else(|| anyhow!("its subject_id is not that of any record in {}", records_path.display()))?;
        Ok((i, scorer.score(&targets[i], probs)))
    })?;
    let mut line_of = vec![0usize; targets.len()];
    let mut outcomes = vec![None; targets.len()];
    for (line, (i, outcome)) in scored {
        if line_of[i] != 0 {
            bail!(
                "{}:{line}: a second prediction for the record at line {} of {} (the first is at line {})",
                path.display(),
                i + 1,
                records_path.display(),
                line_of[i]
            );
        }
        line_of[i] = line;
        outcomes[i] = Some(outcome);
    }
    let missing: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_none()).map(|(i, _)| i + 1).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(5).map(usize::to_string).collect();
        bail!(
            "{}: no prediction for {} of the {} records of {} (lines {}{})",
            path.display(),
            missing.len(),
            targets.len(),
            records_path.display(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(outcomes.into_iter().map(|o| o.expect("every record has an outcome")).collect())
}

/// Writes `metrics.json`, `metrics.md` and the effective `config.toml` into `out` (each atomically).
pub fn write_outputs(report: &MetricsReport, cfg: &EvalConfig, out: &Path) -> Result<()> {
    crate::io::write_json(&out.join("metrics.json"), report)?;
    let title = report.model_kind.as_deref().unwrap_or("model");
    let md = format!("# Evaluation ({title}, {} split)\n\n{}", cfg.split, group_table(report));
    crate::io::write_atomic(&out.join("metrics.md"), md.as_bytes())?;
    crate::config::save(cfg, &out.join("config.toml"))
}

/// What `--compare --out FILE` records next to the table.
#[derive(Serialize)]
struct CompareConfig<'a> {
    inputs: &'a [PathBuf],
    labels: &'a [String],
    group: &'a str,
}

fn run_compare(args: &EvalArgs) -> Result<()> {
    let out =
        args.out.as_deref().map(|o| OutputFile::create(o, OutputKind::EvalCompare, args.overwrite)).transpose()?;
    ensure!(
        args.labels.is_empty() || args.labels.len() == args.compare.len(),
        "--labels gives {} names for {} --compare files",
        args.labels.len(),
        args.compare.len()
    );
    let labels: Vec<String> = if args.labels.is_empty() {
        args.compare.iter().map(|p| default_label(p)).collect()
    } else {
        args.labels.clone()
    };
    let runs = labels
        .iter()
        .zip(&args.compare)
        .map(|(label, path)| Ok((label.clone(), MetricsReport::load(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let group = args.group.as_deref().unwrap_or("overall");
    ensure!(GROUPS.contains(&group), "--group {group:?}: expected one of {GROUPS:?}");
    let table = compare_table(&runs, group);
    println!("{table}");
    if let Some(file) = out {
        crate::io::write_atomic(file.dest(), table.as_bytes())?;
        say(format!("eval: wrote {}", file.dest().display()));
        file.commit(&CompareConfig { inputs: &args.compare, labels: &labels, group })?;
    }
    Ok(())
}

/// A run's name: the folder holding its metrics.json (or the file name without one).
fn default_label(path: &Path) -> String {
    path.parent()
        .and_then(|p| p.file_name())
        .or_else(|| path.file_stem())
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
