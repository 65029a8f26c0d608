//! `leader init-model`: a random LLaMA in Hugging Face layout (`config.json`, `model.safetensors`
//! with `model.`-prefixed names, `tokenizer.json`), for tests, the demo (`tiny`) and GPU
//! benchmarks (`1b`, `7b`). The tokenizer is a byte-level BPE trained with the tokenizers crate on the
//! prompts of a records folder, or on a small built-in corpus. Special tokens follow LLaMA:
//! `<unk>` = 0 (also the pad id), `<s>` = 1, `</s>` = 2.

use super::llama::Llama;
use super::llama_config::{LlamaConfig, ModelShape};
use super::tokenizer::{add_name_tokens, builtin_corpus, train_tokenizer};
use super::weights::RandomWeights;
use crate::data::record::read_records;
use crate::data::vocab::Vocab;
use crate::io::output::{OutputDir, OutputKind};
use anyhow::{anyhow, Result};
use candle_core::Device;
use candle_nn::VarBuilder;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct InitModelArgs {
    /// tiny (hidden 64, 2 layers, f32: tests and demo), 1b (TinyLlama shape) or 7b (LLaMA-7B shape),
    /// both stored in bf16. For GPU benchmarks prefer `train-teacher --model random:7b`.
    #[arg(long, value_enum, default_value = "tiny")]
    pub shape: ModelShape,
    #[command(flatten)]
    pub output: crate::io::output::FolderArgs,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A preprocessed data folder whose train split's prompts train the tokenizer (default: a
    /// built-in corpus of prompt templates and medical words).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target BPE vocabulary size (the 1b/7b configs still declare 32000 embedding rows).
    #[arg(long, default_value_t = 2000)]
    pub tokenizer_vocab: usize,
    /// Also give every code name of --data's vocab.json (diagnoses, procedures, medications) a token
    /// of its own, so a small model can learn what each code means from a corpus (the demo's base).
    #[arg(long, requires = "data")]
    pub name_tokens: bool,
}

/// Writes the model folder atomically; returns its config.
pub fn init_model(args: &InitModelArgs) -> Result<LlamaConfig> {
    let dir = OutputDir::create(&args.output.out, OutputKind::InitModel, args.output.overwrite)?;
    let corpus = match &args.data {
        Some(dir) => read_records(&dir.join("train.jsonl"))?.into_iter().map(|r| r.prompt).collect(),
        None => builtin_corpus(),
    };
    let mut tokenizer = train_tokenizer(corpus, args.tokenizer_vocab)?;
    if let (true, Some(dir)) = (args.name_tokens, &args.data) {
        add_name_tokens(&mut tokenizer, &Vocab::load(&dir.join("vocab.json"))?);
    }
    let tokens = tokenizer.get_vocab_size(true);
    let cfg = LlamaConfig::shape(args.shape, tokens);
    // Benchmarks of the large shapes should rather use `--model random:7b`, which makes the weights on
    // the device and writes nothing.
    let dtype = args.shape.stored_dtype().dtype();
    let weights = RandomWeights::new(args.seed);
    let vb = VarBuilder::from_backend(Box::new(weights.clone()), dtype, Device::Cpu);
    Llama::new(vb.pp("model"), None, &cfg)?;
    if !cfg.tie_word_embeddings {
        // A whole `LlamaForCausalLM`: `pretrain` and transformers read the LM head.
        vb.get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")?;
    }
    cfg.write_hf(&dir.path().join("config.json"))?;
    crate::io::write_safetensors(&dir.path().join("model.safetensors"), &weights.tensors())?;
    tokenizer.save(dir.path().join("tokenizer.json"), false).map_err(|e| anyhow!("writing tokenizer.json: {e}"))?;
    dir.commit()?;
    Ok(cfg)
}

pub fn run(args: &InitModelArgs) -> Result<()> {
    let cfg = init_model(args)?;
    crate::progress::say(format!(
        "init-model: {} LLaMA (hidden {}, {} layers, vocab {}) -> {}",
        args.shape,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.vocab_size,
        args.output.out.display()
    ));
    Ok(())
}
