//! `leader eval` end to end through `eval::command::run`: files in, metrics.json / metrics.md /
//! config.toml out, thresholds by model kind, input validation, the frequency baseline, and
//! `--compare`.

mod eval_support;

use eval_support::{hand_example, record, write_data};
use leader::config::ConfigArgs;
use leader::eval::command::{run, EvalArgs, EvalConfig, ModelKind};
use leader::eval::predictions::PredictionWriter;
use leader::eval::{evaluate, Metric, MetricsReport, ResampleOptions, Threshold};
use std::path::{Path, PathBuf};

/// Writes predictions for `subjects` (rows of `probs`, M each) in the given order.
fn write_predictions(path: &Path, m: usize, probs: &[f32], order: &[usize], subjects: &[u64]) {
    let mut w = PredictionWriter::create(path).unwrap();
    for &i in order {
        w.write(subjects[i], &probs[i * m..(i + 1) * m]).unwrap();
    }
    w.finish().unwrap();
}

fn args(data: &Path, predictions: &Path, out: &Path) -> EvalArgs {
    EvalArgs {
        data: Some(data.to_path_buf()),
        predictions: Some(predictions.to_path_buf()),
        out: Some(out.to_path_buf()),
        ..Default::default()
    }
}

/// The hand example as a data folder (test split) with predictions in reverse file order.
fn hand_setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (vocab, ddi, records, probs) = hand_example();
    let data = dir.join("data");
    write_data(&data, &vocab, Some(&ddi), &[("test", &records)]);
    let predictions = dir.join("p.jsonl");
    write_predictions(&predictions, 4, &probs, &[3, 2, 1, 0], &[1, 2, 3, 4]);
    (data, predictions)
}

#[test]
fn file_route_equals_the_in_memory_route() {
    let dir = tempfile::tempdir().unwrap();
    let (data, predictions) = hand_setup(dir.path());
    let out = dir.path().join("eval");
    run(&args(&data, &predictions, &out)).unwrap();
    let from_file = MetricsReport::load(&out.join("metrics.json")).unwrap();
    let (vocab, ddi, records, probs) = hand_example();
    let student = Threshold { value: 0.3, inclusive: false };
    let in_memory = evaluate(&records, &probs, &vocab, Some(&ddi), student, &ResampleOptions::default()).unwrap();
    // Same records order and seed → identical subsamples and sums, whatever the file order (up to
    // the last bit, which serde_json's f64 reader may round differently when loading metrics.json).
    assert_eq!(from_file.groups.keys().collect::<Vec<_>>(), in_memory.groups.keys().collect::<Vec<_>>());
    for (key, a) in &from_file.groups {
        let b = &in_memory.groups[key];
        assert_eq!((a.n, a.rounds_used, a.metrics.len()), (b.n, b.rounds_used, b.metrics.len()), "{key}");
        for (metric, x) in &a.metrics {
            let y = &b.metrics[metric];
            let pairs = [(x.value, y.value), (x.mean.unwrap(), y.mean.unwrap()), (x.std.unwrap(), y.std.unwrap())];
            assert!(pairs.iter().all(|(u, v)| (u - v).abs() < 1e-15), "{key} {metric}: {x:?} vs {y:?}");
        }
    }
    assert_eq!((from_file.threshold, from_file.threshold_rule.as_str()), (0.3, ">"));
    assert_eq!((from_file.seed, from_file.rounds), (42, 10));
    assert_eq!(from_file.model_kind.as_deref(), Some("student"));
    let md = std::fs::read_to_string(out.join("metrics.md")).unwrap();
    assert!(md.contains("| Group | n | PRAUC | Jaccard | F1 | DDI | #Meds |"), "{md}");
    assert!(md.contains("| 2 prior visits | 0 | – | – | – | – | – |"), "{md}");
    // The saved config reproduces the run.
    let saved = EvalConfig::load(&ConfigArgs { config: Some(out.join("config.toml")), set: vec![] }).unwrap();
    assert_eq!((saved.model_kind, saved.split.as_str(), saved.resample.rounds), (ModelKind::Student, "test", 10));
}

