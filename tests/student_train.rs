//! Training, distillation, resume and scoring of the student end to end on small synthetic cohorts.

mod student_support;

use leader::predict::{PredictArgs, PredictFormat};
use leader::student::checkpoint;
use leader::student::config::StudentConfig;
use leader::student::train::{train, EpochLog, TeacherSource, TrainOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use student_support::*;

/// A small, fast model: d = 32, light dropout.
fn small_config(epochs: usize) -> StudentConfig {
    let mut c = StudentConfig::default_config();
    c.model.hidden = 32;
    c.model.ffn = 64;
    c.model.hidden_dropout = 0.1;
    c.model.attention_dropout = 0.1;
    c.train.epochs = epochs;
    c.train.lr = 5e-3;
    c
}

fn options(data: &Path, run: &Path, config: StudentConfig, teacher: TeacherSource, resume: bool) -> TrainOptions {
    TrainOptions { data_dir: data.to_path_buf(), run_dir: run.to_path_buf(), config, teacher, resume, overwrite: false }
}

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .unwrap()
        .into_iter()
        .filter(|(_, t)| t.dtype() == candle_core::DType::F32)
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// On the KD cohort the teacher vector names the class that the noisy training labels only hint at;
/// with the same seed, epochs and everything else, distillation must reach a clearly better
/// validation PRAUC than training without the teacher.
#[test]
fn distillation_beats_training_without_the_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(8, 60, 5);
    let (train_set, teacher) = kd_cohort(1, 160, true);
    let (valid_set, _) = kd_cohort(2, 120, false);
    let data = dir.path().join("data");
    write_data_dir(&data, &v, &train_set, &valid_set, &valid_set);
    let cache = dir.path().join("teacher.safetensors");
    write_cache(&cache, &teacher);
    let mut cfg = small_config(8);
    cfg.train.patience = 100;
    cfg.loss.alpha = 1.0;
    let plain = train(&options(&data, &dir.path().join("plain"), cfg.clone(), TeacherSource::None, false)).unwrap();
    let kd = train(&options(&data, &dir.path().join("kd"), cfg, TeacherSource::Cache(cache), false)).unwrap();
    eprintln!("valid PRAUC: without teacher {:.4}, distilled {:.4}", plain.best_valid_prauc, kd.best_valid_prauc);
    assert!(kd.best_valid_prauc > plain.best_valid_prauc + 0.1, "distill {kd:?} vs plain {plain:?}");
    // The KD run logs its KD loss; the plain run does not.
    let log: Vec<EpochLog> = leader::io::read_jsonl(&dir.path().join("kd").join(checkpoint::TRAIN_LOG)).unwrap();
    assert_eq!(log.len(), 8);
    assert!(log.iter().all(|e| e.train_kd.is_some()));
    assert!(log[7].train_kd.unwrap() < log[0].train_kd.unwrap(), "the KD loss falls: {log:?}");
}

/// A cohort where the teacher knows a rule the labels never show. Condition c in 0..4 (drugs `M{2c}`,
/// `M{2c+1}`) is coded by a common diagnosis `D{c}` or by a rare synonym `D{10+c}`, among two noise
/// diagnoses (`D40..D59`). Common-code patients carry both drugs; the rare-code patients carry none
/// when `unrecorded` (the training split: their prescriptions were not recorded), both otherwise.
/// The teacher vector is the one-hot condition for every patient: it knows what the synonym means.
fn synonym_cohort(
    seed: u64,
    common: usize,
    rare: usize,
    unrecorded: bool,
) -> (Vec<leader::data::record::Record>, Vec<(u64, [f32; 8])>) {
    let mut rng = leader::nn::rng::TensorRng::new(seed);
    let (mut records, mut teacher) = (Vec::new(), Vec::new());
    for s in 0..(common + rare) as u64 {
        let is_rare = s as usize >= common;
        let class = if is_rare { (s as usize - common) % 4 } else { rng.below(4) };
        let mut diags = vec![format!("D{}", if is_rare { 10 + class } else { class })];
        diags.extend((0..2).map(|_| format!("D{}", 40 + rng.below(20))));
        let meds = if is_rare && unrecorded {
            Vec::new()
        } else {
            vec![format!("M{}", 2 * class), format!("M{}", 2 * class + 1)]
        };
        let subject = 9000 + seed * 10_000 + s;
        records.push(record(subject, vec![visit(0, &diags, &[format!("P{}", rng.below(5))], &meds)], "Private"));
        let mut vector = [0f32; 8];
        vector[class] = 1.0;
        teacher.push((subject, vector));
    }
    (records, teacher)
}

