//! The process: configuration, telemetry, metrics, the router, startup and
//! graceful shutdown, and the healthcheck and maintenance (backup, restore,
//! new-epoch) subcommands. It wires the backend (`server`) into the app
//! (`app`); `main.rs` only reads the configuration and calls
//! [`startup::run`] (or a subcommand). Integration tests call [`startup::build`]
//! and [`startup::serve`] with a listener on port 0.

pub mod backup;
pub mod config;
pub mod healthcheck;
pub mod identity;
pub mod metrics;
pub mod net;
pub mod page_frames;
pub mod router;
pub mod routes;
pub mod security;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use router::AppState;