#[test]
fn teacher_sidecar_selects_the_inclusive_half_threshold_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let (data, predictions) = hand_setup(dir.path());
    std::fs::write(leader::io::output::sidecar_path(&predictions), "model_kind = \"teacher\"\n").unwrap();
    let out = dir.path().join("eval");
    run(&args(&data, &predictions, &out)).unwrap();
    let report = MetricsReport::load(&out.join("metrics.json")).unwrap();
    assert_eq!((report.threshold, report.threshold_rule.as_str()), (0.5, ">="));
    // p >= 0.5 predicts r1 {A,B}, r2 {A} (0.5 exactly), r3 {}, r4 all four: (2 + 1 + 0 + 4)/4.
    let avg = report.group("overall").unwrap().get(Metric::AvgMeds).unwrap().value;
    assert!((avg - 7.0 / 4.0).abs() < 1e-12, "{avg}");

    // --threshold keeps the teacher's >= rule; --model-kind student switches the rule.
    let mut a = args(&data, &predictions, &out);
    a.overwrite = true;
    a.threshold = Some(0.6);
    a.rounds = Some(3);
    run(&a).unwrap();
    let report = MetricsReport::load(&out.join("metrics.json")).unwrap();
    assert_eq!((report.threshold, report.threshold_rule.as_str(), report.rounds), (0.6, ">=", 3));
    let saved = EvalConfig::load(&ConfigArgs { config: Some(out.join("config.toml")), set: vec![] }).unwrap();
    assert_eq!((saved.model_kind, saved.threshold.teacher.value), (ModelKind::Teacher, 0.6));
    a.model_kind = Some(ModelKind::Student);
    run(&a).unwrap();
    let report = MetricsReport::load(&out.join("metrics.json")).unwrap();
    assert_eq!((report.threshold, report.threshold_rule.as_str()), (0.6, ">"));
}

/// Runs eval on the hand example's data with predictions file `text` and returns the error.
fn error_for(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (data, predictions) = hand_setup(dir.path());
    std::fs::write(&predictions, text).unwrap();
    run(&args(&data, &predictions, &dir.path().join("eval"))).unwrap_err().to_string()
}

#[test]
fn bad_predictions_are_named_by_line() {
    let ok = |id: u64| format!("{{\"subject_id\": {id}, \"probabilities\": [0.1, 0.2, 0.3, 0.4]}}\n");
    let all = format!("{}{}{}{}", ok(1), ok(2), ok(3), ok(4));

    let err = error_for(&format!("{}{}{}", ok(1), ok(2), ok(4)));
    assert!(err.contains("no prediction for 1 of the 4 records") && err.contains("(lines 3)"), "{err}");

    let err = error_for(&format!("{all}{}", ok(2)));
    assert!(err.contains("p.jsonl:5: a second prediction for the record at line 2 of"), "{err}");
    assert!(err.contains("(the first is at line 2)"), "{err}");

    let err = error_for(&format!("{all}{}", ok(9)));
    assert!(err.contains("p.jsonl:5: its subject_id is not that of any record in"), "{err}");

    let err = error_for(&format!("{}\n{}{}", ok(1), "{\"subject_id\": 2, \"probabilities\": [0.1, 0.2]}\n", ok(3)));
    assert!(err.contains("p.jsonl:3: expected 4 probabilities") && err.contains("found 2"), "{err}");

    let err = error_for(&format!("{}{}", ok(1), "{\"subject_id\": 2, \"probabilities\": [0.1, -0.2, 0.3, 0.4]}\n"));
    assert!(err.contains("p.jsonl:2: probability 1 (0-based) is -0.2"), "{err}");

    let err = error_for(&format!("{}{}", ok(1), "{\"subject_id\": 2, \"probabilities\": [0.1, 0.2, 0.3 0.4]}\n"));
    assert!(err.contains("p.jsonl:2: column "), "{err}");
}

