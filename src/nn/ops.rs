//! Fused CPU ops with a backward pass for the student: tanh-GELU, layer norm, bias add and (in
//! `attention`) self-attention within packed sets. candle's own fused softmax and layer norm have no
//! backward, and its differentiable versions (and its GELU backward, with two `powf` and a dozen
//! temporaries) are chains of small ops that dominated the student's training profile. Each op here
//! is one pass forward and one pass backward over contiguous rows, in f32 or f64 (the gradient
//! checks run in f64); the in-place variants serve scoring, where no gradient is needed.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor,
    WithDType,
};

/// The element types the ops run in, with the math they need.
trait Float: WithDType {
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    /// The elements of a CPU storage of this type, writable.
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl Float for f32 {
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
        match storage {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Float for f64 {
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn storage_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
        match storage {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// e^x in f32 without a libm call, so that loops over it vectorise (glibc's `expf` was a seventh
/// of scoring time): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r from its Taylor series to r⁶ (relative
/// error below 2e-7), 2^n written into the exponent bits. Inputs are clamped to [-87, 88], where
/// e^x stays a normal f32.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = x - n * LN2_HI - n * LN2_LO;
    let poly = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let exponent = (shifted.to_bits() as i32 - SHIFT.to_bits() as i32 + 127) << 23;
    poly * f32::from_bits(exponent as u32)
}

/// Logits to probabilities in place, 1 / (1 + e^-x), with the vectorising `exp` (for scoring).
pub fn sigmoid_in_place(values: &mut [f32]) {
    wide(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v = 1.0 / (1.0 + exp_f32(-*v));
            }
        },
    )
}

/// Runs `f` compiled for AVX2 where the CPU has it, else as the binary is built (the x86-64
/// baseline, SSE2): the fused loops vectorise either way, and AVX2 doubles their width. `f` is
/// inlined into the AVX2 function, so its loop must not sit behind a call that is not inlined.
#[inline(always)]
fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { with_avx2(f) };
    }
    f()
}

/// The contiguous elements of a CPU tensor's storage.
fn rows<'a, T: Float>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&T::cpu_storage_as_slice(storage)?[start..end]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `$body` with `$t` bound to the element type of a floating-point storage or tensor.
macro_rules! float_dispatch {
    ($storage:expr, $op:expr, |$t:ident| $body:expr) => {
        match $storage.dtype() {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => bail!("{}: expected f32 or f64, got {other:?}", $op),
        }
    };
}

mod attention;
pub mod frozen;
pub use attention::{packed_attention, SetOffsets};

/// The contiguous elements of a tensor (copied when it is a strided view).
fn host<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

/// tanh through one `exp` (glibc's `tanh` was a third of the training profile on its own).
#[inline(always)]
fn tanh<T: Float>(u: T) -> T {
    let (one, two) = (T::from_f64(1.0), T::from_f64(2.0));
    one - two / ((two * u).exp() + one)
}

/// The tanh-GELU's inner tanh at `x`.
#[inline(always)]
fn gelu_tanh<T: Float>(x: T) -> T {
    tanh(T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(GELU_CUBIC) * x * x * x))
}

/// GELU of every element, in place (vectorised, AVX2 where the CPU has it).
fn gelu_values<T: Float>(values: &mut [T]) {
    let (half, one) = (T::from_f64(0.5), T::from_f64(1.0));
    wide(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v = half * *v * (one + gelu_tanh(*v));
            }
        },
    )
}

/// GELU, tanh approximation (BERT's and the reference's `gelu`):
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "leader-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(storage, self.name(), |T| {
            let mut y = rows::<T>(storage, layout, self.name())?.to_vec();
            gelu_values(&mut y);
            Ok((T::to_cpu_storage_owned(y), layout.shape().clone()))
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluBackward)?))
    }
}

/// `grad · gelu'(x)`, with `d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)`.
struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "leader-gelu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s1, self.name(), |T| {
            let (x, g) = (rows::<T>(s1, l1, self.name())?, rows::<T>(s2, l2, self.name())?);
            let (half, one) = (T::from_f64(0.5), T::from_f64(1.0));
            let (c, c3) = (T::from_f64(SQRT_2_OVER_PI), T::from_f64(3.0 * GELU_CUBIC));
            let mut dx = vec![T::from_f64(0.0); x.len()];
            for ((dx, &v), &g) in dx.iter_mut().zip(x).zip(g) {
                let t = gelu_tanh(v);
                *dx = g * (half * (one + t) + half * v * (one - t * t) * c * (one + c3 * v * v));
            }
            Ok((T::to_cpu_storage_owned(dx), l1.shape().clone()))
        })
    }
}

/// `x` [.., n] plus `bias` [n] on every row; its backward sums the gradient's rows in one pass
/// (candle's `broadcast_add` backward reduces over the leading dim with a slow strided sum).
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

struct AddBias;

