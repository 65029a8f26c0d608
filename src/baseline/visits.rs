//! Visit sequences as the sequence baselines read them. A history is a patient's visits up to and
//! including the target visit, whose diagnoses and procedures are inputs and whose medications never
//! are; a first visit is a history of one. A batch of histories is laid out on a [B, T] grid of
//! visit slots (T the longest history, shorter ones right-padded, so a GRU's real steps come before
//! its padding), in time order or with each history reversed (RETAIN), and the codes of every slot
//! are embedded and pooled per slot ("embedding bags").

use crate::data::record::Visit;
use crate::data::vocab::Vocab;
use crate::nn::layers::Dropout;
use candle_core::{DType, Device, Result, Tensor, D};
use std::collections::HashMap;

/// Which codes of a visit a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Diagnoses,
    Procedures,
    /// A visit's medications, for every visit but the target one.
    EarlierMedications,
}

/// One index space over the streams a model embeds: each stream's codes in `vocab.json` order, the
/// streams one after another (diagnosis and procedure codes stay apart even where their strings
/// are equal).
pub struct CodeSpace {
    streams: Vec<(Stream, HashMap<String, u32>)>,
    size: usize,
}

impl CodeSpace {
    pub fn new(vocab: &Vocab, streams: &[Stream]) -> Self {
        let mut size = 0;
        let streams = streams
            .iter()
            .map(|&stream| {
                let codes: Vec<&str> = match stream {
                    Stream::Diagnoses => vocab.diagnoses.iter().map(|e| e.code.as_str()).collect(),
                    Stream::Procedures => vocab.procedures.iter().map(|e| e.code.as_str()).collect(),
                    Stream::EarlierMedications => vocab.medications.iter().map(|e| e.code.as_str()).collect(),
                };
                let start = size;
                size += codes.len();
                (stream, codes.iter().enumerate().map(|(i, c)| (c.to_string(), (start + i) as u32)).collect())
            })
            .collect();
        Self { streams, size }
    }

    /// Codes in the space (an embedding table's rows).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The ids of visit `k` of `history` (codes outside the vocabulary have none).
    pub fn ids<'a>(&'a self, history: &'a [Visit], k: usize) -> impl Iterator<Item = u32> + 'a {
        let visit = &history[k];
        let is_target = k + 1 == history.len();
        self.streams.iter().flat_map(move |(stream, index)| {
            let codes: &[String] = match stream {
                Stream::Diagnoses => &visit.diagnoses,
                Stream::Procedures => &visit.procedures,
                Stream::EarlierMedications if is_target => &[],
                Stream::EarlierMedications => &visit.medications,
            };
            codes.iter().filter_map(|c| index.get(c).copied())
        })
    }
}

/// Time order of a grid's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Slot k of a row holds visit k (the target visit last).
    Forward,
    /// Slot k holds visit L−1−k (the target visit first), as RETAIN's reverse-time RNNs read.
    Reversed,
}

/// A batch of histories on a [B, T] grid of visit slots.
pub struct VisitGrid<'a> {
    pub histories: &'a [&'a [Visit]],
    pub steps: usize,
    pub order: Order,
}

