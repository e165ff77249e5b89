//! Arbitrary bytes as the query string of `GET /ws`, decoded with
//! `serde_urlencoded` (what axum's `Query` extractor uses).
//!
//! A decoded query must be safe for the handler's checks, and when its room
//! is a valid room name (or absent), `WsQuery::to_query_string` (what the
//! page uses to build the URL) must decode back to the same value.
#![no_main]

use app::domain::{RoomId, WsQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `from_str` is `from_bytes` on the string's bytes; taking raw bytes also
    // covers what percent-decoding can produce.
    let Ok(query) = serde_urlencoded::from_bytes::<WsQuery>(data) else {
        return;
    };

    // The handler's checks (server/src/realtime/socket.rs) never panic.
    let room = match query.room.as_deref() {
        None | Some("") => Some(RoomId::lobby()),
        Some(r) => RoomId::parse(r).ok(),
    };
    let _refused = query.after.is_some_and(|a| a < 0);

    let valid_room = match query.room.as_deref() {
        None => true,
        Some(r) => RoomId::parse(r).is_ok(),
    };
    if valid_room {
        let encoded = query.to_query_string();
        let back: WsQuery = serde_urlencoded::from_str(&encoded).unwrap_or_else(|e| {
            panic!("to_query_string() gave {encoded:?} for {query:?}, which does not decode: {e}")
        });
        assert_eq!(back, query, "round trip via {encoded:?} changed the query");
    } else if query.room.as_deref() == Some("") {
        // `room=`: not a room name, but the handler falls back to the lobby;
        // the re-encoded query must resolve to the same room.
        let encoded = query.to_query_string();
        let back: WsQuery = serde_urlencoded::from_str(&encoded)
            .unwrap_or_else(|e| panic!("{encoded:?} does not decode: {e}"));
        assert!(matches!(back.room.as_deref(), None | Some("")));
        assert_eq!(back.after, query.after);
        assert_eq!(room, Some(RoomId::lobby()));
    }
});
