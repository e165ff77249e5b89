//! Plain HTTP endpoints beside the Leptos pages: the JSON API (documented
//! as OpenAPI at `/api/openapi.json`), health, and the routes kept for
//! compatibility with the systems this app replaces. Sessions, names,
//! changes to messages and moderation are in `trust.rs`.

pub mod trust;

use std::time::Duration;

use app::{
    api::{
        http::{self, Peer},
        ApiError, Backend, Client,
    },
    domain::{Message, PostInput, RoomId},
};
use axum::{
    extract::{
        rejection::{FormRejection, JsonRejection, QueryRejection},
        Form, Query, State,
    },
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use server::store::ListQuery;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chat API",
        version = "1",
        description = "Messages of a real-time chat. Live messages stream over the \
                       WebSocket at /ws (see README). The same endpoints are also served \
                       at /messages (GET, POST) and /health/ for older clients."
    ),
    paths(
        list_messages,
        post_message,
        health,
        trust::create_session,
        trust::whoami,
        trust::set_name,
        trust::edit_message,
        trust::delete_message,
        trust::react,
        trust::ban
    ),
    components(schemas(
        Message,
        app::domain::MessageKind,
        app::domain::Reaction,
        app::api::Me,
        MessagesBody,
        PostBody,
        ErrorBody,
        HealthBody,
        trust::SessionBody,
        trust::NameBody,
        trust::EditBody,
        trust::ReactBody,
        trust::BanBody,
        trust::BannedBody
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Documents `Authorization: Bearer <token>` (from `POST /api/sessions`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "session",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The caller of a request: address and session, as the middleware found
/// them.
pub struct Caller(pub Client);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(Client {
            ip: parts.extensions.get::<Peer>().map(|p| p.ip),
            session: parts.extensions.get::<app::api::Session>().cloned(),
        }))
    }
}

/// `GET /api/openapi.json`
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Room name (default `lobby`).
    room: Option<String>,
    /// Only messages with a greater seq (oldest first): for resuming.
    after: Option<i64>,
    /// Only messages with a smaller seq: for loading older history.
    before: Option<i64>,
    /// 1-200 (default 50).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagesBody {
    /// Ascending by seq.
    messages: Vec<Message>,
    /// The database's epoch these seqs belong to. It changes when the
    /// database is restored from a backup: a client that resumed with
    /// `after` under another epoch must load the room afresh.
    epoch: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A readable explanation.
    error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, `unavailable` or `draining`.
    status: String,
    /// `ok`, `error`, `timeout` or `unknown`.
    db: String,
}

/// A page of a room, ascending by seq. With `after`, the oldest entries
/// after it, events (edits, deletions, reactions) included, for resuming;
/// otherwise the newest messages (before `before`, if given) in their
/// current state, without events.
#[utoipa::path(
    get,
    path = "/api/messages",
    params(ListParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagesBody),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid room name", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_messages(
    State(state): State<AppState>,
    Caller(from): Caller,
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
    // Resuming (`after`) gets the whole sequence, events included, so the
    // client converges; a history page gets messages in their current state.
    let query = ListQuery {
        room,
        after: p.after,
        before: p.before,
        limit,
        messages_only: p.after.is_none(),
        viewer: from.session.map(|s| s.author),
    };
    // Read first: a restore landing meanwhile shows up as the old epoch,
    // and the client learns of the new one on its next request.
    let epoch = state.chat.hub.epoch().to_string();
    let messages = state.chat.store.list(&query).await?;
    Ok(Json(MessagesBody { messages, epoch }))
}

/// A message to post: the JSON body of `POST /api/messages` and the form
/// fields of `POST /create/` alike.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostBody {
    /// 1-32 characters after trimming.
    sender: String,
    /// 1-2000 characters after trimming; no control characters but newline.
    content: String,
    /// Idempotency key (UUID); posting the same id again returns the stored message.
    id: Option<String>,
    /// Room name (default `lobby`).
    room: Option<String>,
}

impl From<PostBody> for PostInput {
    fn from(b: PostBody) -> Self {
        Self {
            room: b.room,
            sender: b.sender,
            content: b.content,
            id: b.id,
        }
    }
}

/// Stores a message; answers with it as stored. Posting the same `id` again
/// returns the same message (and 201 again), so retries are safe.
#[utoipa::path(
    post,
    path = "/api/messages",
    request_body = PostBody,
    responses(
        (status = 201, description = "Stored", body = Message),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No session, and guests may not post", body = ErrorBody),
        (status = 403, description = "The author is banned", body = ErrorBody),
        (status = 409, description = "The name is held by someone else", body = ErrorBody),
        (status = 422, description = "A rule was broken", body = ErrorBody),
        (status = 429, description = "Too many posts from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable; safe to retry", body = ErrorBody),
    )
)]
pub async fn post_message(
    State(state): State<AppState>,
    Caller(from): Caller,
    body: Result<Json<PostBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let post = PostInput::from(body).validate()?;
    let message = state.chat.post(post, from).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// `POST /create/`: the older app's plain form post (`sender`, `content`,
/// optionally `room`); redirects to the room's page, which shows the
/// message, or the error and the unsent text.
pub async fn create_form(
    State(state): State<AppState>,
    Caller(from): Caller,
    form: Result<Form<PostBody>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => return ApiError::BadRequest(e.body_text()).into_response(),
    };
    let content = form.content.clone();
    let page = match form.room.as_deref().map(str::trim) {
        Some(room) if !room.is_empty() => match RoomId::parse(room) {
            Ok(room) => format!("/r/{room}"),
            Err(_) => "/r/lobby".to_owned(),
        },
        _ => "/r/lobby".to_owned(),
    };
    let result = match PostInput::from(form).validate() {
        Ok(post) => state.chat.post(post, from).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => Redirect::to(&page).into_response(),
        Err(e) => Redirect::to(&http::error_location(&page, &e, &content)).into_response(),
    }
}

/// `GET /`: the lobby (a query string, such as an error and a draft, goes
/// along).
pub async fn home(uri: axum::http::Uri) -> Response {
    let location = match uri.query() {
        Some(query) => format!("/r/lobby?{query}"),
        None => "/r/lobby".to_owned(),
    };
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    room: Option<String>,
}

/// `GET /join?room=name`: the room form without JavaScript.
pub async fn join(Query(q): Query<JoinQuery>) -> Redirect {
    match RoomId::parse_typed(&q.room.unwrap_or_default()) {
        Ok(room) => Redirect::to(&format!("/r/{room}")),
        Err(e) => Redirect::to(&format!("/r/lobby?error={}", ApiError::from(e).code())),
    }
}

/// The database answers within 2 s (and the instance is not shutting down).
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "Healthy", body = HealthBody),
        (status = 503, description = "Database unreachable, or shutting down", body = HealthBody),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let unavailable = |db: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "db": db})),
        )
    };
    if state.chat.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining", "db": "unknown"})),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.chat.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok", "db": "ok"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "health check: database error");
            unavailable("error")
        }
        Err(_) => {
            tracing::warn!("health check: database timed out");
            unavailable("timeout")
        }
    }
}
