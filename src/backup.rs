//! `chat backup`, `chat restore` and `chat new-epoch`: the maintenance
//! commands around the database (the work itself is in
//! `server::store::backup`). This file adds what belongs to the process:
//! where backups go, how long they are kept, and what is printed. Each
//! command reads only `DATABASE_URL` and its own flags.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, NaiveDateTime, Utc};
use server::store::backup::{self as store_backup, BackupError, Report};

use crate::config::{redact_url, BackupArgs, DatabaseArgs, RestoreArgs};

/// `chat-<UTC time>.db`: sorts by age, and says when it was taken.
const PREFIX: &str = "chat-";
const SUFFIX: &str = ".db";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Writes the backup; with `--dir`, then prunes the directory. Returns
/// what to print.
pub async fn backup(args: &BackupArgs) -> Result<String, BackupError> {
    let now = Utc::now();
    let path = match (&args.path, &args.dir) {
        (Some(path), _) => path.clone(),
        (None, Some(dir)) => {
            std::fs::create_dir_all(dir)?;
            dir.join(file_name(now))
        }
        (None, None) => unreachable!("clap requires a path or --dir"),
    };
    let report = store_backup::backup(&args.database.database_url, &path).await?;
    let mut text = format!(
        "backup: wrote {} ({}) in {}",
        report.path.display(),
        summary(&report),
        secs(report.took)
    );
    if let Some(dir) = &args.dir {
        if args.keep.is_some() || args.max_age_days.is_some() {
            let removed = prune(
                dir,
                args.keep.map(|n| n as usize),
                args.max_age_days,
                now,
                &path,
            )?;
            text.push_str(&format!("; removed {} older backup(s)", removed.len()));
            for old in removed {
                text.push_str(&format!("\n  removed {}", old.display()));
            }
        }
    }
    Ok(text)
}

/// Restores a SQLite backup into `DATABASE_URL` under a new epoch.
pub async fn restore(args: &RestoreArgs) -> Result<String, BackupError> {
    let report = store_backup::restore(&args.database.database_url, &args.path).await?;
    Ok(format!(
        "restore: {} now holds {} ({}) in {}; new epoch {}. Running instances \
         notice within a second: their sockets close and open pages reload their rooms.",
        report.path.display(),
        args.path.display(),
        summary(&report),
        secs(report.took),
        report.epoch
    ))
}

/// Gives the database a new epoch.
pub async fn new_epoch(args: &DatabaseArgs) -> Result<String, BackupError> {
    let epoch = store_backup::new_epoch(&args.database_url).await?;
    Ok(format!(
        "new-epoch: {} has epoch {epoch}. Running instances notice within a second: \
         their sockets close and open pages reload their rooms.",
        redact_url(&args.database_url)
    ))
}

fn summary(report: &Report) -> String {
    format!(
        "{:.1} MB, {} room(s), {} message(s) and events, epoch {}",
        report.bytes as f64 / 1e6,
        report.rooms,
        report.messages,
        report.epoch
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The name of a backup taken at `at`.
pub fn file_name(at: DateTime<Utc>) -> String {
    format!("{PREFIX}{}{SUFFIX}", at.format(TIME_FORMAT))
}

/// When the backup named `name` was taken, if it is one of ours.
fn taken_at(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Removes the backups in `dir` that neither rule keeps: a backup stays if
/// it is among the newest `keep`, or younger than `max_age` (either rule
/// alone when only one is given). `just_written` always stays. Only files
/// named like our backups are considered. Returns what was removed.
pub fn prune(
    dir: &Path,
    keep: Option<usize>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
    just_written: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    let mut backups: Vec<(DateTime<Utc>, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let at = taken_at(&e.file_name().to_string_lossy())?;
            e.file_type().ok()?.is_file().then(|| (at, e.path()))
        })
        .collect();
    // Newest first.
    backups.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut removed = Vec::new();
    for (i, (at, path)) in backups.into_iter().enumerate() {
        let age = (now - at).to_std().unwrap_or_default();
        let kept = path == just_written
            || keep.is_some_and(|n| i < n)
            || max_age.is_some_and(|max| age < max);
        if !kept {
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A directory with a backup for each of the last `days` days (one a
    /// day, newest today) and an unrelated file.
    fn dir_with(days: i64, now: DateTime<Utc>) -> Dir {
        let dir = std::env::temp_dir().join(format!("chat-prune-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for d in 0..days {
            let at = now - chrono::Duration::days(d) - chrono::Duration::minutes(1);
            std::fs::write(dir.join(file_name(at)), b"x").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.join("chat-important.db"), b"mine").unwrap();
        Dir(dir)
    }

    fn left(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| taken_at(&e.as_ref().unwrap().file_name().to_string_lossy()).is_some())
            .count()
    }

    #[test]
    fn names_carry_the_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(file_name(at), "chat-20261128T123456.789Z.db");
        assert_eq!(taken_at(&file_name(at)), Some(at));
        assert_eq!(taken_at("chat-important.db"), None);
    }

    #[test]
    fn keep_the_newest_n() {
        let now = Utc::now();
        let dir = dir_with(10, now);
        let removed = prune(&dir.0, Some(3), None, now, Path::new("/none")).unwrap();
        assert_eq!(removed.len(), 7);
        assert_eq!(left(&dir.0), 3);
        assert!(dir.0.join("notes.txt").exists() && dir.0.join("chat-important.db").exists());
    }

    #[test]
    fn keep_those_younger_than_d_days() {
        let now = Utc::now();
        let dir = dir_with(10, now);
        prune(
            &dir.0,
            None,
            Some(Duration::from_secs(4 * 86_400)),
            now,
            Path::new("/none"),
        )
        .unwrap();
        assert_eq!(left(&dir.0), 4, "today and the three days before");
    }

    #[test]
    fn both_rules_keep_what_either_keeps_and_the_new_one_always_stays() {
        let now = Utc::now();
        let dir = dir_with(10, now);
        prune(
            &dir.0,
            Some(5),
            Some(Duration::from_secs(2 * 86_400)),
            now,
            Path::new("/none"),
        )
        .unwrap();
        assert_eq!(left(&dir.0), 5);
        // Backups all older than the age limit: the one just written stays.
        let old = dir_with(3, now - chrono::Duration::days(30));
        let newest = old.0.join(file_name(now - chrono::Duration::days(30)));
        std::fs::write(&newest, b"x").unwrap();
        prune(
            &old.0,
            None,
            Some(Duration::from_secs(86_400)),
            now,
            &newest,
        )
        .unwrap();
        assert_eq!(left(&old.0), 1);
        assert!(newest.exists());
    }
}
