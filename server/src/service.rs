//! Posting a message: store it, nothing more. The commit feed brings it to
//! every hub (this instance's included), so posting never talks to the hub.
//! Shared by the server functions, the JSON API and the broadcaster so every
//! message takes the same path.

use std::sync::Arc;

use app::{
    api::ApiError,
    domain::{Message, MessageKind, NewPost},
};
use uuid::Uuid;

use crate::store::{NewMessage, Store};

/// Stores a person's validated post (`author`: their public id, `None`
/// for a guest); returns it as stored.
pub async fn post(
    store: &Arc<dyn Store>,
    post: NewPost,
    author: Option<String>,
) -> Result<Message, ApiError> {
    let new = NewMessage {
        room: post.room,
        id: post.id.unwrap_or_else(Uuid::new_v4),
        kind: MessageKind::User,
        sender: post.sender,
        content: post.content,
        author,
    };
    insert(store.clone(), new).await
}

/// Stores `new` in a task of its own, so that a client hanging up
/// mid-request can never leave a commit half-announced.
pub async fn insert(store: Arc<dyn Store>, new: NewMessage) -> Result<Message, ApiError> {
    let task = tokio::spawn(async move {
        let inserted = store.insert(new).await?;
        if inserted.created {
            metrics::counter!("messages_processed_total", "kind" => inserted.message.kind.as_str())
                .increment(1);
        }
        Ok::<_, crate::store::StoreError>(inserted.message)
    });
    match task.await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = ?e, "insert task failed");
            Err(ApiError::Internal)
        }
    }
}
