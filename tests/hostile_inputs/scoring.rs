//! Hostile-input cases: records, predictions and the models that score them. Each is a clear error
//! naming the file and line (patients by line, never by subject_id), or a refusal to mix a model or
//! predictions with data of another vocabulary.

use super::support::*;
use std::path::{Path, PathBuf};

/// `leader eval` of `predictions` against `data`'s test split into `out`.
fn eval(data: &str, predictions: &str, out: &str) -> Run {
    leader(&["eval", "--data", data, "--split", "test", "--predictions", predictions, "--out", out])
}

fn data_copy(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    copy_dir(&fixture().path("data"), &data);
    data
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(String::from).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_records_file_whose_last_line_is_cut_names_that_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_copy(tmp.path());
    let test = data.join("test.jsonl");
    let mut records = lines(&test);
    let last = records.pop().unwrap();
    records.push(last[..last.len() / 2].to_string());
    std::fs::write(&test, records.join("\n")).unwrap();
    let student = fixture().path("student");
    let out = tmp.path().join("p.jsonl");
    leader(&["predict", "--model", s(&student), "--data", s(&data), "--split", "test", "--out", s(&out)])
        .assert_clear_error(&[&format!("test.jsonl:{}:", records.len())]);
    assert!(!out.exists() && tree(tmp.path()).iter().all(|n| !n.contains("p.jsonl")), "{:?}", tree(tmp.path()));
}

#[test]
fn a_label_outside_the_vocabulary_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_copy(tmp.path());
    let test = data.join("test.jsonl");
    let mut records = lines(&test);
    let mut record: serde_json::Value = serde_json::from_str(&records[1]).unwrap();
    record["labels"] = serde_json::json!(["ZZ99"]);
    records[1] = record.to_string();
    write_lines(&test, &records);
    let preds = fixture().path("test.pred.jsonl");
    eval(s(&data), s(&preds), s(&tmp.path().join("e")))
        .assert_clear_error(&["test.jsonl:2", "label \"ZZ99\" is not a vocab.json medication"]);
}

/// Predictions with broken values, lengths or subjects: each names the predictions file and line, and
/// never a subject_id.
#[test]
fn broken_predictions_are_clear_errors() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let good = lines(&f.path("test.pred.jsonl"));
    let parse = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap();
    let subject = |line: &str| parse(line)["subject_id"].as_u64().unwrap().to_string();
    // Line 2 with its first probability written as `first` (bare, as Python's json writes NaN), or
    // with its last probability left out.
    let second = parse(&good[1]);
    let probs: Vec<String> = second["probabilities"].as_array().unwrap().iter().map(|p| p.to_string()).collect();
    let with_first = |first: &str| {
        format!("{{\"subject_id\":{},\"probabilities\":[{first},{}]}}", second["subject_id"], probs[1..].join(","))
    };
    let shorter = format!("{{\"subject_id\":{},\"probabilities\":[{}]}}", second["subject_id"], probs[1..].join(","));
    let n = good.len();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("nan", with_first("NaN"), vec!["p.jsonl:2"]),
        ("negative", with_first("-0.5"), vec!["p.jsonl:2", "is -0.5"]),
        ("above one", with_first("1.5"), vec!["p.jsonl:2", "is 1.5"]),
        ("wrong length", shorter, vec!["p.jsonl:2", "probabilities (one per vocab.json medication)"]),
    ];
    let eval_file = |preds: &Path| eval(s(&f.path("data")), s(preds), s(&tmp.path().join("e")));
    for (name, replacement, needles) in cases {
        let mut file = good.clone();
        file[1] = replacement;
        let preds = tmp.path().join(name.replace(' ', "-")).join("p.jsonl");
        std::fs::create_dir_all(preds.parent().unwrap()).unwrap();
        write_lines(&preds, &file);
        let run = eval_file(&preds);
        run.assert_clear_error(&needles);
        assert!(!run.stderr.contains(&subject(&good[1])), "{name}: a subject_id is printed: {}", run.stderr);
    }
    // Duplicate and missing subjects name lines.
    let dir = tmp.path().join("dup");
    std::fs::create_dir_all(&dir).unwrap();
    let mut duplicated = good.clone();
    duplicated.push(good[0].clone());
    write_lines(&dir.join("p.jsonl"), &duplicated);
    let run = eval_file(&dir.join("p.jsonl"));
    run.assert_clear_error(&[&format!("p.jsonl:{}: a second prediction for the record at line 1", n + 1)]);
    assert!(!run.stderr.contains(&subject(&good[0])), "{}", run.stderr);
    write_lines(&dir.join("p.jsonl"), &good[1..]);
    let run = eval_file(&dir.join("p.jsonl"));
    run.assert_clear_error(&[&format!("no prediction for 1 of the {n} records"), "(lines 1)"]);
    assert!(!run.stderr.contains(&subject(&good[0])), "{}", run.stderr);
}

