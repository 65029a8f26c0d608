//! LEADER(T): the LLaMA decoder with LoRA adapters and a bias-free classification head H → M on the
//! pooled (last real token, final-normed) hidden state (reference §3.1), trained with BCE.

use super::llama::{Batch, Llama};
use super::lora::{LoraConfig, Pass};
use super::tokenizer::PromptTokenizer;
use super::weights::BaseModel;
use crate::nn::params::SeededVarMap;
use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Init;

/// The head's parameter name (the reference's `cls_head`).
pub const HEAD: &str = "cls_head.weight";

pub struct TeacherModel {
    pub llama: Llama,
    /// [M, H] in the trainable dtype (f32 master copy, f64 in gradient checks).
    pub head: Tensor,
    /// LoRA A/B and the head, named as in PEFT (`layers.0.self_attn.q_proj.lora_A.weight`, `cls_head.weight`).
    pub params: SeededVarMap,
    pub tokenizer: PromptTokenizer,
}

/// Trainable weights stay in f32 whatever the compute dtype (f64 when computing in f64).
pub fn trainable_dtype(compute: DType) -> DType {
    if compute == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

impl TeacherModel {
    /// The frozen base in `dtype` with fresh LoRA adapters (B = 0) and a N(0, 0.02) head of
    /// `num_medications` rows, all drawn from `seed`.
    pub fn new(
        base: &BaseModel,
        lora: &LoraConfig,
        num_medications: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
        max_tokens: usize,
    ) -> Result<Self> {
        ensure!(num_medications > 0, "the medication vocabulary is empty");
        let params = SeededVarMap::new(seed);
        let pvb = params.var_builder(trainable_dtype(dtype), device);
        let llama = Llama::new(base.var_builder(dtype, device)?, Some((pvb.clone(), lora)), &base.config)?;
        let head = pvb.get_with_hints(
            (num_medications, base.config.hidden_size),
            HEAD,
            Init::Randn { mean: 0.0, stdev: 0.02 },
        )?;
        Ok(Self { llama, head, params, tokenizer: base.prompt_tokenizer(max_tokens)? })
    }

    pub fn hidden_size(&self) -> usize {
        self.llama.cfg.hidden_size
    }

    pub fn num_medications(&self) -> usize {
        self.head.dim(0).expect("2-D head")
    }

    /// Tokenised, right-padded prompts.
    pub fn batch(&self, prompts: &[&str]) -> Result<Batch> {
        let rows = prompts.iter().map(|p| self.tokenizer.encode(p)).collect::<Result<Vec<_>>>()?;
        Ok(Batch::new(&self.llama, &rows, self.tokenizer.pad_id, self.llama.dtype(), self.llama.device())?)
    }

    /// Head logits [B, M] in the trainable dtype (the loss is computed in f32, or f64 in checks).
    pub fn logits(&self, pooled: &Tensor) -> Result<Tensor> {
        Ok(pooled.to_dtype(self.head.dtype())?.matmul(&self.head.t()?)?)
    }

    /// Mean BCE-with-logits against the multi-hot `labels` [B, M].
    pub fn loss(&self, pooled: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let x = self.logits(pooled)?;
        Ok(crate::nn::loss::bce_with_logits(&x, &labels.to_dtype(x.dtype())?)?)
    }

    /// Sigmoid probabilities [B, M] as f32 for `prompts` (frozen, fused ops).
    pub fn probabilities(&self, prompts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let batch = self.batch(prompts)?;
        let pooled = self.llama.pooled(&batch, Pass::frozen())?;
        Ok(candle_nn::ops::sigmoid(&self.logits(&pooled)?.detach())?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// The trainable variables, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.params.named_vars()
    }
}
