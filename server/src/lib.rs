//! The backend library, compiled for the server only: the posting service,
//! storage (`store/`), the realtime fan-out on this instance (`realtime/`:
//! hub, WebSocket sessions, presence), the parts that make many instances
//! one chat (`cluster/`: the commit feed, the broadcast leader and the
//! broadcaster) and the wire format of the NOTIFY channels they share
//! (`wire`). Modules import one way: `wire` <- `store` <- `realtime` <-
//! `cluster`, checked by the root's `tests/layers.rs`.
//!
//! [`Chat`] is the running backend. It implements `app`'s [`Backend`] seam
//! for the server functions; the binary builds one with [`Chat::start`] and
//! wires it into the router. Nothing here renders pages or reads the
//! environment.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod identity;
pub mod limits;
pub mod page_reads;
pub mod realtime;
pub mod service;
pub mod store;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::{
    api::{ApiError, Backend, ChangeRequest, Client, Me, Session},
    domain::{Message, NewPost, RoomId, RoomSummary, SenderName, ValidationError, REACTIONS},
};
use async_trait::async_trait;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use cluster::broadcaster;
use identity::{Bans, Sessions};
use limits::{LimitSettings, Limits};
use page_reads::Kept;
use realtime::{hub::Hub, presence::Presence};
use store::{Change, ChangeKind, ListQuery, NameClaim, PoolOptions, Store, StoreError};

/// What the backend needs to start (the binary reads it from the
/// environment).
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub pool: PoolOptions,
    /// Random broadcasts every uniformly random interval in `[min, max]`;
    /// `None` disables them.
    pub broadcast: Option<(Duration, Duration)>,
    /// How long another instance's presence is trusted without a heartbeat.
    pub presence_ttl: Duration,
    /// Rooms followed on this instance at once, at most.
    pub max_rooms: usize,
    pub sockets: SocketSettings,
    pub limits: LimitSettings,
    pub trust: TrustSettings,
}

/// What the WebSocket handler needs at run time.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// Origins allowed to open `/ws` besides the page's own host.
    pub allowed_origins: Vec<String>,
    /// How often the server pings each WebSocket; a peer silent for two
    /// intervals is dropped.
    pub ping_interval: Duration,
    /// How long one frame may take to go out before the peer counts as gone
    /// (it stopped reading).
    pub send_timeout: Duration,
    /// Messages one subscription replays at most; a longer backlog is paged.
    pub replay_limit: u32,
}

impl Default for SocketSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
            replay_limit: 1000,
        }
    }
}

/// Who may do what (the binary reads it from the environment).
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// How long after posting an author may edit a message.
    pub edit_window: Duration,
    /// How long a name stays with the session that last used it.
    pub name_hold: Duration,
    /// Whether posts without a session (API clients with just a `sender`)
    /// are taken, as a guest.
    pub allow_guests: bool,
    /// Whoever enters this on the moderation page becomes a moderator.
    pub moderator_token: Option<String>,
    /// Signed-in identities (subjects or emails) that are moderators.
    pub moderators: Vec<String>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        Self {
            edit_window: Duration::from_secs(600),
            name_hold: Duration::from_secs(30 * 24 * 3600),
            allow_guests: true,
            moderator_token: None,
            moderators: Vec::new(),
        }
    }
}

/// The running backend of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub presence: Presence,
    pub sockets: Arc<SocketSettings>,
    pub limits: Arc<Limits>,
    pub identities: Sessions,
    pub bans: Bans,
    pub trust: Arc<TrustSettings>,
    /// Where to announce bans to the other instances (PostgreSQL).
    postgres: Option<sqlx::PgPool>,
    /// Names this instance confirmed recently, so a post does not write the
    /// hold again each time.
    held: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Cancelled when the instance starts shutting down: sockets close with
    /// 1001 and new ones are refused.
    pub shutdown: CancellationToken,
    /// Every socket session, so shutdown can wait for them to finish.
    pub socket_tasks: TaskTracker,
    /// What every room page reads and no viewer changes, kept until the
    /// next commit: the room list and the latest announcements.
    kept_rooms: Arc<Kept<u32, Vec<RoomSummary>>>,
    kept_announcements: Arc<Kept<u32, Vec<Message>>>,
}