/// The rule of [`synonym_cohort`] reaches the student only through the teacher: on rare-code test
/// patients, the distilled student ranks their condition's drugs well and clearly better than the
/// student trained on the labels alone (measured: PRAUC 0.82–0.89 against 0.56–0.67), for three
/// cohorts.
#[test]
fn distillation_carries_a_rule_the_labels_do_not_show() {
    for seed in [1, 5, 9] {
        let dir = tempfile::tempdir().unwrap();
        let v = vocab(8, 60, 5);
        let (train_set, teacher) = synonym_cohort(seed, 240, 20, true);
        let (valid_set, _) = synonym_cohort(seed + 100, 0, 60, false);
        let (test_set, _) = synonym_cohort(seed + 200, 0, 120, false);
        let data = dir.path().join("data");
        write_data_dir(&data, &v, &train_set, &valid_set, &test_set);
        let cache = dir.path().join("teacher.safetensors");
        write_cache(&cache, &teacher);
        let mut cfg = small_config(12);
        cfg.train.patience = 100;
        cfg.loss.alpha = 1.0;
        let test_prauc = |run: &Path, teacher_source: TeacherSource| -> f64 {
            train(&options(&data, run, cfg.clone(), teacher_source, false)).unwrap();
            let out = run.with_extension("test.jsonl");
            let args = PredictArgs { data: Some(data.clone()), split: Some("test".into()), ..predict_args(run, &out) };
            leader::predict::run(&args).unwrap();
            let scored = leader::io::read_jsonl::<leader::eval::predictions::Prediction>(&out).unwrap();
            let ap = test_set.iter().zip(&scored).map(|(record, p)| {
                let truth: Vec<bool> = (0..8).map(|m| record.labels.contains(&format!("M{m}"))).collect();
                leader::eval::metrics::average_precision(&truth, &p.probabilities)
            });
            ap.sum::<f64>() / test_set.len() as f64
        };
        let plain = test_prauc(&dir.path().join("plain"), TeacherSource::None);
        let kd = test_prauc(&dir.path().join("kd"), TeacherSource::Cache(cache));
        eprintln!("seed {seed}: rare-code test PRAUC {plain:.3} without the teacher, {kd:.3} distilled");
        assert!(kd > 0.75 && kd > plain + 0.15, "seed {seed}: without teacher {plain:.3}, distilled {kd:.3}");
    }
}

fn small_data(dir: &Path) -> PathBuf {
    let mut v = vocab(6, 20, 8);
    // Names with a comma and a quote, which the CSV predictions must quote.
    v.medications.iter_mut().for_each(|m| m.name = format!("{}, \"quoted\"", m.name));
    let data = dir.join("data");
    write_data_dir(&data, &v, &random_records(1, 48, &v), &random_records(2, 16, &v), &random_records(3, 40, &v));
    data
}

/// Two epochs, then `--resume` for two more, must end with the same bits as four epochs in one go.
#[test]
fn resume_gives_the_same_weights_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path());
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let mut cfg = small_config(4);
    cfg.train.patience = 100;
    train(&options(&data, &straight, cfg.clone(), TeacherSource::None, false)).unwrap();
    let mut first = cfg.clone();
    first.train.epochs = 2;
    let s = train(&options(&data, &split, first.clone(), TeacherSource::None, false)).unwrap();
    assert_eq!(s.epochs_done, 2);
    // A fresh start into an existing run is refused.
    let err = train(&options(&data, &split, first, TeacherSource::None, false)).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    train(&options(&data, &split, cfg, TeacherSource::None, true)).unwrap();
    for file in [checkpoint::CHECKPOINT, checkpoint::BEST_MODEL] {
        let (a, b) = (tensors(&straight.join(file)), tensors(&split.join(file)));
        assert!(a.len() > 20);
        assert_eq!(a, b, "{file} differs");
    }
    let log = |run: &Path| -> Vec<(usize, f64, f64)> {
        leader::io::read_jsonl::<EpochLog>(&run.join(checkpoint::TRAIN_LOG))
            .unwrap()
            .iter()
            .map(|e| (e.epoch, e.train_loss, e.valid_prauc))
            .collect()
    };
    assert_eq!(log(&straight), log(&split));
    assert_eq!(log(&split).len(), 4);
}

#[test]
fn bad_teacher_caches_are_clear_errors_and_a_nan_loss_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(8, 60, 5);
    let (train_set, teacher) = kd_cohort(1, 24, true);
    let (valid_set, _) = kd_cohort(2, 8, false);
    let data = dir.path().join("data");
    write_data_dir(&data, &v, &train_set, &valid_set, &valid_set);
    let run_with = |name: &str, rows: &[(u64, [f32; 8])], resume: bool, epochs: usize| {
        let cache = dir.path().join(format!("{name}.safetensors"));
        write_cache(&cache, rows);
        train(&options(&data, &dir.path().join("run"), small_config(epochs), TeacherSource::Cache(cache), resume))
    };
    let missing = run_with("missing", &teacher[1..], false, 1).unwrap_err().to_string();
    assert!(missing.contains("1 of 24 training records have no teacher vector"), "{missing}");
    let mut extra = teacher.clone();
    extra.push((1, [0.0; 8]));
    let count = run_with("extra", &extra, false, 1).unwrap_err().to_string();
    assert!(count.contains("25 teacher vectors for 24 training records"), "{count}");

    run_with("good", &teacher, false, 1).unwrap();
    let before = std::fs::read(dir.path().join("run").join(checkpoint::CHECKPOINT)).unwrap();
    let mut poisoned = teacher.clone();
    poisoned.iter_mut().for_each(|(_, v)| v[0] = f32::NAN);
    let err = run_with("nan", &poisoned, true, 2).unwrap_err().to_string();
    assert!(err.contains("the loss is NaN") && err.contains("after epoch 1"), "{err}");
    assert_eq!(before, std::fs::read(dir.path().join("run").join(checkpoint::CHECKPOINT)).unwrap());
}

