//! The room page's client state: confirmed messages (by seq), messages still
//! being sent, and the live connection's status. Plain signals, shared by
//! the components through a `Copy` handle.

use leptos::prelude::*;
use uuid::Uuid;

use crate::domain::Message;

/// Messages kept in the page; older ones are dropped from memory (they stay
/// in the database).
pub const MAX_IN_PAGE: usize = 500;

/// A message this page sent that the server has not confirmed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: Uuid,
    pub sender: String,
    pub content: String,
    /// Set when sending failed; the text stays here until retried.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Server-rendered, no live connection attempted (no JS yet).
    Idle,
    Connecting,
    Live,
    Reconnecting,
}

#[derive(Clone, Copy)]
pub struct ChatState {
    pub room: StoredValue<String>,
    pub messages: RwSignal<Vec<Message>>,
    pub pending: RwSignal<Vec<Pending>>,
    pub conn: RwSignal<ConnState>,
    pub me: RwSignal<String>,
}

impl ChatState {
    pub fn new(room: String, messages: Vec<Message>, me: String) -> Self {
        Self {
            room: StoredValue::new(room),
            messages: RwSignal::new(messages),
            pending: RwSignal::new(Vec::new()),
            conn: RwSignal::new(ConnState::Idle),
            me: RwSignal::new(me),
        }
    }

    /// The highest seq this page has (0 for none).
    pub fn last_seq(&self) -> i64 {
        self.messages
            .with_untracked(|m| m.last().map_or(0, |m| m.seq))
    }

    /// Adds a confirmed message (from the server function's answer or the
    /// WebSocket), once, in seq order, and clears its pending copy.
    pub fn confirm(&self, message: Message) {
        let id = message.id;
        self.messages.update(|list| {
            merge(list, message);
        });
        self.pending.update(|p| p.retain(|p| p.id != id));
    }

    pub fn fail(&self, id: Uuid, error: String) {
        self.pending.update(|p| {
            if let Some(p) = p.iter_mut().find(|p| p.id == id) {
                p.error = Some(error);
            }
        });
    }
}

/// Inserts `message` into `list` (sorted by seq) unless its seq is already
/// there. Returns whether it was added. Trims the list to [`MAX_IN_PAGE`].
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
    use crate::domain::MessageKind;

    fn msg(seq: i64) -> Message {
        Message {
            room: "lobby".into(),
            seq,
            id: Uuid::from_u128(seq as u128),
            kind: MessageKind::User,
            sender: "a".into(),
            content: "c".into(),
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
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
