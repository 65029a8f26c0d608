//! The loss every model trains with.

use candle_core::{Result, Tensor};

/// Binary cross-entropy with logits, mean over all entries (= per-record mean over M, then batch
/// mean), in the stable form `max(x, 0) − x·y + log(1 + e^(−|x|))`; `labels` in the logits' dtype.
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    bce_terms(logits, labels)?.mean_all()
}

/// [`bce_with_logits`] of each row of [B, M] logits on its own: the mean over M, [B].
pub fn bce_with_logits_rows(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    bce_terms(logits, labels)?.mean(1)
}

fn bce_terms(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    logits.relu()? - (logits * labels)? + softplus
}
