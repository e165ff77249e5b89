//! Sessions, held names, bans and message changes: the parts of the store
//! that know who said what. The SQL is the same for both backends
//! (numbered `$N` parameters), so it is written once, in a macro each
//! backend instantiates with its own driver types; only row locking differs
//! (PostgreSQL locks the changed message `FOR UPDATE`; SQLite has a single
//! writer).

use std::time::Duration;

use app::domain::{MessageBody, MessageKind, Reaction, RoomId, SenderName, REACTIONS};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The public, opaque id messages carry.
    pub author: String,
    pub name: Option<String>,
    /// The identity provider's subject, for signed-in identities.
    pub subject: Option<String>,
    pub moderator: bool,
}

/// A name to hold.
#[derive(Debug, Clone)]
pub struct NameClaim {
    pub author: String,
    /// The name as compared (NFKC, case-folded).
    pub key: String,
    /// The name as shown.
    pub name: String,
    pub now: DateTime<Utc>,
    pub held_until: DateTime<Utc>,
}

/// What a change does to its message.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    Edit(MessageBody),
    Delete,
    /// Adds the reaction, or takes it back if the actor already has it.
    React(String),
}

/// A change to a message, by `actor`, checked against the rules.
#[derive(Debug, Clone)]
pub struct Change {
    /// The event's own id.
    pub id: Uuid,
    pub room: RoomId,
    pub target: i64,
    pub kind: ChangeKind,
    pub actor: String,
    /// The actor's display name (events carry it like messages do).
    pub sender: SenderName,
    /// Moderators may delete anyone's message.
    pub moderator: bool,
    /// How long after posting an author may edit.
    pub edit_window: Duration,
}

/// The checks a change must pass, given the target row.
pub(super) fn check(
    change: &Change,
    kind: MessageKind,
    author: Option<&str>,
    created_at: DateTime<Utc>,
    deleted: bool,
    now: DateTime<Utc>,
) -> Result<(), super::StoreError> {
    use super::StoreError;
    if kind != MessageKind::User {
        return Err(StoreError::NotChangeable);
    }
    if deleted {
        return Err(StoreError::Deleted);
    }
    let own = author == Some(change.actor.as_str());
    match &change.kind {
        ChangeKind::Edit(_) if !own => Err(StoreError::Forbidden),
        ChangeKind::Edit(_)
            if now - created_at
                > chrono::Duration::from_std(change.edit_window)
                    .unwrap_or(chrono::Duration::MAX) =>
        {
            Err(StoreError::TooLate)
        }
        ChangeKind::Delete if !own && !change.moderator => Err(StoreError::Forbidden),
        ChangeKind::React(emoji) if !REACTIONS.contains(&emoji.as_str()) => {
            Err(StoreError::NotChangeable)
        }
        _ => Ok(()),
    }
}

/// Reactions in the fixed order of [`REACTIONS`].
pub(super) fn sorted(mut reactions: Vec<Reaction>) -> Vec<Reaction> {
    reactions.sort_by_key(|r| REACTIONS.iter().position(|e| *e == r.emoji));
    reactions
}

