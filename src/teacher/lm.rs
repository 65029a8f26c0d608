//! The causal language model `leader pretrain` trains: the LLaMA decoder with its LM head (the
//! embedding table when the config ties them, else `lm_head.weight`) and next-token cross-entropy.
//! Full fine-tuning makes every base weight a variable (candle's differentiable ops then give their
//! gradients); LoRA keeps the base and the head frozen and trains adapters on the projections.

use super::llama::{Batch, Llama};
use super::lora::{LoraConfig, Pass};
use super::model::trainable_dtype;
use super::weights::{BaseModel, TrainableWeights};
use crate::nn::ops::frozen::linear;
use crate::nn::params::SeededVarMap;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// What pretraining trains.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainedWeights {
    /// Every weight of the base (small models).
    Full,
    /// LoRA adapters on the projections; the base and the LM head stay frozen (large models).
    Lora,
}

enum Variables {
    Full(TrainableWeights),
    Lora(SeededVarMap),
}

pub struct CausalLm {
    pub llama: Llama,
    /// `None`: tied to the embedding table.
    lm_head: Option<Tensor>,
    variables: Variables,
    pub pad_id: u32,
}

impl CausalLm {
    /// The base in `dtype` on `device`, with fresh adapters drawn from `seed` for LoRA (whose
    /// weights stay in f32, or f64 when computing in f64). Full fine-tuning keeps master weights in
    /// `dtype`, which must then be f32 or f64.
    pub fn new(
        base: &BaseModel,
        trained: TrainedWeights,
        lora: &LoraConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let pad_id = base.prompt_tokenizer(2)?.pad_id;
        let (llama, lm_head, variables) = match trained {
            TrainedWeights::Full => {
                ensure!(
                    matches!(dtype, DType::F32 | DType::F64),
                    "full pretraining keeps the weights it trains in the compute dtype: use f32 (or lora for bf16/f16)"
                );
                let vars = TrainableWeights::default();
                let builders = base.builders(dtype, device, Some(&vars))?;
                let llama = Llama::new(builders.decoder.clone(), None, &base.config)?;
                (llama, base.lm_head(&builders)?, Variables::Full(vars))
            }
            TrainedWeights::Lora => {
                let params = SeededVarMap::new(seed);
                let pvb = params.var_builder(trainable_dtype(dtype), device);
                let builders = base.builders(dtype, device, None)?;
                let llama = Llama::new(builders.decoder.clone(), Some((pvb, lora)), &base.config)?;
                (llama, base.lm_head(&builders)?, Variables::Lora(params))
            }
        };
        Ok(Self { llama, lm_head, variables, pad_id })
    }

    /// The trainable variables, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        match &self.variables {
            Variables::Full(vars) => vars.named_vars(),
            Variables::Lora(params) => params.named_vars(),
        }
    }

    /// The mean next-token cross-entropy over `rows` (right-padded into one batch: each row predicts
    /// its tokens 1.. from those before them), as an f64 scalar on the device, and how many tokens
    /// were predicted.
    pub fn loss(&self, rows: &[Vec<u32>], pass: Pass) -> Result<(Tensor, usize)> {
        let (dtype, device) = (self.llama.dtype(), self.llama.device());
        let batch = Batch::new(&self.llama, rows, self.pad_id, dtype, device)?;
        let t = batch.dims().1;
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (r, row) in rows.iter().enumerate() {
            for (i, &next) in row.iter().enumerate().skip(1) {
                positions.push((r * t + i - 1) as u32);
                targets.push(next);
            }
        }
        let n = targets.len();
        ensure!(n > 0, "a pretraining batch needs a row of at least two tokens");
        let h = self.llama.forward(&batch, pass)?;
        let h = h.reshape((rows.len() * t, ()))?.index_select(&Tensor::new(positions, device)?, 0)?;
        let normed = self.llama.final_norm(&h, pass)?;
        let head = self.lm_head.as_ref().unwrap_or(self.llama.embedding_table());
        let logits = linear(&normed, &pass.weight(head))?.to_dtype(trainable_dtype(dtype))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets, device)?)?;
        Ok((loss.to_dtype(DType::F64)?, n))
    }

    /// The model as a Hugging Face `LlamaForCausalLM` folder: `config.json`, `model.safetensors`
    /// (adapters merged, stored in `stored`; `lm_head.weight` when untied), `tokenizer.json`.
    pub fn save_hf(&self, dir: &Path, base: &BaseModel, stored: super::llama_config::StoredDtype) -> Result<()> {
        let dtype = stored.dtype();
        let mut tensors = HashMap::new();
        for (name, t) in self.llama.named_weights()? {
            tensors.insert(format!("model.{name}"), t.to_dtype(dtype)?.to_device(&Device::Cpu)?);
        }
        if let Some(head) = &self.lm_head {
            tensors.insert("lm_head.weight".to_string(), head.detach().to_dtype(dtype)?.to_device(&Device::Cpu)?);
        }
        let config = super::llama_config::LlamaConfig { stored_dtype: Some(stored), ..base.config.clone() };
        config.write_hf(&dir.join("config.json"))?;
        crate::io::write_safetensors(&dir.join("model.safetensors"), &tensors)?;
        base.tokenizer
            .save(dir.join("tokenizer.json"), false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", dir.join("tokenizer.json").display()))
    }

    /// The trainable variables' values (for a resumable checkpoint).
    pub fn trainable_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.trainable().into_iter().map(|(k, v)| Ok((k, v.as_tensor().to_device(&Device::Cpu)?))).collect()
    }

    /// Sets the trainable variables from a file written from [`Self::trainable_tensors`].
    pub fn load_trainable(&self, path: &Path) -> Result<()> {
        let device = self.llama.device();
        let saved = candle_core::safetensors::load(path, device).with_context(|| path.display().to_string())?;
        let vars = self.trainable();
        ensure!(
            saved.len() == vars.len(),
            "{}: {} tensors, but the model trains {}",
            path.display(),
            saved.len(),
            vars.len()
        );
        for (name, var) in vars {
            let t = saved.get(&name).with_context(|| format!("{}: no tensor {name}", path.display()))?;
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}
