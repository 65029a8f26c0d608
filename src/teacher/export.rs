//! `leader export-hidden`: the pooled teacher hidden state of every record of a split (the
//! reference's offline KD file, §3.6), as a [`TeacherCache`] for `leader distill --teacher-cache`.
//! `--save-input-ids` also stores the exact token ids fed to the model, so the forward pass can be
//! replayed elsewhere (scripts/hf_parity.py compares against `transformers`).

use super::cache::TeacherCache;
use super::run::Teacher;
use crate::data::record::{read_records, split_path};
use crate::data::vocab::Vocab;
use crate::io::output::{OutputFile, OutputKind};
use crate::nn::device::{DeviceSpec, Precision};
use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Serialize)]
pub struct ExportHiddenArgs {
    /// A trained teacher run folder.
    #[arg(long)]
    pub teacher: PathBuf,
    /// A preprocessed data folder.
    #[arg(long)]
    pub data: PathBuf,
    /// train, valid, test (or records).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Output safetensors file (new, or an earlier export with --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier output of this command at --out (only leader's own files; anything else there
    /// makes it refuse).
    #[arg(long)]
    pub overwrite: bool,
    /// Store `hidden` as f16 (half the size) instead of f32.
    #[arg(long)]
    pub f16: bool,
    /// Also store the token ids (`input_ids` [n, T] i64, right-padded with -1).
    #[arg(long)]
    pub save_input_ids: bool,
    /// Records per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Compute dtype of the base model: f32, bf16 or f16.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Precision,
}

/// Exports the cache and returns it (also written to `args.out` with its sidecar config).
pub fn export_hidden(args: &ExportHiddenArgs) -> Result<TeacherCache> {
    ensure!(args.batch_size > 0, "--batch-size must be positive");
    let out = OutputFile::create(&args.out, OutputKind::ExportHidden, args.overwrite)?;
    let device = args.device.open()?;
    let teacher = Teacher::load(&args.teacher, &device, args.dtype.dtype())?;
    teacher.check_vocab(&Vocab::load(&args.data.join("vocab.json"))?, &args.data)?;
    let records = read_records(&split_path(&args.data, &args.split)?)?;
    let bar = crate::progress::bar(records.len() as u64, "export-hidden");
    let (mut hidden, mut ids) = (Vec::new(), Vec::new());
    for chunk in records.chunks(args.batch_size) {
        let prompts: Vec<&str> = chunk.iter().map(|r| r.prompt.as_str()).collect();
        hidden.push(teacher.pooled_hidden(&prompts)?.to_device(&Device::Cpu)?);
        if args.save_input_ids {
            ids.extend(prompts.iter().map(|p| teacher.model.tokenizer.encode(p)).collect::<Result<Vec<_>>>()?);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let h = teacher.model.hidden_size();
    let hidden =
        if hidden.is_empty() { Tensor::zeros((0, h), DType::F32, &Device::Cpu)? } else { Tensor::cat(&hidden, 0)? };
    let input_ids = args.save_input_ids.then(|| padded_ids(&ids)).transpose()?;
    let cache = TeacherCache { subject_ids: records.iter().map(|r| r.subject_id).collect(), hidden, input_ids };
    cache.save(out.dest(), if args.f16 { DType::F16 } else { DType::F32 })?;
    out.commit(args)?;
    Ok(cache)
}

/// [n, T] i64, right-padded with -1.
fn padded_ids(rows: &[Vec<u32>]) -> Result<Tensor> {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let flat: Vec<i64> =
        rows.iter().flat_map(|r| r.iter().map(|&i| i as i64).chain(std::iter::repeat_n(-1, t - r.len()))).collect();
    Ok(Tensor::from_vec(flat, (rows.len(), t), &Device::Cpu)?)
}

pub fn run(args: &ExportHiddenArgs) -> Result<()> {
    let cache = export_hidden(args)?;
    crate::progress::say(format!(
        "export-hidden: {} records x {} -> {}",
        cache.subject_ids.len(),
        cache.hidden_size(),
        args.out.display()
    ));
    Ok(())
}
