//! `iops`: parses the command line and runs it. Any failure is one line on stderr,
//! `iops: <message>`, and a non-zero exit code; never a backtrace.
use std::process::ExitCode;

use clap::Parser;

/// Every Argon2id run allocates 19 MiB. glibc serves the first such block with mmap, then
/// raises its mmap threshold to that size, so later blocks come from per-thread heaps that
/// keep them after use: a burst of logins left the server at ~0.8 GiB. A fixed threshold
/// keeps large blocks on mmap, returned to the system as soon as a hash is done.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_returnable() {
    // SAFETY: mallopt only changes allocator tuning; called once, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_returnable() {}

fn main() -> ExitCode {
    keep_large_allocations_returnable();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unexpected failure".to_owned());
        eprintln!("iops: internal error: {}", message.replace('\n', " "));
    }));

    // The S3 client brings rustls's aws-lc-rs provider next to the ring one the database
    // driver uses, and rustls refuses to guess between two: code that asks for "the
    // default" (sqlx's `sslmode=verify-ca`) would panic. One provider, once, before any
    // connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = api::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iops: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(api::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iops: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
