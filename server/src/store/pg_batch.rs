//! Group commit for PostgreSQL posts. Taking a room's next seq locks its
//! counter row until the transaction commits, so posts into one room commit
//! one after another, each waiting for its own WAL flush: about 600 a
//! second. Here one task takes every post waiting at that moment (up to
//! [`MAX_BATCH`]) and stores them in one transaction: per room one counter
//! update reserving as many seqs as it has posts, one multi-row insert, one
//! `pg_notify` per message (in seq order), one commit. While it commits the
//! next posts queue up, so the batch grows with the load and the WAL is
//! flushed once per batch instead of once per post. Seqs stay gapless and
//! committed in order. A batch is first stored as if every id were new (no
//! look-up: retries are rare); if one was stored before, the batch is undone
//! and stored again with the known ids answered from the table (a retry takes
//! no seq), and if an id arrives meanwhile through another instance, one post
//! at a time.

use std::collections::{BTreeMap, HashMap};

use app::domain::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{decode_message, now_millis, queries::COLUMNS, Inserted, NewMessage, StoreError};
use crate::wire::{Notice, MESSAGES_CHANNEL};

/// Posts stored in one transaction at most.
pub const MAX_BATCH: usize = 512;

pub(super) struct Post {
    pub new: NewMessage,
    pub reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The sending end: where posts wait for the next batch.
pub(super) type Queue = mpsc::Sender<Post>;

/// Starts the batching task for `pool`.
pub(super) fn start(pool: PgPool) -> Queue {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
    tokio::spawn(run(pool, rx));
    tx
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Post>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        store(&pool, std::mem::take(&mut batch)).await;
    }
}

/// Stores one batch and answers every post in it.
async fn store(pool: &PgPool, batch: Vec<Post>) {
    metrics::histogram!("post_batch_size").record(batch.len() as f64);
    let mut result = try_batch(pool, &batch, Known::Unchecked).await;
    if let Err(Fallback::KnownIds) = result {
        result = try_batch(pool, &batch, Known::LookUp).await;
    }
    match result {
        Ok(results) => {
            for (post, result) in batch.into_iter().zip(results) {
                let _ = post.reply.send(Ok(result));
            }
        }
        Err(Fallback::OneByOne | Fallback::KnownIds) => {
            for post in batch {
                let result = super::postgres::insert_one(pool, post.new).await;
                let _ = post.reply.send(result);
            }
        }
        Err(Fallback::Failed(e)) => {
            tracing::warn!(error = ?e, posts = batch.len(), "a batch of posts failed");
            let unavailable = matches!(e, StoreError::Unavailable(_));
            for post in batch {
                let _ = post.reply.send(Err(if unavailable {
                    StoreError::Unavailable(sqlx::Error::PoolTimedOut)
                } else {
                    StoreError::Other(sqlx::Error::Protocol(e.to_string()))
                }));
            }
        }
    }
}

/// Whether a batch looks for ids stored before (retries) first.
#[derive(Clone, Copy, PartialEq)]
enum Known {
    Unchecked,
    LookUp,
}

enum Fallback {
    /// An id of the batch was stored before: try again, looking them up.
    KnownIds,
    /// An id of the batch was stored meanwhile (another instance): store
    /// them one by one, which handles that.
    OneByOne,
    Failed(StoreError),
}

impl From<sqlx::Error> for Fallback {
    fn from(e: sqlx::Error) -> Self {
        Fallback::Failed(e.into())
    }
}

impl From<StoreError> for Fallback {
    fn from(e: StoreError) -> Self {
        Fallback::Failed(e)
    }
}

