//! `GET /ws?room=<room>&after=<seq>`: the live stream of one page.
//!
//! A socket follows one or more rooms (at most [`MAX_SUBSCRIPTIONS`]): the
//! one in the URL, and any the client adds with
//! `{"type":"subscribe","room":..,"after":..}` (and drops with
//! `{"type":"unsubscribe","room":..}`). For each subscription the server
//! first sends the stored messages with seq > `after` (none without
//! `after`), at most [`SocketSettings::replay_limit`] of them: a longer
//! backlog ends with `{"type":"more","room":..,"after":..}` and the client
//! pages on by subscribing again. Then `{"type":"ready","room":..,"head":..}`
//! and the room's presence, then live messages, each exactly once and in seq
//! order per room, plus ephemeral `presence` and `typing` frames. An `after`
//! beyond the room's head is answered with the real head in `ready`.
//!
//! Nothing a client sends changes what other sockets receive: the hub's
//! sequence comes from the store; per-socket state (how far this socket
//! is) stays in this task. Every frame counts against the socket's quota
//! (and control frames against a smaller one): a refused frame gets an
//! `error` frame with `retry_after_ms`, and a socket that keeps going is
//! closed with 1008. Every send has a deadline: a peer that stops reading
//! is dropped. The server pings every `ping_interval` and drops a peer
//! silent for two intervals. A socket more than the hub's capacity behind
//! is closed with 1013; on shutdown sockets are closed with 1001. Both mean:
//! reconnect and resume. `ready` carries the database's epoch; when the
//! database is restored underneath (a new epoch), every socket is closed
//! with 1012 and its client, seeing the new epoch, reloads its rooms.

