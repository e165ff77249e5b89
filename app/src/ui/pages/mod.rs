//! Routed pages.

mod moderate;
mod not_found;
mod room;

pub use moderate::ModeratePage;
pub use not_found::NotFound;
pub use room::RoomPage;
