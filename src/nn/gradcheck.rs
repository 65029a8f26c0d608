//! Finite-difference gradient checks. candle silently drops gradients through ops that have no
//! backward (fused softmax, norms, RoPE), so every training path is checked against central
//! differences in f64. Also the value comparison the checks of fused ops and second code paths use.

use anyhow::{ensure, Result};
use candle_core::{DType, Tensor, Var};

/// The worst disagreement found for one variable.
#[derive(Debug, Clone)]
pub struct GradReport {
    pub name: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    /// Largest analytic gradient magnitude among the checked entries (a zero here means the variable
    /// gets no gradient at all, which the check treats as a failure).
    pub max_analytic: f64,
}

/// Compares `loss_fn`'s analytic gradient for each variable with central differences at up to
/// `entries_per_var` evenly spread entries. `loss_fn` must be deterministic (no dropout) and return a
/// scalar; variables must be f64.
pub fn check(
    vars: &[(String, Var)],
    loss_fn: impl Fn() -> Result<Tensor>,
    eps: f64,
    entries_per_var: usize,
) -> Result<Vec<GradReport>> {
    let loss = loss_fn()?;
    let grads = loss.backward()?;
    let mut reports = Vec::new();
    for (name, var) in vars {
        ensure!(var.dtype() == DType::F64, "gradient check of {name} needs f64, got {:?}", var.dtype());
        let original = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let analytic = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; original.len()],
        };
        let n = original.len();
        let stride = (n / entries_per_var.max(1)).max(1);
        let mut report = GradReport { name: name.clone(), max_abs_err: 0.0, max_rel_err: 0.0, max_analytic: 0.0 };
        for idx in (0..n).step_by(stride).take(entries_per_var) {
            let eval_at = |delta: f64| -> Result<f64> {
                let mut values = original.clone();
                values[idx] += delta;
                var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
                Ok(loss_fn()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
            };
            let numeric = (eval_at(eps)? - eval_at(-eps)?) / (2.0 * eps);
            let abs = (numeric - analytic[idx]).abs();
            let rel = abs / numeric.abs().max(analytic[idx].abs()).max(1e-8);
            report.max_abs_err = report.max_abs_err.max(abs);
            report.max_rel_err = report.max_rel_err.max(rel);
            report.max_analytic = report.max_analytic.max(analytic[idx].abs());
        }
        var.set(&Tensor::from_vec(original, var.shape(), var.device())?)?;
        reports.push(report);
    }
    Ok(reports)
}

/// Fails unless every variable has a non-zero gradient that matches finite differences within
/// `tol` (absolute error, or relative error where the gradient is large).
pub fn assert_close(reports: &[GradReport], tol: f64) -> Result<()> {
    for r in reports {
        ensure!(r.max_analytic > 0.0, "{}: no gradient reached this variable", r.name);
        ensure!(r.max_abs_err < tol || r.max_rel_err < tol, "{}: analytic vs numeric gradient differ: {r:?}", r.name);
    }
    Ok(())
}

/// The largest element-wise |a − b|, compared in f64 (a and b of one shape, any float dtype).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?;
    Ok(diff.abs()?.max_all()?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn catches_a_dropped_gradient() {
        let x = Var::new(&[[0.3f64, -1.2, 0.7]], &Device::Cpu).unwrap();
        let vars = vec![("x".to_string(), x.clone())];
        // The differentiable softmax passes.
        let ok = check(&vars, || Ok(candle_nn::ops::softmax(x.as_tensor(), 1)?.sqr()?.sum_all()?), 1e-6, 3).unwrap();
        assert_close(&ok, 1e-6).unwrap();
        // The fused one has no backward: the check must notice.
        let bad =
            check(&vars, || Ok(candle_nn::ops::softmax_last_dim(x.as_tensor())?.sqr()?.sum_all()?), 1e-6, 3).unwrap();
        assert!(assert_close(&bad, 1e-6).is_err());
    }
}
