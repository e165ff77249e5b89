//! Contracts between the page and the server that are not frames: the
//! cookie that remembers a name, the `/ws` query string, and how often
//! typing signals are sent, relayed and shown. Both sides import these, so a
//! change here changes both.

use serde::{Deserialize, Serialize};

/// The cookie that remembers a browser's name (read by the server to render
/// the page; written by the server on a post and by the page on change).
pub const NAME_COOKIE: &str = "chat_name";
/// How long the name cookie lives: a year.
pub const NAME_COOKIE_MAX_AGE_SECS: u32 = 365 * 24 * 3600;

/// A `Set-Cookie` / `document.cookie` value for `name`, already
/// percent-encoded by the caller (each side has its own encoder). `secure`
/// when the page is served over HTTPS.
pub fn name_cookie(encoded_name: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{NAME_COOKIE}={encoded_name}; Path=/; Max-Age={NAME_COOKIE_MAX_AGE_SECS}; SameSite=Lax{secure}"
    )
}

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

    #[test]
    fn the_name_cookie_lives_a_year_on_the_whole_site() {
        assert_eq!(
            name_cookie("a%20b", false),
            "chat_name=a%20b; Path=/; Max-Age=31536000; SameSite=Lax"
        );
        assert!(name_cookie("a", true).ends_with("; SameSite=Lax; Secure"));
    }
}