use std::{
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use app::{
    api::{http::Peer, ApiError, Session as Caller},
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
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio_stream::{wrappers::errors::BroadcastStreamRecvError, StreamMap};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::RequestId;
use tracing::Instrument;

use super::{
    hub::{Frame, Hub, Subscription},
    presence::{Here, Presence},
};
use crate::{
    identity::Bans,
    limits::{FrameLimits, Wait},
    store::{Pages, Store},
    Chat, SocketSettings,
};

/// Per-socket buffer sizes. axum's defaults (128 KiB each) would cost
/// ~134 KiB per idle connection; client frames are a few dozen bytes (the
/// buffer grows for a bigger one, up to [`MAX_CLIENT_FRAME`]). The read
/// buffer stays allocated for the socket's life: 128 bytes instead of 1 KiB
/// saved 0.9 KiB per idle socket (docs/benchmarks.md, T3).
const READ_BUFFER: usize = 128;
/// Frames queued for a socket are written together once they pass this
/// many bytes, or at the flush that ends each batch ([`forward_ready`]): one
/// `write` for the frames that were waiting instead of one per frame. The
/// buffer keeps the capacity it grew to, so this bounds what a socket that
/// once fell behind holds (a frame is ~200 bytes).
const WRITE_BUFFER: usize = 2 * 1024;
/// Live frames written in one batch at most, so a busy room cannot keep
/// one socket's task from yielding.
const MAX_BATCH: usize = 64;
/// Clients only send control frames and tiny JSON: a frame (and a message)
/// may be at most this big, so nobody can make the server buffer more.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// Rooms one socket may follow at once (a page follows two).
pub const MAX_SUBSCRIPTIONS: usize = 8;
/// Typing signals relayed per socket, at most one per this interval.
const TYPING_INTERVAL: Duration = Duration::from_millis(TYPING_RELAY_EVERY_MS);
/// Refused frames in a row after which the socket is closed with 1008.
const MAX_STRIKES: u8 = 10;

/// Close codes the client understands. 1001 and 1013 mean "reconnect and
/// resume"; 1008 means "you broke the rules" (reconnecting is allowed, but
/// the limits still apply).
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// The database was restored: reconnect, and reload (the epoch changed).
pub const CLOSE_RESTARTED: u16 = 1012;

/// A connection's place under the instance's connection limit, held by
/// every request of the connection (a request extension set by the accept
/// loop) and, after an upgrade, by its WebSocket session.
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<tokio::sync::OwnedSemaphorePermit>);

/// `GET /ws`: checks the request, then upgrades and serves the socket.
// axum extractors, one per thing the check needs.
#[allow(clippy::too_many_arguments)]
pub async fn handler(
    State(chat): State<Chat>,
    Query(params): Query<WsQuery>,
    request_id: Option<Extension<RequestId>>,
    peer: Option<Extension<Peer>>,
    caller: Option<Extension<Caller>>,
    slot: Option<Extension<ConnectionSlot>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer = peer.map(|Extension(p)| p);
    if chat.shutdown.is_cancelled() {
        return ApiError::Unavailable.into_response();
    }
    if !origin_allowed(
        &headers,
        peer.is_some_and(|p| p.https),
        &chat.sockets.allowed_origins,
    ) {
        return ApiError::Forbidden("This origin may not open the chat stream.".into())
            .into_response();
    }
    if let Err(wait) = chat.limits.connect(peer.map(|p| p.ip)) {
        metrics::counter!("rate_limited_total", "limit" => "ws_connect").increment(1);
        return ApiError::RateLimited {
            retry_after_ms: wait.millis(),
        }
        .into_response();
    }
    let caller = caller.map(|Extension(c)| c);
    if caller
        .as_ref()
        .is_some_and(|c| chat.bans.contains(&c.author))
    {
        return ApiError::Forbidden("You have been banned from this chat.".into()).into_response();
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
        settings: chat.sockets.clone(),
        shutdown: chat.shutdown.clone(),
        author: caller.as_ref().map(|c| Arc::from(c.author.as_str())),
        name: caller
            .as_ref()
            .and_then(|c| c.name.as_deref())
            .map(Arc::from),
    };
    // What the socket's task needs, in one box: the closure axum keeps
    // inside the socket's future for its whole life then holds one pointer.
    let deps = Deps {
        hub: chat.hub.clone(),
        store: chat.store.clone(),
        presence: chat.presence.clone(),
        frames: chat.limits.frames(),
        bans: chat.bans.clone(),
    };
    let tasks = chat.socket_tasks.clone();
    let pending = Box::new((deps, session, slot, request_id, tasks));
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_frame_size(MAX_CLIENT_FRAME)
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| {
            let (deps, session, slot, request_id, tasks) = *pending;
            let session_id = uuid::Uuid::new_v4().simple().to_string();
            let span = tracing::info_span!("ws", session_id, request_id, room_id = %session.room);
            let open = deps.hub.connection();
            let after = session.after;
            // Made here and finished with `map`, not awaited inside another
            // `async` block: that would hold the socket, the session and the
            // deps in the task twice (~1.5 KiB more per idle socket).
            let serve = serve_socket(socket, deps, session);
            let started = Instant::now();
            span.in_scope(|| {
                tracing::info!(after = ?after, "websocket connected");
            });
            metrics::counter!("websocket_connects_total").increment(1);
            tasks.track_future(
                serve
                    .map(move |end| {
                        let (_slot, _open) = (slot, open);
                        metrics::counter!("websocket_disconnects_total", "reason" => end.as_str())
                            .increment(1);
                        tracing::info!(
                            reason = end.as_str(),
                            secs = started.elapsed().as_secs(),
                            "websocket closed"
                        );
                    })
                    .instrument(span),
            )
        })
}

/// An `Origin` is accepted when it is the page's own origin (same scheme
/// and host as this request) or in the allow-list (`*` allows any).
/// Requests without one (not from a browser) are accepted: the check exists
/// to stop other sites' pages from reading the stream.
fn origin_allowed(headers: &HeaderMap, https: bool, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    app::api::http::origin_allowed(origin, host, https, allowed)
}

/// What a socket is about.
#[derive(Clone)]
pub struct Session {
    /// The room in the URL, followed from the start.
    pub room: RoomId,
    pub after: Option<i64>,
    pub settings: Arc<SocketSettings>,
    /// Cancelled when the server shuts down: close with 1001.
    pub shutdown: CancellationToken,
    /// Whose socket this is (none: a guest), and the name their session
    /// holds: presence and typing show this, not what the client claims.
    pub author: Option<Arc<str>>,
    pub name: Option<Arc<str>>,
}

/// What a socket talks to.
pub struct Deps {
    pub hub: Hub,
    pub store: Arc<dyn Store>,
    pub presence: Presence,
    pub frames: FrameLimits,
    pub bans: Bans,
}

