//! The realtime hub: fans committed messages out to this instance's sockets.
//!
//! Every committed message enters through [`Hub::publish`], from the commit
//! feed (`cluster::feed`), so own and other instances' posts take one path. One
//! ingest task orders them per room by `seq`, drops duplicates, fills any gap
//! from the store, serialises each message once, and sends the shared bytes
//! to the room's `broadcast` channel. Each socket holds a receiver: a bounded
//! queue of its own, so a slow socket lags alone and never slows the others.
//! The hub never touches a socket and holds its lock only for map lookups.
//!
//! A room's entry (and its channel's buffer) exists while somebody follows
//! it: a [`Subscription`] is a guard, and the last one to go removes the
//! entry. At most `max_rooms` rooms are followed at once. Nothing a client
//! sends moves the hub's idea of where a room's sequence is: that comes from
//! the store and the commit feed only.
//!
//! Those seqs belong to one epoch of the database (its identity, new after
//! each restore). The hub holds the epoch this instance serves; when it
//! changes ([`Hub::set_epoch`]), it forgets where every room was and tells
//! every socket, which closes so its client reloads from the restored
//! database.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use app::domain::{Message, RoomId, ServerFrame};
use axum::extract::ws::Utf8Bytes;
use futures::Stream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use crate::store::{Pages, Store};

/// Frames a socket may fall behind before it is closed and told to resume.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Rooms followed on one instance at once, by default.
pub const DEFAULT_MAX_ROOMS: usize = 2000;

/// One frame, serialised once and shared by every socket in the room: a
/// message (with its seq) or an ephemeral event (presence, typing).
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: Option<i64>,
    pub text: Utf8Bytes,
}

impl Frame {
    pub fn new(message: &Message) -> Self {
        let text = ServerFrame::message_json(message);
        Self {
            seq: Some(message.seq),
            text: text.into(),
        }
    }
}

struct Room {
    tx: broadcast::Sender<Frame>,
    /// The last seq sent to this room's channel (None: nothing yet).
    last_seq: Option<i64>,
}

/// What the ingest task is asked to do.
enum Command {
    /// A committed message.
    Message(Message),
    /// A committed message known only by room and seq (read it from the store).
    Ref { room: RoomId, seq: i64 },
    /// Read every active room's messages after the last one sent (after the
    /// feed was interrupted); answers with how many were recovered.
    Resync(oneshot::Sender<usize>),
    /// The database was restored: forget where every room was.
    Reset,
}

type Rooms = Arc<Mutex<HashMap<RoomId, Room>>>;

#[derive(Clone)]
pub struct Hub {
    rooms: Rooms,
    /// Open sockets (whatever their subscriptions).
    connections: Arc<std::sync::atomic::AtomicUsize>,
    ingest: mpsc::UnboundedSender<Command>,
    capacity: usize,
    max_rooms: usize,
    /// The database epoch this instance serves (empty until known).
    epoch: Arc<watch::Sender<Arc<str>>>,
    /// Moves whenever a commit reaches this instance, or may have
    /// ([`Hub::changes`]).
    changes: Arc<std::sync::atomic::AtomicU64>,
}

/// Every room this instance may follow is already followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRooms;

impl Hub {
    /// Starts the hub's ingest task. `store` fills gaps in the sequence.
    pub fn new(store: Arc<dyn Store>, capacity: usize, max_rooms: usize) -> Self {
        let (ingest, rx) = mpsc::unbounded_channel();
        let rooms = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(ingest_loop(rooms.clone(), store, rx));
        Self {
            rooms,
            connections: Arc::default(),
            ingest,
            capacity,
            max_rooms,
            epoch: Arc::new(watch::Sender::new(Arc::from(""))),
            changes: Arc::default(),
        }
    }

