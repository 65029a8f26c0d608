//! A Hugging Face LLaMA `config.json` as transformers 4.x or 5.x writes it, read into the one
//! normalised [`LlamaConfig`] our decoder uses. Every key that changes the computation is honoured or
//! refused by name (never silently ignored); keys that do not (ids of the architecture, training-only
//! dropout, `pretraining_tp`, which only splits the same matmuls) are ignored. Definitions follow
//! transformers' `LlamaConfig`, `modeling_llama.py` and `modeling_rope_utils.py`.
//!
//! The two dialects differ in where RoPE lives: 4.x writes `rope_theta` at the top level and the
//! scaling in `rope_scaling` (`type` or `rope_type`), 5.x writes both inside `rope_parameters`; 4.x
//! names the stored dtype `torch_dtype`, 5.x `dtype`. We write the 4.x dialect, which both read.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// How RoPE frequencies are scaled (transformers' `rope_type`). transformers also knows `dynamic`,
/// `yarn` and `longrope`; those are refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Every frequency divided by `factor` (position interpolation).
    Linear { factor: f64 },
    /// LLaMA-3.1's wavelength-dependent interpolation (`_compute_llama3_parameters`).
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

impl RopeScaling {
    /// The scaling an HF rope object describes (`rope_type`, or 4.x's `type`; absent means default),
    /// `key` naming the object in errors.
    fn from_hf(key: &str, rope: &Map<String, Value>) -> Result<Option<Self>> {
        let kind = rope.get("rope_type").or_else(|| rope.get("type")).map(Value::as_str);
        let number = |name: &str| -> Result<f64> {
            rope.get(name)
                .and_then(Value::as_f64)
                .ok_or_else(|| anyhow!("{key}.{name}: expected a number (required by rope type {kind:?})"))
        };
        match kind {
            None | Some(Some("default")) => Ok(None),
            Some(Some("linear")) => Ok(Some(Self::Linear { factor: number("factor")? })),
            Some(Some("llama3")) => Ok(Some(Self::Llama3 {
                factor: number("factor")?,
                low_freq_factor: number("low_freq_factor")?,
                high_freq_factor: number("high_freq_factor")?,
                original_max_position_embeddings: number("original_max_position_embeddings")? as usize,
            })),
            Some(Some(other)) => {
                bail!("{key}.rope_type {other:?} is not supported: leader computes default, linear and llama3 RoPE")
            }
            Some(None) => bail!("{key}.rope_type: expected a string"),
        }
    }
}

/// The dtype the checkpoint's weights are stored in (`torch_dtype`, 5.x `dtype`). Weights are read in
/// whatever dtype each tensor has and converted to the run's precision; this records what the folder
/// declares and what a folder we write declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDtype {
    Float32,
    Bfloat16,
    Float16,
}

impl StoredDtype {
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Self::Float32 => candle_core::DType::F32,
            Self::Bfloat16 => candle_core::DType::BF16,
            Self::Float16 => candle_core::DType::F16,
        }
    }
}

/// A token id field that is a number or (LLaMA-3) a list of numbers; the first is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn first(&self) -> Option<u32> {
        match self {
            Self::One(id) => Some(*id),
            Self::Many(ids) => ids.first().copied(),
        }
    }
}
/// The LLaMA shapes leader can make with random weights: `tiny` (tests, the demo), `1b` (the
/// TinyLlama-1.1B shape) or `7b` (the LLaMA-7B shape, the reference's teacher).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelShape {
    #[value(name = "tiny")]
    #[serde(rename = "tiny")]
    Tiny,
    #[value(name = "1b")]
    #[serde(rename = "1b")]
    OneB,
    #[value(name = "7b")]
    #[serde(rename = "7b")]
    SevenB,
}

impl std::fmt::Display for ModelShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("every shape has a name");
        f.write_str(value.get_name())
    }
}

impl ModelShape {
    /// `tiny`, `1b` or `7b` (as in `random:SHAPE`).
    pub fn parse(name: &str) -> Result<Self> {
        <Self as clap::ValueEnum>::from_str(name, false)
            .map_err(|_| anyhow::anyhow!("unknown model shape {name:?}: expected tiny, 1b or 7b"))
    }

    /// The vocabulary size the shape has at least (the LLaMA tokenizer's 32,000; tiny keeps its
    /// trained tokenizer's).
    fn min_vocab(self) -> usize {
        if self == Self::Tiny {
            0
        } else {
            32_000
        }
    }

