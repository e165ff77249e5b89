//! `GET /ws?room=<room>&after=<seq>`: the live message stream.
//!
//! Protocol: first every stored message with seq > `after` (none without
//! `after`), then `{"type":"ready","room":..,"head":..}`, then live messages,
//! each exactly once and in seq order. The server pings every
//! `ws_ping_interval` and drops a peer that stays silent for two intervals.
//! A socket that falls more than the hub's capacity behind is closed with
//! code 1013 and resumes from the database when it reconnects.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    hub::Hub,
    store::{ListQuery, Store, MAX_PAGE},
    AppState,
};
use crate::{
    api::ApiError,
    domain::{Message, RoomId, ServerFrame},
};

/// Per-socket buffer sizes. axum's defaults (128 KiB each) would cost
/// ~134 KiB per idle connection; our frames are small.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;
/// Clients only send control frames and tiny JSON.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Close codes the client understands (all mean "reconnect and resume").
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TRY_AGAIN: u16 = 1013;

#[derive(Debug, Deserialize)]
pub struct WsParams {
    pub room: Option<String>,
    pub after: Option<i64>,
}

pub async fn ws_handler(
    State(state): State<AppState>,
    Query(params): Query<WsParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::Unavailable.into_response();
    }
    if !origin_allowed(&headers, &state.config.allowed_origins) {
        return ApiError::Forbidden("This origin may not open the chat stream.".into())
            .into_response();
    }
    let room = match params.room.as_deref() {
        None | Some("") => RoomId::lobby(),
        Some(r) => match RoomId::parse(r) {
            Ok(room) => room,
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if params.after.is_some_and(|a| a < 0) {
        return ApiError::BadRequest("`after` must be a seq (0 or more).".into()).into_response();
    }
    let ping = state.config.ws_ping_interval;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let session_id = uuid::Uuid::new_v4().simple().to_string();
            let span = tracing::info_span!("ws", session_id, request_id, room_id = %room);
            let session = Session {
                room,
                after: params.after,
                ping_interval: ping,
                shutdown: state.shutdown.clone(),
            };
            async move {
                let started = std::time::Instant::now();
                tracing::info!(after = ?session.after, "websocket connected");
                metrics::counter!("websocket_connects_total").increment(1);
                let end =
                    serve_socket(socket, state.hub.clone(), state.store.clone(), session).await;
                metrics::counter!("websocket_disconnects_total", "reason" => end.as_str())
                    .increment(1);
                tracing::info!(
                    reason = end.as_str(),
                    secs = started.elapsed().as_secs(),
                    "websocket closed"
                );
            }
            .instrument(span)
        })
}

/// An `Origin` is accepted when it is the page's own host or in the
/// allow-list. Requests without one (not from a browser) are accepted: the
/// check exists to stop other sites' pages from reading the stream.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

/// What a socket is about.
#[derive(Debug, Clone)]
pub struct Session {
    pub room: RoomId,
    pub after: Option<i64>,
    pub ping_interval: Duration,
    /// Cancelled when the server shuts down: close with 1001.
    pub shutdown: CancellationToken,
}

/// Why a socket loop ended (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    PeerGone,
    Lagged,
    StoreFailed,
    HubClosed,
    Shutdown,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::PeerGone => "peer_gone",
            End::Lagged => "slow_client",
            End::StoreFailed => "database_unavailable",
            End::HubClosed | End::Shutdown => "server_shutdown",
        }
    }
}

