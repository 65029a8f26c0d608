//! Online KD (`distill --teacher RUN`) against offline KD from `export-hidden`'s cache of the same
//! tiny teacher: the same targets, the same trained student, and clear errors for teachers that do
//! not fit the data or the run.

mod student_support;

use candle_core::{DType, Device, Tensor};
use leader::config::ConfigArgs;
use leader::config::TrainArgs;
use leader::data::record::Record;
use leader::data::vocab::Vocab;
use leader::io::output::FolderArgs;
use leader::nn::gradcheck::max_abs_diff;
use leader::student::checkpoint;
use leader::student::config::StudentConfig;
use leader::student::kd::KdTarget;
use leader::student::train::{run_distill, train, DistillArgs, TeacherSource, TrainOptions};
use leader::teacher::export::{export_hidden, ExportHiddenArgs};
use leader::teacher::init_model::{init_model, InitModelArgs};
use leader::teacher::train::{train_teacher, TrainTeacherArgs};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use student_support::*;

/// Gives each record a teacher prompt naming its current diagnoses and procedures.
fn with_prompts(mut records: Vec<Record>) -> Vec<Record> {
    for r in &mut records {
        let last = r.visits.last().unwrap();
        r.prompt = format!(
            "The patient has {} times ICU visits. In this visit, he has diagnosis: {}; procedures: {}. Then, the patient should be prescribed: ",
            r.visits.len() - 1,
            last.diagnoses.join(", "),
            last.procedures.join(", ")
        );
    }
    records
}

/// A data folder (40 train records) and a tiny teacher trained on it for a few steps.
fn data_and_teacher(dir: &Path) -> (PathBuf, PathBuf, Vocab) {
    let v = vocab(6, 20, 8);
    let data = dir.join("data");
    let split = |seed, n| with_prompts(random_records(seed, n, &v));
    write_data_dir(&data, &v, &split(1, 40), &split(2, 12), &split(3, 12));
    let base = dir.join("base");
    let init = InitModelArgs {
        shape: leader::teacher::llama_config::ModelShape::Tiny,
        output: FolderArgs { out: base.clone(), overwrite: false },
        seed: 7,
        data: Some(data.clone()),
        tokenizer_vocab: 300,
        name_tokens: false,
    };
    init_model(&init).unwrap();
    let teacher = dir.join("teacher");
    let sets = [
        "train.micro_batch=8",
        "train.grad_accum=1",
        "train.lr=5e-3",
        "train.eval_every=3",
        "train.checkpoint_every=3",
    ];
    train_teacher(&TrainTeacherArgs {
        data: Some(data.clone()),
        model: Some(base.to_str().unwrap().into()),
        run: leader::io::output::RunArgs { out: Some(teacher.clone()), ..Default::default() },
        max_steps: Some(3),
        max_tokens: Some(160),
        config: ConfigArgs { config: None, set: sets.iter().map(|s| s.to_string()).collect() },
        ..Default::default()
    })
    .unwrap();
    (data, teacher, v)
}

fn export(teacher: &Path, data: &Path, out: &Path) {
    let args = ExportHiddenArgs {
        teacher: teacher.to_path_buf(),
        data: data.to_path_buf(),
        split: "train".into(),
        out: out.to_path_buf(),
        f16: false,
        save_input_ids: false,
        batch_size: 8,
        device: leader::nn::device::DeviceSpec::Cpu,
        dtype: leader::nn::device::Precision::F32,
        overwrite: false,
    };
    export_hidden(&args).unwrap();
}

fn online(teacher: &Path) -> TeacherSource {
    TeacherSource::Online {
        run: teacher.to_path_buf(),
        device: leader::nn::device::DeviceSpec::Cpu,
        dtype: leader::nn::device::Precision::F32,
    }
}

fn config() -> StudentConfig {
    let mut c = StudentConfig::default_config();
    (c.model.hidden, c.model.ffn, c.train.epochs, c.train.lr, c.loss.alpha) = (32, 64, 1, 5e-3, 1.0);
    c
}

fn options(data: &Path, run: &Path, teacher: TeacherSource, resume: bool) -> TrainOptions {
    TrainOptions {
        data_dir: data.to_path_buf(),
        run_dir: run.to_path_buf(),
        config: config(),
        teacher,
        resume,
        overwrite: false,
    }
}

