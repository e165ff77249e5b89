//! Load generator and benchmark tool for the chat server. See
//! `loadtest --help` and docs/benchmarks.md.
//!
//! - `load`: N WebSocket clients on one room (on one or several instances),
//!   HTTP posts at a fixed total rate; every client timestamps each frame it
//!   reads against the moment the POST was issued (carried in the message
//!   content) and tracks which seqs it got, so loss, duplicates and
//!   reordering are exact.
//! - `idle`: N clients that only stay connected, to measure the server's
//!   memory per idle socket from /proc/<pid>/status.
//! - `write`: posts only, open loop, stored posts/s; `--verify` reads back.
//! - `resume`: a reconnect storm with `after=<last seq>`.
//! - `pages`: HTML page vs JSON API throughput.
//! - `first-load`: bytes a browser transfers for the page and its assets.
//! - `abuse`: a post (and frame) flooder beside a well-behaved client.
//! - `churn`: server memory after many subscribe/unsubscribe frames.

mod abuse;
mod chart;
mod churn;
mod cli;
mod client;
mod fanout;
mod firstload;
mod hist;
mod net;
mod pages;
mod resume;
mod stats;
mod sys;
mod write;

use std::{process::ExitCode, time::Duration};

use cli::{Cli, Mode};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(e) = sys::ensure_nofile(files_needed(&cli)) {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        rt.worker_threads(n as usize);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(async {
        match &cli.mode {
            Mode::Load(a) => fanout::load_mode(a).await,
            Mode::Idle(a) => fanout::idle_mode(a).await,
            Mode::Write(a) => write::write_mode(a).await,
            Mode::Resume(a) => resume::resume_mode(a).await,
            Mode::Pages(a) => pages::pages_mode(a).await,
            Mode::FirstLoad(a) => firstload::first_load_mode(a).await,
            Mode::Abuse(a) => abuse::abuse_mode(a).await,
            Mode::Churn(a) => churn::churn_mode(a).await,
        }
    });
    // Don't wait for stragglers (e.g. a close handshake that never finishes).
    rt.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

/// Sockets + HTTP connections + a margin for the runtime, stdio, DNS, probes.
fn files_needed(cli: &Cli) -> u64 {
    let most = |v: &[usize], d: usize| v.iter().copied().max().unwrap_or(d);
    let n = match &cli.mode {
        Mode::Load(a) => most(&a.sweep_clients, a.clients) + a.posters,
        Mode::Idle(a) => most(&a.sweep_clients, a.clients) + a.warmup,
        Mode::Write(a) => a.posters,
        Mode::Resume(a) => a.clients + a.posters,
        Mode::Pages(a) => a.concurrency + 16,
        Mode::FirstLoad(_) => 4,
        Mode::Abuse(a) => a.flood_concurrency + a.frame_flood.unwrap_or(0) + 16,
        Mode::Churn(a) => a.sockets,
    };
    n as u64 + 64
}
