//! GAMENet (Shang et al., "GAMENet: Graph Augmented MEmory Networks for Recommending Medication
//! Combination", AAAI 2019), written from the paper and read beside the authors' code
//! (sjy1203/GAMENet `code/models.py`, `code/layers.py`, `code/train_GAMENet.py`):
//!
//! e_k = mean of visit k's diagnosis embeddings (dropout on each), likewise for procedures;
//! o = GRU_d(e_d), GRU_p(e_p); Q_k = W_q ReLU([o_d,k; o_p,k]); q = Q at the target visit;
//! memory = GCN(co-prescription graph) − λ · GCN(DDI graph), each GCN two graph convolutions over
//! the row-normalised graph with self-loops (one-hot node features, ReLU and dropout between);
//! fact₁ = softmax(q · memoryᵀ) · memory;
//! fact₂ = (softmax over earlier visits of q · Q_k) · (their prescriptions' multi-hot) · memory,
//! or fact₁ for a first visit (no earlier visit), as the original;
//! logits = W₂ ReLU(W₁ ReLU([q; fact₁; fact₂])).
//!
//! Training (per target visit): 0.9 · BCE + 0.01 · multilabel margin on sigmoid outputs; when the
//! visit's predicted set (p ≥ 0.5) has a DDI rate above the target, the visit trains on the DDI term
//! mean(p pᵀ ⊙ A_DDI) alone with probability exp((target − rate)/T), T decaying every epoch.
//! Where we differ: the co-prescription graph comes from the training split only (the original
//! counts every patient, test patients included); targets are batched (the DDI decision stays per
//! visit); the original draws its acceptance from NumPy's global stream, ours from the step's seed.

use super::losses::{margin_rows, DdiTerm};
use super::model::{check_dims, Buffers, Model, Step, TrainingData};
use super::visits::{
    gather_slots, softmax_over_filled, CodeSpace, DiagnosisProcedureEmbeddings, Order, Pool, Stream, VisitGrid,
};
use super::BaselineKind;
use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::{linear, torch_linear, Dropout, Gru};
use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GamenetDims {
    pub embedding: usize,
    pub dropout: f64,
    pub graph_dropout: f64,
    pub ddi_in_memory: bool,
    pub target_ddi: f64,
    pub temperature: f64,
    pub decay: f64,
    pub bce_weight: f64,
    pub margin_weight: f64,
}

