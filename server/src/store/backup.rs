//! Backups, restores and the database's epoch, for the `chat backup`,
//! `chat restore` and `chat new-epoch` commands. Each opens connections of
//! its own (never the server's pools), so it can run beside a serving
//! instance.
//!
//! A SQLite backup is `VACUUM INTO`: a consistent snapshot read in one
//! transaction while the server keeps writing (never a file copy of a live
//! WAL database), written under a temporary name, checked, synced and then
//! renamed, so a backup file is always complete. A restore replaces every
//! table's rows in one write transaction on the live database (readers see
//! the old or the new contents, never a mix) and gives the database a new
//! epoch in the same transaction. PostgreSQL has `pg_dump`, `pg_restore` and
//! its managed backups; only the epoch step is ours there
//! (`docs/operations.md`).
//!
//! The epoch is the database's identity (see the `epoch` migration): seqs
//! are only comparable within one epoch.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
    Connection, Executor, PgConnection, SqliteConnection,
};

/// How long the restore waits for the serving instance's writer.
const LOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `chat backup` and `chat restore` are for SQLite.
    #[error(
        "this command works on SQLite databases only; for PostgreSQL use pg_dump and \
         pg_restore (or RDS automated backups and point-in-time restore), then \
         `chat new-epoch` after a restore: see docs/operations.md"
    )]
    Postgres,
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    Scheme,
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{0} exists already; choose another name or remove it")]
    Exists(PathBuf),
    #[error("{0} is not a backup of this chat (it has no messages table)")]
    NotABackup(PathBuf),
    #[error("{path} is damaged: {problem}")]
    Damaged { path: PathBuf, problem: String },
    #[error("the backup comes from a newer version of chat; restore it with that version")]
    Newer(#[source] sqlx::migrate::MigrateError),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a backup or restore did.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub bytes: u64,
    pub rooms: i64,
    pub messages: i64,
    /// The database's epoch after the operation (for a backup: the one the
    /// backup carries).
    pub epoch: String,
    pub took: Duration,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The SQLite options for `url`, or why this is not a SQLite URL.
fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, BackupError> {
    if is_postgres(url) {
        return Err(BackupError::Postgres);
    }
    if !url.starts_with("sqlite:") {
        return Err(BackupError::Scheme);
    }
    Ok(SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(LOCK_WAIT))
}

/// A new random epoch (32 hex digits, like the migrations make).
pub fn random_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Writes a consistent copy of the SQLite database at `url` to `to` while
/// the server may keep writing. `to` must not exist yet.
pub async fn backup(url: &str, to: &Path) -> Result<Report, BackupError> {
    let started = Instant::now();
    let options = sqlite_options(url)?;
    let live = options.get_filename().to_owned();
    if !live.is_file() {
        return Err(BackupError::Missing(live));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let partial = sibling(to, "partial");
    let result = async {
        let mut conn = SqliteConnection::connect_with(&options).await?;
        // One read transaction: the copy is the database as of one commit.
        sqlx::query("VACUUM INTO ?1")
            .bind(partial.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let (rooms, messages, epoch) = check(&partial).await?;
        sync_file(&partial)?;
        std::fs::rename(&partial, to)?;
        sync_dir(to);
        Ok(Report {
            path: to.to_owned(),
            bytes: std::fs::metadata(to)?.len(),
            rooms,
            messages,
            epoch,
            took: started.elapsed(),
        })
    }
    .await;
    if result.is_err() {
        remove_database(&partial);
    }
    result
}

/// Replaces the contents of the SQLite database at `url` with the backup
/// at `from` (brought up to this version's schema first) and gives it a new
/// epoch, in one transaction. Safe while the server runs: its writes wait
/// for the restore, and it notices the new epoch within a second (see
/// `Chat::start`). Creates the database if it does not exist.
pub async fn restore(url: &str, from: &Path) -> Result<Report, BackupError> {
    let started = Instant::now();
    let options = sqlite_options(url)?;
    if !from.is_file() {
        return Err(BackupError::Missing(from.to_owned()));
    }
    let live = options.get_filename().to_owned();
    if let Some(dir) = live.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Work on a copy next to the database: the backup itself stays as it is.
    let staged = sibling(&live, "restore");
    let result = async {
        let source = SqliteConnectOptions::new()
            .filename(from)
            .read_only(true)
            .busy_timeout(LOCK_WAIT);
        let mut conn = SqliteConnection::connect_with(&source).await?;
        let has_messages: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
        )
        .fetch_one(&mut conn)
        .await?;
        if !has_messages {
            return Err(BackupError::NotABackup(from.to_owned()));
        }
        sqlx::query("VACUUM INTO ?1")
            .bind(staged.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        check(&staged).await.map_err(|e| match e {
            BackupError::Damaged { problem, .. } => BackupError::Damaged {
                path: from.to_owned(),
                problem,
            },
            other => other,
        })?;
        // An older backup gets the migrations it lacks; a newer one is refused.
        let mut staged_conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&staged)
                .journal_mode(SqliteJournalMode::Delete),
        )
        .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut staged_conn)
            .await
            .map_err(|e| match e {
                e @ sqlx::migrate::MigrateError::VersionMissing(_) => BackupError::Newer(e),
                e => BackupError::Migrate(e),
            })?;
        staged_conn.close().await?;

        let mut conn =
            SqliteConnection::connect_with(&options.clone().create_if_missing(true)).await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        let epoch = random_epoch();
        replace_contents(&mut conn, &staged, &epoch).await?;
        let (rooms, messages) = counts(&mut conn).await?;
        // Best effort: fold the restore into the main file now.
        let _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
        conn.close().await?;
        Ok(Report {
            path: live.clone(),
            bytes: std::fs::metadata(&live)?.len(),
            rooms,
            messages,
            epoch,
            took: started.elapsed(),
        })
    }
    .await;
    remove_database(&staged);
    result
}

