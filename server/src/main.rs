//! The chat server binary: parse config, set up logging, run.

use std::process::ExitCode;

use server::{config::Config, healthcheck, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // A .env file is a development convenience; real env vars win.
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return if healthcheck::run(&config) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    telemetry::init(config.log_format, &config.log_filter, std::io::stdout);
    match server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