/// Runs one client's stream until it ends. Generic over the socket so tests
/// can drive it with channels.
pub async fn serve_socket<S, E>(
    mut socket: S,
    hub: Hub,
    store: Arc<dyn Store>,
    session: Session,
) -> End
where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
{
    let room = session.room.clone();
    // Subscribe first: anything committed from now on reaches `live`.
    let mut live = hub.subscribe(&room);
    let mut last = match session.after {
        Some(after) => match replay(&mut socket, &*store, &room, after, i64::MAX).await {
            Ok(last) => {
                metrics::counter!("websocket_resumes_total").increment(1);
                metrics::histogram!("websocket_resume_replayed_messages")
                    .record((last - after) as f64);
                last
            }
            Err(end) => return close(&mut socket, end).await,
        },
        None => match store.head(&room).await {
            Ok(head) => head,
            Err(_) => return close(&mut socket, End::StoreFailed).await,
        },
    };
    let ready = ServerFrame::Ready {
        room: room.to_string(),
        head: last,
    };
    let ready = serde_json::to_string(&ready).expect("ready frame serialises");
    if socket.send(WsMessage::Text(ready.into())).await.is_err() {
        return End::PeerGone;
    }
    hub.seen(&room, last);

    let mut ping = tokio::time::interval(session.ping_interval);
    ping.tick().await; // the first tick is immediate
    let mut heard_since_ping = true;
    loop {
        tokio::select! {
            frame = live.recv() => match frame {
                Ok(frame) if frame.seq <= last => {}
                Ok(frame) => {
                    if frame.seq > last + 1 {
                        // A gap (e.g. we joined between the hub's reads): read it.
                        if let Err(end) = replay(&mut socket, &*store, &room, last, frame.seq).await {
                            return close(&mut socket, end).await;
                        }
                    }
                    if socket.send(WsMessage::Text(frame.text)).await.is_err() {
                        return End::PeerGone;
                    }
                    last = frame.seq;
                }
                Err(RecvError::Lagged(_)) => return close(&mut socket, End::Lagged).await,
                Err(RecvError::Closed) => return close(&mut socket, End::HubClosed).await,
            },
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None => return End::ClientClosed,
                Some(Ok(_)) => heard_since_ping = true,
                Some(Err(_)) => return End::PeerGone,
            },
            _ = session.shutdown.cancelled() => return close(&mut socket, End::Shutdown).await,
            _ = ping.tick() => {
                if !heard_since_ping {
                    return End::PeerGone;
                }
                heard_since_ping = false;
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return End::PeerGone;
                }
            }
        }
    }
}

/// Sends stored messages with `after < seq < before`; returns the last seq sent
/// (or `after` if none).
async fn replay<S>(
    socket: &mut S,
    store: &dyn Store,
    room: &RoomId,
    after: i64,
    before: i64,
) -> Result<i64, End>
where
    S: Sink<WsMessage> + Unpin,
{
    let mut last = after;
    loop {
        let query = ListQuery {
            room: room.clone(),
            after: Some(last),
            before: Some(before),
            limit: MAX_PAGE,
        };
        let page: Vec<Message> = store.list(&query).await.map_err(|_| End::StoreFailed)?;
        for message in &page {
            let text = serde_json::to_string(&ServerFrame::Message(message.clone()))
                .expect("a message always serialises");
            socket
                .send(WsMessage::Text(text.into()))
                .await
                .map_err(|_| End::PeerGone)?;
            last = message.seq;
        }
        if page.len() < MAX_PAGE as usize {
            return Ok(last);
        }
    }
}

/// Sends a close frame saying why (best effort) and returns `end`.
async fn close<S>(socket: &mut S, end: End) -> End
where
    S: Sink<WsMessage> + Unpin,
{
    let (code, reason) = match end {
        End::Lagged => (CLOSE_TRY_AGAIN, "too far behind; reconnect to resume"),
        End::StoreFailed => (CLOSE_TRY_AGAIN, "database unavailable; reconnect to resume"),
        End::HubClosed | End::Shutdown => (
            CLOSE_GOING_AWAY,
            "server shutting down; reconnect to resume",
        ),
        End::ClientClosed | End::PeerGone => return end,
    };
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(WsMessage::Close(Some(frame))).await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn origin_check() {
        assert!(origin_allowed(&headers(None, "chat.example"), &[]));
        assert!(origin_allowed(
            &headers(Some("https://chat.example"), "chat.example"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "chat.example"),
            &[]
        ));
        let allowed = vec!["https://app.example".to_string()];
        assert!(origin_allowed(
            &headers(Some("https://app.example"), "chat.example"),
            &allowed
        ));
    }
}
