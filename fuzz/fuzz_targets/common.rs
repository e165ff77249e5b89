//! The documented rules (README, "HTTP and WebSocket interface"; the doc
//! comments in app/src/domain/validate.rs), written out independently of
//! the code that enforces them, for the targets to assert on accepted values.
#![allow(dead_code)]

use app::domain::{content_chars, MAX_CONTENT_CHARS, MAX_ROOM_CHARS, MAX_SENDER_CHARS};

/// `room` is 1-32 of `a-z 0-9 - _`.
pub fn assert_room_rules(room: &str) {
    assert!(
        (1..=MAX_ROOM_CHARS).contains(&room.len()),
        "room {room:?}: wrong length"
    );
    assert!(
        room.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "room {room:?} outside a-z 0-9 - _"
    );
}

/// Well-known invisible and text-direction characters (a subset of what
/// names refuse: Unicode's format characters and the line/paragraph
/// separators).
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064
        | 0x2066..=0x2069 | 0xFEFF | 0xE0001 | 0xE0020..=0xE007F)
}

/// `sender` is 1-32 characters after trimming, no control, invisible or
/// text-direction characters, and does not pass for the server.
pub fn assert_sender_rules(sender: &str) {
    let chars = sender.chars().count();
    assert!(
        (1..=MAX_SENDER_CHARS).contains(&chars),
        "sender {sender:?}: {chars} chars"
    );
    assert_eq!(sender, sender.trim(), "sender {sender:?} is not trimmed");
    assert!(
        !sender.chars().any(char::is_control),
        "control char in sender {sender:?}"
    );
    assert!(
        !sender.chars().any(is_invisible),
        "invisible/bidi char in sender {sender:?}"
    );
    assert!(!sender.contains('📣'), "megaphone in sender {sender:?}");
    let folded: String = sender
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let only_ascii_alnum_and_punct = sender.chars().all(|c| c.is_ascii() || !c.is_alphanumeric());
    if only_ascii_alnum_and_punct {
        assert!(
            !["server", "system", "admin", "announcements"].contains(&folded.as_str()),
            "sender {sender:?} passes for a reserved name"
        );
    }
}

/// `content` is 1-2000 characters after trimming, no control characters
/// except newline; `content_chars` counts it exactly.
pub fn assert_body_rules(content: &str) {
    let chars = content.chars().count();
    assert!(
        (1..=MAX_CONTENT_CHARS).contains(&chars),
        "content of {chars} chars"
    );
    assert_eq!(content, content.trim(), "content is not trimmed");
    assert!(
        !content.chars().any(|c| c.is_control() && c != '\n'),
        "control char other than newline in content {content:?}"
    );
    assert_eq!(content_chars(content), chars);
}
