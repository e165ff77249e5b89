//! Persistence behind one [`Store`] trait with a PostgreSQL and a SQLite
//! implementation, picked by the `DATABASE_URL` scheme. Owns the seq
//! invariant (gapless, committed in order, per room) and idempotent inserts,
//! and hands every commit to the [`Commits`] feed. Knows nothing of HTTP,
//! WebSockets or the hub.

pub mod backup;
mod pg_batch;
pub mod postgres;
mod queries;
mod sqlite;
mod trust;

pub use trust::{Change, ChangeKind, NameClaim, SessionRow};

use std::{sync::Arc, time::Duration};

use app::domain::{Message, MessageBody, MessageKind, RoomId, RoomSummary, SenderName};
use async_trait::async_trait;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Largest page `list` returns.
pub const MAX_PAGE: u32 = 200;
/// How long a health check waits for its own connection.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The database could not be reached in time (503; retrying is safe).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else (500).
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `DATABASE_URL` has a scheme we do not support.
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got {0:?})")]
    Scheme(String),
    /// The name is held by someone else (409).
    #[error("name in use")]
    NameTaken,
    /// The change is not this author's to make (403).
    #[error("not allowed")]
    Forbidden,
    /// The edit window has passed (409).
    #[error("too late to edit")]
    TooLate,
    /// The message was deleted (409).
    #[error("message deleted")]
    Deleted,
    /// Only messages can be changed, not events or broadcasts (422).
    #[error("not a message that can be changed")]
    NotChangeable,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Other(other),
        }
    }
}

/// PostgreSQL classes 08 (connection), 57P (shutdown) and SQLite BUSY/LOCKED
/// mean "try again later", not "bug".
fn is_unavailable_code(code: Option<&str>) -> bool {
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6")
}

/// A message ready to be stored; every field already validated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomId,
    pub id: Uuid,
    pub kind: MessageKind,
    pub sender: SenderName,
    pub content: MessageBody,
    /// The author's public id; `None` for guests and the server.
    pub author: Option<String>,
}

/// The result of an insert: the stored message, and whether this call stored
/// it (`false` when the id was already there: an idempotent retry).
#[derive(Debug, Clone)]
pub struct Inserted {
    pub message: Message,
    pub created: bool,
}

/// Which page of a room to read. With `after`, the oldest messages after it
/// (for resuming); otherwise the newest ones (before `before`, if given).
/// Results are always in ascending seq order.
///
/// A history page (`messages_only`) holds messages in their current state
/// and no events; a resume (`after`) holds everything in the sequence, so a
/// client applying it in order converges. `viewer` marks the viewer's own
/// reactions.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub room: RoomId,
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub limit: u32,
    pub messages_only: bool,
    pub viewer: Option<String>,
}

impl ListQuery {
    /// The newest messages (current state, no events).
    pub fn latest(room: RoomId, limit: u32) -> Self {
        Self {
            room,
            after: None,
            before: None,
            limit,
            messages_only: true,
            viewer: None,
        }
    }

    /// Everything in the sequence after `after`.
    pub fn after(room: RoomId, after: i64, limit: u32) -> Self {
        Self {
            room,
            after: Some(after),
            before: None,
            limit,
            messages_only: false,
            viewer: None,
        }
    }

    pub fn viewer(mut self, viewer: Option<String>) -> Self {
        self.viewer = viewer;
        self
    }

    fn bounds(&self) -> (i64, i64, i64) {
        (
            self.after.unwrap_or(0),
            self.before.unwrap_or(i64::MAX),
            i64::from(self.limit.clamp(1, MAX_PAGE)),
        )
    }
}

/// Every message of a room with `after < seq < before`, a page at a time
/// (for resuming a socket and filling the hub's gaps).
pub struct Pages<'a> {
    store: &'a dyn Store,
    query: ListQuery,
    done: bool,
}

impl<'a> Pages<'a> {
    pub fn new(store: &'a dyn Store, room: RoomId, after: i64, before: i64) -> Self {
        let query = ListQuery {
            before: Some(before),
            limit: MAX_PAGE,
            ..ListQuery::after(room, after, MAX_PAGE)
        };
        Self {
            store,
            query,
            done: after.saturating_add(1) >= before,
        }
    }