#[test]
fn empty_splits_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_copy(tmp.path());
    std::fs::write(data.join("valid.jsonl"), "").unwrap();
    leader(&["train-student", "--data", s(&data), "--out", s(&tmp.path().join("s"))])
        .assert_clear_error(&["valid.jsonl", "the valid split is empty"]);
    let base = fixture().path("base");
    leader(&["train-teacher", "--data", s(&data), "--model", s(&base), "--out", s(&tmp.path().join("t"))])
        .assert_clear_error(&["valid.jsonl", "no validation records"]);
    std::fs::write(data.join("test.jsonl"), "").unwrap();
    leader(&[
        "eval",
        "--data",
        s(&data),
        "--split",
        "test",
        "--baseline",
        "frequency",
        "--out",
        s(&tmp.path().join("e")),
    ])
    .assert_clear_error(&["test.jsonl", "no records to evaluate"]);
}

#[test]
fn bad_training_options_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = f.path("data");
    leader(&["train-student", "--data", s(&data), "--out", s(&tmp.path().join("a")), "--lr=-1"])
        .assert_clear_error(&["train.lr = -1", "positive"]);
    leader(&["train-student", "--data", s(&data), "--out", s(&tmp.path().join("b")), "--epochs", "0"])
        .assert_clear_error(&["train.epochs"]);
    leader(&[
        "train-teacher",
        "--data",
        s(&data),
        "--model",
        s(&f.path("base")),
        "--out",
        s(&tmp.path().join("c")),
        "--lr=-1",
    ])
    .assert_clear_error(&["train.lr = -1"]);
    assert!(tree(tmp.path()).is_empty(), "{:?}", tree(tmp.path()));
}

/// A model or predictions of another vocabulary never score this data.
#[test]
fn models_and_predictions_of_another_vocabulary_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let other = f.path("data-other");
    let out = |name: &str| tmp.path().join(name).display().to_string();
    leader(&[
        "predict",
        "--model",
        s(&f.path("student")),
        "--data",
        s(&other),
        "--split",
        "test",
        "--out",
        &out("s.jsonl"),
    ])
    .assert_clear_error(&["vocabulary"]);
    leader(&[
        "predict",
        "--teacher",
        s(&f.path("teacher")),
        "--data",
        s(&other),
        "--split",
        "test",
        "--out",
        &out("t.jsonl"),
    ])
    .assert_clear_error(&["vocabulary"]);
    leader(&["export-hidden", "--teacher", s(&f.path("teacher")), "--data", s(&other), "--out", &out("h.safetensors")])
        .assert_clear_error(&["vocabulary"]);
    // Predictions in one data folder's medication order, evaluated against another's.
    leader(&[
        "eval",
        "--data",
        s(&other),
        "--split",
        "test",
        "--predictions",
        s(&f.path("test.pred.jsonl")),
        "--out",
        &out("e"),
    ])
    .assert_clear_error(&["another medication order"]);
    assert!(tree(tmp.path()).is_empty(), "{:?}", tree(tmp.path()));
}

#[test]
fn predictions_and_a_sidecar_from_different_runs_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let preds = tmp.path().join("p.jsonl");
    std::fs::copy(f.path("test.pred.jsonl"), &preds).unwrap();
    std::fs::copy(f.path("test.pred.jsonl.config.toml"), tmp.path().join("p.jsonl.config.toml")).unwrap();
    let mut text = lines(&preds);
    text.swap(0, 1);
    write_lines(&preds, &text);
    eval(s(&f.path("data")), s(&preds), s(&tmp.path().join("e")))
        .assert_clear_error(&["does not belong to", "p.jsonl"]);
}

#[test]
fn a_student_with_nan_weights_writes_nothing() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let student = tmp.path().join("student");
    copy_dir(&f.path("student"), &student);
    let weights = student.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    for t in tensors.values_mut() {
        if t.dtype() == candle_core::DType::F32 {
            *t = (t.clone() * f64::NAN).unwrap();
        }
    }
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let out = tmp.path().join("p.csv");
    for format in ["jsonl", "csv"] {
        leader(&[
            "predict",
            "--model",
            s(&student),
            "--data",
            s(&f.path("data")),
            "--split",
            "test",
            "--format",
            format,
            "--out",
            s(&out),
        ])
        .assert_clear_error(&["NaN", "nothing was written"]);
        assert!(!out.exists());
    }
}

/// A 200 MB line is refused in bounded memory; a 20 MB one-word prompt is cut before tokenising.
#[test]
fn huge_lines_and_prompts_stay_within_bounded_memory() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let test = lines(&f.path("data/test.jsonl"));
    let mut record: serde_json::Value = serde_json::from_str(&test[0]).unwrap();
    let huge = tmp.path().join("huge.jsonl");
    record["prompt"] = "a".repeat(200 << 20).into();
    write_lines(&huge, &[record.to_string()]);
    let out = tmp.path().join("p.jsonl");
    leader(&["predict", "--model", s(&f.path("student")), "--records", s(&huge), "--out", s(&out)])
        .assert_clear_error(&["huge.jsonl:1:1: line longer than 64 MiB"]);
    leader(&["predict", "--teacher", s(&f.path("teacher")), "--records", s(&huge), "--out", s(&out)])
        .assert_clear_error(&["huge.jsonl:1:1: line longer than 64 MiB"]);

    let long = tmp.path().join("long.jsonl");
    record["prompt"] = "word".repeat(5 << 20).into();
    write_lines(&long, &[record.to_string()]);
    let bound = 3 << 30;
    leader_with_limit(
        Path::new("."),
        &["predict", "--teacher", s(&f.path("teacher")), "--records", s(&long), "--out", s(&out)],
        bound,
    )
    .assert_success();
}
