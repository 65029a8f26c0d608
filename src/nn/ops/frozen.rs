//! Operations with frozen operands (base weights, norm weights, RoPE tables, the attention mask)
//! whose backward pass gives the gradient of the trainable input only. candle's autograd computes and
//! accumulates a gradient for every operand of a matmul or a product, frozen or not (candle-core
//! `backprop.rs`): for a LoRA step on LLaMA-7B that is a weight-gradient GEMM and buffer per
//! projection. These ops run candle's fused forward kernels (which have no backward of their own, on
//! every device) and state the input gradient with ordinary tensor ops, so the same code runs on the
//! CPU and on CUDA (cuBLAS) with no kernel of ours. Without a graph to record (inference, detached
//! inputs) each is the plain forward.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Storage, Tensor, D};
use std::sync::Mutex;

/// `x · wᵀ` for `x` [N, in] and a frozen `w` [out, in]; the backward gives `grad · w` for `x` only.
/// The forward is the backend's own matmul (cuBLAS on a GPU) on the two storages.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return x.matmul(&w.t()?);
    }
    x.apply_op1(FrozenLinear { w: w.clone() })
}

struct FrozenLinear {
    w: Tensor,
}

impl FrozenLinear {
    /// `x · wᵀ` with the backend's matmul, for the storages of `x` (laid out as `layout`) and `w`.
    fn forward<S: BackendStorage>(&self, x: &S, layout: &Layout, w: &S) -> Result<(S, Shape)> {
        let (n, k) = layout.shape().dims2()?;
        let (out, k_w) = self.w.dims2()?;
        if k != k_w {
            bail!("frozen-linear: input [{n}, {k}] against weight [{out}, {k_w}]");
        }
        let y = x.matmul(w, (1, n, out, k), layout, &self.w.layout().transpose(0, 1)?)?;
        Ok((y, Shape::from((n, out))))
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (w, _) = self.w.storage_and_layout();
        let Storage::Cpu(w) = &*w else { bail!("frozen-linear: the weight is not on the input's device") };
        self.forward(x, layout, w)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, x: &candle_core::CudaStorage, layout: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let (w, _) = self.w.storage_and_layout();
        let Storage::Cuda(w) = &*w else { bail!("frozen-linear: the weight is not on the input's device") };
        self.forward(x, layout, w)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// `x · wᵀ`, with `w`'s gradient too when `w` is a trainable variable (full fine-tuning), else
/// [`frozen_linear`].
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if w.is_variable() {
        x.matmul(&w.t()?)
    } else {
        frozen_linear(x, w)
    }
}

/// `x + b`, with `b`'s gradient when it is a trainable variable, else [`frozen_bias`].
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if b.is_variable() {
        x.broadcast_add(b)
    } else {
        frozen_bias(x, b)
    }
}

/// RMSNorm, with `w`'s gradient when it is a trainable variable (candle's differentiable
/// composition), else [`frozen_rms_norm`].
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if w.is_variable() {
        candle_nn::ops::rms_norm_slow(x, w, eps as f32)
    } else {
        frozen_rms_norm(x, w, eps)
    }
}

/// `x + b` for `x` [N, out] and a frozen bias `b` [out]; the gradient passes to `x` unchanged.
pub fn frozen_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let value = x.detach().broadcast_add(b)?;
    with_input_gradient(x, value, Box::new(|_x, _y, grad| Ok(grad.clone())))
}

/// The input gradient of a node, from its input `x`, its value `y` and the upstream gradient.
type Backward = Box<dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;

/// `value`, computed from `x` and frozen tensors without a graph, as a node whose only input is `x`
/// and whose gradient is `backward(x, value, grad)`. The node's storage is a copy of `value` (a
/// custom op must return new storage), made once in the forward pass; the op keeps nothing of it.
fn with_input_gradient(x: &Tensor, value: Tensor, backward: Backward) -> Result<Tensor> {
    if !x.track_op() {
        return Ok(value);
    }
    x.apply_op1(InputGradient { value: Mutex::new(Some(value)), backward })
}

