//! The page's state, below the components and above the browser glue.
//! [`Live`] lives as long as the page (one WebSocket, the announcements
//! feed, the name); [`RoomFeed`] belongs to the room on screen (its
//! messages, pending sends, presence, typing, unread marker). Plain signals
//! behind `Copy` handles. How a server frame changes them is in `frames.rs`
//! (pure, unit-tested without a browser); `connection.rs` drives the socket
//! glue with it. A room's signals are disposed with its page while answers
//! to its requests may still arrive, so its writes are all `try_`.
//!
//! Seqs belong to one epoch of the database (new after each restore). A
//! feed and the announcements remember the epoch they were loaded from; a
//! `ready` with another one means the database was restored underneath the
//! page, so what it holds is dropped and loaded again rather than resumed.

mod connection;
mod frames;

use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use uuid::Uuid;

use crate::domain::{ClientFrame, Message, MessageKind, TYPING_SHOWN_MS};

/// Messages kept in one room's view (older ones can be loaded again).
pub const MAX_IN_PAGE: usize = 5000;
/// Announcements kept in memory.
pub const MAX_ANNOUNCEMENTS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Server-rendered, no live connection attempted (no JS yet).
    Idle,
    Connecting,
    Live,
    Reconnecting,
}

/// A message this page sent that the server has not confirmed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: Uuid,
    pub sender: String,
    pub content: String,
    /// Set when sending failed; the text stays here until retried.
    pub error: Option<String>,
}

/// The page-wide live connection and what every room shares.
#[derive(Clone, Copy)]
pub struct Live {
    pub conn: RwSignal<ConnState>,
    /// The name in the composer (the session's, once chosen).
    pub me: RwSignal<String>,
    /// This browser's author id (marks its own messages), and whether it
    /// moderates.
    pub author: RwSignal<Option<String>>,
    pub moderator: RwSignal<bool>,
    /// How long after posting a message may be edited (the server's rule).
    pub edit_window_ms: StoredValue<i64>,
    /// Server broadcasts (the `announcements` room), oldest first.
    pub announcements: RwSignal<Vec<Message>>,
    /// The database epoch the announcements came from (empty: not known yet).
    pub announcements_epoch: StoredValue<String>,
    /// The room on screen, if any.
    pub current: StoredValue<Option<RoomFeed>>,
    /// Frames for the open socket (None while disconnected).
    pub outbox: StoredValue<Option<UnboundedSender<ClientFrame>>>,
    /// Whether the tab is hidden (unread counting).
    pub hidden: RwSignal<bool>,
}

impl Live {
    pub fn new(me: String) -> Self {
        Self {
            conn: RwSignal::new(ConnState::Idle),
            me: RwSignal::new(me),
            author: RwSignal::new(None),
            moderator: RwSignal::new(false),
            edit_window_ms: StoredValue::new(600_000),
            announcements: RwSignal::new(Vec::new()),
            announcements_epoch: StoredValue::new(String::new()),
            current: StoredValue::new(None),
            outbox: StoredValue::new(None),
            hidden: RwSignal::new(false),
        }
    }

    /// Sends a frame if connected (on reconnect the state is re-sent anyway).
    pub fn send(&self, frame: ClientFrame) {
        self.outbox.with_value(|o| {
            if let Some(tx) = o {
                let _ = tx.unbounded_send(frame);
            }
        });
    }

    /// The feed of `room` if it is on screen. A feed's signals are disposed
    /// with its page, so every access here is a `try_`.
    pub fn feed(&self, room: &str) -> Option<RoomFeed> {
        self.current
            .get_value()
            .filter(|f| f.room.try_with_value(|r| r == room).unwrap_or(false))
    }

    /// The room on screen, if its page is still alive.
    pub fn current_room(&self) -> Option<(RoomFeed, String)> {
        let feed = self.current.get_value()?;
        let room = feed.room.try_get_value()?;
        Some((feed, room))
    }

    /// A room page came on screen: follow it on the socket. (Pages of two
    /// rooms may overlap briefly while the router swaps them.)
    pub fn enter(&self, feed: RoomFeed) {
        let Some(room) = feed.room.try_get_value() else {
            return;
        };
        if let Some((_, prev)) = self.current_room() {
            if prev != room {
                self.send(ClientFrame::Unsubscribe { room: prev });
            }
        }
        self.current.set_value(Some(feed));
        self.send(ClientFrame::Subscribe {
            room,
            after: Some(feed.last_seq()),
        });
    }

    /// The room page left the screen.
    pub fn leave(&self, room: &str) {
        let leaving = self.current.with_value(|c| {
            c.is_some_and(|f| f.room.try_with_value(|r| r == room).unwrap_or(true))
        });
        if leaving {
            self.current.set_value(None);
        }
        if self.current_room().is_none_or(|(_, r)| r != room) {
            self.send(ClientFrame::Unsubscribe {
                room: room.to_owned(),
            });
        }
    }

