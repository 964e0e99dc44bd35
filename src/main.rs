fn main() {
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let code = match runtime {
        Ok(rt) => rt.block_on(latchkey::cli::run()),
        Err(err) => {
            eprintln!("latchkey: cannot start the async runtime: {err}");
            1
        }
    };
    std::process::exit(code);
}

/// argon2 allocates 19 MiB per hash. glibc raises its mmap threshold after the first such
/// buffer is freed, and from then on keeps them in per-thread heaps: measured, a login
/// burst left the server at ~490 MB resident for good. A fixed threshold keeps large
/// buffers mmap'd, so they go back to the system on free (peak ~60 MB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only tunes the allocator; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