/// The trust queries for one backend. `$db` is the sqlx database type and
/// `$lock` what follows a `SELECT` that must lock the row it reads.
macro_rules! trust_queries {
    ($db:ty, $lock:literal) => {
        use app::domain::{Message, MessageKind, Reaction};
        use chrono::{DateTime, Utc};
        use sqlx::{Pool, Row, Transaction};

        use crate::store::{
            decode_message, now_millis, parse_kind,
            queries::COLUMNS,
            trust::{check, sorted, Change, ChangeKind, NameClaim, SessionRow},
            StoreError,
        };

        /// Checks and applies `change` inside `tx`; returns the event.
        pub(super) async fn change(
            tx: &mut Transaction<'_, $db>,
            change: &Change,
        ) -> Result<Message, StoreError> {
            let now = now_millis();
            let target = sqlx::query(&format!(
                "SELECT kind, author, created_at, deleted_at FROM messages \
                 WHERE room = $1 AND seq = $2 {}",
                $lock
            ))
            .bind(change.room.as_str())
            .bind(change.target)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            let kind = parse_kind(&target.try_get::<String, _>("kind")?)?;
            let author: Option<String> = target.try_get("author")?;
            let created_at: DateTime<Utc> = target.try_get("created_at")?;
            let deleted = target
                .try_get::<Option<DateTime<Utc>>, _>("deleted_at")?
                .is_some();
            check(change, kind, author.as_deref(), created_at, deleted, now)?;

            let (event_kind, content) = match &change.kind {
                ChangeKind::Edit(body) => {
                    sqlx::query(
                        "UPDATE messages SET content = $3, edited_at = $4 \
                         WHERE room = $1 AND seq = $2",
                    )
                    .bind(change.room.as_str())
                    .bind(change.target)
                    .bind(body.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    (MessageKind::Edit, body.as_str().to_owned())
                }
                ChangeKind::Delete => {
                    sqlx::query(
                        "UPDATE messages SET content = '', deleted_at = $3 \
                         WHERE room = $1 AND seq = $2",
                    )
                    .bind(change.room.as_str())
                    .bind(change.target)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query("DELETE FROM reactions WHERE room = $1 AND seq = $2")
                        .bind(change.room.as_str())
                        .bind(change.target)
                        .execute(&mut **tx)
                        .await?;
                    (MessageKind::Delete, String::new())
                }
                ChangeKind::React(emoji) => {
                    let removed = sqlx::query(
                        "DELETE FROM reactions \
                         WHERE room = $1 AND seq = $2 AND emoji = $3 AND author = $4",
                    )
                    .bind(change.room.as_str())
                    .bind(change.target)
                    .bind(emoji.as_str())
                    .bind(change.actor.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if removed > 0 {
                        (MessageKind::Unreact, emoji.clone())
                    } else {
                        sqlx::query(
                            "INSERT INTO reactions (room, seq, emoji, author) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(change.room.as_str())
                        .bind(change.target)
                        .bind(emoji.as_str())
                        .bind(change.actor.as_str())
                        .execute(&mut **tx)
                        .await?;
                        (MessageKind::React, emoji.clone())
                    }
                }
            };
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO rooms (name, last_seq, last_active_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET last_seq = rooms.last_seq + 1, last_active_at = $2 \
                 RETURNING last_seq",
            )
            .bind(change.room.as_str())
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            let row = sqlx::query(&format!(
                "INSERT INTO messages ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL) RETURNING {COLUMNS}"
            ))
            .bind(change.room.as_str())
            .bind(seq)
            .bind(change.id)
            .bind(event_kind.as_str())
            .bind(change.sender.as_str())
            .bind(content)
            .bind(now)
            .bind(change.actor.as_str())
            .bind(change.target)
            .fetch_one(&mut **tx)
            .await?;
            let mut event = decode_message(&row)?;
            if matches!(event_kind, MessageKind::React | MessageKind::Unreact) {
                event.reactions = reactions_of(tx, change.room.as_str(), change.target).await?;
            }
            Ok(event)
        }

        /// One message's reactions (counts only), in the fixed order.
        async fn reactions_of(
            tx: &mut Transaction<'_, $db>,
            room: &str,
            seq: i64,
        ) -> Result<Vec<Reaction>, StoreError> {
            let rows = sqlx::query(
                "SELECT emoji, count(*) AS n FROM reactions \
                 WHERE room = $1 AND seq = $2 GROUP BY emoji",
            )
            .bind(room)
            .bind(seq)
            .fetch_all(&mut **tx)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(Reaction {
                    emoji: row.try_get("emoji")?,
                    count: row.try_get::<i64, _>("n")? as u32,
                    mine: false,
                });
            }
            Ok(sorted(out))
        }

        /// Fills in the reactions of the message rows in `messages` (one
        /// query for the page), marking the viewer's own.
        pub(super) async fn attach_reactions(
            pool: &Pool<$db>,
            messages: &mut [Message],
            viewer: Option<&str>,
        ) -> Result<(), StoreError> {
            let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
                return Ok(());
            };
            let (room, from, to) = (first.room.clone(), first.seq, last.seq);
            let rows = sqlx::query(
                "SELECT seq, emoji, count(*) AS n, \
                 CAST(max(CASE WHEN author = $4 THEN 1 ELSE 0 END) AS BIGINT) AS mine \
                 FROM reactions WHERE room = $1 AND seq >= $2 AND seq <= $3 \
                 GROUP BY seq, emoji",
            )
            .bind(room)
            .bind(from)
            .bind(to)
            .bind(viewer.unwrap_or(""))
            .fetch_all(pool)
            .await?;
            for row in rows {
                let seq: i64 = row.try_get("seq")?;
                let mine: i64 = row.try_get::<Option<i64>, _>("mine")?.unwrap_or(0);
                if let Ok(at) = messages.binary_search_by_key(&seq, |m| m.seq) {
                    let m = &mut messages[at];
                    if m.kind.is_event() || m.deleted {
                        continue;
                    }
                    m.reactions.push(Reaction {
                        emoji: row.try_get("emoji")?,
                        count: row.try_get::<i64, _>("n")? as u32,
                        mine: viewer.is_some() && mine > 0,
                    });
                }
            }
            for m in messages.iter_mut().filter(|m| m.reactions.len() > 1) {
                m.reactions = sorted(std::mem::take(&mut m.reactions));
            }
            Ok(())
        }

        fn decode_session(row: &<$db as sqlx::Database>::Row) -> Result<SessionRow, StoreError> {
            Ok(SessionRow {
                author: row.try_get::<String, _>("author")?,
                name: row.try_get::<Option<String>, _>("name")?,
                subject: row.try_get::<Option<String>, _>("subject")?,
                moderator: row.try_get::<bool, _>("moderator")?,
            })
        }

        const SESSION: &str = "author, name, subject, moderator";

        pub(super) async fn session(
            pool: &Pool<$db>,
            token_hash: &str,
        ) -> Result<Option<SessionRow>, StoreError> {
            let row = sqlx::query(&format!("SELECT {SESSION} FROM sessions WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(decode_session).transpose()
        }

        pub(super) async fn create_session(
            pool: &Pool<$db>,
            token_hash: &str,
            new: &SessionRow,
        ) -> Result<SessionRow, StoreError> {
            sqlx::query(
                "INSERT INTO sessions (token_hash, author, name, subject, moderator) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(token_hash)
            .bind(new.author.as_str())
            .bind(new.name.as_deref())
            .bind(new.subject.as_deref())
            .bind(new.moderator)
            .execute(pool)
            .await?;
            session(pool, token_hash).await?.ok_or(StoreError::NotFound)
        }

        pub(super) async fn touch_session(pool: &Pool<$db>, author: &str) -> Result<(), StoreError> {
            sqlx::query("UPDATE sessions SET seen_at = $2 WHERE author = $1")
                .bind(author)
                .bind(now_millis())
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn set_moderator(pool: &Pool<$db>, author: &str) -> Result<(), StoreError> {
            sqlx::query("UPDATE sessions SET moderator = $2 WHERE author = $1")
                .bind(author)
                .bind(true)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn claim_name(
            tx: &mut Transaction<'_, $db>,
            claim: &NameClaim,
        ) -> Result<(), StoreError> {
            // Takes the name unless someone else holds it: an expired hold
            // is anybody's.
            let taken = sqlx::query(
                "INSERT INTO names (key, name, author, held_until) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE \
                 SET name = excluded.name, author = excluded.author, held_until = excluded.held_until \
                 WHERE names.author = excluded.author OR names.held_until <= $5",
            )
            .bind(claim.key.as_str())
            .bind(claim.name.as_str())
            .bind(claim.author.as_str())
            .bind(claim.held_until)
            .bind(claim.now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 0;
            if taken {
                return Err(StoreError::NameTaken);
            }
            sqlx::query("UPDATE sessions SET name = $2, seen_at = $3 WHERE author = $1")
                .bind(claim.author.as_str())
                .bind(claim.name.as_str())
                .bind(claim.now)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        pub(super) async fn name_holder(
            pool: &Pool<$db>,
            key: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<String>, StoreError> {
            Ok(
                sqlx::query_scalar("SELECT author FROM names WHERE key = $1 AND held_until > $2")
                    .bind(key)
                    .bind(now)
                    .fetch_optional(pool)
                    .await?,
            )
        }

        pub(super) async fn ban(pool: &Pool<$db>, author: &str, by: &str) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO bans (author, by_author) VALUES ($1, $2) ON CONFLICT (author) DO NOTHING",
            )
            .bind(author)
            .bind(by)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(super) async fn bans(pool: &Pool<$db>) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar("SELECT author FROM bans")
                .fetch_all(pool)
                .await?)
        }

        pub(super) async fn authored_since(
            pool: &Pool<$db>,
            author: &str,
            since: DateTime<Utc>,
        ) -> Result<Vec<(String, i64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT room, seq FROM messages WHERE author = $1 AND created_at >= $2 \
                 AND kind = $3 AND deleted_at IS NULL ORDER BY created_at",
            )
            .bind(author)
            .bind(since)
            .bind(MessageKind::User.as_str())
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("room")?, r.try_get("seq")?)))
                .collect()
        }
    };
}

pub(super) use trust_queries;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn change(kind: ChangeKind, actor: &str, moderator: bool) -> Change {
        Change {
            id: Uuid::nil(),
            room: RoomId::lobby(),
            target: 1,
            kind,
            actor: actor.into(),
            sender: SenderName::parse("someone").unwrap(),
            moderator,
            edit_window: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_rules() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let soon = t0 + chrono::Duration::minutes(5);
        let late = t0 + chrono::Duration::minutes(11);
        let edit = |actor: &str| {
            change(
                ChangeKind::Edit(MessageBody::parse("x").unwrap()),
                actor,
                false,
            )
        };
        let user = MessageKind::User;
        // Authors edit their own, within the window.
        assert!(check(&edit("a"), user, Some("a"), t0, false, soon).is_ok());
        assert!(matches!(
            check(&edit("a"), user, Some("a"), t0, false, late),
            Err(StoreError::TooLate)
        ));
        assert!(matches!(
            check(&edit("b"), user, Some("a"), t0, false, soon),
            Err(StoreError::Forbidden)
        ));
        // Delete: own at any time, or a moderator's.
        let delete = |actor: &str, m: bool| change(ChangeKind::Delete, actor, m);
        assert!(check(&delete("a", false), user, Some("a"), t0, false, late).is_ok());
        assert!(matches!(
            check(&delete("b", false), user, Some("a"), t0, false, soon),
            Err(StoreError::Forbidden)
        ));
        assert!(check(&delete("b", true), user, Some("a"), t0, false, soon).is_ok());
        // Guests' messages have no author: only moderators may delete them.
        assert!(matches!(
            check(&delete("b", false), user, None, t0, false, soon),
            Err(StoreError::Forbidden)
        ));
        // Anyone reacts, with the fixed set only.
        assert!(check(
            &change(ChangeKind::React("👍".into()), "b", false),
            user,
            Some("a"),
            t0,
            false,
            late
        )
        .is_ok());
        assert!(matches!(
            check(
                &change(ChangeKind::React("🍕".into()), "b", false),
                user,
                Some("a"),
                t0,
                false,
                soon
            ),
            Err(StoreError::NotChangeable)
        ));
        // Deleted messages, broadcasts and events cannot change.
        assert!(matches!(
            check(&delete("a", false), user, Some("a"), t0, true, soon),
            Err(StoreError::Deleted)
        ));
        assert!(matches!(
            check(
                &delete("b", true),
                MessageKind::Broadcast,
                None,
                t0,
                false,
                soon
            ),
            Err(StoreError::NotChangeable)
        ));
        assert!(matches!(
            check(
                &delete("a", false),
                MessageKind::Edit,
                Some("a"),
                t0,
                false,
                soon
            ),
            Err(StoreError::NotChangeable)
        ));
    }
}
