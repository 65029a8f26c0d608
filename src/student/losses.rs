//! The student's training losses (reference doc §5.1): BCE, feature KD and profile alignment, and the
//! training-only heads they need.

use super::batch::Batch;
use super::config::LossConfig;
use super::model::{torch_linear, Dropout, Leader, Output};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// Binary cross-entropy with logits, mean over all entries (= per-record mean over M, then batch
/// mean): `max(x, 0) - x*y + log(1 + exp(-|x|))`.
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * labels)? + softplus)?.mean_all()
}

/// Feature KD: mean squared error between the projected student vector and the (detached) teacher
/// vector, mean over H and the batch.
pub fn feature_kd(projected: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    (projected - teacher.detach())?.sqr()?.mean_all()
}

fn cosine_matrix(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let unit = |t: &Tensor| t.broadcast_div(&(t.sqr()?.sum_keepdim(1)? + 1e-16)?.sqrt()?);
    unit(x)?.matmul(&unit(y)?.t()?)
}

/// Symmetric in-batch contrastive loss between rows of `x` and `y` ([B, d] each), summed over both
/// directions per record and averaged over the batch. `S[a][b] = cos(x_a, y_b) / τ`. Standard InfoNCE
/// keeps the positive in the denominator; `exclude_positive` reproduces the reference (§7.17).
/// Needs B >= 2 when the positive is excluded (returns 0 otherwise).
pub fn alignment(x: &Tensor, y: &Tensor, temperature: f64, exclude_positive: bool) -> Result<Tensor> {
    let b = x.dim(0)?;
    if b < 2 && exclude_positive {
        return Tensor::zeros((), x.dtype(), x.device());
    }
    let s = (cosine_matrix(x, y)? / temperature)?;
    let eye = Tensor::eye(b, s.dtype(), s.device())?;
    let positives = (&s * &eye)?.sum(1)?;
    // Multiplying by (1 - I) takes the positives out of the denominators.
    let denominator_terms = if exclude_positive { (s.exp()? * (1.0 - &eye)?)? } else { s.exp()? };
    let log_rows = denominator_terms.sum(1)?.log()?;
    let log_cols = denominator_terms.sum(0)?.log()?;
    ((log_rows + log_cols)? - (positives * 2.0)?)?.mean_all()
}

/// The losses of one step.
pub struct Losses {
    pub total: Tensor,
    pub bce: Tensor,
    pub kd: Option<Tensor>,
    pub align: Option<Tensor>,
}

/// Parameters used only in training: the KD projector (2d → H) and the two alignment projections.
pub struct TrainingHeads {
    kd_projector: Option<Linear>,
    align_medications: Linear,
    align_profile: Linear,
}

impl TrainingHeads {
    /// `teacher_hidden`: H when training with a teacher.
    pub fn new(vb: VarBuilder, d: usize, teacher_hidden: Option<usize>) -> Result<Self> {
        Ok(Self {
            kd_projector: teacher_hidden.map(|h| torch_linear(2 * d, h, true, vb.pp("kd_projector"))).transpose()?,
            align_medications: torch_linear(d, d, true, vb.pp("align_medications"))?,
            align_profile: torch_linear(d, d, true, vb.pp("align_profile"))?,
        })
    }

    /// Total = BCE + α·KD + β·align. KD is computed when `teacher` is given; alignment when β > 0.
    pub fn losses(
        &self,
        model: &Leader,
        out: &Output,
        batch: &Batch,
        teacher: Option<&Tensor>,
        cfg: &LossConfig,
        drop: &mut Dropout,
    ) -> Result<Losses> {
        let bce = bce_with_logits(&out.logits, &batch.labels)?;
        let mut total = bce.clone();
        let kd = match (teacher, &self.kd_projector) {
            (Some(t), Some(projector)) => Some(feature_kd(&projector.forward(&out.hidden)?, t)?),
            (Some(_), None) => candle_core::bail!("a teacher target was given but the model has no KD projector"),
            _ => None,
        };
        if let Some(kd) = &kd {
            total = (total + (kd * cfg.alpha)?)?;
        }
        let align = if cfg.beta > 0.0 {
            let meds = model.encode_medication_sets(&batch.target_medications, drop)?;
            let x = self.align_medications.forward(&meds)?;
            let y = self.align_profile.forward(&out.profile_prompt)?;
            Some(alignment(&x, &y, cfg.temperature, cfg.exclude_positive)?)
        } else {
            None
        };
        if let Some(align) = &align {
            total = (total + (align * cfg.beta)?)?;
        }
        Ok(Losses { total, bce, kd, align })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// BCE by hand: x = [2, -1], y = [1, 0]: (log(1+e^-2) + log(1+e^-1)) / 2.
    #[test]
    fn bce_matches_hand_values() {
        let x = Tensor::new(&[[2.0f64, -1.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1.0f64, 0.0]], &Device::Cpu).unwrap();
        let got = bce_with_logits(&x, &y).unwrap().to_scalar::<f64>().unwrap();
        let expect = ((1.0 + (-2f64).exp()).ln() + (1.0 + (-1f64).exp()).ln()) / 2.0;
        assert!((got - expect).abs() < 1e-12, "{got} vs {expect}");
    }

    /// The alignment loss against a direct per-element evaluation of both formulas.
    #[test]
    fn alignment_matches_direct_formulas() {
        let xs = [[1.0f64, 0.2, -0.3], [0.1, -1.0, 0.4], [0.5, 0.5, 0.5]];
        let ys = [[0.9f64, 0.1, -0.2], [-0.3, 0.8, 0.1], [0.2, -0.4, 1.0]];
        let x = Tensor::new(&xs, &Device::Cpu).unwrap();
        let y = Tensor::new(&ys, &Device::Cpu).unwrap();
        let cos = |a: &[f64; 3], b: &[f64; 3]| {
            let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            dot / (a.iter().map(|p| p * p).sum::<f64>().sqrt() * b.iter().map(|p| p * p).sum::<f64>().sqrt())
        };
        let tau = 0.5;
        for exclude in [false, true] {
            let mut total = 0.0;
            for j in 0..3 {
                let pos = cos(&xs[j], &ys[j]) / tau;
                let keep = |a: usize| !(exclude && a == j);
                let col: f64 = (0..3).filter(|&a| keep(a)).map(|a| (cos(&xs[a], &ys[j]) / tau).exp()).sum();
                let row: f64 = (0..3).filter(|&a| keep(a)).map(|a| (cos(&xs[j], &ys[a]) / tau).exp()).sum();
                total += -(pos - col.ln()) - (pos - row.ln());
            }
            let got = alignment(&x, &y, tau, exclude).unwrap().to_scalar::<f64>().unwrap();
            assert!((got - total / 3.0).abs() < 1e-10, "exclude={exclude}: {got} vs {}", total / 3.0);
        }
    }
}
