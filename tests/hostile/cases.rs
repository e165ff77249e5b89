//! The cases. Each starts its own instance and bystander.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::CloseFrame, Message as WsMessage,
};

use crate::{instance, support::Instance, Bystander, ATTACKER};

async fn attacker_post(instance: &Instance, body: reqwest::Body, ctype: &str) -> reqwest::Response {
    try_attacker_post(instance, body, ctype).await.unwrap()
}

async fn try_attacker_post(
    instance: &Instance,
    body: reqwest::Body,
    ctype: &str,
) -> reqwest::Result<reqwest::Response> {
    // A connection of its own each time: the server may close one it
    // refused, and no other request should ride on it.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    http.post(instance.url("/api/messages"))
        .header("x-forwarded-for", ATTACKER)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
}

/// An oversized body is answered 413 (with a readable error) as soon as its
/// length is known; the server need not read the rest, so the client may
/// see its upload cut off instead.
async fn assert_too_large(res: reqwest::Result<reqwest::Response>) {
    match res {
        Ok(res) => {
            assert_eq!(res.status(), 413);
            let error: Value = res.json().await.unwrap();
            assert!(
                error["error"].as_str().unwrap().contains("too large"),
                "{error}"
            );
        }
        Err(e) => assert!(e.is_request(), "the upload was cut off: {e}"),
    }
}