impl<'a> VisitGrid<'a> {
    pub fn new(histories: &'a [&'a [Visit]], order: Order) -> Self {
        let steps = histories.iter().map(|h| h.len()).max().unwrap_or(0).max(1);
        Self { histories, steps, order }
    }

    pub fn batch(&self) -> usize {
        self.histories.len()
    }

    /// The row-major slot (row·T + k) that holds visit `visit` of row `row`.
    fn slot(&self, row: usize, visit: usize) -> usize {
        let k = match self.order {
            Order::Forward => visit,
            Order::Reversed => self.histories[row].len() - 1 - visit,
        };
        row * self.steps + k
    }

    /// The slot of each row's target visit (row-major, row·T + k).
    pub fn target_slot_indices(&self) -> Vec<u32> {
        (0..self.batch()).map(|r| self.slot(r, self.histories[r].len() - 1) as u32).collect()
    }

    /// [`Self::target_slot_indices`] as a [B] u32 tensor (for gathering from a [B·T, d] tensor).
    pub fn target_slots(&self, device: &Device) -> Result<Tensor> {
        Tensor::new(self.target_slot_indices(), device)
    }

    /// 1 where a slot holds a visit, 0 on padding: [B, T].
    pub fn filled(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        self.mask(|h| 0..h.len(), dtype, device)
    }

    /// 1 where a slot holds a visit before the target one: [B, T].
    pub fn earlier(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        self.mask(|h| 0..h.len() - 1, dtype, device)
    }

    fn mask(
        &self,
        visits: impl Fn(&[Visit]) -> std::ops::Range<usize>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let mut mask = vec![0f32; self.batch() * self.steps];
        for (r, h) in self.histories.iter().enumerate() {
            visits(h).for_each(|v| mask[self.slot(r, v)] = 1.0);
        }
        Tensor::from_vec(mask, (self.batch(), self.steps), device)?.to_dtype(dtype)
    }

    /// Each slot's codes of `space`, ready to embed.
    pub fn bags(&self, space: &CodeSpace, device: &Device) -> Result<CodeBags> {
        let (mut ids, mut slots) = (Vec::new(), Vec::new());
        let mut counts = vec![0usize; self.batch() * self.steps];
        for (r, h) in self.histories.iter().enumerate() {
            for v in 0..h.len() {
                let slot = self.slot(r, v);
                for id in space.ids(h, v) {
                    ids.push(id);
                    slots.push(slot as u32);
                    counts[slot] += 1;
                }
            }
        }
        let n = ids.len();
        Ok(CodeBags {
            ids: Tensor::from_vec(ids, n, device)?,
            slots: Tensor::from_vec(slots, n, device)?,
            counts,
            batch: self.batch(),
            steps: self.steps,
        })
    }

    /// The multi-hot of each slot's codes of `space` over its codes, [B, T, codes] (zero on
    /// padding): with the earlier-medications space alone, each earlier visit's prescriptions over
    /// the M medications (zero for the target visit), GAMENet's memory values.
    pub fn multi_hot(&self, space: &CodeSpace, dtype: DType, device: &Device) -> Result<Tensor> {
        let n = space.size();
        let mut values = vec![0f32; self.batch() * self.steps * n];
        for (r, h) in self.histories.iter().enumerate() {
            for v in 0..h.len() {
                let slot = self.slot(r, v);
                space.ids(h, v).for_each(|id| values[slot * n + id as usize] = 1.0);
            }
        }
        Tensor::from_vec(values, (self.batch(), self.steps, n), device)?.to_dtype(dtype)
    }
}

/// The codes of every slot of a grid.
pub struct CodeBags {
    ids: Tensor,
    slots: Tensor,
    counts: Vec<usize>,
    batch: usize,
    steps: usize,
}

/// How an embedding bag pools its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Sum,
    Mean,
}

impl CodeBags {
    /// Each slot's codes embedded by `table` [codes, d], dropout `p` on every code's embedding,
    /// then pooled: [B, T, d]; a slot without codes (padding, an empty list) is zero.
    pub fn embed(&self, table: &Tensor, pool: Pool, p: f64, drop: &mut Dropout) -> Result<Tensor> {
        let d = table.dim(1)?;
        let zeros = Tensor::zeros((self.batch * self.steps, d), table.dtype(), table.device())?;
        if self.counts.iter().all(|&c| c == 0) {
            return zeros.reshape((self.batch, self.steps, d));
        }
        let codes = drop.apply(&table.index_select(&self.ids, 0)?, p)?;
        let pooled = zeros.index_add(&self.slots, &codes, 0)?;
        let pooled = match pool {
            Pool::Sum => pooled,
            Pool::Mean => {
                let scale: Vec<f32> = self.counts.iter().map(|&c| if c == 0 { 0.0 } else { 1.0 / c as f32 }).collect();
                let scale = Tensor::from_vec(scale, (self.counts.len(), 1), table.device())?.to_dtype(table.dtype())?;
                pooled.broadcast_mul(&scale)?
            }
        };
        pooled.reshape((self.batch, self.steps, d))
    }
}

impl CodeBags {
    /// The slots that hold codes, row by row in slot order ([N] u32, row-major slot indices), and
    /// how many each row has; a row without any keeps its first slot (a zero embedding), so that
    /// every row has a token (PyHealth's Transformer keeps position 0 the same way).
    pub fn occupied_slots(&self, device: &Device) -> Result<(Tensor, Vec<usize>)> {
        let (mut slots, mut lengths) = (Vec::new(), Vec::with_capacity(self.batch));
        for row in 0..self.batch {
            let start = slots.len();
            let first = row * self.steps;
            slots.extend((first..first + self.steps).filter(|&s| self.counts[s] > 0).map(|s| s as u32));
            if slots.len() == start {
                slots.push(first as u32);
            }
            lengths.push(slots.len() - start);
        }
        let n = slots.len();
        Ok((Tensor::from_vec(slots, n, device)?, lengths))
    }
}

