//! The store's roles in memory: the same contract as [`SqliteStore`](super::SqliteStore)'s,
//! nothing on disk, everything behind one lock (each call is one atomic step, as SQLite's
//! transaction is; no call awaits while holding it). It serves the conformance suite beside
//! SQLite, and any test or tool that wants the durable contract without a file; a second
//! store (PostgreSQL) is held to the same suite.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::StoreError;
use super::roles::{
    Committed, Enqueued, Jobs, Maintenance, Outbox, OutboxItem, PendingPhoto, PhotoJob, Reports, Sessions,
    StoredSession, Turn, Turns,
};
use crate::domain::{
    Address, Channel, MailState, MessageId, NewRequest, RequestRecord, TICKET_PLACEHOLDER, Unanswered,
    format_ticket, utc_year,
};

/// A claimed message: its channel and the channel's id of it.
type Claim = (Channel, MessageId);

/// A stored session: the value, its version, when it was last written.
#[derive(Debug, Clone)]
struct Held {
    data: String,
    version: i64,
    updated_ms: i64,
}

/// A request and its e-mail's row.
#[derive(Debug, Clone)]
struct Row {
    ticket: String,
    user: Address,
    request: NewRequest,
    created_ms: i64,
    state: MailState,
    attempts: u32,
    permanent_failures: u32,
    last_error: Option<String>,
    next_attempt_ms: i64,
    sent_ms: Option<i64>,
}

impl Row {
    fn record(&self) -> RequestRecord {
        let r = &self.request;
        RequestRecord {
            ticket: self.ticket.clone(),
            user: self.user.clone(),
            kind: r.kind.clone(),
            kind_label: r.kind_label.clone(),
            recipient: r.recipient.clone(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            employee_id: r.employee_id.clone(),
            employee_email: r.employee_email.clone(),
            department: r.department.clone(),
            details: r.details.clone(),
            lang: r.lang,
            created_at_ms: self.created_ms,
            mail: self.state,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt_ms: (self.state == MailState::Queued).then_some(self.next_attempt_ms),
            sent_at_ms: self.sent_ms,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<Address, Held>,
    /// Each handled message's reply, and the order they came in (for pruning).
    replies: HashMap<Claim, Vec<String>>,
    received: VecDeque<(Claim, i64)>,
    /// The last ticket number of each year.
    tickets: HashMap<i64, i64>,
    /// Outbox rows by id (from 1), each with its request.
    outbox: BTreeMap<i64, Row>,
    unanswered: HashMap<String, Unanswered>,
    photos: BTreeMap<i64, PhotoJob>,
    next_photo: i64,
}

impl State {
    /// Claims `id` with `reply`; its first reply when it was claimed before.
    fn claim(&mut self, id: Claim, reply: &[String], at_ms: i64) -> Option<Vec<String>> {
        if let Some(first) = self.replies.get(&id) {
            return Some(first.clone());
        }
        self.replies.insert(id.clone(), reply.to_vec());
        self.received.push_back((id, at_ms));
        None
    }
}

/// The durable contract, in memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every call leaves the state whole before it can panic: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Sessions for MemoryBackend {
    async fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.cached_session(user).flatten())
    }

    fn cached_session(&self, user: &Address) -> Option<Option<StoredSession>> {
        let s = self.lock();
        Some(s.sessions.get(user).map(|e| StoredSession { data: e.data.clone(), version: e.version }))
    }
}

#[async_trait]
impl Turns for MemoryBackend {
    async fn commit(&self, turn: Turn) -> Result<Committed, StoreError> {
        let mut s = self.lock();
        let claim = turn.message_id.as_ref().map(|id| (turn.user.channel(), id.clone()));
        if let Some(claim) = &claim
            && let Some(first) = s.replies.get(claim)
        {
            return Ok(Committed { messages: first.clone(), ticket: None, replayed: true });
        }
        let stored = s.sessions.get(&turn.user).map_or(0, |e| e.version);
        if stored != turn.session_version {
            return Err(StoreError::Conflict);
        }
        let ticket = turn.request.as_ref().map(|req| {
            let year = utc_year(turn.now_ms);
            let seq = s.tickets.entry(year).or_insert(0);
            *seq += 1;
            let ticket = format_ticket(year, *seq);
            let id = s.outbox.keys().next_back().map_or(1, |last| last + 1);
            let row = Row {
                ticket: ticket.clone(),
                user: turn.user.clone(),
                request: req.clone(),
                created_ms: turn.now_ms,
                state: MailState::Queued,
                attempts: 0,
                permanent_failures: 0,
                last_error: None,
                next_attempt_ms: turn.now_ms,
                sent_ms: None,
            };
            s.outbox.insert(id, row);
            ticket
        });
        let messages: Vec<String> = match &ticket {
            Some(t) => turn.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, t)).collect(),
            None => turn.messages,
        };
        if let Some(claim) = claim {
            s.claim(claim, &messages, turn.now_ms);
        }
        let held = Held { data: turn.session, version: stored + 1, updated_ms: turn.now_ms };
        s.sessions.insert(turn.user, held);
        if let Some(question) = turn.unanswered {
            let row = s.unanswered.entry(question.clone()).or_insert_with(|| Unanswered {
                question,
                count: 0,
                first_ms: turn.now_ms,
                last_ms: turn.now_ms,
            });
            row.count += 1;
            row.last_ms = turn.now_ms;
        }
        Ok(Committed { messages, ticket, replayed: false })
    }

    async fn replay(
        &self,
        channel: Channel,
        message_id: &MessageId,
    ) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.lock().replies.get(&(channel, message_id.clone())).cloned())
    }
}