#[test]
fn frequency_baseline_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (vocab, ddi, test, _) = hand_example();
    // Training labels: A in 3 of 4, B in 1, C in 2, D in 0 → scores [0.75, 0.25, 0.5, 0.0].
    let train =
        vec![record(10, 1, &["A", "C"]), record(11, 2, &["A"]), record(12, 1, &["A", "B", "C"]), record(13, 3, &[])];
    let data = dir.path().join("data");
    write_data(&data, &vocab, Some(&ddi), &[("train", &train), ("test", &test)]);
    let out = dir.path().join("eval");
    let a = EvalArgs {
        data: Some(data),
        baseline: Some(leader::eval::baseline::Baseline::Frequency),
        out: Some(out.clone()),
        rounds: Some(0),
        ..Default::default()
    };
    run(&a).unwrap();
    let report = MetricsReport::load(&out.join("metrics.json")).unwrap();
    assert_eq!(report.model_kind.as_deref(), Some("baseline:frequency"));
    // p > 0.3 predicts {A, C} for everyone. Jaccard: r1 {A,B}: 1/3; r2 {C}: 1/2; r3 {B,D}: 0;
    // r4 {A,C,D}: 2/3. PRAUC (ranking A, C, B, D): r1 (1 + 2/3)/2, r2 1/2, r3 (1/3 + 2/4)/2, r4 (1 + 1 + 3/4)/3.
    let g = report.group("overall").unwrap();
    let jaccard = (1.0 / 3.0 + 0.5 + 0.0 + 2.0 / 3.0) / 4.0;
    let prauc = ((1.0 + 2.0 / 3.0) / 2.0 + 0.5 + (1.0 / 3.0 + 0.5) / 2.0 + 2.75 / 3.0) / 4.0;
    assert!((g.get(Metric::Jaccard).unwrap().value - jaccard).abs() < 1e-12);
    assert!((g.get(Metric::Prauc).unwrap().value - prauc).abs() < 1e-12);
    // {A, C} holds no interacting pair.
    assert_eq!(g.get(Metric::DdiRate).unwrap().value, 0.0);
}

#[test]
fn compare_puts_runs_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (data, predictions) = hand_setup(dir.path());
    let student_out = dir.path().join("student");
    run(&args(&data, &predictions, &student_out)).unwrap();
    std::fs::write(leader::io::output::sidecar_path(&predictions), "model_kind = \"teacher\"\n").unwrap();
    let teacher_out = dir.path().join("teacher");
    run(&args(&data, &predictions, &teacher_out)).unwrap();
    let table_path = dir.path().join("compare.md");
    let a = EvalArgs {
        compare: vec![teacher_out.join("metrics.json"), student_out.join("metrics.json")],
        out: Some(table_path.clone()),
        ..Default::default()
    };
    run(&a).unwrap();
    let table = std::fs::read_to_string(&table_path).unwrap();
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows[0], "| Model | PRAUC | Jaccard | F1 | DDI | #Meds |");
    assert!(rows[1].starts_with("| teacher | ") && rows[2].starts_with("| student | "), "{table}");
    // Cells are mean ± std of the rounds, as in metrics.json.
    let student = MetricsReport::load(&student_out.join("metrics.json")).unwrap();
    let prauc = student.group("overall").unwrap().get(Metric::Prauc).unwrap();
    let cell = format!("{:.4} ± {:.4}", prauc.mean.unwrap(), prauc.std.unwrap());
    assert!(rows[2].contains(&cell), "{} lacks {cell}", rows[2]);
    assert!(leader::io::output::sidecar_path(&table_path).is_file());

    let mut named = a.clone();
    named.labels = vec!["LEADER(T)".into(), "a|b".into()];
    named.group = Some("multi".into());
    named.out = None;
    run(&named).unwrap();
    named.labels.pop();
    let err = run(&named).unwrap_err().to_string();
    assert!(err.contains("--labels gives 1 names for 2 --compare files"), "{err}");
    named.labels.push("x".into());
    named.group = Some("nobody".into());
    assert!(run(&named).unwrap_err().to_string().contains("--group \"nobody\""));
}

#[test]
fn table_escapes_labels_and_shows_missing_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (data, predictions) = hand_setup(dir.path());
    let out = dir.path().join("x");
    run(&args(&data, &predictions, &out)).unwrap();
    let report = MetricsReport::load(&out.join("metrics.json")).unwrap();
    let table = leader::eval::table::compare_table(&[("a|b".into(), report.clone())], "prior_visits_2");
    assert!(table.contains("| a\\|b | – | – | – | – | – |"), "{table}");
    let single = leader::eval::table::compare_table(&[("S".into(), report)], "single");
    // r1 alone: PRAUC 1 in every round that holds it → 1.0000 ± 0.0000.
    assert!(single.contains("| S | 1.0000 ± 0.0000 |"), "{single}");
}
