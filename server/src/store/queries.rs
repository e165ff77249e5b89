//! The read queries, written once for both backends: the SQL is the same
//! (numbered `$N` parameters work in PostgreSQL and SQLite alike), so only
//! the pool differs. Inserts stay per backend: their locking differs.

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::{decode_message, decode_room, ListQuery, StoreError};
use app::domain::{Message, RoomId, RoomSummary, ANNOUNCEMENTS};

/// The columns of a message, in the order `decode_message` reads them.
pub(super) const COLUMNS: &str =
    "room, seq, id, kind, sender, content, created_at, author, target, edited_at, deleted_at";

/// A page of a room, ascending by seq (see [`ListQuery`]).
pub(super) async fn list<DB>(pool: &Pool<DB>, query: &ListQuery) -> Result<Vec<Message>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Uuid: Decode<'r, DB> + Type<DB>,
    for<'r> chrono::DateTime<chrono::Utc>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<chrono::DateTime<chrono::Utc>>: Decode<'r, DB> + Type<DB>,
    &'static str: sqlx::ColumnIndex<DB::Row>,
{
    let (after, before, limit) = query.bounds();
    let order = if query.after.is_some() { "ASC" } else { "DESC" };
    // History pages hold messages only (in their current state).
    let kinds = if query.messages_only {
        "AND kind IN ('user', 'broadcast')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE room = $1 AND seq > $2 AND seq < $3 {kinds} \
         ORDER BY seq {order} LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(query.room.as_str())
        .bind(after)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut messages = rows
        .iter()
        .map(decode_message)
        .collect::<Result<Vec<_>, _>>()?;
    if query.after.is_none() {
        messages.reverse();
    }
    Ok(messages)
}

/// The message stored under `id`, if any.
pub(super) async fn by_id<DB>(pool: &Pool<DB>, id: Uuid) -> Result<Option<Message>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Uuid: Decode<'r, DB>,
    for<'r> chrono::DateTime<chrono::Utc>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<chrono::DateTime<chrono::Utc>>: Decode<'r, DB> + Type<DB>,
    &'static str: sqlx::ColumnIndex<DB::Row>,
{
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(decode_message).transpose()?)
}

/// A room's last committed seq (0 when it has none).
pub(super) async fn head<DB>(pool: &Pool<DB>, room: &RoomId) -> Result<i64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let head: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = $1")
        .bind(room.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(head.unwrap_or(0))
}

/// Rooms with messages, most recently active first (announcements excluded).
pub(super) async fn rooms<DB>(pool: &Pool<DB>, limit: u32) -> Result<Vec<RoomSummary>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> chrono::DateTime<chrono::Utc>: Decode<'r, DB> + Type<DB>,
    &'static str: sqlx::ColumnIndex<DB::Row>,
{
    let rows = sqlx::query(
        "SELECT name, last_seq, last_active_at FROM rooms WHERE name <> $1 \
         ORDER BY last_active_at DESC, name LIMIT $2",
    )
    .bind(ANNOUNCEMENTS)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(decode_room)
        .collect::<Result<_, _>>()
        .map_err(StoreError::from)
}