    /// The next page (ascending, never empty), or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<Message>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.list(&self.query).await?;
        self.done = page.len() < MAX_PAGE as usize;
        match page.last() {
            Some(last) => {
                self.query.after = Some(last.seq);
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a message with the next seq of its room, or returns the one
    /// already stored under the same id.
    async fn insert(&self, new: NewMessage) -> Result<Inserted, StoreError>;
    /// A page of a room's messages, ascending by seq.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Message>, StoreError>;
    /// The last committed seq of a room (0 when it has none).
    async fn head(&self, room: &RoomId) -> Result<i64, StoreError>;
    /// Rooms with messages, most recently active first (announcements excluded).
    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, StoreError>;
    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The database's epoch: its identity, new after every restore (see
    /// [`backup`]). Read at start and checked every second by `Chat`,
    /// never per request or frame.
    async fn epoch(&self) -> Result<String, StoreError>;
    /// The message (or event) stored under `id`.
    async fn message_by_id(&self, id: Uuid) -> Result<Option<Message>, StoreError>;
    /// Changes a message by appending an event to its room's sequence
    /// (edit, delete, reaction toggle), checking the rules in the same
    /// transaction. Returns the event.
    async fn change(&self, change: Change) -> Result<Message, StoreError>;
    /// The session a token hash belongs to.
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError>;
    /// Creates a session (or returns the one already under this hash).
    async fn create_session(
        &self,
        token_hash: &str,
        row: &SessionRow,
    ) -> Result<SessionRow, StoreError>;
    /// Marks a session as used now (for pruning idle ones).
    async fn touch_session(&self, author: &str) -> Result<(), StoreError>;
    /// Makes an author a moderator.
    async fn set_moderator(&self, author: &str) -> Result<(), StoreError>;
    /// Takes (or keeps) a name for an author until `held_until`, and makes
    /// it the author's name. [`StoreError::NameTaken`] if another author
    /// holds it.
    async fn claim_name(&self, claim: &NameClaim) -> Result<(), StoreError>;
    /// Who holds the name with this key now, if anyone.
    async fn name_holder(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Bans an author (idempotent).
    async fn ban(&self, author: &str, by: &str) -> Result<(), StoreError>;
    /// Every banned author.
    async fn bans(&self) -> Result<Vec<String>, StoreError>;
    /// An author's messages (room, seq) since `since`, not yet deleted.
    async fn authored_since(
        &self,
        author: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    fn backend(&self) -> Backend;
    /// Connections open and idle in the pool, for metrics.
    fn pool_stats(&self) -> Option<(u32, u32)> {
        None
    }
}

/// How commits leave the store: every committed message, in commit order,
/// exactly one way per backend.
pub enum Commits {
    /// SQLite (one instance): handed over in process after each commit.
    Local(mpsc::UnboundedReceiver<Message>),
    /// PostgreSQL: NOTIFYed inside each insert's transaction, so every
    /// instance hears it at commit by LISTENing on this pool's server.
    Notify(PgPool),
}

/// An opened store and its commit feed.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub commits: Commits,
    /// The PostgreSQL pool, when that is the backend (for the instances'
    /// ephemeral announcements and the leader election).
    pub postgres: Option<PgPool>,
}

/// Pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the store named by `url` and runs its migrations.
pub async fn open(url: &str, opts: &PoolOptions) -> Result<Opened, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, opts).await?;
        let pool = store.pool().clone();
        Ok(Opened {
            store: Arc::new(store),
            commits: Commits::Notify(pool.clone()),
            postgres: Some(pool),
        })
    } else if url.starts_with("sqlite:") {
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Opened {
            store: Arc::new(SqliteStore::connect(url, opts, tx).await?),
            commits: Commits::Local(rx),
            postgres: None,
        })
    } else {
        let scheme = url.split(':').next().unwrap_or_default().to_owned();
        Err(StoreError::Scheme(scheme))
    }
}

/// Current time at the millisecond precision both backends store.
fn now_millis() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Row decoding shared by both backends (they select the same columns).
/// A `messages` row (columns as in `COLUMNS`).
fn decode_message<'r, R>(row: &'r R) -> Result<Message, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<chrono::DateTime<chrono::Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Message {
        room: row.try_get("room")?,
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        sender: row.try_get("sender")?,
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
        author: row.try_get("author")?,
        target: row.try_get("target")?,
        edited_at: row.try_get("edited_at")?,
        deleted: row
            .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("deleted_at")?
            .is_some(),
        reactions: Vec::new(),
    })
}

/// A `rooms` row for the room list.
fn decode_room<'r, R>(row: &'r R) -> Result<RoomSummary, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RoomSummary {
        name: row.try_get("name")?,
        last_seq: row.try_get("last_seq")?,
        last_active_at: row.try_get("last_active_at")?,
    })
}

fn parse_kind(s: &str) -> Result<MessageKind, sqlx::Error> {
    MessageKind::parse(s).ok_or_else(|| sqlx::Error::Decode(format!("unknown kind {s:?}").into()))
}
