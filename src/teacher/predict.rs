//! `leader predict --teacher RUN`: teacher probabilities (sigmoid of the head's logits) in the
//! evaluation's predictions format.

use super::run::Teacher;
use crate::data::record::read_records;
use crate::data::vocab::Vocab;
use anyhow::{ensure, Result};
use std::path::Path;

/// Scores the records of `records` (checked against `data`'s vocabulary when given) in batches of
/// `batch_size` (default 8), handing each record's probabilities to `write` in input order.
pub fn score(
    teacher: &Teacher,
    records: &Path,
    data: Option<&Path>,
    batch_size: Option<usize>,
    mut write: impl FnMut(u64, &[f32]) -> Result<()>,
) -> Result<()> {
    if let Some(data) = data {
        teacher.check_vocab(&Vocab::load(&data.join("vocab.json"))?, data)?;
    }
    let records = read_records(records)?;
    let batch = batch_size.unwrap_or(8);
    ensure!(batch > 0, "--batch-size must be positive");
    let bar = crate::progress::bar(records.len() as u64, "predict");
    for chunk in records.chunks(batch) {
        let prompts: Vec<&str> = chunk.iter().map(|r| r.prompt.as_str()).collect();
        for (record, probs) in chunk.iter().zip(teacher.model.probabilities(&prompts)?) {
            write(record.subject_id, &probs)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}