/// How often each instance reads the database's epoch, to notice a restore
/// underneath it (one tiny query; sockets and requests use the cached one).
const EPOCH_CHECK: Duration = Duration::from_secs(1);
/// A name's hold is written again at most this often for one session.
const HOLD_REFRESH: Duration = Duration::from_secs(3600);
/// What a moderator's "remove recent messages" reaches back to.
const RECENT: chrono::Duration = chrono::Duration::hours(24);

impl Chat {
    /// Opens the store (running its migrations) and starts the hub, the
    /// commit feed, presence and (on the elected instance) the broadcaster.
    pub async fn start(settings: &Settings) -> Result<Self, StoreError> {
        let opened = store::open(&settings.database_url, &settings.pool).await?;
        let store = opened.store.clone();
        let hub = Hub::new(
            store.clone(),
            realtime::hub::DEFAULT_CAPACITY,
            settings.max_rooms,
        );
        hub.set_epoch(&store.epoch().await?);
        let limits = Arc::new(Limits::new(settings.limits.clone()));
        tokio::spawn(sweep(Arc::downgrade(&limits)));
        let presence = Presence::new(hub.clone(), opened.postgres.clone(), settings.presence_ttl);
        let bans = Bans::new(store.bans().await?);
        tokio::spawn(refresh_bans(store.clone(), bans.clone()));
        cluster::feed::start(opened.commits, hub.clone(), presence.clone(), bans.clone()).await;
        let interval = settings
            .broadcast
            .and_then(|(min, max)| broadcaster::Interval::new(min, max));
        if let Some(interval) = interval {
            let room = RoomId::announcements();
            match &opened.postgres {
                // Many instances may share PostgreSQL: one elected instance
                // broadcasts.
                Some(pool) => {
                    let options = pool.connect_options().as_ref().clone();
                    tokio::spawn(cluster::leader::run(options, store.clone(), room, interval));
                }
                // SQLite is single-instance: this process is the broadcaster.
                None => {
                    tokio::spawn(broadcaster::run(store.clone(), room, interval));
                }
            }
        }
        let identities = Sessions::new(store.clone());
        let held = Arc::default();
        tokio::spawn(follow_epoch(
            store.clone(),
            hub.clone(),
            identities.clone(),
            Arc::downgrade(&held),
        ));
        Ok(Self {
            identities,
            store,
            hub,
            presence,
            sockets: Arc::new(settings.sockets.clone()),
            limits,
            bans,
            trust: Arc::new(settings.trust.clone()),
            postgres: opened.postgres,
            held,
            shutdown: CancellationToken::new(),
            socket_tasks: TaskTracker::new(),
            kept_rooms: Arc::default(),
            kept_announcements: Arc::default(),
        })
    }

