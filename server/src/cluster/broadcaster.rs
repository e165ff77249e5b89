//! The random broadcaster: every uniformly random interval in
//! `[min, max]` it posts a message of kind `broadcast` from "server", through
//! the same path as people's messages (stored, then fanned out by the
//! commit feed).

use std::{sync::Arc, time::Duration};

use app::domain::{MessageBody, MessageKind, RoomId, SenderName};
use rand::Rng;
use uuid::Uuid;

use crate::{
    service,
    store::{NewMessage, Store},
};

const LINES: &[&str] = &[
    "Welcome! Be kind, and have fun.",
    "Tip: Shift+Enter starts a new line.",
    "Reminder: stretch, drink some water.",
    "Did you know? Messages are kept in order, even across reconnects.",
    "こんにちは！ようこそ。",
    "Fun fact: octopuses have three hearts. 🐙",
    "Server check-in: all systems nominal.",
    "Tip: your name is remembered in this browser.",
    "☕ Coffee break, anyone?",
    "Hello from the server! 👋",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub min: Duration,
    pub max: Duration,
}

impl Interval {
    /// `None` when broadcasting is disabled (either bound is zero).
    pub fn new(min: Duration, max: Duration) -> Option<Self> {
        if min.is_zero() || max.is_zero() {
            None
        } else {
            Some(Self {
                min: min.min(max),
                max: max.max(min),
            })
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> Duration {
        if self.min == self.max {
            self.min
        } else {
            rng.gen_range(self.min..=self.max)
        }
    }
}

/// Runs forever: sleep a random interval, post a broadcast to `room`.
pub async fn run(store: Arc<dyn Store>, room: RoomId, interval: Interval) {
    loop {
        let wait = interval.sample(&mut rand::thread_rng());
        tokio::time::sleep(wait).await;
        let line = LINES[rand::thread_rng().gen_range(0..LINES.len())];
        let new = NewMessage {
            room: room.clone(),
            id: Uuid::new_v4(),
            kind: MessageKind::Broadcast,
            sender: SenderName::server(),
            author: None,
            content: MessageBody::parse(line).expect("valid line"),
        };
        if let Err(e) = service::insert(store.clone(), new).await {
            tracing::warn!(error = %e, "broadcast not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_disabled_by_zero_and_samples_within_bounds() {
        assert!(Interval::new(Duration::ZERO, Duration::from_secs(5)).is_none());
        assert!(Interval::new(Duration::from_secs(5), Duration::ZERO).is_none());
        let i = Interval::new(Duration::from_secs(5), Duration::from_secs(20)).unwrap();
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let d = i.sample(&mut rng);
            assert!(d >= i.min && d <= i.max, "{d:?}");
        }
        assert!(LINES.iter().all(|l| MessageBody::parse(l).is_ok()));
    }
}
