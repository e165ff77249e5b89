use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// One server process.
pub struct Instance {
    /// `None` for a handle to a process owned by another `Instance`.
    child: Option<Child>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// Everything the process wrote to stdout (its logs).
    pub logs: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Instance {
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("DATABASE_URL", database_url)
            .env("BROADCAST_MIN_SECS", "0")
            // Tests post and connect fast from one address.
            .env("RATE_POSTS_PER_IP", "0")
            .env("RATE_POSTS_PER_SENDER", "0")
            .env("RATE_WS_CONNECTS_PER_IP", "0")
            .env("RUST_LOG", "warn")
            .env("LEPTOS_SITE_ROOT", std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("server binary starts");
        let logs: Arc<Mutex<String>> = Arc::default();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let sink = logs.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let instance = Self {
            child: Some(child),
            addr,
            http,
            logs,
        };
        instance.wait_healthy().await;
        instance
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    pub async fn wait_healthy(&self) {
        for _ in 0..300 {
            if let Ok(r) = self.http.get(self.url("/health")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("instance on {} never became healthy", self.addr);
    }

    /// A second handle to a running instance (does not own the process).
    pub fn attach(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        Self {
            child: None,
            addr,
            http,
            logs: Arc::default(),
        }
    }

    /// SIGTERM, as an orchestrator sends before stopping a container.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited with 0.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let child = self.child.as_mut().expect("owns the process");
        let status = tokio::time::timeout(within, child.wait())
            .await
            .expect("exited in time")
            .unwrap();
        status.success()
    }

    /// SIGKILL: no graceful anything.
    pub async fn kill(&mut self) {
        let child = self.child.as_mut().expect("owns the process");
        child.kill().await.expect("kill -9");
    }

    /// A metric's value (summing all label sets that match `filter`).
    pub async fn metric(&self, name: &str, filter: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split([' ', '{']).next() == Some(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn post(
        &self,
        room: &str,
        sender: &str,
        content: &str,
        id: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(self.url("/api/messages"))
            .json(
                &serde_json::json!({"room": room, "sender": sender, "content": content, "id": id}),
            )
            .send()
            .await
    }
}

/// All of a room's messages, via the API of `instance`.
pub async fn all_messages(instance: &Instance, room: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = instance
            .http
            .get(instance.url(&format!(
                "/api/messages?room={room}&after={after}&limit=200"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = page["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        after = page.last().unwrap()["seq"].as_i64().unwrap();
        out.extend(page);
    }
}

/// A WebSocket client that, like the page, reconnects on any drop (trying
/// the addresses in turn, as a load balancer would) and resumes from its
/// last seq. Collects every seq it receives.
pub struct Client {
    pub seqs: Arc<Mutex<Vec<i64>>>,
    /// Close codes the server sent this client.
    pub closes: Arc<Mutex<Vec<u16>>>,
    task: JoinHandle<()>,
}

impl Client {
    pub async fn start(urls: Vec<String>, room: &str) -> Self {
        let seqs = Arc::new(Mutex::new(Vec::new()));
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(client_loop(
            urls,
            room.to_owned(),
            seqs.clone(),
            closes.clone(),
            ready_tx,
        ));
        ready_rx.await.expect("client got ready");
        Self { seqs, closes, task }
    }

    pub fn last(&self) -> i64 {
        self.seqs.lock().unwrap().last().copied().unwrap_or(0)
    }

    /// Waits until the client has seen `head`, then returns its seqs.
    pub async fn until(&self, head: i64, within: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + within;
        while self.last() < head {
            assert!(
                tokio::time::Instant::now() < deadline,
                "client stuck at {} < {head}",
                self.last()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seqs.lock().unwrap().clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn client_loop(
    urls: Vec<String>,
    room: String,
    seqs: Arc<Mutex<Vec<i64>>>,
    closes: Arc<Mutex<Vec<u16>>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut attempt = 0usize;
    loop {
        let after = seqs.lock().unwrap().last().copied().unwrap_or(0);
        let url = format!("{}?room={room}&after={after}", urls[attempt % urls.len()]);
        attempt += 1;
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                WsMessage::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "message" {
                        seqs.lock().unwrap().push(v["seq"].as_i64().unwrap());
                    } else if v["type"] == "ready" {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                }
                WsMessage::Ping(p) => {
                    let _ = ws.send(WsMessage::Pong(p)).await;
                }
                WsMessage::Close(frame) => {
                    if let Some(f) = frame {
                        closes.lock().unwrap().push(u16::from(f.code));
                    }
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Asserts `seqs` is exactly 1..=n.
pub fn assert_gapless(seqs: &[i64], n: i64, who: &str) {
    let expected: Vec<i64> = (1..=n).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "{who}: sequence must be 1..={n}, each once, in order"
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut, as a database
/// restart or network failure would.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(handle);
            }
        });
        Self { port, up, conns }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db?q` -> ("host:port", url with the proxy's address).
pub fn via_proxy(url: &str, proxy_port: u16) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_once('/')?;
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if hostport.starts_with('%') || hostport.is_empty() {
        return None; // a Unix socket: no TCP to proxy
    }
    let target = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Some((
        target,
        format!("{scheme}://{user}127.0.0.1:{proxy_port}/{path}"),
    ))
}
