//! Per-user conversation state behind the [`SessionStore`] trait.
//!
//! The dialog only ever loads a user's [`Session`], works on it and saves it back, so the
//! in-memory [`MemoryStore`] here and a durable store can stand in for each other.
//! Users are keyed by their [`Address`] (a channel and the channel's id of them).
//!
//! The durable side — conversation state that survives a restart, requests with their
//! tickets, the e-mail outbox, badge photos awaiting their result and the processed
//! message ids — is the [`Ledger`] trait, implemented on SQLite by [`sqlite::SqliteStore`].

#[cfg(test)]
mod conformance;
pub mod ledger;
pub mod memory;
pub mod sqlite;

pub use ledger::{
    CommitReceiver, Committed, Durable, Enqueued, Ledger, OutboxItem, OwnedTurn, PendingPhoto, PhotoJob, Turn,
};
pub use memory::MemoryLedger;
pub use sqlite::SqliteStore;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::domain::{Address, Session};

/// What a store can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backing storage failed.
    #[error("session store: {0}")]
    Backend(String),
    /// The session changed since it was loaded (another message of the same user was
    /// committed meanwhile): nothing was written; handle the message again.
    #[error("session store: the session changed concurrently")]
    Conflict,
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
