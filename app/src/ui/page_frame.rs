//! A room page's frame: everything on it that is the same for every viewer
//! (the document head, the room list, the top bar, the composer, the
//! scaffolding of the list and the page's hydration script), rendered by
//! Leptos once and then filled in for each request. Rendering the page
//! costs most of a page request (owners, signals, the router, the async
//! render around the list: about 0.5 ms a page whatever the room holds),
//! so the binary keeps a room's frame while the rooms it lists stay the
//! same (names and order) and fills it per request with what is not shared:
//! the viewer's rows and data, the room list's data, the form's id, the CSP
//! nonce.
//!
//! The frame is cut from a real render: the binary renders the page with a
//! [`FrameTemplate`] on the request, whose data carries unguessable markers in
//! place of what varies (a random token for the viewer's name and the
//! rows, a fresh form id, the render's nonce), and [`Frame::cut`] finds each
//! of them the expected number of times or refuses the frame. The viewer's
//! data in the page's hydration script is found as the exact string the
//! render writes for the template's data. So a filled frame is what a
//! fresh render would have sent, which the binary's tests check byte for
//! byte for every kind of viewer.

use html_escape::encode_double_quoted_attribute;

use super::static_rows::{self, Viewer};
use crate::{
    api::{has_older, ApiError, FrameTemplate, RoomSnapshot},
    domain::RoomSummary,
};

/// A page cut into what every viewer shares and the holes between.
#[derive(Debug)]
pub struct Frame {
    pieces: Vec<Piece>,
    /// The bytes of the shared pieces (a filled page is this and the holes).
    shared: usize,
    /// What the shared parts were rendered from: a page whose data differs
    /// in these needs another frame.
    epoch: String,
    has_older: bool,
    /// The room list's names in order (the list shows nothing else before
    /// the browser knows what was read).
    rooms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// `load_room`'s answer in the hydration script.
    Data,
    /// `list_rooms`' answer in the hydration script.
    Rooms,
    /// The server-rendered rows.
    Rows,
    /// The name field's value.
    Name,
    /// The no-JS form's id.
    FormId,
    /// The CSP nonce, wherever the render wrote it.
    Nonce,
}

impl Frame {
    /// Cuts the page `html`, rendered from `template`, into a frame; an
    /// error says which marker was not found as often as expected (the
    /// page is then rendered whole, as without frames).
    pub fn cut(html: &str, template: &FrameTemplate) -> Result<Self, String> {
        let nonce = template.nonce().ok_or("the render noted no nonce")?;
        let name = template.snapshot.me.name.clone().unwrap_or_default();
        // The data first: it holds the other markers (and messages).
        let holes = [
            (resource(&template.snapshot), Piece::Data, Some(1)),
            (resource(&template.rooms), Piece::Rooms, Some(1)),
            (template.rows_hole(), Piece::Rows, Some(1)),
            (name, Piece::Name, Some(1)),
            (
                template.snapshot.form_id.to_string(),
                Piece::FormId,
                Some(1),
            ),
            (nonce.to_owned(), Piece::Nonce, None),
        ];
        let mut pieces = vec![Piece::Text(html.to_owned())];
        for (marker, hole, expected) in holes {
            let mut found = 0;
            let mut cut = Vec::with_capacity(pieces.len() + 2);
            for piece in pieces {
                let Piece::Text(text) = piece else {
                    cut.push(piece);
                    continue;
                };
                for (i, part) in text.split(marker.as_str()).enumerate() {
                    if i > 0 {
                        found += 1;
                        cut.push(hole.clone());
                    }
                    if !part.is_empty() {
                        cut.push(Piece::Text(part.to_owned()));
                    }
                }
            }
            pieces = cut;
            if found == 0 || expected.is_some_and(|n| n != found) {
                return Err(format!(
                    "{hole:?} found {found} times in the rendered frame, expected {}",
                    expected.map_or_else(|| "at least once".to_owned(), |n| n.to_string())
                ));
            }
        }
        let shared = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        Ok(Self {
            pieces,
            shared,
            epoch: template.snapshot.epoch.clone(),
            has_older: has_older(&template.snapshot.messages),
            rooms: template.rooms.iter().map(|r| r.name.clone()).collect(),
        })
    }

    /// Whether a page showing `snapshot`, with `rooms` listed, is this
    /// frame filled in.
    pub fn fits(&self, snapshot: &RoomSnapshot, rooms: &[RoomSummary]) -> bool {
        self.epoch == snapshot.epoch
            && self.has_older == has_older(&snapshot.messages)
            && self.rooms.iter().eq(rooms.iter().map(|r| &r.name))
    }

