//! The teacher on tiny random LLaMAs: gradients, padding, checkpoints, training, prediction, export.

use candle_core::{DType, Device, Tensor};
use leader::config::ConfigArgs;
use leader::data::record::{Record, Visit};
use leader::data::vocab::{CodeEntry, Vocab};
use leader::eval::metrics::average_precision;
use leader::eval::predictions::Prediction;
use leader::io::output::FolderArgs;
use leader::nn::gradcheck::{self, max_abs_diff};
use leader::nn::rng::TensorRng;
use leader::predict::{PredictArgs, PredictFormat};
use leader::teacher::cache::TeacherCache;
use leader::teacher::export::{export_hidden, ExportHiddenArgs};
use leader::teacher::grads::loss_and_grads;
use leader::teacher::init_model::{init_model, InitModelArgs};
use leader::teacher::lora::{DropoutKey, LoraConfig, Pass, TARGET_MODULES};
use leader::teacher::model::{HeadKind, TeacherModel};
use leader::teacher::peft::{self, TeacherMeta};
use leader::teacher::train::{train_teacher, TrainTeacherArgs};
use leader::teacher::weights::BaseModel;
use leader::teacher::Teacher;
use std::collections::BTreeMap;
use std::path::Path;

mod checkpoints {
    pub mod dialects;
    pub mod pretrain;
}

const CONDITIONS: [&str; 8] = ["asthma", "gout", "migraine", "psoriasis", "anemia", "epilepsy", "glaucoma", "insomnia"];

fn lora() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 16.0,
        dropout: 0.1,
        target_modules: TARGET_MODULES.iter().map(|s| s.to_string()).collect(),
    }
}

fn vocab() -> Vocab {
    let meds =
        (0..CONDITIONS.len()).map(|i| CodeEntry { code: format!("M{i:02}"), name: format!("drug {i}") }).collect();
    Vocab { medications: meds, diagnoses: vec![], procedures: vec![], profile: BTreeMap::new() }
}

/// A cohort whose labels are readable from the prompt: each record names two conditions, and
/// condition i is treated by medication i. Per-record label sets differ, so a model that reads the
/// prompt beats the label-frequency ranking.
fn cohort(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = TensorRng::new(seed);
    (0..n)
        .map(|i| {
            let a = rng.below(CONDITIONS.len());
            let b = (a + 1 + rng.below(CONDITIONS.len() - 1)) % CONDITIONS.len();
            let prior = rng.below(3);
            let prompt = format!(
                "The patient has {prior} times ICU visits. \n  In this visit, he has diagnosis: {}, {}; procedures: venous catheterization. Then, the patient should be prescribed: ",
                CONDITIONS[a], CONDITIONS[b]
            );
            let labels = vec![format!("M{a:02}"), format!("M{b:02}")];
            let visit = Visit { hadm_id: i as u64, admittime: "2100-01-01 00:00:00".into(), diagnoses: vec![], procedures: vec![], medications: labels.clone() };
            Record { subject_id: 1000 + i as u64, visits: vec![visit], profile: BTreeMap::new(), labels, prompt }
        })
        .collect()
}

