//! `/ws`: backlog, ready, live, resume, ordering and the origin check.

use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use crate::{
    both_backends,
    helpers::{assert_silent, connect, next_json, spawn_app, TestDb},
};

both_backends!(backlog_then_ready_then_live, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    for i in 1..=3 {
        app.post("alice", &format!("m{i}")).await;
    }
    let mut ws = connect(&app.ws_url("?room=lobby&after=1")).await;
    assert_eq!(next_json(&mut ws).await["seq"], 2);
    assert_eq!(next_json(&mut ws).await["seq"], 3);
    assert_eq!(
        next_json(&mut ws).await,
        serde_json::json!({"type": "ready", "room": "lobby", "head": 3})
    );

    let posted = app.post("bob", "live one").await;
    let live = next_json(&mut ws).await;
    assert_eq!(live["type"], "message");
    for key in [
        "room",
        "seq",
        "id",
        "kind",
        "sender",
        "content",
        "created_at",
    ] {
        assert_eq!(live[key], posted[key], "{key}");
    }
    assert_silent(&mut ws, Duration::from_millis(300)).await;
});

both_backends!(without_after_only_live_messages, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    app.post("alice", "old").await;
    let mut ws = connect(&app.ws_url("?room=lobby")).await;
    assert_eq!(
        next_json(&mut ws).await,
        serde_json::json!({"type": "ready", "room": "lobby", "head": 1})
    );
    app.post("alice", "new").await;
    assert_eq!(next_json(&mut ws).await["content"], "new");
    // Other rooms' messages do not leak in.
    let res = app
        .http
        .post(app.url("/api/messages"))
        .json(&serde_json::json!({"sender": "x", "content": "elsewhere", "room": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_silent(&mut ws, Duration::from_millis(300)).await;
});

both_backends!(
    every_client_gets_every_message_once_in_order,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let mut clients = Vec::new();
        for _ in 0..5 {
            let mut ws = connect(&app.ws_url("?room=lobby&after=0")).await;
            assert_eq!(next_json(&mut ws).await["type"], "ready");
            clients.push(ws);
        }
        let posters = 4;
        let each = 10;
        let mut tasks = Vec::new();
        for p in 0..posters {
            let http = app.http.clone();
            let url = app.url("/api/messages");
            tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let res = http
                    .post(&url)
                    .json(&serde_json::json!({"sender": format!("p{p}"), "content": format!("{p}-{i}")}))
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
        let total = posters * each;
        for ws in clients.iter_mut() {
            let mut seqs = Vec::new();
            for _ in 0..total {
                seqs.push(next_json(ws).await["seq"].as_i64().unwrap());
            }
            assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
            assert_silent(ws, Duration::from_millis(200)).await;
        }
    }
);

both_backends!(
    a_reconnecting_client_misses_nothing_and_sees_nothing_twice,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let mut ws = connect(&app.ws_url("?after=0")).await;
        assert_eq!(next_json(&mut ws).await["type"], "ready");
        app.post("a", "1").await;
        app.post("a", "2").await;
        let mut last = 0;
        for _ in 0..2 {
            last = next_json(&mut ws).await["seq"].as_i64().unwrap();
        }
        drop(ws);
        for i in 3..=5 {
            app.post("a", &i.to_string()).await;
        }
        let mut ws = connect(&app.ws_url(&format!("?after={last}"))).await;
        let mut got: Vec<Value> = Vec::new();
        for _ in 0..3 {
            got.push(next_json(&mut ws).await);
        }
        assert_eq!(
            got.iter()
                .map(|m| m["content"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["3", "4", "5"]
        );
        assert_eq!(next_json(&mut ws).await["head"], 5);
        app.post("a", "6").await;
        assert_eq!(next_json(&mut ws).await["seq"], 6);
    }
);

both_backends!(
    foreign_origins_and_bad_rooms_are_refused,
    |db: TestDb| async move {
        let app = spawn_app(db, &[("ALLOWED_ORIGINS", "https://friend.example")]).await;
        let status = |res: Result<_, tokio_tungstenite::tungstenite::Error>| match res {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => 101,
        };
        let with_origin = |origin: &str| {
            let mut req = app.ws_url("").into_client_request().unwrap();
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(origin).unwrap());
            req
        };
        let evil = tokio_tungstenite::connect_async(with_origin("https://evil.example")).await;
        assert_eq!(status(evil.map(|_| ())), 403);
        let own =
            tokio_tungstenite::connect_async(with_origin(&format!("http://{}", app.addr))).await;
        assert_eq!(status(own.map(|_| ())), 101);
        let friend = tokio_tungstenite::connect_async(with_origin("https://friend.example")).await;
        assert_eq!(status(friend.map(|_| ())), 101);
        let bad_room = tokio_tungstenite::connect_async(app.ws_url("?room=NOPE")).await;
        assert_eq!(status(bad_room.map(|_| ())), 422);
    }
);