struct InputGradient {
    value: Mutex<Option<Tensor>>,
    backward: Backward,
}

impl InputGradient {
    /// The value, taken out (the op keeps nothing of it), laid out densely from offset 0 (so its
    /// storage is exactly the result).
    fn take(&self) -> Result<Tensor> {
        let mut value =
            self.value.lock().map_err(|_| candle_core::Error::Msg("input-gradient: lock poisoned".into()))?;
        let Some(value) = value.take() else { bail!("input-gradient: the forward ran twice") };
        let dense = value.layout().is_contiguous() && value.layout().start_offset() == 0;
        if dense {
            Ok(value)
        } else {
            value.force_contiguous()
        }
    }
}

impl CustomOp1 for InputGradient {
    fn name(&self) -> &'static str {
        "input-gradient"
    }

    fn cpu_fwd(&self, _x: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        let value = self.take()?;
        let out = match &*value.storage_and_layout().0 {
            Storage::Cpu(s) => s.clone(),
            _ => bail!("input-gradient: the value is not on the input's device"),
        };
        Ok((out, value.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, _x: &candle_core::CudaStorage, _: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let value = self.take()?;
        let out = match &*value.storage_and_layout().0 {
            Storage::Cuda(s) => s.try_clone(value.layout())?,
            _ => bail!("input-gradient: the value is not on the input's device"),
        };
        Ok((out, value.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((self.backward)(x, y, grad)?))
    }
}

/// The dtype reductions run in: f32 for half types (as the fused kernels do), else the input's.
fn internal(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}

/// RMSNorm over the last dimension with a frozen weight `w`: `x / √(mean(x²) + ε) · w`.
pub fn frozen_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let x_const = x.detach();
    let value = if x.dtype() == DType::F64 {
        // The fused kernel has no f64 (which the gradient checks use); no graph is recorded either way.
        candle_nn::ops::rms_norm_slow(&x_const, w, eps as f32)?
    } else {
        candle_nn::ops::rms_norm(&x_const.contiguous()?, w, eps as f32)?
    };
    let w = w.clone();
    let backward: Backward = Box::new(move |x, _y, grad| {
        // n = x·r with r = 1/√(mean(x²) + ε); dx = r · (g − n · mean(g·n)) where g = grad·w.
        let dtype = internal(x.dtype());
        let x = x.to_dtype(dtype)?;
        let g = grad.to_dtype(dtype)?.broadcast_mul(&w.to_dtype(dtype)?)?;
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        let n = x.broadcast_mul(&r)?;
        let dot = (&g * &n)?.mean_keepdim(D::Minus1)?;
        (g - n.broadcast_mul(&dot)?)?.broadcast_mul(&r)?.to_dtype(grad.dtype())
    });
    with_input_gradient(x, value, backward)
}

/// RoPE (the half-split layout of LLaMA) of `x` [B, heads, T, d] with frozen tables [T, d/2]. The
/// rotation's gradient is the inverse rotation: RoPE with −sin.
pub fn frozen_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let value = candle_nn::rotary_emb::rope(&x.detach().contiguous()?, cos, sin)?;
    let (cos, minus_sin) = (cos.clone(), sin.neg()?);
    let backward: Backward =
        Box::new(move |_x, _y, grad| candle_nn::rotary_emb::rope(&grad.contiguous()?, &cos, &minus_sin));
    with_input_gradient(x, value, backward)
}

