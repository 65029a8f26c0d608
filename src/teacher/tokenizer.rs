//! Prompt tokenisation as the reference does it (§2), except for truncation: no BOS, EOS appended,
//! right padding with the pad (= unk) id. A prompt longer than `max_tokens - 1` keeps its END: the
//! reference cuts the end, which can drop the current visit (the part that matters most) from long
//! prompts, so we drop the oldest history instead.

use super::config::LlamaConfig;
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use tokenizers::Tokenizer;

pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    pub eos_id: u32,
    pub pad_id: u32,
    /// Tokens per sequence including the appended EOS.
    pub max_tokens: usize,
}

/// The id of the first of `names` the tokenizer knows.
fn special(tokenizer: &Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|n| tokenizer.token_to_id(n))
}

impl PromptTokenizer {
    /// Reads `tokenizer.json`; EOS and pad ids come from `config.json` when it has them, else from the
    /// tokenizer's `</s>` / `<unk>` tokens (LLaMA-1/2 conventions).
    pub fn load(path: &Path, cfg: &LlamaConfig, max_tokens: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| anyhow!("reading tokenizer {}: {e}", path.display()))?;
        Self::new(tokenizer, cfg, max_tokens).with_context(|| format!("tokenizer {}", path.display()))
    }

    pub fn new(tokenizer: Tokenizer, cfg: &LlamaConfig, max_tokens: usize) -> Result<Self> {
        let eos_id = cfg
            .eos_token_id
            .as_ref()
            .and_then(|t| t.first())
            .or_else(|| special(&tokenizer, &["</s>", "<|end_of_text|>", "<|endoftext|>"]))
            .context("no EOS token: config.json has no eos_token_id and the tokenizer no </s>")?;
        let pad_id = cfg
            .pad_token_id
            .as_ref()
            .and_then(|t| t.first())
            .or_else(|| special(&tokenizer, &["<unk>", "<pad>"]))
            .unwrap_or(eos_id);
        anyhow::ensure!(max_tokens >= 2, "max_tokens must be at least 2 (one prompt token and the EOS)");
        Ok(Self { tokenizer, eos_id, pad_id, max_tokens })
    }

    /// Token ids of one prompt: its last `max_tokens - 1` tokens, then EOS.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(prompt, false).map_err(|e| anyhow!("tokenising a prompt: {e}"))?;
        let ids = enc.get_ids();
        let keep = ids.len().min(self.max_tokens - 1);
        let mut out = ids[ids.len() - keep..].to_vec();
        out.push(self.eos_id);
        Ok(out)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}
