//! Presence and typing across instances, and expiry of a crashed instance's
//! users.

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    helpers::{connect_as, named_session, next_frame, TestDb, Ws},
    support::Instance,
};

/// A socket of a session that holds `name` (presence shows the session's
/// name, not what a client claims).
async fn join(instance: &Instance, name: &str) -> Ws {
    let token = named_session(&instance.http, &instance.url(""), name).await;
    let mut ws = connect_as(&instance.ws_url("?room=meet"), &token).await;
    let hello = json!({"type": "hello", "name": name}).to_string();
    ws.send(WsMessage::Text(hello.into())).await.unwrap();
    ws
}

/// Reads frames until one satisfies `pred`, within `within`.
async fn wait_for(ws: &mut Ws, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "condition not met in {within:?}");
        let v = next_frame(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

fn names(v: &Value) -> Vec<&str> {
    v["names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_and_typing_cross_instances_and_expire_with_a_crash() {
    let db = TestDb::postgres().await;
    let env = [("PRESENCE_TTL_SECS", "3")];
    let mut a = Instance::start(db.url(), &env).await;
    let b = Instance::start(db.url(), &env).await;
    let mut alice = join(&a, "alice").await;
    let mut bob = join(&b, "bob").await;
    let both = |v: &Value| v["type"] == "presence" && names(v) == ["alice", "bob"];
    wait_for(&mut bob, Duration::from_secs(5), both).await;
    wait_for(&mut alice, Duration::from_secs(5), both).await;

    // Typing on A shows on B.
    alice
        .send(WsMessage::Text(
            json!({"type": "typing", "room": "meet"}).to_string().into(),
        ))
        .await
        .unwrap();
    let typing = wait_for(&mut bob, Duration::from_secs(5), |v| v["type"] == "typing").await;
    assert_eq!(typing["name"], "alice");

    // A crashes: its users disappear from B's view within the TTL.
    a.kill().await;
    let crashed = Instant::now();
    wait_for(&mut bob, Duration::from_secs(10), |v| {
        v["type"] == "presence" && names(v) == ["bob"]
    })
    .await;
    let gone = crashed.elapsed();
    eprintln!("crashed instance's users gone after {gone:?} (TTL 3 s)");
    assert!(gone <= Duration::from_secs(5), "{gone:?}");
}
