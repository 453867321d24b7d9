//! The use cases, transport-free: the [`Desk`] runs a webhook turn — the sender's session,
//! the dialog, then the commit of the session, a confirmed request with its ticket and
//! outbox row, and the message id with its reply, all before the user is told anything.
//!
//! The conversation's rules are the [`dialog`](crate::dialog)'s (the request form
//! included); the data is kept by the [`store`](crate::store). Must not: send e-mail (that is
//! [`crate::mail`]'s worker, reading the outbox), speak HTTP or know a channel.

pub mod badge;
pub mod handoff;
pub mod limits;
pub mod outbound;
mod turn;

pub use turn::{Desk, DeskError, Handled};

use crate::domain::{Address, Session};
use crate::store::{Sessions, StoreError, StoredSession, Turn, Turns};

/// The user's session and the version it was stored at (0: none), from the store's memory
/// when it holds it. The store keeps a session as the JSON written here; one this version
/// cannot read is a fresh start, not an error forever.
pub async fn load_session<S: Sessions + ?Sized>(
    store: &S,
    user: &Address,
) -> Result<(Session, i64), StoreError> {
    let stored = match store.cached_session(user) {
        Some(known) => known,
        None => store.session(user).await?,
    };
    Ok(decode_session(stored))
}

/// A stored session read back (see [`load_session`]).
pub fn decode_session(stored: Option<StoredSession>) -> (Session, i64) {
    let Some(stored) = stored else { return (Session::default(), 0) };
    let session = serde_json::from_str(&stored.data).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable stored session: starting afresh");
        Session::default()
    });
    (session, stored.version)
}

/// `session` as the store keeps it.
pub fn encode_session(session: &Session) -> Result<String, StoreError> {
    serde_json::to_string(session).map_err(StoreError::backend)
}

/// Changes `user`'s session outside a message (a badge read, a hand-back) and commits it on
/// the version read, as a turn does: a message of the user's committed meanwhile is not
/// overwritten, the session is read and changed again instead, `attempts` times at most (then
/// [`StoreError::Conflict`]). `change` returns false to leave the session as it is, and
/// nothing is written. The session as changed (or left).
pub async fn update_session<S: Sessions + Turns + ?Sized>(
    store: &S,
    user: &Address,
    now_ms: i64,
    attempts: usize,
    change: impl Fn(&mut Session) -> bool,
) -> Result<Session, StoreError> {
    for _ in 0..attempts {
        let (mut session, version) = load_session(store, user).await?;
        if !change(&mut session) {
            return Ok(session);
        }
        let turn = Turn {
            user: user.clone(),
            message_id: None,
            session: encode_session(&session)?,
            session_version: version,
            messages: Vec::new(),
            request: None,
            mail: None,
            unanswered: None,
            now_ms,
            outbound: Vec::new(),
        };
        match store.commit(turn).await {
            Err(StoreError::Conflict) => continue,
            done => return done.map(|_| session),
        }
    }
    Err(StoreError::Conflict)
}
