//! A frozen linear layer with an optional LoRA adapter: `W x + (α/r) · B(A(dropout(x)))` (reference
//! §3.2; PEFT's `lora.Linear`). A is Kaiming-uniform(a=√5), i.e. U(±1/√in), B is zero, so training
//! starts from the base model's output.

use crate::nn::rng::{fnv1a, TensorRng};
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// The projections LoRA may wrap, in PEFT's naming.
pub const TARGET_MODULES: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
}

/// Where dropout masks come from in one forward pass: `(seed, step, micro-batch)`; each module adds
/// its own id, so a recomputed layer (activation checkpointing) redraws the very same masks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u64,
    pub micro: u64,
}

/// How a forward pass runs. The ops are the same either way (fused forwards whose backward the
/// frozen-operand ops of `nn::ops::frozen` state); a pass only decides dropout and whether the
/// trainable weights record a graph.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// LoRA dropout on (training) or off (`None`: evaluation, gradient checks).
    pub dropout: Option<DropoutKey>,
    /// Use detached copies of the trainable weights so no graph is recorded (the first forward of
    /// activation checkpointing).
    pub detach: bool,
}

impl Pass {
    /// Inference: no dropout, no graph.
    pub fn frozen() -> Self {
        Self { dropout: None, detach: true }
    }

    /// Training (graph recorded), with dropout when `dropout` is given.
    pub fn train(dropout: Option<DropoutKey>) -> Self {
        Self { dropout, detach: false }
    }

    /// A weight as this pass computes with it: detached when the pass records nothing (so a base
    /// weight trained in full fine-tuning takes the frozen ops' path there too).
    pub fn weight(&self, w: &Tensor) -> Tensor {
        if self.detach {
            w.detach()
        } else {
            w.clone()
        }
    }
}

/// Inverted-dropout mask drawn from `(key, module id)`. CPU masks come from the seeded
/// [`TensorRng`]; on an accelerator the device generator is seeded with the same derived seed (drawing
/// billions of values on the host would dominate a 7B step), so masks are deterministic per device.
fn dropout(x: &Tensor, p: f64, key: DropoutKey, module: u64) -> Result<Tensor> {
    let seed = fnv1a(&[key.seed, key.step, key.micro, module].map(u64::to_le_bytes).concat());
    let mask = if x.device().is_cpu() {
        TensorRng::new(seed).dropout_mask(x.shape(), p, x.dtype(), x.device())?
    } else {
        x.device().set_seed(seed)?;
        let keep = Tensor::rand(0f32, 1f32, x.shape(), x.device())?.ge(p)?;
        (keep.to_dtype(DType::F32)? * (1.0 / (1.0 - p)))?.to_dtype(x.dtype())?
    };
    x.mul(&mask)
}

struct Adapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

/// A projection's shape: `in_dim` → `out_dim`, with a stored `bias` or none.
#[derive(Debug, Clone, Copy)]
pub struct LinearShape {
    pub in_dim: usize,
    pub out_dim: usize,
    pub bias: bool,
}

pub struct LoraLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
    /// A stable per-module id for dropout streams.
    id: u64,
}

impl LoraLinear {
    /// `base` holds the frozen `weight` [out, in] (and `bias` [out] if the shape has one); `lora` (if
    /// this module is targeted) is where `lora_A.weight` [r, in] and `lora_B.weight` [out, r] are
    /// created or found.
    pub fn new(base: VarBuilder, lora: Option<(VarBuilder, &LoraConfig)>, shape: LinearShape, id: u64) -> Result<Self> {
        let LinearShape { in_dim, out_dim, bias } = shape;
        let weight = base.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(base.get(out_dim, "bias")?) } else { None };
        let adapter = match lora {
            Some((vb, cfg)) => {
                let bound = 1.0 / (in_dim as f64).sqrt();
                let a = vb.pp("lora_A").get_with_hints(
                    (cfg.r, in_dim),
                    "weight",
                    Init::Uniform { lo: -bound, up: bound },
                )?;
                let b = vb.pp("lora_B").get_with_hints((out_dim, cfg.r), "weight", Init::Const(0.0))?;
                Some(Adapter { a, b, scale: cfg.alpha / cfg.r as f64, dropout: cfg.dropout })
            }
            None => None,
        };
        Ok(Self { weight, bias, adapter, id })
    }

    /// The base weight [out, in].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The stored bias [out], if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The weight with the adapter folded in, `W + (α/r)·B·A` [out, in], in the weight's dtype.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let w = self.weight.detach();
        let Some(ad) = &self.adapter else { return Ok(w) };
        let dtype = w.dtype();
        let delta = (ad.b.detach().matmul(&ad.a.detach())? * ad.scale)?;
        (w.to_dtype(delta.dtype())? + delta)?.to_dtype(dtype)
    }

    /// `x` is [N, in] (callers flatten batch and time).
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        // A frozen base weight gets no gradient (candle's matmul would compute one); a trainable one
        // (full fine-tuning) does.
        let mut y = crate::nn::ops::frozen::linear(x, &pass.weight(&self.weight))?;
        if let Some(bias) = &self.bias {
            y = crate::nn::ops::frozen::add_bias(&y, &pass.weight(bias))?;
        }
        let Some(ad) = &self.adapter else { return Ok(y) };
        let (a, b) = if pass.detach { (ad.a.detach(), ad.b.detach()) } else { (ad.a.clone(), ad.b.clone()) };
        let xd = match pass.dropout {
            Some(key) if ad.dropout > 0.0 => dropout(x, ad.dropout, key, self.id)?,
            _ => x.clone(),
        };
        let delta = xd.matmul(&a.to_dtype(x.dtype())?.t()?)?.matmul(&b.to_dtype(x.dtype())?.t()?)?;
        y + (delta * ad.scale)?
    }
}