#[async_trait]
impl Outbox for MemoryBackend {
    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let s = self.lock();
        let mut due: Vec<(&i64, &Row)> = s
            .outbox
            .iter()
            .filter(|(_, r)| r.state == MailState::Queued && r.next_attempt_ms <= now_ms)
            .collect();
        due.sort_by_key(|(id, r)| (r.next_attempt_ms, **id));
        Ok(due.into_iter().take(limit).map(|(id, r)| OutboxItem { id: *id, request: r.record() }).collect())
    }

    async fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let s = self.lock();
        Ok(s.outbox
            .values()
            .filter(|r| r.state == MailState::Queued && r.next_attempt_ms > after_ms)
            .map(|r| r.next_attempt_ms)
            .min())
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        let s = self.lock();
        Ok(s.outbox.values().filter(|r| r.state == MailState::Queued).count() as u64)
    }

    async fn dead_mail(&self) -> Result<u64, StoreError> {
        let s = self.lock();
        Ok(s.outbox.values().filter(|r| r.state == MailState::Dead).count() as u64)
    }

    async fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        if let Some(r) = self.lock().outbox.get_mut(&outbox_id) {
            r.state = MailState::Sent;
            r.sent_ms = Some(at_ms);
            r.attempts += 1;
            r.last_error = None;
        }
        Ok(())
    }

    async fn claim_mail(&self, outbox_id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let due = s
            .outbox
            .get_mut(&outbox_id)
            .filter(|r| r.state == MailState::Queued && r.next_attempt_ms <= now_ms);
        Ok(due.map(|r| r.next_attempt_ms = until_ms).is_some())
    }

    async fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        if let Some(r) = self.lock().outbox.get_mut(&outbox_id).filter(|r| r.state == MailState::Queued) {
            r.attempts += 1;
            r.last_error = Some(error.to_owned());
            r.next_attempt_ms = retry_at_ms;
        }
        Ok(())
    }

    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError> {
        let mut s = self.lock();
        let Some(r) = s.outbox.get_mut(&outbox_id).filter(|r| r.state == MailState::Queued) else {
            return Ok(MailState::Queued);
        };
        r.attempts += 1;
        r.last_error = Some(error.to_owned());
        r.next_attempt_ms = retry_at_ms;
        r.permanent_failures += 1;
        if r.permanent_failures >= dead_after.max(1) {
            r.state = MailState::Dead;
        }
        Ok(r.state)
    }
}

#[async_trait]
impl Reports for MemoryBackend {
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        Ok(self.lock().outbox.values().rev().take(limit).map(Row::record).collect())
    }

    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        Ok(self.lock().outbox.values().find(|r| r.ticket == ticket).map(Row::record))
    }

    async fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        let s = self.lock();
        let mut rows: Vec<Unanswered> = s.unanswered.values().cloned().collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_ms.cmp(&a.last_ms)));
        rows.truncate(limit);
        Ok(rows)
    }
}

#[async_trait]
impl Jobs for MemoryBackend {
    async fn enqueue_photo(&self, job: PhotoJob, reply: Vec<String>) -> Result<Enqueued, StoreError> {
        let mut s = self.lock();
        if let Some(id) = &job.message_id
            && let Some(first) = s.claim((job.user.channel(), id.clone()), &reply, job.created_ms)
        {
            return Ok(Enqueued::Replayed(first));
        }
        s.next_photo += 1;
        let id = s.next_photo;
        s.photos.insert(id, job);
        Ok(Enqueued::Queued(id))
    }

    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        let s = self.lock();
        let mut jobs: Vec<PendingPhoto> =
            s.photos.iter().map(|(id, job)| PendingPhoto { id: *id, job: job.clone() }).collect();
        jobs.sort_by_key(|p| (p.job.created_ms, p.id));
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.lock().photos.remove(&id).is_some())
    }
}

#[async_trait]
impl Maintenance for MemoryBackend {
    /// Message ids oldest first up to the first one to keep, as SQLite walks its table;
    /// sessions idle since before `sessions_before_ms`.
    async fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let mut s = self.lock();
        let mut removed = 0;
        while let Some(&(_, at)) = s.received.front() {
            if at >= messages_before_ms {
                break;
            }
            if let Some((claim, _)) = s.received.pop_front() {
                s.replies.remove(&claim);
            }
            removed += 1;
        }
        let before = s.sessions.len();
        s.sessions.retain(|_, e| e.updated_ms >= sessions_before_ms);
        Ok(removed + before - s.sessions.len())
    }
}
