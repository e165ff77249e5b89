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

pub mod cluster;
pub mod error;
pub mod limits;
pub mod realtime;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

use std::{sync::Arc, time::Duration};

use app::{
    api::{ApiError, Backend, Client},
    domain::{Message, NewPost, RoomId, RoomSummary},
};
use async_trait::async_trait;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use cluster::broadcaster;
use limits::{LimitSettings, Limits};
use realtime::{hub::Hub, presence::Presence};
use store::{ListQuery, PoolOptions, Store, StoreError};

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

/// The running backend of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub presence: Presence,
    pub sockets: Arc<SocketSettings>,
    pub limits: Arc<Limits>,
    /// Cancelled when the instance starts shutting down: sockets close with
    /// 1001 and new ones are refused.
    pub shutdown: CancellationToken,
    /// Every socket session, so shutdown can wait for them to finish.
    pub sessions: TaskTracker,
}

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
        let limits = Arc::new(Limits::new(settings.limits.clone()));
        tokio::spawn(sweep(Arc::downgrade(&limits)));
        let presence = Presence::new(hub.clone(), opened.postgres.clone(), settings.presence_ttl);
        cluster::feed::start(opened.commits, hub.clone(), presence.clone()).await;
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
        Ok(Self {
            store,
            hub,
            presence,
            sockets: Arc::new(settings.sockets.clone()),
            limits,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
        })
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
    ) -> Result<Vec<Message>, ApiError> {
        let query = ListQuery {
            room: room.clone(),
            after: None,
            before,
            limit,
        };
        Ok(self.store.list(&query).await?)
    }

    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, ApiError> {
        Ok(self.store.rooms(limit).await?)
    }

    async fn post(&self, post: NewPost, from: Client) -> Result<Message, ApiError> {
        if let Err(wait) = self.limits.post(from.ip, post.sender.as_str()) {
            metrics::counter!("rate_limited_total", "limit" => "post").increment(1);
            return Err(ApiError::RateLimited {
                retry_after_ms: wait.millis(),
            });
        }
        service::post(&self.store, post).await
    }
}
