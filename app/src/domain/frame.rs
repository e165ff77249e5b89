use serde::{Deserialize, Serialize};

use super::Message;

/// Frames the server sends on `/ws`. Messages are serialised once per
/// fan-out and shared by every socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A committed message (backlog or live), in seq order per room.
    Message(Message),
    /// A subscription's backlog is complete; `head` is the last seq the
    /// client now has in `room`. When the client asked to resume from
    /// beyond the room's head, `head` is the room's real head (lower than
    /// what it asked for): the client has everything up to it, and every
    /// later message follows.
    ///
    /// `epoch` is the database's identity: seqs of one epoch mean nothing
    /// in another. It changes when the database is restored from a backup
    /// (or created afresh); a client that knew another epoch cannot trust
    /// its `after` and reloads the room instead (empty: an older server
    /// that does not say).
    Ready {
        room: String,
        head: i64,
        #[serde(default)]
        epoch: String,
    },
    /// The backlog was longer than one subscription replays: the client has
    /// everything up to `after` and is *not* following `room` yet. It pages
    /// on by subscribing again with this `after`.
    More { room: String, after: i64 },
    /// Who is in `room` now, across all instances: distinct names, and a
    /// count that includes visitors without a name.
    Presence {
        room: String,
        names: Vec<String>,
        count: u32,
    },
    /// `name` is typing in `room` (ephemeral; shown for 5 s).
    Typing { room: String, name: String },
    /// A client frame was refused (e.g. a bad room name, or too many frames:
    /// then `retry_after_ms` says when to try again). The socket stays open,
    /// unless refusals go on (then it closes with 1008).
    Error {
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// `{"type":"message", …}` for `message`, serialised without copying it
    /// (done once per message, whatever the number of sockets).
    pub fn message_json(message: &Message) -> String {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "lowercase")]
        enum Borrowed<'a> {
            Message(&'a Message),
        }
        serde_json::to_string(&Borrowed::Message(message)).expect("a message always serialises")
    }
}

/// Frames a client may send. Unknown frames are ignored, so older servers
/// keep working with newer clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Follow a room (replaying everything after `after`, if given).
    Subscribe {
        room: String,
        after: Option<i64>,
    },
    /// Stop following a room.
    Unsubscribe {
        room: String,
    },
    /// The name to show in presence lists (empty: anonymous).
    Hello {
        name: String,
    },
    /// The user is typing in `room` (clients send at most one per 3 s).
    Typing {
        room: String,
    },
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageKind;
    use chrono::{TimeZone, Utc};

    #[test]
    fn message_frame_has_the_documented_shape() {
        let frame = ServerFrame::Message(Message {
            room: "lobby".into(),
            seq: 7,
            id: uuid::Uuid::nil(),
            kind: MessageKind::Broadcast,
            sender: "server".into(),
            content: "hi".into(),
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::to_value(&frame).unwrap();
        let ServerFrame::Message(m) = &frame else {
            unreachable!()
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ServerFrame::message_json(m)).unwrap(),
            v
        );
        assert_eq!(v["type"], "message");
        assert_eq!(v["room"], "lobby");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["kind"], "broadcast");
        assert_eq!(v["id"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(v["created_at"], "2026-01-02T03:04:05Z");
        let back: ServerFrame = serde_json::from_value(v).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn other_frames_have_the_documented_shape() {
        let v = serde_json::to_value(ServerFrame::Ready {
            room: "lobby".into(),
            head: 3,
            epoch: "5f0c".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "ready", "room": "lobby", "head": 3, "epoch": "5f0c"})
        );
        // From a server that does not say: unknown (empty).
        let old: ServerFrame =
            serde_json::from_str(r#"{"type":"ready","room":"lobby","head":3}"#).unwrap();
        assert!(matches!(old, ServerFrame::Ready { epoch, .. } if epoch.is_empty()));
        let v = serde_json::to_value(ServerFrame::Presence {
            room: "lobby".into(),
            names: vec!["alice".into()],
            count: 2,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "presence", "room": "lobby", "names": ["alice"], "count": 2})
        );
        let c: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","room":"general","after":4}"#).unwrap();
        assert_eq!(
            c,
            ClientFrame::Subscribe {
                room: "general".into(),
                after: Some(4)
            }
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::More {
                room: "lobby".into(),
                after: 1000
            })
            .unwrap(),
            serde_json::json!({"type": "more", "room": "lobby", "after": 1000})
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::Error {
                error: "Slow down.".into(),
                retry_after_ms: Some(1500)
            })
            .unwrap(),
            serde_json::json!({"type": "error", "error": "Slow down.", "retry_after_ms": 1500})
        );
        let c: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","room":"general"}"#).unwrap();
        assert_eq!(
            c,
            ClientFrame::Subscribe {
                room: "general".into(),
                after: None
            }
        );
    }
}
