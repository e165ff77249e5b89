//! One WebSocket client: connect, wait for `ready`, then only read.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde::Deserialize;
use tokio::{
    net::TcpStream,
    sync::{watch, OwnedSemaphorePermit},
};
use tokio_tungstenite::{
    connect_async_with_config,
    tungstenite::{protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::{net, stats::ClientStats};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connect + handshake + `ready` must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by every task of a run.
pub struct Shared {
    /// Time zero for every timestamp (message content and receipts).
    pub epoch: Instant,
    /// `ws://…/ws?room=…` of each instance; client `i` uses `ws_urls[i % len]`.
    pub ws_urls: Vec<String>,
    pub room: String,
    /// Marker in every message this run posts: `lt:<tag>:<send µs>:<n>`.
    pub tag: String,
    /// Highest seq each client has received (`i64::MAX` once it has died).
    pub last: Vec<AtomicI64>,
    pub ready: AtomicUsize,
    pub failed: AtomicUsize,
    /// Clients whose socket ended before the tool closed it.
    pub dropped: AtomicUsize,
}

impl Shared {
    /// The instance client `idx` connects to.
    pub fn instance(&self, idx: usize) -> usize {
        idx % self.ws_urls.len()
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Send time (µs since `epoch`) from a message this run posted.
    fn sent_us(&self, content: &str) -> Option<u64> {
        let rest = content.strip_prefix("lt:")?;
        let rest = rest.strip_prefix(self.tag.as_str())?.strip_prefix(':')?;
        rest.split(':').next()?.parse().ok()
    }
}

/// A server frame (the fields the tool reads).
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default)]
    pub seq: i64,
    #[serde(default)]
    pub head: i64,
    /// `more` frames: where the replayed page ended.
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default, borrow)]
    pub room: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
}

/// Small buffers: thousands of mostly idle sockets, frames of a few hundred bytes.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a socket to the room and reads until its `ready`; returns it with `head`.
pub async fn connect_ready(ws_url: &str, room: &str) -> Result<(Ws, i64), String> {
    let mut ws = connect(ws_url).await?;
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| format!("before ready: {e}"))? {
            Message::Text(text) => {
                let frame: Frame = serde_json::from_str(text.as_str())
                    .map_err(|e| format!("bad frame before ready: {e}"))?;
                if frame.ty == "ready" && frame.room.as_deref().is_none_or(|r| r == room) {
                    return Ok((ws, frame.head));
                }
            }
            Message::Close(f) => {
                return Err(format!("before ready: {}", net::close_text(f.as_ref())))
            }
            _ => {}
        }
    }
    Err("connection ended before ready".into())
}

/// One read from a socket: `Ok(Some(text))` for a text frame, `Ok(None)` for
/// any other frame (pings are answered by tungstenite while reading), or why
/// the socket ended.
pub fn text_of(
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<tokio_tungstenite::tungstenite::Utf8Bytes>, String> {
    match msg {
        Some(Ok(Message::Text(text))) => Ok(Some(text)),
        Some(Ok(Message::Close(f))) => Err(net::close_text(f.as_ref())),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("read error: {e}")),
        None => Err("connection ended".into()),
    }
}

/// Opens a socket (no frames read yet); a refused upgrade names its status.
pub async fn connect(ws_url: &str) -> Result<Ws, String> {
    let (ws, _) = connect_async_with_config(ws_url, Some(ws_config()), true)
        .await
        .map_err(net::ws_error)?;
    Ok(ws)
}

/// Like [`connect`], with `X-Forwarded-For: <ip>` on the upgrade request
/// (the tool playing the load balancer, for a server with
/// `TRUSTED_PROXY_HOPS=1`).
pub async fn connect_from(ws_url: &str, ip: std::net::IpAddr) -> Result<Ws, String> {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let mut request = ws_url
        .into_client_request()
        .map_err(|e| format!("bad url {ws_url}: {e}"))?;
    let value = HeaderValue::from_str(&ip.to_string()).expect("an address is a header value");
    request.headers_mut().insert("x-forwarded-for", value);
    let (ws, _) = connect_async_with_config(request, Some(ws_config()), true)
        .await
        .map_err(net::ws_error)?;
    Ok(ws)
}

/// One client for the whole run. Holds `permit` (a connect slot) until ready.
pub async fn run(
    idx: usize,
    sh: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let started = Instant::now();
    let instance = sh.instance(idx);
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect_ready(&sh.ws_urls[instance], &sh.room),
    )
    .await;
    let (mut ws, base) = match connected {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return failed(idx, &sh, e),
        Err(_) => return failed(idx, &sh, "timed out before ready".into()),
    };
    let mut st = ClientStats::new(base);
    st.instance = instance;
    st.connect_us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
    sh.last[idx].store(base, Ordering::Relaxed);
    sh.ready.fetch_add(1, Ordering::Relaxed);
    drop(permit);

    loop {
        tokio::select! {
            biased;
            msg = ws.next() => {
                let now = sh.now_us();
                match text_of(msg) {
                    Ok(Some(text)) => {
                        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                            continue;
                        };
                        if frame.ty != "message" {
                            st.control += 1;
                            continue;
                        }
                        if frame.room.as_deref().is_some_and(|r| r != sh.room) {
                            st.other_room += 1;
                            continue;
                        }
                        let latency = frame
                            .content
                            .as_deref()
                            .and_then(|c| sh.sent_us(c))
                            .map(|sent| now.saturating_sub(sent));
                        st.record(frame.seq, latency);
                        sh.last[idx].store(st.max_seq, Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(why) => {
                        st.error = Some(why);
                        break;
                    }
                }
            }
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return st;
            }
        }
    }
    // Died early: stop the drain wait from waiting for it.
    sh.last[idx].store(i64::MAX, Ordering::Relaxed);
    sh.dropped.fetch_add(1, Ordering::Relaxed);
    st
}

fn failed(idx: usize, sh: &Shared, error: String) -> ClientStats {
    sh.last[idx].store(i64::MAX, Ordering::Relaxed);
    sh.failed.fetch_add(1, Ordering::Relaxed);
    let mut st = ClientStats::failed(error);
    st.instance = sh.instance(idx);
    st
}