    /// The dtype `init-model` stores the shape in: f32 for tiny, bf16 for the large ones (7b:
    /// ~13.5 GB).
    pub fn stored_dtype(self) -> StoredDtype {
        if self == Self::Tiny {
            StoredDtype::Float32
        } else {
            StoredDtype::Bfloat16
        }
    }
}

/// The decoder's configuration, normalised from either dialect (see the module docs). Serialises as
/// a transformers 4.x `config.json` body (`init-model` adds the architecture markers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HfLlamaConfig")]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// `None`: default RoPE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<TokenIds>,
    /// The LM head shares the embedding matrix (no `lm_head.weight` is stored).
    pub tie_word_embeddings: bool,
    /// q/k/v/o projections carry biases.
    pub attention_bias: bool,
    /// gate/up/down projections carry biases.
    pub mlp_bias: bool,
    #[serde(rename = "torch_dtype", skip_serializing_if = "Option::is_none")]
    pub stored_dtype: Option<StoredDtype>,
}

/// `config.json` as written, both dialects; defaults are transformers' `LlamaConfig` defaults.
#[derive(Deserialize)]
struct HfLlamaConfig {
    model_type: Option<String>,
    hidden_act: Option<String>,
    #[serde(default = "defaults::hidden_size")]
    hidden_size: usize,
    #[serde(default = "defaults::intermediate_size")]
    intermediate_size: usize,
    #[serde(default = "defaults::layers")]
    num_hidden_layers: usize,
    #[serde(default = "defaults::heads")]
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "defaults::rms_norm_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<Map<String, Value>>,
    rope_parameters: Option<Map<String, Value>>,
    partial_rotary_factor: Option<f64>,
    #[serde(default = "defaults::max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "defaults::vocab_size")]
    vocab_size: usize,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
    pad_token_id: Option<TokenIds>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    torch_dtype: Option<Value>,
    dtype: Option<Value>,
}

mod defaults {
    pub fn hidden_size() -> usize {
        4096
    }
    pub fn intermediate_size() -> usize {
        11008
    }
    pub fn layers() -> usize {
        32
    }
    pub fn heads() -> usize {
        32
    }
    pub fn rms_norm_eps() -> f64 {
        1e-6
    }
    pub fn max_positions() -> usize {
        2048
    }
    pub fn vocab_size() -> usize {
        32000
    }
}

impl HfLlamaConfig {
    /// θ from `rope_parameters.rope_theta` (5.x) or the top-level `rope_theta` (4.x), default 10,000;
    /// both present and different is refused rather than guessed.
    fn rope_theta(&self) -> Result<f64> {
        let inner = match self.rope_parameters.as_ref().and_then(|p| p.get("rope_theta")) {
            Some(v) => Some(v.as_f64().ok_or_else(|| anyhow!("rope_parameters.rope_theta: expected a number"))?),
            None => None,
        };
        match (inner, self.rope_theta) {
            (Some(a), Some(b)) if a != b => {
                bail!("rope_parameters.rope_theta {a} and rope_theta {b} disagree: which one the model was trained with is unknown")
            }
            (Some(theta), _) | (None, Some(theta)) => Ok(theta),
            (None, None) => Ok(10_000.0),
        }
    }

    /// The scaling from `rope_parameters` (5.x) or `rope_scaling` (4.x); both present and different is
    /// refused.
    fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
        let params = self.rope_parameters.as_ref().map(|p| RopeScaling::from_hf("rope_parameters", p)).transpose()?;
        let legacy = self.rope_scaling.as_ref().map(|p| RopeScaling::from_hf("rope_scaling", p)).transpose()?;
        for (key, rope) in [("rope_parameters", &self.rope_parameters), ("rope_scaling", &self.rope_scaling)] {
            let partial = rope.as_ref().and_then(|p| p.get("partial_rotary_factor")).and_then(Value::as_f64);
            if let Some(f) = partial.or(self.partial_rotary_factor).filter(|f| *f != 1.0) {
                bail!("{key}: partial_rotary_factor {f} is not supported (LLaMA rotates the whole head)");
            }
        }
        match (params, legacy) {
            (Some(a), Some(b)) if a != b => bail!("rope_parameters {a:?} and rope_scaling {b:?} disagree"),
            (Some(scaling), _) | (None, Some(scaling)) => Ok(scaling),
            (None, None) => Ok(None),
        }
    }

    /// `dtype` (5.x) or `torch_dtype` (4.x): float32, bfloat16 or float16 (`torch.`-prefixed too).
    fn stored_dtype(&self) -> Result<Option<StoredDtype>> {
        let (key, value) = match (&self.dtype, &self.torch_dtype) {
            (Some(v), _) => ("dtype", v),
            (None, Some(v)) => ("torch_dtype", v),
            (None, None) => return Ok(None),
        };
        let name = value.as_str().ok_or_else(|| anyhow!("{key}: expected a string"))?;
        let name = name.strip_prefix("torch.").unwrap_or(name);
        match name {
            "float32" | "float" => Ok(Some(StoredDtype::Float32)),
            "bfloat16" => Ok(Some(StoredDtype::Bfloat16)),
            "float16" | "half" => Ok(Some(StoredDtype::Float16)),
            "auto" => Ok(None),
            other => bail!("{key} {other:?} is not supported: expected float32, bfloat16 or float16"),
        }
    }
}