/// `values` (the rows of a tensor laid out as `layout`) plus `bias` on every row.
fn add_bias_rows<T: Float>(values: &mut [T], layout: &Layout, bias: &[T], op: &str) -> Result<()> {
    if layout.shape().dims().last() != Some(&bias.len()) {
        bail!("{op}: bias of {} for rows of {:?}", bias.len(), layout.shape());
    }
    wide(
        #[inline(always)]
        || {
            for row in values.chunks_exact_mut(bias.len().max(1)) {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
        },
    );
    Ok(())
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "leader-add-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(s1, self.name(), |T| {
            let mut y = rows::<T>(s1, l1, self.name())?.to_vec();
            add_bias_rows(&mut y, l1, rows::<T>(s2, l2, self.name())?, self.name())?;
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = bias.elem_count().max(1);
        let db = float_dispatch!(grad_res, self.name(), |T| {
            Tensor::from_vec(column_sums::<T>(grad_res, n)?, bias.shape(), bias.device())
        })?;
        Ok((Some(grad_res.clone()), Some(db)))
    }
}

/// `x += bias` on every row, in place: [`add_bias`] without its copy, for a fresh tensor nothing
/// else holds (a matmul's output) when no gradient is needed.
pub fn add_bias_in_place(x: &Tensor, bias: &Tensor) -> Result<()> {
    x.inplace_op2(&bias.contiguous()?, &AddBiasInPlace)
}

/// GELU in place, under the same conditions as [`add_bias_in_place`].
pub fn gelu_in_place(x: &Tensor) -> Result<()> {
    x.inplace_op1(&GeluInPlace)
}

/// The contiguous elements of a CPU tensor's storage, writable, as `T`.
fn rows_mut<'a, T: Float>(storage: &'a mut CpuStorage, layout: &Layout, op: &str) -> Result<&'a mut [T]> {
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: expected a contiguous tensor") };
    match T::storage_mut(storage) {
        Some(values) => Ok(&mut values[start..end]),
        None => bail!("{op}: expected {:?} storage", T::DTYPE),
    }
}

struct AddBiasInPlace;

impl InplaceOp2 for AddBiasInPlace {
    fn name(&self) -> &'static str {
        "leader-add-bias-in-place"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        float_dispatch!(s1, self.name(), |T| {
            let b = rows::<T>(s2, l2, self.name())?;
            add_bias_rows(rows_mut::<T>(s1, l1, self.name())?, l1, b, self.name())
        })
    }
}

struct GeluInPlace;

impl InplaceOp1 for GeluInPlace {
    fn name(&self) -> &'static str {
        "leader-gelu-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        float_dispatch!(storage, self.name(), |T| {
            gelu_values(rows_mut::<T>(storage, layout, self.name())?);
            Ok(())
        })
    }
}

fn column_sums<T: Float>(t: &Tensor, width: usize) -> Result<Vec<T>> {
    let mut sums = vec![T::from_f64(0.0); width];
    for row in host::<T>(t)?.chunks_exact(width) {
        sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
    }
    Ok(sums)
}

/// Affine layer norm over the last dim (`weight`, `bias` [H]), differentiable in all three inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(weight, bias, LayerNorm { eps })
}

struct LayerNorm {
    eps: f64,
}

/// Mean and 1/σ of one row.
#[inline(always)]
fn moments<T: Float>(row: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(row.len() as f64);
    let zero = T::from_f64(0.0);
    let mean = row.iter().fold(zero, |acc, &v| acc + v) / n;
    let var = row.iter().fold(zero, |acc, &v| acc + (v - mean) * (v - mean)) / n;
    (mean, T::from_f64(1.0) / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "leader-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let width = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        float_dispatch!(s1, self.name(), |T| {
            let x = rows::<T>(s1, l1, self.name())?;
            let (w, b) = (rows::<T>(s2, l2, self.name())?, rows::<T>(s3, l3, self.name())?);
            if w.len() != width || b.len() != width {
                bail!("{}: weight and bias must have {width} elements", self.name());
            }
            let y = wide(
                #[inline(always)]
                || {
                    let mut y = vec![T::from_f64(0.0); x.len()];
                    for (row, out) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)) {
                        let (mean, inv_std) = moments(row, T::from_f64(self.eps));
                        for (i, o) in out.iter_mut().enumerate() {
                            *o = (row[i] - mean) * inv_std * w[i] + b[i];
                        }
                    }
                    y
                },
            );
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    /// With x̂ = (x − μ)/σ and ĝ = g ⊙ w: `dx = (ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)) / σ`, `dw = Σ g⊙x̂`,
    /// `db = Σ g` (sums over rows).
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = float_dispatch!(x, self.name(), |T| self.backward::<T>(x, weight, grad_res))?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

