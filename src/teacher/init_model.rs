//! `leader init-model` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct InitModelArgs {}

pub fn run(_args: &InitModelArgs) -> Result<()> {
    bail!("`leader init-model` is not implemented yet")
}
