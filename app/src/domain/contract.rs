//! Contracts between the page and the server that are not frames: the
//! session cookie's name, the `/ws` query string, and how often
//! typing signals are sent, relayed and shown. Both sides import these, so a
//! change here changes both.

use serde::{Deserialize, Serialize};

/// The cookie holding a browser's session token (set `HttpOnly` by the
/// server on the first page load; the page never reads it).
pub const SESSION_COOKIE: &str = "chat_session";

/// Pages send at most one typing signal per this many ms...
pub const TYPING_SEND_EVERY_MS: i64 = 3000;
/// ...the server relays at most one per socket per this many ms (a little
/// less, so a well-behaved page is never throttled)...
pub const TYPING_RELAY_EVERY_MS: u64 = 2500;
/// ...and pages show "x is typing…" this long after the last signal.
pub const TYPING_SHOWN_MS: i64 = 5000;

// A page that keeps to its interval is never throttled, and the indicator
// outlasts the gap between two signals.
const _: () = assert!((TYPING_RELAY_EVERY_MS as i64) < TYPING_SEND_EVERY_MS);
const _: () = assert!(TYPING_SEND_EVERY_MS < TYPING_SHOWN_MS);

/// The query of `GET /ws`: the first room to follow, and the seq after which
/// to replay it (none: only live messages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsQuery {
    pub room: Option<String>,
    pub after: Option<i64>,
}

impl WsQuery {
    /// `room=<room>&after=<after>` (room names need no escaping).
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        if let Some(room) = &self.room {
            parts.push(format!("room={room}"));
        }
        if let Some(after) = self.after {
            parts.push(format!("after={after}"));
        }
        parts.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_query_round_trips_through_the_query_string() {
        let q = WsQuery {
            room: Some("announcements".into()),
            after: Some(12),
        };
        assert_eq!(q.to_query_string(), "room=announcements&after=12");
        let back: WsQuery = serde_json::from_value(serde_json::json!({
            "room": "announcements", "after": 12
        }))
        .unwrap();
        assert_eq!(back, q);
        assert_eq!(WsQuery::default().to_query_string(), "");
    }
}
