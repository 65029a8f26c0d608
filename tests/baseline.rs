//! `leader train-baseline`: every baseline's training loss against finite differences, its skill
//! against the frequency ranking on a cohort whose drugs it should learn, scoring through
//! `leader predict` equal to what training validated (LR's also by hand from the saved weights),
//! and bit-identical resume.

mod student_support;

use candle_core::{DType, Device, Tensor, Var};
use leader::baseline::lr::objective;
use leader::baseline::model::{Model, Step};
use leader::baseline::{train_baseline, BaselineInfo, BaselineKind, TrainBaselineArgs};
use leader::config::TrainArgs;
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
    args_of(BaselineKind::Lr, data, out, epochs)
}

fn args_of(kind: BaselineKind, data: &Path, out: &Path, epochs: usize) -> TrainBaselineArgs {
    let train = TrainArgs {
        data: Some(data.to_path_buf()),
        run: leader::io::output::RunArgs { out: Some(out.to_path_buf()), ..Default::default() },
        epochs: Some(epochs),
        batch_size: Some(32),
        lr: Some(0.05),
        ..Default::default()
    };
    TrainBaselineArgs { kind: Some(kind), train }
}

fn predict(run: &Path, data: &Path, out: &Path) -> Vec<(u64, Vec<f32>)> {
    predict_split(run, data, "test", out)
}

