//! Tokenisers. Prompt tokenisation as the reference does it (§2), except for truncation: no BOS,
//! EOS appended, right padding with the pad (= unk) id. A prompt longer than `max_tokens - 1` keeps
//! its END: the reference cuts the end, which can drop the current visit (the part that matters most)
//! from long prompts, so we drop the oldest history instead. And the byte-level BPE that `init-model`
//! and `random:` bases train.

use super::llama_config::LlamaConfig;
use crate::data::vocab::Vocab;
use anyhow::{anyhow, Context, Result};
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TokenizerImpl,
};

pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    pub eos_id: u32,
    pub pad_id: u32,
    /// Tokens per sequence including the appended EOS.
    pub max_tokens: usize,
    /// Prompts longer than this many bytes lose their beginning before tokenising: their kept
    /// tokens lie in the last `max_tokens` × (longest token) bytes, and tokenising the rest would
    /// only cost memory (a 200 MB prompt took gigabytes).
    max_prompt_bytes: usize,
}

/// The id of the first of `names` the tokenizer knows.
fn special(tokenizer: &Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|n| tokenizer.token_to_id(n))
}

impl PromptTokenizer {
    /// EOS and pad ids come from `config.json` when it has them, else from the tokenizer's `</s>` /
    /// `<unk>` tokens (LLaMA-1/2 conventions).
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
        // A token's vocabulary string is at least as long as the text it covers (byte-level and
        // SentencePiece vocabularies spell bytes and spaces with one or more bytes each); twice that
        // span plus a margin keeps cut prompts' last tokens those of the whole prompt.
        let longest = tokenizer.get_vocab(true).keys().map(String::len).max().unwrap_or(1).max(1);
        let max_prompt_bytes = 2 * max_tokens * longest + 4096;
        Ok(Self { tokenizer, eos_id, pad_id, max_tokens, max_prompt_bytes })
    }

    /// Token ids of one prompt: its last `max_tokens - 1` tokens, then EOS.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut start = prompt.len().saturating_sub(self.max_prompt_bytes);
        while !prompt.is_char_boundary(start) {
            start += 1;
        }
        let enc = self.tokenizer.encode(&prompt[start..], false).map_err(|e| anyhow!("tokenising a prompt: {e}"))?;
        let ids = enc.get_ids();
        let keep = ids.len().min(self.max_tokens - 1);
        let mut out = ids[ids.len() - keep..].to_vec();
        out.push(self.eos_id);
        Ok(out)
    }

    /// Token ids of a whole document, then EOS (the form of a prompt, untruncated: pretraining
    /// cuts documents into windows itself).
    pub fn encode_document(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| anyhow!("tokenising a document: {e}"))?;
        let mut out = enc.get_ids().to_vec();
        out.push(self.eos_id);
        Ok(out)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
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

/// Adds each non-empty code name of `vocab` as one token (matched before the BPE, longest first), so
/// a prompt's names are single tokens; returns how many were new.
pub fn add_name_tokens(tokenizer: &mut Tokenizer, vocab: &Vocab) -> usize {
    let codes = vocab.medications.iter().chain(&vocab.diagnoses).chain(&vocab.procedures);
    let names: Vec<AddedToken> =
        codes.filter(|c| !c.name.is_empty()).map(|c| AddedToken::from(c.name.clone(), false)).collect();
    tokenizer.add_tokens(&names)
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
