//! Recent answers to the reads every room page makes that do not depend on
//! who is looking: the room list and the latest announcements. A page asks
//! the database five times (its room's messages and their reactions, the
//! announcements and theirs, the room list); on SQLite each question is a
//! hand-off to the database's thread and back, and those switches were the
//! largest single cost of a page. With these two kept, a page asks twice,
//! like the JSON API.
//!
//! An answer is kept until a commit reaches this instance (the hub counts
//! them: `Hub::changes`; the caller passes the count in) and never
//! longer than [`MAX_AGE`], so it is never older than what the page's own
//! socket would catch up on anyway: the page subscribes after the last
//! announcement it holds, and the room list refreshes itself.

use std::{
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The longest an answer is kept, even with no commit seen (a commit made on
/// another instance while this one's feed was down is only seen later).
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// One kept answer, for one key.
pub struct Kept<K, T> {
    slot: Mutex<Option<Entry<K, T>>>,
}

struct Entry<K, T> {
    key: K,
    changes: u64,
    at: Instant,
    value: T,
}

impl<K: PartialEq, T: Clone> Default for Kept<K, T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }
}

impl<K: PartialEq, T: Clone> Kept<K, T> {
    /// The kept answer for `key` if no commit came since it was read
    /// (`changes` is the hub's count now) and it is younger than
    /// [`MAX_AGE`]; otherwise `load`'s answer, kept for next time. The
    /// count is the one from *before* the read, so a commit landing while
    /// it runs makes the answer stale at once.
    pub async fn get<E, F>(&self, key: K, changes: u64, load: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.fresh(&key, changes, Instant::now()) {
            return Ok(value);
        }
        let value = load.await?;
        *crate::sync::lock(&self.slot) = Some(Entry {
            key,
            changes,
            at: Instant::now(),
            value: value.clone(),
        });
        Ok(value)
    }

    fn fresh(&self, key: &K, changes: u64, now: Instant) -> Option<T> {
        let slot = crate::sync::lock(&self.slot);
        let entry = slot.as_ref()?;
        (entry.key == *key && entry.changes == changes && now - entry.at < MAX_AGE)
            .then(|| entry.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A load that counts how often it ran and answers with that count.
    async fn load(runs: &AtomicUsize) -> Result<usize, ()> {
        Ok(runs.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn kept_until_a_commit_or_another_key() {
        let kept = Kept::<u32, usize>::default();
        let runs = AtomicUsize::new(0);
        assert_eq!(kept.get(50, 7, load(&runs)).await, Ok(1));
        assert_eq!(kept.get(50, 7, load(&runs)).await, Ok(1), "kept");
        assert_eq!(kept.get(50, 8, load(&runs)).await, Ok(2), "a commit came");
        assert_eq!(kept.get(50, 8, load(&runs)).await, Ok(2));
        assert_eq!(kept.get(10, 8, load(&runs)).await, Ok(3), "another key");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_are_not_kept() {
        let kept = Kept::<(), usize>::default();
        assert_eq!(
            kept.get((), 1, async { Err::<usize, _>("down") }).await,
            Err("down")
        );
        assert_eq!(kept.get((), 1, async { Ok::<_, &str>(5) }).await, Ok(5));
    }

    #[tokio::test]
    async fn never_older_than_max_age() {
        let kept = Kept::<(), usize>::default();
        let runs = AtomicUsize::new(0);
        assert_eq!(kept.get((), 1, load(&runs)).await, Ok(1));
        let now = Instant::now();
        assert_eq!(kept.fresh(&(), 1, now), Some(1));
        assert_eq!(kept.fresh(&(), 1, now + MAX_AGE), None);
    }
}