fn write_jsonl(path: &Path, records: &[Record]) {
    let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// A data folder with train/valid/test splits and the vocabulary.
fn data_folder(dir: &Path, n_train: usize, n_valid: usize) {
    std::fs::create_dir_all(dir).unwrap();
    write_jsonl(&dir.join("train.jsonl"), &cohort(n_train, 1));
    write_jsonl(&dir.join("valid.jsonl"), &cohort(n_valid, 2));
    write_jsonl(&dir.join("test.jsonl"), &cohort(n_valid, 3));
    vocab().save(&dir.join("vocab.json")).unwrap();
}

fn tiny_model(dir: &Path, data: Option<&Path>) {
    let args = InitModelArgs {
        shape: leader::teacher::llama_config::ModelShape::Tiny,
        output: FolderArgs { out: dir.to_path_buf(), overwrite: false },
        seed: 7,
        data: data.map(Path::to_path_buf),
        tokenizer_vocab: 400,
        name_tokens: false,
    };
    init_model(&args).unwrap();
}

/// Sets every LoRA B to small random values (B starts at zero, which would hide A's gradient).
fn randomise_adapters(model: &TeacherModel, seed: u64) {
    let mut rng = TensorRng::new(seed);
    for (name, var) in model.trainable() {
        if name.contains("lora_B") {
            var.set(&rng.normal(var.shape(), 0.0, 0.05, var.dtype(), var.device()).unwrap()).unwrap();
        }
    }
}

const PROMPTS: [&str; 3] = [
    "The patient has 0 times ICU visits. \n  In this visit, he has diagnosis: gout; procedures: . Then, the patient should be prescribed: ",
    "The patient has 1 times ICU visits. \n In 1 visit, the patient had diagnosis: asthma; procedures: hemodialysis. The patient was prescribed drugs: opioids. \n In this visit, he has diagnosis: anemia, migraine; procedures: venous catheterization. Then, the patient should be prescribed: ",
    "diagnosis: insomnia",
];

/// `init-model --name-tokens` gives every code name of vocab.json a token of its own: a name encodes
/// to that token and EOS (and keeps it inside a list), where the BPE alone splits it.
#[test]
fn name_tokens_make_each_code_name_one_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    data_folder(&data, 32, 8);
    for name_tokens in [false, true] {
        let dir = tmp.path().join(format!("base-{name_tokens}"));
        let args = InitModelArgs {
            shape: leader::teacher::llama_config::ModelShape::Tiny,
            output: FolderArgs { out: dir.clone(), overwrite: false },
            seed: 7,
            data: Some(data.clone()),
            tokenizer_vocab: 400,
            name_tokens,
        };
        init_model(&args).unwrap();
        let tokenizer = BaseModel::resolve(dir.to_str().unwrap(), None, 0).unwrap().prompt_tokenizer(64).unwrap();
        let one = |name: &str| tokenizer.encode(name).unwrap();
        for m in vocab().medications {
            let ids = one(&m.name);
            assert_eq!(ids.len() == 2, name_tokens, "{:?} -> {ids:?} (name tokens: {name_tokens})", m.name);
        }
        if name_tokens {
            let both = one("prescribed: drug 1, drug 7");
            assert!(both.contains(&one("drug 1")[0]) && both.contains(&one("drug 7")[0]), "{both:?}");
        }
    }
}

#[test]
fn gradients_of_lora_and_head_match_finite_differences() {
    let base = BaseModel::resolve("random:tiny", None, 3).unwrap();
    let labels = Tensor::new(&[[1f64, 0., 0., 1., 0.], [0., 1., 0., 0., 1.]], &Device::Cpu).unwrap();
    // 2 layers x 7 modules x (A, B) + the head's weight (and bias).
    for (kind, head_vars) in [(HeadKind::Reference, 1), (HeadKind::Standardised, 2)] {
        let model = TeacherModel::new(&base, &lora(), kind, 5, 11, DType::F64, &Device::Cpu, 64).unwrap();
        // Statistics measured on the three prompts, so standardising is not the identity.
        let prompts = PROMPTS.map(String::from);
        model.start_head(&prompts, &[vec![0, 3], vec![1, 4], vec![0]], 2).unwrap();
        randomise_adapters(&model, 5);
        let batch = model.batch(&PROMPTS[..2]).unwrap();
        let vars = model.trainable();
        assert_eq!(vars.len(), 2 * 7 * 2 + head_vars, "{kind:?}");
        let loss = || model.loss(&model.llama.pooled(&batch, Pass::train(None))?, &labels);
        let reports = gradcheck::check(&vars, loss, 1e-5, 3).unwrap();
        gradcheck::assert_close(&reports, 1e-5).unwrap();
    }
}

/// The standardised head starts as the frequency baseline: its input has mean 0 and standard
/// deviation 1 over the measured prompts, and its bias is the smoothed log-odds of the labels.
#[test]
fn standardised_head_starts_at_the_label_frequencies() {
    let base = BaseModel::resolve("random:tiny", None, 3).unwrap();
    let model = TeacherModel::new(&base, &lora(), HeadKind::Standardised, 3, 11, DType::F64, &Device::Cpu, 64).unwrap();
    let prompts = PROMPTS.map(String::from);
    let labels = [vec![0], vec![0, 1], vec![0]];
    model.start_head(&prompts, &labels, 2).unwrap();
    let pooled = model.llama.pooled(&model.batch(&PROMPTS).unwrap(), Pass::frozen()).unwrap();
    let x: Vec<Vec<f64>> = model.head_input(&pooled).unwrap().to_vec2().unwrap();
    for d in 0..x[0].len() {
        let column: Vec<f64> = x.iter().map(|row| row[d]).collect();
        let mean = column.iter().sum::<f64>() / 3.0;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
        assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-6, "dimension {d}: mean {mean}, variance {var}");
    }
    // Zero head weights leave the bias alone: p = (k + 0.5) / (n + 1) for k of n = 3 records.
    let zero = Tensor::zeros((3, x[0].len()), DType::F64, &Device::Cpu).unwrap();
    let head = model.trainable().into_iter().find(|(n, _)| n == "cls_head.weight").unwrap().1;
    head.set(&zero.to_dtype(head.dtype()).unwrap()).unwrap();
    let p = model.probabilities(&PROMPTS[..1]).unwrap();
    for (m, k) in [3.0, 1.0, 0.0].iter().enumerate() {
        let expected = (k + 0.5) / 4.0;
        assert!((f64::from(p[0][m]) - expected).abs() < 1e-6, "medication {m}: {} vs {expected}", p[0][m]);
    }
}

