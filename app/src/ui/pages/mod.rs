//! Routed pages.

mod not_found;
mod room;

pub use not_found::NotFound;
pub use room::RoomPage;
