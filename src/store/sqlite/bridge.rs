//! The async roles over SQLite's blocking calls: a turn goes to the writer thread and is
//! awaited on a oneshot, a cached session is read with no thread, anything else runs on
//! tokio's blocking pool behind the store's semaphore. Once started, a call runs to its end
//! even if the caller is dropped (a client hanging up mid-commit still has its turn
//! committed).

use async_trait::async_trait;

use super::{Blocking, Done, SqliteStore, failed};
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord, Unanswered};
use crate::store::StoreError;
use crate::store::roles::{
    Committed, Enqueued, Jobs, Maintenance, Outbox, OutboxItem, PendingPhoto, PhotoJob, Reports, Sessions,
    StoredSession, Turn, Turns,
};

impl SqliteStore {
    /// Runs `f` on the blocking pool, at most [`CONCURRENT_CALLS`](super::CONCURRENT_CALLS)
    /// at a time.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Blocking) -> Result<R, StoreError> + Send + 'static,
    {
        let _place = self.gate.acquire().await.map_err(StoreError::backend)?;
        let shared = std::sync::Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&shared)).await.map_err(StoreError::backend)?
    }
}

#[async_trait]
impl Sessions for SqliteStore {
    async fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError> {
        if let Some(known) = self.shared.cached_session(user) {
            return Ok(known);
        }
        let user = user.clone();
        self.call(move |s| s.session(&user)).await
    }

    fn cached_session(&self, user: &Address) -> Option<Option<StoredSession>> {
        self.shared.cached_session(user)
    }
}

#[async_trait]
impl Turns for SqliteStore {
    async fn commit(&self, turn: Turn) -> Result<Committed, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.enqueue(Box::new(turn), Done::Async(tx));
        rx.await.map_err(|e| failed("the store stopped before committing", e))?
    }

    async fn replay(
        &self,
        channel: Channel,
        message_id: &MessageId,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let id = message_id.clone();
        self.call(move |s| s.replay(channel, &id)).await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.call(move |s| s.due_mail(now_ms, limit)).await
    }

    async fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        self.call(move |s| s.next_mail_due_after(after_ms)).await
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.call(Blocking::outbox_depth).await
    }

    async fn dead_mail(&self) -> Result<u64, StoreError> {
        self.call(Blocking::dead_mail).await
    }

    async fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.call(move |s| s.mark_sent(outbox_id, at_ms)).await
    }

    async fn claim_mail(&self, outbox_id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        self.call(move |s| s.claim_mail(outbox_id, now_ms, until_ms)).await
    }

    async fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.call(move |s| s.mark_failed(outbox_id, &error, retry_at_ms)).await
    }

    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError> {
        let error = error.to_owned();
        self.call(move |s| s.mark_rejected(outbox_id, &error, retry_at_ms, dead_after)).await
    }
}

#[async_trait]
impl Jobs for SqliteStore {
    async fn enqueue_photo(&self, job: PhotoJob, reply: Vec<String>) -> Result<Enqueued, StoreError> {
        self.call(move |s| s.enqueue_photo(&job, &reply)).await
    }

    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        self.call(move |s| s.pending_photos(limit)).await
    }

    async fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        self.call(move |s| s.photo_done(id)).await
    }
}

#[async_trait]
impl Reports for SqliteStore {
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        self.call(move |s| s.requests(limit)).await
    }

    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.to_owned();
        self.call(move |s| s.request(&ticket)).await
    }

    async fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        self.call(move |s| s.unanswered(limit)).await
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        self.call(move |s| s.prune(messages_before_ms, sessions_before_ms)).await
    }
}