impl TryFrom<HfLlamaConfig> for LlamaConfig {
    type Error = anyhow::Error;

    fn try_from(hf: HfLlamaConfig) -> Result<Self> {
        if let Some(kind) = hf.model_type.as_deref().filter(|k| *k != "llama") {
            bail!("model_type {kind:?} is not a LLaMA: leader's decoder reads model_type \"llama\" checkpoints");
        }
        if let Some(act) = hf.hidden_act.as_deref().filter(|a| *a != "silu") {
            bail!("hidden_act {act:?} is not supported: LLaMA's MLP uses \"silu\"");
        }
        let heads = hf.num_attention_heads;
        if heads == 0 {
            bail!("num_attention_heads must be positive");
        }
        let cfg = Self {
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(heads),
            head_dim: hf.head_dim.unwrap_or(hf.hidden_size / heads),
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta: hf.rope_theta()?,
            rope_scaling: hf.rope_scaling()?,
            max_position_embeddings: hf.max_position_embeddings,
            vocab_size: hf.vocab_size,
            stored_dtype: hf.stored_dtype()?,
            bos_token_id: hf.bos_token_id,
            eos_token_id: hf.eos_token_id,
            pad_token_id: hf.pad_token_id,
            tie_word_embeddings: hf.tie_word_embeddings,
            attention_bias: hf.attention_bias,
            mlp_bias: hf.mlp_bias,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl LlamaConfig {
    pub fn load(path: &Path) -> Result<Self> {
        crate::io::read_json(path)
    }

    /// Writes `config.json` as transformers expects it: our fields plus the architecture markers.
    pub fn write_hf(&self, path: &Path) -> Result<()> {
        let mut json = serde_json::to_value(self)?;
        let obj = json.as_object_mut().expect("config serialises to an object");
        obj.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
        obj.insert("model_type".into(), "llama".into());
        obj.insert("hidden_act".into(), "silu".into());
        crate::io::write_json(path, &json)
    }

    fn validate(&self) -> Result<()> {
        let (h, kv) = (self.num_attention_heads, self.num_key_value_heads);
        if h == 0 || kv == 0 || !h.is_multiple_of(kv) {
            bail!("num_attention_heads {h} must be a positive multiple of num_key_value_heads {kv}");
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            bail!("head dimension {} must be positive and even for RoPE", self.head_dim);
        }
        Ok(())
    }

    /// The RoPE inverse frequencies, one per pair of head dimensions, scaled as transformers'
    /// `_compute_linear_scaling_rope_parameters` / `_compute_llama3_parameters`.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim;
        let base = (0..d).step_by(2).map(|i| 1.0 / self.rope_theta.powf(i as f64 / d as f64));
        match self.rope_scaling {
            None => base.collect(),
            Some(RopeScaling::Linear { factor }) => base.map(|f| f / factor).collect(),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = original_max_position_embeddings as f64;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                base.map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
            }
        }
    }

    /// The configuration of a [`ModelShape`] with `vocab_size` tokens (at least the shape's minimum).
    pub fn shape(shape: ModelShape, vocab_size: usize) -> Self {
        let (hidden, inter, layers, heads, kv) = match shape {
            ModelShape::Tiny => (64, 176, 2, 4, 2),
            ModelShape::OneB => (2048, 5632, 22, 32, 4),
            ModelShape::SevenB => (4096, 11008, 32, 32, 32),
        };
        Self {
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: hidden / heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 4096,
            vocab_size: vocab_size.max(shape.min_vocab()),
            bos_token_id: Some(TokenIds::One(1)),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(TokenIds::One(0)),
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            stored_dtype: Some(shape.stored_dtype()),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: &str = r#""hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
        "num_attention_heads": 4, "max_position_embeddings": 256, "vocab_size": 100"#;

    fn parse(extra: &str) -> Result<LlamaConfig> {
        Ok(serde_json::from_str(&format!("{{{SHAPE}{extra}}}"))?)
    }

    #[test]
    fn reads_llama3_config_and_scales_low_frequencies() {
        let cfg = parse(
            r#", "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "eos_token_id": [7, 8], "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16""#,
        )
        .unwrap();
        assert_eq!((cfg.head_dim, cfg.num_key_value_heads), (16, 2));
        assert_eq!(cfg.eos_token_id.as_ref().and_then(TokenIds::first), Some(7));
        assert_eq!(cfg.stored_dtype, Some(StoredDtype::Bfloat16));
        let f = cfg.inv_freq();
        // Highest frequency (wavelength 2π < 8192/4): unchanged, 1.
        assert_eq!(f[0], 1.0);
        // Lowest: base^(-14/16) with base 5e5 → wavelength ≈ 6.2e5 > 8192: divided by the factor 8.
        let lowest = 500000f64.powf(-14.0 / 16.0);
        assert!((f[7] - lowest / 8.0).abs() < 1e-15);
    }

    /// transformers 5 writes θ and the scaling inside `rope_parameters` and the dtype as `dtype`; an
    /// earlier reader ignored that object and fell back to θ = 10,000.
    #[test]
    fn reads_the_transformers_5_dialect() {
        let cfg = parse(
            r#", "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}, "dtype": "float16",
            "tie_word_embeddings": true, "head_dim": 8, "attention_bias": true"#,
        )
        .unwrap();
        assert_eq!((cfg.rope_theta, cfg.rope_scaling.clone()), (100_000.0, None));
        assert_eq!((cfg.stored_dtype, cfg.head_dim), (Some(StoredDtype::Float16), 8));
        assert!(cfg.tie_word_embeddings && cfg.attention_bias && !cfg.mlp_bias);
        assert_eq!(cfg.inv_freq()[1], 1.0 / 100_000f64.powf(2.0 / 8.0));
        let linear =
            parse(r#", "rope_parameters": {"rope_theta": 500.0, "rope_type": "linear", "factor": 4.0}"#).unwrap();
        assert_eq!(linear.rope_scaling, Some(RopeScaling::Linear { factor: 4.0 }));
        assert_eq!(linear.inv_freq()[1], 1.0 / 500f64.powf(2.0 / 16.0) / 4.0);
    }

    #[test]
    fn reads_the_transformers_4_legacy_scaling_key_and_defaults() {
        let cfg = parse(r#", "rope_scaling": {"type": "linear", "factor": 2.0}, "torch_dtype": "float32""#).unwrap();
        assert_eq!(cfg.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
        assert_eq!((cfg.rope_theta, cfg.rms_norm_eps, cfg.stored_dtype), (10_000.0, 1e-6, Some(StoredDtype::Float32)));
        let null = parse(r#", "rope_scaling": null, "num_key_value_heads": null"#).unwrap();
        assert_eq!((null.rope_scaling, null.num_key_value_heads), (None, 4));
    }

    #[test]
    fn refuses_what_it_cannot_compute_by_name() {
        for (extra, expected) in [
            (
                r#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#,
                r#"rope_scaling.rope_type "yarn" is not supported"#,
            ),
            (
                r#", "rope_parameters": {"rope_type": "dynamic", "factor": 2.0}"#,
                r#"rope_parameters.rope_type "dynamic""#,
            ),
            (r#", "rope_scaling": {"rope_type": "linear"}"#, "rope_scaling.factor: expected a number"),
            (r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#, "rope_scaling.low_freq_factor"),
            (r#", "rope_theta": 10000.0, "rope_parameters": {"rope_theta": 500000.0}"#, "disagree"),
            (r#", "partial_rotary_factor": 0.5"#, "partial_rotary_factor 0.5 is not supported"),
            (r#", "model_type": "mistral""#, r#"model_type "mistral" is not a LLaMA"#),
            (r#", "hidden_act": "gelu""#, r#"hidden_act "gelu" is not supported"#),
            (r#", "dtype": "float8_e4m3fn""#, r#"dtype "float8_e4m3fn" is not supported"#),
            (r#", "num_key_value_heads": 3"#, "positive multiple of num_key_value_heads 3"),
            (r#", "head_dim": 7"#, "must be positive and even"),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
    }

    /// What `init-model` writes reads back to the same configuration.
    #[test]
    fn a_written_config_reads_back_unchanged() {
        for scaling in [None, Some(RopeScaling::Linear { factor: 2.0 })] {
            let mut cfg = LlamaConfig::shape(ModelShape::Tiny, 300);
            cfg.rope_scaling = scaling;
            let back: LlamaConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
            assert_eq!(back, cfg);
        }
    }
}
