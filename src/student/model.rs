//! The LEADER(S) network (reference doc §4): a shared code embedding, three set encoders pooled per
//! visit, a profile prompt in the medication stream's first slot, one shared visit encoder and an MLP
//! over the three pooled histories. All ops are differentiable (slow layer norm, `softmax` over the
//! last dim), so the same forward serves training and scoring.

use super::batch::{Batch, CodeSets, Masks};
use super::config::ModelDims;
use crate::nn::rng::TensorRng;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, Init, Linear, VarBuilder};

/// A linear layer initialised like PyTorch's `nn.Linear` (weight and bias uniform in ±1/√fan_in), as
/// the reference is; candle's `linear` draws Kaiming-normal weights about 2.4 times larger.
pub fn torch_linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform { lo: -bound, up: bound };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias { Some(vb.get_with_hints(out_dim, "bias", init)?) } else { None };
    Ok(Linear::new(weight, bias))
}

/// Dropout that is active only when it holds a random stream (training).
pub struct Dropout<'a>(Option<&'a mut TensorRng>);

impl<'a> Dropout<'a> {
    pub fn off() -> Self {
        Self(None)
    }

    pub fn on(rng: &'a mut TensorRng) -> Self {
        Self(Some(rng))
    }

    fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        match &mut self.0 {
            Some(rng) => rng.dropout(x, p),
            None => Ok(x.clone()),
        }
    }
}

/// Affine layer norm through `layer_norm_slow` (candle's fused one has no backward).
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps: eps as f32 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps)
    }
}

/// Multi-head self-attention with a key mask (bias-free Q/K/V, output projection with bias).
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    pub fn new(vb: VarBuilder, d: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            q: torch_linear(d, d, false, vb.pp("q"))?,
            k: torch_linear(d, d, false, vb.pp("k"))?,
            v: torch_linear(d, d, false, vb.pp("v"))?,
            out: torch_linear(d, d, true, vb.pp("out"))?,
            heads,
        })
    }

    /// `x` [N, S, d], `key_bias` [N, 1, 1, S].
    pub fn forward(&self, x: &Tensor, key_bias: &Tensor, p_drop: f64, drop: &mut Dropout) -> Result<Tensor> {
        let (n, s, d) = x.dims3()?;
        let dk = d / self.heads;
        let split = |t: Tensor| t.reshape((n, s, self.heads, dk))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (split(self.q.forward(x)?)?, split(self.k.forward(x)?)?, split(self.v.forward(x)?)?);
        let scores = (q.matmul(&k.t()?)? / (dk as f64).sqrt())?.broadcast_add(key_bias)?;
        let probs = drop.apply(&candle_nn::ops::softmax(&scores, D::Minus1)?, p_drop)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, s, d))?;
        self.out.forward(&ctx)
    }
}

/// The reference's pre-LN transformer block (§4.4): tanh-GELU FFN and an extra dropout on the output.
pub struct TransformerBlock {
    ln1: LayerNorm,
    attention: Attention,
    ln2: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    p_hidden: f64,
    p_attention: f64,
}

impl TransformerBlock {
    pub fn new(vb: VarBuilder, cfg: &ModelDims) -> Result<Self> {
        let d = cfg.hidden;
        Ok(Self {
            ln1: LayerNorm::new(vb.pp("ln1"), d, cfg.layer_norm_eps)?,
            attention: Attention::new(vb.pp("attention"), d, cfg.heads)?,
            ln2: LayerNorm::new(vb.pp("ln2"), d, cfg.layer_norm_eps)?,
            ffn_in: torch_linear(d, cfg.ffn, true, vb.pp("ffn_in"))?,
            ffn_out: torch_linear(cfg.ffn, d, true, vb.pp("ffn_out"))?,
            p_hidden: cfg.hidden_dropout,
            p_attention: cfg.attention_dropout,
        })
    }

    pub fn forward(&self, x: &Tensor, key_bias: &Tensor, drop: &mut Dropout) -> Result<Tensor> {
        let attended = self.attention.forward(&self.ln1.forward(x)?, key_bias, self.p_attention, drop)?;
        let x = (x + drop.apply(&attended, self.p_hidden)?)?;
        let inner = drop.apply(&self.ffn_in.forward(&self.ln2.forward(&x)?)?.gelu()?, self.p_hidden)?;
        let x = (&x + drop.apply(&self.ffn_out.forward(&inner)?, self.p_hidden)?)?;
        drop.apply(&x, self.p_hidden)
    }
}

/// Mean over the valid rows of `x` [N, S, d] → [N, d]; all-padding rows give zeros.
pub fn masked_mean(x: &Tensor, masks: &Masks) -> Result<Tensor> {
    x.broadcast_mul(&masks.mask)?.sum(1)?.broadcast_mul(&masks.inv_count)
}

/// Profile encoder: one embedding per field, concatenated and projected to d by the medication head
/// (the reference builds the medication prompt with `diag_head`, §7.9; ours has only the head it uses).
pub struct ProfileEncoder {
    fields: Vec<Embedding>,
    med_head: Linear,
}

