//! The LEADER(S) network (reference doc §4): a shared code embedding, three set encoders pooled per
//! visit, a profile prompt in the medication stream's first slot, one shared visit encoder and an MLP
//! over the three pooled histories. GELU, layer norm, bias adds and attention are the fused
//! differentiable ops of [`crate::nn::ops`]; scoring a trained model only adds what needs no
//! gradient (per-code Q/K/V tables, in-place bias and GELU), tested equal to the training path.

use super::batch::{Batch, CodeSets};
use super::config::ModelDims;
use crate::nn::layers::{row_means, torch_linear, Dropout, TransformerBlock};
use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, Embedding, Linear, VarBuilder};

/// Profile encoder: one embedding per field, concatenated and projected to d by the medication head
/// (the reference builds the medication prompt with `diag_head`, §7.9; ours has only the head it uses).
pub struct ProfileEncoder {
    fields: Vec<Embedding>,
    med_head: Linear,
}

impl ProfileEncoder {
    pub fn new(vb: VarBuilder, field_sizes: &[usize], d: usize) -> Result<Self> {
        if field_sizes.is_empty() {
            candle_core::bail!("the vocabulary has no profile fields; the profile encoder needs at least one");
        }
        let fields = field_sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| embedding(n, d, vb.pp(format!("field{i}"))))
            .collect::<Result<_>>()?;
        Ok(Self { fields, med_head: torch_linear(d * field_sizes.len(), d, true, vb.pp("med_head"))? })
    }

    /// `profile` [B, F] value indices → [B, d].
    pub fn forward(&self, profile: &Tensor) -> Result<Tensor> {
        let parts = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, e)| e.forward(&profile.narrow(1, i, 1)?.squeeze(1)?))
            .collect::<Result<Vec<_>>>()?;
        self.med_head.forward(&Tensor::cat(&parts, 1)?)
    }
}

/// Vocabulary-dependent sizes of the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelShape {
    /// Unified vocabulary size (PAD + M + diagnoses + procedures).
    pub num_codes: usize,
    pub num_medications: usize,
    /// Embedding rows per profile field.
    pub profile_sizes: Vec<usize>,
}

/// What the forward pass returns: logits [B, M], the 2d hidden vector the KD loss projects [B, 2d]
/// and the profile prompt [B, d] the alignment loss uses.
pub struct Output {
    pub logits: Tensor,
    pub hidden: Tensor,
    pub profile_prompt: Tensor,
}

/// Which code sets a set encoder reads; the index of its encoder and QKV table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetKind {
    Diagnoses = 0,
    Procedures = 1,
    Medications = 2,
}

/// The student network LEADER(S): set encoders, the profile pseudo-visit, the visit encoder and the
/// medication head.
pub struct StudentNet {
    codes: Embedding,
    diagnosis_set: TransformerBlock,
    procedure_set: TransformerBlock,
    medication_set: TransformerBlock,
    visit: TransformerBlock,
    profile: ProfileEncoder,
    head_hidden: Linear,
    head_out: Linear,
    d: usize,
    /// Per code, each set encoder's first Q/K/V (diagnosis, procedure, medication), once
    /// [`StudentNet::for_inference`] computed them.
    qkv_tables: Option<[Tensor; 3]>,
}

impl StudentNet {
    pub fn new(vb: VarBuilder, cfg: &ModelDims, shape: &ModelShape) -> Result<Self> {
        let d = cfg.hidden;
        Ok(Self {
            codes: embedding(shape.num_codes, d, vb.pp("codes"))?,
            diagnosis_set: TransformerBlock::new(vb.pp("diagnosis_set"), &cfg.block())?,
            procedure_set: TransformerBlock::new(vb.pp("procedure_set"), &cfg.block())?,
            medication_set: TransformerBlock::new(vb.pp("medication_set"), &cfg.block())?,
            visit: TransformerBlock::new(vb.pp("visit"), &cfg.block())?,
            profile: ProfileEncoder::new(vb.pp("profile"), &shape.profile_sizes, d)?,
            head_hidden: torch_linear(3 * d, 2 * d, true, vb.pp("head_hidden"))?,
            head_out: torch_linear(2 * d, shape.num_medications, true, vb.pp("head_out"))?,
            d,
            qkv_tables: None,
        })
    }

