//! The async roles over SQLite's blocking calls: a turn goes to the writer thread and is
//! awaited on a oneshot, a cached session is read with no thread, anything else runs on
//! tokio's blocking pool behind the store's semaphore. Once started, a call runs to its end
//! even if the caller is dropped (a client hanging up mid-commit still has its turn
//! committed).

use crate::store::roles::{DayCount, Figures};
use async_trait::async_trait;

use super::{Blocking, Done, SqliteStore, failed};
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord, Unanswered};
use crate::store::StoreError;
use crate::store::roles::{
    Account, Accounts, AuditEntry, Committed, ConsoleSession, ConversationSummary, Enqueued, Jobs, MailEvent,
    Maintenance, NewOutbound, Outbound, OutboundCounts, OutboundItem, OutboundRecord, Outbox, OutboxItem,
    PendingPhoto, PhotoJob, Reports, Sessions, StoredSession, TranscriptLine, Transcripts, Turn, Turns,
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

    async fn mark_failed(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.call(move |s| s.mark_failed(outbox_id, &error, at_ms, retry_at_ms)).await
    }

    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError> {
        let error = error.to_owned();
        self.call(move |s| s.mark_rejected(outbox_id, &error, at_ms, retry_at_ms, dead_after)).await
    }
}

#[async_trait]
impl Outbound for SqliteStore {
    async fn queue_outbound(&self, items: Vec<NewOutbound>, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.call(move |s| s.queue_outbound(items, now_ms)).await
    }

    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboundItem>, StoreError> {
        self.call(move |s| s.claim_outbound(now_ms, lease_ms, limit)).await
    }

    async fn outbound_sent(
        &self,
        id: i64,
        provider_message_id: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let provider = provider_message_id.map(str::to_owned);
        self.call(move |s| s.outbound_sent(id, provider.as_deref(), at_ms)).await
    }

    async fn outbound_retry(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.call(move |s| s.outbound_retry(id, &error, retry_at_ms)).await
    }

    async fn outbound_dropped(&self, id: i64, reason: &str, at_ms: i64) -> Result<(), StoreError> {
        let reason = reason.to_owned();
        self.call(move |s| s.outbound_dropped(id, &reason, at_ms)).await
    }

    async fn next_outbound_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        self.call(move |s| s.next_outbound_after(after_ms)).await
    }

    async fn outbound_counts(&self) -> Result<OutboundCounts, StoreError> {
        self.call(Blocking::outbound_counts).await
    }

    async fn outbound_record(&self, id: i64) -> Result<Option<OutboundRecord>, StoreError> {
        self.call(move |s| s.outbound_record(id)).await
    }

    async fn record_inbound(&self, user: &Address, at_ms: i64) -> Result<(), StoreError> {
        let user = user.clone();
        self.call(move |s| s.record_inbound(&user, at_ms)).await
    }
}

#[async_trait]
impl Jobs for SqliteStore {
    async fn enqueue_photo(
        &self,
        job: PhotoJob,
        reply: Vec<String>,
        held_until_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        self.call(move |s| s.enqueue_photo(&job, &reply, held_until_ms)).await
    }

    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        self.call(move |s| s.pending_photos(limit)).await
    }

    async fn claim_photos(
        &self,
        channels: &[Channel],
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingPhoto>, StoreError> {
        let channels = channels.to_vec();
        self.call(move |s| s.claim_photos(&channels, now_ms, until_ms, limit)).await
    }

    async fn release_photos(&self, ids: &[i64]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.call(move |s| s.release_photos(&ids)).await
    }

    async fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        self.call(move |s| s.photo_done(id)).await
    }

    async fn finish_photo(
        &self,
        id: i64,
        outbound: Vec<NewOutbound>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(move |s| s.finish_photo(id, outbound, now_ms)).await
    }
}

#[async_trait]
impl Reports for SqliteStore {
    async fn find_requests(
        &self,
        query: &crate::store::RequestQuery,
        limit: usize,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let query = query.clone();
        self.call(move |s| s.find_requests(&query, limit)).await
    }

    async fn count_requests(
        &self,
        query: &crate::store::RequestQuery,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let query = query.clone();
        self.call(move |s| s.count_requests(&query)).await
    }

