//! `leader demo` end to end on a very small cohort: every stage's output is left in the folder, the
//! report's table has a row per model and the three patient groups, and every number in it equals
//! the one in that model's `metrics.json` (formatted here independently of the report code).

use leader::demo::{run, DemoArgs};
use serde_json::Value;
use std::path::Path;

const MODELS: [(&str, &str); 10] = [
    ("teacher", "LEADER(T)"),
    ("student-nokd", "LEADER(S) w/o KD"),
    ("student-kd", "LEADER(S) KD"),
    ("student-kd-align", "LEADER(S) KD + align"),
    ("baseline-lr", "LR"),
    ("baseline-retain", "RETAIN"),
    ("baseline-gamenet", "GAMENet"),
    ("baseline-micron", "MICRON"),
    ("baseline-transformer", "Transformer"),
    ("baseline-frequency", "Frequency baseline"),
];
const GROUPS: [&str; 3] = ["overall", "single", "multi"];
const METRICS: [(&str, usize); 5] = [("prauc", 4), ("jaccard", 4), ("f1", 4), ("ddi_rate", 4), ("avg_meds", 2)];

/// The expected table cell for one metric of one group, straight from metrics.json.
fn expected_cell(metrics: &Value, group: &str, metric: &str, decimals: usize) -> String {
    let stat = &metrics["groups"][group][metric];
    match (stat["mean"].as_f64(), stat["std"].as_f64()) {
        (Some(mean), Some(std)) => format!("{mean:.decimals$} ± {std:.decimals$}"),
        _ => format!("{:.decimals$}", stat["value"].as_f64().expect("value")),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn demo_runs_every_stage_and_reports_the_metrics_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    leader::progress::set_quiet(true);
    let args = DemoArgs {
        out: out.clone(),
        patients: 150,
        seed: 3,
        pretrain_steps: 4,
        teacher_steps: 4,
        student_epochs: 1,
        baseline_epochs: 1,
        max_tokens: 96,
        overwrite: false,
    };
    run(&args).unwrap();

    // Everything the demo wrote is recorded as its own, so --overwrite can replace all of it.
    let marker = read_json(&out.join(leader::io::output::MARKER));
    let recorded: Vec<&str> = marker["entries"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.starts_with('.') || recorded.contains(&name.as_str()), "{name} is not recorded in the marker");
    }
    assert_eq!(marker["complete"], true);
    let err = run(&args).unwrap_err().to_string();
    assert!(err.contains("already holds an output of `leader demo`"), "{err}");

    for stage_output in [
        "raw/ADMISSIONS.csv.gz",
        "data/train.jsonl",
        "data/stats.json",
        "teacher-base/tokenizer.json",
        "pretrain/best/model.safetensors",
        "teacher/best/adapter_model.safetensors",
        "teacher-cache.safetensors",
        "student-kd-align/model.safetensors",
        "baseline-lr/model.safetensors",
        "baseline-gamenet/model.safetensors",
        "baseline-transformer/model.safetensors",
        "predictions/teacher.jsonl",
        "eval/baseline-frequency/metrics.json",
        "stage_times.json",
        "report.md",
    ] {
        assert!(out.join(stage_output).exists(), "missing {stage_output}");
    }

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let header = report.lines().find(|l| l.starts_with("| Model | Overall PRAUC")).expect("results table header");
    for heading in ["Overall", "Single-visit", "Multi-visit"] {
        assert!(header.contains(&format!("{heading} PRAUC")) && header.contains(&format!("{heading} #Meds")));
    }
    for (name, label) in MODELS {
        let row =
            report.lines().find(|l| l.starts_with(&format!("| {label} |"))).unwrap_or_else(|| panic!("no row {label}"));
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let metrics = read_json(&out.join("eval").join(name).join("metrics.json"));
        let mut expected = vec![label.to_string()];
        for group in GROUPS {
            for (metric, decimals) in METRICS {
                let present = metrics["groups"].get(group).is_some();
                expected.push(if present { expected_cell(&metrics, group, metric, decimals) } else { "–".into() });
            }
        }
        assert_eq!(cells, expected, "row {label} differs from {name}/metrics.json");
        let n: u64 = metrics["groups"]["overall"]["n"].as_u64().unwrap();
        let test_records = std::fs::read_to_string(out.join("data/test.jsonl")).unwrap().lines().count() as u64;
        assert_eq!(n, test_records, "{name} scored every test record");
    }

    // The claims section reads the same files: the teacher against the frequency baseline, with the
    // verdict the numbers give.
    let prauc = |name: &str| {
        read_json(&out.join("eval").join(name).join("metrics.json"))["groups"]["overall"]["prauc"]["mean"]
            .as_f64()
            .unwrap()
    };
    let (teacher, frequency) = (prauc("teacher"), prauc("baseline-frequency"));
    let claim = report.lines().find(|l| l.starts_with("- **The teacher knows")).expect("the teacher claim");
    let verdict = if teacher - frequency >= 0.05 { ", met)" } else { "**not met**)" };
    for part in [format!("{teacher:.4}"), format!("{frequency:.4}"), format!("{:+.4}", teacher - frequency)] {
        assert!(claim.contains(&part), "{part} not in {claim}");
    }
    assert!(claim.ends_with(&format!("{verdict}.")), "{claim}");
    for claim in ["- **Distillation carries", "- **Single-visit patients**", "- **Profile alignment**"] {
        assert!(report.lines().any(|l| l.starts_with(claim)), "no line {claim}");
    }
}