    pub fn last_announcement(&self) -> i64 {
        self.announcements
            .with_untracked(|a| a.last().map_or(0, |m| m.seq))
    }

    pub fn add_announcement(&self, message: Message) {
        self.announcements.update(|list| {
            merge(list, message);
            if list.len() > MAX_ANNOUNCEMENTS {
                let excess = list.len() - MAX_ANNOUNCEMENTS;
                list.drain(..excess);
            }
        });
    }
}

/// One room's state while it is on screen.
#[derive(Clone, Copy)]
pub struct RoomFeed {
    pub room: StoredValue<String>,
    /// Announcements that came with the page (the live ones are in [`Live`]).
    pub announcements: StoredValue<Vec<Message>>,
    pub messages: RwSignal<Vec<Message>>,
    pub pending: RwSignal<Vec<Pending>>,
    /// Names (sorted) and the number of people here now.
    pub presence: RwSignal<(Vec<String>, u32)>,
    /// Who is typing, until when (browser ms).
    pub typing: RwSignal<Vec<(String, i64)>>,
    /// Whether older messages can be loaded.
    pub has_older: RwSignal<bool>,
    pub loading_older: RwSignal<bool>,
    /// Messages that arrived while the reader was away (scrolled up or tab hidden).
    pub unread: RwSignal<u32>,
    /// Seq of the first of those: where the "new messages" divider goes.
    pub divider: RwSignal<Option<i64>>,
    pub at_bottom: RwSignal<bool>,
    /// The socket has delivered this room's backlog.
    pub ready: RwSignal<bool>,
    /// The last seq the socket delivered (or the page came with): where a
    /// reconnect resumes. Messages confirmed by a post's own answer do not
    /// move it, so nothing between is skipped.
    pub delivered: StoredValue<i64>,
    /// The message being edited in place, by seq.
    pub editing: RwSignal<Option<i64>>,
    /// The database epoch the messages belong to (empty: not known).
    pub epoch: RwSignal<String>,
    /// The database was restored: the messages were dropped and the room's
    /// newest page must be loaded again (the page does it, then
    /// [`Live::reloaded`]). Live messages are ignored meanwhile; the
    /// subscription after the reload replays them.
    pub stale: RwSignal<bool>,
}

impl RoomFeed {
    pub fn new(
        room: String,
        messages: Vec<Message>,
        announcements: Vec<Message>,
        has_older: bool,
        epoch: String,
    ) -> Self {
        Self {
            room: StoredValue::new(room),
            announcements: StoredValue::new(announcements),

            messages: RwSignal::new(messages),
            pending: RwSignal::new(Vec::new()),
            presence: RwSignal::new((Vec::new(), 0)),
            typing: RwSignal::new(Vec::new()),
            has_older: RwSignal::new(has_older),
            loading_older: RwSignal::new(false),
            unread: RwSignal::new(0),
            divider: RwSignal::new(None),
            at_bottom: RwSignal::new(true),
            ready: RwSignal::new(false),
            delivered: StoredValue::new(0),
            editing: RwSignal::new(None),
            epoch: RwSignal::new(epoch),
            stale: RwSignal::new(false),
        }
        .came_with_messages()
    }

    fn came_with_messages(self) -> Self {
        let last = self
            .messages
            .with_untracked(|m| m.last().map_or(0, |m| m.seq));
        self.delivered.set_value(last);
        self
    }

    /// Whether seqs of `epoch` (as a `ready` or a history page reports it)
    /// are comparable with the ones this feed holds. An unknown epoch on
    /// either side is trusted, and learnt.
    pub fn same_epoch(&self, epoch: &str) -> bool {
        let known = self.epoch.try_get_untracked().unwrap_or_default();
        if epoch.is_empty() || known == epoch {
            return true;
        }
        if known.is_empty() {
            let _ = self.epoch.try_set(epoch.to_owned());
            return true;
        }
        false
    }

    /// The database was restored (it reports `epoch`): everything this
    /// feed holds may be gone or different under the same seqs. Drops it
    /// and marks the room for reloading.
    pub fn restart(&self, epoch: String) {
        let _ = self.epoch.try_set(epoch);
        let _ = self.messages.try_set(Vec::new());
        let _ = self.announcements.try_update_value(Vec::clear);
        let _ = self.delivered.try_update_value(|d| *d = 0);
        let _ = self.has_older.try_set(false);
        let _ = self.unread.try_set(0);
        let _ = self.divider.try_set(None);
        let _ = self.editing.try_set(None);
        let _ = self.typing.try_set(Vec::new());
        let _ = self.ready.try_set(false);
        let _ = self.stale.try_set(true);
    }

    /// Waiting for its reload after a restore.
    pub fn is_stale(&self) -> bool {
        self.stale.try_get_untracked().unwrap_or(false)
    }

    /// Where a reconnect resumes this room: the last seq delivered.
    pub fn last_seq(&self) -> i64 {
        self.delivered.try_get_value().unwrap_or(0)
    }

