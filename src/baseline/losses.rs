//! The extra training terms GAMENet and MICRON add to BCE, per batch row ([B]) so that each row can
//! weigh them by its own prediction's DDI rate, as their one-visit-per-step code does.

use super::model::{Buffers, TrainingData};
use crate::eval::ddi::{DdiCounter, MedSet};
use crate::eval::metrics::Threshold;
use anyhow::Context;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

/// PyTorch's `multilabel_margin_loss` of `probs` [B, M] (the originals apply it to sigmoid
/// outputs) against the multi-hot `labels`: Σ over positives j and negatives i of
/// max(0, 1 − (p_j − p_i)), over M; a row without positives gives 0.
pub fn margin_rows(probs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let m = probs.dim(1)?;
    let gaps = (probs.unsqueeze(2)?.neg()? + 1.0)?.broadcast_add(&probs.unsqueeze(1)?)?.relu()?;
    let pairs = labels.unsqueeze(2)?.broadcast_mul(&(labels.neg()? + 1.0)?.unsqueeze(1)?)?;
    (gaps * pairs)?.sum((1, 2))? / m as f64
}

/// Σ_ij p_i p_j A_ij of each row of `probs` [B, M] with the DDI adjacency `ddi` [M, M]: the
/// expected number of interacting ordered pairs; GAMENet divides it by M², MICRON by M.
pub fn ddi_rows(probs: &Tensor, ddi: &Tensor) -> Result<Tensor> {
    (probs.matmul(ddi)? * probs)?.sum(D::Minus1)
}

/// The DDI graph a model trains against: the adjacency of the data folder's `ddi.json` (saved with
/// the weights as the buffer `ddi`) and the evaluation's pair counter over it.
pub struct DdiTerm {
    adjacency: Tensor,
    counter: DdiCounter,
}

const DDI_BUFFER: &str = "ddi";

impl DdiTerm {
    /// The data folder's DDI adjacency over the medications (row-major M×M), which `model` needs.
    pub fn required_adjacency(data: &TrainingData, model: &str) -> anyhow::Result<Vec<bool>> {
        let ddi = data.ddi.with_context(|| format!("{model} needs the data folder's ddi.json (its DDI graph)"))?;
        Ok(ddi.adjacency(data.vocab))
    }

    /// The named buffer that holds `adjacency` ([`Self::required_adjacency`]) over `m` medications.
    pub fn buffer(adjacency: &[bool], m: usize) -> Result<(String, Tensor)> {
        let values: Vec<f32> = adjacency.iter().map(|&a| a as u8 as f32).collect();
        Ok((DDI_BUFFER.to_string(), Tensor::from_vec(values, (m, m), &Device::Cpu)?))
    }

    pub fn new(buffers: &Buffers, vb: &VarBuilder) -> anyhow::Result<Self> {
        let adjacency =
            buffers.get(DDI_BUFFER).context("no buffer ddi")?.to_dtype(vb.dtype())?.to_device(vb.device())?;
        let m = adjacency.dim(0)?;
        let flags: Vec<bool> =
            adjacency.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().map(|&a| a > 0.0).collect();
        Ok(Self { counter: DdiCounter::from_adjacency(&flags, m), adjacency })
    }

    /// [`ddi_rows`] against this graph.
    pub fn rows(&self, probs: &Tensor) -> Result<Tensor> {
        ddi_rows(probs, &self.adjacency)
    }

    /// The DDI rate of the set `probs` ≥ 0.5 predicts in each row (interacting pairs over all
    /// pairs, 0 without a pair; the evaluation's count), as the originals decide whether to train
    /// on the DDI term.
    pub fn predicted_rates(&self, probs: &Tensor) -> Result<Vec<f64>> {
        let rows: Vec<Vec<f32>> = probs.to_dtype(DType::F32)?.to_vec2()?;
        let at_half = Threshold { value: 0.5, inclusive: true };
        Ok(rows
            .iter()
            .map(|p| {
                let counts = self.counter.count(&MedSet::predicted(p, at_half));
                if counts.pairs == 0 {
                    0.0
                } else {
                    counts.interacting as f64 / counts.pairs as f64
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// PyTorch's definition, by loops: Σ_{j ∈ y} Σ_{i ∉ y} max(0, 1 − (x_j − x_i)) / M; and
    /// Σ_ij p_i p_j A_ij.
    #[test]
    fn margin_and_ddi_terms_match_their_definitions() {
        let p = [[0.9f64, 0.2, 0.6, 0.05], [0.3, 0.8, 0.1, 0.7], [0.5, 0.5, 0.5, 0.5]];
        let y = [[1f64, 0., 1., 0.], [0., 0., 0., 1.], [0., 0., 0., 0.]];
        let a = [[0f64, 1., 0., 0.], [1., 0., 0., 1.], [0., 0., 0., 0.], [0., 1., 0., 0.]];
        let t = |rows: &[[f64; 4]]| Tensor::new(rows.concat(), &Device::Cpu).unwrap().reshape((rows.len(), 4)).unwrap();
        let margin: Vec<f64> = margin_rows(&t(&p), &t(&y)).unwrap().to_vec1().unwrap();
        let ddi: Vec<f64> = ddi_rows(&t(&p), &t(&a)).unwrap().to_vec1().unwrap();
        for r in 0..3 {
            let mut expected = 0.0;
            for j in (0..4).filter(|&j| y[r][j] == 1.0) {
                for i in (0..4).filter(|&i| y[r][i] == 0.0) {
                    expected += (1.0 - (p[r][j] - p[r][i])).max(0.0);
                }
            }
            assert!((margin[r] - expected / 4.0).abs() < 1e-12, "row {r}: {} vs {}", margin[r], expected / 4.0);
            let pairs: f64 =
                (0..4).flat_map(|i| (0..4).map(move |j| (i, j))).map(|(i, j)| p[r][i] * p[r][j] * a[i][j]).sum();
            assert!((ddi[r] - pairs).abs() < 1e-12);
        }
        assert_eq!(margin[2], 0.0);
    }
}
