//! How a frame from the server changes the page's state. Pure signal
//! updates, so the rules (each message once and in order, unread counting,
//! presence, typing, readiness) are unit-tested without a browser.

use leptos::prelude::*;

use super::{ConnState, Live};
use crate::domain::{ServerFrame, ANNOUNCEMENTS};

impl Live {
    /// Applies one server frame. `now_ms` is the browser clock (for how
    /// long "x is typing…" shows); without it typing signals are ignored.
    pub fn apply(&self, frame: ServerFrame, now_ms: Option<i64>) {
        match frame {
            ServerFrame::Message(m) if m.room == ANNOUNCEMENTS => self.add_announcement(m),
            ServerFrame::Message(m) => {
                if let Some(feed) = self.feed(&m.room) {
                    let at_bottom = feed.at_bottom.try_get_untracked().unwrap_or(true);
                    let away = self.hidden.get_untracked() || !at_bottom;
                    let me = self.author.get_untracked();
                    feed.delivered(m, me.as_deref(), away);
                }
            }
            ServerFrame::Ready { room, .. } => {
                self.conn.set(ConnState::Live);
                if let Some(feed) = self.feed(&room) {
                    feed.ready.set(true);
                }
            }
            ServerFrame::Presence { room, names, count } => {
                if let Some(feed) = self.feed(&room) {
                    feed.presence.set((names, count));
                }
            }
            ServerFrame::Typing { room, name } => {
                if let (Some(feed), Some(now)) = (self.feed(&room), now_ms) {
                    if name != self.me.get_untracked().trim() {
                        feed.typing_seen(name, now);
                    }
                }
            }
            ServerFrame::More { room, after } => {
                // The backlog goes on: page through it on the same socket.
                if self.feed(&room).is_some() || room == ANNOUNCEMENTS {
                    self.send(crate::domain::ClientFrame::Subscribe {
                        room,
                        after: Some(after),
                    });
                }
            }
            ServerFrame::Error { error, .. } => {
                leptos::logging::warn!("server refused a frame: {error}");
            }
        }
    }

    /// The socket dropped: nothing is live until the next `ready`.
    pub fn disconnected(&self) {
        self.outbox.set_value(None);
        self.conn.set(ConnState::Reconnecting);
        if let Some((feed, _)) = self.current_room() {
            feed.ready.set(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RoomFeed;
    use super::*;
    use crate::domain::{Message, MessageKind, TYPING_SHOWN_MS};

    fn msg(room: &str, seq: i64, sender: &str) -> Message {
        Message {
            room: room.into(),
            seq,
            id: uuid::Uuid::from_u128(seq as u128 + 1000 * room.len() as u128),
            kind: MessageKind::User,
            sender: sender.into(),
            author: Some(sender.into()),
            content: format!("m{seq}"),
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            ..Default::default()
        }
    }

    /// Signals need a reactive owner (and, on the server build, its arena).
    fn page(room: &str, me: &str) -> (Live, RoomFeed) {
        let owner = Owner::new();
        owner.set();
        // The owner lives as long as the test thread.
        std::mem::forget(owner);
        let live = Live::new(me.into());
        live.author.set(Some(me.into()));
        let feed = RoomFeed::new(room.into(), vec![msg(room, 1, "bob")], vec![], false);
        live.current.set_value(Some(feed));
        (live, feed)
    }

    fn seqs(feed: &RoomFeed) -> Vec<i64> {
        feed.messages
            .with_untracked(|m| m.iter().map(|m| m.seq).collect())
    }

    #[test]
    fn messages_land_once_in_order_in_their_own_room_only() {
        let (live, feed) = page("lobby", "alice");
        live.apply(ServerFrame::Message(msg("lobby", 3, "bob")), None);
        live.apply(ServerFrame::Message(msg("lobby", 2, "bob")), None);
        live.apply(ServerFrame::Message(msg("lobby", 3, "bob")), None);
        live.apply(ServerFrame::Message(msg("other", 4, "bob")), None);
        assert_eq!(seqs(&feed), vec![1, 2, 3]);
        live.apply(ServerFrame::Message(msg(ANNOUNCEMENTS, 9, "server")), None);
        assert_eq!(live.last_announcement(), 9);
        assert_eq!(seqs(&feed), vec![1, 2, 3]);
    }

    #[test]
    fn others_messages_count_as_unread_while_away_and_own_never() {
        let (live, feed) = page("lobby", "alice");
        live.apply(ServerFrame::Message(msg("lobby", 2, "bob")), None);
        assert_eq!(feed.unread.get_untracked(), 0, "at the bottom, tab visible");
        live.hidden.set(true);
        live.apply(ServerFrame::Message(msg("lobby", 3, "bob")), None);
        live.apply(ServerFrame::Message(msg("lobby", 4, "alice")), None);
        live.apply(ServerFrame::Message(msg("lobby", 5, "bob")), None);
        assert_eq!(feed.unread.get_untracked(), 2);
        assert_eq!(feed.divider.get_untracked(), Some(3));
    }

    #[test]
    fn ready_makes_the_room_live_and_a_drop_takes_it_back() {
        let (live, feed) = page("lobby", "alice");
        live.apply(
            ServerFrame::Ready {
                room: "other".into(),
                head: 1,
            },
            None,
        );
        assert!(!feed.ready.get_untracked());
        live.apply(
            ServerFrame::Ready {
                room: "lobby".into(),
                head: 1,
            },
            None,
        );
        assert!(feed.ready.get_untracked());
        assert_eq!(live.conn.get_untracked(), ConnState::Live);
        live.disconnected();
        assert!(!feed.ready.get_untracked());
        assert_eq!(live.conn.get_untracked(), ConnState::Reconnecting);
    }

    #[test]
    fn presence_and_typing_show_for_others_only() {
        let (live, feed) = page("lobby", "alice");
        live.apply(
            ServerFrame::Presence {
                room: "lobby".into(),
                names: vec!["alice".into(), "bob".into()],
                count: 3,
            },
            None,
        );
        assert_eq!(
            feed.presence.get_untracked(),
            (vec!["alice".into(), "bob".into()], 3)
        );
        let typing = |name: &str| ServerFrame::Typing {
            room: "lobby".into(),
            name: name.into(),
        };
        live.apply(typing("alice"), Some(1000));
        live.apply(typing("bob"), Some(1000));
        live.apply(typing("carol"), None);
        assert_eq!(
            feed.typing.get_untracked(),
            vec![("bob".to_owned(), 1000 + TYPING_SHOWN_MS)]
        );
        // bob's message ends his typing indicator.
        live.apply(ServerFrame::Message(msg("lobby", 2, "bob")), None);
        assert!(feed.typing.get_untracked().is_empty());
    }
}