    /// A count that moves whenever a commit is handed to the hub (from any
    /// instance), this instance commits one itself ([`Hub::note_commit`]),
    /// the feed resyncs or the database is restored: what a kept read
    /// (`page_reads`) compares to know it may be stale.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// This instance committed something; the feed hands it over soon, but
    /// reads kept from before must not be served until then.
    pub fn note_commit(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The database epoch the rooms' seqs belong to (cheap: no query).
    pub fn epoch(&self) -> Arc<str> {
        self.epoch.borrow().clone()
    }

    /// Changes when the epoch does (a socket closes then: its client's
    /// seqs belong to the old database).
    pub fn epoch_changes(&self) -> watch::Receiver<Arc<str>> {
        self.epoch.subscribe()
    }

    /// The store's epoch, as read at start and then every second. A new one
    /// means the database was restored underneath: the hub forgets where
    /// each room was and every socket is told. Returns whether it changed
    /// (the first value, at start, is not a change).
    pub fn set_epoch(&self, epoch: &str) -> bool {
        // Reads kept from the old database go stale before anyone can pair
        // them with the new epoch.
        if &**self.epoch.borrow() != epoch {
            self.note_commit();
        }
        let mut was_known = false;
        let changed = self.epoch.send_if_modified(|current| {
            if &**current == epoch {
                return false;
            }
            was_known = !current.is_empty();
            *current = Arc::from(epoch);
            true
        });
        if changed && was_known {
            self.note_commit();
            self.command(Command::Reset);
        }
        changed && was_known
    }

    /// Subscribes to a room's live frames. Subscribe *before* reading the
    /// backlog, so nothing committed in between is missed. Dropping the
    /// subscription unsubscribes.
    pub fn subscribe(&self, room: &RoomId) -> Result<Subscription, TooManyRooms> {
        let mut rooms = crate::sync::lock(&self.rooms);
        if !rooms.contains_key(room) && rooms.len() >= self.max_rooms {
            return Err(TooManyRooms);
        }
        let rx = rooms
            .entry(room.clone())
            .or_insert_with(|| Room {
                tx: broadcast::channel(self.capacity).0,
                last_seq: None,
            })
            .tx
            .subscribe();
        Ok(Subscription {
            stream: Some(BroadcastStream::new(rx)),
            room: room.clone(),
            rooms: self.rooms.clone(),
        })
    }

    /// Rooms with a hub entry now (followed by at least one socket, or about
    /// to be dropped).
    pub fn rooms(&self) -> usize {
        crate::sync::lock(&self.rooms).len()
    }

    /// The store says `room`'s head is `head` (read after subscribing): if
    /// the hub has not sent anything in this room yet, that is where its
    /// sequence starts, so a resync knows what to read. Only ever pass a
    /// value read from the store: a client's `after` must never move it.
    pub fn seen(&self, room: &RoomId, head: i64) {
        let mut rooms = crate::sync::lock(&self.rooms);
        if let Some(r) = rooms.get_mut(room) {
            if r.last_seq.is_none() {
                r.last_seq = Some(head);
            }
        }
    }

    /// Hands a committed message to the hub. Never blocks.
    pub fn publish(&self, message: Message) {
        self.note_commit();
        self.command(Command::Message(message));
    }

    /// Hands a committed message's room and seq to the hub, which reads it.
    pub fn publish_ref(&self, room: RoomId, seq: i64) {
        self.note_commit();
        self.command(Command::Ref { room, seq });
    }

    /// Sends every active room's messages committed after the last one the
    /// hub sent. Call after the feed of commits was interrupted.
    pub async fn resync(&self) -> usize {
        self.note_commit();
        let (tx, rx) = oneshot::channel();
        self.command(Command::Resync(tx));
        rx.await.unwrap_or(0)
    }

    fn command(&self, command: Command) {
        if self.ingest.send(command).is_err() {
            tracing::error!("hub ingest task is gone; message not fanned out");
        }
    }

    /// Sends an ephemeral frame (not stored, not ordered) to the room's
    /// sockets, if it has any.
    pub fn send_ephemeral(&self, room: &RoomId, text: String) {
        let frame = Frame {
            seq: None,
            text: text.into(),
        };
        let rooms = crate::sync::lock(&self.rooms);
        if let Some(r) = rooms.get(room) {
            let _ = r.tx.send(frame);
        }
    }

    /// Counts a socket as open until the guard is dropped.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("websocket_connections_active").increment(1.0);
        ConnectionGuard(self.connections.clone())
    }

