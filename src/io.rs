//! File helpers shared by every stage: atomic writes (temp file or folder + rename), gzip-aware text
//! readers, and JSON / JSON Lines readers whose errors name the file, line and column.

pub mod output;
pub mod parallel_lines;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A sibling temporary path, unique per process, so a crash never leaves a half-written `dest`.
fn temp_sibling(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating folder {}", parent.display()))?;
    }
    Ok(())
}

/// A file that appears at its destination only when [`AtomicFile::commit`] is called.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> Result<Self> {
        ensure_parent(dest)?;
        let tmp = temp_sibling(dest);
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self { tmp, dest: dest.to_path_buf(), writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    pub fn commit(self) -> Result<()> {
        self.commit_after(|_| Ok(()))
    }

    /// Completes the temporary file, runs `before` on it (e.g. to write a sidecar that describes it)
    /// and only then moves it into place.
    pub fn commit_after(mut self, before: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let writer = self.writer.take().expect("writer present until commit");
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", self.tmp.display()))?;
        let done = before(&self.tmp).and_then(|()| {
            fs::rename(&self.tmp, &self.dest)
                .with_context(|| format!("renaming {} to {}", self.tmp.display(), self.dest.display()))
        });
        if done.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        done
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.as_mut().expect("writer present until commit").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().expect("writer present until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).with_context(|| format!("writing {}", dest.display()))?;
    f.commit()
}

/// Writes named tensors as a safetensors file at `dest`, atomically, one tensor in memory at a time.
pub fn write_safetensors(dest: &Path, tensors: &std::collections::HashMap<String, candle_core::Tensor>) -> Result<()> {
    use safetensors::View;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for name in &names {
        let t = &tensors[*name];
        let end = offset + t.data_len();
        let entry = serde_json::json!({"dtype": View::dtype(&t), "shape": t.dims(), "data_offsets": [offset, end]});
        header.insert(name.to_string(), entry);
        offset = end;
    }
    let mut header = serde_json::to_vec(&header)?;
    // The format pads the header with spaces to a multiple of 8 bytes.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut f = AtomicFile::create(dest)?;
    let io = |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", dest.display()));
    f.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    f.write_all(&header).map_err(io)?;
    for name in names {
        let t = tensors[name].to_device(&candle_core::Device::Cpu)?.contiguous()?;
        f.write_all(&View::data(&&t)).map_err(io)?;
    }
    f.commit()
}

/// Writes `value` as pretty JSON to `dest` atomically.
pub fn write_json<T: Serialize + ?Sized>(dest: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(dest, &bytes)
}

/// A folder filled under a temporary name and moved into place by [`AtomicDir::commit`]; an
/// existing destination is replaced only then.
pub struct AtomicDir {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicDir {
    pub fn create(dest: &Path) -> Result<Self> {
        ensure_parent(dest)?;
        let tmp = temp_sibling(dest);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self { tmp, dest: dest.to_path_buf(), committed: false })
    }

    /// Where to write the folder's files before commit.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn commit(mut self) -> Result<()> {
        if self.dest.exists() {
            let old = self.dest.with_file_name(format!(
                ".{}.old-{}",
                self.dest.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            fs::rename(&self.dest, &old).with_context(|| format!("moving aside {}", self.dest.display()))?;
            fs::rename(&self.tmp, &self.dest).with_context(|| format!("renaming into {}", self.dest.display()))?;
            fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        } else {
            fs::rename(&self.tmp, &self.dest).with_context(|| format!("renaming into {}", self.dest.display()))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A folder's resolved absolute path, so a run records an input it finds again from any working
/// directory; a missing folder is an error naming it.
pub fn absolute_folder(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).with_context(|| format!("{}: no such folder", path.display()))
}

/// Opens a file for reading, decompressing it when its name ends in `.gz` (unbuffered: for
/// readers that take large blocks at a time).
pub fn open_raw(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Opens a text file for buffered reading, decompressing it when its name ends in `.gz`.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    Ok(Box::new(BufReader::with_capacity(1 << 20, open_raw(path)?)))
}

/// Reads a whole JSON file; parse errors name the file, line and column.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line(), e.column(), e))
}

/// The longest line a JSON Lines reader accepts: a record with a book-length prompt is far shorter,
/// and a longer line (a file that is not JSON Lines, a runaway export) fails in bounded memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Iterates over a JSON Lines file, yielding `(line_number, value)`; blank lines are skipped and any
/// parse error (invalid JSON or UTF-8, a line over [`MAX_LINE_BYTES`]) names the file, line and column.
pub struct JsonLines<T> {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    line_no: usize,
    buf: Vec<u8>,
    _t: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> JsonLines<T> {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            reader: open_text(path)?,
            line_no: 0,
            buf: Vec::new(),
            _t: Default::default(),
        })
    }

    fn parse_line(&self) -> Result<T> {
        let at = |column: usize| format!("{}:{}:{column}", self.path.display(), self.line_no);
        if self.buf.len() > MAX_LINE_BYTES {
            bail!("{}: line longer than {} MiB; expected one JSON record per line", at(1), MAX_LINE_BYTES >> 20);
        }
        let text = std::str::from_utf8(&self.buf).map_err(|e| {
            anyhow::anyhow!("{}: invalid UTF-8 (byte {})", at(e.valid_up_to() + 1), e.valid_up_to() + 1)
        })?;
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", at(e.column())))
    }
}

impl<T: DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<(usize, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            let limit = MAX_LINE_BYTES as u64 + 1;
            match (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) if self.buf.trim_ascii().is_empty() => continue,
                Ok(_) => return Some(self.parse_line().map(|v| (self.line_no, v))),
                Err(e) => {
                    return Some(Err(anyhow::Error::new(e).context(format!(
                        "{}:{}: reading the file",
                        self.path.display(),
                        self.line_no
                    ))))
                }
            }
        }
    }
}

/// Reads every line of a JSON Lines file.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    JsonLines::open(path)?.map(|r| r.map(|(_, v)| v)).collect()
}

/// A training run's `train_log.jsonl`, rewritten whole (atomically) at each checkpoint. Entries are
/// kept as their JSON text, so a resumed run rewrites the lines before its checkpoint byte for byte
/// (parsing and re-printing a float can change its last digit).
pub struct TrainLog {
    path: PathBuf,
    lines: Vec<String>,
}

impl TrainLog {
    /// An empty log that will be written to `path`.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), lines: Vec::new() }
    }

    /// The log at `path` (empty if there is none), keeping the entries (0-based index, value) for
    /// which `keep` holds: those written after the checkpoint being resumed are dropped.
    pub fn resume(path: &Path, keep: impl Fn(usize, &serde_json::Value) -> bool) -> Result<Self> {
        let mut log = Self::new(path);
        if !path.exists() {
            return Ok(log);
        }
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), i + 1, e.column()))?;
            if keep(i, &value) {
                log.lines.push(line.to_string());
            }
        }
        Ok(log)
    }

    pub fn push<T: Serialize>(&mut self, entry: &T) -> Result<()> {
        self.lines.push(serde_json::to_string(entry)?);
        Ok(())
    }

    /// Writes the whole log.
    pub fn save(&self) -> Result<()> {
        let text: String = self.lines.iter().flat_map(|line| [line.as_str(), "\n"]).collect();
        write_atomic(&self.path, text.as_bytes())
    }
}

/// Fails with a message naming `path` unless it exists.
pub fn require_file(path: &Path, what: &str) -> Result<()> {
    if !path.is_file() {
        bail!("{} not found: expected {what}", path.display());
    }
    Ok(())
}