#[test]
fn checkpointed_layers_give_the_same_gradients() {
    let base = BaseModel::resolve("random:tiny", None, 4).unwrap();
    let model = TeacherModel::new(&base, &lora(), HeadKind::Reference, 6, 12, DType::F64, &Device::Cpu, 64).unwrap();
    randomise_adapters(&model, 6);
    let batch = model.batch(&PROMPTS).unwrap();
    let labels = TensorRng::new(1).uniform((3, 6), 0.0, 1.0, DType::F64, &Device::Cpu).unwrap().ge(0.5).unwrap();
    // Dropout on: the recomputed layers must redraw the same masks.
    let pass = Pass::train(Some(DropoutKey { seed: 9, step: 3, micro: 1 }));
    let (plain_loss, plain) = loss_and_grads(&model, &batch, &labels, pass, 0.5, false).unwrap();
    let (ckpt_loss, ckpt) = loss_and_grads(&model, &batch, &labels, pass, 0.5, true).unwrap();
    let (plain_loss, ckpt_loss) = (plain_loss.to_scalar::<f64>().unwrap(), ckpt_loss.to_scalar::<f64>().unwrap());
    assert!((plain_loss - ckpt_loss).abs() < 1e-12, "{plain_loss} vs {ckpt_loss}");
    for (name, var) in model.trainable() {
        let (a, b) = (plain.get(var.as_tensor()).unwrap(), ckpt.get(var.as_tensor()).unwrap());
        let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(scale > 0.0, "{name}: no gradient");
        assert!(
            max_abs_diff(a, b).unwrap() <= 1e-10 * scale.max(1.0),
            "{name}: {} vs scale {scale}",
            max_abs_diff(a, b).unwrap()
        );
    }
}

#[test]
fn padding_and_fused_ops_do_not_change_the_pooled_vector() {
    let base = BaseModel::resolve("random:tiny", None, 5).unwrap();
    let model = TeacherModel::new(&base, &lora(), HeadKind::Reference, 4, 13, DType::F32, &Device::Cpu, 128).unwrap();
    randomise_adapters(&model, 7);
    let alone = model.llama.pooled(&model.batch(&PROMPTS[..1]).unwrap(), Pass::frozen()).unwrap();
    let batch = model.batch(&PROMPTS).unwrap();
    assert!(batch.lengths[1] > batch.lengths[0], "the second prompt must force padding of the first");
    let together = model.llama.pooled(&batch, Pass::frozen()).unwrap();
    assert!(max_abs_diff(&alone, &together.narrow(0, 0, 1).unwrap()).unwrap() < 1e-5);
    // The differentiable training ops compute the same function as the fused inference ones.
    let slow = model.llama.pooled(&batch, Pass::train(None)).unwrap();
    assert!(max_abs_diff(&slow, &together).unwrap() < 1e-5, "{}", max_abs_diff(&slow, &together).unwrap());
}

