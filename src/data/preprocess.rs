//! `leader preprocess` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PreprocessArgs {}

pub fn run(_args: &PreprocessArgs) -> Result<()> {
    bail!("`leader preprocess` is not implemented yet")
}
