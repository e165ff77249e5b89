//! Presence and typing: who is in each room now, and who is typing, across
//! all instances, without writing to the database.
//!
//! Each instance knows its own sockets. It announces a room's local
//! snapshot (names and anonymous count) whenever it changes and again every
//! third of the time-to-live; other instances keep a remote snapshot until
//! the TTL (default [`DEFAULT_TTL`]) passes without a refresh, so a crashed
//! instance's users disappear within 30 s. On PostgreSQL the announcements
//! travel as NOTIFYs on the ephemeral channel (`cluster::wire`; no table,
//! nothing stored); on SQLite there is one instance and nothing travels. Views are pushed to the room's sockets
//! through the hub, only when they change.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::domain::{RoomId, ServerFrame};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::hub::Hub;
use crate::wire::{Ephemeral, EPHEMERAL_CHANNEL};

pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Presence views are pushed to sockets at most this often per room, so a
/// crowd joining costs O(crowd) frames, not O(crowd²).
const FLUSH: Duration = Duration::from_millis(300);
/// Names listed in a presence frame (the count covers everyone).
pub const MAX_NAMES: usize = 50;

#[derive(Default)]
struct Local {
    /// Name -> sockets with that name in the room (tabs of one person count once).
    names: HashMap<String, u32>,
    anon: u32,
}

impl Local {
    /// A socket with `name` (None: no name) is here.
    fn add(&mut self, name: Option<&str>) {
        match name {
            Some(n) => *self.names.entry(n.to_owned()).or_default() += 1,
            None => self.anon += 1,
        }
    }

    /// A socket with `name` left. Leaving more often than joining (a bug
    /// elsewhere) never underflows.
    fn remove(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                if let Some(c) = self.names.get_mut(n) {
                    *c -= 1;
                    if *c == 0 {
                        self.names.remove(n);
                    }
                }
            }
            None => self.anon = self.anon.saturating_sub(1),
        }
    }
}

struct Remote {
    names: Vec<String>,
    anon: u32,
    expires: Instant,
}

#[derive(Default)]
struct State {
    local: HashMap<RoomId, Local>,
    remote: HashMap<Uuid, HashMap<RoomId, Remote>>,
    /// The view last pushed per room, to push only changes.
    pushed: HashMap<RoomId, (Vec<String>, u32)>,
    /// Rooms whose view may have changed since the last flush.
    dirty: std::collections::HashSet<RoomId>,
    /// Rooms whose local snapshot changed since the last flush (to announce
    /// to the other instances: once per flush, however many joins).
    announce: std::collections::HashSet<RoomId>,
}

/// Announcements queued for the other instances at most (beyond it they are
/// dropped: the next heartbeat repeats every snapshot anyway).
const MAX_QUEUED_ANNOUNCEMENTS: usize = 1024;

/// This instance's presence. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Presence(Arc<Inner>);

pub struct Inner {
    instance: Uuid,
    ttl: Duration,
    hub: Hub,
    state: Mutex<State>,
    /// Announcements to other instances, sent in order by one task.
    out: Option<mpsc::Sender<Ephemeral>>,
}

impl std::ops::Deref for Presence {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A socket's presence in a room: counted while this lives, gone when it is
/// dropped, whatever way the socket ends (even mid-join).
pub struct Here {
    presence: Presence,
    room: RoomId,
    name: Option<Arc<str>>,
}

impl Drop for Here {
    fn drop(&mut self) {
        self.presence.leave(&self.room, self.name.as_deref());
    }
}

impl Presence {
    /// Presence for this instance. With `bus`, announcements go to the other
    /// instances over PostgreSQL NOTIFY.
    pub fn new(hub: Hub, bus: Option<PgPool>, ttl: Duration) -> Self {
        let instance = Uuid::new_v4();
        let out = bus.map(|pool| {
            let (tx, rx) = mpsc::channel(MAX_QUEUED_ANNOUNCEMENTS);
            tokio::spawn(announce(pool, rx));
            tx
        });
        let presence = Self(Arc::new(Inner {
            instance,
            ttl,
            hub,
            state: Mutex::default(),
            out,
        }));
        let p = presence.clone();
        tokio::spawn(async move { p.maintain().await });
        presence
    }

    /// Counts a socket with `name` (None: anonymous) in `room` until the
    /// returned guard is dropped.
    pub fn here(&self, room: &RoomId, name: Option<Arc<str>>) -> Here {
        self.join(room, name.as_deref());
        Here {
            presence: self.clone(),
            room: room.clone(),
            name,
        }
    }

    /// A socket with `name` (None: anonymous) joined `room`.
    fn join(&self, room: &RoomId, name: Option<&str>) {
        {
            let mut s = crate::sync::lock(&self.state);
            s.local.entry(room.clone()).or_default().add(name);
        }
        self.changed(room);
    }

