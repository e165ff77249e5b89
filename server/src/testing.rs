//! Test support (feature `testing`): a database of its own for each test,
//! on SQLite or on the PostgreSQL server the tests are pointed at, and a
//! macro that runs a test body on both backends.

use sqlx::{Connection, Executor, PgConnection};

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

/// Runs a test body once on SQLite and once on PostgreSQL, each on a fresh
/// database.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::TestDb::sqlite().await;
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testing::TestDb::postgres().await;
                ($body)(db).await;
            }
        }
    };
}

impl TestDb {
    /// The store on this database, migrated, as the server opens it.
    pub async fn store(&self) -> std::sync::Arc<dyn crate::store::Store> {
        crate::store::open(self.url(), &crate::store::PoolOptions::default())
            .await
            .expect("store opens")
            .store
    }
}

/// A user's message for `room` with a fresh id, as a test posts it.
pub fn new_message(room: &str, content: &str) -> crate::store::NewMessage {
    use app::domain::{MessageBody, MessageKind, RoomId, SenderName};
    crate::store::NewMessage {
        room: RoomId::parse(room).expect("a test room name"),
        id: uuid::Uuid::new_v4(),
        kind: MessageKind::User,
        sender: SenderName::parse("tester").expect("a test name"),
        content: MessageBody::parse(content).expect("test content"),
        author: None,
    }
}
