//! Checkpoints in PEFT's layout, so adapters move between this crate and Python PEFT:
//! `adapter_config.json`, `adapter_model.safetensors` (keys
//! `base_model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, the reference's SEQ_CLS form), plus
//! `head.safetensors` (`cls_head.weight`; the standardised head adds `cls_head.bias` and its
//! statistics `cls_head.pooled_mean`, `cls_head.pooled_std`), `vocab.json` and `teacher.json` (what the run was
//! trained on). Loading also accepts PEFT's causal-LM prefix `base_model.model.model.` and the
//! adapter name `.default.` that older PEFT versions write.

use super::lora::LoraConfig;
use super::model::{HeadKind, TeacherModel, HEAD_PREFIX};
use crate::data::vocab::Vocab;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const PREFIX: &str = "base_model.model.";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub bias: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
}

impl AdapterConfig {
    pub fn lora(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: self.target_modules.clone(),
        }
    }
}

/// What a teacher checkpoint was trained on; checked before it is applied to data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherMeta {
    /// `--model` as given: a folder, a hub id or `random:SHAPE`.
    pub base_model: String,
    pub revision: Option<String>,
    /// The seed of a `random:SHAPE` base's weights.
    pub base_seed: u64,
    /// [`super::weights::BaseModel::fingerprint`] of the base the adapters were trained on: a base
    /// folder rewritten since (another `init-model`, other weights) is refused.
    pub base_fingerprint: String,
    pub max_tokens: usize,
    /// What the head reads (teachers saved before the choice existed had the reference head).
    #[serde(default)]
    pub head: HeadKind,
    pub hidden_size: usize,
    pub num_medications: usize,
    pub vocab_fingerprint: String,
    /// Optimiser steps taken when this checkpoint was written.
    pub step: u64,
    /// Validation PRAUC at that step (None before the first validation).
    pub valid_prauc: Option<f64>,
}

/// Writes the adapter, head, vocabulary and metadata into `dir` (the caller makes `dir` atomic).
pub fn save(dir: &Path, model: &TeacherModel, lora: &LoraConfig, vocab: &Vocab, meta: &TeacherMeta) -> Result<()> {
    let cfg = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: Some("SEQ_CLS".into()),
        r: lora.r,
        lora_alpha: lora.alpha,
        lora_dropout: lora.dropout,
        target_modules: lora.target_modules.clone(),
        base_model_name_or_path: Some(meta.base_model.clone()),
        bias: Some("none".into()),
        fan_in_fan_out: false,
        inference_mode: true,
    };
    crate::io::write_json(&dir.join("adapter_config.json"), &cfg)?;
    let mut adapter = HashMap::new();
    let mut head = HashMap::new();
    for (name, var) in model.trainable().into_iter().chain(model.head_statistics()) {
        let t = var.as_tensor().to_device(&Device::Cpu)?;
        if name.starts_with(HEAD_PREFIX) {
            head.insert(name, t);
        } else {
            adapter.insert(format!("{PREFIX}{name}"), t);
        }
    }
    crate::io::write_safetensors(&dir.join("adapter_model.safetensors"), &adapter)?;
    crate::io::write_safetensors(&dir.join("head.safetensors"), &head)?;
    vocab.save(&dir.join("vocab.json"))?;
    crate::io::write_json(&dir.join("teacher.json"), meta)
}

pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let cfg: AdapterConfig = crate::io::read_json(&dir.join("adapter_config.json"))?;
    ensure!(cfg.peft_type == "LORA", "{}: peft_type {:?}, expected \"LORA\"", dir.display(), cfg.peft_type);
    ensure!(!cfg.fan_in_fan_out, "{}: fan_in_fan_out adapters are not supported", dir.display());
    Ok(cfg)
}

/// Our parameter name for a PEFT key, or None for a key that is not a LoRA weight or head.
fn our_name(key: &str) -> Option<String> {
    if let Some(at) = key.find(HEAD_PREFIX) {
        return Some(key[at..].to_string());
    }
    let rest = key.strip_prefix("base_model.model.model.").or_else(|| key.strip_prefix(PREFIX))?;
    Some(rest.replace(".lora_A.default.weight", ".lora_A.weight").replace(".lora_B.default.weight", ".lora_B.weight"))
}

/// Sets the model's adapter and head from `dir`. Every trainable variable must be found with its
/// shape, and every tensor in the files must be used.
pub fn load_into(dir: &Path, model: &TeacherModel) -> Result<()> {
    let mut found: HashMap<String, (String, Tensor)> = HashMap::new();
    for file in ["adapter_model.safetensors", "head.safetensors"] {
        let path = dir.join(file);
        if file == "head.safetensors" && !path.exists() {
            continue;
        }
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        for (key, t) in tensors {
            let Some(name) = our_name(&key) else { bail!("{}: unexpected tensor {key:?}", path.display()) };
            found.insert(name, (format!("{}:{key}", path.display()), t));
        }
    }
    for (name, var) in model.trainable().iter().chain(&model.head_statistics()) {
        let Some((origin, t)) = found.remove(name) else { bail!("{}: no weight for {name}", dir.display()) };
        ensure!(t.shape() == var.shape(), "{origin}: shape {:?}, the model expects {:?}", t.shape(), var.shape());
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    if let Some((origin, _)) = found.values().next() {
        bail!("{origin}: this tensor matches no LoRA module of the model (target_modules or layer count differ)");
    }
    Ok(())
}
