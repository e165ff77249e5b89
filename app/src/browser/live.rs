//! The page's WebSocket: one connection follows the announcements room and
//! the room on screen (switching rooms re-subscribes on the same socket).
//! On any drop it reconnects with exponential backoff and jitter and resumes
//! every followed room from the last seq the page holds, so every message
//! shows exactly once and in order.

use futures::{channel::mpsc, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};
use leptos::prelude::*;

use crate::{
    domain::{ClientFrame, ServerFrame, ANNOUNCEMENTS},
    ui::{ConnState, Live},
};

const BASE_DELAY_MS: f64 = 500.0;
const MAX_DELAY_MS: f64 = 15_000.0;

pub fn start(live: Live) {
    leptos::task::spawn_local(async move {
        let mut failures: u32 = 0;
        loop {
            live.conn.set(if failures == 0 {
                ConnState::Connecting
            } else {
                ConnState::Reconnecting
            });
            if run_once(live).await {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            live.conn.set(ConnState::Reconnecting);
            if let Some((feed, _)) = live.current_room() {
                feed.ready.set(false);
            }

            gloo_timers::future::sleep(backoff(failures)).await;
        }
    });
}

/// One connection's life. Returns whether it got as far as `ready` (then the
/// backoff starts again from the bottom).
async fn run_once(live: Live) -> bool {
    let Some(url) = url(live.last_announcement()) else {
        return false;
    };
    let Ok(ws) = WebSocket::open(&url) else {
        return false;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut outbox) = mpsc::unbounded::<ClientFrame>();
    // Who we are, and the room on screen (resuming after what we have).
    let _ = tx.unbounded_send(ClientFrame::Hello {
        name: live.me.get_untracked(),
    });
    if let Some((feed, room)) = live.current_room() {
        let _ = tx.unbounded_send(ClientFrame::Subscribe {
            room,
            after: Some(feed.last_seq()),
        });
    }
    live.outbox.set_value(Some(tx));
    let mut was_ready = false;
    loop {
        futures::select! {
            frame = stream.next().fuse() => match frame {
                Some(Ok(WsMessage::Text(text))) => dispatch(live, &text, &mut was_ready),
                Some(Ok(WsMessage::Bytes(_))) => {}
                Some(Err(_)) | None => break,
            },
            out = outbox.next() => match out {
                Some(frame) => {
                    let text = serde_json::to_string(&frame).expect("serialises");
                    if sink.send(WsMessage::Text(text)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    live.outbox.set_value(None);
    was_ready
}

fn dispatch(live: Live, text: &str, was_ready: &mut bool) {
    let frame = match serde_json::from_str::<ServerFrame>(text) {
        Ok(f) => f,
        Err(e) => {
            leptos::logging::warn!("ignoring unknown frame: {e}");
            return;
        }
    };
    match frame {
        ServerFrame::Message(m) if m.room == ANNOUNCEMENTS => live.add_announcement(m),
        ServerFrame::Message(m) => {
            if let Some(feed) = live.feed(&m.room) {
                let at_bottom = feed.at_bottom.try_get_untracked().unwrap_or(true);
                let away = live.hidden.get_untracked() || !at_bottom;

                feed.confirm(m, &live.me.get_untracked(), away);
            }
        }
        ServerFrame::Ready { room, .. } => {
            *was_ready = true;
            live.conn.set(ConnState::Live);
            if let Some(feed) = live.feed(&room) {
                feed.ready.set(true);
            }
        }
        ServerFrame::Presence { room, names, count } => {
            if let Some(feed) = live.feed(&room) {
                feed.presence.set((names, count));
            }
        }
        ServerFrame::Typing { room, name } => {
            if let (Some(feed), Some((now, _))) = (live.feed(&room), super::clock()) {
                if name != live.me.get_untracked().trim() {
                    feed.typing_seen(name, now);
                }
            }
        }
        ServerFrame::Error { error } => leptos::logging::warn!("server refused a frame: {error}"),
    }
}

fn url(after: i64) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().ok()?;
    Some(format!(
        "{scheme}://{host}/ws?room={ANNOUNCEMENTS}&after={after}"
    ))
}

/// 0.5 s, 1 s, 2 s … capped at 15 s, each times a random factor in [0.5, 1.5)
/// so a restarted server is not hit by every client at the same instant.
fn backoff(failures: u32) -> std::time::Duration {
    let exp = BASE_DELAY_MS * 2f64.powi(failures.saturating_sub(1).min(10) as i32);
    let jitter = 0.5 + js_sys::Math::random();
    std::time::Duration::from_millis((exp.min(MAX_DELAY_MS) * jitter) as u64)
}
