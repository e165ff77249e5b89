//! Backups, restores and the epoch (`store::backup`): a backup taken while
//! posts are written is complete up to some seq and opens cleanly; a
//! restore brings back exactly the backup's contents under a new epoch,
//! with the server's own pools still open; the epoch is per database.

use std::{path::Path, sync::Arc, time::Duration};

use app::domain::RoomId;
use server::store::{backup, ListQuery, NewMessage, Store};
use sqlx::{Connection, SqliteConnection};

use server::{
    both_backends,
    testing::{new_message, TestDb},
};

async fn open(db: &TestDb) -> Arc<dyn Store> {
    db.store().await
}

fn new(room: &str, content: &str) -> NewMessage {
    new_message(room, content)
}

/// The directory of a SQLite test database (removed with it).
fn dir_of(db: &TestDb) -> std::path::PathBuf {
    Path::new(db.url().trim_start_matches("sqlite://"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Per room: the seqs stored and the room's counter, read from a backup
/// file opened read-only.
async fn rooms_in(path: &Path) -> Vec<(String, Vec<i64>, i64)> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok", "{} opens cleanly", path.display());
    let rooms: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, last_seq FROM rooms ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut out = Vec::new();
    for (room, last_seq) in rooms {
        let seqs: Vec<i64> =
            sqlx::query_scalar("SELECT seq FROM messages WHERE room = ?1 ORDER BY seq")
                .bind(&room)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        out.push((room, seqs, last_seq));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_posts_are_written_is_complete_up_to_some_seq() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    store.insert(new("lobby", "first")).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..1500 {
                let room = if i % 3 == 0 { "general" } else { "lobby" };
                store.insert(new(room, &format!("m{i}"))).await.unwrap();
            }
        })
    };
    let dir = dir_of(&db);
    let mut taken = Vec::new();
    for n in 0..4 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let path = dir.join(format!("backup-{n}.db"));
        let report = backup::backup(db.url(), &path).await.expect("backup");
        assert!(report.bytes > 0);
        assert_eq!(report.epoch, store.epoch().await.unwrap());
        taken.push((path, report.messages));
    }
    writer.await.unwrap();
    let mut sizes = Vec::new();
    for (path, messages) in &taken {
        let rooms = rooms_in(path).await;
        let mut total = 0;
        for (room, seqs, last_seq) in &rooms {
            let n = seqs.len() as i64;
            assert_eq!(
                seqs,
                &(1..=n).collect::<Vec<_>>(),
                "{room} in {} is gapless from 1",
                path.display()
            );
            assert_eq!(*last_seq, n, "{room}'s counter matches its messages");
            total += n;
        }
        assert_eq!(total, *messages);
        sizes.push(total);
    }
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "later backups hold more: {sizes:?}"
    );
    assert!(
        sizes[0] < 1501,
        "the first backup was taken while posting ({sizes:?})"
    );
}

#[tokio::test]
async fn a_backup_never_overwrites_and_is_refused_for_postgres() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    store.insert(new("lobby", "hello")).await.unwrap();
    let path = dir_of(&db).join("b.db");
    backup::backup(db.url(), &path).await.unwrap();
    let again = backup::backup(db.url(), &path).await.unwrap_err();
    assert!(matches!(again, backup::BackupError::Exists(_)), "{again}");
    let pg = backup::backup("postgres://u:pw@db/chat", &path)
        .await
        .unwrap_err();
    assert!(pg.to_string().contains("pg_dump"), "{pg}");
    assert!(!pg.to_string().contains("pw"));
    let pg = backup::restore("postgresql://db/chat", &path)
        .await
        .unwrap_err();
    assert!(pg.to_string().contains("pg_restore"), "{pg}");
    // Nothing half-written is left behind.
    let names: Vec<String> = std::fs::read_dir(dir_of(&db))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
}

#[tokio::test]
async fn a_restore_brings_back_the_backup_under_a_new_epoch_beside_open_pools() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    for i in 1..=5 {
        store
            .insert(new("lobby", &format!("kept {i}")))
            .await
            .unwrap();
    }
    let epoch = store.epoch().await.unwrap();
    let path = dir_of(&db).join("five.db");
    backup::backup(db.url(), &path).await.unwrap();
    for i in 6..=10 {
        store
            .insert(new("lobby", &format!("lost {i}")))
            .await
            .unwrap();
    }
    store.insert(new("later", "lost too")).await.unwrap();

    let report = backup::restore(db.url(), &path).await.expect("restore");
    assert_eq!((report.rooms, report.messages), (1, 5));
    assert_ne!(report.epoch, epoch);
    // The store's open pools see the restored database at once.
    assert_eq!(store.epoch().await.unwrap(), report.epoch);
    let lobby = RoomId::lobby();
    assert_eq!(store.head(&lobby).await.unwrap(), 5);
    assert_eq!(
        store.head(&RoomId::parse("later").unwrap()).await.unwrap(),
        0
    );
    let all = store
        .list(&ListQuery::after(lobby.clone(), 0, 100))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        (1..=5).map(|i| format!("kept {i}")).collect::<Vec<_>>()
    );
    // And writing goes on after the restored head.
    let next = store.insert(new("lobby", "after")).await.unwrap();
    assert_eq!(next.message.seq, 6);
    // The backup itself is untouched: restoring it again gives the same rows.
    let again = backup::restore(db.url(), &path).await.unwrap();
    assert_eq!(again.messages, 5);
    assert_ne!(again.epoch, report.epoch, "every restore is a new epoch");
}

#[tokio::test]
async fn a_restore_refuses_what_is_not_a_backup_and_leaves_the_database_alone() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    store.insert(new("lobby", "precious")).await.unwrap();
    let dir = dir_of(&db);
    let missing = backup::restore(db.url(), &dir.join("nope.db"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, backup::BackupError::Missing(_)),
        "{missing}"
    );
    // Another SQLite database.
    let other = dir.join("other.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let foreign = backup::restore(db.url(), &other).await.unwrap_err();
    assert!(
        matches!(foreign, backup::BackupError::NotABackup(_)),
        "{foreign}"
    );
    // Not a database at all.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    assert!(backup::restore(db.url(), &junk).await.is_err());
    assert_eq!(store.head(&RoomId::lobby()).await.unwrap(), 1);
}

#[tokio::test]
async fn a_restore_into_a_missing_database_creates_it() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    store.insert(new("lobby", "one")).await.unwrap();
    let path = dir_of(&db).join("one.db");
    backup::backup(db.url(), &path).await.unwrap();
    let fresh = format!("sqlite://{}/fresh/chat.db", dir_of(&db).display());
    let report = backup::restore(&fresh, &path).await.unwrap();
    assert_eq!(report.messages, 1);
}

both_backends!(each_database_has_its_own_epoch, |db: TestDb| async move {
    let store = open(&db).await;
    let epoch = store.epoch().await.unwrap();
    assert_eq!(epoch.len(), 32, "{epoch}");
    assert!(epoch.chars().all(|c| c.is_ascii_hexdigit()));
    let other = match &db {
        TestDb::Sqlite { .. } => TestDb::sqlite().await,
        TestDb::Postgres { .. } => TestDb::postgres().await,
    };
    assert_ne!(open(&other).await.epoch().await.unwrap(), epoch);
    // Reopening keeps it; `new-epoch` changes it.
    assert_eq!(open(&db).await.epoch().await.unwrap(), epoch);
    let renewed = backup::new_epoch(db.url()).await.unwrap();
    assert_ne!(renewed, epoch);
    assert_eq!(store.epoch().await.unwrap(), renewed);
});
