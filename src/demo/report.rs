//! The demo's `report.md`: data statistics and the preprocessing funnel, the paper-style results table
//! (every number read from the stages' `metrics.json`), training curves as PNG, and teacher-vs-student
//! efficiency on this machine (the paper's RQ4).

use super::plot::{line_chart, Series};
use super::{StageTime, MODELS};
use crate::data::preprocess::stats::Stats;
use crate::eval::report::MetricsReport;
use crate::eval::table::{cell, COLUMNS};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

/// The patient groups of the results table, as (metrics.json key, heading).
pub const GROUPS: [(&str, &str); 3] = [("overall", "Overall"), ("single", "Single-visit"), ("multi", "Multi-visit")];

/// Scoring one record through `leader predict`, model loading included (what a one-off call costs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub model: String,
    pub median_ms: f64,
    pub runs: usize,
}

/// Times `leader predict` on the first test record, 5 times, for the teacher and the full student.
pub fn measure_latency(out: &Path, data_dir: &Path) -> Result<Vec<Latency>> {
    let test = crate::data::record::split_path(data_dir, "test")?;
    let first = std::fs::read_to_string(&test)?.lines().next().map(str::to_string).context("empty test split")?;
    let dir = out.join("latency");
    let one = dir.join("one-record.jsonl");
    crate::io::write_atomic(&one, format!("{first}\n").as_bytes())?;
    let mut latencies = Vec::new();
    for (model, flag) in [("teacher", "--teacher"), ("student-kd-align", "--model")] {
        let mut ms = Vec::new();
        for _ in 0..5 {
            let argv: Vec<String> =
                [flag, &out.join(model).display().to_string(), "--records", &one.display().to_string()]
                    .iter()
                    .map(|s| s.to_string())
                    // Each timed run replaces the one before it.
                    .chain(["--overwrite".to_string(), "--out".to_string()])
                    .chain([dir.join(format!("{model}.jsonl")).display().to_string()])
                    .collect();
            let args: crate::predict::PredictArgs = super::parse(&argv)?;
            let quiet = crate::progress::is_quiet();
            crate::progress::set_quiet(true);
            let start = Instant::now();
            let result = crate::predict::run(&args);
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            crate::progress::set_quiet(quiet);
            result?;
        }
        ms.sort_by(f64::total_cmp);
        latencies.push(Latency { model: model.to_string(), median_ms: ms[ms.len() / 2], runs: ms.len() });
    }
    Ok(latencies)
}

/// Elements in every tensor of a safetensors file.
fn parameters(path: &Path) -> Result<usize> {
    let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .with_context(|| format!("reading {}", path.display()))?;
    // A baseline's fixed graphs and the teacher head's statistics are stored beside their weights;
    // they are not parameters.
    let weights = file.tensors().into_iter().filter(|(name, _)| {
        !name.starts_with(crate::baseline::train::BUFFER_PREFIX) && !crate::teacher::model::is_head_statistic(name)
    });
    Ok(weights.map(|(_, view)| view.shape().iter().product::<usize>()).sum())
}

/// Reads a `train_log.jsonl` as loose JSON values (teacher and student logs differ in fields).
fn read_log(path: &Path) -> Result<Vec<serde_json::Value>> {
    crate::io::read_jsonl(path)
}

fn points(log: &[serde_json::Value], x: &str, y: &str) -> Vec<(f64, f64)> {
    log.iter().filter_map(|l| Some((l.get(x)?.as_f64()?, l.get(y)?.as_f64()?))).collect()
}

/// Draws the curves; a chart that cannot be drawn (no font, say) becomes a note in the report.
fn curves(out: &Path) -> Result<String> {
    let mut md = String::new();
    let teacher = read_log(&out.join("teacher/train_log.jsonl"))?;
    let students: Vec<(&str, Vec<serde_json::Value>)> = MODELS[1..4]
        .iter()
        .map(|(name, label)| Ok((*label, read_log(&out.join(name).join("train_log.jsonl"))?)))
        .collect::<Result<_>>()?;
    let charts = [
        (
            "teacher_curves.png",
            "LEADER(T) training",
            "step",
            vec![
                Series { label: "train loss (BCE)".into(), points: points(&teacher, "step", "loss") },
                Series { label: "validation PRAUC".into(), points: points(&teacher, "step", "valid_prauc") },
            ],
        ),
        (
            "student_prauc.png",
            "LEADER(S): validation PRAUC",
            "epoch",
            students
                .iter()
                .map(|(l, log)| Series { label: l.to_string(), points: points(log, "epoch", "valid_prauc") })
                .collect(),
        ),
        (
            "student_loss.png",
            "LEADER(S): training loss",
            "epoch",
            students
                .iter()
                .map(|(l, log)| Series { label: l.to_string(), points: points(log, "epoch", "train_loss") })
                .collect(),
        ),
    ];
    for (file, title, x, series) in charts {
        match line_chart(&out.join(file), title, x, "value", &series) {
            Ok(()) => writeln!(md, "![{title}]({file})\n")?,
            Err(e) => writeln!(md, "*{title}: not drawn ({e}).*\n")?,
        }
    }
    Ok(md)
}

