//! `leader train-teacher` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct TrainTeacherArgs {}

pub fn run(_args: &TrainTeacherArgs) -> Result<()> {
    bail!("`leader train-teacher` is not implemented yet")
}
