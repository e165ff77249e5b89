use std::{collections::HashMap, net::SocketAddr, time::Duration};

use chat::Config;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
#[allow(unused_imports)]
pub use server::testing::{pg_base_url, TestDb};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub _db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    pub async fn post(&self, sender: &str, content: &str) -> Value {
        self.post_in("lobby", sender, content).await
    }

    /// Posts to `room`; fails the test unless it is stored.
    pub async fn post_in(&self, room: &str, sender: &str, content: &str) -> Value {
        let res = self
            .http
            .post(self.url("/api/messages"))
            .json(&serde_json::json!({"room": room, "sender": sender, "content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "post failed");
        res.json().await.unwrap()
    }

    /// The HTML at `path`, whatever its status.
    pub async fn page(&self, path: &str) -> String {
        let res = self.http.get(self.url(path)).send().await.unwrap();
        res.text().await.unwrap()
    }

    pub async fn messages(&self, query: &str) -> Vec<Value> {
        let res = self
            .http
            .get(self.url(&format!("/api/messages{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["messages"].as_array().unwrap().clone()
    }
}

/// Starts the real server (router, hub, store, migrations) on port 0.
pub async fn spawn_app(db: TestDb, env: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url().to_owned()),
        ("BROADCAST_MIN_SECS".into(), "0".into()),
        // Tests post and connect fast from one address; the limits have
        // tests of their own that turn them on.
        ("RATE_POSTS_PER_IP".into(), "0".into()),
        ("RATE_POSTS_PER_SENDER".into(), "0".into()),
        ("RATE_WS_CONNECTS_PER_IP".into(), "0".into()),
        ("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into()),
    ]);
    for (k, v) in env {
        vars.insert((*k).into(), (*v).into());
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = Config::from_pairs(&pairs).expect("test config");
    let (router, _state) = chat::startup::build(&config).await.expect("server builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(chat::startup::serve(
        listener,
        router,
        chat::startup::serve_settings(&config),
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    TestApp {
        addr,
        http,
        _db: db,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A new API session on the server at `base` (http://host:port), with no
/// name yet: its `token` and `author`.
pub async fn new_session(http: &reqwest::Client, base: &str) -> Value {
    let res = http
        .post(format!("{base}/api/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()
}

/// A new API session on the server at `base` (http://host:port) that holds
/// `name`; returns its bearer token.
pub async fn named_session(http: &reqwest::Client, base: &str, name: &str) -> String {
    let token = new_session(http, base).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = http
        .put(format!("{base}/api/session/name"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{name} taken");
    token
}

/// A WebSocket as the session with `token`.
pub async fn connect_as(url: &str, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    ws
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// The next JSON frame, skipping pings and ephemeral (presence, typing)
/// frames; fails the test after 5 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let v = next_frame(ws).await;
        if v["type"] != "presence" && v["type"] != "typing" {
            return v;
        }
    }
}

/// The next JSON frame of any type (skipping pings), failing after 5 s.
pub async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("valid frame");
        match msg {
            WsMessage::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
            WsMessage::Ping(p) => ws.send(WsMessage::Pong(p)).await.unwrap(),
            WsMessage::Close(c) => panic!("socket closed: {c:?}"),
            _ => {}
        }
    }
}

/// A `ready` frame without its `epoch` (checked to be one: 32 hex digits),
/// for comparing the rest exactly.
pub fn sans_epoch(mut frame: Value) -> Value {
    let epoch = frame
        .as_object_mut()
        .and_then(|f| f.remove("epoch"))
        .unwrap_or_else(|| panic!("no epoch in {frame}"));
    let epoch = epoch.as_str().unwrap_or_default();
    assert!(
        epoch.len() == 32 && epoch.chars().all(|c| c.is_ascii_hexdigit()),
        "epoch {epoch:?}"
    );
    frame
}

/// Asserts nothing but pings arrives for `wait`.
pub async fn assert_silent(ws: &mut Ws, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WsMessage::Ping(_)))) => {}
            Ok(Some(Ok(WsMessage::Text(t)))) if t.contains(r#""type":"presence""#) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}
