//! Server-only parts of the app (compiled with the `ssr` feature): state,
//! storage, the realtime hub, the WebSocket loop, the posting service, and
//! the multi-instance pieces (commit bus, broadcast leader, presence).
//! Server functions in `api/` reach these through [`state()`].

pub mod broadcaster;
pub mod bus;
pub mod error;
pub mod hub;
pub mod leader;
pub mod presence;
pub mod service;
pub mod state;
pub mod store;
pub mod web;
pub mod ws;

pub use state::{state, AppState, ChatConfig};