fn predict_split(run: &Path, data: &Path, split: &str, out: &Path) -> Vec<(u64, Vec<f32>)> {
    let args = PredictArgs {
        model: Some(run.to_path_buf()),
        teacher: None,
        data: Some(data.to_path_buf()),
        split: Some(split.into()),
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
    let resumed = TrainBaselineArgs { kind: None, train: TrainArgs { run, epochs: Some(5), ..Default::default() } };
    assert_eq!(train_baseline(&resumed).unwrap().epochs_done, 5);
    for file in ["model.safetensors", "checkpoint.safetensors", "train_log.jsonl", "baseline.json"] {
        assert!(
            std::fs::read(straight.join(file)).unwrap() == std::fs::read(split.join(file)).unwrap(),
            "{file} differs"
        );
    }
}

/// The baselines that read a patient's history.
const SEQUENCE_MODELS: [BaselineKind; 4] =
    [BaselineKind::Retain, BaselineKind::Gamenet, BaselineKind::Micron, BaselineKind::Transformer];

/// `M`'s training loss (dropout off) has the gradient candle computes, for every variable, on
/// histories of one to four visits.
fn check_loss_gradients<M: Model>(dims: &str) {
    let v = vocab(6, 12, 5);
    let records = random_records(7, 5, &v);
    let dims: M::Dims = toml::from_str(dims).unwrap();
    let params = leader::nn::params::SeededVarMap::new(3);
    let buffers = M::buffers(
        &dims,
        &leader::baseline::model::TrainingData { vocab: &v, train: &records, ddi: Some(&ddi_pairs()) },
    )
    .unwrap();
    let model = M::new(&dims, &v, &buffers, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let histories: Vec<&[leader::data::record::Visit]> = records.iter().map(|r| r.visits.as_slice()).collect();
    assert!(histories.iter().any(|h| h.len() == 1) && histories.iter().any(|h| h.len() > 2));
    let mut y = vec![0f64; records.len() * 6];
    for (i, r) in records.iter().enumerate() {
        r.labels.iter().for_each(|m| y[i * 6 + m[1..].parse::<usize>().unwrap()] = 1.0);
    }
    let labels = Tensor::from_vec(y, (records.len(), 6), &Device::Cpu).unwrap();
    let loss = || model.loss(&histories, &labels, &mut Step::deterministic(40, 1));
    let reports = gradcheck::check(&params.named_vars(), loss, 1e-6, 13).unwrap();
    gradcheck::assert_close(&reports, 1e-5).unwrap();
}

#[test]
fn retain_loss_gradients_match_finite_differences() {
    check_loss_gradients::<leader::baseline::retain::Retain>("embedding = 5\ndropout = 0.5");
}

#[test]
fn transformer_loss_gradients_match_finite_differences() {
    check_loss_gradients::<leader::baseline::transformer::Transformer>(
        "embedding = 4\nheads = 2\nlayers = 2\ndropout = 0.5\nattention_dropout = 0.1",
    );
}

/// MICRON's loss, with and without its DDI term (a rate threshold of 1 never counts it).
#[test]
fn micron_loss_gradients_match_finite_differences() {
    for threshold in ["1.0", "0.0"] {
        check_loss_gradients::<leader::baseline::micron::Micron>(&format!(
            "embedding = 4\ndropout = 0.5\nterm_weights = [0.25, 0.25, 0.25, 0.25]\nlast_visit_share = 0.25\n\
             margin_scale = 0.05\nddi_rate_threshold = {threshold}"
        ));
    }
}

/// Both of GAMENet's per-visit losses: with a DDI target of 1 no visit trains on the DDI term; with
/// 0.05, every one of these does (their near-uniform predictions hold an interacting pair, and a
/// deterministic step's draw is 0).
#[test]
fn gamenet_loss_gradients_match_finite_differences() {
    for target in ["1.0", "0.05"] {
        check_loss_gradients::<leader::baseline::gamenet::Gamenet>(&format!(
            "embedding = 4\ndropout = 0.4\ngraph_dropout = 0.3\nddi_in_memory = true\ntarget_ddi = {target}\n\
             temperature = 0.5\ndecay = 0.85\nbce_weight = 0.9\nmargin_weight = 0.01"
        ));
    }
}

/// M0–M2 interact, and M8–M9: in [`history_cohort`], drugs of different chronic conditions, and of
/// different acute ones, never given together, as interacting drugs mostly are not.
fn ddi_pairs() -> leader::data::ddi::DdiPairs {
    leader::data::ddi::DdiPairs { pairs: vec![["M0".into(), "M2".into()], ["M8".into(), "M9".into()]] }
}

/// Where [`history_cohort`] codes the chronic condition.
#[derive(Clone, Copy, PartialEq)]
enum Chronic {
    /// At the first visit only: at a later visit, only the history says which chronic drugs the
    /// patient takes.
    FirstVisit,
    /// At every visit.
    EveryVisit,
}

/// Patients with one to three visits: a chronic condition c (drugs `M{2c}`, `M{2c+1}`, diagnosis
/// `D{c}`) treated at every visit, and at each visit an acute condition a (diagnosis `D{4+a}`,
/// drug `M{8+a}`), among noise diagnoses `D8..D27` and procedures.
fn history_cohort(seed: u64, n: usize, chronic_coded: Chronic) -> Vec<Record> {
    let mut rng = TensorRng::new(seed);
    (0..n as u64)
        .map(|s| {
            let chronic = rng.below(4);
            let visits = (0..1 + rng.below(3) as u64)
                .map(|k| {
                    let acute = rng.below(4);
                    let mut diagnoses = vec![format!("D{}", 4 + acute), format!("D{}", 8 + rng.below(20))];
                    if k == 0 || chronic_coded == Chronic::EveryVisit {
                        diagnoses.push(format!("D{chronic}"));
                    }
                    let meds =
                        [format!("M{}", 2 * chronic), format!("M{}", 2 * chronic + 1), format!("M{}", 8 + acute)];
                    visit(k, &diagnoses, &[format!("P{}", rng.below(5))], &meds)
                })
                .collect();
            record(7000 + seed * 10_000 + s, visits, "Private")
        })
        .collect()
}

/// A data folder of [`history_cohort`]s: (folder, train, test).
fn history_data(dir: &Path, chronic: Chronic) -> (std::path::PathBuf, Vec<Record>, Vec<Record>) {
    let v = vocab(12, 28, 5);
    let (train, test) = (history_cohort(1, 300, chronic), history_cohort(3, 120, chronic));
    let data = dir.join(if chronic == Chronic::FirstVisit { "data-first" } else { "data-every" });
    write_data_dir(&data, &v, &train, &history_cohort(2, 80, chronic), &test);
    ddi_pairs().save(&data.join("ddi.json")).unwrap();
    (data, train, test)
}

/// The label-frequency ranking of the training visits, scored on `test`.
fn frequency_prauc(train: &[Record], test: &[Record], m: usize) -> f64 {
    let mut counts = vec![0f32; m];
    for r in train {
        for v in &r.visits {
            v.medications.iter().for_each(|d| counts[d[1..].parse::<usize>().unwrap()] += 1.0);
        }
    }
    mean_prauc(test, &vec![counts; test.len()])
}

/// Every sequence baseline learns the chronic drugs and the acute one, far above the frequency
/// ranking, on multi-visit patients as on the rest — RETAIN, GAMENet and the Transformer from the
/// history when only the first visit names the chronic condition; MICRON, whose prediction for a
/// visit is built from that visit and its change since the previous one, when every visit names it
/// (told only once, the condition is outside its design: its training asks each visit's own
/// representation for the visit's drugs) —; and what `leader predict` scores from the saved run
/// is what training validated with.
#[test]
fn sequence_baselines_learn_from_the_history_and_score_as_they_validated() {
    let dir = tempfile::tempdir().unwrap();
    for kind in SEQUENCE_MODELS {
        let chronic = if kind == BaselineKind::Micron { Chronic::EveryVisit } else { Chronic::FirstVisit };
        let (data, train, test) = history_data(dir.path(), chronic);
        let frequency = frequency_prauc(&train, &test, 12);
        let multi: Vec<Record> = test.iter().filter(|r| r.visits.len() > 1).cloned().collect();
        let frequency_multi = frequency_prauc(&train, &multi, 12);
        let run = dir.path().join(kind.name());
        train_baseline(&args_of(kind, &data, &run, 30)).unwrap();
        let probs: Vec<Vec<f32>> =
            predict(&run, &data, &dir.path().join("test.jsonl")).into_iter().map(|(_, p)| p).collect();
        let prauc = mean_prauc(&test, &probs);
        assert!(prauc > frequency + 0.3, "{kind:?}: test PRAUC {prauc:.4}, frequency {frequency:.4}");
        let multi_probs: Vec<Vec<f32>> =
            test.iter().zip(&probs).filter(|(r, _)| r.visits.len() > 1).map(|(_, p)| p.clone()).collect();
        let multi_prauc = mean_prauc(&multi, &multi_probs);
        eprintln!("{kind:?}: test PRAUC {prauc:.4} (multi-visit {multi_prauc:.4}), frequency {frequency:.4} ({frequency_multi:.4})");
        assert!(multi_prauc > frequency_multi + 0.3, "{kind:?}: multi-visit test PRAUC {multi_prauc:.4}");

        let info: BaselineInfo = leader::io::read_json(&run.join("baseline.json")).unwrap();
        let valid = leader::data::record::read_records(&data.join("valid.jsonl")).unwrap();
        let scored: Vec<Vec<f32>> =
            predict_split(&run, &data, "valid", &dir.path().join("valid.jsonl")).into_iter().map(|(_, p)| p).collect();
        let rescored = mean_prauc(&valid, &scored);
        assert!((rescored - info.best_valid_prauc).abs() < 1e-6, "{kind:?}: {rescored} vs {info:?}");
    }
}

/// Two epochs, then `--resume` to four, ends with the bytes of four epochs in one go, for every
/// sequence baseline (dropout, shuffling and GAMENet's DDI draws included).
#[test]
fn resumed_sequence_baselines_are_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ..) = history_data(dir.path(), Chronic::FirstVisit);
    for kind in SEQUENCE_MODELS {
        let (straight, split) =
            (dir.path().join(format!("{kind:?}-straight")), dir.path().join(format!("{kind:?}-split")));
        train_baseline(&args_of(kind, &data, &straight, 4)).unwrap();
        train_baseline(&args_of(kind, &data, &split, 2)).unwrap();
        let run = leader::io::output::RunArgs { resume: Some(split.clone()), ..Default::default() };
        assert_eq!(
            train_baseline(&TrainBaselineArgs {
                kind: None,
                train: TrainArgs { run, epochs: Some(4), ..Default::default() }
            })
            .unwrap()
            .epochs_done,
            4
        );
        for file in ["model.safetensors", "checkpoint.safetensors", "train_log.jsonl", "baseline.json"] {
            assert!(
                std::fs::read(straight.join(file)).unwrap() == std::fs::read(split.join(file)).unwrap(),
                "{kind:?}: {file} differs"
            );
        }
    }
}