/// Why a socket loop ended (for logs and metrics; a fixed set of labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    PeerGone,
    /// A send did not complete in time: the peer stopped reading.
    SendTimeout,
    Lagged,
    StoreFailed,
    /// Frames kept coming after being refused, or the author was banned.
    Policy,
    Shutdown,
    /// The database was restored (a new epoch).
    Restored,
}

impl End {
    pub const ALL: [End; 8] = [
        End::ClientClosed,
        End::PeerGone,
        End::SendTimeout,
        End::Lagged,
        End::StoreFailed,
        End::Policy,
        End::Shutdown,
        End::Restored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::PeerGone => "peer_gone",
            End::SendTimeout => "send_timeout",
            End::Lagged => "slow_client",
            End::StoreFailed => "database_unavailable",
            End::Policy => "policy",
            End::Shutdown => "server_shutdown",
            End::Restored => "database_restored",
        }
    }
}

/// A room this socket follows: how far it is, and its presence there.
struct Followed {
    last: i64,
    _here: Here,
}

/// One socket's rooms: live frames, and per room the last seq sent.
struct Subscriptions {
    streams: StreamMap<RoomId, Subscription>,
    rooms: Rooms,
    name: Option<Arc<str>>,
}

/// The rooms a socket follows: at most [`MAX_SUBSCRIPTIONS`], usually two
/// (the page's room and announcements), so a short list beats a hash map
/// (whose smallest table costs ~340 bytes per socket).
#[derive(Default)]
struct Rooms(Vec<(RoomId, Followed)>);

impl Rooms {
    fn get_mut(&mut self, room: &RoomId) -> Option<&mut Followed> {
        self.0.iter_mut().find(|(r, _)| r == room).map(|(_, f)| f)
    }

    fn contains_key(&self, room: &RoomId) -> bool {
        self.0.iter().any(|(r, _)| r == room)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&RoomId, &mut Followed)> {
        self.0.iter_mut().map(|(r, f)| (&*r, f))
    }

    fn insert(&mut self, room: RoomId, followed: Followed) {
        match self.get_mut(&room) {
            Some(old) => *old = followed,
            None => {
                if self.0.capacity() == 0 {
                    self.0.reserve_exact(2);
                }
                self.0.push((room, followed));
            }
        }
    }

    fn remove(&mut self, room: &RoomId) {
        self.0.retain(|(r, _)| r != room);
    }
}

/// Runs one client's stream until it ends. Generic over the socket so tests
/// can drive it with channels.
///
/// An `async` block rather than an `async fn`: an `async fn`'s future holds
/// its arguments twice (as arguments and as locals), which cost every idle
/// socket another ~550 bytes.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn serve_socket<S, E>(
    mut socket: S,
    deps: Deps,
    session: Session,
) -> impl std::future::Future<Output = End>
where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
{
    async move {
        let mut subs = Subscriptions {
            streams: StreamMap::with_capacity(2),
            rooms: Rooms::default(),
            name: session.name.clone(),
        };
        let end = run(&mut socket, &deps, &session, &mut subs).await;
        // Leaving every room (hub entries, presence) happens as `subs` drops.
        drop(subs);
        match end {
            End::Lagged | End::StoreFailed | End::Shutdown | End::Policy | End::Restored => {
                close(&mut socket, end, session.settings.send_timeout).await
            }
            End::ClientClosed | End::PeerGone | End::SendTimeout => end,
        }
    }
}

/// The socket and its send deadline.
struct Out<'a, S> {
    socket: &'a mut S,
    timeout: Duration,
}

impl<S: Sink<WsMessage> + Unpin> Out<'_, S> {
    /// Sends `message` and flushes it (and anything queued before it).
    async fn send(&mut self, message: WsMessage) -> Result<(), End> {
        Self::deadline(self.timeout, self.socket.send(message)).await
    }

    async fn text(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.send(WsMessage::Text(text)).await
    }

    /// Queues `text` to go out with the next [`Out::flush`] (or sooner, once
    /// [`WRITE_BUFFER`] bytes are waiting).
    async fn queue(&mut self, text: Utf8Bytes) -> Result<(), End> {
        Self::deadline(self.timeout, self.socket.feed(WsMessage::Text(text))).await
    }

    async fn flush(&mut self) -> Result<(), End> {
        Self::deadline(self.timeout, self.socket.flush()).await
    }

    async fn deadline<E>(
        timeout: Duration,
        write: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), End> {
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::SendTimeout),
        }
    }

    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.text(serde_json::to_string(frame).expect("serialises").into())
            .await
    }

    async fn refuse(&mut self, error: String, wait: Option<Wait>) -> Result<(), End> {
        self.frame(&ServerFrame::Error {
            error,
            retry_after_ms: wait.map(Wait::millis),
        })
        .await
    }
}

