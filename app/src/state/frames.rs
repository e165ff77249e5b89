//! How a frame from the server changes the page's state. Pure signal
//! updates, so the rules (each message once and in order, unread counting,
//! presence, typing, readiness, a restored database) are unit-tested
//! without a browser.

use leptos::prelude::*;

use super::{ConnState, Live, RoomFeed, MAX_ANNOUNCEMENTS};
use crate::domain::{ClientFrame, Message, ServerFrame, ANNOUNCEMENTS};

impl Live {
    /// Applies one server frame. `now_ms` is the browser clock (for how
    /// long "x is typing…" shows); without it typing signals are ignored.
    pub fn apply(&self, frame: ServerFrame, now_ms: Option<i64>) {
        match frame {
            ServerFrame::Message(m) if m.room == ANNOUNCEMENTS => self.add_announcement(m),
            ServerFrame::Message(m) => {
                // A stale feed gets these again after its reload.
                if let Some(feed) = self.feed(&m.room).filter(|f| !f.is_stale()) {
                    let at_bottom = feed.at_bottom.try_get_untracked().unwrap_or(true);
                    let away = self.hidden.get_untracked() || !at_bottom;
                    let me = self.author.get_untracked();
                    feed.delivered(m, me.as_deref(), away);
                }
            }
            ServerFrame::Ready { room, head, epoch } => {
                self.conn.set(ConnState::Live);
                if room == ANNOUNCEMENTS {
                    self.announcements_ready(head, &epoch);
                }
                if let Some(feed) = self.feed(&room) {
                    if feed.same_epoch(&epoch) {
                        if !feed.is_stale() {
                            feed.ready.set(true);
                        }
                    } else {
                        // Restored underneath us: our `after` meant nothing.
                        feed.restart(epoch);
                    }
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
                let paging = match self.feed(&room) {
                    Some(feed) => !feed.is_stale(),
                    None => room == ANNOUNCEMENTS,
                };
                if paging {
                    self.send(ClientFrame::Subscribe {
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

    /// The announcements' `ready`: if they came from another epoch, they
    /// are dropped and the newest ones replayed.
    fn announcements_ready(&self, head: i64, epoch: &str) {
        if epoch.is_empty() {
            return;
        }
        let known = self.announcements_epoch.get_value();
        self.announcements_epoch.set_value(epoch.to_owned());
        if known.is_empty() || known == epoch {
            return;
        }
        self.announcements.set(Vec::new());
        if let Some((feed, _)) = self.current_room() {
            let _ = feed.announcements.try_update_value(Vec::clear);
        }
        self.send(ClientFrame::Subscribe {
            room: ANNOUNCEMENTS.to_owned(),
            after: Some(head.saturating_sub(MAX_ANNOUNCEMENTS as i64).max(0)),
        });
    }

    /// A stale room's newest page arrived (`epoch` is what it came from):
    /// it replaces the view, and the room is followed again after its last
    /// seq, so whatever was posted meanwhile follows, once and in order.
    pub fn reloaded(
        &self,
        feed: RoomFeed,
        messages: Vec<Message>,
        epoch: String,
        page_size: usize,
    ) {
        let has_older = messages.len() >= page_size && messages.first().is_some_and(|m| m.seq > 1);
        let last = messages.last().map_or(0, |m| m.seq);
        let _ = feed.epoch.try_set(epoch);
        let _ = feed.messages.try_set(messages);
        let _ = feed.delivered.try_update_value(|d| *d = last);
        let _ = feed.has_older.try_set(has_older);
        let _ = feed.stale.try_set(false);
        if let Some(room) = feed.room.try_get_value() {
            if self.feed(&room).is_some() {
                // Also re-sent by `opened` if the socket is down now.
                self.send(ClientFrame::Subscribe {
                    room,
                    after: Some(last),
                });
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
        let feed = RoomFeed::new(
            room.into(),
            vec![msg(room, 1, "bob")],
            vec![],
            false,
            "e1".into(),
        );
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
                epoch: "e1".into(),
            },
            None,
        );
        assert!(!feed.ready.get_untracked());
        live.apply(
            ServerFrame::Ready {
                room: "lobby".into(),
                head: 1,
                epoch: "e1".into(),
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

    /// Frames the page sends on its socket, captured.
    fn outbox(live: &Live) -> futures::channel::mpsc::UnboundedReceiver<ClientFrame> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        live.outbox.set_value(Some(tx));
        rx
    }

    fn sent(rx: &mut futures::channel::mpsc::UnboundedReceiver<ClientFrame>) -> Vec<ClientFrame> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn ready(room: &str, head: i64, epoch: &str) -> ServerFrame {
        ServerFrame::Ready {
            room: room.into(),
            head,
            epoch: epoch.into(),
        }
    }

    fn contents(feed: &RoomFeed) -> Vec<String> {
        feed.messages
            .with_untracked(|m| m.iter().map(|m| m.content.clone()).collect())
    }

    #[test]
    fn a_ready_from_a_restored_database_restarts_the_room_instead_of_resuming() {
        let (live, feed) = page("lobby", "alice");
        for seq in 2..=10 {
            live.apply(ServerFrame::Message(msg("lobby", seq, "bob")), None);
        }
        live.apply(ready("lobby", 10, "e1"), None);
        assert_eq!(feed.last_seq(), 10);
        assert!(feed.ready.get_untracked());

        // The database is restored to seq 5 and the socket reconnects
        // asking for everything after 10: nothing is replayed, and `ready`
        // reports the restored head under a new epoch.
        live.disconnected();
        let mut out = outbox(&live);
        live.apply(ready("lobby", 5, "e2"), None);
        assert!(feed.is_stale(), "the room is reloaded, not resumed");
        assert!(!feed.ready.get_untracked());
        assert!(seqs(&feed).is_empty(), "nothing from the old epoch stays");
        assert_eq!(feed.epoch.get_untracked(), "e2");

        // Live messages meanwhile are left to the subscription after the reload.
        let restored = |seq: i64| Message {
            content: format!("restored {seq}"),
            ..msg("lobby", seq, "bob")
        };
        live.apply(ServerFrame::Message(restored(6)), None);
        assert!(seqs(&feed).is_empty());

        // The newest page of the restored database replaces the view, and
        // the room is followed again after its last seq.
        let history: Vec<Message> = (1..=6).map(restored).collect();
        let _ = sent(&mut out);
        live.reloaded(feed, history, "e2".into(), 50);
        assert!(!feed.is_stale());
        assert_eq!(
            sent(&mut out),
            vec![ClientFrame::Subscribe {
                room: "lobby".into(),
                after: Some(6)
            }]
        );
        live.apply(ServerFrame::Message(restored(6)), None);
        live.apply(ready("lobby", 6, "e2"), None);
        live.apply(ServerFrame::Message(restored(7)), None);
        assert!(feed.ready.get_untracked());
        assert_eq!(
            contents(&feed),
            (1..=7).map(|s| format!("restored {s}")).collect::<Vec<_>>(),
            "exactly the restored history and what followed it"
        );
        assert_eq!(feed.last_seq(), 7);
    }

    #[test]
    fn the_same_or_an_unknown_epoch_resumes() {
        let (live, feed) = page("lobby", "alice");
        live.apply(ServerFrame::Message(msg("lobby", 2, "bob")), None);
        live.apply(ready("lobby", 2, "e1"), None);
        live.apply(ready("lobby", 2, ""), None);
        assert_eq!(seqs(&feed), vec![1, 2]);
        assert!(!feed.is_stale());
        // A page that did not know its epoch learns it.
        feed.epoch.set(String::new());
        live.apply(ready("lobby", 2, "e3"), None);
        assert_eq!(feed.epoch.get_untracked(), "e3");
        assert_eq!(seqs(&feed), vec![1, 2]);
    }

    #[test]
    fn a_stale_room_is_not_subscribed_on_reconnect_nor_paged() {
        let (live, feed) = page("lobby", "alice");
        feed.restart("e2".into());
        let mut out = outbox(&live);
        live.apply(
            ServerFrame::More {
                room: "lobby".into(),
                after: 1000,
            },
            None,
        );
        assert!(sent(&mut out).is_empty());
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        crate::browser::Handler::opened(&live, tx);
        assert!(
            sent(&mut rx)
                .iter()
                .all(|f| !matches!(f, ClientFrame::Subscribe { .. })),
            "a full replay from seq 0 is not asked for"
        );
    }

    #[test]
    fn a_history_page_from_another_epoch_restarts_the_room() {
        let (_live, feed) = page("lobby", "alice");
        feed.prepend_page(vec![msg("lobby", 1, "bob")], "e1", 50);
        assert_eq!(seqs(&feed), vec![1]);
        feed.prepend_page(vec![msg("lobby", 1, "carol")], "e2", 50);
        assert!(feed.is_stale());
        assert!(seqs(&feed).is_empty());
    }

    #[test]
    fn announcements_from_a_restored_database_are_replaced() {
        let (live, feed) = page("lobby", "alice");
        let mut out = outbox(&live);
        live.apply(ready(ANNOUNCEMENTS, 0, "e1"), None);
        live.apply(ServerFrame::Message(msg(ANNOUNCEMENTS, 90, "server")), None);
        live.apply(ready(ANNOUNCEMENTS, 90, "e1"), None);
        assert_eq!(live.last_announcement(), 90);
        assert!(sent(&mut out).is_empty());
        live.apply(ready(ANNOUNCEMENTS, 70, "e2"), None);
        assert!(live.announcements.get_untracked().is_empty());
        assert_eq!(
            sent(&mut out),
            vec![ClientFrame::Subscribe {
                room: ANNOUNCEMENTS.into(),
                after: Some(70 - MAX_ANNOUNCEMENTS as i64)
            }]
        );
        // The room itself is not touched by the announcements' epoch.
        assert_eq!(seqs(&feed), vec![1]);
    }
}