#[test]
fn truncation_keeps_the_end_and_appends_eos() {
    let base = BaseModel::resolve("random:tiny", None, 5).unwrap();
    let full = base.prompt_tokenizer(10_000).unwrap();
    let short = base.prompt_tokenizer(6).unwrap();
    let all = full.encode(PROMPTS[1]).unwrap();
    let cut = short.encode(PROMPTS[1]).unwrap();
    assert_eq!(cut.len(), 6);
    assert_eq!(*cut.last().unwrap(), full.eos_id);
    // The last five prompt tokens, i.e. the end of the current visit, survive.
    assert_eq!(&cut[..5], &all[all.len() - 6..all.len() - 1]);

    // A prompt far longer than the tokens kept can cover loses its beginning before tokenising; the
    // kept tokens are those of the whole prompt.
    let long: String = std::iter::repeat_n(PROMPTS[1], 400).collect::<Vec<_>>().join(" ");
    assert!(long.len() > 100_000);
    let whole = base.tokenizer.encode(long.as_str(), false).unwrap().get_ids().to_vec();
    let kept = short.encode(&long).unwrap();
    assert_eq!(&kept[..5], &whole[whole.len() - 5..]);
}

#[test]
fn saved_adapter_loads_to_identical_outputs_in_both_peft_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    tiny_model(&model_dir, None);
    let base = BaseModel::resolve(model_dir.to_str().unwrap(), None, 0).unwrap();
    let model = TeacherModel::new(&base, &lora(), HeadKind::Reference, 8, 21, DType::F32, &Device::Cpu, 128).unwrap();
    randomise_adapters(&model, 8);
    let meta = TeacherMeta {
        base_model: model_dir.to_str().unwrap().into(),
        revision: None,
        base_seed: 0,
        base_fingerprint: base.fingerprint().unwrap(),
        max_tokens: 128,
        head: HeadKind::Reference,
        hidden_size: 64,
        num_medications: 8,
        vocab_fingerprint: vocab().fingerprint(),
        step: 0,
        valid_prauc: None,
    };
    // The standardised head's bias and statistics travel with it (measured, then the weights moved,
    // so nothing is at its initial value).
    let standardised =
        TeacherModel::new(&base, &lora(), HeadKind::Standardised, 8, 21, DType::F32, &Device::Cpu, 128).unwrap();
    standardised.start_head(&PROMPTS.map(String::from), &[vec![0], vec![1, 2], vec![0, 7]], 2).unwrap();
    randomise_adapters(&standardised, 9);
    let dir = tmp.path().join("ckpt-standardised");
    std::fs::create_dir_all(&dir).unwrap();
    let standardised_meta = TeacherMeta { head: HeadKind::Standardised, ..meta.clone() };
    peft::save(&dir, &standardised, &lora(), &vocab(), &standardised_meta).unwrap();
    let expected = standardised.probabilities(&PROMPTS).unwrap();
    let loaded = Teacher::load(&dir, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(loaded.model.probabilities(&PROMPTS).unwrap(), expected);
    assert_ne!(model.probabilities(&PROMPTS).unwrap(), expected);

    let ckpt = tmp.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    peft::save(&ckpt, &model, &lora(), &vocab(), &meta).unwrap();
    let expected = model.probabilities(&PROMPTS).unwrap();
    let loaded = Teacher::load(&ckpt, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(loaded.model.probabilities(&PROMPTS).unwrap(), expected);

    // PEFT's causal-LM naming (`base_model.model.model.`, adapter name `default`) loads the same.
    let path = ckpt.join("adapter_model.safetensors");
    let renamed: std::collections::HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            (k.replace("base_model.model.", "base_model.model.model.").replace(".weight", ".default.weight"), v)
        })
        .collect();
    assert!(renamed.keys().all(|k| k.starts_with("base_model.model.model.layers.")));
    candle_core::safetensors::save(&renamed, &path).unwrap();
    let reloaded = Teacher::load(&ckpt, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(reloaded.model.probabilities(&PROMPTS).unwrap(), expected);

    // Another vocabulary is refused with a clear error.
    let mut other = vocab();
    other.medications.pop();
    let err = loaded.check_vocab(&other, Path::new("data")).unwrap_err().to_string();
    assert!(err.contains("M = 7") && err.contains("M = 8"), "{err}");
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    use leader::nn::device::DeviceSpec;
    let err = "cuda".parse::<DeviceSpec>().unwrap().open().unwrap_err().to_string();
    if cfg!(feature = "cuda") {
        assert!(err.contains("CUDA"), "{err}");
    } else {
        assert!(err.contains("built without CUDA"), "{err}");
    }
    for (name, spec) in [("cpu", DeviceSpec::Cpu), ("cuda", DeviceSpec::Cuda(0)), ("cuda:3", DeviceSpec::Cuda(3))] {
        assert_eq!(name.parse::<DeviceSpec>().unwrap(), spec);
    }
    for bad in ["tpu", "cuda:", "cuda1", "cuda:x", "CPU"] {
        let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
    }
    // Configs hold the canonical name and read it back.
    assert_eq!(toml::Value::try_from(DeviceSpec::Cuda(2)).unwrap().as_str(), Some("cuda:2"));
}

