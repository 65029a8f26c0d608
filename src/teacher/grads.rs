//! One micro-batch's loss and gradients, plainly or with activation checkpointing
//! (`--checkpoint-layers`). candle has no built-in checkpointing: the forward runs every layer on
//! detached inputs with detached LoRA weights (no graph is kept, only each layer's input), then the
//! backward walks the layers top-down, re-running each on its input held as a `Var` and
//! backpropagating `sum(output · upstream)`, whose gradient is exactly the upstream gradient. The
//! recomputed layer redraws the same dropout masks (they are keyed by module, not by call order).

use super::llama::Batch;
use super::lora::Pass;
use super::model::TeacherModel;
use crate::nn::adamw::accumulate;
use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// The loss of one micro-batch (unscaled, an f64 scalar left on the device: the step reads its losses
/// once, not per micro-batch) and the gradients of `scale · loss` with respect to the model's
/// trainable variables only.
pub fn loss_and_grads(
    model: &TeacherModel,
    batch: &Batch,
    labels: &Tensor,
    pass: Pass,
    scale: f64,
    checkpoint: bool,
) -> Result<(Tensor, GradStore)> {
    let vars = model.trainable();
    let mut out = GradStore::default();
    if !checkpoint {
        let loss = model.loss(&model.llama.pooled(batch, pass)?, labels)?;
        accumulate(&mut out, &(&loss * scale)?.backward()?, &vars)?;
        return Ok((loss.detach().to_dtype(candle_core::DType::F64)?, out));
    }
    let record_nothing = Pass { detach: true, ..pass };
    let mut inputs = Vec::with_capacity(model.llama.layers.len());
    let mut h = model.llama.embed(batch)?;
    for layer in &model.llama.layers {
        inputs.push(h.clone());
        h = layer.forward(&h, batch, record_nothing)?;
    }
    let top = Var::from_tensor(&h.detach())?;
    let loss = model.loss(&model.llama.pool(top.as_tensor(), batch)?, labels)?;
    let grads = (&loss * scale)?.backward()?;
    accumulate(&mut out, &grads, &vars)?;
    let mut upstream = grads.get(top.as_tensor()).cloned();
    for (layer, input) in model.llama.layers.iter().zip(inputs).rev() {
        let Some(g) = upstream.take() else { break };
        let x = Var::from_tensor(&input.detach())?;
        let y = layer.forward(x.as_tensor(), batch, pass)?;
        let layer_grads = (y * g.detach())?.sum_all()?.backward()?;
        accumulate(&mut out, &layer_grads, &vars)?;
        upstream = layer_grads.get(x.as_tensor()).cloned();
    }
    Ok((loss.detach().to_dtype(candle_core::DType::F64)?, out))
}
