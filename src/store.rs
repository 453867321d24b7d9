//! What wabot keeps: the durable store, one async trait per role ([`roles`]: sessions,
//! turns, the outbox, photo jobs, reports, maintenance), implemented on SQLite
//! ([`sqlite::SqliteStore`]) and in memory ([`memory::MemoryBackend`]), both held to one
//! conformance suite. Users are keyed by their [`Address`] (a channel and the channel's id
//! of them), messages by their channel and [`MessageId`](crate::domain::MessageId).
//!
//! The store keeps data, not rules: a session is the desk's opaque value with a version.
//!
//! [`SessionStore`] and its [`MemoryStore`] are the dialog's own, synchronous session map
//! (`wabot chat`'s tests, the FAQ's previews), outside the durable contract.

#[cfg(test)]
mod conformance;
pub mod memory;
pub mod roles;
pub mod sqlite;

pub use memory::MemoryBackend;
pub use roles::{
    Committed, Conversations, Enqueued, Jobs, MESSAGE_RETENTION, Maintenance, Outbox, OutboxItem,
    PendingPhoto, PhotoJob, Reports, SESSION_RETENTION, Sessions, Store, StoredSession, Turn, Turns,
};
pub use sqlite::SqliteStore;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::domain::{Address, Session};

/// A backend's own error, kept whole as the source of [`StoreError::Backend`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backing storage failed.
    #[error("store: {0}")]
    Backend(#[source] BackendError),
    /// The session changed since it was loaded (another message of the same user was
    /// committed meanwhile): nothing was written; handle the message again.
    #[error("store: the session changed concurrently")]
    Conflict,
}

impl StoreError {
    /// A backend failure caused by `source`.
    pub fn backend(source: impl Into<BackendError>) -> StoreError {
        StoreError::Backend(source.into())
    }
}

/// Prunes old message ids and sessions now, then every `every`, forever (see
/// [`MESSAGE_RETENTION`], [`SESSION_RETENTION`]): without it both tables only grow.
pub async fn prune_forever(store: Arc<dyn Maintenance>, every: Duration) {
    loop {
        let now = crate::domain::now_ms();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (m, s) = (now.saturating_sub(ms(MESSAGE_RETENTION)), now.saturating_sub(ms(SESSION_RETENTION)));
        match store.prune(m, s).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned old message ids and sessions"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Where sessions live.
pub trait SessionStore: Send + Sync {
    /// The user's session; a fresh one for a new user.
    fn load(&self, user: &Address) -> Result<Session, StoreError>;
    /// Saves the user's session.
    fn save(&self, user: &Address, session: &Session) -> Result<(), StoreError>;
}

/// Sessions in memory, forgotten on restart. Bounded: past `capacity` users, or after
/// `idle` without a message, the least recently active sessions are dropped.
#[derive(Debug)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<Address, (Session, Instant)>>,
    capacity: usize,
    idle: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(100_000, Duration::from_secs(24 * 3600))
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions, each kept `idle` after its last use.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        MemoryStore { sessions: Mutex::new(HashMap::new()), capacity: capacity.max(1), idle }
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Address, (Session, Instant)>> {
        // A panic while holding the lock cannot leave a map half-updated in a way that
        // matters here: every operation is a single insert or lookup.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionStore for MemoryStore {
    fn load(&self, user: &Address) -> Result<Session, StoreError> {
        let map = self.lock();
        Ok(match map.get(user) {
            Some((s, at)) if at.elapsed() < self.idle => s.clone(),
            _ => Session::default(),
        })
    }

    fn save(&self, user: &Address, session: &Session) -> Result<(), StoreError> {
        let mut map = self.lock();
        let now = Instant::now();
        if map.len() >= self.capacity && !map.contains_key(user) {
            map.retain(|_, (_, at)| now.duration_since(*at) < self.idle);
            if map.len() >= self.capacity {
                // Drop the oldest tenth at once so eviction stays rare.
                let mut ages: Vec<Instant> = map.values().map(|(_, at)| *at).collect();
                let cut = (self.capacity / 10).max(1).min(ages.len() - 1);
                let (_, &mut threshold, _) = ages.select_nth_unstable(cut);
                map.retain(|_, (_, at)| *at > threshold);
            }
        }
        map.insert(user.clone(), (session.clone(), now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Pending};
    use crate::engine::Lang;

    fn user(id: &str) -> Address {
        Address::parse(Channel::Twilio, id).unwrap()
    }

    #[test]
    fn a_saved_session_is_loaded_back() {
        let store = MemoryStore::default();
        assert_eq!(store.load(&user("+1")).unwrap(), Session::default());
        let s = Session { lang: Some(Lang::Fr), pending: Some(Pending::Categories), ..Session::default() };
        store.save(&user("+1"), &s).unwrap();
        assert_eq!(store.load(&user("+1")).unwrap(), s);
        assert_eq!(store.load(&user("+2")).unwrap(), Session::default());
        assert_eq!(store.load(&Address::parse(Channel::Meta, "+1").unwrap()).unwrap(), Session::default());
    }

    #[test]
    fn the_store_stays_within_its_capacity() {
        let store = MemoryStore::new(50, Duration::from_secs(3600));
        for i in 0..500 {
            store.save(&user(&format!("u{i}")), &Session::default()).unwrap();
            assert!(store.len() <= 50);
        }
        assert_eq!(store.load(&user("u499")).unwrap(), Session::default());
    }

    #[test]
    fn idle_sessions_expire() {
        let store = MemoryStore::new(10, Duration::ZERO);
        store.save(&user("u"), &Session { lang: Some(Lang::En), ..Session::default() }).unwrap();
        assert_eq!(store.load(&user("u")).unwrap().lang, None);
    }
}
