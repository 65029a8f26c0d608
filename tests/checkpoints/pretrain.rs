//! `leader pretrain`: gradients of both training modes, a held-out loss that falls on a learnable
//! corpus, a saved folder that reloads to the same model, and bit-identical resume.

use candle_core::{DType, Device};
use leader::config::ConfigArgs;
use leader::io::output::FolderArgs;
use leader::nn::gradcheck;
use leader::nn::rng::TensorRng;
use leader::teacher::init_model::{init_model, InitModelArgs};
use leader::teacher::lm::{CausalLm, TrainedWeights};
use leader::teacher::lora::{LoraConfig, Pass, TARGET_MODULES};
use leader::teacher::pretrain::{pretrain, Corpus, PretrainArgs};
use leader::teacher::weights::BaseModel;
use std::path::Path;

fn lora() -> LoraConfig {
    LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, target_modules: TARGET_MODULES.map(String::from).to_vec() }
}

const ROWS: [&[u32]; 3] = [&[5, 17, 3, 39, 8, 21], &[9, 4, 33], &[12, 7, 7, 2]];

/// Three rows of tokens; the first also holds the tokens whose embedding rows the gradient check
/// samples (it checks 3 entries spread evenly over the flattened [V, H] table).
fn rows(lm: &CausalLm) -> Vec<Vec<u32>> {
    let (v, h) = lm.llama.embedding_table().dims2().unwrap();
    let sampled = (0..3).map(|k| (k * (v * h / 3) / h) as u32);
    let mut rows: Vec<Vec<u32>> = ROWS.iter().map(|r| r.to_vec()).collect();
    rows[0].extend(sampled);
    rows
}

/// Full fine-tuning: every base weight (the LM head too, or the embedding table twice when tied)
/// gets its finite-difference gradient.
#[test]
fn full_pretraining_gradients_match_finite_differences() {
    for tied in [false, true] {
        let mut base = BaseModel::resolve("random:tiny", None, 3).unwrap();
        base.config.tie_word_embeddings = tied;
        let lm = CausalLm::new(&base, TrainedWeights::Full, &lora(), 1, DType::F64, &Device::Cpu).unwrap();
        let vars = lm.trainable();
        // embed, norm, 2 layers x (2 norms + 7 projections), and the LM head when untied.
        assert_eq!(vars.len(), 2 + 2 * 9 + usize::from(!tied), "tied = {tied}");
        let rows = rows(&lm);
        let loss = || Ok(lm.loss(&rows, Pass::train(None))?.0);
        let reports = gradcheck::check(&vars, loss, 1e-5, 3).unwrap();
        gradcheck::assert_close(&reports, 1e-5).unwrap();
    }
}

/// LoRA pretraining: the adapters get their gradients; the base and head get none.
#[test]
fn lora_pretraining_gradients_match_finite_differences() {
    let base = BaseModel::resolve("random:tiny", None, 3).unwrap();
    let lm = CausalLm::new(&base, TrainedWeights::Lora, &lora(), 1, DType::F64, &Device::Cpu).unwrap();
    let mut rng = TensorRng::new(4);
    for (name, var) in lm.trainable() {
        if name.contains("lora_B") {
            var.set(&rng.normal(var.shape(), 0.0, 0.05, var.dtype(), var.device()).unwrap()).unwrap();
        }
    }
    let vars = lm.trainable();
    assert_eq!(vars.len(), 2 * 7 * 2);
    let rows = rows(&lm);
    let loss = || Ok(lm.loss(&rows, Pass::train(None))?.0);
    let reports = gradcheck::check(&vars, loss, 1e-5, 3).unwrap();
    gradcheck::assert_close(&reports, 1e-5).unwrap();
    let grads = loss().unwrap().backward().unwrap();
    assert!(grads.get(lm.llama.embedding_table()).is_none(), "the frozen embedding table got a gradient");
}

/// A corpus with a rule to learn: each condition has one drug, stated in many differently worded
/// notes, so held-out notes state the same rule in other words.
fn write_corpus(dir: &Path) {
    let pairs = [("asthma", "salbutamol"), ("gout", "allopurinol"), ("migraine", "sumatriptan"), ("anemia", "ferrous")];
    let openings = ["Note", "Remark", "Fact", "Entry", "Item", "Line"];
    let mut text = String::new();
    for i in 0..120 {
        let (condition, drug) = pairs[i % pairs.len()];
        text.push_str(&format!("{} {i}: {condition} is treated with {drug}.\n\n", openings[i % openings.len()]));
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("notes.txt"), text).unwrap();
}

fn args(model: &Path, corpus: &Path, out: &Path, sets: &[&str]) -> PretrainArgs {
    PretrainArgs {
        model: Some(model.display().to_string()),
        corpus: Some(corpus.to_path_buf()),
        run: leader::io::output::RunArgs { out: Some(out.to_path_buf()), ..Default::default() },
        config: ConfigArgs { config: None, set: sets.iter().map(|s| s.to_string()).collect() },
        ..Default::default()
    }
}