fn train_args(data: &Path, model: &Path, out: &Path, steps: u64, sets: &[&str]) -> TrainTeacherArgs {
    TrainTeacherArgs {
        data: Some(data.to_path_buf()),
        model: Some(model.to_str().unwrap().into()),
        run: leader::io::output::RunArgs { out: Some(out.to_path_buf()), ..Default::default() },
        max_steps: Some(steps),
        max_tokens: Some(64),
        config: ConfigArgs { config: None, set: sets.iter().map(|s| s.to_string()).collect() },
        ..Default::default()
    }
}

fn prauc_of(records: &[Record], probs: &[Vec<f32>]) -> f64 {
    let index = vocab().medications.iter().map(|e| e.code.clone()).collect::<Vec<_>>();
    let total: f64 = records
        .iter()
        .zip(probs)
        .map(|(r, p)| average_precision(&index.iter().map(|c| r.labels.contains(c)).collect::<Vec<_>>(), p))
        .sum();
    total / records.len() as f64
}

#[test]
fn trained_teacher_beats_the_frequency_baseline_then_predicts_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, model, run) = (tmp.path().join("data"), tmp.path().join("base"), tmp.path().join("run"));
    data_folder(&data, 256, 64);
    tiny_model(&model, Some(&data));
    let sets = [
        "train.micro_batch=8",
        "train.grad_accum=1",
        "train.lr=5e-3",
        "train.eval_every=100",
        "train.checkpoint_every=100",
    ];
    let summary = train_teacher(&train_args(&data, &model, &run, 300, &sets)).unwrap();

    // The frequency baseline: every record gets each medication's training-set frequency.
    let (train, valid) = (cohort(256, 1), cohort(64, 2));
    let freq: Vec<f32> = vocab()
        .medications
        .iter()
        .map(|m| train.iter().filter(|r| r.labels.contains(&m.code)).count() as f32 / train.len() as f32)
        .collect();
    let baseline = prauc_of(&valid, &vec![freq; valid.len()]);
    let best = summary.best_prauc.unwrap();
    eprintln!("valid PRAUC: teacher {best:.4}, frequency baseline {baseline:.4}");
    assert!(best > baseline + 0.1, "teacher PRAUC {best} vs frequency baseline {baseline}");

    // predict: the best checkpoint's probabilities, whose PRAUC is the one validation recorded.
    let pred_out = tmp.path().join("valid.pred.jsonl");
    let pargs = PredictArgs {
        model: None,
        teacher: Some(run.clone()),
        data: Some(data.clone()),
        split: Some("valid".into()),
        records: None,
        out: pred_out.clone(),
        format: PredictFormat::Jsonl,
        top_k: 10,
        batch_size: Some(5),
        device: leader::nn::device::DeviceSpec::Cpu,
        overwrite: false,
    };
    leader::predict::run(&pargs).unwrap();
    let preds: Vec<Prediction> = leader::io::read_jsonl(&pred_out).unwrap();
    assert_eq!(
        preds.iter().map(|p| p.subject_id).collect::<Vec<_>>(),
        valid.iter().map(|r| r.subject_id).collect::<Vec<_>>()
    );
    let probs: Vec<Vec<f32>> = preds.into_iter().map(|p| p.probabilities).collect();
    assert!((prauc_of(&valid, &probs) - best).abs() < 1e-6);
    let sidecar = std::fs::read_to_string(leader::io::output::sidecar_path(&pred_out)).unwrap();
    assert!(sidecar.contains("model_kind = \"teacher\""), "{sidecar}");

    // export-hidden → TeacherCache round trip, with the token ids that were fed to the model.
    let cache_path = tmp.path().join("valid.hidden.safetensors");
    let eargs = ExportHiddenArgs {
        teacher: run.clone(),
        data: data.clone(),
        split: "valid".into(),
        out: cache_path.clone(),
        f16: false,
        save_input_ids: true,
        batch_size: 7,
        device: leader::nn::device::DeviceSpec::Cpu,
        dtype: leader::nn::device::Precision::F32,
        overwrite: false,
    };
    export_hidden(&eargs).unwrap();
    let cache = TeacherCache::load(&cache_path).unwrap();
    assert_eq!(cache.subject_ids, valid.iter().map(|r| r.subject_id).collect::<Vec<_>>());
    assert_eq!(cache.hidden_size(), 64);
    let teacher = Teacher::load(&run, &Device::Cpu, DType::F32).unwrap();
    let ids = cache.input_ids.as_ref().unwrap().to_vec2::<i64>().unwrap();
    for (row, r) in ids.iter().zip(&valid) {
        let expected = teacher.model.tokenizer.encode(&r.prompt).unwrap();
        assert_eq!(&row[..expected.len()], expected.iter().map(|&i| i as i64).collect::<Vec<_>>().as_slice());
        assert!(row[expected.len()..].iter().all(|&i| i == -1));
    }
    let last = valid.len() - 1;
    let alone = teacher.pooled_hidden(&[valid[last].prompt.as_str()]).unwrap();
    assert!(max_abs_diff(&alone, &cache.hidden.narrow(0, last, 1).unwrap()).unwrap() < 1e-5);
}

