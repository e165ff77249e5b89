//! The maintenance commands of the real binary (`chat backup`, `chat
//! restore`, `chat new-epoch`) beside a serving instance: they read only
//! `DATABASE_URL`, so an unrelated bad setting never stops a backup.

use std::{path::Path, process::Output, time::Duration};

use crate::helpers::{spawn_app, TestApp, TestDb};

/// Runs `chat <args>` with `DATABASE_URL=url` and the extra variables.
fn chat(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .output()
        .expect("chat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir_of(app: &TestApp) -> &Path {
    match &app._db {
        TestDb::Sqlite { _dir, .. } => &_dir.0,
        TestDb::Postgres { .. } => unreachable!("a SQLite test"),
    }
}

async fn epoch(app: &TestApp) -> String {
    let body: serde_json::Value = app
        .http
        .get(app.url("/api/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["epoch"].as_str().unwrap().to_owned()
}

/// Waits (up to 5 s) until the instance serves another epoch than `old`.
async fn new_epoch_served(app: &TestApp, old: &str) -> String {
    for _ in 0..50 {
        let now = epoch(app).await;
        if now != old {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the instance still serves epoch {old}");
}

#[tokio::test]
async fn backup_ignores_unrelated_bad_settings_keeps_n_and_refuses_postgres() {
    let app = spawn_app(TestDb::sqlite().await, &[]).await;
    for i in 1..=3 {
        app.post("alice", &format!("m{i}")).await;
    }
    let url = app._db.url().to_owned();
    let file = dir_of(&app).join("one.db");
    let bad = [
        ("PORT", "http"),
        ("RATE_WS_FRAMES", "lots"),
        ("MODERATOR_TOKEN", "short"),
    ];
    let out = chat(&url, &["backup", file.to_str().unwrap()], &bad);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 message(s)"),
        "{}",
        text(&out.stdout)
    );
    assert!(file.is_file());
    // Never over an existing file.
    let again = chat(&url, &["backup", file.to_str().unwrap()], &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );

    // Into a directory, keeping the newest two.
    let dir = dir_of(&app).join("backups");
    for _ in 0..3 {
        let out = chat(
            &url,
            &["backup", "--dir", dir.to_str().unwrap(), "--keep", "2"],
            &bad,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("chat-") && n.ends_with(".db")));

    // PostgreSQL is pg_dump's job, and the command says so.
    let out = chat(
        "postgres://chat:s3cret@127.0.0.1:1/chat",
        &["backup", dir_of(&app).join("pg.db").to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("pg_dump") && err.contains("docs/operations.md"),
        "{err}"
    );
    assert!(!err.contains("s3cret"));
}

#[tokio::test]
async fn restore_under_a_serving_instance_is_noticed_within_seconds() {
    let app = spawn_app(TestDb::sqlite().await, &[]).await;
    let url = app._db.url().to_owned();
    app.post("alice", "kept").await;
    let file = dir_of(&app).join("kept.db");
    assert!(chat(&url, &["backup", file.to_str().unwrap()], &[])
        .status
        .success());
    app.post("alice", "lost").await;
    let old = epoch(&app).await;

    let out = chat(&url, &["restore", file.to_str().unwrap()], &[("PORT", "x")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 message(s)"),
        "{}",
        text(&out.stdout)
    );
    new_epoch_served(&app, &old).await;
    let contents: Vec<String> = app
        .messages("?room=lobby")
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents, ["kept"]);
    // Posting goes on from the restored head.
    assert_eq!(app.post("alice", "next").await["seq"], 2);
}

#[tokio::test]
async fn new_epoch_on_postgres_is_noticed_by_the_running_instance() {
    let app = spawn_app(TestDb::postgres().await, &[]).await;
    let old = epoch(&app).await;
    let out = chat(app._db.url(), &["new-epoch"], &[("RATE_WS_FRAMES", "lots")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = new_epoch_served(&app, &old).await;
    assert!(text(&out.stdout).contains(&now), "{}", text(&out.stdout));
    // `chat restore` is SQLite's: PostgreSQL gets pointed to pg_restore.
    let out = chat(app._db.url(), &["restore", "dump"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("pg_restore"));
}
