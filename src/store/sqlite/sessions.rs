//! The sessions of recent users, in memory, and who has a session at all.
//!
//! A turn loads its user's session and commits it back; with the cache, it usually reads
//! nothing. The cache only ever guesses the stored version: the commit checks it inside
//! its transaction, and a turn that finds it stale is retried on a fresh read (see
//! [`SessionCache::forget`]).

use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashSet;

use crate::domain::Address;

/// How the cache keys a user: the address's channel and id in one string.
pub(super) fn cache_key(user: &Address) -> String {
    user.to_string()
}

/// A user's session as last stored.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    /// The row's `data`: the session's JSON.
    pub(super) data: Box<str>,
    pub(super) version: i64,
    pub(super) updated_ms: i64,
}

/// The last committed session of recent users, and who has a stored session at all.
pub(super) struct SessionCache(Mutex<Sessions>);

struct Sessions {
    recent: lru::LruCache<Box<str>, Stored>,
    /// A hash of every user with a stored session — and of a few more (a collision, a user
    /// since pruned), which only costs a read. A user not in it has none: their first
    /// message needs no read at all.
    stored: FxHashSet<u64>,
}

/// What the cache knows of a user's session.
pub(super) enum Cached {
    /// Their session as last stored.
    Session(Stored),
    /// They have none stored.
    None,
    /// Not in memory: read it.
    Unknown,
}

fn user_hash(user: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    user.hash(&mut h);
    h.finish()
}

impl SessionCache {
    /// A cache of `capacity` sessions, knowing that `stored` users have one.
    pub(super) fn new(capacity: usize, stored: impl IntoIterator<Item = String>) -> Self {
        let capacity = std::num::NonZeroUsize::new(capacity.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        let stored = stored.into_iter().map(|u| user_hash(&u)).collect();
        SessionCache(Mutex::new(Sessions { recent: lru::LruCache::new(capacity), stored }))
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        // Each operation is one lookup or insert: a panic cannot leave it half-done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self, user: &Address) -> Cached {
        let user = cache_key(user);
        let mut cache = self.lock();
        if let Some(s) = cache.recent.get(user.as_str()) {
            return Cached::Session(s.clone());
        }
        if cache.stored.contains(&user_hash(&user)) { Cached::Unknown } else { Cached::None }
    }

    /// True when `user`'s stored session is `data` at `version`, written since `since_ms`.
    pub(super) fn holds(&self, user: &Address, data: &str, version: i64, since_ms: i64) -> bool {
        self.lock()
            .recent
            .peek(cache_key(user).as_str())
            .is_some_and(|s| s.version == version && &*s.data == data && s.updated_ms >= since_ms)
    }

    /// Remembers `stored` unless a newer version is already remembered: a read that raced
    /// a commit must not put back the older state.
    pub(super) fn offer(&self, user: &Address, stored: Stored) {
        let user = cache_key(user);
        let mut cache = self.lock();
        cache.stored.insert(user_hash(&user));
        match cache.recent.get_mut(user.as_str()) {
            Some(held) if held.version >= stored.version => {}
            Some(held) => *held = stored,
            None => {
                cache.recent.put(user.into(), stored);
            }
        }
    }

    /// Drops what is remembered of `user`, whose stored session is not what the cache
    /// said: the next turn reads it.
    pub(super) fn forget(&self, user: &Address) {
        let user = cache_key(user);
        let mut cache = self.lock();
        cache.recent.pop(user.as_str());
        cache.stored.insert(user_hash(&user));
    }

    /// Forgets `user`, whose session was just deleted (pruned): their next turn commits as
    /// a new user's.
    pub(super) fn pruned(&self, user: &Address) {
        let user = cache_key(user);
        let mut cache = self.lock();
        cache.recent.pop(user.as_str());
        cache.stored.remove(&user_hash(&user));
    }
}