#[test]
fn resumed_training_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, model) = (tmp.path().join("data"), tmp.path().join("base"));
    data_folder(&data, 24, 6);
    tiny_model(&model, None);
    let sets = [
        "train.micro_batch=4",
        "train.grad_accum=2",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        // Logged every 2 steps and stopped after 3: the mean at step 4 spans the interruption.
        "train.log_every=2",
    ];
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    train_teacher(&train_args(&data, &model, &straight, 5, &sets)).unwrap();
    let first = TrainTeacherArgs { stop_after_steps: Some(3), ..train_args(&data, &model, &split, 5, &sets) };
    assert_eq!(train_teacher(&first).unwrap().steps, 3);
    // Resume takes the run's saved config and data: no other flag.
    let again = TrainTeacherArgs {
        run: leader::io::output::RunArgs { resume: Some(split.clone()), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(train_teacher(&again).unwrap().steps, 5);
    let best_meta = |dir: &Path| std::fs::read_to_string(dir.join("best/teacher.json")).unwrap();
    assert_eq!(best_meta(&straight), best_meta(&split));
    for file in [
        "last/adapter_model.safetensors",
        "last/head.safetensors",
        "last/optimizer.safetensors",
        "best/adapter_model.safetensors",
    ] {
        let a = candle_core::safetensors::load(straight.join(file), &Device::Cpu).unwrap();
        let b = candle_core::safetensors::load(split.join(file), &Device::Cpu).unwrap();
        assert_eq!(a.len(), b.len());
        for (k, t) in &a {
            assert_eq!(
                t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                b[k].flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                "{file}: {k}"
            );
        }
    }
    // The logs are byte-identical, the loss means spanning the interruption included.
    let log = |dir: &Path| std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
    assert_eq!(log(&straight), log(&split));
    assert_eq!(log(&split).lines().filter(|l| l.contains("\"kind\":\"train\"")).count(), 3);
}

/// `--check-against-cpu` on the CPU itself: f32 is the very same computation (no difference at all);
/// bf16 stays within a few percent of f32 in the pooled vectors, the loss and every gradient.
#[test]
fn check_against_cpu_compares_pooled_vectors_loss_and_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("base");
    tiny_model(&model, None);
    use leader::nn::device::Precision;
    let check = |dtype: Precision| {
        let args = TrainTeacherArgs {
            model: Some(model.to_str().unwrap().into()),
            dtype: Some(dtype),
            micro_batch: Some(3),
            bench_seq_len: 40,
            check_against_cpu: true,
            ..Default::default()
        };
        leader::teacher::bench::check_against_cpu(&args).unwrap()
    };
    let f32 = check(Precision::F32);
    for key in ["pooled_max_rel", "loss_rel", "grad_max_rel"] {
        assert_eq!(f32[key].as_f64(), Some(0.0), "{key}: {f32}");
    }
    let bf16 = check(Precision::Bf16);
    assert!(bf16["pooled_max_rel"].as_f64().unwrap() < 0.03, "{bf16}");
    assert!(bf16["loss_rel"].as_f64().unwrap() < 1e-3, "{bf16}");
    assert!(bf16["grad_max_rel"].as_f64().unwrap() < 0.05, "{bf16}");
    assert!(bf16["grad_max_rel"].as_f64().unwrap() > 0.0, "bf16 must differ from f32: {bf16}");
}