    /// The model for scoring only: a set encoder's first layer norm and Q/K/V projection see one
    /// code's embedding at a time, so they are computed once per code here ([codes, 3d] per
    /// encoder) and looked up per token, instead of a layer norm and a [T, d]×[d, 3d] matmul per
    /// batch. The tables are not updated by training: call it on trained weights.
    pub fn for_inference(mut self) -> Result<Self> {
        let [a, b, c] = self.set_encoders().map(|block| block.first_qkv(self.codes.embeddings()));
        self.qkv_tables = Some([a?, b?, c?]);
        Ok(self)
    }

    /// The set encoders in [`SetKind`] order (also the order of `qkv_tables`).
    fn set_encoders(&self) -> [&TransformerBlock; 3] {
        [&self.diagnosis_set, &self.procedure_set, &self.medication_set]
    }

    /// Pooled encodings of `sets` by the set encoder of `kind`.
    fn encode_sets(&self, kind: SetKind, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        if sets.packing.tokens == 0 {
            return Tensor::zeros((sets.packing.rows, self.d), self.codes.embeddings().dtype(), sets.ids.device());
        }
        let block = self.set_encoders()[kind as usize];
        let x = self.codes.forward(&sets.ids)?;
        let qkv = match &self.qkv_tables {
            Some(tables) => tables[kind as usize].index_select(&sets.ids, 0)?,
            None => block.first_qkv(&x)?,
        };
        row_means(&block.forward_from_qkv(&x, &qkv, &sets.packing, drop)?, &sets.packing)
    }

    /// Encodes medication sets with the medication set encoder ([N, d]); the alignment loss uses it
    /// for the target visit's medications.
    pub fn encode_medication_sets(&self, sets: &CodeSets, drop: &mut Dropout) -> Result<Tensor> {
        self.encode_sets(SetKind::Medications, sets, drop)
    }

    pub fn forward(&self, batch: &Batch, drop: &mut Dropout) -> Result<Output> {
        let (b, d) = (batch.size, self.d);
        // Pooled vectors of the batch's non-empty sets, then the profile prompts and a zero row;
        // `slot_rows` places them into the three visit streams (see `Batch`).
        let mut table = Vec::with_capacity(5);
        let sets_by_kind = [
            (SetKind::Diagnoses, &batch.diagnoses),
            (SetKind::Procedures, &batch.procedures),
            (SetKind::Medications, &batch.medications),
        ];
        for (kind, sets) in sets_by_kind {
            if sets.packing.rows > 0 {
                table.push(self.encode_sets(kind, sets, drop)?);
            }
        }
        let prompt = self.profile.forward(&batch.profile)?;
        table.push(prompt.clone());
        table.push(Tensor::zeros((1, d), prompt.dtype(), prompt.device())?);
        // One shared visit encoder over the three streams at once (3B rows, packed).
        let streams = Tensor::cat(&table, 0)?.index_select(&batch.slot_rows, 0)?;
        let encoded = self.visit.forward(&streams, &batch.visit_packing, drop)?;
        let pooled = row_means(&encoded, &batch.visit_packing)?;
        let patient = Tensor::cat(&[pooled.narrow(0, 0, b)?, pooled.narrow(0, b, b)?, pooled.narrow(0, 2 * b, b)?], 1)?;
        let hidden = self.head_hidden.forward(&patient.relu()?)?;
        let logits = self.head_out.forward(&hidden.relu()?)?;
        Ok(Output { logits, hidden, profile_prompt: prompt })
    }
}