    /// The page for `snapshot`'s viewer with `rooms` listed, with `nonce`
    /// as its CSP nonce.
    pub fn fill(&self, snapshot: &RoomSnapshot, rooms: &[RoomSummary], nonce: &str) -> String {
        let rows = snapshot.messages.len() + snapshot.announcements.len();
        let data = json(snapshot, 512 + rows * 400);
        let room_data = json(&rooms, 16 + rooms.len() * 96);
        let viewer = Viewer {
            author: snapshot.me.author.as_deref(),
            moderator: snapshot.me.moderator,
        };
        let name = encode_double_quoted_attribute(snapshot.me.name.as_deref().unwrap_or_default());
        let form_id = snapshot.form_id.to_string();
        let mut page = String::with_capacity(
            self.shared + (data.len() + room_data.len()) * 11 / 10 + rows * 700,
        );
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => page.push_str(text),
                Piece::Data => literal(&mut page, &data),
                Piece::Rooms => literal(&mut page, &room_data),
                Piece::Rows => static_rows::page(
                    &mut page,
                    &snapshot.messages,
                    &snapshot.announcements,
                    &viewer,
                ),
                Piece::Name => page.push_str(&name),
                Piece::FormId => page.push_str(&form_id),
                Piece::Nonce => page.push_str(nonce),
            }
        }
        page
    }
}

/// A server function's answer as the render writes it into the hydration
/// script ([`json`], then [`literal`]).
fn resource<T: serde::Serialize>(value: &T) -> String {
    let mut out = String::new();
    literal(&mut out, &json(value, 0));
    out
}

/// A server function's answer as its resource encodes it: JSON, with `<`
/// escaped so that no `</script>` in it ends the script early. `size` is
/// about how long it will be.
fn json<T: serde::Serialize>(value: &T, size: usize) -> String {
    let mut json = Vec::with_capacity(size);
    if serde_json::to_writer(&mut json, &Ok::<_, ApiError>(value)).is_err() {
        json.clear();
    }
    // serde_json writes UTF-8 only.
    let json = String::from_utf8(json).unwrap_or_default();
    if json.contains('<') {
        json.replace('<', "\\u003c")
    } else {
        json
    }
}

