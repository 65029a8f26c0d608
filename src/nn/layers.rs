//! Layers both the student and the baselines build from: PyTorch-initialised linear layers,
//! seeded dropout, layer norm and the pre-LN transformer block over packed rows, on the fused
//! differentiable ops of [`crate::nn::ops`] (candle's own norms and softmax have no backward).

use super::ops::{self, SetOffsets};
use super::rng::TensorRng;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};

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

    pub fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
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
pub fn linear(x: &Tensor, layer: &Linear) -> Result<Tensor> {
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

/// The sizes and dropout rates of a [`TransformerBlock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockDims {
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    pub layer_norm_eps: f64,
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
    pub fn new(vb: VarBuilder, cfg: &BlockDims) -> Result<Self> {
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
    pub fn first_qkv(&self, x: &Tensor) -> Result<Tensor> {
        self.attention.qkv(&self.ln1.forward(x)?)
    }

    /// [`Self::forward`] with `qkv` = [`Self::first_qkv`] of `x` given.
    pub fn forward_from_qkv(&self, x: &Tensor, qkv: &Tensor, packing: &Packing, drop: &mut Dropout) -> Result<Tensor> {
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

/// Rows of different lengths (code sets, visit streams) packed without padding: every layer runs on
/// the packed tokens [T, d], row after row, and attention keeps each row's tokens to themselves.
#[derive(Debug, Clone)]
pub struct Packing {
    pub rows: usize,
    pub tokens: usize,
    /// Each row's token range.
    pub sets: SetOffsets,
    /// [T] u32: the row of each token, and [T, 1] its weight 1/len(row) in the row's mean.
    pub token_row: Tensor,
    pub token_weight: Tensor,
}

impl Packing {
    pub fn from_lengths(lengths: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        let tokens: usize = lengths.iter().sum();
        let (mut token_row, mut token_weight) = (Vec::with_capacity(tokens), Vec::with_capacity(tokens));
        for (row, &len) in lengths.iter().enumerate() {
            token_row.extend(std::iter::repeat_n(row as u32, len));
            token_weight.extend(std::iter::repeat_n(1.0 / len as f32, len));
        }
        Ok(Self {
            rows: lengths.len(),
            tokens,
            sets: SetOffsets::from_lengths(lengths),
            token_row: Tensor::from_vec(token_row, tokens, device)?,
            token_weight: Tensor::from_vec(token_weight, (tokens, 1), device)?.to_dtype(dtype)?,
        })
    }
}

/// A one-layer GRU as PyTorch's `nn.GRU` computes it (gates r, z, n in that order; every weight and
/// bias uniform in ±1/√hidden), running forward over the steps of a [B, T, in] input; built from
/// candle ops that all have a backward pass (matmul, sigmoid, tanh).
pub struct Gru {
    input: Linear,
    recurrent: Linear,
    hidden: usize,
}

impl Gru {
    pub fn new(vb: VarBuilder, in_dim: usize, hidden: usize) -> Result<Self> {
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let layer = |name: &str, fan_in: usize| -> Result<Linear> {
            let vb = vb.pp(name);
            Ok(Linear::new(
                vb.get_with_hints((3 * hidden, fan_in), "weight", init)?,
                Some(vb.get_with_hints(3 * hidden, "bias", init)?),
            ))
        };
        Ok(Self { input: layer("input", in_dim)?, recurrent: layer("recurrent", hidden)?, hidden })
    }

    /// Every step's hidden state [B, T, hidden] from a zero initial state. Steps past a shorter
    /// sequence's end (right padding) come after its real ones, so they never change them.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, steps, _) = x.dims3()?;
        let h_dim = self.hidden;
        let from_input = linear(x, &self.input)?;
        let mut h = Tensor::zeros((b, h_dim), x.dtype(), x.device())?;
        let mut outputs = Vec::with_capacity(steps);
        for t in 0..steps {
            let xi = from_input.narrow(1, t, 1)?.squeeze(1)?;
            let hh = linear(&h, &self.recurrent)?;
            let gate = |k: usize, of: &Tensor| of.narrow(1, k * h_dim, h_dim);
            let r = candle_nn::ops::sigmoid(&(gate(0, &xi)? + gate(0, &hh)?)?)?;
            let z = candle_nn::ops::sigmoid(&(gate(1, &xi)? + gate(1, &hh)?)?)?;
            let n = (gate(2, &xi)? + (r * gate(2, &hh)?)?)?.tanh()?;
            // (1 − z)·n + z·h
            h = (&n + (z * (&h - &n)?)?)?;
            outputs.push(h.clone());
        }
        Tensor::stack(&outputs, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::params::SeededVarMap;

    /// PyTorch's GRU equations, step by step in plain f64, against [`Gru::forward`].
    #[test]
    fn gru_computes_pytorchs_recurrence() {
        let params = SeededVarMap::new(9);
        let gru = Gru::new(params.var_builder(DType::F64, &Device::Cpu), 3, 2).unwrap();
        let x: Vec<f64> = (0..2 * 3 * 3).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
        let out = gru.forward(&Tensor::from_vec(x.clone(), (2, 3, 3), &Device::Cpu).unwrap()).unwrap();
        let out: Vec<Vec<Vec<f64>>> = out.to_vec3().unwrap();
        let get = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let (wi, bi) = (get(gru.input.weight()), get(gru.input.bias().unwrap()));
        let (wh, bh) = (get(gru.recurrent.weight()), get(gru.recurrent.bias().unwrap()));
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        for b in 0..2 {
            let mut h = [0.0f64; 2];
            for t in 0..3 {
                let xt = &x[(b * 3 + t) * 3..(b * 3 + t + 1) * 3];
                let gi = |row: usize| bi[row] + (0..3).map(|k| wi[row * 3 + k] * xt[k]).sum::<f64>();
                let gh = |row: usize| bh[row] + (0..2).map(|k| wh[row * 2 + k] * h[k]).sum::<f64>();
                let mut next = [0.0; 2];
                for j in 0..2 {
                    let r = sigmoid(gi(j) + gh(j));
                    let z = sigmoid(gi(2 + j) + gh(2 + j));
                    let n = (gi(4 + j) + r * gh(4 + j)).tanh();
                    next[j] = (1.0 - z) * n + z * h[j];
                }
                h = next;
                for j in 0..2 {
                    assert!((out[b][t][j] - h[j]).abs() < 1e-12, "row {b} step {t}: {} vs {}", out[b][t][j], h[j]);
                }
            }
        }
    }
}
