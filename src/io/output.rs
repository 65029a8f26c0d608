//! Where commands write: `--out` never deletes what leader did not write, a folder or file is
//! replaced only on `--overwrite` and only when it holds an earlier output of the same command, a
//! destination is locked while a command writes it, and the temporary files an interrupted run left
//! behind are removed by the next run on the same destination.
//!
//! A folder output carries a marker, `.leader-output.json`, naming the command that wrote it and the
//! top-level entries it wrote; anything else in the folder is foreign and makes `--overwrite` refuse.
//! A single-file output (predictions, a teacher cache, a comparison table) carries its sidecar
//! `FILE.config.toml`, whose `[written]` table names the command and fingerprints the file, so a
//! sidecar left beside another file is recognised.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The marker file of a folder output.
pub const MARKER: &str = ".leader-output.json";

/// The command whose output a destination holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    Synth,
    Preprocess,
    InitModel,
    Pretrain,
    TrainTeacher,
    TrainBaseline,
    TrainStudent,
    Distill,
    ExportHidden,
    Predict,
    Eval,
    EvalCompare,
    Demo,
}

impl OutputKind {
    /// The command line that writes this kind, for messages: `leader synth`.
    pub fn command(self) -> String {
        let name = serde_json::to_value(self).expect("unit variants serialise");
        format!("leader {}", name.as_str().expect("a string"))
    }

    /// Whether a run of this kind can be continued with `--resume`.
    fn resumable(self) -> bool {
        matches!(self, Self::Pretrain | Self::TrainTeacher | Self::TrainStudent | Self::Distill | Self::TrainBaseline)
    }
}

/// `.leader-output.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    written_by: OutputKind,
    /// False while a folder is being filled or replaced, and for a training run until it ends.
    complete: bool,
    /// Top-level names leader wrote (the marker and lock excepted).
    entries: Vec<String>,
}

impl Marker {
    fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MARKER);
        if !path.is_file() {
            return Ok(None);
        }
        crate::io::read_json(&path).map(Some)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        crate::io::write_json(&dir.join(MARKER), self)
    }
}

/// The name a temporary or set-aside name of ours stands for: `NAME` of `.NAME.tmp-PID` or
/// `.NAME.old-PID`; `None` for any other name.
fn temp_stem(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    ["tmp-", "old-"].iter().find_map(|tag| {
        let at = rest.rfind(&format!(".{tag}"))?;
        let pid = &rest[at + 1 + tag.len()..];
        (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && at > 0).then(|| &rest[..at])
    })
}

fn is_temp_name(name: &str) -> bool {
    temp_stem(name).is_some()
}

/// Removes the temporaries in `dir` of the names in `stems` (of every name when `stems` is `None`):
/// leftovers of a killed run, safe to remove because whoever made them held the lock this caller
/// holds now. Another output's temporaries beside them (another name, another lock) are left alone.
fn remove_stale_temps(dir: &Path, stems: Option<&[&str]>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = temp_stem(&name) else { continue };
        if stems.is_some_and(|stems| !stems.contains(&stem)) {
            continue;
        }
        let path = entry.path();
        let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        result.with_context(|| format!("removing {}, left by an interrupted run", path.display()))?;
    }
    Ok(())
}

/// Locks the destination `dest` (absolute) and removes what an interrupted run left beside it: its
/// temporaries and those of its sidecar `NAME.config.toml`.
fn lock_destination(dest: &Path) -> Result<OutputLock> {
    let lock = OutputLock::acquire(dest)?;
    let (parent, name) = parent_and_name(dest)?;
    let sidecar = format!("{name}.config.toml");
    remove_stale_temps(&parent, Some(&[name.as_str(), sidecar.as_str()]))?;
    Ok(lock)
}

/// `dest` made absolute, so `--out .` names the folder itself and its siblings can be named.
fn absolute(dest: &Path) -> Result<PathBuf> {
    match dest.canonicalize() {
        Ok(real) => Ok(real),
        Err(_) => std::path::absolute(dest).with_context(|| format!("resolving {}", dest.display())),
    }
}

