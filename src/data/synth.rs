//! `leader synth` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {}

pub fn run(_args: &SynthArgs) -> Result<()> {
    bail!("`leader synth` is not implemented yet")
}
