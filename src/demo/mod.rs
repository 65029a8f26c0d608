//! `leader demo` (not yet implemented).

pub mod plot;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {}

pub fn run(_args: &DemoArgs) -> Result<()> {
    bail!("`leader demo` is not implemented yet")
}
