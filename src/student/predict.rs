//! `leader predict --model RUN`: scores records with a trained student, streaming the input in chunks
//! (bounded memory), sorting each chunk by size so batches pad little, and writing in input order.

use super::batch::{Batch, CodeVocab, EncodeStats, EncodedRecord};
use super::checkpoint::TrainedStudent;
use super::config::StudentConfig;
use super::model::StudentNet;
use crate::data::record::Record;
use crate::data::vocab::{check_records_vocabulary, Vocab};
use crate::io::JsonLines;
use crate::nn::layers::Dropout;
use crate::nn::{ops, parallel};
use crate::progress;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device};
use std::path::Path;
use std::sync::mpsc;

/// Probabilities of `records` in input order, row-major [n, M]. Records are scored in size-sorted
/// batches of `batch_size`, spread over `threads`; the batch a record lands in never changes its output.
pub fn probabilities(
    model: &StudentNet,
    records: &[&EncodedRecord],
    num_medications: usize,
    batch_size: usize,
    threads: usize,
) -> Result<Vec<f32>> {
    let size = |r: &EncodedRecord| {
        let widest =
            r.diagnoses.iter().chain(&r.procedures).chain(&r.prior_medications).map(Vec::len).max().unwrap_or(0);
        (r.diagnoses.len(), widest)
    };
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| size(records[i]));
    let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let scored = parallel::map(batches, threads, |chunk| {
        let batch_records: Vec<&EncodedRecord> = chunk.iter().map(|&i| records[i]).collect();
        let batch = Batch::new(&batch_records, num_medications, DType::F32, &Device::Cpu)?;
        let logits = model.forward(&batch, &mut Dropout::off())?.logits;
        let mut probs = logits.flatten_all()?.to_vec1::<f32>()?;
        ops::sigmoid_in_place(&mut probs);
        Ok((chunk, probs))
    })?;
    let mut out = vec![0f32; records.len() * num_medications];
    for (chunk, probs) in scored {
        for (&i, row) in chunk.iter().zip(probs.chunks_exact(num_medications.max(1))) {
            out[i * num_medications..(i + 1) * num_medications].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// The run's saved config (for its batch sizes).
fn run_config(run_dir: &Path) -> Result<StudentConfig> {
    let path = run_dir.join("config.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    crate::config::load(&text, &Default::default())
}

/// A trained student run, loaded for scoring.
pub struct StudentScorer {
    student: TrainedStudent,
    cfg: StudentConfig,
}

impl StudentScorer {
    pub fn load(run_dir: &Path) -> Result<Self> {
        Ok(Self { student: TrainedStudent::load(run_dir)?, cfg: run_config(run_dir)? })
    }

    /// The vocabulary whose medication order the probabilities follow.
    pub fn vocab(&self) -> &Vocab {
        &self.student.vocab
    }

    /// Scores the records of `records_path` (checked against `data`'s vocabulary, or one beside the
    /// file), handing each record's probabilities to `write` in input order.
    pub fn score(
        &self,
        records_path: &Path,
        data: Option<&Path>,
        batch_size: Option<usize>,
        write: impl FnMut(u64, &[f32]) -> Result<()> + Send,
    ) -> Result<()> {
        let (student, cfg) = (&self.student, &self.cfg);
        let vocab_checked = check_records_vocabulary(data, records_path, &student.info.vocab_fingerprint)?;
        let batch_size = batch_size.unwrap_or(cfg.predict.batch_size);
        let threads = parallel::threads(cfg.threads);
        let codes = CodeVocab::new(&student.vocab);
        let m = student.info.shape.num_medications;
        let bar = progress::bar(0, "predict");
        // Three stages side by side, a chunk apart: parsing and encoding the next chunk, scoring this one
        // (on `threads` threads), formatting and writing the previous one. Alone, the first and last
        // left the scoring threads idle for a tenth of the run.
        let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Vec<EncodedRecord>>(1);
        let (scored_tx, scored_rx) = mpsc::sync_channel::<(Vec<u64>, Vec<f32>)>(1);
        let stats = std::thread::scope(|scope| -> Result<_> {
            let codes = &codes;
            let reader = scope.spawn(move || -> Result<EncodeStats> {
                let mut stats = EncodeStats::default();
                let mut lines = JsonLines::<Record>::open(records_path)?;
                let (max_visits, max_codes) = (student.info.model.max_visits, student.info.model.max_codes);
                loop {
                    let mut chunk = Vec::with_capacity(cfg.predict.read_chunk);
                    for item in lines.by_ref().take(cfg.predict.read_chunk) {
                        let (line, record) = item?;
                        let encoded = codes
                            .encode(&record, max_visits, max_codes, false, &mut stats)
                            .with_context(|| format!("{}:{line}", records_path.display()))?;
                        chunk.push(encoded);
                    }
                    if chunk.is_empty() || chunk_tx.send(chunk).is_err() {
                        return Ok(stats);
                    }
                }
            });
            let writer = scope.spawn(move || -> Result<()> {
                let mut write = write;
                for (subject_ids, probs) in scored_rx {
                    for (&id, p) in subject_ids.iter().zip(probs.chunks(m)) {
                        write(id, p)?;
                    }
                }
                Ok(())
            });
            let scoring = (|| -> Result<()> {
                for chunk in chunk_rx {
                    let refs: Vec<&EncodedRecord> = chunk.iter().collect();
                    let probs = probabilities(&student.model, &refs, m, batch_size, threads)?;
                    let n = chunk.len() as u64;
                    if scored_tx.send((chunk.iter().map(|r| r.subject_id).collect(), probs)).is_err() {
                        break; // the writer failed; its error is reported below
                    }
                    bar.inc_length(n);
                    bar.inc(n);
                }
                Ok(())
            })();
            drop(scored_tx);
            let written = writer.join().expect("the writer thread does not panic");
            let stats = reader.join().expect("the reader thread does not panic");
            scoring?;
            let stats = stats?;
            written?;
            Ok(stats)
        })?;
        bar.finish_and_clear();
        progress::say(format!("predict: {}", stats.summary()));
        if !vocab_checked && stats.codes > 0 {
            // Without a vocabulary to compare, a mostly unknown code set is the sign of a mismatch.
            ensure!(
                stats.unknown_codes * 2 <= stats.codes,
                "{}: {} of {} codes are not in the model's vocabulary; these records were built with another vocabulary",
                records_path.display(),
                stats.unknown_codes,
                stats.codes
            );
        }
        Ok(())
    }
}