    /// A message or event arrived on the socket (in seq order, gapless).
    pub fn delivered(&self, message: Message, me: Option<&str>, away: bool) {
        let seq = message.seq;
        let _ = self.delivered.try_update_value(|d| *d = (*d).max(seq));
        self.confirm(message, me, away);
    }

    /// Adds a confirmed message (from the server function's answer or the
    /// WebSocket), once, in seq order, and clears its pending copy; an event
    /// changes the message it targets instead. Live messages from others
    /// count as unread while the reader is away.
    pub fn confirm(&self, message: Message, me: Option<&str>, away: bool) {
        if message.kind.is_event() {
            let _ = self.messages.try_update(|list| {
                if let Some(target) = message.target {
                    if let Ok(at) = list.binary_search_by_key(&target, |m| m.seq) {
                        list[at].apply(&message, me);
                    }
                }
            });
            return;
        }
        let id = message.id;
        let seq = message.seq;
        let from_other =
            message.kind == MessageKind::User && (me.is_none() || message.author.as_deref() != me);
        let sender = message.sender.clone();
        let mut added = false;
        let _ = self
            .messages
            .try_update(|list| added = merge(list, message));
        let _ = self.pending.try_update(|p| p.retain(|p| p.id != id));
        let _ = self
            .typing
            .try_update(|t| t.retain(|(name, _)| *name != sender));
        if added && from_other && away {
            let _ = self.unread.try_update(|n| *n += 1);
            if self.divider.try_get_untracked().flatten().is_none() {
                let _ = self.divider.try_set(Some(seq));
            }
        }
    }

    /// A send failed: the text stays, with the error (and a Retry).
    pub fn fail(&self, id: Uuid, error: String) {
        let _ = self.pending.try_update(|p| {
            if let Some(p) = p.iter_mut().find(|p| p.id == id) {
                p.error = Some(error);
            }
        });
    }

    /// Older messages (a history page) go in front; a page from another
    /// epoch restarts the room instead (the database was restored).
    pub fn prepend_page(&self, older: Vec<Message>, epoch: &str, page_size: usize) {
        if self.same_epoch(epoch) {
            self.prepend(older, page_size);
        } else {
            self.restart(epoch.to_owned());
        }
    }

    /// Older messages (a history page) go in front.
    pub fn prepend(&self, older: Vec<Message>, page_size: usize) {
        let full = older.len() >= page_size;
        let reached_start = older.first().is_some_and(|m| m.seq <= 1);
        let _ = self.messages.try_update(|list| {
            for m in older {
                merge(list, m);
            }
        });
        let _ = self.has_older.try_set(full && !reached_start);
    }

    pub fn typing_seen(&self, name: String, now_ms: i64) {
        let _ = self.typing.try_update(|t| {
            t.retain(|(n, _)| *n != name);
            t.push((name, now_ms + TYPING_SHOWN_MS));
        });
    }

    /// Drops expired typing signals (called every second).
    pub fn prune_typing(&self, now_ms: i64) {
        if self
            .typing
            .try_with_untracked(|t| t.iter().any(|(_, until)| *until <= now_ms))
            .unwrap_or(false)
        {
            let _ = self
                .typing
                .try_update(|t| t.retain(|(_, until)| *until > now_ms));
        }
    }

    /// The reader is back at the newest message with the tab visible.
    pub fn caught_up(&self) {
        if self.unread.try_get_untracked().unwrap_or(0) != 0 {
            let _ = self.unread.try_set(0);
        }
    }
}

/// Inserts `message` into `list` (sorted by seq) unless its seq is already
/// there. Returns whether it was added. Trims the oldest beyond
/// [`MAX_IN_PAGE`].
pub fn merge(list: &mut Vec<Message>, message: Message) -> bool {
    let added = match list.binary_search_by_key(&message.seq, |m| m.seq) {
        Ok(_) => false,
        Err(at) => {
            list.insert(at, message);
            true
        }
    };
    if list.len() > MAX_IN_PAGE {
        let excess = list.len() - MAX_IN_PAGE;
        list.drain(..excess);
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            id: Uuid::from_u128(seq as u128),
            kind: MessageKind::User,
            sender: "a".into(),
            content: "c".into(),
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn merge_keeps_order_and_drops_duplicates() {
        let mut list = vec![msg(1), msg(3)];
        assert!(merge(&mut list, msg(2)));
        assert!(!merge(&mut list, msg(3)));
        assert!(merge(&mut list, msg(5)));
        assert_eq!(
            list.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 5]
        );
    }

    #[test]
    fn merge_caps_the_list() {
        let mut list = Vec::new();
        for seq in 1..=(MAX_IN_PAGE as i64 + 10) {
            merge(&mut list, msg(seq));
        }
        assert_eq!(list.len(), MAX_IN_PAGE);
        assert_eq!(list[0].seq, 11);
    }
}
