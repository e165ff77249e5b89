//! Server functions (the page's RPC surface) and the error type they share
//! with the browser. One file per area.

mod error;
mod messages;

pub use error::ApiError;
pub use messages::*;