/// Writes `text` as a JavaScript string literal, exactly as the render does
/// (`format!("{text:?}")`), but copying runs of characters that need no
/// escape instead of going a character at a time: this is most of a page.
fn literal(out: &mut String, text: &str) {
    out.reserve(text.len() + text.len() / 8 + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let (mut run, mut at) = (0, 0);
    while at < bytes.len() {
        let b = bytes[at];
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            at += 1;
            continue;
        }
        let c = text[at..].chars().next().unwrap_or_default();
        // Printable characters beyond ASCII stay as they are.
        if !c.is_ascii() && c.escape_debug().len() == 1 {
            at += c.len_utf8();
            continue;
        }
        out.push_str(&text[run..at]);
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Control characters, and what `str`'s `Debug` escapes beyond
            // ASCII (unprintable and combining characters).
            c => out.extend(c.escape_debug()),
        }
        at += c.len_utf8();
        run = at;
    }
    out.push_str(&text[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::api::Me;

    fn snapshot(messages: usize) -> RoomSnapshot {
        RoomSnapshot {
            room: "lobby".into(),
            messages: (1..=messages as i64)
                .map(|seq| crate::domain::Message {
                    room: "lobby".into(),
                    seq,
                    sender: "Ann".into(),
                    author: Some("a1".into()),
                    content: format!("hi <b>{seq}</b> \"{seq}\""),
                    ..Default::default()
                })
                .collect(),
            announcements: Vec::new(),
            me: Me {
                author: Some("a1".into()),
                name: Some("Ann \"A\"".into()),
                moderator: false,
                edit_window_secs: 300,
            },
            form_id: Uuid::new_v4(),
            epoch: "e1".into(),
        }
    }

    fn rooms(names: &[&str], last_seq: i64) -> Vec<RoomSummary> {
        names
            .iter()
            .map(|name| RoomSummary {
                name: (*name).into(),
                last_seq,
                last_active_at: chrono::DateTime::UNIX_EPOCH,
            })
            .collect()
    }

    /// A page as a render would write it from `snapshot` and `rooms`.
    fn render(snapshot: &RoomSnapshot, rooms: &[RoomSummary], rows: &str, nonce: &str) -> String {
        format!(
            r#"<script nonce="{nonce}">x</script><ol>{rows}</ol><input value="{}"/><input value="{}"/><script nonce="{nonce}">R={{1: {}, 2: {}}}</script>"#,
            encode_double_quoted_attribute(snapshot.me.name.as_deref().unwrap_or_default()),
            snapshot.form_id,
            resource(snapshot),
            resource(&rooms),
        )
    }

    fn cut(template: &FrameTemplate) -> Result<Frame, String> {
        template.note_nonce("n0nce");
        Frame::cut(
            &render(
                &template.snapshot,
                &template.rooms,
                &template.rows_hole(),
                "n0nce",
            ),
            template,
        )
    }

    #[test]
    fn a_filled_frame_is_the_page_rendered_for_that_viewer() {
        let first = snapshot(3);
        let template = FrameTemplate::new(first.clone(), rooms(&["lobby", "b"], 3));
        let frame = cut(&template).unwrap();
        let mut other = snapshot(2);
        other.me.name = None;
        // The rooms' counts moved on; their order did not.
        let now = rooms(&["lobby", "b"], 9);
        for viewer in [first, other] {
            let mut rows = String::new();
            static_rows::page(
                &mut rows,
                &viewer.messages,
                &viewer.announcements,
                &Viewer {
                    author: viewer.me.author.as_deref(),
                    moderator: viewer.me.moderator,
                },
            );
            assert!(frame.fits(&viewer, &now));
            assert_eq!(
                frame.fill(&viewer, &now, "fresh"),
                render(&viewer, &now, &rows, "fresh")
            );
        }
    }

    #[test]
    fn literals_are_what_debug_writes() {
        let texts = [
            "",
            "plain ascii",
            r#"{"Ok":{"content":"say \"hi\" \\ back"}}"#,
            "it's <b> & \u{7f}\u{0}\n\r\t\u{1b}",
            "日本語 🌸 e\u{301} \u{301}x \u{200d}\u{2028}\u{2029}\u{feff}\u{ad}\u{e000}",
            "\u{10ffff}\u{fffd}\u{85}\u{a0}",
        ];
        for text in texts {
            let mut out = String::new();
            literal(&mut out, text);
            assert_eq!(out, format!("{text:?}"), "{text}");
        }
        // Every character, alone and among others.
        let all: String = (0..0x11_0000).filter_map(char::from_u32).collect();
        let mut out = String::new();
        literal(&mut out, &all);
        assert_eq!(out, format!("{all:?}"));
        for c in (0..0x3_0000).filter_map(char::from_u32) {
            let text = format!("a{c}\"{c}");
            let mut out = String::new();
            literal(&mut out, &text);
            assert_eq!(out, format!("{text:?}"), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_frame_is_refused_when_a_marker_is_missing_or_repeated() {
        let template = FrameTemplate::new(snapshot(1), Vec::new());
        template.note_nonce("n0nce");
        let page = render(&template.snapshot, &[], &template.rows_hole(), "n0nce");
        let twice = page.replace("<ol>", &format!("{}<ol>", template.rows_hole()));
        let err = Frame::cut(&twice, &template).unwrap_err();
        assert!(err.contains("Rows found 2 times"), "{err}");
        let without = page.replace(&format!(r#"value="{}""#, template.snapshot.form_id), "");
        let err = Frame::cut(&without, &template).unwrap_err();
        assert!(err.contains("FormId found 0 times"), "{err}");
    }

    #[test]
    fn a_frame_fits_only_pages_with_its_shared_parts() {
        let listed = rooms(&["lobby", "b"], 3);
        let frame = cut(&FrameTemplate::new(snapshot(3), listed.clone())).unwrap();
        assert!(frame.fits(&snapshot(3), &listed));
        assert!(frame.fits(&snapshot(3), &rooms(&["lobby", "b"], 4)));
        assert!(
            !frame.fits(&snapshot(3), &rooms(&["b", "lobby"], 3)),
            "another order"
        );
        assert!(
            !frame.fits(&snapshot(3), &rooms(&["lobby"], 3)),
            "another room list"
        );
        let mut restored = snapshot(3);
        restored.epoch = "e2".into();
        assert!(!frame.fits(&restored, &listed), "another epoch");
        let mut long = snapshot(60);
        long.messages.drain(..10);
        assert!(!frame.fits(&long, &listed), "older messages to load");
    }
}
