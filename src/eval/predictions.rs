//! The predictions file: JSON Lines, one `{"subject_id": .., "probabilities": [M floats]}` per
//! record, probabilities in `vocab.json` medication order. Written by `leader predict`, read by
//! `leader eval`, which streams it through [`read_predictions`].

use crate::eval::line_parser::parse_prediction_line;
use crate::io::parallel_lines::{read_lines_parallel, CHUNK_BYTES};
use crate::io::AtomicFile;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub subject_id: u64,
    pub probabilities: Vec<f32>,
}

/// Streams predictions to a file that appears only when [`PredictionWriter::finish`] succeeds.
pub struct PredictionWriter {
    file: AtomicFile,
    path: PathBuf,
    count: usize,
}

impl PredictionWriter {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(Self { file: AtomicFile::create(path)?, path: path.to_path_buf(), count: 0 })
    }

    pub fn write(&mut self, subject_id: u64, probabilities: &[f32]) -> Result<()> {
        #[derive(Serialize)]
        struct Line<'a> {
            subject_id: u64,
            probabilities: &'a [f32],
        }
        serde_json::to_writer(&mut self.file, &Line { subject_id, probabilities })?;
        self.file.write_all(b"\n").with_context(|| format!("writing {}", self.path.display()))?;
        self.count += 1;
        Ok(())
    }

    /// Commits the file and returns how many predictions it holds.
    pub fn finish(self) -> Result<usize> {
        self.finish_after(|_| Ok(()))
    }

    /// Completes the file, runs `before` on it, then commits it (see [`AtomicFile::commit_after`]).
    pub fn finish_after(self, before: impl FnOnce(&Path) -> Result<()>) -> Result<usize> {
        self.file.commit_after(before)?;
        Ok(self.count)
    }
}

/// Streams a predictions file (plain or `.gz`) on `threads` worker threads, validating every line:
/// valid JSON of the prediction shape, exactly `num_medications` probabilities, each finite and in
/// [0, 1]. `score(subject_id, probabilities)` runs on the workers; its results come back in file
/// order with their line numbers. The first bad line in file order fails the whole read with an
/// error naming the file and line (an error from `score` is prefixed the same way). Blank lines are
/// skipped. Memory stays at a few chunks plus the results.
pub fn read_predictions<T, F>(path: &Path, num_medications: usize, threads: usize, score: F) -> Result<Vec<(usize, T)>>
where
    T: Send,
    F: Fn(u64, &[f32]) -> Result<T> + Sync,
{
    read_chunked(path, num_medications, threads, CHUNK_BYTES, score)
}

/// [`read_predictions`] with a chosen chunk size (small in tests, to cross many chunk borders).
fn read_chunked<T, F>(
    path: &Path,
    num_medications: usize,
    threads: usize,
    chunk_bytes: usize,
    score: F,
) -> Result<Vec<(usize, T)>>
where
    T: Send,
    F: Fn(u64, &[f32]) -> Result<T> + Sync,
{
    read_lines_parallel(path, threads, chunk_bytes, |probs: &mut Vec<f32>, line| {
        let id = parse_line(line, probs)?;
        check_row(probs, num_medications)?;
        score(id, probs)
    })
}

/// The fast parser, or serde_json for lines it does not cover (and for its error message).
fn parse_line(line: &[u8], probs: &mut Vec<f32>) -> Result<u64> {
    if let Some(id) = parse_prediction_line(line, probs) {
        return Ok(id);
    }
    let p: Prediction = serde_json::from_slice(line).map_err(|e| anyhow!("column {}: {e}", e.column()))?;
    *probs = p.probabilities;
    Ok(p.subject_id)
}

fn check_row(probs: &[f32], num_medications: usize) -> Result<()> {
    if probs.len() != num_medications {
        bail!("expected {num_medications} probabilities (one per vocab.json medication), found {}", probs.len());
    }
    // A pass without early exit vectorises; the culprit is looked for only on failure.
    if probs.iter().fold(true, |ok, p| ok & (0.0..=1.0).contains(p)) {
        return Ok(());
    }
    let (i, p) = probs.iter().enumerate().find(|(_, p)| !(0.0..=1.0).contains(*p)).expect("one is out of range");
    bail!("probability {i} (0-based) is {p}; expected a finite value in [0, 1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `lines` to a temporary file.
    fn file_with(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        (dir, path)
    }

    fn line(id: u64, probs: &[f32]) -> String {
        serde_json::to_string(&Prediction { subject_id: id, probabilities: probs.to_vec() }).unwrap()
    }

    #[test]
    fn many_small_chunks_keep_file_order_and_line_numbers() {
        // 500 lines of ~60 bytes in 100-byte chunks: every chunk holds one or two lines, so order and
        // numbering cross hundreds of chunk borders and both workers.
        let lines: Vec<String> = (0..500u64).map(|i| line(i * 7, &[i as f32 / 500.0, 0.25, 1.0])).collect();
        let (_dir, path) = file_with(&lines);
        for threads in [1, 2, 3] {
            let got = read_chunked(&path, 3, threads, 100, |id, p| Ok((id, p.to_vec()))).unwrap();
            assert_eq!(got.len(), 500);
            for (k, (line_no, (id, p))) in got.iter().enumerate() {
                assert_eq!((*line_no, *id), (k + 1, k as u64 * 7));
                assert_eq!(p, &vec![k as f32 / 500.0, 0.25, 1.0]);
            }
        }
    }

    #[test]
    fn first_bad_line_in_file_order_is_reported() {
        let mut lines: Vec<String> = (0..300u64).map(|i| line(i, &[0.5, 0.5])).collect();
        lines[211] = line(211, &[0.5, 1.5]);
        lines[250] = line(250, &[0.5]);
        let (_dir, path) = file_with(&lines);
        for threads in [1, 2] {
            let err = read_chunked(&path, 2, threads, 64, |_, _| Ok(())).unwrap_err().to_string();
            assert!(err.contains("p.jsonl:212:"), "{err}");
            assert!(err.contains("probability 1 (0-based) is 1.5"), "{err}");
        }
    }

    #[test]
    fn line_longer_than_a_chunk_is_read_whole() {
        let probs: Vec<f32> = (0..200).map(|i| i as f32 / 200.0).collect();
        let lines = vec![line(1, &probs), line(2, &probs)];
        let (_dir, path) = file_with(&lines);
        let got = read_chunked(&path, 200, 2, 16, |id, p| Ok((id, p.to_vec()))).unwrap();
        assert_eq!(got, vec![(1, (1, probs.clone())), (2, (2, probs))]);
    }
}
