//! Fan-out on this instance: the [`hub`] sends each committed message to the
//! sockets that follow its room, each WebSocket [`socket`] session serves one
//! page, and [`presence`] tracks who is here (and typing) across instances.

pub mod hub;
pub mod presence;
pub mod socket;