/// Two graph convolutions over a fixed normalised graph with one-hot node features:
/// G · (ReLU(G · W₁ + b₁) · W₂) + b₂ → [M, d].
struct Gcn {
    graph: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Gcn {
    fn new(vb: VarBuilder, graph: Tensor, d: usize) -> Result<Self> {
        let m = graph.dim(0)?;
        // The original's GraphConvolution: uniform in ±1/√out.
        let init = Init::Uniform { lo: -1.0 / (d as f64).sqrt(), up: 1.0 / (d as f64).sqrt() };
        Ok(Self {
            graph,
            w1: vb.get_with_hints((m, d), "w1", init)?,
            b1: vb.get_with_hints(d, "b1", init)?,
            w2: vb.get_with_hints((d, d), "w2", init)?,
            b2: vb.get_with_hints(d, "b2", init)?,
        })
    }

    fn forward(&self, p_drop: f64, drop: &mut Dropout) -> Result<Tensor> {
        let h = self.graph.matmul(&self.w1)?.broadcast_add(&self.b1)?.relu()?;
        let h = drop.apply(&h, p_drop)?;
        Ok(self.graph.matmul(&h.matmul(&self.w2)?)?.broadcast_add(&self.b2)?)
    }
}

pub struct Gamenet {
    codes: DiagnosisProcedureEmbeddings,
    /// Earlier visits' prescriptions, the memory's values.
    medications: CodeSpace,
    diagnosis_gru: Gru,
    procedure_gru: Gru,
    query: Linear,
    ehr_gcn: Gcn,
    ddi_gcn: Gcn,
    /// λ, the DDI memory's weight.
    inter: Tensor,
    hidden: Linear,
    output: Linear,
    ddi: DdiTerm,
    dims: GamenetDims,
}

/// Row-normalised A + I, as the original's GCN normalises its graphs.
fn normalised_with_self_loops(adjacency: &[bool], m: usize) -> Vec<f32> {
    let mut g = vec![0f32; m * m];
    for i in 0..m {
        let row = &adjacency[i * m..(i + 1) * m];
        let degree = 1 + row.iter().enumerate().filter(|&(j, &a)| a && j != i).count();
        for j in 0..m {
            if i == j || row[j] {
                g[i * m + j] = 1.0 / degree as f32;
            }
        }
    }
    g
}

impl Gamenet {
    /// The query of each target visit [B, d] and every visit's query [B, T, d].
    fn queries(&self, grid: &VisitGrid, drop: &mut Dropout) -> Result<(Tensor, Tensor)> {
        let device = self.inter.device();
        let (e_d, e_p) = self.codes.embed(grid, Pool::Mean, self.dims.dropout, drop)?;
        let o = Tensor::cat(&[self.diagnosis_gru.forward(&e_d)?, self.procedure_gru.forward(&e_p)?], D::Minus1)?;
        let queries = linear(&o.relu()?, &self.query)?;
        Ok((gather_slots(&queries, &grid.target_slots(device)?)?, queries))
    }
}

impl Model for Gamenet {
    const KIND: BaselineKind = BaselineKind::Gamenet;
    const DEFAULT_CONFIG: &'static str = include_str!("../../configs/baseline-gamenet.toml");
    type Dims = GamenetDims;

    fn buffers(_: &GamenetDims, data: &TrainingData) -> Result<Buffers> {
        let (vocab, m) = (data.vocab, data.vocab.num_medications());
        let ddi = DdiTerm::required_adjacency(data, "GAMENet")?;
        let index = vocab.medication_index();
        let mut ehr = vec![false; m * m];
        for visit in data.train.iter().flat_map(|r| &r.visits) {
            let meds: Vec<usize> = visit.medications.iter().filter_map(|c| index.get(c.as_str()).copied()).collect();
            for &a in &meds {
                meds.iter().filter(|&&b| b != a).for_each(|&b| ehr[a * m + b] = true);
            }
        }
        let graph =
            |adjacency: &[bool]| Tensor::from_vec(normalised_with_self_loops(adjacency, m), (m, m), &Device::Cpu);
        Ok(Buffers::from([
            ("ehr_graph".to_string(), graph(&ehr)?),
            ("ddi_graph".to_string(), graph(&ddi)?),
            DdiTerm::buffer(&ddi, m)?,
        ]))
    }

    fn new(dims: &GamenetDims, vocab: &Vocab, buffers: &Buffers, vb: VarBuilder) -> Result<Self> {
        ensure!(dims.temperature > 0.0 && dims.decay > 0.0, "model.temperature and model.decay must be positive");
        check_dims(dims.embedding, &[("dropout", dims.dropout), ("graph_dropout", dims.graph_dropout)])?;
        let graph = |name: &str| -> Result<Tensor> {
            let t = buffers.get(name).with_context(|| format!("no buffer {name}"))?;
            Ok(t.to_dtype(vb.dtype())?.to_device(vb.device())?)
        };
        let (d, m) = (dims.embedding, vocab.num_medications());
        Ok(Self {
            codes: DiagnosisProcedureEmbeddings::new(&vb, vocab, d)?,
            medications: CodeSpace::new(vocab, &[Stream::EarlierMedications]),
            diagnosis_gru: Gru::new(vb.pp("diagnosis_gru"), d, 2 * d)?,
            procedure_gru: Gru::new(vb.pp("procedure_gru"), d, 2 * d)?,
            query: torch_linear(4 * d, d, true, vb.pp("query"))?,
            ehr_gcn: Gcn::new(vb.pp("ehr_gcn"), graph("ehr_graph")?, d)?,
            ddi_gcn: Gcn::new(vb.pp("ddi_gcn"), graph("ddi_graph")?, d)?,
            inter: vb.get_with_hints(1, "inter", Init::Uniform { lo: -0.1, up: 0.1 })?,
            hidden: torch_linear(3 * d, 2 * d, true, vb.pp("hidden"))?,
            output: torch_linear(2 * d, m, true, vb.pp("output"))?,
            ddi: DdiTerm::new(buffers, &vb)?,
            dims: dims.clone(),
        })
    }

