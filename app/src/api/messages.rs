//! Server functions for reading and posting messages.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, Me};

use crate::domain::{Message, RoomSummary};

/// Messages shown when a room page first renders, and per history page.
pub const PAGE_SIZE: u32 = 50;
/// Recent announcements (broadcasts) shown with a room.
pub const ANNOUNCEMENTS_SHOWN: u32 = 10;
/// Rooms in the room list.
pub const ROOMS_LISTED: u32 = 50;

/// What the room page needs to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub room: String,
    /// The latest messages, oldest first.
    pub messages: Vec<Message>,
    /// The latest announcements (server broadcasts), oldest first.
    pub announcements: Vec<Message>,
    /// Who is looking: their author id (to mark their own messages), the
    /// name their session holds, whether they moderate.
    pub me: Me,
    /// A fresh id for the no-JS form, so a double submit stores one message.
    pub form_id: Uuid,
    /// The database's epoch these seqs belong to: when the live connection
    /// reports another, the database was restored and the page reloads the
    /// room instead of resuming after its last seq.
    pub epoch: String,
}

/// A page of history, and the database epoch its seqs belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Oldest first.
    pub messages: Vec<Message>,
    pub epoch: String,
}

#[server(endpoint = "load_room", output = crate::api::codec::Json)]
pub async fn load_room(room: String) -> Result<RoomSnapshot, ApiError> {
    use super::{backend, http, Client};
    // Rendering a room's frame: the reads were made for it.
    if let Some(template) = super::frame_template() {
        return Ok(template.snapshot.clone());
    }
    let backend = backend()?;
    let room_id =
        crate::domain::RoomId::parse(&room).inspect_err(|_| http::set_status_code(404))?;
    read_room(&*backend, room_id, Client::current().session.as_ref()).await
}

/// What `viewer` sees of `room` when its page opens: the reads behind
/// [`load_room`], also made for a page frame ([`super::FrameTemplate`]).
#[cfg(feature = "ssr")]
pub async fn read_room(
    backend: &dyn super::Backend,
    room: crate::domain::RoomId,
    session: Option<&super::Session>,
) -> Result<RoomSnapshot, ApiError> {
    use crate::domain::RoomId;
    let viewer = session.map(|s| s.author.as_str());
    // Read first: if a restore lands between this and the reads below, the
    // page holds the old epoch and reloads when its socket reports the new.
    let epoch = backend.epoch();
    let messages = backend.latest(&room, None, PAGE_SIZE, viewer).await?;
    let announcements = backend
        .latest(&RoomId::announcements(), None, ANNOUNCEMENTS_SHOWN, None)
        .await?;
    Ok(RoomSnapshot {
        room: room.as_str().to_owned(),
        messages,
        announcements,
        me: backend.me(session),
        form_id: Uuid::new_v4(),
        epoch,
    })
}

/// Whether a room opened with these (its newest) messages has older ones.
pub fn has_older(messages: &[Message]) -> bool {
    messages.len() >= PAGE_SIZE as usize && messages.first().is_some_and(|m| m.seq > 1)
}

/// Up to [`PAGE_SIZE`] messages before `before`, oldest first (history;
/// `i64::MAX` for the newest page), with the epoch they belong to: a page
/// from another epoch than the page's must not be mixed in.
#[server(endpoint = "older_messages", output = crate::api::codec::Json)]
pub async fn older_messages(room: String, before: i64) -> Result<History, ApiError> {
    let room = crate::domain::RoomId::parse(&room)?;
    let session = super::Client::current().session;
    let backend = super::backend()?;
    let epoch = backend.epoch();
    let messages = backend
        .latest(
            &room,
            Some(before),
            PAGE_SIZE,
            session.as_ref().map(|s| s.author.as_str()),
        )
        .await?;
    Ok(History { messages, epoch })
}

/// Rooms with recent activity, newest first.
#[server(endpoint = "list_rooms", output = crate::api::codec::Json)]
pub async fn list_rooms() -> Result<Vec<RoomSummary>, ApiError> {
    if let Some(template) = super::frame_template() {
        return Ok(template.rooms.clone());
    }
    super::backend()?.rooms(ROOMS_LISTED).await
}

/// Posts a message. Called from the page's WASM, or as the `action` of the
/// plain HTML form when WASM is not (yet) running: then it answers with a
/// redirect back to the page, carrying any error and the unsent text.
#[server(endpoint = "post_message", output = crate::api::codec::Json)]
pub async fn post_message(
    room: String,
    sender: String,
    content: String,
    id: Option<String>,
) -> Result<Message, ApiError> {
    use super::{backend, http};
    use crate::domain::{PostInput, RoomId};
    let backend = backend()?;
    let plain_form = http::is_plain_form();
    let page = RoomId::parse(&room)
        .map(|r| format!("/r/{r}"))
        .unwrap_or_else(|_| "/".to_owned());
    let input = PostInput {
        room: Some(room),
        sender,
        content: content.clone(),
        id,
    };
    let result = match input.validate() {
        Ok(post) => backend.post(post, super::Client::current()).await,
        Err(e) => Err(e.into()),
    };
    match &result {
        Ok(_) if plain_form => leptos_axum::redirect(&page, false),
        Ok(_) => {}
        Err(e) => {
            http::set_status(e);
            if plain_form {
                leptos_axum::redirect(&http::error_location(&page, e, &content), false);
            }
        }
    }
    result
}