fn weights(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

#[test]
fn online_and_cached_teachers_give_the_same_targets_and_the_same_student() {
    let dir = tempfile::tempdir().unwrap();
    let (data, teacher, v) = data_and_teacher(dir.path());
    let cache = dir.path().join("train.hidden.safetensors");
    export(&teacher, &data, &cache);

    // One batch in an order unlike the export's (reversed, a subset): row i of both must be the
    // teacher vector of subject i.
    let train_set = leader::data::record::read_records(&data.join("train.jsonl")).unwrap();
    let all: Vec<u64> = train_set.iter().map(|r| r.subject_id).collect();
    let batch: Vec<u64> = all.iter().rev().take(16).copied().collect();
    // Prompts of different token lengths, so both routes pad (in different batch compositions).
    let t = leader::teacher::Teacher::load(&teacher, &Device::Cpu, DType::F32).unwrap();
    let lengths: std::collections::BTreeSet<usize> =
        train_set.iter().map(|r| t.model.tokenizer.encode(&r.prompt).unwrap().len()).collect();
    assert!(lengths.len() > 3, "{lengths:?}");
    for standardise in [false, true] {
        let offline = KdTarget::from_cache(&cache, &all, standardise).unwrap();
        let live = KdTarget::online(&teacher, &Device::Cpu, DType::F32, &data, &v, standardise).unwrap();
        assert_eq!((offline.hidden_size(), live.hidden_size()), (Some(64), Some(64)));
        let a = offline.targets(&batch, DType::F32, &Device::Cpu).unwrap().unwrap();
        let b = live.targets(&batch, DType::F32, &Device::Cpu).unwrap().unwrap();
        assert_eq!(b.dims(), &[16, 64]);
        let diff = max_abs_diff(&a, &b).unwrap();
        eprintln!("online vs cached targets (standardised: {standardise}): max |diff| {diff:e}");
        assert!(diff < if standardise { 1e-4 } else { 1e-5 }, "targets differ by {diff}");
        // The comparison means something: the rows are distinct, non-trivial vectors.
        let (r0, r1) = (b.get(0).unwrap(), b.get(1).unwrap());
        assert!(max_abs_diff(&r0, &r1).unwrap() > 1e-3 && max_abs_diff(&r0, &r0.zeros_like().unwrap()).unwrap() > 1e-2);
        // Standardised targets of the whole split: each dimension has mean 0 and variance 1 (checked
        // in plain f64 against the raw cache's rows).
        if standardise {
            let raw: Vec<Vec<f32>> =
                leader::teacher::cache::TeacherCache::load(&cache).unwrap().hidden.to_vec2().unwrap();
            let z: Vec<Vec<f32>> = offline.targets(&all, DType::F32, &Device::Cpu).unwrap().unwrap().to_vec2().unwrap();
            let n = raw.len() as f64;
            for d in 0..64 {
                let mean = raw.iter().map(|r| f64::from(r[d])).sum::<f64>() / n;
                let std = (raw.iter().map(|r| (f64::from(r[d]) - mean).powi(2)).sum::<f64>() / n).sqrt();
                for (row, zrow) in raw.iter().zip(&z) {
                    let expected = (f64::from(row[d]) - mean) / std;
                    assert!((f64::from(zrow[d]) - expected).abs() < 1e-4, "dimension {d}: {} vs {expected}", zrow[d]);
                }
            }
        }
    }

    // One epoch each, the same seed: the same weights up to float summation order.
    let (run_cache, run_online) = (dir.path().join("kd-cache"), dir.path().join("kd-online"));
    let s1 = train(&options(&data, &run_cache, TeacherSource::Cache(cache.clone()), false)).unwrap();
    let s2 = train(&options(&data, &run_online, online(&teacher), false)).unwrap();
    assert_eq!(s1.epochs_done, 1);
    assert!((s1.best_valid_prauc - s2.best_valid_prauc).abs() < 1e-4, "{s1:?} vs {s2:?}");
    let (wa, wb) =
        (weights(&run_cache.join(checkpoint::CHECKPOINT)), weights(&run_online.join(checkpoint::CHECKPOINT)));
    assert_eq!(wa.len(), wb.len());
    // The KD projection (2d -> H = 64) was trained in both.
    assert!(wa.contains_key("model.train_heads.kd_projector.weight"), "{:?}", wa.keys());
    let worst = wa.iter().map(|(k, t)| (max_abs_diff(t, &wb[k]).unwrap(), k)).fold((0.0, ""), |m, (d, k)| {
        if d > m.0 {
            (d, k.as_str())
        } else {
            m
        }
    });
    eprintln!("online vs cached KD, one epoch: largest weight difference {:e} ({})", worst.0, worst.1);
    assert!(worst.0 < 1e-4, "largest weight difference {} in {}", worst.0, worst.1);

    // Each run's config records its teacher, and resuming the online run from its saved config works.
    let saved = |run: &Path| -> StudentConfig {
        leader::config::load(&std::fs::read_to_string(run.join("config.toml")).unwrap(), &ConfigArgs::default())
            .unwrap()
    };
    let (tc, to) = (saved(&run_cache).teacher, saved(&run_online).teacher);
    assert_eq!((tc.cache.as_path(), tc.run.as_os_str().is_empty()), (cache.as_path(), true));
    assert_eq!((to.run.as_path(), to.cache.as_os_str().is_empty()), (teacher.as_path(), true));
    assert_eq!((to.device, to.dtype), (leader::nn::device::DeviceSpec::Cpu, leader::nn::device::Precision::F32));
    let resume = DistillArgs {
        common: TrainArgs {
            // The run's own data folder: resume needs no --data.
            data: None,
            run: leader::io::output::RunArgs { resume: Some(run_online.clone()), ..Default::default() },
            epochs: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    run_distill(&resume).unwrap();
    let log: Vec<leader::student::train::EpochLog> =
        leader::io::read_jsonl(&run_online.join(checkpoint::TRAIN_LOG)).unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e.train_kd.is_some()));
}

#[test]
fn teachers_that_do_not_fit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (data, teacher, _) = data_and_teacher(dir.path());

    // Neither flag: distill has no teacher.
    let run = leader::io::output::RunArgs { out: Some(dir.path().join("none")), ..Default::default() };
    let common = TrainArgs { data: Some(data.clone()), run, ..Default::default() };
    let err = run_distill(&DistillArgs { common, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("--teacher RUN") && err.contains("--teacher-cache FILE"), "{err}");

    // Both flags: refused by the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leader"))
        .args(["distill", "--data", "d", "--out", "o", "--teacher", "t", "--teacher-cache", "c"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cannot be used with"), "{stderr}");

    // Data with another vocabulary than the teacher's (one medication more).
    let other = dir.path().join("other");
    let v7 = vocab(7, 20, 8);
    let records = with_prompts(random_records(4, 8, &v7));
    write_data_dir(&other, &v7, &records, &records, &records);
    let err = train(&options(&other, &dir.path().join("x"), online(&teacher), false)).unwrap_err();
    assert!(format!("{err:#}").contains("differs from the teacher's"), "{err:#}");

    // Records without a prompt cannot be distilled online; the error names the line.
    let bare = dir.path().join("bare");
    let v = vocab(6, 20, 8);
    let mut records = with_prompts(random_records(5, 6, &v));
    records[2].prompt.clear();
    write_data_dir(&bare, &v, &records, &records, &records);
    let err = train(&options(&bare, &dir.path().join("y"), online(&teacher), false)).unwrap_err().to_string();
    assert!(err.contains("train.jsonl:3") && err.contains("empty `prompt`"), "{err}");

    // A run distilled from this teacher (H = 64) cannot resume with a teacher of another size.
    let run = dir.path().join("run");
    train(&options(&data, &run, online(&teacher), false)).unwrap();
    let narrow = dir.path().join("narrow.safetensors");
    let train_set = leader::data::record::read_records(&data.join("train.jsonl")).unwrap();
    write_cache(&narrow, &train_set.iter().map(|r| (r.subject_id, [0.5f32; 8])).collect::<Vec<_>>());
    let err = train(&options(&data, &run, TeacherSource::Cache(narrow), true)).unwrap_err().to_string();
    assert!(err.contains("hidden size Some(64)") && err.contains("gives Some(8)"), "{err}");
}
