//! Hostile input against the real binary: every case gets a clear refusal
//! or is stored and shown verbatim as text, and in every case a
//! well-behaved client on the side keeps posting and receives everything.
//!
//! The test plays the load balancer (`TRUSTED_PROXY_HOPS=1`), so the
//! attacker and the bystander have addresses of their own.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../cluster/support.rs"]
#[allow(dead_code)]
mod support;

mod cases;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use helpers::TestDb;
use support::{assert_gapless, Client, Instance};
use tokio::task::JoinHandle;

pub const ATTACKER: &str = "203.0.113.66";
pub const BYSTANDER: &str = "198.51.100.7";

/// A real instance on a fresh SQLite file, with the production limits (the
/// harness turns them off by default) unless `env` says otherwise.
pub async fn instance(env: &[(&str, &str)]) -> (Instance, TestDb) {
    let db = TestDb::sqlite().await;
    let mut all = vec![
        ("TRUSTED_PROXY_HOPS", "1"),
        ("RATE_POSTS_PER_IP", "60/10s"),
        ("RATE_POSTS_PER_SENDER", "30/10s"),
        ("RATE_WS_CONNECTS_PER_IP", "60/1m"),
    ];
    all.extend_from_slice(env);
    (Instance::start(db.url(), &all).await, db)
}

/// Someone using the chat normally while the attack goes on: posts a
/// message every 50 ms and follows the room on a WebSocket.
pub struct Bystander {
    stop: Arc<AtomicBool>,
    posts: JoinHandle<(i64, Vec<String>, Vec<Duration>)>,
    client: Client,
}

impl Bystander {
    pub async fn start(instance: &Instance) -> Self {
        let client = Client::start(vec![instance.ws_url("")], "calm").await;
        let stop = Arc::new(AtomicBool::new(false));
        let http = instance.http.clone();
        let url = instance.url("/api/messages");
        let flag = stop.clone();
        let posts = tokio::spawn(async move {
            let (mut posted, mut failures, mut latencies) = (0i64, Vec::new(), Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let res = http
                    .post(&url)
                    .header("x-forwarded-for", BYSTANDER)
                    .json(&serde_json::json!({"room": "calm", "sender": "bystander", "content": format!("calm {posted}")}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        posted += 1;
                        latencies.push(started.elapsed());
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (posted, failures, latencies)
        });
        Self {
            stop,
            posts,
            client,
        }
    }

    /// Stops, and checks every post was accepted and every message arrived
    /// once and in order, without the socket ever being closed.
    pub async fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let (posted, failures, latencies) = self.posts.await.unwrap();
        assert!(
            failures.is_empty(),
            "the bystander's posts failed: {failures:?}"
        );
        assert!(posted > 0, "the bystander posted");
        let seqs = self.client.until(posted, Duration::from_secs(10)).await;
        assert_gapless(&seqs, posted, "bystander");
        assert!(
            self.client.closes.lock().unwrap().is_empty(),
            "the bystander's socket was never closed"
        );
        latencies
    }
}