async fn try_batch(pool: &PgPool, batch: &[Post], look: Known) -> Result<Vec<Inserted>, Fallback> {
    // Retries: ids already stored are answered as they are.
    let known: HashMap<Uuid, Message> = if look == Known::LookUp {
        let ids: Vec<Uuid> = batch.iter().map(|p| p.new.id).collect();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM messages WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| decode_message(r).map(|m| (m.id, m)))
            .collect::<Result<_, _>>()?
    } else {
        HashMap::new()
    };
    // The rest, once each (two copies of one id in a batch: the first counts),
    // by room (in name order, so instances lock rooms in the same order).
    let mut fresh: BTreeMap<&str, Vec<&NewMessage>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for post in batch {
        if !known.contains_key(&post.new.id) && seen.insert(post.new.id) {
            fresh
                .entry(post.new.room.as_str())
                .or_default()
                .push(&post.new);
        }
    }
    let mut stored: HashMap<Uuid, Message> = HashMap::new();
    if !fresh.is_empty() {
        let mut tx = pool.begin().await?;
        let messages = insert_all(&mut tx, &fresh).await?;
        let expected: usize = fresh.values().map(Vec::len).sum();
        if messages.len() != expected {
            tx.rollback().await?;
            return Err(match look {
                Known::Unchecked => Fallback::KnownIds,
                Known::LookUp => Fallback::OneByOne,
            });
        }
        // Delivered to every listener at commit, in commit order (by room,
        // then seq).
        let payloads: Vec<String> = messages.iter().map(Notice::encode).collect();
        sqlx::query(
            "SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) WITH ORDINALITY AS t(payload, n) \
             ORDER BY n",
        )
        .bind(MESSAGES_CHANNEL)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        stored.extend(messages.into_iter().map(|m| (m.id, m)));
    }
    let mut created = std::collections::HashSet::new();
    batch
        .iter()
        .map(|post| {
            let id = post.new.id;
            if let Some(m) = stored.get(&id) {
                // The first post with this id created it; a copy did not.
                Ok(Inserted {
                    message: m.clone(),
                    created: created.insert(id),
                })
            } else {
                known
                    .get(&id)
                    .cloned()
                    .map(|message| Inserted {
                        message,
                        created: false,
                    })
                    .ok_or(Fallback::Failed(StoreError::NotFound))
            }
        })
        .collect()
}

/// Reserves each room's next seqs for its posts (row-locking the rooms'
/// counters, in name order, until commit) and inserts every post, with a
/// constant number of statements whatever the number of rooms. Returns the
/// stored messages by room and seq (fewer than the posts if an id was there
/// already).
async fn insert_all(
    tx: &mut Transaction<'_, Postgres>,
    fresh: &BTreeMap<&str, Vec<&NewMessage>>,
) -> Result<Vec<Message>, Fallback> {
    let names: Vec<&str> = fresh.keys().copied().collect();
    let counts: Vec<i64> = fresh.values().map(|p| p.len() as i64).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO rooms (name, last_seq, last_active_at) \
         SELECT name, n, now() FROM UNNEST($1::text[], $2::bigint[]) AS t(name, n) ORDER BY name \
         ON CONFLICT (name) DO UPDATE \
         SET last_seq = rooms.last_seq + excluded.last_seq, last_active_at = now() \
         RETURNING name, last_seq",
    )
    .bind(&names)
    .bind(&counts)
    .fetch_all(&mut **tx)
    .await?;
    let last: HashMap<String, i64> = rows.into_iter().collect();
    let total: usize = counts.iter().map(|&n| n as usize).sum();
    let (mut rooms, mut seqs, mut ids) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut kinds, mut senders, mut contents, mut authors) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    for (room, posts) in fresh {
        let end = *last
            .get(*room)
            .ok_or(Fallback::Failed(StoreError::NotFound))?;
        let first = end - posts.len() as i64 + 1;
        for (post, seq) in posts.iter().zip(first..) {
            rooms.push(*room);
            seqs.push(seq);
            ids.push(post.id);
            kinds.push(post.kind.as_str());
            senders.push(post.sender.as_str());
            contents.push(post.content.as_str());
            authors.push(post.author.as_deref());
        }
    }
    let rows = sqlx::query(&format!(
        "INSERT INTO messages (room, seq, id, kind, sender, content, created_at, author) \
         SELECT room, seq, id, kind, sender, content, $1, author \
         FROM UNNEST($2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                     $8::text[]) AS t(room, seq, id, kind, sender, content, author) \
         ORDER BY room, seq \
         ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(now_millis())
    .bind(&rooms)
    .bind(&seqs)
    .bind(&ids)
    .bind(&kinds)
    .bind(&senders)
    .bind(&contents)
    .bind(&authors)
    .fetch_all(&mut **tx)
    .await?;
    let mut messages = rows
        .iter()
        .map(decode_message)
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from)?;
    messages.sort_by(|a, b| (a.room.as_str(), a.seq).cmp(&(b.room.as_str(), b.seq)));
    Ok(messages)
}