async fn run<S, E>(socket: &mut S, deps: &Deps, session: &Session, subs: &mut Subscriptions) -> End
where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
{
    let settings = &*session.settings;
    // Rare paths are boxed so the long-lived socket future stays small.
    let mut out = Out {
        socket: &mut *socket,
        timeout: settings.send_timeout,
    };
    // Watched from before the first subscribe: a ban (or restore) made
    // while the backlog and `ready` go out must still end the socket.
    let mut bans = deps.bans.changed();
    let mut epoch = deps.hub.epoch_changes();
    let first = Box::pin(subscribe(
        &mut out,
        deps,
        settings,
        subs,
        session.room.clone(),
        session.after,
    ));
    if let Err(end) = first.await {
        return end;
    }
    let mut ping = tokio::time::interval(settings.ping_interval);
    ping.tick().await; // the first tick is immediate
    let mut heard_since_ping = true;
    let mut last_typing: Option<Instant> = None;
    let mut strikes: u8 = 0;
    let banned = |deps: &Deps| {
        session
            .author
            .as_deref()
            .is_some_and(|a| deps.bans.contains(a))
    };
    loop {
        tokio::select! {
            Ok(()) = bans.changed() => {
                if banned(deps) {
                    return End::Policy;
                }
            },
            Ok(()) = epoch.changed() => return End::Restored,
            Some(first) = subs.streams.next() => {
                let mut out = Out { socket: &mut *socket, timeout: settings.send_timeout };
                // Boxed (one allocation per batch, not per frame): inline,
                // its state would make every idle socket's task bigger.
                if let Err(end) = Box::pin(forward_ready(&mut out, deps, subs, first)).await {
                    return end;
                }
            },
            incoming = socket.next() => {
                let message = match incoming {
                    Some(Ok(WsMessage::Close(_))) | None => return End::ClientClosed,
                    Some(Ok(message)) => message,
                    Some(Err(_)) => return End::PeerGone,
                };
                heard_since_ping = true;
                let mut out = Out { socket: &mut *socket, timeout: settings.send_timeout };
                if let Err(wait) = deps.frames.frame() {
                    metrics::counter!("rate_limited_total", "limit" => "ws_frame").increment(1);
                    strikes += 1;
                    if strikes > MAX_STRIKES {
                        return End::Policy;
                    }
                    let refused = out.refuse("Too many frames: slow down.".into(), Some(wait));
                    if let Err(end) = Box::pin(refused).await {
                        return end;
                    }
                    continue;
                }
                strikes = 0;
                let WsMessage::Text(text) = message else { continue };
                let frame = match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(frame) => frame,
                    Err(_) => {
                        let refused = out.refuse("Unknown or malformed frame.".into(), None);
                        if let Err(end) = Box::pin(refused).await {
                            return end;
                        }
                        continue;
                    }
                };
                let handled = Box::pin(handle(&mut out, deps, session, subs, frame, &mut last_typing));
                if let Err(end) = handled.await {
                    return end;
                }
            },
            _ = session.shutdown.cancelled() => return End::Shutdown,
            _ = ping.tick() => {
                if !heard_since_ping {
                    return End::PeerGone;
                }
                heard_since_ping = false;
                let mut out = Out { socket: &mut *socket, timeout: settings.send_timeout };
                if let Err(end) = out.send(WsMessage::Ping(Default::default())).await {
                    return end;
                }
            }
        }
    }
}

/// Writes `first` and every live frame already waiting behind it (at most
/// [`MAX_BATCH`]) with one flush: when fan-out runs behind, a socket's
/// queued frames leave in one `write`, not one each, which is what lets a
/// busy core catch up (docs/benchmarks.md, T2).
async fn forward_ready<S>(
    out: &mut Out<'_, S>,
    deps: &Deps,
    subs: &mut Subscriptions,
    first: (RoomId, Result<Frame, BroadcastStreamRecvError>),
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    let (mut room, mut item) = first;
    let mut written = 1;
    loop {
        let frame = item.map_err(|BroadcastStreamRecvError::Lagged(_)| End::Lagged)?;
        forward(out, deps, subs, &room, frame).await?;
        if written == MAX_BATCH {
            break;
        }
        // Polled with this task's waker: when nothing is waiting, the
        // socket's loop is woken for the next frame as usual.
        let next = std::future::poll_fn(|cx| Poll::Ready(subs.streams.poll_next_unpin(cx))).await;
        let Poll::Ready(Some(next)) = next else { break };
        (room, item) = next;
        written += 1;
    }
    out.flush().await
}

