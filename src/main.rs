//! `chat`: read the configuration, then serve (or run a subcommand).

use std::process::ExitCode;

use std::future::Future;

use chat::{
    backup,
    config::{self, Invocation},
    healthcheck, startup, telemetry,
};

/// jemalloc instead of glibc's malloc: the room page renders 42 % more
/// requests/s (allocation was a quarter of its CPU) and an idle WebSocket
/// costs 3.6 KiB instead of 3.8 (docs/benchmarks.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // A .env file is a development convenience; real env vars win. Both are
    // read before any thread starts.
    let _ = dotenvy::dotenv();
    let invocation = match config::from_env() {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match invocation {
        Invocation::Print(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Invocation::Healthcheck(args) => {
            if healthcheck::run(args.listen.addr()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Invocation::Backup(args) => maintain(backup::backup(&args)),
        Invocation::Restore(args) => maintain(backup::restore(&args)),
        Invocation::NewEpoch(args) => maintain(backup::new_epoch(&args)),
        Invocation::Serve(config) => {
            telemetry::init(config.log_format, &config.rust_log, std::io::stdout);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("the async runtime starts");
            match runtime.block_on(startup::run(*config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server stopped");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs a maintenance command (backup, restore, new epoch): one line on
/// success, the reason on failure.
fn maintain(
    command: impl Future<Output = Result<String, server::store::backup::BackupError>>,
) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    match runtime.block_on(command) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
