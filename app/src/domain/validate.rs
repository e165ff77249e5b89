use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

pub const DEFAULT_ROOM: &str = "lobby";
/// The room random broadcasts go to; every page follows it besides its own
/// room. People cannot post in it.
pub const ANNOUNCEMENTS: &str = "announcements";
pub const MAX_ROOM_CHARS: usize = 32;
pub const MAX_SENDER_CHARS: usize = 32;
pub const MAX_CONTENT_CHARS: usize = 2000;

/// Why user input was refused. The `Display` text is shown to people as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ValidationError {
    #[error("Room names are 1-{MAX_ROOM_CHARS} characters of a-z, 0-9, - and _.")]
    Room,
    #[error("Please enter a name.")]
    SenderEmpty,
    #[error("Names can be at most {MAX_SENDER_CHARS} characters.")]
    SenderTooLong,
    #[error("Names cannot contain control characters.")]
    SenderControl,
    #[error("Names cannot contain invisible or text-direction characters.")]
    SenderFormat,
    #[error("This name is reserved; please choose another.")]
    SenderReserved,
    #[error("Please write a message.")]
    ContentEmpty,
    #[error("Messages can be at most {MAX_CONTENT_CHARS} characters ({0} given).")]
    ContentTooLong(usize),
    #[error("Messages cannot contain control characters (other than new lines).")]
    ContentControl,
    #[error("The message id must be a UUID.")]
    Id,
    #[error("This room is read-only.")]
    ReadOnlyRoom,
    #[error("Reactions are one of 👍 ❤️ 😂 🎉 😮 😢.")]
    Reaction,
    #[error("Only people's messages can be changed.")]
    Unchangeable,
}

/// A room name: 1-32 characters of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

