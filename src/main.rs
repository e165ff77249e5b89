//! `chat`: read the configuration, then serve (or run a subcommand).

use std::process::ExitCode;

use chat::{
    config::{self, Invocation},
    healthcheck, startup, telemetry,
};

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
