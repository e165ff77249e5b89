//! PostgreSQL implementation of [`Store`].

use async_trait::async_trait;
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

use super::{
    decode_message, now_millis,
    queries::{self, COLUMNS},
    Backend, Change, Inserted, ListQuery, NameClaim, NewMessage, PoolOptions, SessionRow, Store,
    StoreError,
};
use crate::wire::{Notice, MESSAGES_CHANNEL};
use app::domain::{Message, RoomId, RoomSummary};

mod trust {
    super::super::trust::trust_queries!(sqlx::Postgres, "FOR UPDATE");
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for health checks, so a flood of posts
    /// queueing for the main pool never makes a healthy database look dead.
    health: PgPool,
    /// Posts wait here to be stored together (group commit).
    posts: super::pg_batch::Queue,
}

impl PgStore {
    pub async fn connect(url: &str, opts: &PoolOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let health = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(super::HEALTH_TIMEOUT)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        // The batches have a connection of their own: they never queue
        // behind the reads of a busy pool (every post waits for them).
        let writer = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        let posts = super::pg_batch::start(writer);
        Ok(Self {
            pool,
            health,
            posts,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
        queries::by_id(&self.pool, id).await
    }
}

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(skip_all, fields(room_id = %new.room))]
    async fn insert(&self, new: NewMessage) -> Result<Inserted, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let post = super::pg_batch::Post { new, reply };
        if self.posts.send(post).await.is_err() {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        answer
            .await
            .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::PoolClosed)))
    }

    #[tracing::instrument(skip_all, fields(room_id = %query.room))]
    async fn list(&self, query: &ListQuery) -> Result<Vec<Message>, StoreError> {
        let mut messages = queries::list(&self.pool, query).await?;
        trust::attach_reactions(&self.pool, &mut messages, query.viewer.as_deref()).await?;
        Ok(messages)
    }

    async fn message_by_id(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
        self.by_id(id).await
    }

    #[tracing::instrument(skip_all, fields(room_id = %change.room))]
    async fn change(&self, change: Change) -> Result<Message, StoreError> {
        let mut tx = self.pool.begin().await?;
        let event = trust::change(&mut tx, &change).await?;
        // At commit, in commit order, like every message.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(MESSAGES_CHANNEL)
            .bind(Notice::encode(&event))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        trust::session(&self.pool, token_hash).await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        row: &SessionRow,
    ) -> Result<SessionRow, StoreError> {
        trust::create_session(&self.pool, token_hash, row).await
    }

    async fn touch_session(&self, author: &str) -> Result<(), StoreError> {
        trust::touch_session(&self.pool, author).await
    }

    async fn set_moderator(&self, author: &str) -> Result<(), StoreError> {
        trust::set_moderator(&self.pool, author).await
    }

    async fn claim_name(&self, claim: &NameClaim) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        trust::claim_name(&mut tx, claim).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn name_holder(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, StoreError> {
        trust::name_holder(&self.pool, key, now).await
    }

    async fn ban(&self, author: &str, by: &str) -> Result<(), StoreError> {
        trust::ban(&self.pool, author, by).await
    }

    async fn bans(&self) -> Result<Vec<String>, StoreError> {
        trust::bans(&self.pool).await
    }

    async fn authored_since(
        &self,
        author: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        trust::authored_since(&self.pool, author, since).await
    }

    async fn head(&self, room: &RoomId) -> Result<i64, StoreError> {
        queries::head(&self.pool, room).await
    }

    async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, StoreError> {
        queries::rooms(&self.pool, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.health).await?;
        Ok(())
    }

    async fn epoch(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT epoch FROM epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool_stats(&self) -> Option<(u32, u32)> {
        Some((self.pool.size(), self.pool.num_idle() as u32))
    }
}

/// Stores one post in a transaction of its own (the batch's fallback when
/// an id of it was stored meanwhile by another instance).
pub(super) async fn insert_one(pool: &PgPool, new: NewMessage) -> Result<Inserted, StoreError> {
    // Fast path for retries: no counter update, no transaction.
    if let Some(message) = queries::by_id(pool, new.id).await? {
        return Ok(Inserted {
            message,
            created: false,
        });
    }
    let mut tx = pool.begin().await?;
    // Taking the next seq row-locks the room until commit: a concurrent
    // poster waits here, so seqs commit in order and without gaps.
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO rooms (name, last_seq, last_active_at) VALUES ($1, 1, now()) \
         ON CONFLICT (name) DO UPDATE \
         SET last_seq = rooms.last_seq + 1, last_active_at = now() \
         RETURNING last_seq",
    )
    .bind(new.room.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let row = sqlx::query(&format!(
        "INSERT INTO messages ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL) \
         ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(new.room.as_str())
    .bind(seq)
    .bind(new.id)
    .bind(new.kind.as_str())
    .bind(new.sender.as_str())
    .bind(new.content.as_str())
    .bind(now_millis())
    .bind(new.author.as_deref())
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some(row) => {
            let message = decode_message(&row)?;
            // Delivered to every listener at commit, in commit order.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(MESSAGES_CHANNEL)
                .bind(Notice::encode(&message))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Inserted {
                message,
                created: true,
            })
        }
        None => {
            // The same id committed meanwhile: undo our seq, return theirs.
            tx.rollback().await?;
            let message = queries::by_id(pool, new.id)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok(Inserted {
                message,
                created: false,
            })
        }
    }
}
