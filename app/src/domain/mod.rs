//! Plain types shared by the browser and the server: validated newtypes for
//! what users send, the stored [`Message`], the WebSocket frames, and the
//! small contracts both sides must agree on (the session cookie, the `/ws`
//! query, the typing intervals), each defined once here.
//! Both builds compile this module, so it must not depend on sqlx, tokio or axum.

mod contract;
mod frame;
mod message;
mod validate;
mod wire_time;

pub use contract::{
    WsQuery, SESSION_COOKIE, TYPING_RELAY_EVERY_MS, TYPING_SEND_EVERY_MS, TYPING_SHOWN_MS,
};
pub use frame::{ClientFrame, ServerFrame};
pub use message::{Message, MessageKind, Reaction, RoomSummary, REACTIONS};
pub use validate::{
    content_chars, MessageBody, NewPost, PostInput, RoomId, SenderName, ValidationError,
    ANNOUNCEMENTS, DEFAULT_ROOM, MAX_CONTENT_CHARS, MAX_ROOM_CHARS, MAX_SENDER_CHARS,
};
