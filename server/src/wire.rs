//! The wire format of the PostgreSQL NOTIFY channels, owned here and
//! imported by both ends: the store (sends a [`Notice`] inside each insert's
//! transaction), presence (sends [`Ephemeral`] announcements) and the commit
//! feed (listens to both).
//!
//! NOTIFY payloads must stay under 8000 bytes (PostgreSQL refuses larger
//! ones), so both encoders cap what they produce.

use app::domain::Message;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every committed message, announced at commit, in commit order.
pub const MESSAGES_CHANNEL: &str = "chat_messages";
/// Presence and typing: ephemeral, never stored.
pub const EPHEMERAL_CHANNEL: &str = "chat_ephemeral";

/// PostgreSQL's limit is 8000 bytes; stay clear of it.
pub const MAX_PAYLOAD: usize = 7000;

/// What a NOTIFY on [`MESSAGES_CHANNEL`] carries: the message itself, or
/// (when it would not fit) its room and seq, for listeners to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Notice {
    Full(Message),
    Ref { room: String, seq: i64 },
}

impl Notice {
    pub fn encode(message: &Message) -> String {
        let full = serde_json::to_string(&Notice::Full(message.clone())).expect("serialises");
        if full.len() <= MAX_PAYLOAD {
            full
        } else {
            serde_json::to_string(&Notice::Ref {
                room: message.room.clone(),
                seq: message.seq,
            })
            .expect("serialises")
        }
    }

    pub fn decode(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// What instances tell each other on [`EPHEMERAL_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Ephemeral {
    /// An instance's snapshot of a room: the names of its sockets there and
    /// how many have no name.
    Presence {
        instance: Uuid,
        room: String,
        names: Vec<String>,
        anon: u32,
    },
    Typing {
        instance: Uuid,
        room: String,
        name: String,
    },
    /// An author was banned: every instance closes their sockets.
    Ban { author: String },
}

impl Ephemeral {
    /// The payload, within [`MAX_PAYLOAD`]: a presence snapshot with too
    /// many names lists as many as fit and counts the rest as unnamed, so
    /// the total stays right.
    pub fn encode(&self) -> String {
        let payload = serde_json::to_string(self).expect("serialises");
        if payload.len() <= MAX_PAYLOAD {
            return payload;
        }
        match self {
            Ephemeral::Presence {
                instance,
                room,
                names,
                anon,
            } => {
                let mut kept = Vec::new();
                // The frame around the names, plus room for the count.
                let mut size = payload.len() - serde_json::to_string(names).expect("ser").len() + 2;
                for name in names {
                    let cost = serde_json::to_string(name).expect("ser").len() + 1;
                    if size + cost > MAX_PAYLOAD {
                        break;
                    }
                    size += cost;
                    kept.push(name.clone());
                }
                let dropped = (names.len() - kept.len()) as u32;
                serde_json::to_string(&Ephemeral::Presence {
                    instance: *instance,
                    room: room.clone(),
                    names: kept,
                    anon: anon.saturating_add(dropped),
                })
                .expect("serialises")
            }
            // Names, rooms and author ids are short: never reached.
            Ephemeral::Typing { .. } | Ephemeral::Ban { .. } => payload,
        }
    }

    pub fn decode(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::domain::MessageKind;

    fn message(content: String) -> Message {
        Message {
            room: "lobby".into(),
            seq: 7,
            id: Uuid::nil(),
            kind: MessageKind::User,
            sender: "alice".into(),
            content,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn small_messages_travel_whole_and_big_ones_by_reference() {
        let small = message("hi".into());
        assert_eq!(
            Notice::decode(&Notice::encode(&small)).unwrap(),
            Notice::Full(small)
        );
        // 2000 three-byte characters are 6000 bytes, escaped as \uXXXX more.
        let big = message("\u{7}".repeat(2000));
        let payload = Notice::encode(&big);
        assert!(payload.len() <= MAX_PAYLOAD);
        assert_eq!(
            Notice::decode(&payload).unwrap(),
            Notice::Ref {
                room: "lobby".into(),
                seq: 7
            }
        );
    }

    #[test]
    fn a_crowded_presence_snapshot_fits_and_keeps_its_count() {
        let names: Vec<String> = (0..2000).map(|i| format!("person-number-{i:05}")).collect();
        let e = Ephemeral::Presence {
            instance: Uuid::nil(),
            room: "lobby".into(),
            names: names.clone(),
            anon: 3,
        };
        let payload = e.encode();
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        let Ephemeral::Presence {
            names: kept, anon, ..
        } = Ephemeral::decode(&payload).unwrap()
        else {
            panic!("presence")
        };
        assert!(!kept.is_empty());
        assert_eq!(kept.len() as u32 + anon, 2003);
        assert_eq!(kept[..], names[..kept.len()]);
        // A small one is untouched.
        let small = Ephemeral::Presence {
            instance: Uuid::nil(),
            room: "lobby".into(),
            names: vec!["a".into()],
            anon: 0,
        };
        assert_eq!(Ephemeral::decode(&small.encode()).unwrap(), small);
    }
}
