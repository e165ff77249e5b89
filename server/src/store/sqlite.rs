//! SQLite implementation of [`Store`]: the zero-setup default. One writer
//! connection (SQLite serialises writers anyway) and a pool of readers, in
//! WAL mode so reads never wait for the writer. Single instance only, so
//! commits are handed to the hub in process, after each commit.

use std::{path::Path, str::FromStr, time::Duration};

use app::domain::{Message, RoomId, RoomSummary};
use async_trait::async_trait;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    decode_message, now_millis,
    queries::{self, COLUMNS},
    Backend, Change, Inserted, ListQuery, NameClaim, NewMessage, PoolOptions, SessionRow, Store,
    StoreError,
};

mod trust {
    // One writer connection: no row locks needed.
    super::super::trust::trust_queries!(sqlx::Sqlite, "");
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    /// A connection of its own for health checks (see `PgStore`).
    health: SqlitePool,
    /// The commit feed: every committed message, in commit order.
    commits: mpsc::UnboundedSender<Message>,
}

impl SqliteStore {
    pub async fn connect(
        url: &str,
        opts: &PoolOptions,
        commits: mpsc::UnboundedSender<Message>,
    ) -> Result<Self, StoreError> {
        create_parent_dir(url);
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Room for a whole page of rows and the end marker, so the
            // connection's thread never waits for the reader mid-page.
            .row_buffer_size(128);
        // An embedded database's connection cannot drop like a socket can,
        // so the pool does not ping one before lending it: on SQLite that
        // ping is a round trip to the connection's own thread, as costly as
        // a small query (about 5 % of a page's CPU).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options.clone().read_only(true))
            .await?;
        let health = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(super::HEALTH_TIMEOUT)
            .connect_lazy_with(options.read_only(true));
        Ok(Self {
            writer,
            readers,
            health,
            commits,
        })
    }

    async fn by_id(&self, pool: &SqlitePool, id: Uuid) -> Result<Option<Message>, StoreError> {
        queries::by_id(pool, id).await
    }
}

/// `sqlite://data/chat.db` needs `data/` to exist before SQLite creates the file.
fn create_parent_dir(url: &str) {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(parent);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(skip_all, fields(room_id = %new.room))]
    async fn insert(&self, new: NewMessage) -> Result<Inserted, StoreError> {
        if let Some(message) = self.by_id(&self.readers, new.id).await? {
            return Ok(Inserted {
                message,
                created: false,
            });
        }
        // The single writer connection serialises inserts; checking the id
        // again inside the transaction closes the race with a concurrent retry.
        // Hold the writer until the feed has the message, so the feed
        // sees commits in commit order.
        let mut writer = self.writer.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        let existing = sqlx::query(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))
            .bind(new.id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            let message = decode_message(&row)?;
            tx.rollback().await?;
            return Ok(Inserted {
                message,
                created: false,
            });
        }
        let now = now_millis();
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (name, last_seq, last_active_at) VALUES (?1, 1, ?2) \
             ON CONFLICT (name) DO UPDATE SET last_seq = last_seq + 1, last_active_at = ?2 \
             RETURNING last_seq",
        )
        .bind(new.room.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO messages ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL) RETURNING {COLUMNS}"
        ))
        .bind(new.room.as_str())
        .bind(seq)
        .bind(new.id)
        .bind(new.kind.as_str())
        .bind(new.sender.as_str())
        .bind(new.content.as_str())
        .bind(now)
        .bind(new.author.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let message = decode_message(&row)?;
        tx.commit().await?;
        // An error only means the feed's reader is gone (shutting down).
        let _ = self.commits.send(message.clone());
        drop(writer);
        Ok(Inserted {
            message,
            created: true,
        })
    }

    #[tracing::instrument(skip_all, fields(room_id = %query.room))]
    async fn list(&self, query: &ListQuery) -> Result<Vec<Message>, StoreError> {
        let mut messages = queries::list(&self.readers, query).await?;
        trust::attach_reactions(&self.readers, &mut messages, query.viewer.as_deref()).await?;
        Ok(messages)
    }

    async fn message_by_id(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
        self.by_id(&self.readers, id).await
    }

    #[tracing::instrument(skip_all, fields(room_id = %change.room))]
    async fn change(&self, change: Change) -> Result<Message, StoreError> {
        // As for inserts: hold the writer until the feed has the event.
        let mut writer = self.writer.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        let event = trust::change(&mut tx, &change).await?;
        tx.commit().await?;
        let _ = self.commits.send(event.clone());
        drop(writer);
        Ok(event)
    }

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        trust::session(&self.readers, token_hash).await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        row: &SessionRow,
    ) -> Result<SessionRow, StoreError> {
        trust::create_session(&self.writer, token_hash, row).await
    }

    async fn touch_session(&self, author: &str) -> Result<(), StoreError> {
        trust::touch_session(&self.writer, author).await
    }

    async fn set_moderator(&self, author: &str) -> Result<(), StoreError> {
        trust::set_moderator(&self.writer, author).await
    }

    async fn claim_name(&self, claim: &NameClaim) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        trust::claim_name(&mut tx, claim).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn name_holder(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError> {
        trust::name_holder(&self.readers, key, now).await
    }

    async fn ban(&self, author: &str, by: &str) -> Result<(), StoreError> {
        trust::ban(&self.writer, author, by).await
    }

    async fn bans(&self) -> Result<Vec<String>, StoreError> {
        trust::bans(&self.readers).await
    }

    async fn authored_since(
        &self,
        author: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        trust::authored_since(&self.readers, author, since).await
    }

    async fn head(&self, room: &RoomId) -> Result<i64, StoreError> {
        queries::head(&self.readers, room).await
    }

    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, StoreError> {
        queries::rooms(&self.readers, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.health).await?;
        Ok(())
    }

    async fn epoch(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT epoch FROM epoch WHERE id = 1")
            .fetch_one(&self.readers)
            .await?)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn pool_stats(&self) -> Option<(u32, u32)> {
        let size = self.readers.size() + self.writer.size();
        let idle = (self.readers.num_idle() + self.writer.num_idle()) as u32;
        Some((size, idle))
    }
}