    /// Open sockets on this instance.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One socket's place in one room: a stream of the room's frames. When the
/// last subscription of a room is dropped, the hub forgets the room.
pub struct Subscription {
    stream: Option<BroadcastStream<Frame>>,
    room: RoomId,
    rooms: Rooms,
}

impl Stream for Subscription {
    type Item = Result<Frame, BroadcastStreamRecvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Let go of the receiver first, then look under the lock: a socket
        // subscribing at the same moment either finds the room (and keeps
        // it) or creates it afresh.
        drop(self.stream.take());
        let mut rooms = crate::sync::lock(&self.rooms);
        if rooms
            .get(&self.room)
            .is_some_and(|r| r.tx.receiver_count() == 0)
        {
            rooms.remove(&self.room);
        }
    }
}

/// Keeps a socket counted in [`Hub::connections`] while alive.
pub struct ConnectionGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("websocket_connections_active").decrement(1.0);
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
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Message(message) => {
                let Ok(room) = RoomId::parse(&message.room) else {
                    continue;
                };
                match next_step(&rooms, &room, message.seq) {
                    Step::Skip | Step::Drop => {}
                    Step::Send => {
                        send(&rooms, &room, &message);
                    }
                    Step::Fill { from, to } => {
                        fill_gap(&rooms, &store, &room, from, to).await;
                        send(&rooms, &room, &message);
                    }
                }
            }
            Command::Ref { room, seq } => match next_step(&rooms, &room, seq) {
                Step::Skip | Step::Drop => {}
                Step::Send => {
                    fill_gap(&rooms, &store, &room, seq - 1, seq + 1).await;
                }
                Step::Fill { from, .. } => {
                    fill_gap(&rooms, &store, &room, from, seq + 1).await;
                }
            },
            Command::Resync(reply) => {
                let active: Vec<(RoomId, i64)> = {
                    let map = crate::sync::lock(&rooms);
                    map.iter()
                        .filter(|(_, r)| r.tx.receiver_count() > 0)
                        .filter_map(|(id, r)| r.last_seq.map(|last| (id.clone(), last)))
                        .collect()
                };
                let mut recovered = 0;
                for (room, last) in active {
                    recovered += fill_gap(&rooms, &store, &room, last, i64::MAX).await;
                }
                let _ = reply.send(recovered);
            }
            Command::Reset => {
                // The next message or subscriber says where each room is.
                for room in crate::sync::lock(&rooms).values_mut() {
                    room.last_seq = None;
                }
            }
        }
    }
}

fn next_step(rooms: &Mutex<HashMap<RoomId, Room>>, room: &RoomId, seq: i64) -> Step {
    let mut map = crate::sync::lock(rooms);
    match map.get(room) {
        Some(r) if r.tx.receiver_count() == 0 => {
            map.remove(room);
            Step::Skip
        }
        Some(r) => step(r.last_seq, seq),
        None => Step::Skip,
    }
}

/// Reads the messages between `from` and `to` (exclusive), sends them, and
/// returns how many there were.
async fn fill_gap(
    rooms: &Mutex<HashMap<RoomId, Room>>,
    store: &Arc<dyn Store>,
    room: &RoomId,
    from: i64,
    to: i64,
) -> usize {
    let mut sent = 0;
    let mut pages = Pages::new(&**store, room.clone(), from, to);
    loop {
        match pages.next().await {
            Ok(Some(page)) => {
                sent += page.iter().filter(|m| send(rooms, room, m)).count();
            }
            Ok(None) => return sent,
            Err(e) => {
                // Sockets detect the gap themselves and read it from the store.
                tracing::warn!(error = ?e, room_id = %room, "hub could not fill a gap");
                return sent;
            }
        }
    }
}

