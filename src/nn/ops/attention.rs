//! Multi-head self-attention inside sets of packed tokens, fused, with its backward pass. The
//! student's sets are small (a visit's 3–40 codes) and many: as a chain of candle ops, attention
//! gathered them into padded [N, heads, S, S] blocks, ran one tiny matmul per set and head, and
//! copied the result back, which cost more than the projections around it. Here each set's tokens
//! attend to each other where they lie, with no padding and no copies.

use super::{host, rows, wide, Float};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use std::sync::Arc;

/// Where the sets lie: set r holds packed tokens `offsets[r]..offsets[r + 1]`.
#[derive(Debug, Clone)]
pub struct SetOffsets(Arc<[usize]>);

impl SetOffsets {
    pub fn from_lengths(lengths: &[usize]) -> Self {
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(lengths.iter().scan(0, |end, &len| {
                *end += len;
                Some(*end)
            }))
            .collect();
        Self(offsets.into())
    }

    pub fn tokens(&self) -> usize {
        *self.0.last().expect("offsets start at 0")
    }

    /// Token ranges of the sets.
    fn sets(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0.windows(2).map(|w| (w[0], w[1] - w[0]))
    }

    /// Attention probabilities of all sets and heads: Σ heads·len².
    pub fn probability_count(&self, heads: usize) -> usize {
        self.sets().map(|(_, len)| heads * len * len).sum()
    }
}

/// Self-attention of `qkv` [T, 3d] (each token's query, key and value, heads side by side in each)
/// within the sets of `offsets`: softmax(q·kᵀ/√dk) per set and head, times v → [T, d]. `dropout`,
/// when given, scales the probabilities (Σ heads·len² values in set, head, query, key order; see
/// [`SetOffsets::probability_count`]).
pub fn packed_attention(qkv: &Tensor, offsets: &SetOffsets, heads: usize, dropout: Option<Tensor>) -> Result<Tensor> {
    let (tokens, width) = qkv.dims2()?;
    if width % (3 * heads) != 0 || tokens != offsets.tokens() {
        bail!("packed attention: qkv {:?} does not fit {} tokens and {heads} heads", qkv.shape(), offsets.tokens());
    }
    if let Some(mask) = &dropout {
        if mask.elem_count() != offsets.probability_count(heads) {
            bail!("packed attention: {} dropout values for {}", mask.elem_count(), offsets.probability_count(heads));
        }
    }
    qkv.contiguous()?.apply_op1(PackedAttention { offsets: offsets.clone(), heads, dropout })
}

#[derive(Clone)]
struct PackedAttention {
    offsets: SetOffsets,
    heads: usize,
    dropout: Option<Tensor>,
}

/// Σ a·b over eight independent partial sums, so that it vectorises (a head is 16 wide).
#[inline(always)]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let zero = T::from_f64(0.0);
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a8.remainder().iter().zip(b8.remainder()).fold(zero, |acc, (&x, &y)| acc + x * y);
    let mut lanes = [zero; 8];
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().fold(tail, |acc, &v| acc + v)
}

/// `out += scale · x`.
#[inline(always)]
fn add_scaled<T: Float>(out: &mut [T], scale: T, x: &[T]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o += scale * v);
}

/// Widths: a qkv row w = 3d, the model d, a head dk, and the score scale 1/√dk.
#[derive(Clone, Copy)]
struct Dims {
    w: usize,
    d: usize,
    dk: usize,
    scale: f64,
}

impl PackedAttention {
    fn dims(&self, qkv_width: usize) -> Dims {
        let d = qkv_width / 3;
        let dk = d / self.heads;
        Dims { w: qkv_width, d, dk, scale: 1.0 / (dk as f64).sqrt() }
    }

    /// The widths of a flat qkv buffer; a head width `DK` > 0 is taken as a constant (the caller
    /// checked it), so that the per-head loops unroll.
    #[inline(always)]
    fn dims_of<T, const DK: usize>(&self, qkv: &[T]) -> Dims {
        let mut dims = self.dims(qkv.len() / self.offsets.tokens().max(1));
        if DK > 0 {
            dims.dk = DK;
        }
        dims
    }

    /// The dropout scales of every probability, or none.
    fn dropout_values<T: Float>(&self) -> Result<Option<Vec<T>>> {
        self.dropout.as_ref().map(|m| host::<T>(&m.to_dtype(T::DTYPE)?)).transpose()
    }

