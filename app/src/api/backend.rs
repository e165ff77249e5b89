//! What the server functions need from the backend, and nothing more. The
//! `server` crate implements it; the binary hands an implementation to
//! every request as a Leptos context (`leptos_routes_with_context`), and
//! the caller's identity as a request extension ([`Session`]).

use std::sync::Arc;

use async_trait::async_trait;
use leptos::prelude::use_context;
use uuid::Uuid;

use super::{ApiError, Me};
use crate::domain::{Message, MessageBody, NewPost, RoomId, RoomSummary, SenderName};

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The newest `limit` messages of `room` (before `before`, if given),
    /// oldest first, in their current state; `viewer` marks their own
    /// reactions.
    async fn latest(
        &self,
        room: &RoomId,
        before: Option<i64>,
        limit: u32,
        viewer: Option<&str>,
    ) -> Result<Vec<Message>, ApiError>;
    /// The database's epoch (its identity, new after every restore): seqs
    /// are only comparable within one. Cached, cheap.
    fn epoch(&self) -> String;
    /// Rooms with recent activity, newest first.
    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, ApiError>;
    /// The caller, as the page needs to know them (and the rules that apply).
    fn me(&self, session: Option<&Session>) -> Me;
    /// Stores a post from `from` and fans it out; returns it as stored (the
    /// same message again for a repeated id). The name is taken for the
    /// poster's session ([`ApiError::Conflict`] if someone else holds it);
    /// without a session it posts as a guest, if guests may. Refused with
    /// [`ApiError::RateLimited`] when the client posts too fast.
    async fn post(&self, post: NewPost, from: Client) -> Result<Message, ApiError>;
    /// Takes `name` for the caller's session.
    async fn set_name(&self, name: SenderName, from: Client) -> Result<Me, ApiError>;
    /// Edits, deletes or reacts to the message with `id`; returns the event.
    async fn change(
        &self,
        id: Uuid,
        change: ChangeRequest,
        from: Client,
    ) -> Result<Message, ApiError>;
    /// Makes the caller a moderator if `token` is the moderator token.
    async fn become_moderator(&self, token: &str, from: Client) -> Result<Me, ApiError>;
    /// Bans `author` (moderators only); with `remove_recent`, also deletes
    /// their messages of the last 24 hours. Returns how many were deleted.
    async fn ban(&self, author: &str, remove_recent: bool, from: Client)
        -> Result<usize, ApiError>;
}

/// A change to a message.
#[derive(Debug, Clone)]
pub enum ChangeRequest {
    Edit(MessageBody),
    Delete,
    /// Toggles one of the fixed reactions.
    React(String),
}

/// The caller's session (a request extension the binary sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The public, opaque id their messages carry.
    pub author: String,
    pub name: Option<String>,
    pub moderator: bool,
}

/// Who is asking, as far as the server can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub ip: Option<std::net::IpAddr>,
    pub session: Option<Session>,
}

impl Client {
    /// The client of the current request (inside a server function).
    pub fn current() -> Self {
        let parts = use_context::<axum::http::request::Parts>();
        Self {
            ip: super::http::peer().map(|p| p.ip),
            session: parts.and_then(|p| p.extensions.get::<Session>().cloned()),
        }
    }
}

/// The form in which the backend travels as context.
pub type SharedBackend = Arc<dyn Backend>;

/// The backend inside a server function: an error (not a panic) if the
/// binary forgot to provide it.
pub fn backend() -> Result<SharedBackend, ApiError> {
    use_context::<SharedBackend>().ok_or_else(|| {
        tracing::error!("the backend is missing from the server function context");
        ApiError::Internal
    })
}
