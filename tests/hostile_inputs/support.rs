//! Running the binary under a memory bound and judging what it did.

use std::path::Path;
use std::process::{Command, Output};

/// Address-space bound for one case (virtual memory; the binary's threads and mmaps fit well inside).
pub const MEMORY_LIMIT_BYTES: u64 = 4 << 30;

/// What one run of `leader --quiet ARGS` did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The run failed with exit status 1, a one-line `error: ` first line containing every needle, and no
    /// panic or abort.
    #[track_caller]
    pub fn assert_clear_error(&self, needles: &[&str]) {
        assert_eq!(self.code, Some(1), "expected exit status 1\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.assert_no_panic();
        let first = self.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "the first line of stderr should say what is wrong:\n{}", self.stderr);
        for needle in needles {
            assert!(first.contains(needle), "the first line of stderr lacks {needle:?}:\n{}", self.stderr);
        }
    }

    /// The run succeeded.
    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
    }

    #[track_caller]
    pub fn assert_no_panic(&self) {
        for sign in ["panicked", "RUST_BACKTRACE", "memory allocation of", "Aborted", "SIGSEGV"] {
            assert!(!self.stderr.contains(sign), "the binary crashed ({sign}):\n{}", self.stderr);
        }
    }
}

/// Runs `leader --quiet ARGS` in `cwd` with its address space limited to [`MEMORY_LIMIT_BYTES`].
pub fn leader_in(cwd: &Path, args: &[&str]) -> Run {
    leader_with_limit(cwd, args, MEMORY_LIMIT_BYTES)
}

/// Runs `leader --quiet ARGS` in `cwd` under an address-space bound of `limit` bytes.
pub fn leader_with_limit(cwd: &Path, args: &[&str], limit: u64) -> Run {
    let bin = env!("CARGO_BIN_EXE_leader");
    // `prlimit` is util-linux's; the shell's `ulimit -v` (KiB) is the portable fallback.
    // A fixed umask, so the modes of output files can be asserted.
    let script = format!("umask 022 && ulimit -v {} && exec \"$0\" --quiet \"$@\"", limit / 1024);
    let out = Command::new("sh")
        .current_dir(cwd)
        .arg("-c")
        .arg(script)
        .arg(bin)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running leader");
    Run::from_output(out)
}

/// Runs `leader --quiet ARGS` in the current directory under the memory bound.
pub fn leader(args: &[&str]) -> Run {
    leader_in(Path::new("."), args)
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Every entry under `dir`, relative, sorted (files and folders), for "nothing was written" checks.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `leader ARGS` and asserts it succeeded.
#[track_caller]
pub fn ok(args: &[&str]) {
    leader(args).assert_success();
}

/// The arguments that preprocess the synthetic cohort `raw` (with its own mapping files) into `out`.
pub fn preprocess_args(raw: &Path, aux: &Path, out: &Path) -> Vec<String> {
    let aux_file = |name: &str| aux.join(name).display().to_string();
    let mut args = vec!["preprocess", "--source", "mimic3", "--raw"].into_iter().map(String::from).collect::<Vec<_>>();
    args.push(s(raw).into());
    for (flag, file) in
        [("--drug-map", "drug_map.csv"), ("--atc-names", "atc_names.csv"), ("--ddi-pairs", "ddi_pairs.csv")]
    {
        args.push(flag.into());
        args.push(aux_file(file));
    }
    args.push("--out".into());
    args.push(s(out).into());
    args
}

/// Runs `leader` with owned arguments.
pub fn leader_owned(args: &[String]) -> Run {
    leader(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The pipeline each case breaks one piece of: a small synthetic cohort and its preprocessed data
/// folder, a tiny base model, a 2-step teacher, a 1-epoch student, its test predictions, and a second
/// cohort with another vocabulary. Built once per test run under `CARGO_TARGET_TMPDIR`.
pub struct Fixture {
    pub root: std::path::PathBuf,
}

impl Fixture {
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.root.join(name)
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-inputs-fixture");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let p = |name: &str| root.join(name).display().to_string();
        for (raw, data, seed) in [("raw", "data", "1"), ("raw-other", "data-other", "2")] {
            ok(&["synth", "--flavor", "mimic3", "--patients", "120", "--seed", seed, "--out", &p(raw)]);
            leader_owned(&preprocess_args(&root.join(raw), &root.join(raw).join("aux"), &root.join(data)))
                .assert_success();
        }
        ok(&["init-model", "--shape", "tiny", "--data", &p("data"), "--out", &p("base")]);
        ok(&[
            "train-teacher",
            "--data",
            &p("data"),
            "--model",
            &p("base"),
            "--out",
            &p("teacher"),
            "--max-steps",
            "2",
            "--max-tokens",
            "64",
            "--micro-batch",
            "4",
            "--grad-accum",
            "1",
        ]);
        ok(&["train-student", "--data", &p("data"), "--out", &p("student"), "--epochs", "1"]);
        ok(&[
            "predict",
            "--model",
            &p("student"),
            "--data",
            &p("data"),
            "--split",
            "test",
            "--out",
            &p("test.pred.jsonl"),
        ]);
        Fixture { root }
    })
}

/// Copies a folder (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A gzip table of a cohort as text.
pub fn read_table(path: &Path) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}
