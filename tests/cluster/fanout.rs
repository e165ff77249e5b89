//! Cross-instance delivery, concurrency across instances, one broadcaster.

use std::time::{Duration, Instant};

use crate::{
    helpers::{next_json, TestDb},
    support::{all_messages, assert_gapless, Instance},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_on_one_instance_reaches_clients_of_another() {
    let db = TestDb::postgres().await;
    let a = Instance::start(db.url(), &[]).await;
    let b = Instance::start(db.url(), &[]).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(b.ws_url("?room=xroom"))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");

    // Latency from "POST sent on A" to "frame read on B", over loopback.
    let mut latencies = Vec::new();
    for i in 1..=200 {
        let id = uuid::Uuid::new_v4().to_string();
        let start = Instant::now();
        let res = a
            .post("xroom", "alice", &format!("m{i}"), &id)
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let frame = next_json(&mut ws).await;
        latencies.push(start.elapsed());
        assert_eq!(frame["seq"], i);
        assert_eq!(frame["id"], id.as_str());
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    eprintln!(
        "cross-instance delivery (post on A -> WebSocket on B, incl. the POST): p50 {:?}, p99 {:?}, max {:?}",
        p(0.50),
        p(0.99),
        latencies.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posters_on_two_instances_get_seqs_one_to_n() {
    let db = TestDb::postgres().await;
    let a = Instance::start(db.url(), &[]).await;
    let b = Instance::start(db.url(), &[]).await;
    let posters = 8;
    let each = 25;
    let mut tasks = Vec::new();
    for p in 0..posters {
        let (url_a, url_b) = (a.url("/api/messages"), b.url("/api/messages"));
        let http = a.http.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let url = if (p + i) % 2 == 0 { &url_a } else { &url_b };
                let res = http
                    .post(url)
                    .json(&serde_json::json!({"room": "busy", "sender": format!("p{p}"), "content": format!("{p}/{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = all_messages(&a, "busy").await;
    let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_gapless(&seqs, (posters * each) as i64, "stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_instance_broadcasts_and_another_takes_over() {
    let db = TestDb::postgres().await;
    let env = [("BROADCAST_MIN_SECS", "0.2"), ("BROADCAST_MAX_SECS", "0.3")];
    let mut a = Instance::start(db.url(), &env).await;
    let mut b = Instance::start(db.url(), &env).await;

    // Exactly one leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    let leaders = loop {
        let (la, lb) = (
            a.metric("broadcast_leader", "").await,
            b.metric("broadcast_leader", "").await,
        );
        if la + lb == 1.0 {
            break (la, lb);
        }
        assert!(la + lb <= 1.0, "two leaders at once");
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Over a window, broadcasts come from the leader only.
    let (a0, b0) = (broadcasts_sent(&a).await, broadcasts_sent(&b).await);
    let before = all_messages(&a, "announcements").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a1, b1) = (broadcasts_sent(&a).await, broadcasts_sent(&b).await);
    let after = all_messages(&a, "announcements").await.len();
    let (da, db_) = (a1 - a0, b1 - b0);
    if leaders.0 == 1.0 {
        assert!(
            da >= 3.0 && db_ == 0.0,
            "A leads: A sent {da}, B sent {db_}"
        );
    } else {
        assert!(
            db_ >= 3.0 && da == 0.0,
            "B leads: A sent {da}, B sent {db_}"
        );
    }
    // The rate clients see is one broadcaster's (0.2-0.3 s => at most ~16 in 3 s).
    assert!(
        (after - before) as f64 <= 3.0 / 0.2 + 2.0,
        "{} broadcasts in 3 s",
        after - before
    );

    // Kill the leader with SIGKILL: the other takes over within 5 s.
    let (dead, survivor) = if leaders.0 == 1.0 {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    dead.kill().await;
    let killed = Instant::now();
    loop {
        if survivor.metric("broadcast_leader", "").await == 1.0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no takeover within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("leader takeover after SIGKILL: {:?}", killed.elapsed());
    let count = all_messages(survivor, "announcements").await.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        all_messages(survivor, "announcements").await.len() > count,
        "the new leader broadcasts"
    );
}

async fn broadcasts_sent(instance: &Instance) -> f64 {
    instance
        .metric("messages_processed_total", "kind=\"broadcast\"")
        .await
}

/// Pages keep the room list between commits (`server::page_reads`); a post
/// on another instance reaches this one through the commit feed and must
/// make its next pages list the room, as its sockets get the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_posted_on_one_instance_is_listed_on_pages_of_another() {
    let db = TestDb::postgres().await;
    let a = Instance::start(db.url(), &[]).await;
    let b = Instance::start(db.url(), &[]).await;
    let page = |instance: &Instance| {
        let (http, url) = (instance.http.clone(), instance.url("/r/lobby"));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    // Both instances have read (and kept) the list before the post.
    assert!(!page(&a).await.contains(r#"href="/r/elsewhere""#));
    assert!(!page(&b).await.contains(r#"href="/r/elsewhere""#));
    let (mut ws, _) = tokio_tungstenite::connect_async(a.ws_url("?room=elsewhere"))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let id = uuid::Uuid::new_v4().to_string();
    let res = b.post("elsewhere", "bob", "over here", &id).await.unwrap();
    assert_eq!(res.status(), 201);
    // Once A's socket has the message, A's hub has it: A's pages list it.
    assert_eq!(next_json(&mut ws).await["id"], id.as_str());
    assert!(page(&a).await.contains(r#"href="/r/elsewhere""#));
    assert!(page(&b).await.contains(r#"href="/r/elsewhere""#));
}
