//! LR, the logistic-regression row of the SafeDrug (Yang et al., IJCAI 2021) and GAMENet (Shang et
//! al., AAAI 2019) papers, as SafeDrug's `src/LR.py` trains it: scikit-learn's
//! `OneVsRestClassifier(LogisticRegression())` on the multi-hot of one visit's diagnoses and
//! procedures, every visit of every training patient a sample, no history. So a first-visit patient
//! needs nothing else. The objective is scikit-learn's (per medication: ½‖w‖² + C · Σ log-loss, the
//! intercept unpenalised, C = 1); we minimise it, summed over medications and divided by C·N·M, with
//! mini-batch Adam from zero weights instead of lbfgs, and keep the epoch with the best validation
//! PRAUC.

use super::model::{Buffers, Model, Step};
use super::visits::{CodeSpace, Stream};
use super::BaselineKind;
use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::Dropout;
use anyhow::Result;
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrDims {
    /// Inverse L2 strength (scikit-learn's C).
    pub c: f64,
}

/// The logistic regression: one weight row and an intercept per medication.
pub struct Lr {
    weight: Tensor,
    bias: Tensor,
    codes: CodeSpace,
    c: f64,
}

/// `x · Wᵀ + b`: one logit per medication for each multi-hot row of `x`.
fn logits(weight: &Tensor, bias: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
}

/// The scikit-learn objective over one batch, scaled: mean BCE over the batch's entries plus
/// ‖W‖² / (2·C·N·M) for N training samples (the bias is not penalised).
pub fn objective(weight: &Tensor, bias: &Tensor, x: &Tensor, y: &Tensor, c: f64, n: usize) -> Result<Tensor> {
    let m = weight.dim(0)?;
    let penalty = (weight.sqr()?.sum_all()? / (2.0 * c * n as f64 * m as f64))?;
    Ok((crate::nn::loss::bce_with_logits(&logits(weight, bias, x)?, y)? + penalty)?)
}

impl Lr {
    /// The multi-hot [B, F] of each target visit's diagnoses and procedures.
    fn inputs(&self, histories: &[&[Visit]]) -> Result<Tensor> {
        let f = self.codes.size();
        let mut x = vec![0f32; histories.len() * f];
        for (i, h) in histories.iter().enumerate() {
            self.codes.ids(h, h.len() - 1).for_each(|j| x[i * f + j as usize] = 1.0);
        }
        Ok(Tensor::from_vec(x, (histories.len(), f), self.weight.device())?.to_dtype(self.weight.dtype())?)
    }
}

impl Model for Lr {
    const KIND: BaselineKind = BaselineKind::Lr;
    const DEFAULT_CONFIG: &'static str = include_str!("../../configs/baseline-lr.toml");
    type Dims = LrDims;

    fn new(dims: &LrDims, vocab: &Vocab, _: &Buffers, vb: VarBuilder) -> Result<Self> {
        anyhow::ensure!(dims.c.is_finite() && dims.c > 0.0, "model.c = {}: must be positive", dims.c);
        let codes = CodeSpace::new(vocab, &[Stream::Diagnoses, Stream::Procedures]);
        // Zero weights, as scikit-learn's start.
        let weight = vb.get_with_hints((vocab.num_medications(), codes.size()), "weight", Init::Const(0.0))?;
        let bias = vb.get_with_hints(vocab.num_medications(), "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, codes, c: dims.c })
    }

    fn logits(&self, histories: &[&[Visit]], _: &mut Dropout) -> Result<Tensor> {
        logits(&self.weight, &self.bias, &self.inputs(histories)?)
    }

    fn loss(&self, histories: &[&[Visit]], labels: &Tensor, step: &mut Step) -> Result<Tensor> {
        objective(&self.weight, &self.bias, &self.inputs(histories)?, labels, self.c, step.samples)
    }
}
