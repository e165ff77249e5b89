//! Posting a message: validate, store, then publish to the hub. Shared by the
//! server function, the JSON API and the broadcaster so every message takes
//! the same path.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    hub::Hub,
    store::{NewMessage, Store},
};
use crate::{
    api::ApiError,
    domain::{Message, MessageBody, MessageKind, RoomId, SenderName, ValidationError},
};

/// Raw input as it arrives from a form or JSON body.
#[derive(Debug, Clone, Default)]
pub struct PostInput {
    pub room: Option<String>,
    pub sender: String,
    pub content: String,
    pub id: Option<String>,
}

impl PostInput {
    pub fn validate(&self) -> Result<NewMessage, ValidationError> {
        let room = match self.room.as_deref().map(str::trim) {
            None | Some("") => RoomId::lobby(),
            Some(r) => RoomId::parse(r)?,
        };
        if room.is_announcements() {
            return Err(ValidationError::ReadOnlyRoom);
        }
        let id = match self.id.as_deref().map(str::trim) {
            None | Some("") => Uuid::new_v4(),
            Some(s) => Uuid::parse_str(s).map_err(|_| ValidationError::Id)?,
        };
        Ok(NewMessage {
            room,
            id,
            kind: MessageKind::User,
            sender: SenderName::parse(&self.sender)?,
            content: MessageBody::parse(&self.content)?,
        })
    }
}

/// Validates and stores a user's message; returns it as stored.
pub async fn post(
    store: &Arc<dyn Store>,
    hub: &Hub,
    input: PostInput,
) -> Result<Message, ApiError> {
    let new = input.validate()?;
    store_and_publish(store.clone(), hub.clone(), new).await
}

/// Stores `new` and hands the committed message to the hub. Runs in its own
/// task so that a client hanging up mid-request can never leave a committed
/// message unpublished.
pub async fn store_and_publish(
    store: Arc<dyn Store>,
    hub: Hub,
    new: NewMessage,
) -> Result<Message, ApiError> {
    let task = tokio::spawn(async move {
        let inserted = store.insert(new).await?;
        if inserted.created {
            metrics::counter!("messages_processed_total", "kind" => inserted.message.kind.as_str())
                .increment(1);
        }
        // With a commit bus (PostgreSQL) the hub hears it from there, like
        // every other instance: one path, one order.
        if !store.announces_commits() {
            hub.publish(inserted.message.clone());
        }
        Ok::<_, super::store::StoreError>(inserted.message)
    });
    match task.await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = ?e, "insert task failed");
            Err(ApiError::Internal)
        }
    }
}