impl RoomId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ROOM_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::Room)
        }
    }

    /// A room name as a person typed it into a form: surrounding space and
    /// capitals are forgiven (room names are ASCII, so ASCII case is all
    /// there is to fold).
    pub fn parse_typed(s: &str) -> Result<Self, ValidationError> {
        Self::parse(&s.trim().to_ascii_lowercase())
    }

    pub fn lobby() -> Self {
        Self(DEFAULT_ROOM.to_owned())
    }

    pub fn announcements() -> Self {
        Self(ANNOUNCEMENTS.to_owned())
    }

    pub fn is_announcements(&self) -> bool {
        self.0 == ANNOUNCEMENTS
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names nobody may take: they look like the server's own voice.
const RESERVED_NAMES: &[&str] = &["server", "system", "admin", "announcements"];

/// A display name: 1-32 characters after trimming, no control characters,
/// no invisible or text-direction ("format") characters, nothing that
/// looks like the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderName(String);

impl SenderName {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        let chars = s.chars().count();
        if chars == 0 {
            Err(ValidationError::SenderEmpty)
        } else if chars > MAX_SENDER_CHARS {
            Err(ValidationError::SenderTooLong)
        } else if s.chars().any(char::is_control) {
            Err(ValidationError::SenderControl)
        } else if s.chars().any(is_format) {
            Err(ValidationError::SenderFormat)
        } else if looks_reserved(s) {
            Err(ValidationError::SenderReserved)
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    /// The server's own name, for its broadcasts (no person can take it).
    pub fn server() -> Self {
        Self("server".to_owned())
    }

    /// Who changed a message, for a session that holds no name yet.
    pub fn someone() -> Self {
        Self("someone".to_owned())
    }

    /// Who removed messages, for a moderator whose session holds no name.
    pub fn moderator() -> Self {
        Self("moderator".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode's format characters (category Cf: zero-width spaces and
/// joiners, bidi embeddings, overrides and isolates, the BOM, invisible
/// operators, tags…) and the line and paragraph separators. In a name they
/// only serve to make two names look alike or text run backwards.
pub fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Whether `name` passes for one of the reserved names: compared without
/// case, width (full-width Latin letters are folded) or anything but
/// letters and digits, and any name with the broadcast megaphone.
///
/// The browser decides only names that are ASCII once widths are folded
/// (exactly as the server would) and leaves the rest to the server:
/// Unicode's letter and case tables would cost the WASM 5 KB (brotli), and
/// the server checks every rename and every post anyway.
fn looks_reserved(name: &str) -> bool {
    if name.contains('📣') {
        return true;
    }
    let folded = match fold_ascii(name) {
        Some(ascii) => ascii,
        None if cfg!(feature = "hydrate") => return false,
        None => fold_unicode(name),
    };
    RESERVED_NAMES.contains(&folded.as_str())
}

/// Full-width ASCII (U+FF01-U+FF5E) is ASCII shifted.
fn fold_width(c: char) -> char {
    match c as u32 {
        cp @ 0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// The letters and digits of `name`, lower-cased, if it is ASCII once
/// widths are folded: for ASCII, [`fold_unicode`] without its tables.
fn fold_ascii(name: &str) -> Option<String> {
    name.chars()
        .map(fold_width)
        .filter(|c| !c.is_ascii() || c.is_ascii_alphanumeric())
        .map(|c| c.is_ascii().then(|| c.to_ascii_lowercase()))
        .collect()
}

fn fold_unicode(name: &str) -> String {
    name.chars()
        .map(fold_width)
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A message text: 1-2000 characters (not bytes) after trimming; newlines
/// allowed, other control characters not. `\r\n` from HTML forms becomes `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let normalised = s.replace("\r\n", "\n");
        let s = normalised.trim();
        let chars = s.chars().count();
        if chars == 0 {
            Err(ValidationError::ContentEmpty)
        } else if chars > MAX_CONTENT_CHARS {
            Err(ValidationError::ContentTooLong(chars))
        } else if s.chars().any(|c| c.is_control() && c != '\n') {
            Err(ValidationError::ContentControl)
        } else {
            Ok(Self(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A post as it arrives (form fields or JSON), not yet checked.
#[derive(Debug, Clone, Default)]
pub struct PostInput {
    pub room: Option<String>,
    pub sender: String,
    pub content: String,
    pub id: Option<String>,
}

/// A post that passed every rule: a room people may post in, a name, a
/// text, and the client's idempotency key if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub room: RoomId,
    pub id: Option<Uuid>,
    pub sender: SenderName,
    pub content: MessageBody,
}

impl PostInput {
    pub fn validate(&self) -> Result<NewPost, ValidationError> {
        let room = match self.room.as_deref().map(str::trim) {
            None | Some("") => RoomId::lobby(),
            Some(r) => RoomId::parse(r)?,
        };
        if room.is_announcements() {
            return Err(ValidationError::ReadOnlyRoom);
        }
        let id = match self.id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(Uuid::parse_str(s).map_err(|_| ValidationError::Id)?),
        };
        Ok(NewPost {
            room,
            id,
            sender: SenderName::parse(&self.sender)?,
            content: MessageBody::parse(&self.content)?,
        })
    }
}

/// Number of characters as the server counts them (after trimming), for the
/// composer's counter.
pub fn content_chars(s: &str) -> usize {
    s.replace("\r\n", "\n").trim().chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        assert!(RoomId::parse("lobby").is_ok());
        assert!(RoomId::parse("a-b_9").is_ok());
        assert!(RoomId::parse(&"a".repeat(32)).is_ok());
        assert_eq!(RoomId::parse(&"a".repeat(33)), Err(ValidationError::Room));
        assert_eq!(RoomId::parse(""), Err(ValidationError::Room));
        assert_eq!(RoomId::parse("Lobby"), Err(ValidationError::Room));
        assert_eq!(RoomId::parse("lob by"), Err(ValidationError::Room));
        assert_eq!(RoomId::parse("ロビー"), Err(ValidationError::Room));
        // What a person types into the room form.
        assert_eq!(RoomId::parse_typed("  Lobby "), RoomId::parse("lobby"));
        assert_eq!(
            RoomId::parse_typed("ＬＯＢＢＹ"),
            Err(ValidationError::Room)
        );
    }

    #[test]
    fn senders_are_trimmed_and_counted_in_characters() {
        assert_eq!(SenderName::parse("  alice ").unwrap().as_str(), "alice");
        assert_eq!(SenderName::parse("   "), Err(ValidationError::SenderEmpty));
        // 32 Japanese characters are 96 bytes but within the limit.
        assert!(SenderName::parse(&"名".repeat(32)).is_ok());
        assert_eq!(
            SenderName::parse(&"名".repeat(33)),
            Err(ValidationError::SenderTooLong)
        );
        assert_eq!(
            SenderName::parse("a\u{7}b"),
            Err(ValidationError::SenderControl)
        );
    }

    #[test]
    fn names_cannot_hide_characters_or_turn_text_around() {
        for name in [
            "ali\u{200B}ce",  // zero-width space
            "ali\u{200D}ce",  // zero-width joiner
            "\u{202E}ecila",  // right-to-left override
            "alice\u{2066}",  // left-to-right isolate
            "\u{FEFF}alice",  // byte order mark
            "al\u{00AD}ice",  // soft hyphen
            "alice\u{E0041}", // tag character
        ] {
            assert_eq!(
                SenderName::parse(name),
                Err(ValidationError::SenderFormat),
                "{name:?}"
            );
        }
        // Real names in any script stay fine.
        for name in ["アリス", "Zoë", "محمد", "Ли", "🌸 hana"] {
            assert!(SenderName::parse(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn names_that_look_like_the_server_are_reserved() {
        for name in [
            "server",
            "Server",
            "SERVER",
            "ｓｅｒｖｅｒ",
            "s.e.r.v.e.r",
            "📣 alice",
            "System",
            "admin",
        ] {
            assert_eq!(
                SenderName::parse(name),
                Err(ValidationError::SenderReserved),
                "{name:?}"
            );
        }
        assert!(SenderName::parse("servers").is_ok());
        // The stand-ins the server uses are names a person could have chosen.
        for fixed in [SenderName::someone(), SenderName::moderator()] {
            assert_eq!(SenderName::parse(fixed.as_str()), Ok(fixed));
        }
        assert!(SenderName::parse("observer").is_ok());
        assert_eq!(SenderName::server().as_str(), "server");
        // Not ASCII: the browser's build leaves this one to the server's check.
        assert_eq!(
            SenderName::parse("ad\u{2006}min 🙂"),
            Err(ValidationError::SenderReserved)
        );
    }

    #[test]
    fn the_browsers_fold_is_the_servers_for_ascii_names() {
        let names = [
            "Server",
            "s.e.r.v.e.r",
            "ｓｅｒｖｅｒ",
            "ADMIN!",
            "a_d-m i/n",
            "Sys7em",
            "x",
            "",
            "Zoë",
            "アリス",
            "🌸 hana",
            "server 🙂",
            "\u{212A}",
            "ﬀ",
        ];
        for name in names {
            match fold_ascii(name) {
                Some(ascii) => assert_eq!(ascii, fold_unicode(name), "{name:?}"),
                None => assert!(
                    name.chars().map(fold_width).any(|c| !c.is_ascii()),
                    "{name:?}"
                ),
            }
        }
        assert_eq!(fold_ascii("ＳＥＲＶＥＲ").as_deref(), Some("server"));
        assert_eq!(fold_ascii("server 🙂"), None);
    }

    #[test]
    fn content_keeps_emoji_sequences_whole() {
        // Family (ZWJ), skin tone modifier, flag, keycap.
        let text = "👨\u{200D}👩\u{200D}👧 👍🏽 🇯🇵 1\u{FE0F}\u{20E3}";
        assert_eq!(MessageBody::parse(text).unwrap().as_str(), text);
    }

    #[test]
    fn content_limits_are_characters_not_bytes() {
        assert!(MessageBody::parse(&"😀".repeat(2000)).is_ok());
        assert_eq!(
            MessageBody::parse(&"😀".repeat(2001)),
            Err(ValidationError::ContentTooLong(2001))
        );
        assert_eq!(
            MessageBody::parse(" \n\t "),
            Err(ValidationError::ContentEmpty)
        );
    }

    #[test]
    fn content_keeps_newlines_and_refuses_other_controls() {
        assert_eq!(
            MessageBody::parse("line 1\r\nline 2\n").unwrap().as_str(),
            "line 1\nline 2"
        );
        assert_eq!(
            MessageBody::parse("a\u{0}b"),
            Err(ValidationError::ContentControl)
        );
        assert_eq!(
            MessageBody::parse("a\tb"),
            Err(ValidationError::ContentControl)
        );
        assert_eq!(content_chars("  こんにちは 🌸 "), 7);
    }

    #[test]
    fn posts_default_to_the_lobby_and_refuse_the_announcements_room() {
        let post = |room: Option<&str>, id: Option<&str>| PostInput {
            room: room.map(Into::into),
            sender: "alice".into(),
            content: "hi".into(),
            id: id.map(Into::into),
        };
        let ok = post(None, None).validate().unwrap();
        assert_eq!(ok.room, RoomId::lobby());
        assert_eq!(ok.id, None);
        let id = "0b8a3a2e-5c1c-4a39-9c1a-2f4f2b8f5d10";
        assert_eq!(
            post(Some(" general "), Some(id)).validate().unwrap().id,
            Some(Uuid::parse_str(id).unwrap())
        );
        assert_eq!(
            post(Some(ANNOUNCEMENTS), None).validate(),
            Err(ValidationError::ReadOnlyRoom)
        );
        assert_eq!(
            post(None, Some("not-a-uuid")).validate(),
            Err(ValidationError::Id)
        );
    }
}
