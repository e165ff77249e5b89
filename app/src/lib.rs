//! The chat app: everything the browser and the server share (domain types,
//! server functions, components), plus the server-only modules behind `ssr`.

pub mod api;
pub mod browser;
pub mod domain;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod server;

pub use ui::{shell, App};
