//! What wabot keeps: the durable store, one async trait per role ([`roles`]: sessions,
//! turns, the outbox, the outbound message queue, photo jobs, reports, maintenance), implemented on SQLite
//! ([`sqlite::SqliteStore`], one process), on PostgreSQL ([`postgres::PostgresStore`],
//! shared by several replicas) and in memory ([`memory::MemoryBackend`]), all held to one
//! conformance suite. Users are keyed by their [`Address`](crate::domain::Address) (a channel and the channel's id
//! of them), messages by their channel and [`MessageId`](crate::domain::MessageId).
//!
//! The store keeps data, not rules: a session is the desk's opaque value with a version.

#[cfg(test)]
pub(crate) mod conformance;
pub mod memory;
pub mod postgres;
pub mod roles;
pub mod sqlite;

pub use memory::MemoryBackend;
pub use postgres::PostgresStore;
pub use roles::{
    Account, AccountRole, Accounts, AuditEntry, Committed, ConsoleSession, ConversationSummary,
    Conversations, DayCount, Enqueued, Figures, Jobs, MESSAGE_RETENTION, MailEvent, MailEventKind,
    Maintenance, NewMail, NewOutbound, Outbound, OutboundCounts, OutboundItem, OutboundRecord, OutboundState,
    Outbox, OutboxItem, OutboxMail, PendingPhoto, PhotoJob, Reports, RequestQuery, Resend, SESSION_RETENTION,
    Sessions, Speaker, Store, StoredMail, StoredSession, TranscriptLine, Transcripts, Turn, Turns,
};
pub use sqlite::SqliteStore;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

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
pub async fn prune_forever(
    store: Arc<dyn Maintenance>,
    clock: Arc<dyn crate::domain::Clock>,
    every: Duration,
) {
    loop {
        let now = clock.now_ms();
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
