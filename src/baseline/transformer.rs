//! The Transformer baseline as PyHealth builds it for drug recommendation
//! (`pyhealth/models/transformer.py` with the features of `pyhealth/tasks/drug_recommendation.py`):
//! three streams — a visit's diagnoses, its procedures and, for visits before the target one, its
//! medications (PyHealth's `drugs_hist` empties the current visit's) —, each visit the sum of its
//! codes' embeddings, each stream a pre-LN transformer over the patient's visits (no positional
//! encoding, as PyHealth's), pooled at the first visit's output (PyHealth's `cls_emb = x[:, 0]`);
//! the three pooled vectors concatenated into one linear layer.
//!
//! Visits without codes in a stream are left out of its attention (PyHealth masks them); a patient
//! with none — a first visit's medication stream — keeps one zero token, as PyHealth keeps position
//! 0. The blocks are the student's ([`crate::nn::layers::TransformerBlock`]): bias-free Q/K/V as
//! PyHealth's, an output projection with a bias and the tanh form of GELU where PyHealth has neither.
//! PyHealth filters out patients with fewer than two visits; here they are trained and scored.

use super::model::{check_dims, Buffers, Model};
use super::visits::{CodeSpace, Order, Pool, Stream, VisitGrid};
use super::BaselineKind;
use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::{linear, torch_linear, BlockDims, Dropout, Packing, TransformerBlock};
use anyhow::Result;
use candle_core::{Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerDims {
    pub embedding: usize,
    pub heads: usize,
    pub layers: usize,
    pub dropout: f64,
    pub attention_dropout: f64,
}

/// One feature stream: its codes, their embeddings and its transformer.
struct FeatureStream {
    codes: CodeSpace,
    embedding: Tensor,
    blocks: Vec<TransformerBlock>,
}

impl FeatureStream {
    fn new(vb: VarBuilder, vocab: &Vocab, stream: Stream, dims: &TransformerDims) -> Result<Self> {
        let codes = CodeSpace::new(vocab, &[stream]);
        let d = dims.embedding;
        let block = BlockDims {
            hidden: d,
            heads: dims.heads,
            ffn: 4 * d,
            hidden_dropout: dims.dropout,
            attention_dropout: dims.attention_dropout,
            layer_norm_eps: 1e-5,
        };
        Ok(Self {
            embedding: vb.get_with_hints((codes.size(), d), "embedding", Init::Randn { mean: 0.0, stdev: 1.0 })?,
            blocks: (0..dims.layers)
                .map(|i| TransformerBlock::new(vb.pp(format!("block{i}")), &block))
                .collect::<candle_core::Result<_>>()?,
            codes,
        })
    }

    /// The first visit's output of each history, [B, d].
    fn forward(&self, grid: &VisitGrid, drop: &mut Dropout) -> Result<Tensor> {
        let device = self.embedding.device();
        let bags = grid.bags(&self.codes, device)?;
        let visits = bags.embed(&self.embedding, Pool::Sum, 0.0, drop)?;
        let (slots, lengths) = bags.occupied_slots(device)?;
        let mut x = visits.reshape((grid.batch() * grid.steps, visits.dim(D::Minus1)?))?.index_select(&slots, 0)?;
        let packing = Packing::from_lengths(&lengths, x.dtype(), device)?;
        for block in &self.blocks {
            x = block.forward(&x, &packing, drop)?;
        }
        let firsts: Vec<u32> =
            lengths.iter().scan(0u32, |start, &len| Some(std::mem::replace(start, *start + len as u32))).collect();
        Ok(x.index_select(&Tensor::new(firsts, device)?, 0)?)
    }
}

pub struct Transformer {
    streams: [FeatureStream; 3],
    output: Linear,
}

impl Model for Transformer {
    const KIND: BaselineKind = BaselineKind::Transformer;
    const DEFAULT_CONFIG: &'static str = include_str!("../../configs/baseline-transformer.toml");
    type Dims = TransformerDims;

    fn new(dims: &TransformerDims, vocab: &Vocab, _: &Buffers, vb: VarBuilder) -> Result<Self> {
        check_dims(dims.embedding, &[("dropout", dims.dropout), ("attention_dropout", dims.attention_dropout)])?;
        anyhow::ensure!(
            dims.heads > 0 && dims.embedding.is_multiple_of(dims.heads) && dims.layers > 0,
            "model.heads = {} and model.layers = {}: both positive, and the heads must divide model.embedding = {}",
            dims.heads,
            dims.layers,
            dims.embedding
        );
        let stream = |name: &str, stream| FeatureStream::new(vb.pp(name), vocab, stream, dims);
        Ok(Self {
            streams: [
                stream("diagnoses", Stream::Diagnoses)?,
                stream("procedures", Stream::Procedures)?,
                stream("medications", Stream::EarlierMedications)?,
            ],
            output: torch_linear(3 * dims.embedding, vocab.num_medications(), true, vb.pp("output"))?,
        })
    }

    fn logits(&self, histories: &[&[Visit]], drop: &mut Dropout) -> Result<Tensor> {
        let grid = VisitGrid::new(histories, Order::Forward);
        let pooled = self.streams.iter().map(|s| s.forward(&grid, drop)).collect::<Result<Vec<_>>>()?;
        Ok(linear(&Tensor::cat(&pooled, 1)?, &self.output)?)
    }
}
