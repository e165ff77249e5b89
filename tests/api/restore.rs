//! Restores that open pages survive. A page follows a room over a real
//! WebSocket with the real client state (`app::state`: the test plays only
//! the browser glue, reconnecting after a close, and the page's reload,
//! through the JSON history instead of the server function). The database
//! is restored underneath to a backup older than what the page has seen:
//! the server notices the new epoch, closes the socket with 1012, the page
//! reconnects, sees the new epoch in `ready`, drops what it held and loads
//! the room afresh, ending with exactly the restored history and what was
//! posted after the restore. On SQLite through `chat restore`'s code; on
//! PostgreSQL with `pg_dump` / `pg_restore` and the documented epoch step.

use std::{path::Path, time::Duration};

use app::{
    browser::Handler,
    domain::{ClientFrame, Message, ServerFrame},
    state::{Live, RoomFeed},
};
use futures::{channel::mpsc, SinkExt, StreamExt};
use leptos::prelude::*;
use serde_json::Value;
use server::store::backup;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{connect, spawn_app, TestApp, TestDb};

/// The newest page of a room and its epoch, as the JSON API gives them.
async fn history(app: &TestApp, room: &str) -> (Vec<Message>, String) {
    let body: Value = app
        .http
        .get(app.url(&format!("/api/messages?room={room}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = serde_json::from_value(body["messages"].clone()).unwrap();
    (messages, body["epoch"].as_str().unwrap().to_owned())
}

/// One open page on `room`.
struct Page {
    live: Live,
    feed: RoomFeed,
}

/// How a stretch of the page's life ended.
#[derive(Debug, PartialEq)]
enum Stop {
    Done,
    Closed(u16),
}

impl Page {
    /// Rendered with the room's newest page, as the server renders it.
    async fn open(app: &TestApp, room: &str) -> Self {
        let owner = Owner::new();
        owner.set();
        // Lives as long as the test's thread.
        std::mem::forget(owner);
        let (messages, epoch) = history(app, room).await;
        let live = Live::new("reader".into());
        let feed = RoomFeed::new(room.into(), messages, vec![], false, epoch);
        live.current.set_value(Some(feed));
        Self { live, feed }
    }

    fn contents(&self) -> Vec<String> {
        self.feed
            .messages
            .with_untracked(|m| m.iter().map(|m| m.content.clone()).collect())
    }

    /// Connects as the browser glue does and runs the socket until `done`
    /// holds or the server closes it.
    async fn run(&self, app: &TestApp, done: impl Fn(&Page) -> bool) -> Stop {
        let query = self.live.query().to_query_string();
        let mut ws = connect(&app.ws_url(&format!("?{query}"))).await;
        let (tx, mut outbox) = mpsc::unbounded::<ClientFrame>();
        self.live.opened(tx);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if done(self) {
                return Stop::Done;
            }
            tokio::select! {
                frame = ws.next() => match frame.expect("socket open").expect("valid frame") {
                    WsMessage::Text(text) => {
                        let frame: ServerFrame = serde_json::from_str(&text).unwrap();
                        self.live.apply(frame, None);
                        if self.feed.is_stale() {
                            // The page's reload (room.rs), over the JSON API.
                            let room = self.feed.room.get_value();
                            let (messages, epoch) = history(app, &room).await;
                            self.live.reloaded(self.feed, messages, epoch, 50);
                        }
                    }
                    WsMessage::Close(close) => {
                        self.live.disconnected();
                        return Stop::Closed(close.map_or(1005, |c| u16::from(c.code)));
                    }
                    WsMessage::Ping(p) => ws.send(WsMessage::Pong(p)).await.unwrap(),
                    _ => {}
                },
                Some(frame) = outbox.next() => {
                    let text = serde_json::to_string(&frame).unwrap();
                    ws.send(WsMessage::Text(text.into())).await.unwrap();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("the page did not get there in time; it shows {:?}", self.contents());
                }
            }
        }
    }
}

/// Posts `contents` to the lobby, in order.
async fn post_all(app: &TestApp, contents: impl IntoIterator<Item = String>) {
    for content in contents {
        app.post("writer", &content).await;
    }
}

fn numbered(label: &str, range: std::ops::RangeInclusive<i32>) -> Vec<String> {
    range.map(|i| format!("{label} {i}")).collect()
}

/// How a backend takes a backup and restores it.
enum Backend<'a> {
    Sqlite { file: &'a Path },
    Postgres { dump: &'a Path },
}

impl Backend<'_> {
    async fn backup(&self, url: &str) {
        match self {
            Backend::Sqlite { file } => {
                backup::backup(url, file).await.expect("backup");
            }
            Backend::Postgres { dump } => run(
                "pg_dump",
                &[
                    "--format=custom",
                    &format!("--file={}", dump.display()),
                    &format!("--dbname={url}"),
                ],
            ),
        }
    }

    /// The documented procedure, with the instance still running.
    async fn restore(&self, url: &str) {
        match self {
            Backend::Sqlite { file } => {
                backup::restore(url, file).await.expect("restore");
            }
            Backend::Postgres { dump } => {
                run(
                    "pg_restore",
                    &[
                        "--clean",
                        "--if-exists",
                        "--single-transaction",
                        "--no-owner",
                        &format!("--dbname={url}"),
                        &dump.display().to_string(),
                    ],
                );
                backup::new_epoch(url).await.expect("new epoch");
            }
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (postgresql-client installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn a_page_open_across_a_restore_ends_up_with_exactly_the_restored_history(
    app: TestApp,
    backend: Backend<'_>,
) {
    let url = app._db.url().to_owned();
    post_all(&app, numbered("kept", 1..=5)).await;
    backend.backup(&url).await;
    post_all(&app, numbered("lost", 6..=10)).await;

    let page = Page::open(&app, "lobby").await;
    let before = page.feed.epoch.get_untracked();
    let all_ten = |p: &Page| p.feed.ready.get_untracked() && p.feed.last_seq() == 10;
    assert_eq!(page.run(&app, all_ten).await, Stop::Done);

    // The restore, and a post right after it, while the page's socket is
    // still open (the instance has not noticed yet).
    backend.restore(&url).await;
    post_all(&app, numbered("after", 1..=1)).await;
    // Within a second the instance notices and tells the page to reconnect.
    let never = |_: &Page| false;
    assert_eq!(page.run(&app, never).await, Stop::Closed(1012));

    // Reconnecting with `after=10`: the page sees the new epoch and reloads.
    let reloaded = |p: &Page| p.feed.ready.get_untracked() && !p.feed.is_stale();
    assert_eq!(page.run(&app, reloaded).await, Stop::Done);
    let (_, now) = history(&app, "lobby").await;
    assert_ne!(now, before, "a restore is a new epoch");
    assert_eq!(page.feed.epoch.get_untracked(), now);
    let mut expected = numbered("kept", 1..=5);
    expected.extend(numbered("after", 1..=1));
    assert_eq!(
        page.contents(),
        expected,
        "restored history, then the new post"
    );

    // And it is live again: later posts arrive once, in order.
    post_all(&app, numbered("after", 2..=3)).await;
    let eight = |p: &Page| p.contents().len() >= 8;
    assert_eq!(page.run(&app, eight).await, Stop::Done);
    expected.extend(numbered("after", 2..=3));
    assert_eq!(page.contents(), expected);
    let seqs: Vec<i64> = page
        .feed
        .messages
        .with_untracked(|m| m.iter().map(|m| m.seq).collect());
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn sqlite_restore_under_an_open_page() {
    let app = spawn_app(TestDb::sqlite().await, &[]).await;
    let TestDb::Sqlite { _dir, .. } = &app._db else {
        unreachable!()
    };
    let file = _dir.0.join("backup.db");
    a_page_open_across_a_restore_ends_up_with_exactly_the_restored_history(
        app,
        Backend::Sqlite { file: &file },
    )
    .await;
}

#[tokio::test]
async fn postgres_restore_under_an_open_page() {
    let app = spawn_app(TestDb::postgres().await, &[]).await;
    let dump = std::env::temp_dir().join(format!("chat-{}.dump", uuid::Uuid::new_v4()));
    a_page_open_across_a_restore_ends_up_with_exactly_the_restored_history(
        app,
        Backend::Postgres { dump: &dump },
    )
    .await;
    let _ = std::fs::remove_file(&dump);
}

/// The epoch travels with `ready` and the JSON history alike.
#[tokio::test]
async fn ready_and_history_carry_the_same_epoch() {
    let app = spawn_app(TestDb::sqlite().await, &[]).await;
    app.post("a", "hello").await;
    let (_, epoch) = history(&app, "lobby").await;
    let mut ws = connect(&app.ws_url("?room=lobby")).await;
    let ready = crate::helpers::next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["epoch"], epoch.as_str());
}
