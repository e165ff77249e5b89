//! Plain types shared by the browser and the server: validated newtypes for
//! what users send, the stored [`Message`], and the WebSocket frames.
//! Both builds compile this module, so it must not depend on sqlx, tokio or axum.

mod frame;
mod message;
mod validate;

pub use frame::{ClientFrame, ServerFrame};
pub use message::{Message, MessageKind, RoomSummary};
pub use validate::{
    content_chars, MessageBody, RoomId, SenderName, ValidationError, ANNOUNCEMENTS, DEFAULT_ROOM,
    MAX_CONTENT_CHARS, MAX_ROOM_CHARS, MAX_SENDER_CHARS,
};