async fn attacker_json(instance: &Instance, body: Value) -> reqwest::Response {
    attacker_post(instance, body.to_string().into(), "application/json").await
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn attacker_socket(instance: &Instance, query: &str) -> Result<Ws, u16> {
    let mut req = instance.ws_url(query).into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static(ATTACKER));
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

/// The next text frame as JSON (skipping pings), or the close code.
async fn next(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => return Ok(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(WsMessage::Close(c)))) => {
                return Err(c.map(|CloseFrame { code, .. }| u16::from(code)))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => return Err(None),
            Err(_) => panic!("no frame within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_are_refused_clearly() {
    let (app, _db) = instance(&[]).await;
    let calm = Bystander::start(&app).await;
    // Far over the 64 KiB body limit.
    let huge = json!({"sender": "a", "content": "x".repeat(200_000)});
    assert_too_large(try_attacker_post(&app, huge.to_string().into(), "application/json").await)
        .await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_too_large(try_attacker_post(&app, nested.into(), "application/json").await).await;
    // Not UTF-8.
    let res = attacker_post(
        &app,
        vec![0xff, 0xfe, b'{', 0xc3].into(),
        "application/json",
    )
    .await;
    assert_eq!(res.status(), 400);
    // Not JSON, wrong JSON, deeply nested JSON.
    for body in [
        "{\"sender\": ".to_owned(),
        "[1,2,3]".to_owned(),
        "{\"sender\": 5, \"content\": []}".to_owned(),
        format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
    ] {
        let started = std::time::Instant::now();
        let res = attacker_post(&app, body.clone().into(), "application/json").await;
        assert!(
            matches!(res.status().as_u16(), 400 | 422),
            "{} for {}…",
            res.status(),
            &body[..body.len().min(20)]
        );
        let error: Value = res.json().await.unwrap();
        assert!(error["error"].is_string(), "a readable error: {error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Not JSON at all.
    let res = attacker_post(
        &app,
        "sender=a&content=b".into(),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{error}"
    );
    calm.finish().await;
    assert_eq!(
        crate::support::all_messages(&app, "lobby").await.len(),
        0,
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_stored_and_shown_verbatim_and_rules_are_counted_in_characters() {
    let (app, _db) = instance(&[("RATE_POSTS_PER_IP", "0"), ("RATE_POSTS_PER_SENDER", "0")]).await;
    let calm = Bystander::start(&app).await;
    let verbatim = [
        "'; DROP TABLE messages; --",
        "\" OR 1=1 --",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "{{7*7}} ${7*7} %s %n",
        "👨\u{200D}👩\u{200D}👧 👍🏽 🇯🇵 1\u{FE0F}\u{20E3}",
        "\u{202E}txet sdrawkcab",
    ];
    for content in verbatim {
        let res = attacker_json(
            &app,
            json!({"room": "verbatim", "sender": "tester", "content": content}),
        )
        .await;
        assert_eq!(res.status(), 201, "{content:?}");
        assert_eq!(res.json::<Value>().await.unwrap()["content"], content);
    }
    let stored = crate::support::all_messages(&app, "verbatim").await;
    let contents: Vec<&str> = stored
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, verbatim);
    // The page shows markup as text.
    let html = app
        .http
        .get(app.url("/r/verbatim"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<img src=x"));

    // 2000 characters pass, 2001 do not, whatever their size in bytes.
    let emoji = "👍🏽".repeat(1000); // a thumb and a skin tone: 2 characters each
    for (content, status) in [
        ("漢".repeat(2000), 201),
        ("漢".repeat(2001), 422),
        (emoji.clone(), 201),
        (format!("{emoji}!"), 422),
    ] {
        let res = attacker_json(
            &app,
            json!({"room": "sizes", "sender": "tester", "content": content}),
        )
        .await;
        assert_eq!(
            res.status(),
            status,
            "{} characters",
            content.chars().count()
        );
        if status == 422 {
            let error: Value = res.json().await.unwrap();
            assert!(
                error["error"].as_str().unwrap().contains("2001 given"),
                "{error}"
            );
        }
    }
    // Control characters in text, format characters and look-alikes in names.
    for (sender, content) in [
        ("tester", "bell\u{7}"),
        ("tester", "nul\u{0}"),
        ("ali\u{200B}ce", "hi"),
        ("\u{202E}ecila", "hi"),
        ("ｓｅｒｖｅｒ", "I am the server now"),
        ("📣 server", "official"),
    ] {
        let res = attacker_json(&app, json!({"sender": sender, "content": content})).await;
        assert_eq!(res.status(), 422, "{sender:?} {content:?}");
    }
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_flood_is_refused_with_429_while_others_post_and_health_stays_green() {
    let (app, _db) = instance(&[("DATABASE_MAX_CONNECTIONS", "2")]).await;
    let calm = Bystander::start(&app).await;
    let mut refused = 0;
    let mut stored = 0;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let http = app.http.clone();
        let url = app.url("/api/messages");
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..100 {
                let res = http
                    .post(&url)
                    .header("x-forwarded-for", ATTACKER)
                    .json(&json!({"room": "flood", "sender": format!("bot{worker}-{i}"), "content": "spam"}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = res.headers().get("retry-after").cloned();
                statuses.push((res.status().as_u16(), retry_after));
            }
            statuses
        }));
    }
    // Health answers 200 all along.
    for _ in 0..10 {
        let res = app.http.get(app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), 200, "health stays green under a flood");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        for (status, retry_after) in t.await.unwrap() {
            match status {
                201 => stored += 1,
                429 => {
                    refused += 1;
                    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
                    assert!((1..=10).contains(&secs), "Retry-After {secs}");
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    // 60 per 10 s per address: the burst, and what refilled meanwhile.
    assert!((60..=90).contains(&stored), "stored {stored}");
    assert_eq!(stored + refused, 800);
    assert_eq!(
        crate::support::all_messages(&app, "flood").await.len(),
        stored,
        "exactly the accepted posts are stored"
    );
    // Changing the forwarded address from the far side does not help: with
    // one trusted hop only the last entry counts.
    let mut sneaked = 0;
    for i in 0..20 {
        let res = app
            .http
            .post(app.url("/api/messages"))
            .header("x-forwarded-for", format!("10.9.8.{i}, {ATTACKER}"))
            .json(&json!({"room": "flood", "sender": format!("sneaky{i}"), "content": "spam"}))
            .send()
            .await
            .unwrap();
        if res.status() == 201 {
            sneaked += 1;
        }
    }
    assert!(
        sneaked <= 3,
        "{sneaked} of 20 got through with forged addresses"
    );
    calm.finish().await;
    assert!(app.metric("rate_limited_total", "limit=\"post\"").await >= refused as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_flood_is_refused_with_429() {
    let (app, _db) = instance(&[("RATE_WS_CONNECTS_PER_IP", "10/1m")]).await;
    let calm = Bystander::start(&app).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        match attacker_socket(&app, "?room=flood").await {
            Ok(ws) => open.push(ws),
            Err(status) => {
                assert_eq!(status, 429);
                refused += 1;
            }
        }
    }
    assert_eq!(open.len(), 10);
    assert_eq!(refused, 20);
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_floods_unknown_frames_and_big_frames_only_hurt_their_sender() {
    let (app, _db) = instance(&[("RATE_WS_FRAMES", "20/10s")]).await;
    let calm = Bystander::start(&app).await;

    // Unknown and malformed frames: an error frame, the socket stays.
    let mut ws = attacker_socket(&app, "?room=lobby").await.unwrap();
    while next(&mut ws).await.unwrap()["type"] != "ready" {}
    for frame in [
        r#"{"type":"launch_missiles"}"#,
        r#"{"type":"subscribe","room":"lobby","after":"soon"}"#,
        r#"{"type":"subscribe","room":"lobby","after":1e400}"#,
        "not json at all",
        r#"{"type":"hello","name":{"nested":[[[[[]]]]]}}"#,
    ] {
        ws.send(WsMessage::Text(frame.into())).await.unwrap();
        let v = loop {
            let v = next(&mut ws).await.unwrap();
            if v["type"] == "error" {
                break v;
            }
        };
        assert!(v["error"].as_str().unwrap().contains("malformed"), "{v}");
    }
    ws.send(WsMessage::Text(
        r#"{"type":"subscribe","room":"BAD ROOM"}"#.into(),
    ))
    .await
    .unwrap();
    loop {
        let v = next(&mut ws).await.unwrap();
        if v["type"] == "error" {
            assert!(v["error"].as_str().unwrap().contains("Room names"), "{v}");
            break;
        }
    }

    // A flood: refusals with a wait, then 1008.
    let mut flood = attacker_socket(&app, "?room=lobby").await.unwrap();
    for _ in 0..200 {
        if flood
            .send(WsMessage::Text(r#"{"type":"ping"}"#.into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut refusals = 0;
    let code = loop {
        match next(&mut flood).await {
            Ok(v) if v["type"] == "error" => {
                assert!(v["retry_after_ms"].as_u64().unwrap() > 0);
                refusals += 1;
            }
            Ok(_) => {}
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(1008));
    assert!(refusals >= 10, "{refusals} refusals before the close");

    // A frame bigger than any client frame: the server refuses to buffer it.
    let mut big = attacker_socket(&app, "?room=lobby").await.unwrap();
    let _ = big
        .send(WsMessage::Text("x".repeat(64 * 1024).into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match big.next().await {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a 64 KiB frame ends the connection");
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_churn_and_client_numbers_change_nothing_for_others() {
    let (app, _db) = instance(&[("RATE_WS_CONTROL_FRAMES", "0"), ("RATE_WS_FRAMES", "0")]).await;
    let calm = Bystander::start(&app).await;
    let mut ws = attacker_socket(&app, "?room=lobby").await.unwrap();
    while next(&mut ws).await.unwrap()["type"] != "ready" {}
    // The bystander's room, from absurd positions: only this socket's
    // view is affected.
    for after in [i64::MAX, i64::MAX - 1, 1 << 53, 0] {
        let frame = json!({"type": "subscribe", "room": "calm", "after": after});
        ws.send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    // Many fresh rooms, followed and dropped.
    for i in 0..2000 {
        let room = format!("churn-{i}");
        ws.send(WsMessage::Text(
            json!({"type": "subscribe", "room": room})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        ws.send(WsMessage::Text(
            json!({"type": "unsubscribe", "room": room})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    drop(ws);
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_headers_are_cut_off() {
    let (app, _db) = instance(&[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let calm = Bystander::start(&app).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // One header byte a second, never finishing.
    let mut buf = [0u8; 256];
    let cut = loop {
        tokio::select! {
            read = stream.read(&mut buf) => break read,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if stream.write_all(b"X").await.is_err() {
                    break Ok(0);
                }
            }
        }
    };
    let elapsed = started.elapsed();
    assert!(
        matches!(cut, Ok(0))
            || matches!(cut, Ok(n) if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"))
            || cut.is_err(),
        "the server hung up: {cut:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "cut after {elapsed:?}");
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_is_dropped() {
    let (app, _db) = instance(&[
        ("WS_SEND_TIMEOUT_SECS", "1"),
        ("RATE_POSTS_PER_IP", "0"),
        ("RATE_POSTS_PER_SENDER", "0"),
    ])
    .await;
    let calm = Bystander::start(&app).await;
    // A client that reads nothing, with a tiny receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let mut req = app.ws_url("?room=bulk").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static(ATTACKER));
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut stalled, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    while next(&mut stalled).await.unwrap()["type"] != "ready" {}
    let before = app.metric("websocket_disconnects_total", "").await;
    // Big messages fill the kernel's buffers; then every send waits.
    let mut posters = Vec::new();
    for worker in 0..8 {
        let http = app.http.clone();
        let url = app.url("/api/messages");
        posters.push(tokio::spawn(async move {
            for i in 0..400 {
                let content = format!("{worker}/{i} {}", "x".repeat(1990));
                let res = http
                    .post(&url)
                    .json(&json!({"room": "bulk", "sender": "bulk", "content": content}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        }));
    }
    for p in posters {
        p.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let dropped = app
            .metric("websocket_disconnects_total", "send_timeout")
            .await
            + app
                .metric("websocket_disconnects_total", "slow_client")
                .await;
        if dropped >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket is still held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.metric("websocket_disconnects_total", "").await > before);
    drop(stalled);
    let latencies = calm.finish().await;
    assert!(!latencies.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_above_the_cap_get_a_clean_503() {
    let (app, _db) = instance(&[("MAX_CONNECTIONS", "20")]).await;
    // The bystander holds one socket and one HTTP keep-alive connection.
    let calm = Bystander::start(&app).await;
    let mut held = Vec::new();
    let mut busy = 0;
    for _ in 0..30 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        if head.starts_with("HTTP/1.1 503") {
            assert!(head.contains("connection limit"), "{head}");
            busy += 1;
        } else {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            held.push(stream);
        }
    }
    assert!(busy >= 10, "{busy} refused");
    assert!(held.len() <= 18, "{} held", held.len());
    // Freed connections make room again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_form_posts_are_refused_and_store_nothing() {
    let (app, _db) = instance(&[]).await;
    let calm = Bystander::start(&app).await;
    let form = [
        ("room", "csrf"),
        ("sender", "victim"),
        ("content", "forged"),
        ("id", ""),
    ];
    for (path, headers) in [
        (
            "/api/post_message",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        ),
        (
            "/api/post_message",
            vec![("origin", "https://evil.example")],
        ),
        ("/api/post_message", vec![("origin", "null")]),
        (
            "/create/",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        ),
    ] {
        let mut req = app
            .http
            .post(app.url(path))
            .header("accept", "text/html")
            .form(&form);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{path}");
        let error: Value = res.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("this site"),
            "{error}"
        );
    }
    let res = app
        .http
        .get(app.url("/join?room=evil"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        crate::support::all_messages(&app, "csrf").await.is_empty(),
        "nothing stored"
    );
    // Our own page's form works.
    let res = app
        .http
        .post(app.url("/api/post_message"))
        .header("accept", "text/html")
        .header("origin", format!("http://{}", app.addr))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    // Redirected back to the room page, which shows it.
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(crate::support::all_messages(&app, "csrf").await.len(), 1);
    calm.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_instance_exports_every_series_at_zero_with_fixed_labels() {
    let (app, _db) = instance(&[]).await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "websocket_connections_active 0",
        "messages_processed_total{kind=\"user\"} 0",
        "messages_processed_total{kind=\"broadcast\"} 0",
        "websocket_disconnects_total{reason=\"policy\"} 0",
        "rate_limited_total{limit=\"post\"} 0",
        "http_connections_refused_total 0",
    ] {
        assert!(text.contains(series), "missing {series:?} in\n{text}");
    }
    // A made-up method is counted as "other", not as itself.
    let res = app
        .http
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url("/health"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("BREW"));
    assert!(text.contains("method=\"other\""));
}