    /// Softmax of query i's scores against the keys of its set (`p` holds one per key), head h.
    #[inline(always)]
    fn probabilities<T: Float>(qkv: &[T], dims: Dims, start: usize, h: usize, i: usize, p: &mut [T]) {
        let Dims { w, d, dk, scale } = dims;
        let q = &qkv[(start + i) * w + h * dk..][..dk];
        for (j, p) in p.iter_mut().enumerate() {
            *p = T::from_f64(scale) * dot(q, &qkv[(start + j) * w + d + h * dk..][..dk]);
        }
        let max = p.iter().fold(p[0], |m, &v| m.max(v));
        let mut sum = T::from_f64(0.0);
        for p in p.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        p.iter_mut().for_each(|p| *p /= sum);
    }

    /// The output; `DK` is the head width when it is the student's 16, else 0 (read from the shape).
    #[inline(always)]
    fn forward<T: Float, const DK: usize>(&self, qkv: &[T], dropout: Option<&[T]>) -> Vec<T> {
        let dims = self.dims_of::<T, DK>(qkv);
        let Dims { w, d, dk, .. } = dims;
        let mut out = vec![T::from_f64(0.0); self.offsets.tokens() * d];
        let (mut p, mut at) = (Vec::new(), 0);
        for (start, len) in self.offsets.sets() {
            p.resize(len, T::from_f64(0.0));
            for h in 0..self.heads {
                for i in 0..len {
                    Self::probabilities(qkv, dims, start, h, i, &mut p);
                    if let Some(mask) = dropout {
                        p.iter_mut().zip(&mask[at..at + len]).for_each(|(p, &m)| *p *= m);
                    }
                    at += len;
                    let o = &mut out[(start + i) * d + h * dk..][..dk];
                    for (j, &pj) in p.iter().enumerate() {
                        add_scaled(o, pj, &qkv[(start + j) * w + 2 * d + h * dk..][..dk]);
                    }
                }
            }
        }
        out
    }

    /// dqkv [T, 3d] from the output gradient `g` [T, d], recomputing the probabilities.
    fn backward<T: Float>(&self, qkv: &[T], g: &[T]) -> Result<Vec<T>> {
        let dims = self.dims_of::<T, 0>(qkv);
        let Dims { w, d, dk, .. } = dims;
        let scale = T::from_f64(dims.scale);
        let dropout = self.dropout_values::<T>()?;
        let mut dqkv = vec![T::from_f64(0.0); qkv.len()];
        let (mut p, mut dp, mut at) = (Vec::new(), Vec::new(), 0);
        for (start, len) in self.offsets.sets() {
            p.resize(len, T::from_f64(0.0));
            dp.resize(len, T::from_f64(0.0));
            for h in 0..self.heads {
                let (qh, kh, vh) = (h * dk, d + h * dk, 2 * d + h * dk);
                for i in 0..len {
                    Self::probabilities(qkv, dims, start, h, i, &mut p);
                    let gi = &g[(start + i) * d + h * dk..][..dk];
                    let mask = dropout.as_ref().map(|m| &m[at..at + len]);
                    at += len;
                    // Through the value product: dv_j += p'_ij·g_i, dp'_ij = g_i·v_j, with p' = p·mask.
                    for j in 0..len {
                        let m = mask.map_or(T::from_f64(1.0), |m| m[j]);
                        let row = (start + j) * w;
                        dp[j] = m * dot(gi, &qkv[row + vh..][..dk]);
                        add_scaled(&mut dqkv[row + vh..][..dk], m * p[j], gi);
                    }
                    // Through the softmax: ds_ij = p_ij·(dp_ij − Σ_k p_ik·dp_ik); then the scores.
                    let mean = dot(&p, &dp);
                    let qi = (start + i) * w + qh;
                    for j in 0..len {
                        let ds = scale * p[j] * (dp[j] - mean);
                        let kj = (start + j) * w + kh;
                        add_scaled(&mut dqkv[kj..][..dk], ds, &qkv[qi..][..dk]);
                        add_scaled(&mut dqkv[qi..][..dk], ds, &qkv[kj..][..dk]);
                    }
                }
            }
        }
        Ok(dqkv)
    }
}

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "leader-packed-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let tokens = layout.shape().dims()[0];
        let d = self.dims(layout.shape().dims()[1]).d;
        float_dispatch!(storage, self.name(), |T| {
            let qkv = rows::<T>(storage, layout, self.name())?;
            let dropout = self.dropout_values::<T>()?;
            let dropout = dropout.as_deref();
            let out = match self.dims_of::<T, 0>(qkv).dk {
                16 => wide(
                    #[inline(always)]
                    || self.forward::<T, 16>(qkv, dropout),
                ),
                _ => wide(
                    #[inline(always)]
                    || self.forward::<T, 0>(qkv, dropout),
                ),
            };
            Ok((T::to_cpu_storage_owned(out), Shape::from((tokens, d))))
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &PackedAttentionBackward(self.clone()))?))
    }
}

