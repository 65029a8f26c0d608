//! Parallel parsing of large line-oriented files (predictions, records): chunks of whole lines go
//! to worker threads, results come back in file order with their line numbers.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Bytes handed to a worker at a time (whole lines; a longer line grows its chunk).
pub const CHUNK_BYTES: usize = 4 << 20;

/// A run of whole lines; `index` orders chunks in the file.
struct Chunk {
    index: usize,
    bytes: Vec<u8>,
}

/// A chunk's results with line numbers relative to the chunk (0-based), and how many line ends it
/// held; line numbers become absolute once the chunks are back in file order, so the reader need
/// not count lines.
struct ChunkOutput<T> {
    line_ends: usize,
    items: Vec<(usize, T)>,
}

/// Parses the lines of a text file (plain or `.gz`) on `threads` worker threads: the file is read
/// in chunks of about `chunk_bytes` cut at line ends, and `parse(scratch, line)` runs on every
/// non-blank line (`scratch` is per-worker state it may reuse). Results come back in file order with
/// their 1-based line numbers. The first error in file order fails the read, prefixed with the file
/// and line. Memory stays at a few chunks plus the results.
pub fn read_lines_parallel<S, T, F>(
    path: &Path,
    threads: usize,
    chunk_bytes: usize,
    parse: F,
) -> Result<Vec<(usize, T)>>
where
    S: Default,
    T: Send,
    F: Fn(&mut S, &[u8]) -> Result<T> + Sync,
{
    let mut reader = crate::io::open_raw(path)?;
    let failed = AtomicBool::new(false);
    let threads = threads.max(1);
    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(2 * threads);
    let chunk_rx = Mutex::new(chunk_rx);
    let (done_tx, done_rx) = mpsc::channel();
    let (mut results, read_result) = std::thread::scope(|scope| {
        for _ in 0..threads {
            let (chunk_rx, done_tx, failed, parse) = (&chunk_rx, done_tx.clone(), &failed, &parse);
            scope.spawn(move || loop {
                let next = chunk_rx.lock().expect("no worker panicked").recv();
                let Ok(chunk) = next else { break };
                let result = parse_chunk(&chunk, parse);
                failed.fetch_or(result.is_err(), Ordering::Relaxed);
                if done_tx.send((chunk.index, result)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let read_result = send_chunks(&mut reader, path, chunk_bytes, &chunk_tx, &failed);
        drop(chunk_tx);
        (done_rx.into_iter().collect::<Vec<_>>(), read_result)
    });
    read_result?;
    results.sort_by_key(|(index, _)| *index);
    let (mut all, mut first_line) = (Vec::new(), 1);
    for (_, result) in results {
        match result {
            Ok(out) => {
                all.extend(out.items.into_iter().map(|(offset, t)| (first_line + offset, t)));
                first_line += out.line_ends;
            }
            Err((offset, e)) => bail!("{}:{}: {e}", path.display(), first_line + offset),
        }
    }
    Ok(all)
}

/// Reads `reader` in chunks cut at line ends and queues them, stopping early once a worker failed.
fn send_chunks(
    reader: &mut dyn Read,
    path: &Path,
    chunk_bytes: usize,
    tx: &mpsc::SyncSender<Chunk>,
    failed: &AtomicBool,
) -> Result<()> {
    let (mut carry, mut index) = (Vec::new(), 0usize);
    loop {
        if failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Sized once: growing by doubling would copy every chunk about once more.
        let mut bytes = Vec::with_capacity(carry.len() + chunk_bytes);
        bytes.append(&mut carry);
        let got = (&mut *reader)
            .take(chunk_bytes as u64)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        if got > 0 {
            match bytes.iter().rposition(|&b| b == b'\n') {
                Some(cut) => carry = bytes.split_off(cut + 1),
                None => {
                    carry = bytes;
                    continue;
                }
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if tx.send(Chunk { index, bytes }).is_err() {
            return Ok(());
        }
        index += 1;
    }
}

/// Parses the lines of one chunk; an error carries its chunk-relative line.
fn parse_chunk<S, T, F>(chunk: &Chunk, parse: &F) -> Result<ChunkOutput<T>, (usize, anyhow::Error)>
where
    S: Default,
    F: Fn(&mut S, &[u8]) -> Result<T>,
{
    let mut items = Vec::new();
    let mut scratch = S::default();
    let mut line_ends = 0;
    // memchr finds line ends a vector at a time; a byte-wise split was a tenth of `leader eval`.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', &chunk.bytes).chain(std::iter::once(chunk.bytes.len()));
    for (offset, end) in ends.enumerate() {
        let line = &chunk.bytes[start..end];
        start = end + 1;
        line_ends = offset;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        items.push((offset, parse(&mut scratch, line).map_err(|e| (offset, e))?));
    }
    Ok(ChunkOutput { line_ends, items })
}