    /// A socket with `name` left `room`.
    fn leave(&self, room: &RoomId, name: Option<&str>) {
        {
            let mut s = crate::sync::lock(&self.state);
            if let Some(local) = s.local.get_mut(room) {
                local.remove(name);
            }
        }
        self.changed(room);
    }

    /// The current view of `room`: sorted distinct names, and the count of
    /// people (names plus anonymous visitors).
    pub fn view(&self, room: &RoomId) -> (Vec<String>, u32) {
        let s = crate::sync::lock(&self.state);
        view_of(&s, room, Instant::now())
    }

    /// The view as a frame, for a socket that just subscribed.
    pub fn frame(&self, room: &RoomId) -> String {
        let (names, count) = self.view(room);
        serde_json::to_string(&ServerFrame::Presence {
            room: room.to_string(),
            names,
            count,
        })
        .expect("serialises")
    }

    /// `name` is typing in `room`: tell this instance's sockets and the others.
    pub fn typing(&self, room: &RoomId, name: &str) {
        self.push_typing(room, name);
        self.send(Ephemeral::Typing {
            instance: self.instance,
            room: room.to_string(),
            name: name.to_owned(),
        });
    }

    /// An announcement from the commit feed (ours included: ignored).
    pub fn receive(&self, announcement: Ephemeral) {
        match announcement {
            Ephemeral::Presence {
                instance,
                room,
                names,
                anon,
            } if instance != self.instance => {
                let Ok(room) = RoomId::parse(&room) else {
                    return;
                };
                {
                    let mut s = crate::sync::lock(&self.state);
                    let rooms = s.remote.entry(instance).or_default();
                    if names.is_empty() && anon == 0 {
                        rooms.remove(&room);
                    } else {
                        rooms.insert(
                            room.clone(),
                            Remote {
                                names,
                                anon,
                                expires: Instant::now() + self.ttl,
                            },
                        );
                    }
                }
                self.push_if_changed(&room);
            }
            Ephemeral::Typing {
                instance,
                room,
                name,
            } if instance != self.instance => {
                if let Ok(room) = RoomId::parse(&room) {
                    self.push_typing(&room, &name);
                }
            }
            _ => {}
        }
    }

    /// This instance's snapshot of `room` changed: push the view at the
    /// next flush and announce the snapshot to the other instances.
    fn changed(&self, room: &RoomId) {
        let mut s = crate::sync::lock(&self.state);
        if s.local
            .get(room)
            .is_some_and(|l| l.names.is_empty() && l.anon == 0)
        {
            s.local.remove(room);
        }
        s.dirty.insert(room.clone());
        if self.out.is_some() {
            s.announce.insert(room.clone());
        }
    }

    fn send(&self, e: Ephemeral) {
        if let Some(out) = &self.out {
            // Full: drop it; the heartbeat repeats every snapshot.
            let _ = out.try_send(e);
        }
    }

    /// Marks the room's view for the next flush.
    fn push_if_changed(&self, room: &RoomId) {
        crate::sync::lock(&self.state).dirty.insert(room.clone());
    }

    /// Announces every changed local snapshot and pushes every changed
    /// view to its room's sockets.
    fn flush(&self) {
        let (frames, announcements) = {
            let mut guard = crate::sync::lock(&self.state);
            let s = &mut *guard;
            let now = Instant::now();
            let announcements: Vec<Ephemeral> = std::mem::take(&mut s.announce)
                .into_iter()
                .map(|room| {
                    let (names, anon) = s.local.get(&room).map(snapshot).unwrap_or_default();
                    Ephemeral::Presence {
                        instance: self.instance,
                        room: room.to_string(),
                        names,
                        anon,
                    }
                })
                .collect();
            let mut frames = Vec::new();
            for room in std::mem::take(&mut s.dirty) {
                let view = view_of(s, &room, now);
                if s.pushed.get(&room) == Some(&view) {
                    continue;
                }
                if view.0.is_empty() && view.1 == 0 {
                    s.pushed.remove(&room);
                } else {
                    s.pushed.insert(room.clone(), view.clone());
                }
                let frame = ServerFrame::Presence {
                    room: room.to_string(),
                    names: view.0,
                    count: view.1,
                };
                frames.push((room, serde_json::to_string(&frame).expect("serialises")));
            }
            (frames, announcements)
        };
        for e in announcements {
            self.send(e);
        }
        for (room, frame) in frames {
            self.hub.send_ephemeral(&room, frame);
        }
    }

    fn push_typing(&self, room: &RoomId, name: &str) {
        let frame = ServerFrame::Typing {
            room: room.to_string(),
            name: name.to_owned(),
        };
        self.hub
            .send_ephemeral(room, serde_json::to_string(&frame).expect("serialises"));
    }