fn parent_and_name(dest: &Path) -> Result<(PathBuf, String)> {
    let name = dest.file_name().with_context(|| format!("{}: not a file or folder name", dest.display()))?;
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// An exclusive lock on a destination, held as `.NAME.lock` beside it; removed on drop.
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Takes the lock of `dest` (absolute), failing at once if another command holds it.
    fn acquire(dest: &Path) -> Result<Self> {
        let (parent, name) = parent_and_name(dest)?;
        fs::create_dir_all(&parent).with_context(|| format!("creating folder {}", parent.display()))?;
        let path = parent.join(format!(".{name}.lock"));
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("creating lock file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => bail!(
                    "{} is being written by another leader command right now (lock {}); wait for it to end or choose another --out",
                    dest.display(),
                    path.display()
                ),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            // The holder before us may have removed the file after we opened it: then lock anew.
            if same_file(&file, &path) {
                return Ok(Self { path, _file: file });
            }
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether `name` is the lock file of an output inside a folder (`.NAME.lock`, left by a killed run).
fn is_lock_name(name: &str) -> bool {
    name.len() > ".lock".len() + 1 && name.starts_with('.') && name.ends_with(".lock")
}

/// Top-level names in `dir` other than the marker, our temporaries and lock files.
fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))? {
        let name = entry.with_context(|| format!("reading folder {}", dir.display()))?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name != MARKER && !is_temp_name(&name) && !is_lock_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn shown(names: &[String]) -> String {
    let mut s = names.iter().take(5).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(" and {} more", names.len() - 5));
    }
    s
}

/// What an existing folder destination holds.
enum Existing {
    /// Nothing there, or an empty folder.
    Nothing,
    /// An earlier output of the same command, every entry of it ours.
    Ours(Marker),
}

/// Checks that `dest` may receive a new output of `kind`; `overwrite` allows replacing an earlier one.
fn check_folder(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<Existing> {
    if !dest.exists() {
        return Ok(Existing::Nothing);
    }
    if !dest.is_dir() {
        bail!("--out {}: is a file, not a folder; choose a new or empty folder", dest.display());
    }
    let present = listing(dest)?;
    let Some(marker) = Marker::read(dest)? else {
        if present.is_empty() {
            return Ok(Existing::Nothing);
        }
        bail!(
            "--out {} is not empty and was not written by leader (it holds {}); nothing was changed. \
             Choose a new or empty folder",
            dest.display(),
            shown(&present)
        );
    };
    if marker.written_by != kind {
        bail!(
            "--out {} holds the output of `{}`, not of `{}`; nothing was changed. Choose another folder",
            dest.display(),
            marker.written_by.command(),
            kind.command()
        );
    }
    let foreign: Vec<String> = present.iter().filter(|n| !marker.entries.contains(n)).cloned().collect();
    if !overwrite {
        let how = if kind.resumable() {
            format!("continue it with --resume {}, or pass --overwrite to start over", dest.display())
        } else {
            "pass --overwrite to replace it, or choose another folder".to_string()
        };
        bail!("--out {} already holds an output of `{}`; {how}", dest.display(), kind.command());
    }
    if !foreign.is_empty() {
        bail!(
            "--out {} holds an earlier output of `{}` but also files leader did not write ({}); --overwrite \
             replaces only leader's own files, so nothing was changed. Move them away or choose another folder",
            dest.display(),
            kind.command(),
            shown(&foreign)
        );
    }
    Ok(Existing::Ours(marker))
}

/// Removes the entries an earlier output recorded (checked by [`check_folder`] to be all there is).
fn remove_entries(dir: &Path, entries: &[String]) -> Result<()> {
    for name in entries {
        let path = dir.join(name);
        let result = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(_) => continue,
        };
        result.with_context(|| format!("removing {} of the earlier output", path.display()))?;
    }
    Ok(())
}

/// A folder output written whole under a temporary name and moved into place by
/// [`OutputDir::commit`]: a new folder appears at once; an existing empty folder, or an earlier output
/// being overwritten, is filled entry by entry under an incomplete marker.
pub struct OutputDir {
    dest: PathBuf,
    kind: OutputKind,
    overwrite: bool,
    staging: Option<crate::io::AtomicDir>,
    _lock: OutputLock,
}