/// Copies every table of `staged` over the live database's, and sets the
/// new epoch, in one write transaction.
async fn replace_contents(
    conn: &mut SqliteConnection,
    staged: &Path,
    epoch: &str,
) -> Result<(), BackupError> {
    sqlx::query("ATTACH DATABASE ?1 AS restored")
        .bind(staged.to_string_lossy().as_ref())
        .execute(&mut *conn)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    // IMMEDIATE: take the write lock now (the server's writer waits), so
    // nothing is written between reading and replacing.
    conn.execute("BEGIN IMMEDIATE").await?;
    let copied = async {
        conn.execute("PRAGMA defer_foreign_keys = ON").await?;
        for table in &tables {
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?;
            let columns = columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ");
            let table = quote(table);
            conn.execute(format!("DELETE FROM main.{table}").as_str())
                .await?;
            conn.execute(
                format!(
                    "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM restored.{table}"
                )
                .as_str(),
            )
            .await?;
        }
        sqlx::query("INSERT OR REPLACE INTO main.epoch (id, epoch) VALUES (1, ?1)")
            .bind(epoch)
            .execute(&mut *conn)
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    match copied {
        Ok(()) => conn.execute("COMMIT").await?,
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            let _ = conn.execute("DETACH DATABASE restored").await;
            return Err(e.into());
        }
    };
    conn.execute("DETACH DATABASE restored").await?;
    Ok(())
}

/// Gives the database at `url` (SQLite or PostgreSQL) a new epoch, after
/// bringing its schema up to date (a restored dump may be older). Running
/// instances notice within a second and their pages reload their rooms.
pub async fn new_epoch(url: &str) -> Result<String, BackupError> {
    let epoch = random_epoch();
    if is_postgres(url) {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut conn)
            .await?;
        sqlx::query("UPDATE epoch SET epoch = $1 WHERE id = 1")
            .bind(&epoch)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
    } else {
        let options = sqlite_options(url)?;
        if !options.get_filename().is_file() {
            return Err(BackupError::Missing(options.get_filename().to_owned()));
        }
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        sqlx::query("UPDATE epoch SET epoch = $1 WHERE id = 1")
            .bind(&epoch)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
    }
    Ok(epoch)
}

/// Opens a finished copy read-only and checks it: intact, and what it holds.
async fn check(path: &Path) -> Result<(i64, i64, String), BackupError> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut conn)
        .await?;
    if verdict != ["ok"] {
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            problem: verdict.join("; "),
        });
    }
    let (rooms, messages) = counts(&mut conn).await?;
    let epoch = sqlx::query_scalar("SELECT epoch FROM epoch WHERE id = 1")
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    conn.close().await?;
    Ok((rooms, messages, epoch))
}

async fn counts(conn: &mut SqliteConnection) -> Result<(i64, i64), BackupError> {
    let rooms = sqlx::query_scalar("SELECT count(*) FROM rooms")
        .fetch_one(&mut *conn)
        .await?;
    let messages = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut *conn)
        .await?;
    Ok((rooms, messages))
}

/// `.name.<what>-<random>` beside `path`: same directory, so the final
/// rename is atomic.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chat.db".into());
    path.with_file_name(format!(".{name}.{what}-{}", uuid::Uuid::new_v4().simple()))
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Makes a rename durable (best effort; not every platform can).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}
