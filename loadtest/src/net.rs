//! HTTP and WebSocket plumbing shared by the modes: posting, error texts
//! that name HTTP statuses and close codes, and the rate-limit notice.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite;

use crate::stats::Rng;

/// Set when the server answered 429 or closed a socket with 1008.
static RATE_LIMITED: AtomicBool = AtomicBool::new(false);

pub const CLOSE_POLICY: u16 = 1008;

/// One keep-alive pool of at most `pool` idle connections per host.
pub fn http_client(pool: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// `ws://host/ws?room=<room>[&after=<seq>]` for a base `http://host`.
pub fn ws_url(base: &str, room: &str, after: Option<i64>) -> String {
    let host = base.trim_start_matches("http://");
    match after {
        Some(a) => format!("ws://{host}/ws?room={room}&after={a}"),
        None => format!("ws://{host}/ws?room={room}"),
    }
}

/// `HTTP 503 Service Unavailable (…)`, noting what the usual refusals mean.
pub fn status_text(status: reqwest::StatusCode) -> String {
    let code = status.as_u16();
    let hint = match code {
        429 => {
            RATE_LIMITED.store(true, Ordering::Relaxed);
            " (rate limited)"
        }
        503 => " (database pool timeout, MAX_CONNECTIONS reached, or shutting down)",
        _ => "",
    };
    format!("HTTP {status}{hint}")
}

/// A WebSocket connect error; a refused upgrade names its HTTP status.
pub fn ws_error(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => {
            format!("upgrade refused: {}", status_text(resp.status()))
        }
        other => format!("connect: {other}"),
    }
}

/// Why the server closed a socket: `close 1013 (try again) reason`.
pub fn close_text(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    let Some(f) = frame else {
        return "server closed the socket (no close code)".into();
    };
    let code = u16::from(f.code);
    let meaning = match code {
        1000 => "normal",
        1001 => "going away: server shutting down",
        CLOSE_POLICY => {
            RATE_LIMITED.store(true, Ordering::Relaxed);
            "policy violation: rate limited?"
        }
        1011 => "server error",
        1013 => "try again: too far behind or database unavailable",
        _ => "",
    };
    let mut s = format!("server closed the socket: close {code}");
    if !meaning.is_empty() {
        s += &format!(" ({meaning})");
    }
    if !f.reason.is_empty() {
        s += &format!(" {}", f.reason);
    }
    s
}

/// Printed at the end of every mode when the server rate-limited the run.
pub fn rate_limit_notice() {
    if RATE_LIMITED.load(Ordering::Relaxed) {
        println!(
            "NOTE        the server rate-limited this run (HTTP 429 and/or WebSocket close 1008): \
             these numbers measure its limits, not its capacity. Benchmark a server started with \
             its rate limits off: RATE_POSTS_PER_IP=0 RATE_POSTS_PER_SENDER=0 \
             RATE_WS_CONNECTS_PER_IP=0 (this tool posts from one IP, all as sender \
             \"loadtest\"; see README.md, Security, and `chat --help`)."
        );
    }
}

#[derive(Serialize)]
struct PostBody<'a> {
    sender: &'a str,
    content: &'a str,
    id: &'a str,
    room: &'a str,
}

/// What a successful post answers (the stored message; the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Ack {
    pub seq: i64,
}

/// `POST <base>/api/messages`; errors name the status or the failure.
pub async fn post_message(
    http: &reqwest::Client,
    base: &str,
    room: &str,
    content: &str,
    id: &str,
) -> Result<Ack, String> {
    post_message_as(http, base, "loadtest", room, content, id, None).await
}

/// [`post_message`] as `sender`, with `X-Forwarded-For: <from>` when given
/// (the tool playing the load balancer in front of a server with
/// `TRUSTED_PROXY_HOPS=1`).
pub async fn post_message_as(
    http: &reqwest::Client,
    base: &str,
    sender: &str,
    room: &str,
    content: &str,
    id: &str,
    from: Option<std::net::IpAddr>,
) -> Result<Ack, String> {
    let body = serde_json::to_vec(&PostBody {
        sender,
        content,
        id,
        room,
    })
    .expect("serialisable");
    let mut request = http
        .post(format!("{base}/api/messages"))
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(ip) = from {
        request = request.header("x-forwarded-for", ip.to_string());
    }
    let result = request.body(body).send().await;
    match result {
        Ok(resp) if resp.status().is_success() => resp
            .json::<Ack>()
            .await
            .map_err(|e| format!("bad 2xx body: {e}")),
        Ok(resp) => Err(status_text(resp.status())),
        Err(e) => Err(request_error(&e)),
    }
}

/// A reqwest error in a few words.
pub fn request_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect failed".into()
    } else {
        // The innermost cause says what happened ("connection closed before
        // message completed", …); reqwest's own text only names the URL.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let hint = if cause
            .to_string()
            .contains("connection closed before message completed")
        {
            " (the server dropped the connection mid-request: a panic in its handler? see its log)"
        } else {
            ""
        };
        format!("request failed: {cause}{hint}")
    }
}

/// Posts `n` messages `<prefix> <i>` to `room` with at most `concurrency`
/// in flight; returns the acks in seq order and the errors.
pub async fn post_many(
    http: &reqwest::Client,
    base: &str,
    room: &str,
    n: usize,
    concurrency: usize,
    prefix: &str,
    rng: &mut Rng,
) -> (Vec<Ack>, Vec<String>) {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("never closed");
        let (http, base, room) = (http.clone(), base.to_owned(), room.to_owned());
        let (content, id) = (format!("{prefix} {i}"), rng.uuid_v4());
        tasks.push(tokio::spawn(async move {
            let r = post_message(&http, &base, &room, &content, &id).await;
            drop(permit);
            r
        }));
    }
    let mut acks = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(ack)) => acks.push(ack),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("task failed: {e}")),
        }
    }
    acks.sort_by_key(|a| a.seq);
    (acks, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};

    #[test]
    fn texts_name_codes() {
        assert_eq!(
            ws_url("http://h:1", "r", Some(5)),
            "ws://h:1/ws?room=r&after=5"
        );
        assert_eq!(ws_url("http://h:1", "r", None), "ws://h:1/ws?room=r");
        assert!(status_text(reqwest::StatusCode::SERVICE_UNAVAILABLE).contains("503"));
        let f = CloseFrame {
            code: CloseCode::Again,
            reason: "behind".into(),
        };
        assert_eq!(
            close_text(Some(&f)),
            "server closed the socket: close 1013 (try again: too far behind or database unavailable) behind"
        );
        let f = CloseFrame {
            code: CloseCode::Policy,
            reason: "".into(),
        };
        assert!(close_text(Some(&f)).contains("close 1008"));
        assert!(RATE_LIMITED.load(Ordering::Relaxed));
        assert!(status_text(reqwest::StatusCode::TOO_MANY_REQUESTS)
            .contains("429 Too Many Requests (rate limited)"));
    }
}