    /// Refuses a banned caller.
    fn not_banned(&self, session: &Session) -> Result<(), ApiError> {
        if self.bans.contains(&session.author) {
            Err(ApiError::Forbidden(
                "You have been banned from this chat.".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Counts a write (a post or a change) against the caller's quotas: per
    /// address, and per session (or, for a guest, per name).
    fn limit(&self, from: &Client, guest_name: &str) -> Result<(), ApiError> {
        let key = from
            .session
            .as_ref()
            .map_or(guest_name, |s| s.author.as_str());
        self.limits.post(from.ip, key).map_err(|wait| {
            metrics::counter!("rate_limited_total", "limit" => "post").increment(1);
            ApiError::RateLimited {
                retry_after_ms: wait.millis(),
            }
        })
    }

    /// Makes `name` the session's, holding it for the configured time.
    async fn hold(&self, session: &Session, name: &SenderName) -> Result<(), ApiError> {
        let key = identity::name_key(name.as_str());
        let fresh = {
            let held = crate::sync::lock(&self.held);
            held.get(&session.author)
                .is_some_and(|(k, at)| *k == key && at.elapsed() < HOLD_REFRESH)
        };
        if fresh && session.name.as_deref() == Some(name.as_str()) {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let hold =
            chrono::Duration::from_std(self.trust.name_hold).unwrap_or(chrono::Duration::days(30));
        self.store
            .claim_name(&NameClaim {
                author: session.author.clone(),
                key: key.clone(),
                name: name.as_str().to_owned(),
                now,
                held_until: now + hold,
            })
            .await?;
        self.identities
            .updated(&session.author, Some(name.as_str()), None);
        crate::sync::lock(&self.held).insert(session.author.clone(), (key, Instant::now()));
        Ok(())
    }

    /// Tells every instance (this one included) that `author` is banned.
    async fn announce_ban(&self, author: &str) {
        self.bans.add(author);
        if let Some(pool) = &self.postgres {
            let payload = wire::Ephemeral::Ban {
                author: author.to_owned(),
            }
            .encode();
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(wire::EPHEMERAL_CHANNEL)
                .bind(payload)
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, "ban not announced to the other instances");
            }
        }
    }
}

/// Reads the bans again every 30 s, so a ban announced while this
/// instance's listener was down still takes effect.
async fn refresh_bans(store: Arc<dyn Store>, bans: Bans) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    every.tick().await;
    loop {
        every.tick().await;
        match store.bans().await {
            Ok(all) => all.iter().for_each(|a| bans.add(a)),
            Err(e) => tracing::debug!(error = %e, "bans not refreshed"),
        }
    }
}

/// Reads the database's epoch every [`EPOCH_CHECK`]. A new one means the
/// database was restored (or replaced) underneath this instance: the hub
/// forgets where each room was and closes every socket (their pages reload
/// from the restored database), and the caches of sessions and held names,
/// which may describe rows that are gone, are dropped.
async fn follow_epoch(
    store: Arc<dyn Store>,
    hub: Hub,
    identities: Sessions,
    held: std::sync::Weak<Mutex<HashMap<String, (String, Instant)>>>,
) {
    let mut every = tokio::time::interval(EPOCH_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(held) = held.upgrade() else {
            return;
        };
        match store.epoch().await {
            Ok(epoch) if hub.set_epoch(&epoch) => {
                identities.forget();
                crate::sync::lock(&held).clear();
                metrics::counter!("database_epoch_changes_total").increment(1);
                tracing::warn!(
                    %epoch,
                    "the database has a new epoch (restored); pages reconnect and reload"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "epoch not checked"),
        }
    }
}

/// Forgets rate-limit keys whose quota refilled, every 10 s, for as long as
/// the limits exist.
async fn sweep(limits: std::sync::Weak<Limits>) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        every.tick().await;
        match limits.upgrade() {
            Some(limits) => limits.sweep(),
            None => return,
        }
    }
}

#[async_trait]
impl Backend for Chat {
    async fn latest(
        &self,
        room: &RoomId,
        before: Option<i64>,
        limit: u32,
        viewer: Option<&str>,
    ) -> Result<Vec<Message>, ApiError> {
        let query = ListQuery {
            before,
            ..ListQuery::latest(room.clone(), limit).viewer(viewer.map(str::to_owned))
        };
        if room.is_announcements() && before.is_none() && viewer.is_none() {
            let load = async { self.store.list(&query).await };
            let kept = self.kept_announcements.get(limit, self.hub.changes(), load);
            return Ok(kept.await?);
        }
        Ok(self.store.list(&query).await?)
    }

    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, ApiError> {
        let load = self.store.rooms(limit);
        Ok(self.kept_rooms.get(limit, self.hub.changes(), load).await?)
    }

    fn epoch(&self) -> String {
        self.hub.epoch().to_string()
    }

    fn me(&self, session: Option<&Session>) -> Me {
        Me {
            author: session.map(|s| s.author.clone()),
            name: session.and_then(|s| s.name.clone()),
            moderator: session.is_some_and(|s| s.moderator),
            edit_window_secs: self.trust.edit_window.as_secs(),
        }
    }

    async fn post(&self, post: NewPost, from: Client) -> Result<Message, ApiError> {
        let author = match &from.session {
            Some(session) => {
                self.not_banned(session)?;
                self.limit(&from, post.sender.as_str())?;
                self.hold(session, &post.sender).await?;
                Some(session.author.clone())
            }
            None if !self.trust.allow_guests => {
                return Err(ApiError::Unauthorized(
                    "Posting needs a session: open the chat in a browser, or get a token \
                     from POST /api/sessions."
                        .into(),
                ))
            }
            None => {
                self.limit(&from, post.sender.as_str())?;
                // A guest never posts under a held name.
                let key = identity::name_key(post.sender.as_str());
                if self
                    .store
                    .name_holder(&key, chrono::Utc::now())
                    .await?
                    .is_some()
                {
                    return Err(ApiError::Conflict(app::api::NAME_IN_USE.into()));
                }
                None
            }
        };
        let posted = service::post(&self.store, post, author).await;
        if posted.is_ok() {
            self.hub.note_commit();
        }
        posted
    }

