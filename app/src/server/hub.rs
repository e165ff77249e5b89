//! The realtime hub: fans committed messages out to this instance's sockets.
//!
//! Every committed message enters through [`Hub::publish`] (today from the
//! local post path; a database listener can feed the same entry point). One
//! ingest task orders them per room by `seq`, drops duplicates, fills any gap
//! from the store, serialises each message once, and sends the shared bytes
//! to the room's `broadcast` channel. Each socket holds a receiver: a bounded
//! queue of its own, so a slow socket lags alone and never slows the others.
//! The hub never touches a socket and holds its lock only for map lookups.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};

use super::store::{ListQuery, Store, MAX_PAGE};
use crate::domain::{Message, RoomId, ServerFrame};

/// Frames a socket may fall behind before it is closed and told to resume.
pub const DEFAULT_CAPACITY: usize = 1024;

/// One message, serialised once and shared by every socket in the room.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: i64,
    pub text: Utf8Bytes,
}

impl Frame {
    pub fn new(message: &Message) -> Self {
        let text = serde_json::to_string(&ServerFrame::Message(message.clone()))
            .expect("a message always serialises");
        Self {
            seq: message.seq,
            text: text.into(),
        }
    }
}

struct Room {
    tx: broadcast::Sender<Frame>,
    /// The last seq sent to this room's channel (None: nothing yet).
    last_seq: Option<i64>,
}

#[derive(Clone)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<RoomId, Room>>>,
    ingest: mpsc::UnboundedSender<Message>,
    capacity: usize,
}

impl Hub {
    /// Starts the hub's ingest task. `store` fills gaps in the sequence.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        let (ingest, rx) = mpsc::unbounded_channel();
        let rooms = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(ingest_loop(rooms.clone(), store, rx));
        Self {
            rooms,
            ingest,
            capacity,
        }
    }

    /// Subscribes to a room's live frames. Subscribe *before* reading the
    /// backlog, so nothing committed in between is missed.
    pub fn subscribe(&self, room: &RoomId) -> broadcast::Receiver<Frame> {
        let mut rooms = self.rooms.lock().expect("hub lock poisoned");
        rooms
            .entry(room.clone())
            .or_insert_with(|| Room {
                tx: broadcast::channel(self.capacity).0,
                last_seq: None,
            })
            .tx
            .subscribe()
    }

    /// Hands a committed message to the hub. Never blocks.
    pub fn publish(&self, message: Message) {
        if self.ingest.send(message).is_err() {
            tracing::error!("hub ingest task is gone; message not fanned out");
        }
    }

    /// Number of sockets subscribed across all rooms.
    pub fn subscribers(&self) -> usize {
        let rooms = self.rooms.lock().expect("hub lock poisoned");
        rooms.values().map(|r| r.tx.receiver_count()).sum()
    }
}

/// What the ingest loop should do with an incoming message.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nobody listens in this room.
    Skip,
    /// Already sent (a duplicate or a late arrival of an earlier seq).
    Drop,
    /// Next in line: send it.
    Send,
    /// Messages `(from, to)` exclusive are missing: read them first.
    Fill { from: i64, to: i64 },
}

fn step(last_seq: Option<i64>, seq: i64) -> Step {
    match last_seq {
        None => Step::Send,
        Some(last) if seq <= last => Step::Drop,
        Some(last) if seq == last + 1 => Step::Send,
        Some(last) => Step::Fill {
            from: last,
            to: seq,
        },
    }
}

async fn ingest_loop(
    rooms: Arc<Mutex<HashMap<RoomId, Room>>>,
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(message) = rx.recv().await {
        let Ok(room) = RoomId::parse(&message.room) else {
            continue;
        };
        let next = {
            let mut map = rooms.lock().expect("hub lock poisoned");
            match map.get(&room) {
                Some(r) if r.tx.receiver_count() == 0 => {
                    map.remove(&room);
                    Step::Skip
                }
                Some(r) => step(r.last_seq, message.seq),
                None => Step::Skip,
            }
        };
        match next {
            Step::Skip | Step::Drop => {}
            Step::Send => send(&rooms, &room, &message),
            Step::Fill { from, to } => {
                fill_gap(&rooms, &store, &room, from, to).await;
                send(&rooms, &room, &message);
            }
        }
    }
}

/// Reads the messages between `from` and `to` (exclusive) and sends them.
async fn fill_gap(
    rooms: &Mutex<HashMap<RoomId, Room>>,
    store: &Arc<dyn Store>,
    room: &RoomId,
    from: i64,
    to: i64,
) {
    let mut after = from;
    while after + 1 < to {
        let query = ListQuery {
            room: room.clone(),
            after: Some(after),
            before: Some(to),
            limit: MAX_PAGE,
        };
        match store.list(&query).await {
            Ok(page) if !page.is_empty() => {
                for message in &page {
                    send(rooms, room, message);
                }
                after = page.last().map_or(to, |m| m.seq);
            }
            Ok(_) => break,
            Err(e) => {
                // Sockets detect the gap themselves and read it from the store.
                tracing::warn!(error = ?e, room_id = %room, "hub could not fill a gap");
                break;
            }
        }
    }
}

fn send(rooms: &Mutex<HashMap<RoomId, Room>>, room: &RoomId, message: &Message) {
    // Serialise outside the lock: once per message, whatever the audience.
    let frame = Frame::new(message);
    let mut map = rooms.lock().expect("hub lock poisoned");
    if let Some(r) = map.get_mut(room) {
        if r.last_seq.is_some_and(|last| message.seq <= last) {
            return;
        }
        r.last_seq = Some(message.seq);
        // An error only means every receiver has gone.
        let _ = r.tx.send(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(step(None, 5), Step::Send);
        assert_eq!(step(Some(4), 5), Step::Send);
        assert_eq!(step(Some(5), 5), Step::Drop);
        assert_eq!(step(Some(6), 5), Step::Drop);
        assert_eq!(step(Some(2), 5), Step::Fill { from: 2, to: 5 });
    }
}
