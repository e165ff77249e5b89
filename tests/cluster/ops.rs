//! Rolling deploys and logs, with real processes: SIGTERM drains an instance
//! without losing anything; logs are JSON lines with request ids and no
//! secrets.

use std::time::{Duration, Instant};

use crate::{
    helpers::TestDb,
    support::{all_messages, assert_gapless, Client, Instance},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_the_instance_and_loses_nothing() {
    let db = TestDb::postgres().await;
    let env = [("SHUTDOWN_DRAIN_SECS", "1"), ("SHUTDOWN_GRACE_SECS", "10")];
    let mut a = Instance::start(db.url(), &env).await;
    let b = Instance::start(db.url(), &env).await;
    let room = "deploy";
    let on_a = Client::start(vec![a.ws_url(""), b.ws_url("")], room).await;
    let on_b = Client::start(vec![b.ws_url(""), a.ws_url("")], room).await;

    // Posters on both instances; a failed post is retried (same id) on the other.
    let poster = {
        let (a_addr, b_addr) = (a.addr, b.addr);
        tokio::spawn(async move {
            let a = Instance::attach(a_addr);
            let b = Instance::attach(b_addr);
            let mut acked = Vec::new();
            for i in 0..80 {
                let id = uuid::Uuid::new_v4().to_string();
                for attempt in 0..40 {
                    let target = if (i + attempt) % 2 == 0 { &a } else { &b };
                    if let Ok(r) = target.post("deploy", "poster", &format!("m{i}"), &id).await {
                        if r.status().is_success() {
                            acked.push(id.clone());
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.terminate();
    let signalled = Instant::now();
    // While draining, /health answers 503 so the load balancer stops routing.
    let mut saw_503 = false;
    while signalled.elapsed() < Duration::from_millis(900) {
        if let Ok(r) = a.http.get(a.url("/health")).send().await {
            if r.status() == 503 {
                saw_503 = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_503, "health turned 503 after SIGTERM");
    assert!(
        a.wait_exit(Duration::from_secs(10)).await,
        "clean exit within the grace period"
    );

    let acked = poster.await.unwrap();
    assert_eq!(acked.len(), 80, "every post eventually acknowledged");
    let stored = all_messages(&b, room).await;
    let head = stored.len() as i64;
    for id in &acked {
        assert_eq!(
            stored.iter().filter(|m| m["id"] == id.as_str()).count(),
            1,
            "{id} stored once"
        );
    }
    assert_gapless(
        &on_a.until(head, Duration::from_secs(15)).await,
        head,
        "client that was on A",
    );
    assert_gapless(
        &on_b.until(head, Duration::from_secs(15)).await,
        head,
        "client on B",
    );
    assert!(
        on_a.closes.lock().unwrap().contains(&1001),
        "A closed its sockets with 1001"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_ids_and_no_secrets() {
    let db = TestDb::postgres().await;
    // Trust auth ignores the password, so a recognisable one can be used.
    let url = db
        .url()
        .replacen("://postgres@", "://postgres:s3cr3t-pw@", 1);
    assert!(
        url.contains("s3cr3t-pw"),
        "test needs a user in the URL: {url}"
    );
    let a = Instance::start(&url, &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")]).await;
    let res = a
        .http
        .get(a.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    a.post(
        "lobby",
        "alice",
        "a private message body",
        &uuid::Uuid::new_v4().to_string(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = a.logs.lock().unwrap().clone();
    assert!(!logs.is_empty(), "the server logged");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
    assert!(
        logs.contains("trace-me-42"),
        "request id in the request's log line"
    );
    assert!(logs.contains("postgres:***@"), "the URL is logged redacted");
    assert!(!logs.contains("s3cr3t-pw"), "the password never appears");
    assert!(
        !logs.contains("a private message body"),
        "message content is never logged"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    for (var, value) in [
        ("BROADCAST_MIN_SECS", "soon"),
        ("DATABASE_URL", "mysql://u:secret@h/db"),
        ("PORT", "http"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
            .env_clear()
            .env(var, value)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains("expected"),
            "{stderr}"
        );
        assert!(!stderr.contains("secret"), "no password: {stderr}");
    }
}
