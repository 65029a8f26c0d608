//! The LEADER(S) network (reference doc §4): a shared code embedding, three set encoders pooled per
//! visit, a profile prompt in the medication stream's first slot, one shared visit encoder and an MLP
//! over the three pooled histories. GELU, layer norm, bias adds and attention are the fused
//! differentiable ops of [`crate::nn::ops`]; scoring a trained model only adds what needs no
//! gradient (per-code Q/K/V tables, in-place bias and GELU), tested equal to the training path.

use super::batch::{Batch, CodeSets, Packing};
use super::config::ModelDims;
use crate::nn::ops;
use crate::nn::rng::TensorRng;
use candle_core::{DType, Device, Module, Result, Tensor, D};
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

/// Dropout of a forward pass: active only when it holds a random stream (training).
pub struct Dropout<'a> {
    rng: Option<&'a mut TensorRng>,
}

impl<'a> Dropout<'a> {
    /// No dropout (scoring, gradient checks).
    pub fn off() -> Self {
        Self { rng: None }
    }

    /// Training: dropout drawn from `rng`.
    pub fn on(rng: &'a mut TensorRng) -> Self {
        Self { rng: Some(rng) }
    }

    /// Inverted-dropout scales for `len` values, or `None` when off.
    fn mask(&mut self, len: usize, p: f64, dtype: DType, device: &Device) -> Result<Option<Tensor>> {
        match &mut self.rng {
            Some(rng) if p > 0.0 => Ok(Some(rng.dropout_mask(len, p, dtype, device)?)),
            _ => Ok(None),
        }
    }

    fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        match &mut self.rng {
            Some(rng) => rng.dropout(x, p),
            None => Ok(x.clone()),
        }
    }
}

/// Affine layer norm over the last dim.
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
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

/// `x` [.., k] times the transpose of `weight` [n, k] as one 2-D matmul → [.., n].
fn project(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (rows, k) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("x has a last dim") = weight.dim(0)?;
    x.reshape((rows, k))?.matmul(&weight.t()?)?.reshape(dims)
}

/// `layer` applied to `x` [.., k] as one 2-D matmul: candle's `Linear` broadcasts its weight over
/// the leading dims of a 3-D input and runs one small matmul per set (and as many in backward).
fn linear(x: &Tensor, layer: &Linear) -> Result<Tensor> {
    let y = project(x, layer.weight())?;
    match layer.bias() {
        // The matmul's output is ours alone: without gradients, the bias goes in place.
        Some(bias) if !y.track_op() && !bias.track_op() => {
            ops::add_bias_in_place(&y, bias)?;
            Ok(y)
        }
        Some(bias) => ops::add_bias(&y, bias),
        None => Ok(y),
    }
}

