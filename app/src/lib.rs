//! The chat app: everything the browser and the server share. Layers, each
//! importing only those below it: `ui` (components) -> `state` (the page's
//! live state and how server frames change it) -> `browser` (thin glue to
//! the socket, storage and clock) -> `domain` (plain types). `api` holds the
//! server functions and, under `ssr`, the narrow backend seam they call.

pub mod api;
pub mod browser;
pub mod domain;
pub mod state;
pub mod ui;

#[cfg(feature = "ssr")]
pub use ui::shell;
pub use ui::App;
