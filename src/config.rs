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

/// The flags of the epoch-trained models (`train-student`, `distill`, `train-baseline`): the data,
/// the run folder, the common training keys and the config.
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// Preprocessed data folder (its train and valid splits and vocab.json); on --resume, the run's.
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub run: crate::io::output::RunArgs,
    /// Epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Records per step (train.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate (train.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of the initial weights, the training order and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl TrainArgs {
    /// The explicit flags as `--set` assignments ([`flag`]), the seed under `seed_key` (the
    /// student's config keeps it at the top level, a baseline's under `train`).
    pub fn flags(&self, seed_key: &str) -> Vec<String> {
        let mut flags: Vec<String> = self.epochs.iter().map(|&e| flag("train.epochs", e)).collect();
        flags.extend(self.batch_size.iter().map(|&b| flag("train.batch_size", b)));
        flags.extend(self.lr.iter().map(|&lr| flag("train.lr", lr)));
        flags.extend(self.seed.iter().map(|&s| flag(seed_key, s)));
        flags
    }
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

/// `base` overlaid by `args.config`, then `args.set`, then `flags` (`key=value` assignments made by
/// [`flag`] from a command's explicit options).
fn overlay(mut table: toml::Table, args: &ConfigArgs, flags: &[String]) -> Result<toml::Table> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let user: toml::Table = text.parse().map_err(|e| anyhow!("{}: {e}", path.display()))?;
        merge(&mut table, user);
    }
    for assignment in args.set.iter().chain(flags) {
        apply_set(&mut table, assignment)?;
    }
    Ok(table)
}

fn parse_table(text: &str, what: &str) -> Result<toml::Table> {
    text.parse().map_err(|e| anyhow!("parsing {what}: {e}"))
}

fn typed<T: DeserializeOwned>(table: toml::Table) -> Result<T> {
    toml::Value::Table(table).try_into().map_err(|e| anyhow!("invalid config: {e}"))
}

/// Loads a config: `default_toml`, then `args.config`, then `args.set`. Unknown keys are errors
/// when `T` denies them (all stage configs do).
pub fn load<T: DeserializeOwned>(default_toml: &str, args: &ConfigArgs) -> Result<T> {
    resolve(default_toml, args, &[])
}

/// The one way a stage config is made: the built-in default, then `--config`, then `--set`, then the
/// command's explicit flags (each as a `key=value` from [`flag`]).
pub fn resolve<T: DeserializeOwned>(default_toml: &str, args: &ConfigArgs, flags: &[String]) -> Result<T> {
    typed(overlay(parse_table(default_toml, "the built-in default config")?, args, flags)?)
}

/// An explicit flag as the `--set` assignment it stands for, the value written as TOML (enums as
/// their config names). A value TOML cannot hold (an integer above 2⁶³) is written as text, which
/// the typed config then refuses with a clear error.
pub fn flag<T: Serialize>(key: &str, value: T) -> String {
    match toml::Value::try_from(value) {
        Ok(v) => format!("{key}={v}"),
        Err(e) => format!("{key}={}", toml::Value::String(format!("(not representable: {e})"))),
    }
}

/// The config of a resumed run: the run's saved `config.toml`, with `--config`, `--set` and the
/// flags applied only where they repeat the saved values, or change a key in `may_change` (a longer
/// run, a moved input). Any other difference is an error naming the key and both values.
pub fn resume<T: DeserializeOwned>(run: &Path, args: &ConfigArgs, flags: &[String], may_change: &[&str]) -> Result<T> {
    let path = run.join("config.toml");
    crate::io::require_file(&path, "the run's saved config (RUN/config.toml)")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let saved = parse_table(&text, &path.display().to_string())?;
    let asked = overlay(saved.clone(), args, flags)?;
    let mut changed = Vec::new();
    differences("", &saved, &asked, &mut changed);
    if let Some((key, old, new)) = changed.iter().find(|(key, ..)| !may_change.contains(&key.as_str())) {
        let shown = |v: &Option<toml::Value>| v.as_ref().map_or("(not set)".to_string(), toml::Value::to_string);
        bail!(
            "--resume {}: {key} is {} in the run's saved config but {} on this command line; a resumed run keeps its \
             config{}. Drop the option, or start a new run with --out",
            run.display(),
            shown(old),
            shown(new),
            if may_change.is_empty() { String::new() } else { format!(" (only {} may change)", may_change.join(", ")) }
        );
    }
    typed(asked).with_context(|| path.display().to_string())
}

/// The keys (dotted) whose values differ between two tables, with both values.
fn differences(
    prefix: &str,
    a: &toml::Table,
    b: &toml::Table,
    out: &mut Vec<(String, Option<toml::Value>, Option<toml::Value>)>,
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (a.get(key), b.get(key)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => differences(&path, x, y, out),
            (x, y) if x != y => out.push((path, x.cloned(), y.cloned())),
            _ => {}
        }
    }
}

/// Writes the effective config as TOML to `path`, atomically.
pub fn save<T: Serialize>(cfg: &T, path: &Path) -> Result<()> {
    let text = toml::to_string_pretty(cfg).context("serialising the effective config")?;
    crate::io::write_atomic(path, text.as_bytes())
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
    fn flags_apply_after_set_and_quote_strings() {
        let args = ConfigArgs { config: None, set: vec!["train.lr=0.5".into()] };
        let flags = [flag("train.lr", 0.25), flag("name", "a = b")];
        let cfg: Cfg = resolve(DEFAULT, &args, &flags).unwrap();
        assert_eq!((cfg.train.lr, cfg.name.as_str()), (0.25, "a = b"));
    }

    #[test]
    fn resume_allows_repeats_and_listed_keys_and_names_a_contradiction() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), DEFAULT).unwrap();
        let none = ConfigArgs::default();
        let same = [flag("train.lr", 0.1), flag("train.epochs", 7)];
        let cfg: Cfg = resume(dir.path(), &none, &same, &["train.epochs"]).unwrap();
        assert_eq!((cfg.train.lr, cfg.train.epochs), (0.1, 7));
        let err = resume::<Cfg>(dir.path(), &none, &[flag("train.lr", 0.2)], &["train.epochs"]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("train.lr is 0.1") && err.contains("but 0.2"), "{err}");
        let set = ConfigArgs { config: None, set: vec!["name=y".into()] };
        let err = resume::<Cfg>(dir.path(), &set, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("name is \"x\"") && err.contains("\"y\""), "{err}");
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
