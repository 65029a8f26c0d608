//! `leader train-student` and `leader distill` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct TrainStudentArgs {}

#[derive(Args, Debug, Clone)]
pub struct DistillArgs {}

pub fn run_train_student(_args: &TrainStudentArgs) -> Result<()> {
    bail!("`leader train-student` is not implemented yet")
}

pub fn run_distill(_args: &DistillArgs) -> Result<()> {
    bail!("`leader distill` is not implemented yet")
}
