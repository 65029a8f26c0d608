//! The subset of a Hugging Face LLaMA `config.json` our decoder reads. Unknown fields are ignored
//! (real configs carry many), so LLaMA-1/2/3 and other LLaMA-shaped checkpoints load as they are.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// LLaMA-3 frequency-dependent RoPE scaling (`rope_scaling` with `rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    pub factor: f64,
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    #[serde(default = "default_original_max")]
    pub original_max_position_embeddings: usize,
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}
fn default_original_max() -> usize {
    8192
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
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
    pub fn stored_dtype(self) -> candle_core::DType {
        if self == Self::Tiny {
            candle_core::DType::F32
        } else {
            candle_core::DType::BF16
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Present in some newer configs; otherwise hidden_size / num_attention_heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<TokenIds>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let cfg: Self = crate::io::read_json(path)?;
        cfg.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn validate(&self) -> Result<()> {
        let (h, kv) = (self.num_attention_heads, self.num_kv_heads());
        if h == 0 || kv == 0 || !h.is_multiple_of(kv) {
            bail!("num_attention_heads {h} must be a positive multiple of num_key_value_heads {kv}");
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(h) {
            bail!("hidden_size {} is not divisible by num_attention_heads {h}", self.hidden_size);
        }
        if !self.head_dim().is_multiple_of(2) {
            bail!("head dimension {} must be even for RoPE", self.head_dim());
        }
        if let Some(s) = &self.rope_scaling {
            if !matches!(s.rope_type.as_str(), "llama3" | "default") {
                bail!("rope_scaling type {:?} is not supported (expected \"llama3\" or \"default\")", s.rope_type);
            }
        }
        Ok(())
    }

    /// The RoPE inverse frequencies, one per pair of head dimensions, with LLaMA-3 scaling applied
    /// exactly as `transformers`' `_compute_llama3_parameters`.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim();
        let base: Vec<f64> = (0..d).step_by(2).map(|i| 1.0 / self.rope_theta.powf(i as f64 / d as f64)).collect();
        let Some(s) = self.rope_scaling.as_ref().filter(|s| s.rope_type == "llama3") else { return base };
        let old = s.original_max_position_embeddings as f64;
        let (low_wavelen, high_wavelen) = (old / s.low_freq_factor, old / s.high_freq_factor);
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }

    /// The configuration of a [`ModelShape`] with `vocab_size` tokens (at least the shape's minimum).
    pub fn shape(shape: ModelShape, vocab_size: usize) -> Result<Self> {
        let (hidden, inter, layers, heads, kv) = match shape {
            ModelShape::Tiny => (64, 176, 2, 4, 2),
            ModelShape::OneB => (2048, 5632, 22, 32, 4),
            ModelShape::SevenB => (4096, 11008, 32, 32, 32),
        };
        let vocab_size = vocab_size.max(shape.min_vocab());
        Ok(Self {
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 4096,
            vocab_size,
            bos_token_id: Some(TokenIds::One(1)),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(TokenIds::One(0)),
            tie_word_embeddings: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llama3_config_and_scales_low_frequencies() {
        let json = r#"{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "max_position_embeddings": 131072, "vocab_size": 100, "eos_token_id": [7, 8],
            "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"}"#;
        let cfg: LlamaConfig = serde_json::from_str(json).unwrap();
        cfg.validate().unwrap();
        assert_eq!((cfg.head_dim(), cfg.num_kv_heads()), (16, 2));
        assert_eq!(cfg.eos_token_id.as_ref().and_then(TokenIds::first), Some(7));
        let f = cfg.inv_freq();
        // Highest frequency (wavelength 2π < 8192/4): unchanged, 1.
        assert_eq!(f[0], 1.0);
        // Lowest: base^(-14/16) with base 5e5 → wavelength ≈ 6.2e5 > 8192: divided by the factor 8.
        let lowest = 500000f64.powf(-14.0 / 16.0);
        assert!((f[7] - lowest / 8.0).abs() < 1e-15);
    }
}
