//! `GET /ws?room=<room>&after=<seq>`: the live stream of one page.
//!
//! A socket follows one or more rooms (at most [`MAX_SUBSCRIPTIONS`]): the
//! one in the URL, and any the client adds with
//! `{"type":"subscribe","room":..,"after":..}` (and drops with
//! `{"type":"unsubscribe","room":..}`). For each subscription the server
//! first sends every stored message with seq > `after` (none without
//! `after`), then `{"type":"ready","room":..,"head":..}` and the room's
//! presence, then live messages, each exactly once and in seq order per
//! room, plus ephemeral `presence` and `typing` frames. Clients name
//! themselves with `{"type":"hello","name":..}` and signal typing with
//! `{"type":"typing","room":..}` (throttled here too). The server pings every
//! `ws_ping_interval` and drops a peer silent for two intervals. A socket more
//! than the hub's capacity behind is closed with 1013; on shutdown sockets are
//! closed with 1001. Both mean: reconnect and resume.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use app::{
    api::ApiError,
    domain::{ClientFrame, RoomId, SenderName, ServerFrame, WsQuery, TYPING_RELAY_EVERY_MS},
};
use axum::{
    extract::{
        ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Extension,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio_stream::{
    wrappers::{errors::BroadcastStreamRecvError, BroadcastStream},
    StreamMap,
};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::RequestId;
use tracing::Instrument;

use super::{
    hub::{Frame, Hub},
    presence::Presence,
};
use crate::{
    store::{Pages, Store},
    Chat,
};

/// Per-socket buffer sizes. axum's defaults (128 KiB each) would cost
/// ~134 KiB per idle connection; our frames are small (buffers grow for a
/// bigger one), and a zero write buffer writes each frame through at once.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 0;
/// Clients only send control frames and tiny JSON.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// Rooms one socket may follow at once (a page follows two).
pub const MAX_SUBSCRIPTIONS: usize = 8;
/// Typing signals relayed per socket, at most one per this interval.
const TYPING_INTERVAL: Duration = Duration::from_millis(TYPING_RELAY_EVERY_MS);

/// Close codes the client understands (all mean "reconnect and resume").
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TRY_AGAIN: u16 = 1013;

/// `GET /ws`: checks the request, then upgrades and serves the socket.
pub async fn handler(
    State(chat): State<Chat>,
    Query(params): Query<WsQuery>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if chat.shutdown.is_cancelled() {
        return ApiError::Unavailable.into_response();
    }
    if !origin_allowed(&headers, &chat.sockets.allowed_origins) {
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
    let request_id = request_id
        .as_ref()
        .and_then(|Extension(id)| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let session = Session {
        room,
        after: params.after,
        ping_interval: chat.sockets.ping_interval,
        shutdown: chat.shutdown.clone(),
    };
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let session_id = uuid::Uuid::new_v4().simple().to_string();
            let span = tracing::info_span!("ws", session_id, request_id, room_id = %session.room);
            let sessions = chat.sessions.clone();
            sessions.track_future(
                async move {
                    let _open = chat.hub.connection();
                    let started = Instant::now();
                    tracing::info!(after = ?session.after, "websocket connected");
                    metrics::counter!("websocket_connects_total").increment(1);
                    let deps = Deps {
                        hub: chat.hub.clone(),
                        store: chat.store.clone(),
                        presence: chat.presence.clone(),
                    };
                    let end = serve_socket(socket, deps, session).await;
                    metrics::counter!("websocket_disconnects_total", "reason" => end.as_str())
                        .increment(1);
                    tracing::info!(
                        reason = end.as_str(),
                        secs = started.elapsed().as_secs(),
                        "websocket closed"
                    );
                }
                .instrument(span),
            )
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
    /// The room in the URL, followed from the start.
    pub room: RoomId,
    pub after: Option<i64>,
    pub ping_interval: Duration,
    /// Cancelled when the server shuts down: close with 1001.
    pub shutdown: CancellationToken,
}

/// What a socket talks to.
#[derive(Clone)]
pub struct Deps {
    pub hub: Hub,
    pub store: Arc<dyn Store>,
    pub presence: Presence,
}

/// Why a socket loop ended (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    PeerGone,
    Lagged,
    StoreFailed,
    Shutdown,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::PeerGone => "peer_gone",
            End::Lagged => "slow_client",
            End::StoreFailed => "database_unavailable",
            End::Shutdown => "server_shutdown",
        }
    }
}

/// One socket's rooms: live frames, and the last seq sent per room.
struct Subscriptions {
    streams: StreamMap<RoomId, BroadcastStream<Frame>>,
    last: HashMap<RoomId, i64>,
    name: Option<String>,
}

/// Runs one client's stream until it ends. Generic over the socket so tests
/// can drive it with channels.
pub async fn serve_socket<S, E>(mut socket: S, deps: Deps, session: Session) -> End
where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
{
    let mut subs = Subscriptions {
        streams: StreamMap::new(),
        last: HashMap::new(),
        name: None,
    };
    let end = run(&mut socket, &deps, &session, &mut subs).await;
    for room in subs.last.keys() {
        deps.presence.leave(room, subs.name.as_deref());
    }
    match end {
        End::Lagged | End::StoreFailed | End::Shutdown => close(&mut socket, end).await,
        End::ClientClosed | End::PeerGone => end,
    }
}

async fn run<S, E>(socket: &mut S, deps: &Deps, session: &Session, subs: &mut Subscriptions) -> End
where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
{
    // Rare paths are boxed so the long-lived socket future stays small.
    let first = Box::pin(subscribe(
        socket,
        deps,
        subs,
        session.room.clone(),
        session.after,
    ));
    if let Err(end) = first.await {
        return end;
    }
    let mut ping = tokio::time::interval(session.ping_interval);
    ping.tick().await; // the first tick is immediate
    let mut heard_since_ping = true;
    let mut last_typing: Option<Instant> = None;
    loop {
        tokio::select! {
            Some((room, item)) = subs.streams.next() => match item {
                Ok(frame) => {
                    if let Err(end) = forward(socket, deps, subs, &room, frame).await {
                        return end;
                    }
                }
                Err(BroadcastStreamRecvError::Lagged(_)) => return End::Lagged,
            },
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None => return End::ClientClosed,
                Some(Ok(WsMessage::Text(text))) => {
                    heard_since_ping = true;
                    let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) else { continue };
                    if let Err(end) = Box::pin(handle(socket, deps, subs, frame, &mut last_typing)).await {
                        return end;
                    }
                }
                Some(Ok(_)) => heard_since_ping = true,
                Some(Err(_)) => return End::PeerGone,
            },
            _ = session.shutdown.cancelled() => return End::Shutdown,
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

/// Sends a live frame, keeping each room's messages gapless and in order.
async fn forward<S>(
    socket: &mut S,
    deps: &Deps,
    subs: &mut Subscriptions,
    room: &RoomId,
    frame: Frame,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    if let Some(seq) = frame.seq {
        let last = subs.last.get(room).copied().unwrap_or(0);
        if seq <= last {
            return Ok(());
        }
        if seq > last + 1 {
            // A gap (e.g. we joined between the hub's reads): read it.
            Box::pin(replay(socket, &*deps.store, room, last, seq)).await?;
        }
        subs.last.insert(room.clone(), seq);
    }
    send_text(socket, frame.text).await
}

async fn handle<S>(
    socket: &mut S,
    deps: &Deps,
    subs: &mut Subscriptions,
    frame: ClientFrame,
    last_typing: &mut Option<Instant>,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    match frame {
        ClientFrame::Subscribe { room, after } => match RoomId::parse(&room) {
            Ok(room) if after.is_some_and(|a| a < 0) => {
                refuse(
                    socket,
                    format!("`after` must be a seq (0 or more) for {room}."),
                )
                .await
            }
            Ok(room) if !subs.last.contains_key(&room) && subs.last.len() >= MAX_SUBSCRIPTIONS => {
                refuse(
                    socket,
                    format!("At most {MAX_SUBSCRIPTIONS} rooms per connection."),
                )
                .await
            }
            Ok(room) => {
                unsubscribe(deps, subs, &room);
                subscribe(socket, deps, subs, room, after).await
            }
            Err(e) => refuse(socket, e.to_string()).await,
        },
        ClientFrame::Unsubscribe { room } => {
            if let Ok(room) = RoomId::parse(&room) {
                unsubscribe(deps, subs, &room);
            }
            Ok(())
        }
        ClientFrame::Hello { name } => {
            let name = SenderName::parse(&name).ok().map(|n| n.as_str().to_owned());
            if name != subs.name {
                for room in subs.last.keys() {
                    deps.presence.leave(room, subs.name.as_deref());
                    deps.presence.join(room, name.as_deref());
                }
                subs.name = name;
            }
            Ok(())
        }
        ClientFrame::Typing { room } => {
            let Ok(room) = RoomId::parse(&room) else {
                return Ok(());
            };
            let recent = last_typing.is_some_and(|t| t.elapsed() < TYPING_INTERVAL);
            if let (Some(name), false, true) = (&subs.name, recent, subs.last.contains_key(&room)) {
                *last_typing = Some(Instant::now());
                deps.presence.typing(&room, name);
            }
            Ok(())
        }
        ClientFrame::Ping => Ok(()),
    }
}

/// Follows `room`: backlog after `after` (or nothing), `ready`, presence.
async fn subscribe<S>(
    socket: &mut S,
    deps: &Deps,
    subs: &mut Subscriptions,
    room: RoomId,
    after: Option<i64>,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    // Subscribe first: anything committed from now on reaches the stream.
    let live = deps.hub.subscribe(&room);
    let last = match after {
        Some(after) => {
            let last = replay(socket, &*deps.store, &room, after, i64::MAX).await?;
            metrics::counter!("websocket_resumes_total").increment(1);
            metrics::histogram!("websocket_resume_replayed_messages").record((last - after) as f64);
            last
        }
        None => deps.store.head(&room).await.map_err(|_| End::StoreFailed)?,
    };
    let ready = ServerFrame::Ready {
        room: room.to_string(),
        head: last,
    };
    send_text(
        socket,
        serde_json::to_string(&ready).expect("serialises").into(),
    )
    .await?;
    deps.hub.seen(&room, last);
    deps.presence.join(&room, subs.name.as_deref());
    send_text(socket, deps.presence.frame(&room).into()).await?;
    subs.streams
        .insert(room.clone(), BroadcastStream::new(live));
    subs.last.insert(room, last);
    Ok(())
}

fn unsubscribe(deps: &Deps, subs: &mut Subscriptions, room: &RoomId) {
    if subs.streams.remove(room).is_some() {
        subs.last.remove(room);
        deps.presence.leave(room, subs.name.as_deref());
    }
}

async fn refuse<S>(socket: &mut S, error: String) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    let frame = serde_json::to_string(&ServerFrame::Error { error }).expect("serialises");
    send_text(socket, frame.into()).await
}

async fn send_text<S>(socket: &mut S, text: Utf8Bytes) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    socket
        .send(WsMessage::Text(text))
        .await
        .map_err(|_| End::PeerGone)
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
    let mut pages = Pages::new(store, room.clone(), after, before);
    while let Some(page) = pages.next().await.map_err(|_| End::StoreFailed)? {
        for message in &page {
            send_text(socket, Frame::new(message).text).await?;
            last = message.seq;
        }
    }
    Ok(last)
}

