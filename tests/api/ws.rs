//! `/ws`: backlog, ready, live, resume, ordering and the origin check.

use std::time::Duration;

use futures::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, Message as WsMessage,
};

use crate::helpers::{
    assert_silent, connect, connect_as, named_session, next_json, sans_epoch, spawn_app, TestDb,
};
use server::both_backends;

both_backends!(backlog_then_ready_then_live, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    for i in 1..=3 {
        app.post("alice", &format!("m{i}")).await;
    }
    let mut ws = connect(&app.ws_url("?room=lobby&after=1")).await;
    assert_eq!(next_json(&mut ws).await["seq"], 2);
    assert_eq!(next_json(&mut ws).await["seq"], 3);
    assert_eq!(
        sans_epoch(next_json(&mut ws).await),
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
        sans_epoch(next_json(&mut ws).await),
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
        // Our host over the other scheme is another origin.
        let scheme =
            tokio_tungstenite::connect_async(with_origin(&format!("https://{}", app.addr))).await;
        assert_eq!(status(scheme.map(|_| ())), 403);
    }
);

#[tokio::test]
async fn behind_a_trusted_tls_proxy_the_page_origin_is_https_and_cookies_are_secure() {
    let app = spawn_app(
        TestDb::sqlite().await,
        &[
            ("TRUSTED_PROXY_HOPS", "1"),
            ("HSTS_MAX_AGE_SECS", "31536000"),
        ],
    )
    .await;
    let status = |res: Result<_, tokio_tungstenite::tungstenite::Error>| match res {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    };
    let via_tls = |origin: String| {
        let mut req = app.ws_url("").into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("origin", HeaderValue::from_str(&origin).unwrap());
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        req
    };
    let https = tokio_tungstenite::connect_async(via_tls(format!("https://{}", app.addr))).await;
    assert_eq!(status(https.map(|_| ())), 101);
    let http = tokio_tungstenite::connect_async(via_tls(format!("http://{}", app.addr))).await;
    assert_eq!(status(http.map(|_| ())), 403);

    // The page over HTTPS: HSTS, and the session cookie is Secure.
    let res = app
        .http
        .get(app.url("/r/lobby"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("chat_session=") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
    // Plain HTTP: neither.
    let res = app.http.get(app.url("/health")).send().await.unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

async fn send_json(ws: &mut crate::helpers::Ws, v: Value) {
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        v.to_string().into(),
    ))
    .await
    .unwrap();
}

/// The next frame of `kind`, skipping others (e.g. presence updates).
async fn next_of(ws: &mut crate::helpers::Ws, kind: &str) -> Value {
    loop {
        let v = crate::helpers::next_frame(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

both_backends!(one_socket_follows_several_rooms, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    let post = |room: &'static str, content: &'static str| {
        let (http, url) = (app.http.clone(), app.url("/api/messages"));
        async move {
            let res = http
                .post(url)
                .json(&serde_json::json!({"sender": "a", "content": content, "room": room}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    };
    post("general", "g1").await;
    post("general", "g2").await;
    let mut ws = connect(&app.ws_url("?room=lobby")).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    // Add a room with a resume point: its backlog, then its ready.
    send_json(
        &mut ws,
        serde_json::json!({"type": "subscribe", "room": "general", "after": 1}),
    )
    .await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["room"].as_str(), m["content"].as_str()),
        (Some("general"), Some("g2"))
    );
    assert_eq!(
        sans_epoch(next_json(&mut ws).await),
        serde_json::json!({"type": "ready", "room": "general", "head": 2})
    );
    // Live frames of both rooms arrive on the one socket.
    post("lobby", "l1").await;
    assert_eq!(next_json(&mut ws).await["content"], "l1");
    post("general", "g3").await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["room"].as_str(), m["seq"].as_i64()),
        (Some("general"), Some(3))
    );
    // After unsubscribing, the room is quiet; the other still flows.
    send_json(
        &mut ws,
        serde_json::json!({"type": "unsubscribe", "room": "general"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    post("general", "g4").await;
    post("lobby", "l2").await;
    assert_eq!(next_json(&mut ws).await["content"], "l2");
    assert_silent(&mut ws, Duration::from_millis(200)).await;
    // Bad requests get an error frame, and the socket keeps working.
    send_json(
        &mut ws,
        serde_json::json!({"type": "subscribe", "room": "Not Valid"}),
    )
    .await;
    assert!(next_json(&mut ws).await["error"]
        .as_str()
        .unwrap()
        .contains("Room"));
    send_json(
        &mut ws,
        serde_json::json!({"type": "subscribe", "room": "general", "after": 3}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["content"], "g4");
});

both_backends!(presence_and_typing, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    let base = app.url("");
    let alice_token = named_session(&app.http, &base, "alice").await;
    let bob_token = named_session(&app.http, &base, "bob").await;
    let mut alice = connect_as(&app.ws_url("?room=meet"), &alice_token).await;
    next_of(&mut alice, "ready").await;
    let mut bob = connect_as(&app.ws_url("?room=meet"), &bob_token).await;
    next_of(&mut bob, "ready").await;
    // A client cannot claim a name it does not hold.
    let mut anon = connect(&app.ws_url("?room=meet")).await;
    send_json(
        &mut anon,
        serde_json::json!({"type": "hello", "name": "carol"}),
    )
    .await;
    next_of(&mut anon, "ready").await;
    // Everyone converges on: alice and bob, plus one anonymous visitor.
    let want = serde_json::json!({"type": "presence", "room": "meet", "names": ["alice", "bob"], "count": 3});
    for ws in [&mut alice, &mut bob] {
        loop {
            if next_of(ws, "presence").await == want {
                break;
            }
        }
    }
    // Typing is relayed to the room, and throttled per socket.
    send_json(
        &mut alice,
        serde_json::json!({"type": "typing", "room": "meet"}),
    )
    .await;
    send_json(
        &mut alice,
        serde_json::json!({"type": "typing", "room": "meet"}),
    )
    .await;
    assert_eq!(
        next_of(&mut bob, "typing").await,
        serde_json::json!({"type": "typing", "room": "meet", "name": "alice"})
    );
    let mut extra = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut bob)).await
    {
        extra.push(m);
    }
    assert!(
        !extra.iter().any(|m| m.to_string().contains("typing")),
        "second signal throttled: {extra:?}"
    );
    // When alice's only tab closes she is gone from the room.
    drop(alice);
    let want =
        serde_json::json!({"type": "presence", "room": "meet", "names": ["bob"], "count": 2});
    loop {
        if next_of(&mut bob, "presence").await == want {
            break;
        }
    }
});

both_backends!(
    resuming_from_beyond_the_head_gets_the_real_head_and_every_later_message,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        // A room nobody has opened yet, with two messages.
        for i in 1..=2 {
            let res = app
                .http
                .post(app.url("/api/messages"))
                .json(&serde_json::json!({"room": "fresh", "sender": "a", "content": format!("m{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
        // At the head, just beyond it, far beyond it: all told head 2.
        let mut sockets = Vec::new();
        for after in ["2", "3", "1000000", &i64::MAX.to_string()] {
            let mut ws = connect(&app.ws_url(&format!("?room=fresh&after={after}"))).await;
            assert_eq!(
                sans_epoch(next_json(&mut ws).await),
                serde_json::json!({"type": "ready", "room": "fresh", "head": 2}),
                "after={after}"
            );
            sockets.push(ws);
        }
        // A well-behaved client that joined before any of them and one after.
        let mut honest = connect(&app.ws_url("?room=fresh&after=0")).await;
        assert_eq!(next_json(&mut honest).await["seq"], 1);
        assert_eq!(next_json(&mut honest).await["seq"], 2);
        assert_eq!(next_json(&mut honest).await["type"], "ready");
        for i in 3..=5 {
            app.post_in("fresh", "b", &format!("m{i}")).await;
        }
        // Every socket gets 3, 4 and 5: nobody's numbers moved the room.
        for ws in sockets.iter_mut().chain(std::iter::once(&mut honest)) {
            for seq in 3..=5 {
                assert_eq!(next_json(ws).await["seq"], seq);
            }
        }
    }
);

both_backends!(
    a_long_backlog_is_replayed_in_pages,
    |db: TestDb| async move {
        let app = spawn_app(db, &[("WS_REPLAY_MAX", "10")]).await;
        for i in 1..=25 {
            app.post_in("paged", "a", &format!("m{i}")).await;
        }
        let mut ws = connect(&app.ws_url("?room=paged&after=0")).await;
        let mut seqs = Vec::new();
        loop {
            let v = next_json(&mut ws).await;
            match v["type"].as_str().unwrap() {
                "message" => seqs.push(v["seq"].as_i64().unwrap()),
                "more" => {
                    // Not following yet: page on from where it stopped.
                    assert_eq!(v["after"], *seqs.last().unwrap());
                    let frame = serde_json::json!({"type": "subscribe", "room": "paged", "after": v["after"]});
                    ws.send(WsMessage::Text(frame.to_string().into()))
                        .await
                        .unwrap();
                }
                "ready" => {
                    assert_eq!(v["head"], 25);
                    break;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(seqs, (1..=25).collect::<Vec<_>>());
        app.post_in("paged", "a", "live").await;
        assert_eq!(next_json(&mut ws).await["seq"], 26);
    }
);
