//! Every stage from the command line, on a small synthetic cohort: synth → preprocess → init-model →
//! train-teacher → export-hidden → distill → predict → eval, checking that each stage's outputs exist
//! and agree with the previous stage's.

use leader::data::record::read_records;
use leader::data::vocab::Vocab;
use leader::eval::predictions::Prediction;
use leader::eval::report::MetricsReport;
use leader::student::checkpoint::{self, RunInfo};
use leader::teacher::cache::TeacherCache;
use std::path::Path;
use std::process::Command;

/// Runs `leader --quiet ARGS`, failing with its stderr.
fn leader(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_leader")).arg("--quiet").args(args).output().unwrap();
    assert!(out.status.success(), "leader {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn synthetic_cohort_through_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (raw, data, base) = (root.join("raw"), root.join("data"), root.join("base"));
    let (teacher, cache, student) = (root.join("teacher"), root.join("cache.safetensors"), root.join("student"));
    let (predictions, eval) = (root.join("test.pred.jsonl"), root.join("eval"));

    leader(&["synth", "--flavor", "mimic3", "--patients", "150", "--seed", "3", "--out", s(&raw)]);
    let aux = raw.join("aux");
    leader(&[
        "preprocess",
        "--source",
        "mimic3",
        "--raw",
        s(&raw),
        "--drug-map",
        s(&aux.join("drug_map.csv")),
        "--atc-names",
        s(&aux.join("atc_names.csv")),
        "--ddi-pairs",
        s(&aux.join("ddi_pairs.csv")),
        "--out",
        s(&data),
    ]);
    let vocab = Vocab::load(&data.join("vocab.json")).unwrap();
    let m = vocab.num_medications();
    let [train, valid, test] =
        ["train", "valid", "test"].map(|split| read_records(&data.join(format!("{split}.jsonl"))).unwrap());
    assert!(m > 0 && !train.is_empty() && !valid.is_empty() && !test.is_empty());
    // Splits are by patient: no subject in two splits.
    let mut subjects: Vec<u64> = train.iter().chain(&valid).chain(&test).map(|r| r.subject_id).collect();
    let total = subjects.len();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), total);
    assert!(train
        .iter()
        .chain(&test)
        .all(|r| !r.prompt.is_empty() && r.labels == r.visits.last().unwrap().medications));

    leader(&[
        "init-model",
        "--shape",
        "tiny",
        "--data",
        s(&data),
        "--seed",
        "3",
        "--tokenizer-vocab",
        "400",
        "--out",
        s(&base),
    ]);
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(base.join(file).is_file(), "init-model wrote no {file}");
    }
    leader(&[
        "train-teacher",
        "--data",
        s(&data),
        "--model",
        s(&base),
        "--out",
        s(&teacher),
        "--max-steps",
        "4",
        "--max-tokens",
        "96",
        "--micro-batch",
        "8",
        "--grad-accum",
        "1",
        "--lr",
        "1e-3",
        "--seed",
        "3",
    ]);
    assert!(teacher.join("best").join("teacher.json").is_file());

    leader(&["export-hidden", "--teacher", s(&teacher), "--data", s(&data), "--split", "train", "--out", s(&cache)]);
    let hidden = TeacherCache::load(&cache).unwrap();
    assert_eq!(hidden.subject_ids, train.iter().map(|r| r.subject_id).collect::<Vec<_>>());
    assert_eq!(hidden.hidden_size(), 64);

    leader(&[
        "distill",
        "--data",
        s(&data),
        "--teacher-cache",
        s(&cache),
        "--out",
        s(&student),
        "--epochs",
        "2",
        "--seed",
        "3",
    ]);
    let info: RunInfo = leader::io::read_json(&student.join(checkpoint::RUN_INFO)).unwrap();
    assert_eq!((info.teacher_hidden, info.shape.num_medications), (Some(64), m));
    assert_eq!(info.vocab_fingerprint, vocab.fingerprint());
    let log: Vec<serde_json::Value> = leader::io::read_jsonl(&student.join(checkpoint::TRAIN_LOG)).unwrap();
    assert_eq!(log.len(), 2);
    assert!(student.join(checkpoint::BEST_MODEL).is_file());

    leader(&["predict", "--model", s(&student), "--data", s(&data), "--split", "test", "--out", s(&predictions)]);
    let preds: Vec<Prediction> = leader::io::read_jsonl(&predictions).unwrap();
    assert_eq!(
        preds.iter().map(|p| p.subject_id).collect::<Vec<_>>(),
        test.iter().map(|r| r.subject_id).collect::<Vec<_>>()
    );
    assert!(preds
        .iter()
        .all(|p| p.probabilities.len() == m && p.probabilities.iter().all(|x| (0.0..=1.0).contains(x))));

    leader(&[
        "eval",
        "--data",
        s(&data),
        "--split",
        "test",
        "--predictions",
        s(&predictions),
        "--seed",
        "3",
        "--out",
        s(&eval),
    ]);
    let report = MetricsReport::load(&eval.join("metrics.json")).unwrap();
    assert_eq!(report.model_kind.as_deref(), Some("student"));
    let overall = report.group("overall").unwrap();
    assert_eq!(overall.n, test.len());
    // Every record is single- or multi-visit, and in exactly one prior-visit bin.
    let n = |key: &str| report.group(key).map_or(0, |g| g.n);
    assert_eq!(n("single") + n("multi"), test.len());
    let bins = ["prior_visits_0", "prior_visits_1", "prior_visits_2", "prior_visits_3_5", "prior_visits_6_plus"];
    assert_eq!(bins.iter().map(|b| n(b)).sum::<usize>(), test.len());
    let prauc = overall.metrics["prauc"].value;
    assert!((0.0..=1.0).contains(&prauc), "PRAUC {prauc}");
    assert!(eval.join("metrics.md").is_file() && eval.join("config.toml").is_file());
}