/// The paper-style table: a row per model, column groups overall / single / multi.
pub fn results_table(runs: &[(String, MetricsReport)]) -> String {
    let mut header = vec!["Model".to_string()];
    for (_, heading) in GROUPS {
        header.extend(COLUMNS.iter().map(|(_, name, _)| format!("{heading} {name}")));
    }
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for (label, report) in runs {
        let mut cells = vec![label.clone()];
        for (group, _) in GROUPS {
            let g = report.group(group);
            cells.extend(COLUMNS.iter().map(|(metric, _, decimals)| cell(g.and_then(|g| g.get(*metric)), *decimals)));
        }
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// PRAUC mean and std of `label`'s row in `group`.
fn prauc(runs: &[(String, MetricsReport)], label: &str, group: &str) -> Option<(f64, f64)> {
    let (_, report) = runs.iter().find(|(l, _)| l == label)?;
    let stat = report.group(group)?.get(crate::eval::Metric::Prauc)?;
    Some((stat.mean?, stat.std.unwrap_or(0.0)))
}

/// What a PRAUC difference means, given the larger std of the two rows over rounds.
fn verdict(difference: f64, spread: f64) -> String {
    if difference > spread {
        "helps".to_string()
    } else if difference < -spread {
        "hurts".to_string()
    } else {
        format!("makes no difference beyond the rounds' spread ({spread:.4})")
    }
}

/// The demo's claims, checked against the table: the teacher knows more than the label frequencies,
/// distillation carries it into the student by more than the rounds' spread, and what happens on
/// single-visit patients and with alignment, said plainly either way.
pub fn mechanism(runs: &[(String, MetricsReport)]) -> Result<String> {
    let [teacher, nokd, kd, kd_align, .., frequency] = MODELS.map(|(_, label)| label);
    let get = |label: &str, group: &str| {
        prauc(runs, label, group).with_context(|| format!("no {group} PRAUC for {label} in the results"))
    };
    let yes_no = |met: bool| if met { "met" } else { "**not met**" };
    let mut md = String::new();
    let ((t, _), (f, _)) = (get(teacher, "overall")?, get(frequency, "overall")?);
    writeln!(
        md,
        "- **The teacher knows more than the label frequencies**: {teacher} overall PRAUC {t:.4} against the frequency baseline's {f:.4}, {:+.4} (target: at least +0.05, {}).",
        t - f,
        yes_no(t - f >= 0.05)
    )?;
    let ((k, k_std), (n, n_std)) = (get(kd, "overall")?, get(nokd, "overall")?);
    let spread = k_std.max(n_std);
    writeln!(
        md,
        "- **Distillation carries it into the student**: {kd} {k:.4} ± {k_std:.4} against {nokd} {n:.4} ± {n_std:.4}, {:+.4} (target: more than the larger std, {spread:.4}: {}).",
        k - n,
        yes_no(k - n > spread)
    )?;
    let ((ks, ks_std), (ns, ns_std)) = (get(kd, "single")?, get(nokd, "single")?);
    writeln!(
        md,
        "- **Single-visit patients** (no history: the student sees only the profile and the current visit): {kd} {ks:.4} against {nokd} {ns:.4}, {:+.4}: on them distillation {}.",
        ks - ns,
        verdict(ks - ns, ks_std.max(ns_std))
    )?;
    let (a, a_std) = get(kd_align, "overall")?;
    writeln!(
        md,
        "- **Profile alignment**: {kd_align} {a:.4} against {kd} {k:.4}, {:+.4}: on this cohort alignment {}.",
        a - k,
        verdict(a - k, a_std.max(k_std))
    )?;
    Ok(md)
}

/// Writes `report.md` into the demo folder and returns its text.
pub fn write(out: &Path, times: &[StageTime], latency: &[Latency]) -> Result<String> {
    let stats: Stats = crate::io::read_json(&out.join("data/stats.json"))?;
    let runs: Vec<(String, MetricsReport)> = MODELS
        .iter()
        .map(|(name, label)| {
            Ok((label.to_string(), crate::io::read_json(&out.join("eval").join(name).join("metrics.json"))?))
        })
        .collect::<Result<_>>()?;
    let seconds = |stage: &str| times.iter().filter(|t| t.stage == stage).map(|t| t.seconds).sum::<f64>();
    let test_n = runs[0].1.group("overall").map_or(0, |g| g.n);

    let mut md = String::new();
    writeln!(md, "# LEADER demo report\n")?;
    writeln!(md, "Everything below was produced by `leader demo` on a synthetic MIMIC-III-shaped cohort; every figure comes from the files the stages wrote in this folder.\n")?;
    writeln!(md, "## Data\n\n```\n{}```\n", stats.table())?;
    let first = &runs[0].1;
    writeln!(md, "## Results on the test split ({test_n} patients)\n")?;
    writeln!(md, "{}", results_table(&runs))?;
    writeln!(
        md,
        "Cells are mean ± std over {} rounds of {:.0}% subsamples (seed {}). Thresholds: teacher p ≥ 0.5, students p > 0.3 (the reference's), baselines p > 0.5 (scikit-learn's `predict` for LR, GAMENet's own; MICRON's add/remove rule is not applied, see `src/baseline/micron.rs`). The baselines train for `--baseline-epochs` epochs here (the demo's budget; their configs hold the originals' 30–50); DDI: interacting predicted pairs / all predicted pairs.\n",
        first.rounds,
        100.0 * first.subsample_fraction,
        first.seed
    )?;
    writeln!(md, "## What distillation did\n\n{}", mechanism(&runs)?)?;
    writeln!(md, "The teacher is a tiny LLaMA (hidden 64, 2 layers) whose tokenizer holds each code name as one token, pretrained here on `raw/knowledge/` (what `synth` writes about its world: which diagnoses signal each condition, which drugs treat it; never a patient record) before its LoRA fine-tuning.\n")?;
    writeln!(md, "## Training curves\n\n{}", curves(out)?)?;

    writeln!(md, "## Efficiency on this machine\n")?;
    writeln!(md, "| Model | Parameters | Trainable | Training (s) | Test predict (records/s) | One-record call (ms) |\n|---|---|---|---|---|---|")?;
    let teacher_trainable = parameters(&out.join("teacher/best/adapter_model.safetensors"))?
        + parameters(&out.join("teacher/best/head.safetensors"))?;
    let teacher_total = parameters(&out.join("pretrain/best/model.safetensors"))? + teacher_trainable;
    let rate = |name: &str| test_n as f64 / seconds(&format!("predict {name}")).max(1e-9);
    let one = |name: &str| {
        latency.iter().find(|l| l.model == name).map_or("–".to_string(), |l| format!("{:.0}", l.median_ms))
    };
    writeln!(
        md,
        "| LEADER(T) | {teacher_total} | {teacher_trainable} | {:.1} | {:.0} | {} |",
        seconds(super::PRETRAIN_STAGE) + seconds(super::TEACHER_STAGE),
        rate("teacher"),
        one("teacher")
    )?;
    // Every model with a run folder but the teacher: the students and the trained baselines.
    for (name, label) in &MODELS[1..MODELS.len() - 1] {
        let params = parameters(&out.join(name).join("model.safetensors"))?;
        let stage = super::training_stage(name);
        writeln!(md, "| {label} | {params} | {params} | {:.1} | {:.0} | {} |", seconds(&stage), rate(name), one(name))?;
    }
    writeln!(md, "\nRecords/s include loading the model; the one-record call is the median of 5 `leader predict` runs on one record, loading included. The teacher's training time includes pretraining its base. The teacher here is a tiny LLaMA: a real 7B teacher costs about 1,000 times more per record.\n")?;

    writeln!(md, "## Commands\n\nEach stage, as run (wall time):\n")?;
    for t in times {
        writeln!(md, "- `{}` ({:.1} s)", t.command, t.seconds)?;
    }
    crate::io::write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(md)
}
