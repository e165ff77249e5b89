use std::{collections::HashMap, net::SocketAddr, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use server::Config;
use sqlx::{Connection, Executor, PgConnection};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The PostgreSQL server tests create their databases on.
pub fn pg_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("database URL has a path");
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

/// A database of its own for one test; removed when dropped.
pub enum TestDb {
    Sqlite { url: String, _dir: TempDir },
    Postgres { url: String, name: String },
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("chat-test-{}", uuid::Uuid::new_v4()));
        // The store creates the directory itself, as it does for data/chat.db.
        let url = format!("sqlite://{}/chat.db", dir.display());
        TestDb::Sqlite {
            url,
            _dir: TempDir(dir),
        }
    }

    pub async fn postgres() -> Self {
        let base = pg_base_url();
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {base} ({e}); start it or set TEST_DATABASE_URL \
                 (scripts/test does this for you)"
            )
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        TestDb::Postgres {
            url: with_database(&base, &name),
            name,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name, .. } = self {
            let name = name.clone();
            // Drop runs outside any runtime guarantees: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&pg_base_url()).await {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::helpers::TestDb::sqlite().await;
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::helpers::TestDb::postgres().await;
                ($body)(db).await;
            }
        }
    };
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub _db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    pub async fn post(&self, sender: &str, content: &str) -> Value {
        let res = self
            .http
            .post(self.url("/api/messages"))
            .json(&serde_json::json!({"sender": sender, "content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "post failed");
        res.json().await.unwrap()
    }

    pub async fn messages(&self, query: &str) -> Vec<Value> {
        let res = self
            .http
            .get(self.url(&format!("/api/messages{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["messages"].as_array().unwrap().clone()
    }
}

/// Starts the real server (router, hub, store, migrations) on port 0.
pub async fn spawn_app(db: TestDb, env: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url().to_owned()),
        ("BROADCAST_MIN_SECS".into(), "0".into()),
        ("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into()),
    ]);
    for (k, v) in env {
        vars.insert((*k).into(), (*v).into());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
    let (router, _state) = server::build(&config).await.expect("server builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, router, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    TestApp {
        addr,
        http,
        _db: db,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// The next JSON frame, skipping pings and ephemeral (presence, typing)
/// frames; fails the test after 5 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let v = next_frame(ws).await;
        if v["type"] != "presence" && v["type"] != "typing" {
            return v;
        }
    }
}

/// The next JSON frame of any type (skipping pings), failing after 5 s.
pub async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("valid frame");
        match msg {
            WsMessage::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
            WsMessage::Ping(p) => ws.send(WsMessage::Pong(p)).await.unwrap(),
            WsMessage::Close(c) => panic!("socket closed: {c:?}"),
            _ => {}
        }
    }
}

/// Asserts nothing but pings arrives for `wait`.
pub async fn assert_silent(ws: &mut Ws, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WsMessage::Ping(_)))) => {}
            Ok(Some(Ok(WsMessage::Text(t)))) if t.contains(r#""type":"presence""#) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}