/// `softmax(scores + mask)` over the last dimension, computed in f32 as `transformers` does, with a
/// frozen additive `mask` broadcast over `scores` [B, heads, T, T]. Backward: `p ⊙ (g − Σ g⊙p)`.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let dtype = scores.dtype();
    let logits = scores.detach().to_dtype(internal(dtype))?.broadcast_add(&mask.to_dtype(internal(dtype))?)?;
    let value = candle_nn::ops::softmax_last_dim(&logits)?.to_dtype(dtype)?;
    let backward: Backward = Box::new(|_x, p, grad| {
        let dtype = internal(p.dtype());
        let (p, g) = (p.to_dtype(dtype)?, grad.to_dtype(dtype)?);
        let dot = (&g * &p)?.sum_keepdim(D::Minus1)?;
        (p * g.broadcast_sub(&dot)?)?.to_dtype(grad.dtype())
    });
    with_input_gradient(scores, value, backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck;
    use crate::nn::rng::TensorRng;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        TensorRng::new(seed).normal(shape, 0.0, 1.0, DType::F64, &Device::Cpu).unwrap()
    }

    /// Checks the input gradient of `op` by central differences, that the frozen operands get no
    /// gradient, and that the value equals `reference` (candle's differentiable composition).
    fn check(
        x_shape: &[usize],
        frozen: &[&Tensor],
        op: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
    ) {
        let x = Var::from_tensor(&random(x_shape, 1)).unwrap();
        // A weighted sum, so every output element's gradient differs.
        let weights = random(op(x.as_tensor()).unwrap().dims(), 2);
        let loss = || -> anyhow::Result<Tensor> { Ok((op(x.as_tensor())? * &weights)?.sum_all()?) };
        let reports = gradcheck::check(&[("x".into(), x.clone())], loss, 1e-6, 40).unwrap();
        gradcheck::assert_close(&reports, 1e-6).unwrap();
        let grads = loss().unwrap().backward().unwrap();
        for t in frozen {
            assert!(grads.get(t).is_none(), "a frozen operand got a gradient");
        }
        let (ours, theirs) = (op(x.as_tensor()).unwrap(), reference(x.as_tensor()).unwrap());
        assert!(gradcheck::max_abs_diff(&ours, &theirs).unwrap() < 1e-12);
    }

    #[test]
    fn frozen_linear_gives_the_input_gradient_only() {
        let w = random(&[5, 7], 3);
        check(&[4, 7], &[&w], |x| frozen_linear(x, &w), |x| x.matmul(&w.t()?));
    }

    #[test]
    fn frozen_bias_gives_the_input_gradient_only() {
        let b = random(&[5], 9);
        check(&[4, 5], &[&b], |x| frozen_bias(x, &b), |x| x.broadcast_add(&b));
    }

    #[test]
    fn frozen_rms_norm_gives_the_input_gradient_only() {
        let w = random(&[6], 4);
        let eps = 1e-5;
        check(&[2, 3, 6], &[&w], |x| frozen_rms_norm(x, &w, eps), |x| candle_nn::ops::rms_norm_slow(x, &w, eps as f32));
    }

    #[test]
    fn frozen_rope_gives_the_input_gradient_only() {
        let (cos, sin) = (random(&[3, 2], 5), random(&[3, 2], 6));
        check(
            &[2, 2, 3, 4],
            &[&cos, &sin],
            |x| frozen_rope(x, &cos, &sin),
            |x| candle_nn::rotary_emb::rope_slow(x, &cos, &sin),
        );
    }

    #[test]
    fn masked_softmax_gives_the_input_gradient_only() {
        // Causal mask with a padded last key.
        let t = 4;
        let mask: Vec<f64> =
            (0..t * t).map(|k| if k % t > k / t || k % t == t - 1 && k / t < t - 1 { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (1, 1, t, t), &Device::Cpu).unwrap();
        check(
            &[2, 3, t, t],
            &[&mask],
            |x| masked_softmax(x, &mask),
            |x| candle_nn::ops::softmax(&x.broadcast_add(&mask)?, D::Minus1),
        );
    }

    #[test]
    fn without_a_graph_each_op_is_its_forward() {
        let (x, w) = (random(&[3, 4], 7), random(&[2, 4], 8));
        assert!(!frozen_linear(&x, &w).unwrap().track_op());
        assert_eq!(
            frozen_linear(&x, &w).unwrap().to_vec2::<f64>().unwrap(),
            x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f64>().unwrap()
        );
    }
}
