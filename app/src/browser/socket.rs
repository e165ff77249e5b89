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
    use futures::{FutureExt, StreamExt};
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{MessageEvent, WebSocket};

    use super::Handler;
    use crate::domain::{ClientFrame, ServerFrame};

    const BASE_DELAY_MS: f64 = 500.0;
    const MAX_DELAY_MS: f64 = 15_000.0;
    /// Longest wait for a socket to open. A connection that neither opens
    /// nor fails (a network gone while connecting) is given up on.
    const OPEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

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

    /// What the browser tells about the socket.
    enum Event {
        Open,
        Text(String),
        Gone,
    }

    /// The browser's `WebSocket`, its events turned into a stream; closed
    /// (and its callbacks released) when dropped.
    struct Socket {
        ws: WebSocket,
        _callbacks: [Closure<dyn FnMut(MessageEvent)>; 4],
    }

    impl Socket {
        fn open(url: &str) -> Option<(Self, mpsc::UnboundedReceiver<Event>)> {
            let ws = WebSocket::new(url).ok()?;
            let (tx, events) = mpsc::unbounded();
            let on = |event: fn(MessageEvent) -> Option<Event>| {
                let tx = tx.clone();
                Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                    if let Some(event) = event(e) {
                        let _ = tx.unbounded_send(event);
                    }
                })
            };
            // A binary frame is not for us: `as_string` is None for it.
            let callbacks = [
                on(|_| Some(Event::Open)),
                on(|e| e.data().as_string().map(Event::Text)),
                on(|_| Some(Event::Gone)),
                on(|_| Some(Event::Gone)),
            ];
            ws.set_onopen(Some(callbacks[0].as_ref().unchecked_ref()));
            ws.set_onmessage(Some(callbacks[1].as_ref().unchecked_ref()));
            ws.set_onclose(Some(callbacks[2].as_ref().unchecked_ref()));
            ws.set_onerror(Some(callbacks[3].as_ref().unchecked_ref()));
            Some((
                Self {
                    ws,
                    _callbacks: callbacks,
                },
                events,
            ))
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            self.ws.set_onopen(None);
            self.ws.set_onmessage(None);
            self.ws.set_onclose(None);
            self.ws.set_onerror(None);
            let _ = self.ws.close();
        }
    }

    /// One connection's life. Returns whether it got as far as a `ready` frame
    /// (then the backoff starts again from the bottom).
    async fn run_once(handler: &impl Handler) -> bool {
        let Some(url) = url(&handler.query().to_query_string()) else {
            return false;
        };
        let Some((socket, mut events)) = Socket::open(&url) else {
            return false;
        };
        let (tx, mut outbox): (UnboundedSender<ClientFrame>, _) = mpsc::unbounded();
        handler.opened(tx);
        // Frames asked for before the socket opened wait for it.
        let mut waiting: Option<Vec<String>> = Some(Vec::new());
        let mut deadline = gloo_timers::future::sleep(OPEN_DEADLINE).fuse();
        let mut was_ready = false;
        loop {
            futures::select! {
                event = events.next() => match event {
                    Some(Event::Open) => {
                        for text in waiting.take().unwrap_or_default() {
                            if socket.ws.send_with_str(&text).is_err() {
                                return was_ready;
                            }
                        }
                    }
                    Some(Event::Text(text)) => match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(frame) => {
                            was_ready |= matches!(frame, ServerFrame::Ready { .. });
                            handler.frame(frame);
                        }
                        Err(e) => leptos::logging::warn!("ignoring unknown frame: {e}"),
                    },
                    Some(Event::Gone) | None => break,
                },
                out = outbox.next() => match out {
                    Some(frame) => {
                        let text = serde_json::to_string(&frame).expect("serialises");
                        match waiting.as_mut() {
                            Some(waiting) => waiting.push(text),
                            None => {
                                if socket.ws.send_with_str(&text).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    None => break,
                },
                () = deadline => if waiting.is_some() {
                    break;
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