impl ProfileEncoder {
    pub fn new(vb: VarBuilder, field_sizes: &[usize], d: usize) -> Result<Self> {
        if field_sizes.is_empty() {
            candle_core::bail!("the vocabulary has no profile fields; the profile encoder needs at least one");
        }
        let fields = field_sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| embedding(n, d, vb.pp(format!("field{i}"))))
            .collect::<Result<_>>()?;
        Ok(Self { fields, med_head: torch_linear(d * field_sizes.len(), d, true, vb.pp("med_head"))? })
    }

    /// `profile` [B, F] value indices → [B, d].
    pub fn forward(&self, profile: &Tensor) -> Result<Tensor> {
        let parts = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, e)| e.forward(&profile.narrow(1, i, 1)?.squeeze(1)?))
            .collect::<Result<Vec<_>>>()?;
        self.med_head.forward(&Tensor::cat(&parts, 1)?)
    }
}

/// Vocabulary-dependent sizes of the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelShape {
    /// Unified vocabulary size (PAD + M + diagnoses + procedures).
    pub num_codes: usize,
    pub num_medications: usize,
    /// Embedding rows per profile field.
    pub profile_sizes: Vec<usize>,
}

/// What the forward pass returns: logits [B, M], the 2d hidden vector the KD loss projects [B, 2d]
/// and the profile prompt [B, d] the alignment loss uses.
pub struct Output {
    pub logits: Tensor,
    pub hidden: Tensor,
    pub profile_prompt: Tensor,
}

pub struct Leader {
    codes: Embedding,
    diagnosis_set: TransformerBlock,
    procedure_set: TransformerBlock,
    medication_set: TransformerBlock,
    visit: TransformerBlock,
    profile: ProfileEncoder,
    head_hidden: Linear,
    head_out: Linear,
    d: usize,
}

impl Leader {
    pub fn new(vb: VarBuilder, cfg: &ModelDims, shape: &ModelShape) -> Result<Self> {
        let d = cfg.hidden;
        Ok(Self {
            codes: embedding(shape.num_codes, d, vb.pp("codes"))?,
            diagnosis_set: TransformerBlock::new(vb.pp("diagnosis_set"), cfg)?,
            procedure_set: TransformerBlock::new(vb.pp("procedure_set"), cfg)?,
            medication_set: TransformerBlock::new(vb.pp("medication_set"), cfg)?,
            visit: TransformerBlock::new(vb.pp("visit"), cfg)?,
            profile: ProfileEncoder::new(vb.pp("profile"), &shape.profile_sizes, d)?,
            head_hidden: torch_linear(3 * d, 2 * d, true, vb.pp("head_hidden"))?,
            head_out: torch_linear(2 * d, shape.num_medications, true, vb.pp("head_out"))?,
            d,
        })
    }

    fn encode_sets(&self, block: &TransformerBlock, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        let x = block.forward(&self.codes.forward(&sets.ids)?, &sets.masks.key_bias, drop)?;
        masked_mean(&x, &sets.masks)
    }

    /// Encodes medication sets with the medication set encoder ([N, d]); the alignment loss uses it
    /// for the target visit's medications.
    pub fn encode_medication_sets(&self, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        self.encode_sets(&self.medication_set, sets, drop)
    }

    pub fn forward(&self, batch: &Batch, drop: &mut Dropout) -> Result<Output> {
        let (b, v, d) = (batch.size, batch.visits, self.d);
        let diagnoses = self.encode_sets(&self.diagnosis_set, &batch.diagnoses, drop)?.reshape((b, v, d))?;
        let procedures = self.encode_sets(&self.procedure_set, &batch.procedures, drop)?.reshape((b, v, d))?;
        let prompt = self.profile.forward(&batch.profile)?;
        // Slot 0 of the medication stream is the profile prompt; slot t >= 1 holds visit t-1's drugs.
        let medications = if v == 1 {
            prompt.unsqueeze(1)?
        } else {
            let history = self.encode_medication_sets(&batch.medications, drop)?.reshape((b, v, d))?;
            Tensor::cat(&[&prompt.unsqueeze(1)?, &history.narrow(1, 1, v - 1)?], 1)?
        };
        // One shared visit encoder over the three streams at once: [3B, V, d].
        let streams = Tensor::cat(&[&diagnoses, &procedures, &medications], 0)?;
        let encoded = self.visit.forward(&streams, &batch.visit_masks.key_bias, drop)?;
        let pooled = masked_mean(&encoded, &batch.visit_masks)?;
        let patient = Tensor::cat(&[pooled.narrow(0, 0, b)?, pooled.narrow(0, b, b)?, pooled.narrow(0, 2 * b, b)?], 1)?;
        let hidden = self.head_hidden.forward(&patient.relu()?)?;
        let logits = self.head_out.forward(&hidden.relu()?)?;
        Ok(Output { logits, hidden, profile_prompt: prompt })
    }
}