/// Queues a live frame, keeping each room's messages gapless and in order.
async fn forward<S>(
    out: &mut Out<'_, S>,
    deps: &Deps,
    subs: &mut Subscriptions,
    room: &RoomId,
    frame: Frame,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    if let Some(seq) = frame.seq {
        let Some(followed) = subs.rooms.get_mut(room) else {
            return Ok(());
        };
        let last = followed.last;
        if seq <= last {
            return Ok(());
        }
        if seq > last + 1 {
            // A gap (e.g. we joined between the hub's reads): read it. It
            // lies between two seqs this server chose, never a client's.
            Box::pin(replay(out, &*deps.store, room, last, seq, u32::MAX)).await?;
        }
        followed.last = seq;
    }
    out.queue(frame.text).await
}

async fn handle<S>(
    out: &mut Out<'_, S>,
    deps: &Deps,
    session: &Session,
    subs: &mut Subscriptions,
    frame: ClientFrame,
    last_typing: &mut Option<Instant>,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    let control = matches!(
        frame,
        ClientFrame::Subscribe { .. } | ClientFrame::Unsubscribe { .. } | ClientFrame::Hello { .. }
    );
    if control {
        if let Err(wait) = deps.frames.control() {
            metrics::counter!("rate_limited_total", "limit" => "ws_frame").increment(1);
            return out
                .refuse(
                    "Too many subscribe, unsubscribe or hello frames: slow down.".into(),
                    Some(wait),
                )
                .await;
        }
    }
    match frame {
        ClientFrame::Subscribe { room, after } => match RoomId::parse(&room) {
            Ok(room) if after.is_some_and(|a| a < 0) => {
                out.refuse(
                    format!("`after` must be a seq (0 or more) for {room}."),
                    None,
                )
                .await
            }
            Ok(room)
                if !subs.rooms.contains_key(&room) && subs.rooms.len() >= MAX_SUBSCRIPTIONS =>
            {
                out.refuse(
                    format!("At most {MAX_SUBSCRIPTIONS} rooms per connection."),
                    None,
                )
                .await
            }
            Ok(room) => {
                unsubscribe(subs, &room);
                subscribe(out, deps, &session.settings, subs, room, after).await
            }
            Err(e) => out.refuse(e.to_string(), None).await,
        },
        ClientFrame::Unsubscribe { room } => {
            if let Ok(room) = RoomId::parse(&room) {
                unsubscribe(subs, &room);
            }
            Ok(())
        }
        ClientFrame::Hello { name } => {
            // A name shows only if this socket's session holds it (after a
            // rename); guests are anonymous.
            let name = held_name(deps, session, &name).await;
            if name != subs.name {
                for (room, followed) in subs.rooms.iter_mut() {
                    // Count the new name before the old one leaves, so the
                    // room never flickers to "nobody here".
                    followed._here = deps.presence.here(room, name.clone());
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
            if let (Some(name), false, true) = (&subs.name, recent, subs.rooms.contains_key(&room))
            {
                *last_typing = Some(Instant::now());
                deps.presence.typing(&room, name);
            }
            Ok(())
        }
        ClientFrame::Ping => Ok(()),
    }
}

/// `name` if the socket's session holds it now, else the name it had.
async fn held_name(deps: &Deps, session: &Session, name: &str) -> Option<Arc<str>> {
    let author = session.author.as_deref()?;
    let Ok(name) = SenderName::parse(name) else {
        return session.name.clone();
    };
    if session.name.as_deref() == Some(name.as_str()) {
        return session.name.clone();
    }
    let key = crate::identity::name_key(name.as_str());
    match deps.store.name_holder(&key, chrono::Utc::now()).await {
        Ok(Some(holder)) if holder == author => Some(name.as_str().into()),
        _ => session.name.clone(),
    }
}

/// Follows `room`: backlog after `after` (or nothing), `ready`, presence.
/// A backlog longer than the replay limit ends with `more` instead, and the
/// room is not followed until the client asks again from there.
async fn subscribe<S>(
    out: &mut Out<'_, S>,
    deps: &Deps,
    settings: &SocketSettings,
    subs: &mut Subscriptions,
    room: RoomId,
    after: Option<i64>,
) -> Result<(), End>
where
    S: Sink<WsMessage> + Unpin,
{
    // Subscribe first: anything committed from now on reaches the stream.
    let Ok(live) = deps.hub.subscribe(&room) else {
        return out
            .refuse(
                "This server follows too many rooms right now; try again later.".into(),
                Some(Wait(Duration::from_secs(5))),
            )
            .await;
    };
    // Where the room is comes from the store, never from the client.
    let head = deps.store.head(&room).await.map_err(|_| End::StoreFailed)?;
    deps.hub.seen(&room, head);
    let last = match after {
        Some(after) => {
            // Beyond the head: the client has more than there is (e.g. the
            // database was restored); it resumes from the real head.
            let from = after.min(head);
            let limit = settings.replay_limit.max(1);
            let (last, sent) = replay(out, &*deps.store, &room, from, i64::MAX, limit).await?;
            metrics::counter!("websocket_resumes_total").increment(1);
            metrics::histogram!("websocket_resume_replayed_messages").record(sent as f64);
            if sent >= limit {
                let now = deps.store.head(&room).await.map_err(|_| End::StoreFailed)?;
                if now > last {
                    // `live` drops here: not following until asked again.
                    return out
                        .frame(&ServerFrame::More {
                            room: room.to_string(),
                            after: last,
                        })
                        .await;
                }
            }
            last
        }
        None => head,
    };
    out.frame(&ServerFrame::Ready {
        room: room.to_string(),
        head: last,
        epoch: deps.hub.epoch().to_string(),
    })
    .await?;
    let here = deps.presence.here(&room, subs.name.clone());
    out.text(deps.presence.frame(&room).into()).await?;
    subs.streams.insert(room.clone(), live);
    subs.rooms.insert(room, Followed { last, _here: here });
    Ok(())
}

fn unsubscribe(subs: &mut Subscriptions, room: &RoomId) {
    // Dropping them leaves the hub's room and the presence list.
    subs.streams.remove(room);
    subs.rooms.remove(room);
}

/// Sends stored messages with `after < seq < before`, at most `limit`;
/// returns the last seq sent (or `after` if none) and how many were sent.
async fn replay<S>(
    out: &mut Out<'_, S>,
    store: &dyn Store,
    room: &RoomId,
    after: i64,
    before: i64,
    limit: u32,
) -> Result<(i64, u32), End>
where
    S: Sink<WsMessage> + Unpin,
{
    let mut last = after;
    let mut sent = 0u32;
    let mut pages = Pages::new(store, room.clone(), after, before);
    while sent < limit {
        let Some(page) = pages.next().await.map_err(|_| End::StoreFailed)? else {
            break;
        };
        for message in page.iter().take((limit - sent) as usize) {
            out.queue(Frame::new(message).text).await?;
            last = message.seq;
            sent += 1;
        }
        out.flush().await?;
    }
    Ok((last, sent))
}

/// Sends a close frame saying why (best effort, within the send deadline)
/// and returns `end`.
async fn close<S>(socket: &mut S, end: End, timeout: Duration) -> End
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
        End::Policy => (CLOSE_POLICY, "policy violation: too many frames, or banned"),
        End::Restored => (CLOSE_RESTARTED, "database restored; reconnect and reload"),
        End::ClientClosed | End::PeerGone | End::SendTimeout => return end,
    };
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(timeout, socket.send(WsMessage::Close(Some(frame)))).await;
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
    /// It notes how many frames each flush wrote (a real socket's `write`s).
    struct ChannelSocket {
        incoming: mpsc::UnboundedReceiver<Result<WsMessage, ()>>,
        outgoing: mpsc::Sender<WsMessage>,
        queued: usize,
        writes: Arc<std::sync::Mutex<Vec<usize>>>,
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
            self.queued += 1;
            self.outgoing.start_send_unpin(item)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            let flushed = self.outgoing.poll_flush_unpin(cx);
            if flushed.is_ready() && self.queued > 0 {
                let queued = std::mem::take(&mut self.queued);
                self.writes.lock().unwrap().push(queued);
            }
            flushed
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
            ..Default::default()
        }
    }

    /// A hub, store and presence on a scratch SQLite file.
    struct Fixture {
        hub: Hub,
        store: Arc<dyn Store>,
        presence: Presence,
        limits: crate::limits::Limits,
        bans: Bans,
        dir: std::path::PathBuf,
    }

    impl Fixture {
        async fn new(limits: crate::limits::LimitSettings) -> Self {
            let dir = std::env::temp_dir().join(format!("ws-test-{}", uuid::Uuid::new_v4()));
            let url = format!("sqlite://{}/chat.db", dir.display());
            let store = crate::store::open(&url, &Default::default())
                .await
                .unwrap()
                .store;
            let hub = Hub::new(store.clone(), 8, 100);
            let presence = Presence::new(hub.clone(), None, Duration::from_secs(30));
            Self {
                hub,
                store,
                presence,
                limits: crate::limits::Limits::new(limits),
                bans: Bans::new([]),
                dir,
            }
        }

        fn deps(&self) -> Deps {
            Deps {
                hub: self.hub.clone(),
                store: self.store.clone(),
                presence: self.presence.clone(),
                frames: self.limits.frames(),
                bans: self.bans.clone(),
            }
        }

        fn session(&self, send_timeout: Duration) -> Session {
            Session {
                room: RoomId::lobby(),
                after: None,
                settings: Arc::new(SocketSettings {
                    ping_interval: Duration::from_secs(60),
                    send_timeout,
                    ..Default::default()
                }),
                shutdown: CancellationToken::new(),
                author: None,
                name: None,
            }
        }

        /// Starts a socket; returns its frames in, frames out, the task and
        /// the number of frames in each of its writes.
        #[allow(clippy::type_complexity)]
        fn socket(
            &self,
            out_capacity: usize,
            send_timeout: Duration,
        ) -> (
            mpsc::UnboundedSender<Result<WsMessage, ()>>,
            mpsc::Receiver<WsMessage>,
            tokio::task::JoinHandle<End>,
            Arc<std::sync::Mutex<Vec<usize>>>,
        ) {
            let (in_tx, incoming) = mpsc::unbounded();
            let (outgoing, out_rx) = mpsc::channel(out_capacity);
            let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
            let socket = ChannelSocket {
                incoming,
                outgoing,
                queued: 0,
                writes: writes.clone(),
            };
            let task = tokio::spawn(serve_socket(
                socket,
                self.deps(),
                self.session(send_timeout),
            ));
            (in_tx, out_rx, task, writes)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn until_ready(rx: &mut mpsc::Receiver<WsMessage>) {
        while !matches!(rx.next().await.unwrap(), WsMessage::Text(ref t) if t.contains(r#""type":"ready""#))
        {
        }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_closed_with_1013_and_the_others_are_not_held_up() {
        let fx = Fixture::new(Default::default()).await;
        // A slow socket: its outgoing channel holds one frame until read.
        let (_in_tx, mut slow, task, _) = fx.socket(0, Duration::from_secs(30));
        let ready = slow.next().await.unwrap();
        assert!(matches!(ready, WsMessage::Text(ref t) if t.contains(r#""type":"ready""#)));
        // A healthy socket in the same room.
        let (_in_tx2, mut fast, _task2, _) = fx.socket(64, Duration::from_secs(30));
        until_ready(&mut fast).await;

        // Twenty messages at a pace a healthy socket keeps up with; the slow
        // one stops reading and falls more than the hub keeps (8) behind.
        for seq in 1..=20 {
            fx.hub.publish(message(seq));
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
    }

    #[tokio::test]
    async fn frames_waiting_for_a_socket_leave_in_one_write_in_order() {
        let fx = Fixture::new(Default::default()).await;
        let (_in_tx, mut rx, _task, writes) = fx.socket(64, Duration::from_secs(30));
        until_ready(&mut rx).await;
        // Wait for the presence frame's write, then start counting afresh.
        rx.next().await.unwrap();
        writes.lock().unwrap().clear();

        // Six messages (the hub keeps 8) committed while the socket's task
        // is not running (one thread: it runs at the next await).
        for seq in 1..=6 {
            fx.hub.publish(message(seq));
        }
        let (mut seqs, mut frames) = (Vec::new(), 0);
        while seqs.len() < 6 {
            frames += 1;
            if let WsMessage::Text(t) = rx.next().await.unwrap() {
                if let Ok(ServerFrame::Message(m)) = serde_json::from_str::<ServerFrame>(&t) {
                    seqs.push(m.seq);
                }
            }
        }
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        // The room's presence update was waiting too.
        while rx.try_recv().is_ok() {
            frames += 1;
        }
        assert_eq!(*writes.lock().unwrap(), vec![frames], "one write for all");

        // One at a time, each goes out at once.
        fx.hub.publish(message(7));
        rx.next().await.unwrap();
        assert_eq!(*writes.lock().unwrap(), vec![frames, 1]);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_dropped_at_the_send_deadline() {
        let fx = Fixture::new(Default::default()).await;
        let (_in_tx, mut stalled, task, _) = fx.socket(0, Duration::from_millis(200));
        until_ready(&mut stalled).await;
        // It never reads again: the next frame cannot go out.
        fx.hub.publish(message(1));
        fx.hub.publish(message(2));
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the socket task ends, it does not hang")
            .unwrap();
        assert_eq!(end, End::SendTimeout);
        // Its room and presence are gone with it.
        assert_eq!(fx.hub.rooms(), 0);
        assert_eq!(fx.presence.view(&RoomId::lobby()).1, 0);
    }

    #[tokio::test]
    async fn a_frame_flood_is_refused_then_closed_with_1008() {
        let fx = Fixture::new(crate::limits::LimitSettings {
            frames_per_socket: crate::limits::Rate::new(5, Duration::from_secs(60)),
            ..Default::default()
        })
        .await;
        let (tx, mut out, task, _) = fx.socket(256, Duration::from_secs(5));
        until_ready(&mut out).await;
        for _ in 0..100 {
            let frame = r#"{"type":"ping"}"#;
            if tx
                .unbounded_send(Ok(WsMessage::Text(frame.into())))
                .is_err()
            {
                break;
            }
        }
        let mut refusals = 0;
        let mut close = None;
        while let Some(frame) = out.next().await {
            match frame {
                WsMessage::Text(t) if t.contains(r#""type":"error""#) => {
                    assert!(t.contains("retry_after_ms"), "{t}");
                    refusals += 1;
                }
                WsMessage::Close(c) => {
                    close = c;
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(close.map(|c| c.code), Some(CLOSE_POLICY));
        assert_eq!(refusals, MAX_STRIKES as usize);
        assert_eq!(task.await.unwrap(), End::Policy);
    }

    #[tokio::test]
    async fn presence_leaves_with_a_socket_whose_send_fails_mid_join() {
        let fx = Fixture::new(Default::default()).await;
        // The peer reads `ready` and hangs up before the presence frame.
        let (_in_tx, mut out, task, _) = fx.socket(0, Duration::from_secs(5));
        let first = out.next().await.unwrap();
        assert!(matches!(first, WsMessage::Text(ref t) if t.contains("ready")));
        drop(out);
        assert_eq!(task.await.unwrap(), End::PeerGone);
        assert_eq!(fx.presence.view(&RoomId::lobby()), (vec![], 0));
        assert_eq!(fx.hub.rooms(), 0);
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
    fn origin_check_compares_scheme_and_host() {
        let none: &[String] = &[];
        assert!(origin_allowed(&headers(None, "chat.example"), true, none));
        assert!(origin_allowed(
            &headers(Some("https://chat.example"), "chat.example"),
            true,
            none
        ));
        // The same host over the other scheme is another origin.
        assert!(!origin_allowed(
            &headers(Some("http://chat.example"), "chat.example"),
            true,
            none
        ));
        assert!(!origin_allowed(
            &headers(Some("https://chat.example"), "chat.example"),
            false,
            none
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "chat.example"),
            true,
            none
        ));
        // A host that merely starts like ours is not ours.
        assert!(!origin_allowed(
            &headers(Some("https://chat.example.evil"), "chat.example"),
            true,
            none
        ));
        let allowed = vec!["https://app.example".to_string()];
        assert!(origin_allowed(
            &headers(Some("https://app.example"), "chat.example"),
            true,
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("https://anything.example"), "chat.example"),
            false,
            &["*".to_string()]
        ));
    }
}