struct PackedAttentionBackward(PackedAttention);

impl CustomOp2 for PackedAttentionBackward {
    fn name(&self) -> &'static str {
        "leader-packed-attention-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s1, self.name(), |T| {
            let (qkv, g) = (rows::<T>(s1, l1, self.name())?, rows::<T>(s2, l2, self.name())?);
            Ok((T::to_cpu_storage_owned(self.0.backward(qkv, g)?), l1.shape().clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_close, check, max_abs_diff};
    use candle_core::{Device, Var, D};

    /// Sets of 3, 1, 0 and 4 tokens, 2 heads of width 2 (d = 4).
    const LENGTHS: [usize; 4] = [3, 1, 0, 4];
    const HEADS: usize = 2;

    fn qkv() -> Tensor {
        let values: Vec<f64> = (0..8 * 12).map(|i| ((i * 37 % 29) as f64 - 14.0) * 0.11).collect();
        Tensor::from_vec(values, (8, 12), &Device::Cpu).unwrap()
    }

    /// Each set and head on its own with plain candle ops: softmax(q·kᵀ/√dk)·v.
    fn reference(qkv: &Tensor, dropout: Option<&[f64]>) -> Tensor {
        let (d, dk) = (4, 2);
        let (mut rows, mut start, mut at) = (Vec::new(), 0, 0);
        for len in LENGTHS.into_iter().filter(|&len| len > 0) {
            let set = qkv.narrow(0, start, len).unwrap();
            let mut heads = Vec::new();
            for h in 0..HEADS {
                let part = |k: usize| set.narrow(1, k * d + h * dk, dk).unwrap();
                let scores = (part(0).matmul(&part(1).t().unwrap()).unwrap() / (dk as f64).sqrt()).unwrap();
                let mut p = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
                if let Some(mask) = dropout {
                    let m = Tensor::from_slice(&mask[at..at + len * len], (len, len), &Device::Cpu).unwrap();
                    p = (p * m).unwrap();
                }
                at += len * len;
                heads.push(p.matmul(&part(2)).unwrap());
            }
            rows.push(Tensor::cat(&heads, 1).unwrap());
            start += len;
        }
        Tensor::cat(&rows, 0).unwrap()
    }

    fn mask() -> Vec<f64> {
        let n = SetOffsets::from_lengths(&LENGTHS).probability_count(HEADS);
        assert_eq!(n, HEADS * (9 + 1 + 16));
        (0..n).map(|i| if i % 4 == 1 { 0.0 } else { 1.25 }).collect()
    }

    #[test]
    fn values_match_per_set_candle_attention() {
        let offsets = SetOffsets::from_lengths(&LENGTHS);
        let diff = |a: &Tensor, b: &Tensor| max_abs_diff(a, b).unwrap();
        let x = qkv();
        assert!(diff(&packed_attention(&x, &offsets, HEADS, None).unwrap(), &reference(&x, None)) < 1e-12);
        let m = mask();
        let dropout = Tensor::from_slice(&m, m.len(), &Device::Cpu).unwrap();
        let got = packed_attention(&x, &offsets, HEADS, Some(dropout)).unwrap();
        assert!(diff(&got, &reference(&x, Some(&m))) < 1e-12);
        // f32 runs the same code, with the head width taken as a constant when it is 16.
        let wide = Tensor::from_vec(
            (0..3 * 64 * 5).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.05).collect(),
            (5, 192),
            &Device::Cpu,
        )
        .unwrap();
        let sets = SetOffsets::from_lengths(&[2, 3]);
        let (f32_out, f64_out) = (
            packed_attention(&wide, &sets, 4, None).unwrap().to_dtype(DType::F64).unwrap(),
            packed_attention(&wide.to_dtype(DType::F64).unwrap(), &sets, 4, None).unwrap(),
        );
        assert!(diff(&f32_out, &f64_out) < 1e-5);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let offsets = SetOffsets::from_lengths(&LENGTHS);
        let x = Var::from_tensor(&qkv()).unwrap();
        let weights =
            Tensor::from_vec((0..32).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.1).collect(), (8, 4), &Device::Cpu)
                .unwrap();
        let vars = vec![("qkv".to_string(), x.clone())];
        let m = mask();
        for dropout in [None, Some(Tensor::from_slice(&m, m.len(), &Device::Cpu).unwrap())] {
            let loss = || {
                Ok((packed_attention(x.as_tensor(), &offsets, HEADS, dropout.clone())? * &weights)?.sum_all()?.sqr()?)
            };
            assert_close(&check(&vars, loss, 1e-6, 96).unwrap(), 1e-6).unwrap();
        }
    }
}