/// GELU of `layer` applied to `x`, in place on the fresh output when no gradient is needed.
fn linear_gelu(x: &Tensor, layer: &Linear) -> Result<Tensor> {
    let y = linear(x, layer)?;
    if y.track_op() {
        return ops::gelu(&y);
    }
    ops::gelu_in_place(&y)?;
    Ok(y)
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

    /// Queries, keys and values of `x` [T, d] side by side, [T, 3d], in one matmul; the parameters
    /// stay three (same names, same initial draws).
    fn qkv(&self, x: &Tensor) -> Result<Tensor> {
        project(x, &Tensor::cat(&[self.q.weight(), self.k.weight(), self.v.weight()], 0)?)
    }

    /// Attention given the packed tokens' `qkv` [T, 3d]; each token attends to its own row.
    pub fn forward(&self, qkv: &Tensor, packing: &Packing, p_drop: f64, drop: &mut Dropout) -> Result<Tensor> {
        let dropout = drop.mask(packing.sets.probability_count(self.heads), p_drop, qkv.dtype(), qkv.device())?;
        linear(&ops::packed_attention(qkv, &packing.sets, self.heads, dropout)?, &self.out)
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

    /// `x` [T, d], the packed tokens of `packing`'s rows.
    pub fn forward(&self, x: &Tensor, packing: &Packing, drop: &mut Dropout) -> Result<Tensor> {
        self.forward_from_qkv(x, &self.first_qkv(x)?, packing, drop)
    }

    /// What the block first computes from each row of `x` alone: Q, K and V of its layer norm.
    fn first_qkv(&self, x: &Tensor) -> Result<Tensor> {
        self.attention.qkv(&self.ln1.forward(x)?)
    }

    /// [`Self::forward`] with `qkv` = [`Self::first_qkv`] of `x` given.
    fn forward_from_qkv(&self, x: &Tensor, qkv: &Tensor, packing: &Packing, drop: &mut Dropout) -> Result<Tensor> {
        let attended = self.attention.forward(qkv, packing, self.p_attention, drop)?;
        let x = (x + drop.apply(&attended, self.p_hidden)?)?;
        let inner = drop.apply(&linear_gelu(&self.ln2.forward(&x)?, &self.ffn_in)?, self.p_hidden)?;
        let x = (&x + drop.apply(&linear(&inner, &self.ffn_out)?, self.p_hidden)?)?;
        drop.apply(&x, self.p_hidden)
    }
}

/// The mean of each row's tokens, `x` [T, d] → [N, d]; empty rows give zeros.
pub fn row_means(x: &Tensor, packing: &Packing) -> Result<Tensor> {
    let weighted = x.broadcast_mul(&packing.token_weight)?;
    Tensor::zeros((packing.rows, x.dim(1)?), x.dtype(), x.device())?.index_add(&packing.token_row, &weighted, 0)
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

/// Which code sets a set encoder reads; the index of its encoder and QKV table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetKind {
    Diagnoses = 0,
    Procedures = 1,
    Medications = 2,
}

/// The student network LEADER(S): set encoders, the profile pseudo-visit, the visit encoder and the
/// medication head.
pub struct StudentNet {
    codes: Embedding,
    diagnosis_set: TransformerBlock,
    procedure_set: TransformerBlock,
    medication_set: TransformerBlock,
    visit: TransformerBlock,
    profile: ProfileEncoder,
    head_hidden: Linear,
    head_out: Linear,
    d: usize,
    /// Per code, each set encoder's first Q/K/V (diagnosis, procedure, medication), once
    /// [`StudentNet::for_inference`] computed them.
    qkv_tables: Option<[Tensor; 3]>,
}

impl StudentNet {
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
            qkv_tables: None,
        })
    }

    /// The model for scoring only: a set encoder's first layer norm and Q/K/V projection see one
    /// code's embedding at a time, so they are computed once per code here ([codes, 3d] per
    /// encoder) and looked up per token, instead of a layer norm and a [T, d]×[d, 3d] matmul per
    /// batch. The tables are not updated by training: call it on trained weights.
    pub fn for_inference(mut self) -> Result<Self> {
        let [a, b, c] = self.set_encoders().map(|block| block.first_qkv(self.codes.embeddings()));
        self.qkv_tables = Some([a?, b?, c?]);
        Ok(self)
    }

    /// The set encoders in [`SetKind`] order (also the order of `qkv_tables`).
    fn set_encoders(&self) -> [&TransformerBlock; 3] {
        [&self.diagnosis_set, &self.procedure_set, &self.medication_set]
    }

    /// Pooled encodings of `sets` by the set encoder of `kind`.
    fn encode_sets(&self, kind: SetKind, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        if sets.packing.tokens == 0 {
            return Tensor::zeros((sets.packing.rows, self.d), self.codes.embeddings().dtype(), sets.ids.device());
        }
        let block = self.set_encoders()[kind as usize];
        let x = self.codes.forward(&sets.ids)?;
        let qkv = match &self.qkv_tables {
            Some(tables) => tables[kind as usize].index_select(&sets.ids, 0)?,
            None => block.first_qkv(&x)?,
        };
        row_means(&block.forward_from_qkv(&x, &qkv, &sets.packing, drop)?, &sets.packing)
    }

    /// Encodes medication sets with the medication set encoder ([N, d]); the alignment loss uses it
    /// for the target visit's medications.
    pub fn encode_medication_sets(&self, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        self.encode_sets(SetKind::Medications, sets, drop)
    }

    pub fn forward(&self, batch: &Batch, drop: &mut Dropout) -> Result<Output> {
        let (b, d) = (batch.size, self.d);
        // Pooled vectors of the batch's non-empty sets, then the profile prompts and a zero row;
        // `slot_rows` places them into the three visit streams (see `Batch`).
        let mut table = Vec::with_capacity(5);
        let sets_by_kind = [
            (SetKind::Diagnoses, &batch.diagnoses),
            (SetKind::Procedures, &batch.procedures),
            (SetKind::Medications, &batch.medications),
        ];
        for (kind, sets) in sets_by_kind {
            if sets.packing.rows > 0 {
                table.push(self.encode_sets(kind, sets, drop)?);
            }
        }
        let prompt = self.profile.forward(&batch.profile)?;
        table.push(prompt.clone());
        table.push(Tensor::zeros((1, d), prompt.dtype(), prompt.device())?);
        // One shared visit encoder over the three streams at once (3B rows, packed).
        let streams = Tensor::cat(&table, 0)?.index_select(&batch.slot_rows, 0)?;
        let encoded = self.visit.forward(&streams, &batch.visit_packing, drop)?;
        let pooled = row_means(&encoded, &batch.visit_packing)?;
        let patient = Tensor::cat(&[pooled.narrow(0, 0, b)?, pooled.narrow(0, b, b)?, pooled.narrow(0, 2 * b, b)?], 1)?;
        let hidden = self.head_hidden.forward(&patient.relu()?)?;
        let logits = self.head_out.forward(&hidden.relu()?)?;
        Ok(Output { logits, hidden, profile_prompt: prompt })
    }
}
