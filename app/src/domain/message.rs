use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a row of a room's sequence is: a message (from a person or the
/// server's broadcaster), or an event that changes an earlier message
/// (`target`): an edit, a deletion, a reaction added or taken back. Events
/// take a seq of their own, so replaying a room from any seq converges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    #[default]
    User,
    Broadcast,
    Edit,
    Delete,
    React,
    Unreact,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::User,
        MessageKind::Broadcast,
        MessageKind::Edit,
        MessageKind::Delete,
        MessageKind::React,
        MessageKind::Unreact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::User => "user",
            MessageKind::Broadcast => "broadcast",
            MessageKind::Edit => "edit",
            MessageKind::Delete => "delete",
            MessageKind::React => "react",
            MessageKind::Unreact => "unreact",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// An event changing another message (not a message of its own).
    pub fn is_event(self) -> bool {
        !matches!(self, MessageKind::User | MessageKind::Broadcast)
    }
}

/// The reactions people can add: a small fixed set.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/// How many people reacted to a message with one emoji (and whether the
/// viewer is among them, when the server knows who is asking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
}

/// A committed message or event. `seq` is gapless per room and committed in
/// order, so "everything after seq n" is a complete answer at any time.
///
/// A message row read from history is in its current state: edited text
/// with `edited_at`, a tombstone (`deleted`, empty text) once deleted, and
/// its reactions. An event says what changed: `edit` carries the new text,
/// `react`/`unreact` the emoji (in `content`) and the target's reactions
/// after the change, all as absolute values, so applying one twice is
/// harmless.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(deserialize_with = "super::wire_time::required")]
    pub created_at: DateTime<Utc>,
    /// The public, opaque id of who wrote it (or made the change); absent
    /// for guests and the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// For an event: the seq of the message it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i64>,
    /// When the text was last edited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::wire_time::optional"
    )]
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted: a tombstone without text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

impl Message {
    /// Applies `event` (an edit, deletion or reaction aimed at this
    /// message) to it. `me` is the viewer's author id, to keep `mine`.
    /// Returns whether it changed anything.
    pub fn apply(&mut self, event: &Message, me: Option<&str>) -> bool {
        if event.target != Some(self.seq) || event.room != self.room {
            return false;
        }
        match event.kind {
            MessageKind::Edit if !self.deleted => {
                self.content = event.content.clone();
                self.edited_at = Some(event.created_at);
            }
            MessageKind::Delete => {
                self.deleted = true;
                self.content.clear();
                self.reactions.clear();
            }
            MessageKind::React | MessageKind::Unreact if !self.deleted => {
                let by_me = me.is_some() && event.author.as_deref() == me;
                let mine: Vec<String> = self
                    .reactions
                    .iter()
                    .filter(|r| r.mine)
                    .map(|r| r.emoji.clone())
                    .collect();
                self.reactions = event
                    .reactions
                    .iter()
                    .map(|r| Reaction {
                        emoji: r.emoji.clone(),
                        count: r.count,
                        mine: if by_me && r.emoji == event.content {
                            event.kind == MessageKind::React
                        } else {
                            mine.contains(&r.emoji)
                        },
                    })
                    .collect();
            }
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            content: "hello".into(),
            author: Some("a1".into()),
            ..Default::default()
        }
    }

    fn event(seq: i64, kind: MessageKind, target: i64, author: &str) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            kind,
            target: Some(target),
            author: Some(author.into()),
            created_at: chrono::DateTime::from_timestamp(60, 0).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn events_apply_as_absolute_values_so_twice_is_harmless() {
        let mut m = message(1);
        let mut edit = event(2, MessageKind::Edit, 1, "a1");
        edit.content = "hello, edited".into();
        assert!(m.apply(&edit, None));
        assert!(m.apply(&edit, None));
        assert_eq!(m.content, "hello, edited");
        assert_eq!(m.edited_at, Some(edit.created_at));

        let mut react = event(3, MessageKind::React, 1, "me");
        react.content = "👍".into();
        react.reactions = vec![Reaction {
            emoji: "👍".into(),
            count: 2,
            mine: false,
        }];
        m.apply(&react, Some("me"));
        m.apply(&react, Some("me"));
        assert_eq!(
            m.reactions,
            vec![Reaction {
                emoji: "👍".into(),
                count: 2,
                mine: true
            }]
        );
        // Someone else's reaction keeps mine.
        let mut other = event(4, MessageKind::React, 1, "them");
        other.content = "🎉".into();
        other.reactions = vec![
            Reaction {
                emoji: "👍".into(),
                count: 2,
                mine: false,
            },
            Reaction {
                emoji: "🎉".into(),
                count: 1,
                mine: false,
            },
        ];
        m.apply(&other, Some("me"));
        assert!(m.reactions[0].mine && !m.reactions[1].mine);
        let mut unreact = event(5, MessageKind::Unreact, 1, "me");
        unreact.content = "👍".into();
        unreact.reactions = vec![
            Reaction {
                emoji: "👍".into(),
                count: 1,
                mine: false,
            },
            Reaction {
                emoji: "🎉".into(),
                count: 1,
                mine: false,
            },
        ];
        m.apply(&unreact, Some("me"));
        assert_eq!(
            m.reactions[0],
            Reaction {
                emoji: "👍".into(),
                count: 1,
                mine: false
            }
        );

        // A deletion leaves a tombstone that nothing changes again.
        assert!(m.apply(&event(6, MessageKind::Delete, 1, "a1"), None));
        assert!(m.deleted && m.content.is_empty() && m.reactions.is_empty());
        assert!(!m.apply(&edit, None));
        assert!(m.content.is_empty());
        // Events for other messages do nothing.
        assert!(!message(7).apply(&edit, None));
    }
}

/// A room in the room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    /// The room's newest seq (for unread counts).
    pub last_seq: i64,
    #[serde(deserialize_with = "super::wire_time::required")]
    pub last_active_at: DateTime<Utc>,
}
