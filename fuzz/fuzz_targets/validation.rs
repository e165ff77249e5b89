//! Structured posts through `PostInput::validate`, and arbitrary strings
//! through `RoomId::parse`, `SenderName::parse` and `MessageBody::parse`.
//!
//! Never panics; everything accepted keeps the documented rules (README,
//! "HTTP and WebSocket interface"); parsing an accepted value again accepts
//! it unchanged.
#![no_main]

mod common;

use app::domain::{
    content_chars, MessageBody, PostInput, RoomId, SenderName, ValidationError, MAX_CONTENT_CHARS,
};
use arbitrary::Arbitrary;
use common::{assert_body_rules, assert_room_rules, assert_sender_rules};
use libfuzzer_sys::fuzz_target;

/// A post as it could arrive. `content` is the last field so it takes the
/// rest of the input; `repeat` repeats it (content * (repeat + 1)) so long
/// texts around MAX_CONTENT_CHARS are reached quickly.
#[derive(Arbitrary, Debug)]
struct Case {
    repeat: u8,
    room: Option<String>,
    id: Option<String>,
    sender: String,
    content: String,
}

/// Cap on the repeated content, so one input stays cheap.
const MAX_REPEATED_BYTES: usize = 32 * 1024;

fuzz_target!(|case: Case| {
    let mut content = case.content.clone();
    let times = usize::from(case.repeat) + 1;
    if times > 1 && case.content.len() * times <= MAX_REPEATED_BYTES {
        content = case.content.repeat(times);
    }

    let input = PostInput {
        room: case.room.clone(),
        sender: case.sender.clone(),
        content,
        id: case.id.clone(),
    };
    check_post(&input);

    // Every string through every parser directly.
    for s in [
        case.room.as_deref().unwrap_or(""),
        case.id.as_deref().unwrap_or(""),
        &case.sender,
        &input.content,
    ] {
        check_room(s);
        check_sender(s);
        check_body(s);
    }
});

fn check_post(input: &PostInput) {
    let post = match input.validate() {
        Ok(post) => post,
        Err(e) => {
            let _ = e.to_string();
            if let ValidationError::ContentTooLong(n) = e {
                assert!(n > MAX_CONTENT_CHARS);
                assert_eq!(n, content_chars(&input.content));
            }
            return;
        }
    };

    // Room: the given one (trimmed), or the lobby; never announcements.
    match input.room.as_deref().map(str::trim) {
        None | Some("") => assert_eq!(post.room, RoomId::lobby()),
        Some(r) => assert_eq!(post.room.as_str(), r),
    }
    assert!(!post.room.is_announcements());
    assert_room_rules(post.room.as_str());

    // Id: absent when blank, else the UUID given.
    match input.id.as_deref().map(str::trim) {
        None | Some("") => assert_eq!(post.id, None),
        Some(s) => assert_eq!(post.id, Some(uuid::Uuid::parse_str(s).unwrap())),
    }

    assert_sender_rules(post.sender.as_str());
    assert_body_rules(post.content.as_str());
    // The composer's counter agrees with the server on the raw text.
    assert_eq!(
        content_chars(&input.content),
        post.content.as_str().chars().count(),
        "content_chars disagrees with what was stored for {:?}",
        input.content
    );
}

fn check_room(s: &str) {
    if let Ok(room) = RoomId::parse(s) {
        assert_eq!(room.as_str(), s);
        assert_room_rules(room.as_str());
        assert_eq!(RoomId::parse(room.as_str()).as_ref(), Ok(&room));
    }
}

fn check_sender(s: &str) {
    if let Ok(sender) = SenderName::parse(s) {
        assert_eq!(sender.as_str(), s.trim());
        assert_sender_rules(sender.as_str());
        assert_eq!(SenderName::parse(sender.as_str()).as_ref(), Ok(&sender));
    }
}

fn check_body(s: &str) {
    match MessageBody::parse(s) {
        Ok(body) => {
            assert_body_rules(body.as_str());
            assert_eq!(content_chars(s), body.as_str().chars().count());
            assert_eq!(MessageBody::parse(body.as_str()).as_ref(), Ok(&body));
        }
        Err(ValidationError::ContentTooLong(n)) => {
            assert!(n > MAX_CONTENT_CHARS);
            assert_eq!(n, content_chars(s));
        }
        Err(_) => {}
    }
}
