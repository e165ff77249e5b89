//! Failures: an instance killed with SIGKILL, the database unreachable, the
//! listener's connection terminated. Every client ends with the same
//! gapless sequence and every acknowledged post is stored exactly once.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    helpers::{pg_base_url, TestDb},
    support::{all_messages, assert_gapless, via_proxy, Client, Instance, Proxy},
};

/// Posts `n` messages to `room`, alternating instances; on a failure retries
/// the same id on the other instance (as a client behind the ALB would).
/// Returns the ids that got a 2xx.
async fn post_many(
    instances: [&Instance; 2],
    room: &str,
    n: usize,
    pause: Duration,
) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tries = 0;
        loop {
            let target = instances[(i + tries) % 2];
            match target.post(room, "poster", &format!("msg {i}"), &id).await {
                Ok(r) if r.status().is_success() => {
                    acked.push(id);
                    break;
                }
                _ if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("post {i} never succeeded: {other:?}"),
            }
        }
        tokio::time::sleep(pause).await;
    }
    acked
}

fn assert_each_acked_once(stored: &[serde_json::Value], acked: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in stored {
        *counts.entry(m["id"].as_str().unwrap()).or_default() += 1;
    }
    for id in acked {
        assert_eq!(
            counts.get(id.as_str()),
            Some(&1),
            "acknowledged post {id} stored exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_instance_loses_nothing() {
    let db = TestDb::postgres().await;
    let mut a = Instance::start(db.url(), &[]).await;
    let b = Instance::start(db.url(), &[]).await;
    let room = "failover";
    // Two clients on each instance; each falls back to the other address.
    let mut clients = Vec::new();
    for (first, second) in [(&a, &b), (&a, &b), (&b, &a), (&b, &a)] {
        clients.push(Client::start(vec![first.ws_url(""), second.ws_url("")], room).await);
    }
    let poster = {
        let (a_url, b_url) = (a.addr, b.addr);
        tokio::spawn(async move {
            // Separate handles so the poster keeps going while A dies.
            let a = Instance::attach(a_url);
            let b = Instance::attach(b_url);
            post_many([&a, &b], "failover", 60, Duration::from_millis(15)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.kill().await;
    let acked = poster.await.unwrap();
    let stored = all_messages(&b, room).await;
    let head = stored.len() as i64;
    assert_eq!(acked.len(), 60);
    assert_each_acked_once(&stored, &acked);
    for (i, c) in clients.iter().enumerate() {
        let seqs = c.until(head, Duration::from_secs(15)).await;
        assert_gapless(&seqs, head, &format!("client {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_gives_503s_and_loses_nothing() {
    let base = pg_base_url();
    let (target, _) = via_proxy(&base, 0).expect("this test needs PostgreSQL over TCP");
    let db = TestDb::postgres().await;
    let proxy = Proxy::start(target).await;
    let (_, url) = via_proxy(db.url(), proxy.port).unwrap();
    let env = [("DATABASE_TIMEOUT_SECS", "1")];
    let a = Instance::start(&url, &env).await;
    let b = Instance::start(&url, &env).await;
    let room = "outage";
    let client_a = Client::start(vec![a.ws_url(""), b.ws_url("")], room).await;
    let client_b = Client::start(vec![b.ws_url(""), a.ws_url("")], room).await;
    let mut acked = post_many([&a, &b], room, 10, Duration::ZERO).await;

    proxy.cut();
    // Health turns 503 and posts fail fast with a clear 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = a.http.get(a.url("/health")).send().await.unwrap().status();
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "health never turned 503");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let res = a
        .post(
            room,
            "poster",
            "during outage",
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("temporarily unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a post must not hang: {:?}",
        started.elapsed()
    );

    proxy.restore();
    a.wait_healthy().await;
    b.wait_healthy().await;
    acked.extend(post_many([&a, &b], room, 10, Duration::ZERO).await);
    let stored = all_messages(&a, room).await;
    assert_each_acked_once(&stored, &acked);
    let head = stored.len() as i64;
    assert_gapless(
        &client_a.until(head, Duration::from_secs(15)).await,
        head,
        "client on A",
    );
    assert_gapless(
        &client_b.until(head, Duration::from_secs(15)).await,
        head,
        "client on B",
    );
    assert!(
        a.metric("bus_recoveries_total", "").await >= 1.0,
        "A's listener recovered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_terminated_listener_resyncs_what_it_missed() {
    let db = TestDb::postgres().await;
    let a = Instance::start(db.url(), &[]).await;
    let b = Instance::start(db.url(), &[]).await;
    let room = "relisten";
    let client = Client::start(vec![b.ws_url("")], room).await;
    let poster = {
        let (a_addr, b_addr) = (a.addr, b.addr);
        tokio::spawn(async move {
            let a = Instance::attach(a_addr);
            let b = Instance::attach(b_addr);
            post_many([&a, &a], "relisten", 80, Duration::from_millis(10)).await;
            drop(b);
        })
    };
    // Kill B's listening backend (and A's) while A keeps committing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(db.url()).await.unwrap()
    };
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "found the listeners");
    poster.await.unwrap();
    let head = all_messages(&a, room).await.len() as i64;
    assert_eq!(head, 80);
    assert_gapless(
        &client.until(head, Duration::from_secs(15)).await,
        head,
        "client on B",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.metric("bus_recoveries_total", "").await < 1.0 {
        assert!(Instant::now() < deadline, "B counted its listener recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
