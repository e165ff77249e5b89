//! The message list as the server sends it: one HTML fragment written
//! straight into the page, with no reactive owner, signal or closure per
//! row. A room page shows 50 messages, and building each row as a live
//! component (the keyed list, `MessageItem`, its menu) cost about 20 µs per
//! message on the server, most of the page's time. In the browser the
//! fragment is left alone while the page hydrates; the live list then takes
//! its place ([`super::message_list`]).
//!
//! The markup is the live rows' markup (without hydration markers), checked
//! by the test below for every kind of row, so a change to one that is not
//! made to the other fails there.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute_to_string, encode_text_to_string};
use leptos::server_fn::ServerFn;

use super::{
    message_item::{full_time, machine_time, time_label},
    text::{segments, Segment},
    timeline::{build_rows, Row},
};
use crate::{
    api::DeleteMessage,
    domain::{Message, MessageKind},
};

/// Who is looking: decides "own" rows and which menu entries are there.
pub struct Viewer<'a> {
    pub author: Option<&'a str>,
    pub moderator: bool,
}

/// Writes a room page's list as the server sends it: its newest messages
/// with the announcements among them (no divider, times in UTC), or what an
/// empty room says.
pub fn page(
    out: &mut String,
    messages: &[Message],
    announcements: &[Message],
    viewer: &Viewer<'_>,
) {
    if messages.is_empty() {
        out.push_str(r#"<li class="empty">"#);
        out.push_str(super::message_list::EMPTY);
        out.push_str("</li>");
    }
    render(
        out,
        &build_rows(messages, announcements, None, None),
        viewer,
    );
}

/// Writes the list's rows as HTML, as the live list renders them before
/// the browser clock is known (times in UTC).
pub fn render(out: &mut String, rows: &[Row], viewer: &Viewer<'_>) {
    for row in rows {
        match row {
            Row::Day { label, .. } => {
                out.push_str(r#"<li class="day"><span>"#);
                encode_text_to_string(label, out);
                out.push_str("</span></li>");
            }
            Row::Divider => {
                out.push_str(r#"<li class="divider"><span>New messages</span></li>"#);
            }
            Row::Message { message, grouped } => message_row(out, message, *grouped, viewer),
        }
    }
}

fn message_row(out: &mut String, m: &Message, grouped: bool, viewer: &Viewer<'_>) {
    let broadcast = m.kind == MessageKind::Broadcast;
    let own = m.author.is_some() && m.author.as_deref() == viewer.author;
    out.push_str(r#"<li class="msg"#);
    for (on, class) in [
        (own, " own"),
        (broadcast, " broadcast"),
        (grouped, " grouped"),
        (m.deleted, " deleted"),
    ] {
        if on {
            out.push_str(class);
        }
    }
    let _ = write!(out, r#"" data-seq="{}" data-id="{}""#, m.seq, m.id);
    if let Some(author) = &m.author {
        attr(out, "data-author", author);
    }
    out.push_str(r#"><div class="meta"><span class="sender">"#);
    if broadcast {
        out.push_str("📣 ");
    }
    encode_text_to_string(&m.sender, out);
    out.push_str("</span><time");
    attr(out, "datetime", &machine_time(m.created_at));
    attr(out, "title", &full_time(m.created_at, None));
    out.push('>');
    encode_text_to_string(time_label(m.created_at, None), out);
    out.push_str("</time>");
    if let Some(at) = m.edited_at {
        out.push_str(r#"<span class="edited""#);
        attr(out, "title", &full_time(at, None));
        out.push_str(">(edited)</span>");
    }
    out.push_str("</div>");
    if m.deleted {
        out.push_str(r#"<p class="body tombstone">Message deleted</p>"#);
    } else {
        out.push_str(r#"<p class="body">"#);
        for segment in segments(&m.content) {
            match segment {
                Segment::Text(t) => {
                    encode_text_to_string(t, out);
                }
                Segment::Link(href) => {
                    out.push_str("<a");
                    attr(out, "href", href);
                    out.push_str(r#" target="_blank" rel="noopener noreferrer">"#);
                    encode_text_to_string(href, out);
                    out.push_str("</a>");
                }
            }
        }
        out.push_str("</p>");
    }
    if !broadcast && !m.deleted {
        reactions(out, m);
        actions(out, m, own, viewer);
    }
    out.push_str("</li>");
}

fn reactions(out: &mut String, m: &Message) {
    if m.reactions.is_empty() {
        return;
    }
    out.push_str(r#"<ul class="reactions" aria-label="Reactions">"#);
    for r in &m.reactions {
        let people = if r.count == 1 { "person" } else { "people" };
        let _ = write!(
            out,
            r#"<li><button type="button" class="chip" aria-pressed="{}""#,
            r.mine
        );
        out.push_str(r#" aria-label=""#);
        encode_double_quoted_attribute_to_string(&r.emoji, out);
        let _ = write!(out, r#" {} {people}"><span aria-hidden="true">"#, r.count);
        encode_text_to_string(&r.emoji, out);
        let _ = write!(
            out,
            r#"</span><span class="count" aria-hidden="true">{}</span></button></li>"#,
            r.count
        );
    }
    out.push_str("</ul>");
}

/// The message's menu as it is before it opens (its entries are drawn when
/// it does): the "Delete" form, which works without JavaScript, and "Ban".
fn actions(out: &mut String, m: &Message, own: bool, viewer: &Viewer<'_>) {
    out.push_str(concat!(
        r#"<details class="actions"><summary aria-label="Message actions">"#,
        r#"<span aria-hidden="true">⋯</span></summary>"#,
        r#"<div class="menu" role="group" aria-label="Message actions">"#,
    ));
    if own || viewer.moderator {
        out.push_str(r#"<form method="post""#);
        attr(out, "action", <DeleteMessage as ServerFn>::PATH);
        // A uuid needs no escaping.
        let _ = write!(
            out,
            concat!(
                r#" class="delete"><input type="hidden" name="id" value="{}">"#,
                r#"<input type="hidden" name="page" value="/r/"#,
            ),
            m.id
        );
        encode_double_quoted_attribute_to_string(&m.room, out);
        out.push_str(r#""><button type="submit">Delete</button></form>"#);
    }
    if viewer.moderator && m.author.is_some() && !own {
        out.push_str(r#"<button type="button" class="ban">Ban author…</button>"#);
    }
    out.push_str(r#"<p class="error" role="alert"></p></div></details>"#);
}

fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    encode_double_quoted_attribute_to_string(value, out);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use leptos::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::{
        domain::Reaction,
        state::{Live, RoomFeed},
        ui::{
            composer::Hydrated, message_item::Clock, message_list::row_view, timeline::build_rows,
        },
    };

    fn message(seq: i64, sender: &str, author: Option<&str>, content: &str) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            id: Uuid::from_u128(seq as u128),
            kind: MessageKind::User,
            sender: sender.into(),
            content: content.into(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
                + chrono::Duration::minutes(seq * 3),
            author: author.map(Into::into),
            ..Default::default()
        }
    }

    /// Every kind of row: own and others', a guest's, the server's, deleted,
    /// edited, with reactions, links and text that must be escaped, grouped,
    /// a day separator and the "new messages" divider.
    fn rows() -> Vec<Row> {
        let mut messages = vec![
            message(1, "Alice", Some("a1"), "hello <b>&</b> \"quotes\" 'single'"),
            message(
                2,
                "Alice",
                Some("a1"),
                "see https://example.com/?q=a&b=c'd. <x>",
            ),
            message(3, "ゲスト", None, "日本語のテキスト https://例え.jp/パス。"),
            message(4, "Bob <admin>", Some("b2"), "reactions"),
            message(5, "Bob <admin>", Some("b2"), "gone"),
            message(6, "Alice", Some("a1"), "edited"),
        ];
        messages[3].reactions = vec![
            Reaction {
                emoji: "👍".into(),
                count: 1,
                mine: true,
            },
            Reaction {
                emoji: "🎉".into(),
                count: 3,
                mine: false,
            },
        ];
        messages[4].deleted = true;
        messages[5].edited_at = Some(messages[5].created_at + chrono::Duration::seconds(30));
        let mut next_day = message(7, "server", None, "announced");
        next_day.room = crate::domain::ANNOUNCEMENTS.into();
        next_day.kind = MessageKind::Broadcast;
        next_day.created_at += chrono::Duration::days(1);
        build_rows(&messages, &[next_day], Some(4), None)
    }

    /// The live list's rows, rendered on the server, without the markers
    /// hydration would use.
    fn live_html(rows: Vec<Row>, author: Option<&str>, moderator: bool) -> String {
        let owner = Owner::new();
        owner.with(|| {
            let live = Live::new(String::new());
            live.author.set(author.map(Into::into));
            live.moderator.set(moderator);
            provide_context(live);
            provide_context(Clock(RwSignal::new(None)));
            provide_context(Hydrated(RwSignal::new(false)));
            provide_context(RoomFeed::new(
                "lobby".into(),
                Vec::new(),
                Vec::new(),
                false,
                String::new(),
            ));
            let html = rows.into_iter().map(row_view).collect_view().to_html();
            strip_markers(&html)
        })
    }

    /// Without hydration markers, each tag's attributes in name order and
    /// its classes single-spaced: the same page to a browser.
    fn strip_markers(html: &str) -> String {
        let mut out = String::with_capacity(html.len());
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            if rest.starts_with("<!--") {
                rest = &rest[rest.find("-->").expect("a closed comment") + 3..];
                continue;
            }
            let end = rest.find('>').expect("a closed tag");
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if tag == "!" {
                continue;
            }
            let (name, mut attrs) = match tag.split_once(' ') {
                Some((name, attrs)) => (name, attributes(attrs)),
                None => (tag, Vec::new()),
            };
            attrs.sort();
            out.push('<');
            out.push_str(name);
            for (name, value) in attrs {
                let value = if name == "class" {
                    value.split_whitespace().collect::<Vec<_>>().join(" ")
                } else {
                    value.to_owned()
                };
                out.push_str(&format!(" {name}=\"{value}\""));
            }
            out.push('>');
        }
        out.push_str(rest);
        out
    }

    /// `a="1" b="2"` (both renderers quote every value with `"`).
    fn attributes(mut s: &str) -> Vec<(&str, &str)> {
        let mut attrs = Vec::new();
        while let Some((name, tail)) = s.trim_start().split_once("=\"") {
            let (value, tail) = tail.split_once('"').expect("a closed value");
            attrs.push((name, value));
            s = tail;
        }
        attrs
    }

    #[test]
    fn the_fragment_is_the_live_rows_markup() {
        for (author, moderator) in [(None, false), (Some("a1"), false), (Some("b2"), true)] {
            let viewer = Viewer { author, moderator };
            let fragment = strip_markers(&rendered(&viewer));
            assert_eq!(
                fragment,
                live_html(rows(), author, moderator),
                "viewer {author:?}, moderator {moderator}"
            );
        }
    }

    fn rendered(viewer: &Viewer<'_>) -> String {
        let mut html = String::new();
        render(&mut html, &rows(), viewer);
        html
    }

    #[test]
    fn text_is_escaped_and_menus_follow_the_viewer() {
        let guest = rendered(&Viewer {
            author: None,
            moderator: false,
        });
        assert!(guest.contains("hello &lt;b&gt;&amp;&lt;/b&gt;"), "{guest}");
        assert!(guest.contains(r#"href="https://example.com/?q=a&amp;b=c'd""#));
        assert!(!guest.contains("<b>"));
        assert!(
            !guest.contains(r#"class="delete""#),
            "a guest deletes nothing"
        );
        let alice = rendered(&Viewer {
            author: Some("a1"),
            moderator: false,
        });
        assert_eq!(
            alice.matches(r#"class="delete""#).count(),
            3,
            "her three messages"
        );
        assert_eq!(alice.matches(r#"class="msg own"#).count(), 3);
        assert!(!alice.contains(r#"class="ban""#));
        let moderator = rendered(&Viewer {
            author: Some("b2"),
            moderator: true,
        });
        // Every changeable message: the deleted one and the broadcast have no menu.
        assert_eq!(moderator.matches(r#"class="delete""#).count(), 5);
        // Alice's three; not the guest's (no author) nor the moderator's own.
        assert_eq!(moderator.matches(r#"class="ban""#).count(), 3);
    }
}
