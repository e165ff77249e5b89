use serde::{Deserialize, Serialize};

use super::Message;

/// Frames the server sends on `/ws`. Serialised once per fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A committed message (backlog or live).
    Message(Message),
    /// The backlog is complete; `head` is the last seq the client now has.
    Ready { room: String, head: i64 },
}

/// Frames a client may send. Unknown frames are ignored by the server, so
/// older servers keep working with newer clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
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
        });
        let v: serde_json::Value = serde_json::to_value(&frame).unwrap();
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
    fn ready_frame_has_the_documented_shape() {
        let v = serde_json::to_value(ServerFrame::Ready {
            room: "lobby".into(),
            head: 3,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "ready", "room": "lobby", "head": 3})
        );
    }
}