    /// Heartbeats our snapshots and expires other instances' stale ones.
    async fn maintain(&self) {
        let mut heartbeat = tokio::time::interval(self.ttl / 3);
        let mut sweep = tokio::time::interval((self.ttl / 15).max(Duration::from_millis(100)));
        let mut flush = tokio::time::interval(FLUSH);
        loop {
            tokio::select! {
                _ = flush.tick() => self.flush(),
                _ = heartbeat.tick() => {
                    let snapshots: Vec<(RoomId, (Vec<String>, u32))> = {
                        let s = crate::sync::lock(&self.state);
                        s.local.iter().map(|(r, l)| (r.clone(), snapshot(l))).collect()
                    };
                    for (room, (names, anon)) in snapshots {
                        self.send(Ephemeral::Presence { instance: self.instance, room: room.to_string(), names, anon });
                    }
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let expired: Vec<RoomId> = {
                        let mut s = crate::sync::lock(&self.state);
                        let mut expired = Vec::new();
                        for rooms in s.remote.values_mut() {
                            rooms.retain(|room, r| {
                                let keep = r.expires > now;
                                if !keep {
                                    expired.push(room.clone());
                                }
                                keep
                            });
                        }
                        s.remote.retain(|_, rooms| !rooms.is_empty());
                        expired
                    };
                    for room in expired {
                        self.push_if_changed(&room);
                    }
                }
            }
        }
    }
}

fn snapshot(local: &Local) -> (Vec<String>, u32) {
    let mut names: Vec<String> = local.names.keys().cloned().collect();
    names.sort();
    (names, local.anon)
}

fn view_of(s: &State, room: &RoomId, now: Instant) -> (Vec<String>, u32) {
    let mut names = BTreeSet::new();
    let mut anon = 0;
    if let Some(l) = s.local.get(room) {
        names.extend(l.names.keys().cloned());
        anon += l.anon;
    }
    for rooms in s.remote.values() {
        if let Some(r) = rooms.get(room).filter(|r| r.expires > now) {
            names.extend(r.names.iter().cloned());
            anon += r.anon;
        }
    }
    let count = names.len() as u32 + anon;
    (names.into_iter().take(MAX_NAMES).collect(), count)
}

/// Sends announcements as NOTIFYs, one at a time, in order.
async fn announce(pool: PgPool, mut rx: mpsc::Receiver<Ephemeral>) {
    while let Some(e) = rx.recv().await {
        let payload = e.encode();
        if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EPHEMERAL_CHANNEL)
            .bind(payload)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %err, "presence announcement not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomId {
        RoomId::parse(s).unwrap()
    }

    #[test]
    fn tabs_of_one_person_count_once_and_leave_one_by_one() {
        let mut local = Local::default();
        local.add(Some("alice"));
        local.add(Some("alice"));
        local.add(None);
        local.add(None);
        local.add(Some("bob"));
        assert_eq!(snapshot(&local), (vec!["alice".into(), "bob".into()], 2));
        local.remove(Some("alice"));
        assert_eq!(
            snapshot(&local),
            (vec!["alice".into(), "bob".into()], 2),
            "alice still has a tab open"
        );
        local.remove(Some("alice"));
        local.remove(None);
        assert_eq!(snapshot(&local), (vec!["bob".into()], 1));
        // Stray leaves change nothing and never underflow.
        local.remove(Some("carol"));
        local.remove(None);
        local.remove(None);
        assert_eq!(snapshot(&local), (vec!["bob".into()], 0));
    }

    #[test]
    fn views_list_at_most_max_names_but_count_everyone() {
        let mut s = State::default();
        let mut local = Local::default();
        for i in 0..MAX_NAMES + 10 {
            local.add(Some(&format!("p{i:03}")));
        }
        local.add(None);
        s.local.insert(room("lobby"), local);
        let (names, count) = view_of(&s, &room("lobby"), Instant::now());
        assert_eq!(names.len(), MAX_NAMES);
        assert_eq!(count as usize, MAX_NAMES + 11);
    }

    #[test]
    fn views_merge_local_and_live_remote_snapshots() {
        let mut s = State::default();
        let now = Instant::now();
        let mut local = Local::default();
        local.names.insert("alice".into(), 2);
        local.anon = 1;
        s.local.insert(room("lobby"), local);
        let mut remote = HashMap::new();
        remote.insert(
            room("lobby"),
            Remote {
                names: vec!["alice".into(), "bob".into()],
                anon: 0,
                expires: now + DEFAULT_TTL,
            },
        );
        s.remote.insert(Uuid::new_v4(), remote);
        let mut stale = HashMap::new();
        stale.insert(
            room("lobby"),
            Remote {
                names: vec!["ghost".into()],
                anon: 3,
                expires: now,
            },
        );
        s.remote.insert(Uuid::new_v4(), stale);
        // alice once (two tabs and two instances), bob, one anonymous; the
        // expired instance's users are gone.
        assert_eq!(
            view_of(&s, &room("lobby"), now),
            (vec!["alice".into(), "bob".into()], 3)
        );
        assert_eq!(view_of(&s, &room("other"), now), (vec![], 0));
    }
}
