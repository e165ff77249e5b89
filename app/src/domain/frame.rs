use serde::{Deserialize, Serialize};

use super::Message;

/// Frames the server sends on `/ws`. Messages are serialised once per
/// fan-out and shared by every socket. Every frame is a JSON object whose
/// first member is its `type` (read by [`ServerFrame`]'s `Deserialize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Reads a frame whose `type` comes first, as the server writes it, and
/// the rest of the object straight into the variant's fields.
///
/// serde's derive for an internally tagged enum buffers the whole object
/// (serde's private `Content`) before it knows the variant, then reads the
/// variant's fields from that buffer: a second deserialiser for every type
/// in a frame, [`Message`] included, beside the one that reads the same
/// types from the page's hydration data and server functions. In the WASM
/// that was about 30 KB of code before compression. Here a message's
/// fields are read by the very code that reads a `Message` anywhere else.
impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FrameVisitor)
    }
}

struct FrameVisitor;

/// The `type` member's value.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Message,
    Ready,
    More,
    Presence,
    Typing,
    Error,
}

/// The first member's name, which must be `type`.
#[derive(Deserialize)]
enum TypeFirst {
    #[serde(rename = "type")]
    Type,
}

/// The fields of the variants other than `Message`, as on the wire.
mod fields {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Ready {
        pub room: String,
        pub head: i64,
        #[serde(default)]
        pub epoch: String,
    }

    #[derive(Deserialize)]
    pub struct More {
        pub room: String,
        pub after: i64,
    }

    #[derive(Deserialize)]
    pub struct Presence {
        pub room: String,
        pub names: Vec<String>,
        pub count: u32,
    }

    #[derive(Deserialize)]
    pub struct Typing {
        pub room: String,
        pub name: String,
    }

    #[derive(Deserialize)]
    pub struct Error {
        pub error: String,
        #[serde(default)]
        pub retry_after_ms: Option<u64>,
    }
}

impl<'de> serde::de::Visitor<'de> for FrameVisitor {
    type Value = ServerFrame;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a frame object that begins with its \"type\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ServerFrame, A::Error> {
        let Some(TypeFirst::Type) = map.next_key()? else {
            return Err(serde::de::Error::missing_field("type"));
        };
        let kind: Kind = map.next_value()?;
        let rest = serde::de::value::MapAccessDeserializer::new(map);
        Ok(match kind {
            Kind::Message => ServerFrame::Message(Message::deserialize(rest)?),
            Kind::Ready => {
                let fields::Ready { room, head, epoch } = Deserialize::deserialize(rest)?;
                ServerFrame::Ready { room, head, epoch }
            }
            Kind::More => {
                let fields::More { room, after } = Deserialize::deserialize(rest)?;
                ServerFrame::More { room, after }
            }
            Kind::Presence => {
                let fields::Presence { room, names, count } = Deserialize::deserialize(rest)?;
                ServerFrame::Presence { room, names, count }
            }
            Kind::Typing => {
                let fields::Typing { room, name } = Deserialize::deserialize(rest)?;
                ServerFrame::Typing { room, name }
            }
            Kind::Error => {
                let fields::Error {
                    error,
                    retry_after_ms,
                } = Deserialize::deserialize(rest)?;
                ServerFrame::Error {
                    error,
                    retry_after_ms,
                }
            }
        })
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
        let back: ServerFrame = serde_json::from_str(&ServerFrame::message_json(m)).unwrap();
        assert_eq!(back, frame);
    }

    /// Every frame the server writes reads back as itself.
    #[test]
    fn every_frame_reads_back() {
        let frames = [
            ServerFrame::Message(Message {
                room: "lobby".into(),
                seq: 9,
                sender: "ann".into(),
                content: "héllo".into(),
                created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
                ..Default::default()
            }),
            ServerFrame::Ready {
                room: "lobby".into(),
                head: 3,
                epoch: "5f0c".into(),
            },
            ServerFrame::More {
                room: "lobby".into(),
                after: 1000,
            },
            ServerFrame::Presence {
                room: "lobby".into(),
                names: vec!["alice".into(), "bob".into()],
                count: 3,
            },
            ServerFrame::Typing {
                room: "lobby".into(),
                name: "alice".into(),
            },
            ServerFrame::Error {
                error: "Slow down.".into(),
                retry_after_ms: Some(1500),
            },
            ServerFrame::Error {
                error: "Bad room.".into(),
                retry_after_ms: None,
            },
        ];
        for frame in frames {
            let json = serde_json::to_string(&frame).unwrap();
            assert!(json.starts_with(r#"{"type":"#), "{json}");
            let back: ServerFrame = serde_json::from_str(&json).unwrap();
            assert_eq!(back, frame, "{json}");
        }
    }

    /// What is not a frame is refused with a reason (the page logs it and
    /// reads on), never misread as another frame.
    #[test]
    fn refuses_what_is_not_a_frame() {
        let bad = [
            (
                r#"{"room":"lobby","type":"ready","head":3}"#,
                "expected `type`",
            ),
            (
                r#"{"type":"shout","room":"lobby"}"#,
                "unknown variant `shout`",
            ),
            (r#"{"type":"ready","room":"lobby"}"#, "missing field `head`"),
            (
                r#"{"type":"more","room":"lobby","after":"x"}"#,
                "invalid type",
            ),
            (r#"{}"#, "missing field `type`"),
            (r#"["ready"]"#, "invalid type"),
        ];
        for (json, why) in bad {
            let e = serde_json::from_str::<ServerFrame>(json).unwrap_err();
            assert!(e.to_string().contains(why), "{json}: {e}");
        }
        // Members a newer server adds are skipped.
        let newer: ServerFrame =
            serde_json::from_str(r#"{"type":"typing","room":"a","name":"b","until":5}"#).unwrap();
        assert_eq!(
            newer,
            ServerFrame::Typing {
                room: "a".into(),
                name: "b".into()
            }
        );
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
