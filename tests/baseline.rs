//! `leader train-baseline`: the LR baseline's objective gradient, its skill against the frequency
//! baseline, scoring through `leader predict` (checked against the saved weights by hand), and
//! bit-identical resume.

mod student_support;

use candle_core::{DType, Device, Tensor, Var};
use leader::baseline::lr::objective;
use leader::baseline::{train_baseline, BaselineKind, TrainBaselineArgs};
use leader::config::ConfigArgs;
use leader::data::record::Record;
use leader::eval::metrics::average_precision;
use leader::nn::gradcheck;
use leader::nn::rng::TensorRng;
use leader::predict::{PredictArgs, PredictFormat};
use std::path::Path;
use student_support::*;

/// The scaled scikit-learn objective (mean BCE + ‖W‖²/(2·C·N·M)) has the gradient candle computes.
#[test]
fn lr_objective_gradients_match_finite_differences() {
    let mut rng = TensorRng::new(3);
    let weight = Var::from_tensor(&rng.normal((4, 6), 0.0, 0.5, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let bias = Var::from_tensor(&rng.normal(4, 0.0, 0.5, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let x =
        Tensor::new(&[[1f64, 0., 1., 0., 0., 1.], [0., 1., 0., 0., 1., 0.], [1., 1., 0., 1., 0., 0.]], &Device::Cpu)
            .unwrap();
    let y = Tensor::new(&[[1f64, 0., 0., 1.], [0., 1., 0., 0.], [1., 1., 1., 0.]], &Device::Cpu).unwrap();
    let vars = [("weight".to_string(), weight.clone()), ("bias".to_string(), bias.clone())];
    let loss = || objective(weight.as_tensor(), bias.as_tensor(), &x, &y, 0.7, 3);
    let reports = gradcheck::check(&vars, loss, 1e-6, 12).unwrap();
    gradcheck::assert_close(&reports, 1e-6).unwrap();
}

fn args(data: &Path, out: &Path, epochs: usize) -> TrainBaselineArgs {
    TrainBaselineArgs {
        kind: Some(BaselineKind::Lr),
        data: Some(data.to_path_buf()),
        run: leader::io::output::RunArgs { out: Some(out.to_path_buf()), ..Default::default() },
        epochs: Some(epochs),
        config: ConfigArgs { config: None, set: vec!["train.batch_size=32".into(), "train.lr=0.05".into()] },
        ..Default::default()
    }
}

fn predict(run: &Path, data: &Path, out: &Path) -> Vec<(u64, Vec<f32>)> {
    let args = PredictArgs {
        model: Some(run.to_path_buf()),
        teacher: None,
        data: Some(data.to_path_buf()),
        split: Some("test".into()),
        records: None,
        out: out.to_path_buf(),
        format: PredictFormat::Jsonl,
        top_k: 3,
        batch_size: None,
        device: leader::nn::device::DeviceSpec::Cpu,
        overwrite: true,
    };
    leader::predict::run(&args).unwrap();
    let sidecar = std::fs::read_to_string(leader::io::output::sidecar_path(out)).unwrap();
    assert!(sidecar.contains("model_kind = \"baseline\""), "{sidecar}");
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = v["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();
            (v["subject_id"].as_u64().unwrap(), p)
        })
        .collect()
}

fn mean_prauc(records: &[Record], probs: &[Vec<f32>]) -> f64 {
    let total: f64 = records
        .iter()
        .zip(probs)
        .map(|(r, p)| {
            let truth: Vec<bool> = (0..p.len()).map(|m| r.labels.contains(&format!("M{m}"))).collect();
            average_precision(&truth, p)
        })
        .sum();
    total / records.len() as f64
}

/// On a cohort whose drugs follow from one diagnosis, LR far outscores the label-frequency ranking;
/// `leader predict` gives sigmoid(W·x + b) of the saved weights, computed here by hand.
#[test]
fn lr_beats_the_frequency_baseline_and_predicts_from_its_saved_weights() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(8, 60, 5);
    let (train, _) = kd_cohort(1, 200, false);
    let (valid, _) = kd_cohort(2, 60, false);
    let (test, _) = kd_cohort(3, 80, false);
    let data = dir.path().join("data");
    write_data_dir(&data, &v, &train, &valid, &test);
    let run = dir.path().join("lr");
    let summary = train_baseline(&args(&data, &run, 15)).unwrap();
    assert_eq!(summary.epochs_done, 15);
    let scored = predict(&run, &data, &dir.path().join("test.jsonl"));
    assert_eq!(
        scored.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        test.iter().map(|r| r.subject_id).collect::<Vec<_>>()
    );
    let probs: Vec<Vec<f32>> = scored.into_iter().map(|(_, p)| p).collect();

    let mut counts = [0f32; 8];
    for r in &train {
        for v in &r.visits {
            v.medications.iter().for_each(|m| counts[m[1..].parse::<usize>().unwrap()] += 1.0);
        }
    }
    let frequency = mean_prauc(&test, &vec![counts.to_vec(); test.len()]);
    let lr = mean_prauc(&test, &probs);
    assert!(lr > frequency + 0.3, "LR test PRAUC {lr:.4}, frequency {frequency:.4}");

    let weights = candle_core::safetensors::load(run.join("model.safetensors"), &Device::Cpu).unwrap();
    let (w, b): (Vec<Vec<f32>>, Vec<f32>) = (weights["weight"].to_vec2().unwrap(), weights["bias"].to_vec1().unwrap());
    for (record, p) in test.iter().zip(&probs).take(10) {
        let visit = record.visits.last().unwrap();
        let mut inputs: Vec<usize> = visit.diagnoses.iter().map(|d| d[1..].parse().unwrap()).collect();
        inputs.extend(visit.procedures.iter().map(|c| 60 + c[1..].parse::<usize>().unwrap()));
        for m in 0..8 {
            let z = b[m] + inputs.iter().map(|&j| w[m][j]).sum::<f32>();
            let expected = 1.0 / (1.0 + (-z).exp());
            assert!((expected - p[m]).abs() < 1e-5, "M{m}: {expected} by hand, {} predicted", p[m]);
        }
    }
}

/// Two epochs, then `--resume` to five, ends with the bytes of five epochs in one go.
#[test]
fn resumed_lr_training_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let v = vocab(6, 20, 8);
    let data = dir.path().join("data");
    write_data_dir(&data, &v, &random_records(1, 60, &v), &random_records(2, 20, &v), &random_records(3, 20, &v));
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    train_baseline(&args(&data, &straight, 5)).unwrap();
    train_baseline(&args(&data, &split, 2)).unwrap();
    let run = leader::io::output::RunArgs { resume: Some(split.clone()), ..Default::default() };
    let resumed = TrainBaselineArgs { run, epochs: Some(5), ..Default::default() };
    assert_eq!(train_baseline(&resumed).unwrap().epochs_done, 5);
    for file in ["model.safetensors", "checkpoint.safetensors", "train_log.jsonl", "baseline.json"] {
        assert!(
            std::fs::read(straight.join(file)).unwrap() == std::fs::read(split.join(file)).unwrap(),
            "{file} differs"
        );
    }
}
