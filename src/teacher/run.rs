//! A trained teacher run folder: `RUN/best/` (the checkpoint with the best validation PRAUC, in
//! PEFT layout, see [`super::peft`]), `RUN/last/` (the latest checkpoint plus optimiser state, for
//! `--resume`), `RUN/train_log.jsonl` and `RUN/config.toml`. [`Teacher`] is the frozen model other
//! stages use (prediction, export, the student's online distillation).

use super::lora::Pass;
use super::model::TeacherModel;
use super::peft::{self, TeacherMeta};
use super::weights::BaseModel;
use crate::data::vocab::Vocab;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// The run's best checkpoint folder, and its latest (with the optimiser state).
pub const BEST: &str = "best";
pub const LAST: &str = "last";

pub fn best_dir(run: &Path) -> PathBuf {
    run.join(BEST)
}

pub fn last_dir(run: &Path) -> PathBuf {
    run.join(LAST)
}

/// A frozen teacher loaded from a checkpoint.
pub struct Teacher {
    pub model: TeacherModel,
    pub meta: TeacherMeta,
    pub vocab: Vocab,
}

impl Teacher {
    /// Loads `RUN/best` (or `run_dir` itself when it is a checkpoint folder) onto `device`, with the
    /// frozen base in `dtype`.
    pub fn load(run_dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let dir =
            if best_dir(run_dir).join("teacher.json").exists() { best_dir(run_dir) } else { run_dir.to_path_buf() };
        crate::io::require_file(
            &dir.join("teacher.json"),
            "a teacher checkpoint (train-teacher writes RUN/best/teacher.json)",
        )?;
        let meta: TeacherMeta = crate::io::read_json(&dir.join("teacher.json"))?;
        let vocab = Vocab::load(&dir.join("vocab.json"))?;
        let lora = peft::read_adapter_config(&dir)?.lora();
        let base = BaseModel::resolve(&meta.base_model, meta.revision.as_deref(), meta.base_seed)
            .with_context(|| format!("loading the base model {:?} of {}", meta.base_model, dir.display()))?;
        let fingerprint = base.fingerprint()?;
        ensure!(
            fingerprint == meta.base_fingerprint,
            "{}: the base model {:?} changed since this teacher was trained (fingerprint {} then, {fingerprint} \
             now): the adapters only fit the base they were trained on; train the teacher again",
            dir.display(),
            meta.base_model,
            meta.base_fingerprint
        );
        ensure!(
            base.config.hidden_size == meta.hidden_size,
            "{}: trained on a base with hidden size {}, but {:?} has {}",
            dir.display(),
            meta.hidden_size,
            meta.base_model,
            base.config.hidden_size
        );
        let model =
            TeacherModel::new(&base, &lora, meta.head, vocab.num_medications(), 0, dtype, device, meta.max_tokens)?;
        peft::load_into(&dir, &model)?;
        Ok(Self { model, meta, vocab })
    }

    /// Fails unless `vocab` (the data's) is the vocabulary this teacher was trained with.
    pub fn check_vocab(&self, vocab: &Vocab, data: &Path) -> Result<()> {
        ensure!(
            vocab.num_medications() == self.model.num_medications() && vocab.fingerprint() == self.vocab.fingerprint(),
            "{}: vocabulary (M = {}, fingerprint {}) differs from the teacher's (M = {}, fingerprint {})",
            data.display(),
            vocab.num_medications(),
            vocab.fingerprint(),
            self.model.num_medications(),
            self.vocab.fingerprint()
        );
        Ok(())
    }

    /// The hidden states [B, H] (f32) of `prompts` the head reads: the final-normed state of each
    /// prompt's EOS token, standardised for the standardised head; frozen (no graph is recorded, fused
    /// ops). This is what the student distils.
    pub fn pooled_hidden(&self, prompts: &[&str]) -> Result<Tensor> {
        let batch = self.model.batch(prompts)?;
        let pooled = self.model.llama.pooled(&batch, Pass::frozen())?;
        Ok(self.model.head_input(&pooled)?.detach().to_dtype(DType::F32)?)
    }
}
