//! The page's WebSocket, kept open: on any drop it reconnects with
//! exponential backoff and jitter. What to open it with and what the frames
//! mean belong to the caller (a [`Handler`]); this file knows only the
//! socket, the wire encoding and the timing.

pub use super::Handler;

#[cfg(feature = "hydrate")]
pub use imp::run;

/// On the server there is no socket to keep.
#[cfg(not(feature = "hydrate"))]
pub fn run(handler: impl Handler) {
    let _ = handler;
}

#[cfg(feature = "hydrate")]
mod imp {
    use futures::channel::mpsc::{self, UnboundedSender};
    use futures::{FutureExt, SinkExt, StreamExt};
    use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};

    use super::Handler;
    use crate::domain::{ClientFrame, ServerFrame};

    const BASE_DELAY_MS: f64 = 500.0;
    const MAX_DELAY_MS: f64 = 15_000.0;
    /// Longest wait for the browser to take a frame.
    const SEND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn run(handler: impl Handler) {
        leptos::task::spawn_local(async move {
            let mut failures: u32 = 0;
            loop {
                handler.connecting(failures > 0);
                if run_once(&handler).await {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                handler.closed();
                gloo_timers::future::sleep(backoff(failures)).await;
            }
        });
    }

    /// One connection's life. Returns whether it got as far as a `ready` frame
    /// (then the backoff starts again from the bottom).
    async fn run_once(handler: &impl Handler) -> bool {
        let Some(url) = url(&handler.query().to_query_string()) else {
            return false;
        };
        let Ok(ws) = WebSocket::open(&url) else {
            return false;
        };
        let (mut sink, mut stream) = ws.split();
        let (tx, mut outbox): (UnboundedSender<ClientFrame>, _) = mpsc::unbounded();
        handler.opened(tx);
        let mut was_ready = false;
        loop {
            futures::select! {
                frame = stream.next().fuse() => match frame {
                    Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(frame) => {
                            was_ready |= matches!(frame, ServerFrame::Ready { .. });
                            handler.frame(frame);
                        }
                        Err(e) => leptos::logging::warn!("ignoring unknown frame: {e}"),
                    },
                    Some(Ok(WsMessage::Bytes(_))) => {}
                    Some(Err(_)) | None => break,
                },
                out = outbox.next() => match out {
                    Some(frame) => {
                        let text = serde_json::to_string(&frame).expect("serialises");
                        // A socket closed before it opened (a network drop
                        // while connecting) never becomes ready to send, and
                        // its close is not seen while we wait here: give up
                        // on it after a while and connect again.
                        let send = sink.send(WsMessage::Text(text));
                        let deadline = gloo_timers::future::sleep(SEND_DEADLINE);
                        match futures::future::select(send, Box::pin(deadline)).await {
                            futures::future::Either::Left((Ok(()), _)) => {}
                            _ => break,
                        }
                    }
                    None => break,
                },
            }
        }
        was_ready
    }

    fn url(query: &str) -> Option<String> {
        let location = web_sys::window()?.location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        let host = location.host().ok()?;
        Some(format!("{scheme}://{host}/ws?{query}"))
    }

    /// 0.5 s, 1 s, 2 s … capped at 15 s, each times a random factor in [0.5, 1.5)
    /// so a restarted server is not hit by every client at the same instant.
    fn backoff(failures: u32) -> std::time::Duration {
        let exp = BASE_DELAY_MS * 2f64.powi(failures.saturating_sub(1).min(10) as i32);
        let jitter = 0.5 + js_sys::Math::random();
        std::time::Duration::from_millis((exp.min(MAX_DELAY_MS) * jitter) as u64)
    }
}
