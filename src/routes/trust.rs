//! Who said it, and taking it back: API sessions, names, edits, deletions,
//! reactions and bans. The rules live in the backend; these handlers only
//! translate HTTP. Errors are `{"error"}` with 401, 403, 404, 409, 422 or
//! 429 as the README lists.

use app::{
    api::{ApiError, Backend, ChangeRequest, Me},
    domain::{Message, MessageBody, SenderName, ValidationError},
};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, ErrorBody};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    /// Send as `Authorization: Bearer <token>`. Shown once; keep it secret.
    token: String,
    /// The public id your messages will carry.
    author: String,
}

/// A session for an API client. Its token is shown only here.
#[utoipa::path(
    post,
    path = "/api/sessions",
    responses(
        (status = 201, description = "A new session", body = SessionBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<SessionBody>), ApiError> {
    let (token, session) = state.chat.identities.create().await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionBody {
            token,
            author: session.author,
        }),
    ))
}

/// Who you are: your author id, the name your session holds, whether you
/// moderate (all empty without a session).
#[utoipa::path(
    get,
    path = "/api/session",
    responses((status = 200, description = "The caller", body = Me)),
    security(("session" = []))
)]
pub async fn whoami(State(state): State<AppState>, Caller(from): Caller) -> Json<Me> {
    Json(state.chat.me(from.session.as_ref()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NameBody {
    /// 1-32 characters; compared with others after NFKC and case folding.
    name: String,
}

/// Takes a name for your session: it stays yours for `NAME_HOLD_DAYS` after
/// you last use it.
#[utoipa::path(
    put,
    path = "/api/session/name",
    request_body = NameBody,
    responses(
        (status = 200, description = "The name is yours", body = Me),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "Someone else holds the name", body = ErrorBody),
        (status = 422, description = "Not a valid name", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn set_name(
    State(state): State<AppState>,
    Caller(from): Caller,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<Me>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let name = SenderName::parse(&body.name)?;
    Ok(Json(state.chat.set_name(name, from).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    /// The new text (1-2000 characters).
    content: String,
}

fn message_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ValidationError::Id.into())
}

/// Edits your message (within `EDIT_WINDOW_SECS` of posting). Answers with
/// the `edit` event, which every client also receives.
#[utoipa::path(
    patch,
    path = "/api/messages/{id}",
    params(("id" = String, Path, description = "The message's id")),
    request_body = EditBody,
    responses(
        (status = 200, description = "The edit event", body = Message),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not your message, or you are banned", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "The edit window has passed, or the message was deleted", body = ErrorBody),
        (status = 422, description = "Not valid text, or not a message that can change", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn edit_message(
    State(state): State<AppState>,
    Caller(from): Caller,
    Path(id): Path<String>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Json<Message>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body = MessageBody::parse(&body.content)?;
    let event = state
        .chat
        .change(message_id(&id)?, ChangeRequest::Edit(body), from)
        .await?;
    Ok(Json(event))
}

/// Deletes a message: your own at any time, anyone's as a moderator. It
/// stays in the room as a tombstone without its text.
#[utoipa::path(
    delete,
    path = "/api/messages/{id}",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The delete event", body = Message),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not yours and you do not moderate", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "Already deleted", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn delete_message(
    State(state): State<AppState>,
    Caller(from): Caller,
    Path(id): Path<String>,
) -> Result<Json<Message>, ApiError> {
    let event = state
        .chat
        .change(message_id(&id)?, ChangeRequest::Delete, from)
        .await?;
    Ok(Json(event))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactBody {
    /// One of 👍 ❤️ 😂 🎉 😮 😢.
    emoji: String,
}

/// Toggles your reaction: adds it (a `react` event) or, if you had it,
/// takes it back (`unreact`). The event carries the message's reaction
/// counts after the change.
#[utoipa::path(
    post,
    path = "/api/messages/{id}/reactions",
    params(("id" = String, Path, description = "The message's id")),
    request_body = ReactBody,
    responses(
        (status = 200, description = "The react or unreact event", body = Message),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "You are banned", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "The message was deleted", body = ErrorBody),
        (status = 422, description = "Not one of the reactions", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn react(
    State(state): State<AppState>,
    Caller(from): Caller,
    Path(id): Path<String>,
    body: Result<Json<ReactBody>, JsonRejection>,
) -> Result<Json<Message>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let event = state
        .chat
        .change(message_id(&id)?, ChangeRequest::React(body.emoji), from)
        .await?;
    Ok(Json(event))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BanBody {
    /// The author id to ban (from their messages' `author`).
    author: String,
    /// Also delete their messages of the last 24 hours.
    #[serde(default)]
    remove_recent: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BannedBody {
    /// How many of their messages were deleted.
    removed: usize,
}

/// Bans an author (moderators only): their posts and frames are refused and
/// their open sockets, on every instance, are closed with 1008.
#[utoipa::path(
    post,
    path = "/api/bans",
    request_body = BanBody,
    responses(
        (status = 200, description = "Banned", body = BannedBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn ban(
    State(state): State<AppState>,
    Caller(from): Caller,
    body: Result<Json<BanBody>, JsonRejection>,
) -> Result<Json<BannedBody>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let removed = state
        .chat
        .ban(body.author.trim(), body.remove_recent, from)
        .await?;
    Ok(Json(BannedBody { removed }))
}