/// GAMENet and MICRON without the data folder's `ddi.json`: an error naming the folder and the file,
/// and no run folder left behind (the inputs are checked before it is made).
#[test]
fn ddi_models_refuse_a_data_folder_without_ddi_pairs_before_making_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ..) = history_data(dir.path(), Chronic::FirstVisit);
    std::fs::remove_file(data.join("ddi.json")).unwrap();
    for kind in [BaselineKind::Gamenet, BaselineKind::Micron] {
        let run = dir.path().join(kind.name());
        let err = format!("{:#}", train_baseline(&args_of(kind, &data, &run, 1)).unwrap_err());
        assert!(err.contains(&data.display().to_string()) && err.contains("ddi.json"), "{err}");
        assert!(!run.exists(), "{kind:?}: a failed start left {}", run.display());
    }
}

/// Impossible model and training settings are refused by name before a run folder is made.
#[test]
fn impossible_settings_are_refused_by_name_before_making_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ..) = history_data(dir.path(), Chronic::FirstVisit);
    let cases = [
        (BaselineKind::Retain, "model.embedding=0", "model.embedding = 0"),
        (BaselineKind::Gamenet, "model.graph_dropout=1.0", "model.graph_dropout = 1"),
        (BaselineKind::Micron, "model.dropout=-0.1", "model.dropout = -0.1"),
        (BaselineKind::Transformer, "model.heads=3", "model.heads = 3"),
        (BaselineKind::Lr, "model.c=0.0", "model.c = 0"),
        (BaselineKind::Retain, "train.lr=-1.0", "train.lr = -1"),
    ];
    for (kind, set, expected) in cases {
        let run = dir.path().join("run");
        // Without the flags, which would override a --set of the same key.
        let mut args = args_of(kind, &data, &run, 1);
        (args.train.lr, args.train.batch_size) = (None, None);
        args.train.config.set.push(set.to_string());
        let err = format!("{:#}", train_baseline(&args).unwrap_err());
        assert!(err.contains(expected), "{kind:?} {set}: {err}");
        assert!(!run.exists(), "{kind:?} {set}: a run folder was left");
    }
}