/// Sends a close frame saying why (best effort) and returns `end`.
async fn close<S>(socket: &mut S, end: End) -> End
where
    S: Sink<WsMessage> + Unpin,
{
    let (code, reason) = match end {
        End::Lagged => (CLOSE_TRY_AGAIN, "too far behind; reconnect to resume"),
        End::StoreFailed => (CLOSE_TRY_AGAIN, "database unavailable; reconnect to resume"),
        End::Shutdown => (
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
    use app::domain::{Message, MessageKind};
    use axum::http::HeaderValue;
    use futures::channel::mpsc;
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    /// A socket made of two channels, so the loop runs without a network.
    struct ChannelSocket {
        incoming: mpsc::UnboundedReceiver<Result<WsMessage, ()>>,
        outgoing: mpsc::Sender<WsMessage>,
    }

    impl Stream for ChannelSocket {
        type Item = Result<WsMessage, ()>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_next_unpin(cx)
        }
    }

    impl Sink<WsMessage> for ChannelSocket {
        type Error = mpsc::SendError;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            self.outgoing.poll_ready_unpin(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
            self.outgoing.start_send_unpin(item)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            self.outgoing.poll_flush_unpin(cx)
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            self.outgoing.poll_close_unpin(cx)
        }
    }

    fn message(seq: i64) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            id: uuid::Uuid::new_v4(),
            kind: MessageKind::User,
            sender: "a".into(),
            content: format!("m{seq}"),
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_closed_with_1013_and_the_others_are_not_held_up() {
        let dir = std::env::temp_dir().join(format!("ws-test-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/chat.db", dir.display());
        let opened = crate::store::open(&url, &Default::default()).await.unwrap();
        let store = opened.store;
        let hub = Hub::new(store.clone(), 8);
        let presence = Presence::new(hub.clone(), None, Duration::from_secs(30));
        let deps = Deps {
            hub: hub.clone(),
            store,
            presence,
        };
        let session = Session {
            room: RoomId::lobby(),
            after: None,
            ping_interval: Duration::from_secs(60),
            shutdown: CancellationToken::new(),
        };
        // A slow socket: its outgoing channel holds one frame until read.
        let (_in_tx, incoming) = mpsc::unbounded();
        let (outgoing, mut slow) = mpsc::channel(0);
        let task = tokio::spawn(serve_socket(
            ChannelSocket { incoming, outgoing },
            deps.clone(),
            session.clone(),
        ));
        let ready = slow.next().await.unwrap();
        assert!(matches!(ready, WsMessage::Text(ref t) if t.contains(r#""type":"ready""#)));
        // A healthy socket in the same room.
        let (_in_tx2, incoming2) = mpsc::unbounded();
        let (outgoing2, mut fast) = mpsc::channel(64);
        tokio::spawn(serve_socket(
            ChannelSocket {
                incoming: incoming2,
                outgoing: outgoing2,
            },
            deps,
            session,
        ));
        while !matches!(fast.next().await.unwrap(), WsMessage::Text(ref t) if t.contains("ready")) {
        }

        // Twenty messages at a pace a healthy socket keeps up with; the slow
        // one stops reading and falls more than the hub keeps (8) behind.
        for seq in 1..=20 {
            hub.publish(message(seq));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        // The healthy socket gets all of them, in order, without waiting.
        let mut seqs = Vec::new();
        while seqs.len() < 20 {
            if let WsMessage::Text(t) = fast.next().await.unwrap() {
                if let Ok(ServerFrame::Message(m)) = serde_json::from_str::<ServerFrame>(&t) {
                    seqs.push(m.seq);
                }
            }
        }
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        // The slow one is told to reconnect and resume.
        let mut close = None;
        while let Some(frame) = slow.next().await {
            if let WsMessage::Close(c) = frame {
                close = c;
                break;
            }
        }
        assert_eq!(close.map(|c| c.code), Some(CLOSE_TRY_AGAIN));
        assert_eq!(task.await.unwrap(), End::Lagged);
        let _ = std::fs::remove_dir_all(dir);
    }

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