impl LayerNorm {
    fn backward<T: Float>(&self, x: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let width = x.dim(candle_core::D::Minus1)?.max(1);
        let (xs, w, g) = (host::<T>(x)?, host::<T>(weight)?, host::<T>(grad)?);
        let (zero, n, eps) = (T::from_f64(0.0), T::from_f64(width as f64), T::from_f64(self.eps));
        let mut dx = vec![zero; xs.len()];
        let (mut dw, mut db, mut normed) = (vec![zero; width], vec![zero; width], vec![zero; width]);
        for ((row, gr), out) in xs.chunks_exact(width).zip(g.chunks_exact(width)).zip(dx.chunks_exact_mut(width)) {
            let (mean, inv_std) = moments(row, eps);
            let (mut mean_gw, mut mean_gw_normed) = (zero, zero);
            for i in 0..width {
                normed[i] = (row[i] - mean) * inv_std;
                let gw = gr[i] * w[i];
                dw[i] += gr[i] * normed[i];
                db[i] += gr[i];
                mean_gw += gw;
                mean_gw_normed += gw * normed[i];
            }
            mean_gw /= n;
            mean_gw_normed /= n;
            for i in 0..width {
                out[i] = (gr[i] * w[i] - mean_gw - normed[i] * mean_gw_normed) * inv_std;
            }
        }
        Ok((
            Tensor::from_vec(dx, x.shape(), x.device())?,
            Tensor::from_vec(dw, weight.shape(), x.device())?,
            Tensor::from_vec(db, weight.shape(), x.device())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_close, check, max_abs_diff};
    use candle_core::{Device, Var};

    fn var(values: Vec<f64>, shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn spread(n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 % 23) as f64 - 11.0) * scale).collect()
    }

    /// Each op's values equal candle's differentiable composition of plain ops.
    #[test]
    fn values_match_candle_compositions() {
        let x = Tensor::from_vec(spread(24, 0.3), (2, 3, 4), &Device::Cpu).unwrap();
        let diff = |a: &Tensor, b: &Tensor| max_abs_diff(a, b).unwrap();
        assert!(diff(&gelu(&x).unwrap(), &x.gelu().unwrap()) < 1e-12);
        let (w, b) = (
            Tensor::new(&[0.5f64, -1.0, 2.0, 1.5], &Device::Cpu).unwrap(),
            Tensor::new(&[0.1f64, 0.0, -0.2, 0.3], &Device::Cpu).unwrap(),
        );
        let want = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5).unwrap();
        assert!(diff(&layer_norm(&x, &w, &b, 1e-5).unwrap(), &want) < 1e-12);
        assert!(diff(&add_bias(&x, &b).unwrap(), &x.broadcast_add(&b).unwrap()) < 1e-15);
        // f32 takes the same path.
        let x32 = x.to_dtype(DType::F32).unwrap();
        let got = gelu(&x32).unwrap().to_dtype(DType::F64).unwrap();
        assert!(diff(&got, &x.gelu().unwrap()) < 1e-6);
    }

    #[test]
    fn fast_exp_is_accurate_over_the_whole_range() {
        let mut worst = 0f64;
        for i in 0..=350_000 {
            let x = -87.0 + i as f64 * 175.0 / 350_000.0;
            let got = exp_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
        assert!(exp_f32(1000.0).is_finite() && exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_matches_the_exact_formula() {
        let logits: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.25).collect();
        let mut probs = logits.clone();
        sigmoid_in_place(&mut probs);
        for (x, p) in logits.iter().zip(&probs) {
            let want = 1.0 / (1.0 + (-*x as f64).exp());
            assert!((*p as f64 - want).abs() < 1e-7, "sigmoid({x}) = {p}, expected {want}");
            assert!((0.0..=1.0).contains(p));
        }
    }

    /// Gradients of every input against central differences, through a loss that weights each output
    /// differently (a plain sum would hide errors that cancel across a row).
    #[test]
    fn gradients_match_finite_differences() {
        let x = var(spread(24, 0.4), &[2, 3, 4]);
        let w = var(vec![0.5, -1.0, 2.0, 1.5], &[4]);
        let b = var(vec![0.1, 0.0, -0.2, 0.3], &[4]);
        let weights = Tensor::from_vec(spread(24, 0.1), (2, 3, 4), &Device::Cpu).unwrap();
        let weighted = |t: Tensor| (t * &weights)?.sum_all()?.sqr();
        let vars = vec![("x".to_string(), x.clone()), ("w".to_string(), w.clone()), ("b".to_string(), b.clone())];
        let reports =
            check(&vars, || Ok(weighted(layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?)?), 1e-6, 24)
                .unwrap();
        assert_close(&reports, 1e-5).unwrap();
        let bias_reports =
            check(&vars[..2], || Ok(weighted(add_bias(x.as_tensor(), w.as_tensor())?)?), 1e-6, 24).unwrap();
        assert_close(&bias_reports, 1e-6).unwrap();
        let only_x = &vars[..1];
        assert_close(&check(only_x, || Ok(weighted(gelu(x.as_tensor())?)?), 1e-6, 24).unwrap(), 1e-6).unwrap();
    }
}