/// Softmax of `scores` [B, T] over the slots where `filled` [B, T] is 1 (padding gets 0), built from
/// differentiable ops (candle's fused softmax has no backward). A row without a filled slot gives
/// equal weights; callers mask such rows out.
pub fn softmax_over_filled(scores: &Tensor, filled: &Tensor) -> Result<Tensor> {
    let masked = (scores + ((filled - 1.0)? * 1e9)?)?;
    candle_nn::ops::softmax(&masked, D::Minus1)
}

/// Rows of `x` [B, T, d] at `slots` [B] (row-major slot indices): [B, d].
pub fn gather_slots(x: &Tensor, slots: &Tensor) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    x.reshape((b * t, d))?.index_select(slots, 0)
}

/// A diagnosis and a procedure embedding table, uniform in ±0.1 as GAMENet's and MICRON's code
/// initialises them (their separate inputs).
pub struct DiagnosisProcedureEmbeddings {
    diagnoses: CodeSpace,
    procedures: CodeSpace,
    diagnosis: Tensor,
    procedure: Tensor,
}

impl DiagnosisProcedureEmbeddings {
    pub fn new(vb: &candle_nn::VarBuilder, vocab: &Vocab, d: usize) -> Result<Self> {
        let (diagnoses, procedures) =
            (CodeSpace::new(vocab, &[Stream::Diagnoses]), CodeSpace::new(vocab, &[Stream::Procedures]));
        let small = candle_nn::Init::Uniform { lo: -0.1, up: 0.1 };
        Ok(Self {
            diagnosis: vb.get_with_hints((diagnoses.size(), d), "diagnosis_embedding", small)?,
            procedure: vb.get_with_hints((procedures.size(), d), "procedure_embedding", small)?,
            diagnoses,
            procedures,
        })
    }

    /// Each slot's diagnoses and its procedures, embedded (dropout `p` on each code) and pooled:
    /// two [B, T, d].
    pub fn embed(&self, grid: &VisitGrid, pool: Pool, p: f64, drop: &mut Dropout) -> Result<(Tensor, Tensor)> {
        let device = self.diagnosis.device();
        let diagnoses = grid.bags(&self.diagnoses, device)?.embed(&self.diagnosis, pool, p, drop)?;
        let procedures = grid.bags(&self.procedures, device)?.embed(&self.procedure, pool, p, drop)?;
        Ok((diagnoses, procedures))
    }
}

/// How many codes (diagnoses, procedures, medications) of `records` are outside `vocab`: the
/// models skip them, and the harness reports the count.
pub fn codes_outside(vocab: &Vocab, records: &[crate::data::record::Record]) -> usize {
    fn known(list: &[crate::data::vocab::CodeEntry]) -> std::collections::HashSet<&str> {
        list.iter().map(|e| e.code.as_str()).collect()
    }
    let (diagnoses, procedures, medications) =
        (known(&vocab.diagnoses), known(&vocab.procedures), known(&vocab.medications));
    let outside = |codes: &[String], set: &std::collections::HashSet<&str>| {
        codes.iter().filter(|c| !set.contains(c.as_str())).count()
    };
    records
        .iter()
        .flat_map(|r| &r.visits)
        .map(|v| {
            outside(&v.diagnoses, &diagnoses)
                + outside(&v.procedures, &procedures)
                + outside(&v.medications, &medications)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::record::Record;
    use crate::data::vocab::CodeEntry;

    fn entries(codes: &[&str]) -> Vec<CodeEntry> {
        codes.iter().map(|c| CodeEntry { code: c.to_string(), name: String::new() }).collect()
    }

    /// Every stream's codes are looked up in their own list: a diagnosis code that is only a
    /// procedure code counts as outside.
    #[test]
    fn codes_outside_the_vocabulary_are_counted_per_stream() {
        let vocab = Vocab {
            medications: entries(&["M0"]),
            diagnoses: entries(&["D0", "D1"]),
            procedures: entries(&["P0"]),
            profile: Default::default(),
        };
        let visit = |d: &[&str], p: &[&str], m: &[&str]| Visit {
            hadm_id: 1,
            admittime: String::new(),
            diagnoses: d.iter().map(|s| s.to_string()).collect(),
            procedures: p.iter().map(|s| s.to_string()).collect(),
            medications: m.iter().map(|s| s.to_string()).collect(),
        };
        let record = Record {
            subject_id: 1,
            visits: vec![visit(&["D0", "P0", "D9"], &["P0"], &["M0", "M7"]), visit(&["D1"], &["D1"], &[])],
            profile: Default::default(),
            labels: vec![],
            prompt: String::new(),
        };
        assert_eq!(codes_outside(&vocab, &[record]), 4);
    }
}
