//! What the server functions need from the backend, and nothing more. The
//! `server` crate implements it; the binary hands an implementation to
//! every request as a Leptos context (`leptos_routes_with_context`).

use std::sync::Arc;

use async_trait::async_trait;
use leptos::prelude::use_context;

use super::ApiError;
use crate::domain::{Message, NewPost, RoomId, RoomSummary};

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The newest `limit` messages of `room` (before `before`, if given),
    /// oldest first.
    async fn latest(
        &self,
        room: &RoomId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, ApiError>;
    /// Rooms with recent activity, newest first.
    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, ApiError>;
    /// Stores a post from `from` and fans it out; returns it as stored (the
    /// same message again for a repeated id). Refused with
    /// [`ApiError::RateLimited`] when the client posts too fast.
    async fn post(&self, post: NewPost, from: Client) -> Result<Message, ApiError>;
}

/// Who is posting, as far as the server can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    pub ip: Option<std::net::IpAddr>,
}

impl Client {
    /// The client of the current request (inside a server function).
    pub fn current() -> Self {
        Self {
            ip: super::http::peer().map(|p| p.ip),
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