fn predict_args(run: &Path, out: &Path) -> PredictArgs {
    PredictArgs {
        model: Some(run.to_path_buf()),
        teacher: None,
        data: None,
        split: None,
        records: None,
        out: out.to_path_buf(),
        format: PredictFormat::Jsonl,
        top_k: 3,
        batch_size: None,
        device: leader::nn::device::DeviceSpec::Cpu,
        overwrite: false,
    }
}

#[test]
fn predict_scores_any_order_and_chunking_identically_and_refuses_other_vocabularies() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path());
    let run = dir.path().join("run");
    train(&options(&data, &run, small_config(1), TeacherSource::None, false)).unwrap();

    let out = dir.path().join("test.jsonl");
    let args = PredictArgs { data: Some(data.clone()), split: Some("test".into()), ..predict_args(&run, &out) };
    leader::predict::run(&args).unwrap();
    let by_split = leader::io::read_jsonl::<leader::eval::predictions::Prediction>(&out).unwrap();
    assert_eq!(by_split.len(), 40);
    assert!(by_split
        .iter()
        .all(|p| p.probabilities.len() == 6 && p.probabilities.iter().all(|x| (0.0..=1.0).contains(x))));
    let sidecar = std::fs::read_to_string(leader::io::output::sidecar_path(&out)).unwrap();
    assert!(sidecar.contains("model_kind = \"student\""), "{sidecar}");

    // The same records reversed, in a folder without a vocab.json, scored one record per batch.
    let mut records = leader::data::record::read_records(&data.join("test.jsonl")).unwrap();
    records.reverse();
    let elsewhere = dir.path().join("cohort");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_jsonl(&elsewhere.join("records.jsonl"), &records);
    let out2 = dir.path().join("reversed.jsonl");
    let args2 = PredictArgs {
        records: Some(elsewhere.join("records.jsonl")),
        batch_size: Some(1),
        ..predict_args(&run, &out2)
    };
    leader::predict::run(&args2).unwrap();
    let mut reversed = leader::io::read_jsonl::<leader::eval::predictions::Prediction>(&out2).unwrap();
    assert_eq!(reversed.first().unwrap().subject_id, records[0].subject_id);
    reversed.reverse();
    for (a, b) in by_split.iter().zip(&reversed) {
        assert_eq!(a.subject_id, b.subject_id);
        for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
            assert!((x - y).abs() < 1e-6, "subject {}: {x} vs {y}", a.subject_id);
        }
    }

    // CSV: the top 3 drugs per record, in decreasing probability, matching the JSON Lines output.
    let csv = dir.path().join("top.csv");
    let args3 = PredictArgs {
        data: Some(data.clone()),
        split: Some("test".into()),
        format: PredictFormat::Csv,
        ..predict_args(&run, &csv)
    };
    leader::predict::run(&args3).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 40 * 3);
    let first = &by_split[0];
    let mut sorted = first.probabilities.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    for (rank, row) in rows[..3].iter().enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], first.subject_id.to_string());
        assert_eq!(fields[1], (rank + 1).to_string());
        let p: f32 = fields.last().unwrap().parse().unwrap();
        assert!((p - sorted[rank]).abs() < 1e-6);
    }
    // A CSV reader gets the names back whole, and each row has the header's five fields.
    let vocabulary = leader::data::vocab::Vocab::load(&data.join("vocab.json")).unwrap();
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["subject_id", "rank", "atc_code", "atc_name", "probability"]);
    for row in reader.records() {
        let row = row.unwrap();
        let entry = vocabulary.medications.iter().find(|m| m.code == row[2]).unwrap();
        assert_eq!((row.len(), &row[3]), (5, entry.name.as_str()));
        assert!(entry.name.contains(", \"quoted\""));
    }

    // A data folder with another vocabulary is refused, naming both fingerprints.
    let other = dir.path().join("other");
    let v2 = vocab(7, 20, 8);
    write_data_dir(&other, &v2, &[], &[], &random_records(4, 3, &v2));
    let args4 = PredictArgs {
        data: Some(other),
        split: Some("test".into()),
        ..predict_args(&run, &dir.path().join("x.jsonl"))
    };
    let err = leader::predict::run(&args4).unwrap_err().to_string();
    assert!(err.contains("is not the vocabulary the model was trained with"), "{err}");
}
