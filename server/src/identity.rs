//! Who is asking: sessions (a random token in an `HttpOnly` cookie, or an
//! API client's bearer token; only its SHA-256 is stored, so a copy of the
//! database opens no sessions), identities from the load balancer's
//! sign-in, held names, moderators and bans.
//!
//! Sessions are looked up on every request, so recently seen ones are kept
//! in a small cache (a minute; names and moderator status changed on this
//! instance update it at once). Bans are kept in memory on every instance,
//! loaded at start and announced to the others, because every post and
//! every socket checks them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use app::api::Session;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use unicode_normalization::UnicodeNormalization;

use crate::store::{SessionRow, Store, StoreError};

/// How long a looked-up session is trusted without asking the database.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Sessions cached at most (then the cache starts afresh).
const CACHE_MAX: usize = 50_000;

/// The key a name is held under: compatibility-normalised (NFKC, so
/// full-width "ａｌｉｃｅ" is "alice") and case-folded.
pub fn name_key(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .nfkc()
        .collect()
}

/// A new random token (256 bits, base64url) and its stored hash.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The SHA-256 (hex) of a token, as stored.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new public author id (random, says nothing about its session).
fn new_author() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Sessions with a short cache in front of the store.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    cache: Arc<Mutex<HashMap<String, (SessionRow, Instant)>>>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// Drops every cached session (the database was restored: some may
    /// be gone, others changed).
    pub fn forget(&self) {
        crate::sync::lock(&self.cache).clear();
    }

    /// The session of a token, if it is one.
    pub async fn resolve(&self, token: &str) -> Result<Option<Session>, StoreError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let hash = token_hash(token);
        if let Some(row) = self.cached(&hash) {
            return Ok(Some(session(&row)));
        }
        let row = self.store.session(&hash).await?;
        if let Some(row) = &row {
            self.remember(hash, row.clone());
        }
        Ok(row.as_ref().map(session))
    }

    /// A new session: its token (for the cookie or the API client) and
    /// what it is.
    pub async fn create(&self) -> Result<(String, Session), StoreError> {
        let (token, hash) = new_token();
        let row = SessionRow {
            author: new_author(),
            name: None,
            subject: None,
            moderator: false,
        };
        let row = self.store.create_session(&hash, &row).await?;
        self.remember(hash, row.clone());
        Ok((token, session(&row)))
    }

    /// The session of a signed-in identity (created on first sight).
    pub async fn for_subject(&self, subject: &str, moderator: bool) -> Result<Session, StoreError> {
        // Keyed like a token, so one lookup path serves both.
        let hash = token_hash(&format!("subject:{subject}"));
        if let Some(row) = self.cached(&hash) {
            return Ok(session(&row));
        }
        let row = match self.store.session(&hash).await? {
            Some(row) => row,
            None => {
                let row = SessionRow {
                    author: new_author(),
                    name: None,
                    subject: Some(subject.to_owned()),
                    moderator,
                };
                self.store.create_session(&hash, &row).await?
            }
        };
        if moderator && !row.moderator {
            self.store.set_moderator(&row.author).await?;
        }
        let row = SessionRow {
            moderator: row.moderator || moderator,
            ..row
        };
        self.remember(hash, row.clone());
        Ok(session(&row))
    }

    /// A session's name or moderator status changed on this instance.
    pub fn updated(&self, author: &str, name: Option<&str>, moderator: Option<bool>) {
        let mut cache = crate::sync::lock(&self.cache);
        for (row, _) in cache.values_mut().filter(|(r, _)| r.author == author) {
            if let Some(name) = name {
                row.name = Some(name.to_owned());
            }
            if let Some(m) = moderator {
                row.moderator = m;
            }
        }
    }

    fn cached(&self, hash: &str) -> Option<SessionRow> {
        let cache = crate::sync::lock(&self.cache);
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(row, _)| row.clone())
    }

    fn remember(&self, hash: String, row: SessionRow) {
        let mut cache = crate::sync::lock(&self.cache);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(hash, (row, Instant::now()));
    }
}

fn session(row: &SessionRow) -> Session {
    Session {
        author: row.author.clone(),
        name: row.name.clone(),
        moderator: row.moderator,
    }
}

/// The banned authors, in memory on every instance. Sockets watch
/// [`Bans::changed`] and close themselves when their author is banned.
#[derive(Clone)]
pub struct Bans {
    set: Arc<RwLock<HashSet<String>>>,
    changed: watch::Sender<u64>,
}

impl Bans {
    pub fn new(banned: impl IntoIterator<Item = String>) -> Self {
        Self {
            set: Arc::new(RwLock::new(banned.into_iter().collect())),
            changed: watch::channel(0).0,
        }
    }

    pub fn contains(&self, author: &str) -> bool {
        crate::sync::read(&self.set).contains(author)
    }

    /// Adds a ban (from this instance or announced by another).
    pub fn add(&self, author: &str) {
        if crate::sync::write(&self.set).insert(author.to_owned()) {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Fires whenever someone is banned.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_after_nfkc_and_case_folding() {
        assert_eq!(name_key("Alice"), "alice");
        assert_eq!(name_key("ａｌｉｃｅ"), "alice");
        assert_eq!(name_key("ＡＬＩＣＥ"), "alice");
        assert_eq!(name_key("Ⅻ"), "xii");
        assert_eq!(name_key("ｶﾀｶﾅ"), "カタカナ");
        assert_ne!(name_key("alice"), name_key("alicia"));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_a, token_hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    #[tokio::test]
    async fn bans_wake_the_watchers() {
        let bans = Bans::new(["x".to_owned()]);
        let mut rx = bans.changed();
        assert!(bans.contains("x") && !bans.contains("y"));
        bans.add("y");
        rx.changed().await.unwrap();
        assert!(bans.contains("y"));
    }
}
