//! Process-wide settings made in `main` once the command is parsed, before any other thread starts.

/// How many threads candle's CPU kernels get, per stage (unless the user set `RAYON_NUM_THREADS` or
/// `CANDLE_NUM_THREADS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelThreads {
    /// One: the student's stages run their own shard threads (see `nn::parallel`), and candle's matmul
    /// threads and spinning element-wise pool beside them slowed 2-core training by more than half.
    One,
    /// candle's default (every core): the teacher's stages are few large matmuls with no threads of
    /// our own. On 2 cores (`scripts/bench-teacher-cpu.sh`, tiny shape) LoRA steps ran 26% faster
    /// (18.3k → 23.1k tokens/s) and the frozen forward pass 65% faster (46.7k → 77.0k tokens/s).
    All,
}

/// Tunes the process:
/// - candle's kernel threads as `threads` says, unless the user set them;
/// - glibc's malloc keeps freed memory instead of returning every large tensor buffer to the kernel
///   (mmap/munmap and page faults per tensor were a fifth of the training time).
///
/// Sets environment variables, so nothing else may run concurrently.
pub fn configure(threads: KernelThreads) {
    if threads == KernelThreads::One {
        for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                std::env::set_var(var, "1");
            }
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
