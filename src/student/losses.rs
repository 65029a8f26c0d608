//! The student's training losses (reference doc §5.1): BCE, feature KD and profile alignment, and the
//! training-only heads they need.

use super::batch::Batch;
use super::config::LossConfig;
use super::model::{Output, StudentNet};
use crate::nn::layers::{torch_linear, Dropout};
use crate::nn::loss::bce_with_logits;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

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

/// The parts of the losses of one batch: BCE and KD are means over its records; the alignment,
/// which contrasts every record with the others, is left as its two inputs [B, d].
pub struct Terms {
    pub bce: Tensor,
    pub kd: Option<Tensor>,
    pub align_pair: Option<(Tensor, Tensor)>,
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

    /// The per-record parts of the losses of `batch`: BCE and KD (means over the batch) and the two
    /// projections the alignment compares. KD is computed when `teacher` is given; the projections
    /// when β > 0.
    pub fn terms(
        &self,
        model: &StudentNet,
        out: &Output,
        batch: &Batch,
        teacher: Option<&Tensor>,
        cfg: &LossConfig,
        drop: &mut Dropout,
    ) -> Result<Terms> {
        let bce = bce_with_logits(&out.logits, &batch.labels)?;
        let kd = match (teacher, &self.kd_projector) {
            (Some(t), Some(projector)) => Some(feature_kd(&projector.forward(&out.hidden)?, t)?),
            (Some(_), None) => candle_core::bail!("a teacher target was given but the model has no KD projector"),
            _ => None,
        };
        let align_pair = if cfg.beta > 0.0 {
            let meds = model.encode_medication_sets(&batch.target_medications, drop)?;
            Some((self.align_medications.forward(&meds)?, self.align_profile.forward(&out.profile_prompt)?))
        } else {
            None
        };
        Ok(Terms { bce, kd, align_pair })
    }
}

/// Total = BCE + α·KD + β·align of one batch's [`Terms`] (the training step computes the same over
/// shards, see `student::step`).
pub fn combine(terms: Terms, cfg: &LossConfig) -> Result<Losses> {
    let Terms { bce, kd, align_pair } = terms;
    let align = align_pair.map(|(x, y)| alignment(&x, &y, cfg.temperature, cfg.exclude_positive)).transpose()?;
    let mut total = bce.clone();
    if let Some(kd) = &kd {
        total = (total + (kd * cfg.alpha)?)?;
    }
    if let Some(align) = &align {
        total = (total + (align * cfg.beta)?)?;
    }
    Ok(Losses { total, bce, kd, align })
}
