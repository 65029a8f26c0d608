//! MICRON (Yang et al., "Change Matters: Medication Change Prediction with Recurrent Residual
//! Networks", IJCAI 2021), written from the paper and read beside the authors' code
//! (ycq091044/MICRON `src/models.py`, `src/MICRON.py`):
//!
//! x_k = [Σ diagnosis embeddings; Σ procedure embeddings] of visit k (dropout on each code);
//! h_k = W_h x_k + b_h (the health representation; a zero x before the first visit);
//! PN = W₂ ReLU(W₁ · + b₁) + b₂, the prescription network, [d] → [M].
//!
//! Training, per target visit t: the current prediction PN(h_t), the previous one PN(h_{t−1}) and
//! the residual PN(h_t − h_{t−1}); loss = w₁·BCE + w₂·margin + w₃·DDI + w₄·reconstruction, where BCE
//! and the multilabel margin (on sigmoid outputs, scaled by 0.05) weigh the current prediction
//! against visit t's drugs by 0.75 and the previous one against visit t−1's by 0.25, the DDI term
//! (Σ p pᵀ ⊙ A over M) counts only when the current prediction's DDI rate is above 0.08, and the
//! reconstruction term is Σ (σ(PN(h_t)) − σ(PN(h_{t−1}) + PN(h_t − h_{t−1})))² over M.
//!
//! Scoring follows MICRON's recurrence: logits = PN(h_0) + Σ_{k=1..t} PN(h_k − h_{k−1}), so a
//! first visit is scored by PN(h_0). Where we differ: MICRON neither trains nor scores first visits
//! (here a first visit trains on its current-visit terms and the reconstruction, with the zero
//! previous visit its model computes); it turns probabilities into a set by adding drugs with
//! p ≥ 0.8 to the previous visit's set and removing those with p < 0.2, where the harness thresholds
//! every model's probabilities alike (p > 0.5), so F1, Jaccard and #meds here are not MICRON's rule's;
//! its optimiser is RMSprop one patient per step, ours Adam over batches.

