//! `leader export-hidden` (not yet implemented).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ExportHiddenArgs {}

pub fn run(_args: &ExportHiddenArgs) -> Result<()> {
    bail!("`leader export-hidden` is not implemented yet")
}