    async fn set_name(&self, name: SenderName, from: Client) -> Result<Me, ApiError> {
        let session = from.session.ok_or_else(no_session)?;
        self.not_banned(&session)?;
        self.hold(&session, &name).await?;
        Ok(self.me(Some(&Session {
            name: Some(name.as_str().to_owned()),
            ..session
        })))
    }

    async fn change(
        &self,
        id: uuid::Uuid,
        change: ChangeRequest,
        from: Client,
    ) -> Result<Message, ApiError> {
        let session = from.session.clone().ok_or_else(no_session)?;
        self.not_banned(&session)?;
        self.limit(&from, &session.author)?;
        let target = self
            .store
            .message_by_id(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("No such message.".into()))?;
        let room = RoomId::parse(&target.room)?;
        let kind = match change {
            ChangeRequest::Edit(body) => ChangeKind::Edit(body),
            ChangeRequest::Delete => ChangeKind::Delete,
            ChangeRequest::React(emoji) if REACTIONS.contains(&emoji.as_str()) => {
                ChangeKind::React(emoji)
            }
            ChangeRequest::React(_) => return Err(ValidationError::Reaction.into()),
        };
        let sender = session
            .name
            .as_deref()
            .and_then(|n| SenderName::parse(n).ok())
            .unwrap_or_else(SenderName::someone);
        let result = self
            .store
            .change(Change {
                id: uuid::Uuid::new_v4(),
                room,
                target: target.seq,
                kind,
                actor: session.author,
                sender,
                moderator: session.moderator,
                edit_window: self.trust.edit_window,
            })
            .await;
        match result {
            Ok(event) => {
                self.hub.note_commit();
                metrics::counter!("messages_processed_total", "kind" => event.kind.as_str())
                    .increment(1);
                Ok(event)
            }
            Err(StoreError::NotFound) => Err(ApiError::NotFound("No such message.".into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn become_moderator(&self, token: &str, from: Client) -> Result<Me, ApiError> {
        let session = from.session.ok_or_else(no_session)?;
        let expected = self.trust.moderator_token.as_deref().unwrap_or_default();
        if expected.is_empty() || !constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
            return Err(ApiError::Forbidden(
                "That is not the moderator token.".into(),
            ));
        }
        self.store.set_moderator(&session.author).await?;
        self.identities.updated(&session.author, None, Some(true));
        Ok(self.me(Some(&Session {
            moderator: true,
            ..session
        })))
    }

    async fn ban(
        &self,
        author: &str,
        remove_recent: bool,
        from: Client,
    ) -> Result<usize, ApiError> {
        let session = from.session.ok_or_else(no_session)?;
        if !session.moderator {
            return Err(ApiError::Forbidden("Only moderators may ban.".into()));
        }
        if author.is_empty() || author == session.author {
            return Err(ApiError::BadRequest("Choose someone else to ban.".into()));
        }
        self.store.ban(author, &session.author).await?;
        self.announce_ban(author).await;
        let mut removed = 0;
        if remove_recent {
            let since = chrono::Utc::now() - RECENT;
            let sender = session
                .name
                .as_deref()
                .and_then(|n| SenderName::parse(n).ok())
                .unwrap_or_else(SenderName::moderator);
            for (room, seq) in self.store.authored_since(author, since).await? {
                let change = Change {
                    id: uuid::Uuid::new_v4(),
                    room: RoomId::parse(&room)?,
                    target: seq,
                    kind: ChangeKind::Delete,
                    actor: session.author.clone(),
                    sender: sender.clone(),
                    moderator: true,
                    edit_window: self.trust.edit_window,
                };
                match self.store.change(change).await {
                    Ok(_) => {
                        self.hub.note_commit();
                        removed += 1;
                    }
                    Err(StoreError::Deleted) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tracing::info!(removed, "author banned");
        Ok(removed)
    }
}

fn no_session() -> ApiError {
    ApiError::Unauthorized(
        "This needs a session: open the chat in a browser, or get a token from POST /api/sessions."
            .into(),
    )
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
