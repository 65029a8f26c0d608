//! `leader predict` for the teacher (not yet implemented).

use crate::predict::PredictArgs;
use anyhow::{bail, Result};

/// Scores the records named by `args`, writes them through [`crate::predict::PredictionSink`]
/// and returns how many were scored.
pub fn run(_args: &PredictArgs) -> Result<usize> {
    bail!("`leader predict` for the teacher is not implemented yet")
}
