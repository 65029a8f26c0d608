//! Process-wide settings made first thing in `main`, before any other thread starts.

/// Tunes the process for the student's many small tensors:
/// - candle's kernels run single-threaded unless the user set `RAYON_NUM_THREADS` or
///   `CANDLE_NUM_THREADS`: its matmul threads and spinning element-wise pool slowed 2-core training
///   by more than half while our own shard threads ran (see `nn::parallel`);
/// - glibc's malloc keeps freed memory instead of returning every large tensor buffer to the kernel
///   (mmap/munmap and page faults per tensor were a fifth of the training time).
///
/// Sets environment variables, so nothing else may run concurrently.
pub fn configure() {
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