use super::losses::{margin_rows, DdiTerm};
use super::model::{check_dims, Buffers, Model, Step, TrainingData};
use super::visits::{CodeSpace, DiagnosisProcedureEmbeddings, Order, Pool, Stream, VisitGrid};
use super::BaselineKind;
use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::{linear, torch_linear, Dropout};
use crate::nn::loss::bce_with_logits_rows;
use anyhow::Result;
use candle_core::{Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicronDims {
    pub embedding: usize,
    pub dropout: f64,
    /// BCE, margin, DDI, reconstruction.
    pub term_weights: [f64; 4],
    pub last_visit_share: f64,
    pub margin_scale: f64,
    pub ddi_rate_threshold: f64,
}

pub struct Micron {
    codes: DiagnosisProcedureEmbeddings,
    /// The previous visit's prescriptions, the labels of its prediction.
    medications: CodeSpace,
    health: Linear,
    prescription_hidden: Linear,
    prescription_out: Linear,
    ddi: DdiTerm,
    dims: MicronDims,
}

/// Every visit's health representation, flattened [B·T + 1, d] with h of the zero visit last, and
/// the rows of each target visit and of the visit before it (the zero visit for a first visit).
struct Health {
    h: Tensor,
    target: Tensor,
    previous: Tensor,
}

impl Micron {
    fn prescription(&self, h: &Tensor) -> Result<Tensor> {
        Ok(linear(&linear(h, &self.prescription_hidden)?.relu()?, &self.prescription_out)?)
    }

    fn health(&self, grid: &VisitGrid, drop: &mut Dropout) -> Result<Health> {
        let device = self.health.weight().device();
        let (e_d, e_p) = self.codes.embed(grid, Pool::Sum, self.dims.dropout, drop)?;
        let x = Tensor::cat(&[e_d, e_p], D::Minus1)?;
        let (b, t, width) = x.dims3()?;
        let x = Tensor::cat(&[x.reshape((b * t, width))?, Tensor::zeros((1, width), x.dtype(), device)?], 0)?;
        let zero_visit = (b * t) as u32;
        let target = grid.target_slot_indices();
        let previous: Vec<u32> = target
            .iter()
            .zip(grid.histories)
            .map(|(&slot, h)| if h.len() > 1 { slot - 1 } else { zero_visit })
            .collect();
        let (target, previous) = (Tensor::new(target, device)?, Tensor::new(previous, device)?);
        Ok(Health { h: linear(&x, &self.health)?, target, previous })
    }
}

impl Model for Micron {
    const KIND: BaselineKind = BaselineKind::Micron;
    const DEFAULT_CONFIG: &'static str = include_str!("../../configs/baseline-micron.toml");
    type Dims = MicronDims;

    fn buffers(_: &MicronDims, data: &TrainingData) -> Result<Buffers> {
        let adjacency = DdiTerm::required_adjacency(data, "MICRON")?;
        Ok(Buffers::from([DdiTerm::buffer(&adjacency, data.vocab.num_medications())?]))
    }

    fn new(dims: &MicronDims, vocab: &Vocab, buffers: &Buffers, vb: VarBuilder) -> Result<Self> {
        check_dims(dims.embedding, &[("dropout", dims.dropout)])?;
        let (d, m) = (dims.embedding, vocab.num_medications());
        Ok(Self {
            codes: DiagnosisProcedureEmbeddings::new(&vb, vocab, d)?,
            medications: CodeSpace::new(vocab, &[Stream::EarlierMedications]),
            health: torch_linear(2 * d, d, true, vb.pp("health"))?,
            prescription_hidden: torch_linear(d, 4 * d, true, vb.pp("prescription_hidden"))?,
            prescription_out: torch_linear(4 * d, m, true, vb.pp("prescription_out"))?,
            ddi: DdiTerm::new(buffers, &vb)?,
            dims: dims.clone(),
        })
    }

    fn logits(&self, histories: &[&[Visit]], drop: &mut Dropout) -> Result<Tensor> {
        let grid = VisitGrid::new(histories, Order::Forward);
        let (b, t) = (grid.batch(), grid.steps);
        let health = self.health(&grid, drop)?;
        let h = health.h.narrow(0, 0, b * t)?.reshape((b, t, ()))?;
        let first = self.prescription(&h.narrow(1, 0, 1)?.squeeze(1)?)?;
        if t == 1 {
            return Ok(first);
        }
        // Residuals of visits 1..t of each history (the later slots of a shorter one are masked).
        let changes = (h.narrow(1, 1, t - 1)? - h.narrow(1, 0, t - 1)?)?;
        let residuals = self.prescription(&changes)?;
        let (dtype, device) = (h.dtype(), h.device());
        let later = grid.filled(dtype, device)?.narrow(1, 1, t - 1)?;
        Ok((first + residuals.broadcast_mul(&later.unsqueeze(2)?)?.sum(1)?)?)
    }

    fn loss(&self, histories: &[&[Visit]], labels: &Tensor, step: &mut Step) -> Result<Tensor> {
        let dims = &self.dims;
        let grid = VisitGrid::new(histories, Order::Forward);
        let health = self.health(&grid, &mut step.dropout())?;
        let (h, h_last) = (health.h.index_select(&health.target, 0)?, health.h.index_select(&health.previous, 0)?);
        let (current, last, residual) =
            (self.prescription(&h)?, self.prescription(&h_last)?, self.prescription(&(&h - &h_last)?)?);
        let (dtype, device) = (current.dtype(), current.device());
        let m = current.dim(1)?;
        // The previous visit's drugs (an input), and whether there is a previous visit.
        let earlier = grid.multi_hot(&self.medications, dtype, device)?;
        let has_last: Vec<f32> = histories.iter().map(|h| (h.len() > 1) as u8 as f32).collect();
        let has_last = Tensor::from_vec(has_last, histories.len(), device)?.to_dtype(dtype)?;
        let (b, t, _) = earlier.dims3()?;
        let earlier = Tensor::cat(&[earlier.reshape((b * t, m))?, Tensor::zeros((1, m), dtype, device)?], 0)?;
        let last_labels = earlier.index_select(&health.previous, 0)?;
        let (p, p_last) = (candle_nn::ops::sigmoid(&current)?, candle_nn::ops::sigmoid(&last)?);
        let share = dims.last_visit_share;
        let weigh = |now: Tensor, before: Tensor| -> Result<Tensor> {
            Ok(((now * (1.0 - share))? + (before * &has_last)? * share)?)
        };
        let bce = weigh(bce_with_logits_rows(&current, labels)?, bce_with_logits_rows(&last, &last_labels)?)?;
        let margin = (weigh(margin_rows(&p, labels)?, margin_rows(&p_last, &last_labels)?)? * dims.margin_scale)?;
        let over: Vec<f32> =
            self.ddi.predicted_rates(&p)?.iter().map(|&r| (r > dims.ddi_rate_threshold) as u8 as f32).collect();
        let ddi =
            ((self.ddi.rows(&p)? / m as f64)? * Tensor::from_vec(over, histories.len(), device)?.to_dtype(dtype)?)?;
        let rebuilt = candle_nn::ops::sigmoid(&(last + residual)?)?;
        let reconstruction = ((p - rebuilt)?.sqr()?.sum(1)? / m as f64)?;
        let [w_bce, w_margin, w_ddi, w_rec] = dims.term_weights;
        let rows = ((bce * w_bce)? + (margin * w_margin)? + (ddi * w_ddi)? + (reconstruction * w_rec)?)?;
        Ok(rows.mean_all()?)
    }
}