fn tiny_base(dir: &Path) {
    let args = InitModelArgs {
        shape: leader::teacher::llama_config::ModelShape::Tiny,
        output: FolderArgs { out: dir.to_path_buf(), overwrite: false },
        seed: 7,
        data: None,
        tokenizer_vocab: 400,
        name_tokens: false,
    };
    init_model(&args).unwrap();
}

/// The held-out loss of the model in `folder` on the corpus' held-out rows, computed here.
fn heldout_loss(folder: &Path, corpus: &Path) -> f64 {
    let base = BaseModel::resolve(folder.to_str().unwrap(), None, 0).unwrap();
    let section = leader::teacher::pretrain::CorpusSection {
        text: corpus.to_path_buf(),
        records: Default::default(),
        heldout_every: 20,
    };
    let (_, heldout) = Corpus::read(&section).unwrap().rows(&base.prompt_tokenizer(64).unwrap(), 64).unwrap();
    let lm = CausalLm::new(&base, TrainedWeights::Full, &lora(), 0, DType::F32, &Device::Cpu).unwrap();
    let (mut sum, mut n) = (0.0, 0);
    for chunk in heldout.chunks(16) {
        let (loss, k) = lm.loss(chunk, Pass::frozen()).unwrap();
        sum += loss.to_scalar::<f64>().unwrap() * k as f64;
        n += k;
    }
    sum / n as f64
}

fn recorded_heldout_loss(run: &Path) -> f64 {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best/pretrain.json")).unwrap()).unwrap();
    meta["heldout_loss"].as_f64().unwrap()
}

/// Full pretraining lowers the held-out loss well below the untrained model's, and RUN/best is a
/// model folder that loads back to the very model that was evaluated (same held-out loss). LoRA
/// pretraining writes its adapters merged into the weights, which compute what base + adapters did.
#[test]
fn pretraining_lowers_heldout_loss_and_its_folder_reloads_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let (base, corpus) = (dir.path().join("base"), dir.path().join("corpus"));
    tiny_base(&base);
    write_corpus(&corpus);
    let before = heldout_loss(&base, &corpus);
    let sets = ["model.seq_len=64", "train.max_steps=60", "train.eval_every=20", "train.micro_batch=8"];
    let full = dir.path().join("full");
    let summary = pretrain(&args(&base, &corpus, &full, &sets)).unwrap();
    let after = summary.best_heldout_loss.unwrap();
    assert!(after < before - 1.5, "held-out loss {before:.3} before pretraining, {after:.3} after");
    let reloaded = heldout_loss(&full.join("best"), &corpus);
    assert!((reloaded - after).abs() < 1e-5 * after, "saved {after}, reloaded {reloaded}");

    let lora_run = dir.path().join("lora");
    let mut lora_sets = sets.to_vec();
    lora_sets.extend(["model.trained=\"lora\"", "train.max_steps=20", "lora.r=8"]);
    let summary = pretrain(&args(&base, &corpus, &lora_run, &lora_sets)).unwrap();
    let with_adapters = summary.best_heldout_loss.unwrap();
    assert!(with_adapters < before - 0.1, "LoRA: {before:.3} before, {with_adapters:.3} after");
    assert_eq!(with_adapters, recorded_heldout_loss(&lora_run));
    let merged = heldout_loss(&lora_run.join("best"), &corpus);
    assert!((merged - with_adapters).abs() < 1e-4 * with_adapters, "adapters {with_adapters}, merged {merged}");
}

/// Stopping after 3 steps and resuming gives the log and model bytes of an uninterrupted run.
#[test]
fn resumed_pretraining_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (base, corpus) = (dir.path().join("base"), dir.path().join("corpus"));
    tiny_base(&base);
    write_corpus(&corpus);
    let sets = [
        "model.seq_len=64",
        "train.max_steps=6",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        "train.log_every=1",
    ];
    let straight = dir.path().join("straight");
    pretrain(&args(&base, &corpus, &straight, &sets)).unwrap();
    let split = dir.path().join("split");
    pretrain(&PretrainArgs { stop_after_steps: Some(3), ..args(&base, &corpus, &split, &sets) }).unwrap();
    let resumed = PretrainArgs {
        run: leader::io::output::RunArgs { resume: Some(split.clone()), ..Default::default() },
        ..Default::default()
    };
    pretrain(&resumed).unwrap();
    for file in ["train_log.jsonl", "best/model.safetensors", "last/weights.safetensors", "last/optimizer.safetensors"]
    {
        let (a, b) = (std::fs::read(straight.join(file)).unwrap(), std::fs::read(split.join(file)).unwrap());
        assert!(a == b, "{file} differs after resuming");
    }
}
