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
    Backend, Inserted, ListQuery, NewMessage, PoolOptions, Store, StoreError,
};

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
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
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
            "INSERT INTO messages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {COLUMNS}"
        ))
        .bind(new.room.as_str())
        .bind(seq)
        .bind(new.id)
        .bind(new.kind.as_str())
        .bind(new.sender.as_str())
        .bind(new.content.as_str())
        .bind(now)
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
        queries::list(&self.readers, query).await
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

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn pool_stats(&self) -> Option<(u32, u32)> {
        let size = self.readers.size() + self.writer.size();
        let idle = (self.readers.num_idle() + self.writer.num_idle()) as u32;
        Some((size, idle))
    }
}
