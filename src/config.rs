//! Stage configs: an embedded TOML default (the files in `configs/`), overlaid by an optional user
//! file, then by `--set key=value` pairs from the command line; the result is written next to every
//! output so a run can always be repeated.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The flags every configurable command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// A TOML file overriding the built-in defaults (see `configs/`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any config key, e.g. `--set train.lr=1e-3` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Overlays `top` onto `base`, recursing into tables.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies one `a.b.c=value` override; the value is parsed as TOML, falling back to a plain string.
fn apply_set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| anyhow!("--set {assignment:?}: expected KEY=VALUE"))?;
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("key v parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        node = match node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default())) {
            toml::Value::Table(t) => t,
            _ => bail!("--set {assignment:?}: {part} is not a table"),
        };
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Loads a config: `default_toml`, then `args.config`, then `args.set`. Unknown keys are errors
/// when `T` denies them (all stage configs do).
pub fn load<T: DeserializeOwned>(default_toml: &str, args: &ConfigArgs) -> Result<T> {
    let mut table: toml::Table = default_toml.parse().context("parsing the built-in default config")?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let user: toml::Table = text.parse().map_err(|e| anyhow!("{}: {e}", path.display()))?;
        merge(&mut table, user);
    }
    for assignment in &args.set {
        apply_set(&mut table, assignment)?;
    }
    toml::Value::Table(table).try_into().map_err(|e| anyhow!("invalid config: {e}"))
}

/// Writes the effective config as TOML to `path`, atomically.
pub fn save<T: Serialize>(cfg: &T, path: &Path) -> Result<()> {
    let text = toml::to_string_pretty(cfg).context("serialising the effective config")?;
    crate::io::write_atomic(path, text.as_bytes())
}

/// Where the effective config of a single-file output goes: `FILE.config.toml`.
pub fn sidecar_path(output_file: &Path) -> PathBuf {
    let mut name = output_file.file_name().unwrap_or_default().to_os_string();
    name.push(".config.toml");
    output_file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
        train: Train,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Train {
        lr: f64,
        epochs: u32,
    }

    const DEFAULT: &str = "name = \"x\"\n[train]\nlr = 0.1\nepochs = 3\n";

    #[test]
    fn set_overrides_nested_keys_and_strings() {
        let args = ConfigArgs { config: None, set: vec!["train.lr=0.5".into(), "name=plain words".into()] };
        let cfg: Cfg = load(DEFAULT, &args).unwrap();
        assert_eq!(cfg.train.lr, 0.5);
        assert_eq!(cfg.train.epochs, 3);
        assert_eq!(cfg.name, "plain words");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let args = ConfigArgs { config: None, set: vec!["train.lrr=0.5".into()] };
        let err = load::<Cfg>(DEFAULT, &args).unwrap_err().to_string();
        assert!(err.contains("lrr"), "{err}");
    }

    #[test]
    fn user_file_overlays_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[train]\nepochs = 9\n").unwrap();
        let args = ConfigArgs { config: Some(path), set: vec![] };
        let cfg: Cfg = load(DEFAULT, &args).unwrap();
        assert_eq!((cfg.train.lr, cfg.train.epochs), (0.1, 9));
    }
}
