use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who produced a message: a person, or the server's random broadcaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    User,
    Broadcast,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::User => "user",
            MessageKind::Broadcast => "broadcast",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(MessageKind::User),
            "broadcast" => Some(MessageKind::Broadcast),
            _ => None,
        }
    }
}

/// A committed message. `seq` is gapless per room and committed in order, so
/// "everything after seq n" is a complete answer at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Message {
    /// Room name: 1-32 of `a-z 0-9 - _`.
    pub room: String,
    /// Per-room sequence number: gapless, in commit order, from 1.
    pub seq: i64,
    /// Client-generated idempotency key.
    pub id: Uuid,
    pub kind: MessageKind,
    pub sender: String,
    pub content: String,
    /// Server time (UTC) when stored.
    pub created_at: DateTime<Utc>,
}

/// A room in the room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    /// The room's newest seq (for unread counts).
    pub last_seq: i64,
    pub last_active_at: DateTime<Utc>,
}
