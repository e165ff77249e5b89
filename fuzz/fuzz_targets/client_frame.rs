//! Arbitrary bytes as a client WebSocket frame (`/ws`, client -> server).
//!
//! A frame the server accepts must survive a serialise/parse round trip
//! unchanged, and whatever the server then does with its fields (`RoomId::parse`
//! for rooms, `SenderName::parse` for hello names, an error frame back) must
//! not panic and must keep the documented rules.
#![no_main]

mod common;

use app::domain::{ClientFrame, RoomId, SenderName, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return;
    };

    // Round trip: what we decoded serialises, and decodes to the same frame.
    let json = serde_json::to_string(&frame).expect("a decoded ClientFrame serialises");
    let again: ClientFrame = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("re-serialised frame {json:?} does not parse: {e}"));
    assert_eq!(again, frame, "round trip changed the frame (via {json:?})");

    // The tag is the documented one.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tag = match &frame {
        ClientFrame::Subscribe { .. } => "subscribe",
        ClientFrame::Unsubscribe { .. } => "unsubscribe",
        ClientFrame::Hello { .. } => "hello",
        ClientFrame::Typing { .. } => "typing",
        ClientFrame::Ping => "ping",
    };
    assert_eq!(value["type"], tag, "wrong tag in {json:?}");

    // What the server does with each field (server/src/realtime/socket.rs).
    match &frame {
        ClientFrame::Subscribe { room, after } => {
            if let Some(room) = check_room(room) {
                if after.is_some_and(|a| a < 0) {
                    check_error_frame(format!("`after` must be a seq (0 or more) for {room}."));
                }
            }
        }
        ClientFrame::Unsubscribe { room } | ClientFrame::Typing { room } => {
            check_room(room);
        }
        ClientFrame::Hello { name } => {
            if let Ok(sender) = SenderName::parse(name) {
                assert_eq!(sender.as_str(), name.trim());
                common::assert_sender_rules(sender.as_str());
                assert_eq!(SenderName::parse(sender.as_str()).as_ref(), Ok(&sender));
            }
        }
        ClientFrame::Ping => {}
    }
});

/// `RoomId::parse` never panics; an accepted room is the input itself and
/// keeps to `a-z 0-9 - _`, 1-32 long. A refused one gets an error frame.
fn check_room(room: &str) -> Option<RoomId> {
    match RoomId::parse(room) {
        Ok(id) => {
            assert_eq!(id.as_str(), room);
            assert_eq!(id.to_string(), room);
            common::assert_room_rules(id.as_str());
            Some(id)
        }
        Err(e) => {
            check_error_frame(e.to_string());
            None
        }
    }
}

/// The `{"type":"error"}` frame the server sends back round-trips.
fn check_error_frame(error: String) {
    let frame = ServerFrame::Error {
        error,
        retry_after_ms: None,
    };
    let json = serde_json::to_string(&frame).expect("an error frame serialises");
    let back: ServerFrame = serde_json::from_str(&json).expect("an error frame parses");
    assert_eq!(back, frame);
}