impl OutputDir {
    /// Checks `dest` (before any work is done), locks it and starts the staging folder.
    pub fn create(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<Self> {
        let dest = absolute(dest)?;
        check_folder(&dest, kind, overwrite)?;
        let lock = lock_destination(&dest)?;
        let staging = crate::io::AtomicDir::create(&dest)?;
        Ok(Self { dest, kind, overwrite, staging: Some(staging), _lock: lock })
    }

    /// Where to write the folder's files before [`OutputDir::commit`].
    pub fn path(&self) -> &Path {
        self.staging.as_ref().expect("staging until commit").path()
    }

    /// Moves the finished folder into place.
    pub fn commit(mut self) -> Result<()> {
        let staging = self.staging.take().expect("staging until commit");
        let entries = listing(staging.path())?;
        let done = Marker { written_by: self.kind, complete: true, entries: entries.clone() };
        // Checked again: the destination may have changed while the output was computed.
        match check_folder(&self.dest, self.kind, self.overwrite)? {
            Existing::Nothing if !self.dest.exists() => {
                done.write(staging.path())?;
                staging.commit()
            }
            existing => {
                let old = match existing {
                    Existing::Ours(marker) => marker.entries,
                    Existing::Nothing => Vec::new(),
                };
                let mut all = old.clone();
                all.extend(entries.iter().cloned());
                Marker { complete: false, entries: all, ..done.clone() }.write(&self.dest)?;
                remove_entries(&self.dest, &old)?;
                for name in &entries {
                    let (from, to) = (staging.path().join(name), self.dest.join(name));
                    fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
                }
                done.write(&self.dest)
            }
        }
    }
}

/// A training run's folder, written while the run goes on: created fresh (or over an earlier run of
/// the same command with `--overwrite`), or reopened by `--resume`; locked while open.
pub struct RunDir {
    path: PathBuf,
    marker: Marker,
    _lock: OutputLock,
}

impl RunDir {
    /// Fails now, before any work, if [`RunDir::create`] would refuse `dest`.
    pub fn check(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<()> {
        check_folder(&absolute(dest)?, kind, overwrite).map(|_| ())
    }

    /// A new run in `dest`: absent, empty, or an earlier run of `kind` when `overwrite` (whose files
    /// are removed).
    pub fn create(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<Self> {
        let path = absolute(dest)?;
        check_folder(&path, kind, overwrite)?;
        let lock = OutputLock::acquire(&path)?;
        // Checked again under the lock.
        if let Existing::Ours(old) = check_folder(&path, kind, overwrite)? {
            remove_entries(&path, &old.entries)?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        remove_stale_temps(&path, None)?;
        let marker = Marker { written_by: kind, complete: false, entries: Vec::new() };
        marker.write(&path)?;
        Ok(Self { path, marker, _lock: lock })
    }

    /// Reopens the run in `dest` to continue it.
    pub fn resume(dest: &Path, kind: OutputKind) -> Result<Self> {
        let path = absolute(dest)?;
        let lock = OutputLock::acquire(&path)?;
        let marker = match Marker::read(&path)? {
            Some(m) if m.written_by == kind => m,
            Some(m) => bail!(
                "--resume {}: holds the output of `{}`, not a run of `{}`",
                path.display(),
                m.written_by.command(),
                kind.command()
            ),
            None => bail!("--resume {}: not a run folder of `{}` (no {MARKER})", path.display(), kind.command()),
        };
        remove_stale_temps(&path, None)?;
        Ok(Self { path, marker, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the run's top-level entry `name`, recorded as the run's own before it is written.
    pub fn entry(&mut self, name: &str) -> Result<PathBuf> {
        if !self.marker.entries.iter().any(|e| e == name) {
            self.marker.entries.push(name.to_string());
            self.marker.write(&self.path)?;
        }
        Ok(self.path.join(name))
    }

    /// Marks the run as ended (a later `--resume` with more steps or epochs may still extend it).
    pub fn finish(&mut self) -> Result<()> {
        self.marker.complete = true;
        self.marker.write(&self.path)
    }
}

/// How many bytes of each end of a file its fingerprint reads.
const FINGERPRINT_SPAN: u64 = 1 << 20;

/// A cheap identity of a file's content: its length and a hash of its first and last MiB. Enough to
/// tell a sidecar left beside a file written by another run; not a checksum of every byte.
pub fn file_fingerprint(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len.to_le_bytes());
    let mut buf = Vec::new();
    (&mut file).take(FINGERPRINT_SPAN).read_to_end(&mut buf).with_context(|| format!("reading {}", path.display()))?;
    hasher.update(&buf);
    if len > FINGERPRINT_SPAN {
        buf.clear();
        file.seek(SeekFrom::Start(len.saturating_sub(FINGERPRINT_SPAN).max(FINGERPRINT_SPAN)))?;
        file.read_to_end(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        hasher.update(&buf);
    }
    Ok((len, hasher.finalize().to_hex()[..32].to_string()))
}

/// One fingerprint of several files (each by [`file_fingerprint`]), in the order given.
pub fn files_fingerprint(paths: &[PathBuf]) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for path in paths {
        let (len, hash) = file_fingerprint(path)?;
        hasher.update(&len.to_le_bytes());
        hasher.update(hash.as_bytes());
    }
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// What a training run was made from, kept in `RUN/inputs.json`: `--resume` continues only on the
/// same data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInputs {
    /// The data folder, absolute.
    pub data: PathBuf,
    /// [`files_fingerprint`] of the files the run reads from it.
    pub data_fingerprint: String,
}

impl RunInputs {
    pub const FILE: &'static str = "inputs.json";

    /// The inputs of a run on the data folder `data`, which it reads `files` of.
    pub fn of(data: &Path, files: &[&str]) -> Result<Self> {
        let data = absolute(data)?;
        let paths: Vec<PathBuf> = files.iter().map(|f| data.join(f)).collect();
        for path in &paths {
            crate::io::require_file(path, "a file of the data folder")?;
        }
        Ok(Self { data_fingerprint: files_fingerprint(&paths)?, data })
    }

    pub fn save(&self, run: &mut RunDir) -> Result<()> {
        crate::io::write_json(&run.entry(Self::FILE)?, self)
    }

    /// The data folder of the run being resumed in `run`: `given` (`--data`) must be the recorded one
    /// when present, and the folder's content must be what the run started on.
    pub fn for_resume(run: &Path, given: Option<&Path>, files: &[&str]) -> Result<Self> {
        let saved: Self = crate::io::read_json(&run.join(Self::FILE))?;
        if let Some(given) = given {
            let given = absolute(given)?;
            ensure!(
                given == saved.data,
                "--resume {}: the run was trained on --data {}, not {}; a resumed run keeps its data",
                run.display(),
                saved.data.display(),
                given.display()
            );
        }
        let now = Self::of(&saved.data, files)?;
        ensure!(
            now == saved,
            "--resume {}: the data folder {} changed since the run started (fingerprint {} then, {} now); \
             start a new run with --out",
            run.display(),
            saved.data.display(),
            saved.data_fingerprint,
            now.data_fingerprint
        );
        Ok(saved)
    }
}

/// Where the effective config of a single-file output goes: `FILE.config.toml`.
pub fn sidecar_path(output_file: &Path) -> PathBuf {
    let mut name = output_file.file_name().unwrap_or_default().to_os_string();
    name.push(".config.toml");
    output_file.with_file_name(name)
}

/// `--out FOLDER` and `--overwrite`, for the commands that write one new folder.
#[derive(clap::Args, Debug, Clone)]
pub struct FolderArgs {
    /// Output folder: new or empty (it appears whole when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier output of this command at --out (only leader's own files; anything else there
    /// makes it refuse).
    #[arg(long)]
    pub overwrite: bool,
}

/// Where a training command writes: a new run (`--out`, `--overwrite`) or the run it continues
/// (`--resume`). Flattened into every training command's arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// New run folder (absent or empty; an earlier run of this command with --overwrite).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Replace an earlier run of this command at --out (only leader's own files; anything else there
    /// makes it refuse).
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Continue the run in this folder from its last checkpoint, with its saved config and data: a
    /// flag may lengthen it (--max-steps, --epochs); any other must repeat the saved value.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

/// The `[written]` table of a single-file output's sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    pub by: OutputKind,
    pub bytes: u64,
    pub fingerprint: String,
}

/// Reads the `[written]` table of `file`'s sidecar: `None` without a sidecar.
pub fn read_written(file: &Path) -> Result<Option<Written>> {
    let sidecar = sidecar_path(file);
    if !sidecar.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&sidecar).with_context(|| format!("reading {}", sidecar.display()))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?;
    match table.get("written") {
        None => Ok(None),
        Some(v) => v.clone().try_into().map(Some).map_err(|e| anyhow::anyhow!("{}: [written]: {e}", sidecar.display())),
    }
}

/// Fails unless `file`'s sidecar was written together with this very file.
pub fn check_sidecar_matches(file: &Path, written: &Written) -> Result<()> {
    let (bytes, fingerprint) = file_fingerprint(file)?;
    if (bytes, fingerprint.as_str()) != (written.bytes, written.fingerprint.as_str()) {
        bail!(
            "{} does not belong to {} (it describes a {}-byte file, this one has {bytes} bytes or other content): \
             the two were not written by one `{}`; run it again",
            sidecar_path(file).display(),
            file.display(),
            written.bytes,
            written.by.command()
        );
    }
    Ok(())
}

/// A single-file output with its sidecar config, which fingerprints the file, so a pair torn by a
/// crash between the two renames is refused by every reader. The caller writes the file atomically at
/// [`OutputFile::dest`] and writes the sidecar with [`OutputFile::write_sidecar`] before the file's
/// rename, or with [`OutputFile::commit`] after it.
pub struct OutputFile {
    dest: PathBuf,
    kind: OutputKind,
    _lock: OutputLock,
}

impl OutputFile {
    /// Checks `dest` (absent, or an earlier output of `kind` when `overwrite`), locks it and removes
    /// what an interrupted run left beside it.
    pub fn create(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<Self> {
        let dest = absolute(dest)?;
        check_file(&dest, kind, overwrite)?;
        let lock = lock_destination(&dest)?;
        Ok(Self { dest, kind, _lock: lock })
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Writes the sidecar of the finished file, already in place: `sidecar` (any serialisable config)
    /// with a `[written]` table added.
    pub fn commit<T: Serialize>(self, sidecar: &T) -> Result<()> {
        self.write_sidecar(&self.dest, sidecar)
    }

    /// Writes the sidecar describing `content` (the finished file, still under its temporary name when
    /// the caller moves it into place only afterwards: then a crash in between leaves a sidecar that
    /// matches no file, which every reader refuses, never a file without its sidecar).
    pub fn write_sidecar<T: Serialize>(&self, content: &Path, sidecar: &T) -> Result<()> {
        let (bytes, fingerprint) = file_fingerprint(content)?;
        let written = Written { by: self.kind, bytes, fingerprint };
        let mut table = toml::Table::try_from(sidecar).context("serialising the sidecar config")?;
        table.insert("written".into(), toml::Value::try_from(&written)?);
        let text = toml::to_string_pretty(&table).context("serialising the sidecar config")?;
        crate::io::write_atomic(&sidecar_path(&self.dest), text.as_bytes())
    }
}

/// Checks that a single-file output may go to `dest`.
fn check_file(dest: &Path, kind: OutputKind, overwrite: bool) -> Result<()> {
    if !dest.exists() {
        return Ok(());
    }
    if dest.is_dir() {
        bail!("--out {}: is a folder; give a file name", dest.display());
    }
    match read_written(dest)? {
        Some(w) if w.by == kind && overwrite => Ok(()),
        Some(w) if w.by == kind => bail!(
            "--out {} already holds an output of `{}`; pass --overwrite to replace it, or choose another file",
            dest.display(),
            kind.command()
        ),
        _ => bail!(
            "--out {} exists and is not an output of `{}` (no matching {}); nothing was changed. Choose another file",
            dest.display(),
            kind.command(),
            sidecar_path(dest).display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_exactly() {
        for yes in [".a.tmp-12", ".train_log.jsonl.tmp-999", ".raw.old-1", ".x.y.tmp-0"] {
            assert!(is_temp_name(yes), "{yes}");
        }
        for no in ["a.tmp-12", ".a.tmp-", ".a.tmp-12x", ".a.lock", ".leader-output.json", ".tmp-12"] {
            assert!(!is_temp_name(no), "{no}");
        }
        assert_eq!(temp_stem(".x.y.tmp-0"), Some("x.y"));
        assert_eq!(temp_stem(".p.jsonl.config.toml.tmp-7"), Some("p.jsonl.config.toml"));
    }
}
