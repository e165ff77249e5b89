//! The WebSocket client: connect, apply frames, reconnect with exponential
//! backoff and jitter, always resuming from the last seq the page holds, so
//! every message shows exactly once and in order.

use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};
use leptos::prelude::*;

use crate::{
    domain::ServerFrame,
    ui::{ChatState, ConnState},
};

const BASE_DELAY_MS: f64 = 500.0;
const MAX_DELAY_MS: f64 = 15_000.0;

pub fn start(state: ChatState) {
    leptos::task::spawn_local(async move {
        let mut failures: u32 = 0;
        loop {
            state.conn.set(if failures == 0 {
                ConnState::Connecting
            } else {
                ConnState::Reconnecting
            });
            if run_once(state).await {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            state.conn.set(ConnState::Reconnecting);
            gloo_timers::future::sleep(backoff(failures)).await;
        }
    });
}

/// One connection's life. Returns whether it got as far as `ready` (then the
/// backoff starts again from the bottom).
async fn run_once(state: ChatState) -> bool {
    let Some(url) = url(state) else { return false };
    let Ok(ws) = WebSocket::open(&url) else {
        return false;
    };
    // Keep the sink half alive: dropping both halves closes the socket.
    let (_sink, mut stream) = ws.split();
    let mut was_ready = false;
    while let Some(frame) = stream.next().await {
        let Ok(WsMessage::Text(text)) = frame else {
            if frame.is_err() {
                break;
            }
            continue;
        };
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Message(message)) => state.confirm(message),
            Ok(ServerFrame::Ready { .. }) => {
                was_ready = true;
                state.conn.set(ConnState::Live);
            }
            Err(e) => leptos::logging::warn!("ignoring unknown frame: {e}"),
        }
    }
    was_ready
}

fn url(state: ChatState) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().ok()?;
    let room = state.room.get_value();
    Some(format!(
        "{scheme}://{host}/ws?room={room}&after={}",
        state.last_seq()
    ))
}

/// 0.5 s, 1 s, 2 s … capped at 15 s, each times a random factor in [0.5, 1.5)
/// so a restarted server is not hit by every client at the same instant.
fn backoff(failures: u32) -> std::time::Duration {
    let exp = BASE_DELAY_MS * 2f64.powi(failures.saturating_sub(1).min(10) as i32);
    let jitter = 0.5 + js_sys::Math::random();
    std::time::Duration::from_millis((exp.min(MAX_DELAY_MS) * jitter) as u64)
}
