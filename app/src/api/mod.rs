//! Server functions (the page's RPC surface), the error type they share
//! with the browser, and, on the server only, the narrow [`Backend`] seam
//! they call: the binary provides an implementation as context, so this
//! crate never sees storage, fan-out or sockets. One file per area.

#[cfg(feature = "ssr")]
mod backend;
mod codec;
mod error;
#[cfg(feature = "ssr")]
mod frame_template;
#[cfg(feature = "ssr")]
pub mod http;
mod identity;
mod messages;

#[cfg(feature = "ssr")]
pub use backend::{backend, Backend, ChangeRequest, Client, Session, SharedBackend};
pub use error::{ApiError, NAME_IN_USE};
#[cfg(feature = "ssr")]
pub use frame_template::{frame_template, note_frame_nonce, FrameTemplate};
pub use identity::*;
pub use messages::*;