/// Sends `message` to the room's sockets unless it was sent already.
fn send(rooms: &Mutex<HashMap<RoomId, Room>>, room: &RoomId, message: &Message) -> bool {
    // Serialise outside the lock: once per message, whatever the audience.
    let frame = Frame::new(message);
    let mut map = crate::sync::lock(rooms);
    if let Some(r) = map.get_mut(room) {
        if r.last_seq.is_some_and(|last| message.seq <= last) {
            return false;
        }
        r.last_seq = Some(message.seq);
        // An error only means every receiver has gone.
        let _ = r.tx.send(frame);
        drop(map);
        let latency = chrono::Utc::now() - message.created_at;
        metrics::histogram!("fanout_latency_seconds")
            .record(latency.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hub(max_rooms: usize) -> (Hub, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let store = crate::store::open(&dir.url(), &Default::default())
            .await
            .unwrap()
            .store;
        (Hub::new(store, 8, max_rooms), dir)
    }

    /// A scratch SQLite database, removed afterwards.
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                Self(std::env::temp_dir().join(format!("hub-test-{}", uuid::Uuid::new_v4())))
            }
            pub fn url(&self) -> String {
                format!("sqlite://{}/chat.db", self.0.display())
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn a_room_is_forgotten_when_its_last_subscriber_leaves() {
        let (hub, _dir) = hub(100).await;
        let lobby = RoomId::lobby();
        let a = hub.subscribe(&lobby).unwrap();
        let b = hub.subscribe(&lobby).unwrap();
        assert_eq!(hub.rooms(), 1);
        drop(a);
        assert_eq!(hub.rooms(), 1, "b still follows it");
        drop(b);
        assert_eq!(hub.rooms(), 0);
        // Churn over fresh names leaves nothing behind.
        for i in 0..10_000 {
            let room = RoomId::parse(&format!("r{i}")).unwrap();
            drop(hub.subscribe(&room).unwrap());
        }
        assert_eq!(hub.rooms(), 0);
    }

    #[tokio::test]
    async fn every_commit_and_restore_moves_the_change_count() {
        let (hub, _dir) = hub(100).await;
        hub.set_epoch("one");
        let mut last = hub.changes();
        let mut moved = |hub: &Hub, what: &str| {
            let now = hub.changes();
            assert!(now > last, "{what} did not move the count");
            last = now;
        };
        // Messages of rooms nobody follows here count too: the room list
        // and the announcements on a page do not depend on a socket.
        hub.publish(Message {
            room: "nobody-here".into(),
            seq: 1,
            ..Default::default()
        });
        moved(&hub, "a published message");
        hub.publish_ref(RoomId::lobby(), 1);
        moved(&hub, "a published reference");
        hub.note_commit();
        moved(&hub, "an own commit");
        hub.resync().await;
        moved(&hub, "a resync");
        assert!(hub.set_epoch("two"));
        moved(&hub, "a restore");
        assert!(!hub.set_epoch("two"));
        assert_eq!(hub.changes(), last, "no change, no move");
    }

    #[tokio::test]
    async fn rooms_followed_at_once_are_capped() {
        let (hub, _dir) = hub(2).await;
        let room = |s: &str| RoomId::parse(s).unwrap();
        let a = hub.subscribe(&room("a")).unwrap();
        let _b = hub.subscribe(&room("b")).unwrap();
        assert_eq!(hub.subscribe(&room("c")).err(), Some(TooManyRooms));
        assert!(
            hub.subscribe(&room("a")).is_ok(),
            "a followed room can take more sockets"
        );
        drop(a);
        assert!(hub.subscribe(&room("c")).is_ok());
    }

    #[tokio::test]
    async fn a_new_epoch_reaches_every_socket_and_resets_the_rooms() {
        let (hub, _dir) = hub(100).await;
        assert!(!hub.set_epoch("one"), "the first epoch is not a change");
        assert_eq!(&*hub.epoch(), "one");
        let lobby = RoomId::lobby();
        let mut sub = hub.subscribe(&lobby).unwrap();
        let mut changes = hub.epoch_changes();
        hub.seen(&lobby, 10);
        assert!(!hub.set_epoch("one"));
        assert!(hub.set_epoch("two"));
        tokio::time::timeout(std::time::Duration::from_secs(1), changes.changed())
            .await
            .expect("sockets hear of it")
            .unwrap();
        // Seq 3 of the restored database is not dropped as old.
        let mut m = Message {
            room: "lobby".into(),
            seq: 3,
            ..Default::default()
        };
        m.id = uuid::Uuid::new_v4();
        hub.publish(m);
        let frame = tokio::time::timeout(std::time::Duration::from_secs(1), {
            use futures::StreamExt;
            sub.next()
        })
        .await
        .expect("delivered")
        .unwrap()
        .unwrap();
        assert_eq!(frame.seq, Some(3));
    }

    #[test]
    fn steps() {
        assert_eq!(step(None, 5), Step::Send);
        assert_eq!(step(Some(4), 5), Step::Send);
        assert_eq!(step(Some(5), 5), Step::Drop);
        assert_eq!(step(Some(6), 5), Step::Drop);
        assert_eq!(step(Some(2), 5), Step::Fill { from: 2, to: 5 });
    }
}
