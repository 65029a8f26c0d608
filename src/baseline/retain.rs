//! RETAIN (Choi et al., "RETAIN: An Interpretable Predictive Model for Healthcare using Reverse Time
//! Attention Mechanism", NeurIPS 2016), the RETAIN row of the SafeDrug, MICRON and LEADER papers.
//! Written from the paper and read beside SafeDrug's `src/models.py` (class `Retain`) and PyHealth's
//! `pyhealth/models/retain.py`:
//!
//! v_k = Σ embeddings of visit k's codes (dropout on each code's embedding);
//! g, h = GRU_α, GRU_β over the visits in reverse time (the target visit first);
//! α = softmax over visits of w_α·g_k (the paper's b_α shifts every score alike, so has no effect); β_k = tanh(W_β h_k + b_β);
//! c = Σ_k α_k · β_k ⊙ v_k; logits = W_out c + b_out.
//!
//! A visit's codes are its diagnoses and procedures and, for every visit before the target one, its
//! medications; a first visit is a sequence of one (its diagnoses and procedures), so α = 1.
//! Where we differ from those codes, on purpose: SafeDrug's softmax runs over a dimension of size one
//! (every α is 1), its GRUs run forward in time, and it feeds the visits before the target but not
//! the target visit's diagnoses; PyHealth reverses the sequence for the GRUs but weights the
//! un-reversed visits with the reversed attention. We follow the paper.

use super::model::{check_dims, Buffers, Model};
use super::visits::{softmax_over_filled, CodeSpace, Order, Pool, Stream, VisitGrid};
use super::BaselineKind;
use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::{linear, torch_linear, Dropout, Gru};
use anyhow::Result;
use candle_core::{Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainDims {
    /// Width of the code embeddings, the GRUs and the context.
    pub embedding: usize,
    /// Dropout on each code's embedding.
    pub dropout: f64,
}

pub struct Retain {
    codes: CodeSpace,
    /// [codes, d], PyTorch's `nn.Embedding` initialisation (standard normal).
    embedding: Tensor,
    alpha_gru: Gru,
    beta_gru: Gru,
    alpha: Linear,
    beta: Linear,
    output: Linear,
    dropout: f64,
}

impl Model for Retain {
    const KIND: BaselineKind = BaselineKind::Retain;
    const DEFAULT_CONFIG: &'static str = include_str!("../../configs/baseline-retain.toml");
    type Dims = RetainDims;

    fn new(dims: &RetainDims, vocab: &Vocab, _: &Buffers, vb: VarBuilder) -> Result<Self> {
        check_dims(dims.embedding, &[("dropout", dims.dropout)])?;
        let codes = CodeSpace::new(vocab, &[Stream::Diagnoses, Stream::Procedures, Stream::EarlierMedications]);
        let d = dims.embedding;
        let embedding = vb.get_with_hints((codes.size(), d), "embedding", Init::Randn { mean: 0.0, stdev: 1.0 })?;
        Ok(Self {
            codes,
            embedding,
            alpha_gru: Gru::new(vb.pp("alpha_gru"), d, d)?,
            beta_gru: Gru::new(vb.pp("beta_gru"), d, d)?,
            // No bias: the softmax over visits ignores a shift of every score.
            alpha: torch_linear(d, 1, false, vb.pp("alpha"))?,
            beta: torch_linear(d, d, true, vb.pp("beta"))?,
            output: torch_linear(d, vocab.num_medications(), true, vb.pp("output"))?,
            dropout: dims.dropout,
        })
    }

    fn logits(&self, histories: &[&[Visit]], drop: &mut Dropout) -> Result<Tensor> {
        let grid = VisitGrid::new(histories, Order::Reversed);
        let device = self.embedding.device();
        let v = grid.bags(&self.codes, device)?.embed(&self.embedding, Pool::Sum, self.dropout, drop)?;
        let scores = linear(&self.alpha_gru.forward(&v)?, &self.alpha)?.squeeze(D::Minus1)?;
        let alpha = softmax_over_filled(&scores, &grid.filled(v.dtype(), device)?)?;
        let beta = linear(&self.beta_gru.forward(&v)?, &self.beta)?.tanh()?;
        let context = (beta * v)?.broadcast_mul(&alpha.unsqueeze(D::Minus1)?)?.sum(1)?;
        Ok(linear(&context, &self.output)?)
    }
}
