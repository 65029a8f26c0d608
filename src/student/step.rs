//! One training step with the batch split into shards that run forward and backward side by side
//! (candle's per-op threading does not pay on tensors this small). BCE and KD are means over
//! records, so each shard's part is weighted by its share of the batch. The alignment contrasts every
//! record with every other, so it is computed once over the whole batch from the shards' detached
//! projections, and its gradient is fed back into each shard's backward pass through the surrogate
//! `Σ x ⊙ ∂align/∂x` (exact: its gradient is the alignment's). Shards are fixed by config, so the
//! result does not depend on the number of threads.

use super::batch::{Batch, EncodedRecord};
use super::config::LossConfig;
use super::kd::KdTarget;
use super::losses::{alignment, Terms, TrainingHeads};
use super::model::StudentNet;
use crate::nn::layers::Dropout;
use crate::nn::parallel;
use crate::nn::rng::TensorRng;
use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

/// The loss values of a step (means over the batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    pub total: f64,
    pub bce: f64,
    pub kd: Option<f64>,
    pub align: Option<f64>,
}

/// What a training step needs besides its records.
pub struct Trainer<'a> {
    pub model: &'a StudentNet,
    pub heads: &'a TrainingHeads,
    pub teacher: &'a KdTarget,
    pub loss: &'a LossConfig,
    pub vars: &'a [(String, Var)],
    pub num_medications: usize,
    pub dtype: DType,
    pub shards: usize,
    pub threads: usize,
}

/// One shard after its forward pass.
struct ShardForward {
    /// share × (BCE + α·KD) of the shard, still attached to its graph.
    partial: Tensor,
    share: f64,
    bce: f64,
    kd: Option<f64>,
    align_pair: Option<(Tensor, Tensor)>,
}

/// Splits `records` into at most `shards` non-empty parts of similar cost (codes through the set
/// encoders): largest first, each to the part with the least so far, so that the threads finish
/// together. Deterministic.
fn balanced_shards<'r>(records: &[&'r EncodedRecord], shards: usize) -> Vec<Vec<&'r EncodedRecord>> {
    let cost = |r: &EncodedRecord| -> usize {
        r.diagnoses.iter().chain(&r.procedures).chain(&r.prior_medications).map(Vec::len).sum::<usize>()
            + r.diagnoses.len()
    };
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(cost(records[i])), i));
    let n = shards.clamp(1, records.len().max(1));
    let (mut parts, mut loads) = (vec![Vec::new(); n], vec![0usize; n]);
    for i in order {
        let lightest = (0..n).min_by_key(|&p| (loads[p], p)).expect("at least one part");
        loads[lightest] += cost(records[i]);
        parts[lightest].push(records[i]);
    }
    parts
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

impl Trainer<'_> {
    /// Losses and summed gradients of `records`; `rng(shard)` gives each shard's dropout stream
    /// (`None`: dropout off).
    pub fn step(
        &self,
        records: &[&EncodedRecord],
        rng: impl Fn(usize) -> Option<TensorRng>,
    ) -> Result<(StepLosses, GradStore)> {
        let inputs: Vec<_> =
            balanced_shards(records, self.shards).into_iter().enumerate().map(|(i, r)| (r, rng(i))).collect();
        let forwards = parallel::map(inputs, self.threads, |(shard, rng)| self.forward(&shard, rng, records.len()))?;

        let mut injected: Vec<Option<(Tensor, Tensor)>> = vec![None; forwards.len()];
        let mut align = None;
        if forwards.iter().all(|f| f.align_pair.is_some()) && !forwards.is_empty() {
            let side = |pick: fn(&(Tensor, Tensor)) -> &Tensor| -> Result<Var> {
                let parts: Vec<Tensor> =
                    forwards.iter().map(|f| pick(f.align_pair.as_ref().expect("checked")).detach()).collect();
                Ok(Var::from_tensor(&Tensor::cat(&parts, 0)?)?)
            };
            let (x, y) = (side(|p| &p.0)?, side(|p| &p.1)?);
            let loss = alignment(x.as_tensor(), y.as_tensor(), self.loss.temperature, self.loss.exclude_positive)?;
            align = Some(scalar(&loss)?);
            let grads = loss.backward()?;
            if let (Some(dx), Some(dy)) = (grads.get(x.as_tensor()), grads.get(y.as_tensor())) {
                let mut row = 0;
                for (slot, f) in injected.iter_mut().zip(&forwards) {
                    let n = f.align_pair.as_ref().expect("checked").0.dim(0)?;
                    *slot = Some((dx.narrow(0, row, n)?, dy.narrow(0, row, n)?));
                    row += n;
                }
            }
        }

        let losses = StepLosses {
            bce: forwards.iter().map(|f| f.share * f.bce).sum(),
            kd: forwards.iter().map(|f| f.kd.map(|kd| f.share * kd)).sum(),
            align,
            total: forwards.iter().map(|f| f.share * (f.bce + self.loss.alpha * f.kd.unwrap_or(0.0))).sum::<f64>()
                + self.loss.beta * align.unwrap_or(0.0),
        };
        let backward_inputs: Vec<_> = forwards.into_iter().zip(injected).collect();
        let stores = parallel::map(backward_inputs, self.threads, |(f, grad)| self.backward(f, grad))?;
        Ok((losses, self.sum_grads(stores)?))
    }

    fn forward(
        &self,
        records: &[&EncodedRecord],
        mut rng: Option<TensorRng>,
        batch_size: usize,
    ) -> Result<ShardForward> {
        let device = Device::Cpu;
        let batch = Batch::new(records, self.num_medications, self.dtype, &device)?;
        let teacher = self.teacher.targets(&batch.subject_ids, self.dtype, &device)?;
        let mut drop = match rng.as_mut() {
            Some(rng) => Dropout::on(rng),
            None => Dropout::off(),
        };
        let out = self.model.forward(&batch, &mut drop)?;
        let Terms { bce, kd, align_pair } =
            self.heads.terms(self.model, &out, &batch, teacher.as_ref(), self.loss, &mut drop)?;
        let share = records.len() as f64 / batch_size as f64;
        let partial = match &kd {
            Some(kd) => ((&bce + (kd * self.loss.alpha)?)? * share)?,
            None => (&bce * share)?,
        };
        Ok(ShardForward { partial, share, bce: scalar(&bce)?, kd: kd.as_ref().map(scalar).transpose()?, align_pair })
    }

    fn backward(&self, forward: ShardForward, align_grad: Option<(Tensor, Tensor)>) -> Result<GradStore> {
        let mut surrogate = forward.partial;
        if let (Some((x, y)), Some((dx, dy))) = (&forward.align_pair, &align_grad) {
            let injected = ((x * dx)?.sum_all()? + (y * dy)?.sum_all()?)?;
            surrogate = (surrogate + (injected * self.loss.beta)?)?;
        }
        Ok(surrogate.backward()?)
    }

    /// The shards' gradients summed per variable, in shard order.
    fn sum_grads(&self, stores: Vec<GradStore>) -> Result<GradStore> {
        let mut stores = stores.into_iter();
        let mut total = stores.next().expect("a step has at least one shard");
        for store in stores {
            crate::nn::adamw::accumulate(&mut total, &store, self.vars)?;
        }
        Ok(total)
    }
}
