//! Plain HTTP endpoints beside the Leptos pages: the JSON API and health.

use std::time::Duration;

use app::{
    api::ApiError,
    domain::{Message, RoomId},
    server::{service, store::ListQuery, AppState},
};
use axum::{
    extract::{rejection::JsonRejection, rejection::QueryRejection, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    room: Option<String>,
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct MessagesBody {
    messages: Vec<Message>,
}

/// `GET /api/messages?room=&after=&before=&limit=`: a page of messages,
/// ascending by seq. With `after`, the oldest after it; otherwise the newest.
pub async fn list_messages(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<MessagesBody>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let room = match p.room.as_deref() {
        None | Some("") => RoomId::lobby(),
        Some(r) => RoomId::parse(r)?,
    };
    let limit = p.limit.unwrap_or(app::api::PAGE_SIZE);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 200.".into(),
        ));
    }
    if p.after.is_some_and(|a| a < 0) || p.before.is_some_and(|b| b < 0) {
        return Err(ApiError::BadRequest(
            "`after` and `before` must be seqs (0 or more).".into(),
        ));
    }
    let query = ListQuery {
        room,
        after: p.after,
        before: p.before,
        limit,
    };
    let messages = state.store.list(&query).await?;
    Ok(Json(MessagesBody { messages }))
}

#[derive(Debug, Deserialize)]
pub struct PostBody {
    sender: String,
    content: String,
    id: Option<String>,
    room: Option<String>,
}

/// `POST /api/messages`: stores a message; 201 with it as stored. Posting
/// the same `id` again returns the same message (and 201 again).
pub async fn post_message(
    State(state): State<AppState>,
    body: Result<Json<PostBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let input = service::PostInput {
        room: body.room,
        sender: body.sender,
        content: body.content,
        id: body.id,
    };
    let message = service::post(&state.store, &state.hub, input).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// `GET /health`: 200 when the database answers within 2 s, else 503.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok", "db": "ok"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "health check: database error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "db": "error"})),
            )
        }
        Err(_) => {
            tracing::warn!("health check: database timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "db": "timeout"})),
            )
        }
    }
}