    async fn request_kinds(&self) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.request_kinds()).await
    }

    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        self.call(move |s| s.requests(limit)).await
    }

    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.to_owned();
        self.call(move |s| s.request(&ticket)).await
    }

    async fn mail_history(&self, ticket: &str) -> Result<Vec<MailEvent>, StoreError> {
        let ticket = ticket.to_owned();
        self.call(move |s| s.mail_history(&ticket)).await
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

#[async_trait]
impl Accounts for SqliteStore {
    async fn add_account(&self, account: Account) -> Result<bool, StoreError> {
        self.call(move |s| s.add_account(&account)).await
    }

    async fn account(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let email = email.to_owned();
        self.call(move |s| s.account(&email)).await
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.call(Blocking::accounts).await
    }

    async fn remove_account(&self, email: &str) -> Result<bool, StoreError> {
        let email = email.to_owned();
        self.call(move |s| s.remove_account(&email)).await
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<bool, StoreError> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.call(move |s| s.set_password(&email, &hash)).await
    }

    async fn open_session(&self, session: ConsoleSession) -> Result<(), StoreError> {
        self.call(move |s| s.open_session(&session)).await
    }

    async fn console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, Account)>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.call(move |s| s.console_session(&token_hash, now_ms)).await
    }

    async fn close_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.call(move |s| s.close_session(&token_hash)).await
    }

    async fn sign_in_failed(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |s| s.sign_in_failed(&key, at_ms, forget_before_ms)).await
    }

    async fn sign_in_failures(&self, key: &str, since_ms: i64) -> Result<u32, StoreError> {
        let key = key.to_owned();
        self.call(move |s| s.sign_in_failures(&key, since_ms)).await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |s| s.clear_sign_in_failures(&key)).await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.call(move |s| s.audit(&entry)).await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |s| s.audit_log(limit)).await
    }
}

#[async_trait]
impl Transcripts for SqliteStore {
    async fn record(
        &self,
        user: &Address,
        bot: Option<&Address>,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        let (user, bot) = (user.clone(), bot.cloned());
        self.call(move |s| s.record(&user, bot.as_ref(), &lines)).await
    }

    async fn set_handed_over(&self, user: &Address, since_ms: Option<i64>) -> Result<(), StoreError> {
        let user = user.clone();
        self.call(move |s| s.set_handed_over(&user, since_ms)).await
    }

    async fn conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        self.call(move |s| s.conversations(limit)).await
    }

    async fn conversation(&self, user: &Address) -> Result<Option<ConversationSummary>, StoreError> {
        let user = user.clone();
        self.call(move |s| s.conversation(&user)).await
    }

    async fn transcript(&self, user: &Address, limit: usize) -> Result<Vec<TranscriptLine>, StoreError> {
        let user = user.clone();
        self.call(move |s| s.transcript(&user, limit)).await
    }

    async fn prune_transcripts(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(move |s| s.prune_transcripts(before_ms)).await
    }
}

#[async_trait]
impl Figures for SqliteStore {
    async fn count_turn(&self, day: i64, kind: &str, topic: Option<&str>) -> Result<(), StoreError> {
        let (kind, topic) = (kind.to_owned(), topic.map(str::to_owned));
        self.call(move |s| s.count_turn(day, &kind, topic.as_deref())).await
    }

    async fn agent_replied(&self, at_ms: i64, waited_ms: i64) -> Result<(), StoreError> {
        self.call(move |s| s.agent_replied(at_ms, waited_ms)).await
    }

    async fn day_counts(&self, since_day: i64) -> Result<Vec<DayCount>, StoreError> {
        self.call(move |s| s.day_counts(since_day)).await
    }

    async fn top_topics(&self, since_day: i64, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(move |s| s.top_topics(since_day, limit)).await
    }

    async fn reply_waits(&self, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.call(move |s| s.reply_waits(since_ms)).await
    }
}

#[async_trait]
impl crate::store::roles::Resend for SqliteStore {
    async fn resend_mail(&self, ticket: &str, actor: &str, now_ms: i64) -> Result<bool, StoreError> {
        let (ticket, actor) = (ticket.to_owned(), actor.to_owned());
        self.call(move |s| s.resend_mail(&ticket, &actor, now_ms)).await
    }
}
