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
    let script = format!("ulimit -v {} && exec \"$0\" --quiet \"$@\"", limit / 1024);
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