    fn logits(&self, histories: &[&[Visit]], drop: &mut Dropout) -> Result<Tensor> {
        let grid = VisitGrid::new(histories, Order::Forward);
        let (dtype, device) = (self.inter.dtype(), self.inter.device());
        let (q, queries) = self.queries(&grid, drop)?;
        let mut memory = self.ehr_gcn.forward(self.dims.graph_dropout, drop)?;
        if self.dims.ddi_in_memory {
            let ddi_memory = self.ddi_gcn.forward(self.dims.graph_dropout, drop)?;
            memory = (memory - ddi_memory.broadcast_mul(&self.inter)?)?;
        }
        let fact1 = candle_nn::ops::softmax(&q.matmul(&memory.t()?)?, D::Minus1)?.matmul(&memory)?;
        // The memory of earlier visits: their queries are the keys, their prescriptions the values.
        let scores = queries.matmul(&q.unsqueeze(2)?)?.squeeze(2)?;
        let weights = softmax_over_filled(&scores, &grid.earlier(dtype, device)?)?;
        let values = grid.multi_hot(&self.medications, dtype, device)?;
        let recalled = weights.unsqueeze(1)?.matmul(&values)?.squeeze(1)?.matmul(&memory)?;
        let has_history: Vec<f32> = histories.iter().map(|h| (h.len() > 1) as u8 as f32).collect();
        let has_history = Tensor::from_vec(has_history, (histories.len(), 1), device)?.to_dtype(dtype)?;
        let fact2 = (recalled.broadcast_mul(&has_history)? + fact1.broadcast_mul(&(has_history.neg()? + 1.0)?)?)?;
        let hidden = linear(&Tensor::cat(&[q, fact1, fact2], 1)?.relu()?, &self.hidden)?;
        Ok(linear(&hidden.relu()?, &self.output)?)
    }

    fn loss(&self, histories: &[&[Visit]], labels: &Tensor, step: &mut Step) -> Result<Tensor> {
        let dims = &self.dims;
        let logits = self.logits(histories, &mut step.dropout())?;
        let probs = candle_nn::ops::sigmoid(&logits)?;
        let m = probs.dim(1)?;
        let fit = ((crate::nn::loss::bce_with_logits_rows(&logits, labels)? * dims.bce_weight)?
            + (margin_rows(&probs, labels)? * dims.margin_weight)?)?;
        let ddi = (self.ddi.rows(&probs)? / (m * m) as f64)?;
        let temperature = dims.temperature * dims.decay.powi(step.epoch as i32);
        let on_ddi: Vec<f32> = self
            .ddi
            .predicted_rates(&probs)?
            .into_iter()
            .map(|rate| {
                let accept = rate > dims.target_ddi && step.uniform() < ((dims.target_ddi - rate) / temperature).exp();
                accept as u8 as f32
            })
            .collect();
        let on_ddi = Tensor::from_vec(on_ddi, histories.len(), probs.device())?.to_dtype(probs.dtype())?;
        let rows = ((ddi * &on_ddi)? + (fit * (on_ddi.neg()? + 1.0)?)?)?;
        Ok(rows.mean_all()?)
    }
}
