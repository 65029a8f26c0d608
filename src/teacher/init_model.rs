//! `leader init-model`: a random LLaMA in Hugging Face layout (`config.json`, `model.safetensors`
//! with `model.`-prefixed names, `tokenizer.json`), for tests, the demo (`tiny`) and GPU
//! benchmarks (`1b`, `7b`). The tokenizer is a byte-level BPE trained with the tokenizers crate on the
//! prompts of a records folder, or on a small built-in corpus. Special tokens follow LLaMA:
//! `<unk>` = 0 (also the pad id), `<s>` = 1, `</s>` = 2.

use super::config::{LlamaConfig, ModelShape};
use super::llama::Llama;
use super::weights::RandomWeights;
use crate::data::record::read_records;
use crate::io::output::{OutputDir, OutputKind};
use anyhow::{anyhow, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clap::Args;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TokenizerImpl,
};

#[derive(Args, Debug, Clone)]
pub struct InitModelArgs {
    /// tiny (hidden 64, 2 layers, f32: tests and demo), 1b (TinyLlama shape) or 7b (LLaMA-7B shape),
    /// both stored in bf16. For GPU benchmarks prefer `train-teacher --model random:7b`.
    #[arg(long, value_enum, default_value = "tiny")]
    pub shape: ModelShape,
    /// Output folder: new or empty (it appears whole when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier output of this command at --out (only leader's own files; anything else there
    /// makes it refuse).
    #[arg(long)]
    pub overwrite: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A preprocessed data folder whose train split's prompts train the tokenizer (default: a
    /// built-in corpus of prompt templates and medical words).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target BPE vocabulary size (the 1b/7b configs still declare 32000 embedding rows).
    #[arg(long, default_value_t = 2000)]
    pub tokenizer_vocab: usize,
}

/// Prompt templates and medical words, for a tokenizer when no data is given.
pub fn builtin_corpus() -> Vec<String> {
    const TEXT: &str = "The patient has 0 times ICU visits. In this visit, he has diagnosis: hypertension nos, \
        congestive heart failure, acute kidney failure, atrial fibrillation, diabetes mellitus, pneumonia, sepsis, \
        coronary atherosclerosis, hyperlipidemia, anemia, esophageal reflux, urinary tract infection; procedures: \
        venous catheterization, insertion of endotracheal tube, continuous invasive mechanical ventilation, \
        transfusion of packed cells, hemodialysis, coronary arteriography, enteral infusion of nutrition. \
        Then, the patient should be prescribed: \n In 1 visit, the patient had diagnosis: chronic kidney disease, \
        respiratory failure; procedures: arterial catheterization. The patient was prescribed drugs: \
        anticoagulants, beta blocking agents, opioids, proton pump inhibitors, insulins and analogues, \
        other analgesics and antipyretics, potassium supplements, corticosteroids for systemic use, \
        antiarrhythmics, high-ceiling diuretics, ace inhibitors, antithrombotic agents, hypnotics and sedatives, \
        antiemetics, iron preparations, vitamin b12 and folic acid, electrolyte solutions, laxatives. \n";
    TEXT.split(". ").map(str::to_string).collect()
}

/// A byte-level BPE of about `vocab_size` tokens trained on `texts`.
pub fn train_tokenizer(texts: Vec<String>, vocab_size: usize) -> Result<Tokenizer> {
    let specials = ["<unk>", "<s>", "</s>"].map(|t| AddedToken::from(t, true)).to_vec();
    let mut trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok: TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper> =
        TokenizerImpl::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.train(&mut trainer, texts.into_iter()).map_err(|e| anyhow!("training the tokenizer: {e}"))?;
    let json = tok.to_string(false).map_err(|e| anyhow!("{e}"))?;
    json.parse::<Tokenizer>().map_err(|e| anyhow!("re-reading the trained tokenizer: {e}"))
}

/// Writes the model folder atomically; returns its config.
pub fn init_model(args: &InitModelArgs) -> Result<LlamaConfig> {
    let dir = OutputDir::create(&args.out, OutputKind::InitModel, args.overwrite)?;
    let corpus = match &args.data {
        Some(dir) => read_records(&dir.join("train.jsonl"))?.into_iter().map(|r| r.prompt).collect(),
        None => builtin_corpus(),
    };
    let tokenizer = train_tokenizer(corpus, args.tokenizer_vocab)?;
    let tokens = tokenizer.get_vocab_size(true);
    let cfg = LlamaConfig::shape(args.shape, tokens)?;
    // Benchmarks of the large shapes should rather use `--model random:7b`, which makes the weights on
    // the device and writes nothing.
    let dtype = args.shape.stored_dtype();
    let weights = RandomWeights::new(args.seed);
    let vb = VarBuilder::from_backend(Box::new(weights.clone()), dtype, Device::Cpu);
    Llama::new(vb.pp("model"), None, &cfg)?;
    write_config(&dir.path().join("config.json"), &cfg, dtype)?;
    crate::io::write_safetensors(&dir.path().join("model.safetensors"), &weights.tensors())?;
    tokenizer.save(dir.path().join("tokenizer.json"), false).map_err(|e| anyhow!("writing tokenizer.json: {e}"))?;
    dir.commit()?;
    Ok(cfg)
}

/// `config.json` as `transformers` expects it: our fields plus the architecture markers.
fn write_config(path: &Path, cfg: &LlamaConfig, dtype: DType) -> Result<()> {
    let mut json = serde_json::to_value(cfg)?;
    let obj = json.as_object_mut().expect("config serialises to an object");
    obj.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
    obj.insert("model_type".into(), "llama".into());
    obj.insert("hidden_act".into(), "silu".into());
    obj.insert("torch_dtype".into(), if dtype == DType::BF16 { "bfloat16" } else { "float32" }.into());
    obj.insert("attention_bias".into(), false.into());
    obj.insert("mlp_bias".into(), false.into());
    crate::io::write_json(path, &json)
}

pub fn run(args: &InitModelArgs) -> Result<()> {
    let cfg = init_model(args)?;
    crate::progress::say(format!(
        "init-model: {} LLaMA (hidden {}, {} layers, vocab {}) -> {}",
        args.shape,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.vocab_size,
        args.out.display()
    ));
    Ok(())
}
