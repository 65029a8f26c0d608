//! `leader eval` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {}

pub fn run(_args: &EvalArgs) -> Result<()> {
    bail!("`leader eval` is not implemented yet")
}
