//! The store's roles in memory: the same contract as [`SqliteStore`](super::SqliteStore)'s,
//! nothing on disk, everything behind one lock (each call is one atomic step, as SQLite's
//! transaction is; no call awaits while holding it). It serves the conformance suite beside
//! SQLite, and any test or tool that wants the durable contract without a file; a second
//! store (PostgreSQL) is held to the same suite.

use crate::store::roles::{DayCount, Figures, NewMail, OutboxMail, StoredMail};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::StoreError;
use super::roles::{
    Account, Accounts, AuditEntry, Committed, ConsoleSession, ConversationSummary, Enqueued, Jobs, MailEvent,
    MailEventKind, Maintenance, NewOutbound, Outbound, OutboundCounts, OutboundItem, OutboundRecord,
    OutboundState, Outbox, OutboxItem, PendingPhoto, PhotoJob, Reports, Sessions, StoredSession,
    TranscriptLine, Transcripts, Turn, Turns,
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

/// What an outbox row carries.
#[derive(Debug, Clone)]
enum Content {
    /// A request, under its ticket.
    Request { ticket: String, user: Address, request: Box<NewRequest> },
    /// An e-mail that is not a request.
    Other(NewMail),
}

/// An outbox row: a request or another e-mail, and the state of its delivery.
#[derive(Debug, Clone)]
struct Row {
    content: Content,
    created_ms: i64,
    state: MailState,
    attempts: u32,
    permanent_failures: u32,
    last_error: Option<String>,
    next_attempt_ms: i64,
    sent_ms: Option<i64>,
    /// The e-mail's delivery history, oldest first.
    history: Vec<MailEvent>,
}

impl Row {
    fn event(&mut self, at_ms: i64, kind: MailEventKind, error: Option<&str>, retry_at_ms: Option<i64>) {
        let error = error.map(str::to_owned);
        self.history.push(MailEvent { at_ms, kind, error, retry_at_ms, actor: None });
    }

    fn ticket(&self) -> Option<&str> {
        match &self.content {
            Content::Request { ticket, .. } => Some(ticket),
            Content::Other(_) => None,
        }
    }

    fn item(&self, id: i64) -> OutboxItem {
        let mail = match &self.content {
            Content::Request { ticket, user, request } => {
                OutboxMail::Request(Box::new(self.request(ticket, user, request)))
            }
            Content::Other(m) => OutboxMail::Other(StoredMail {
                mail: m.clone(),
                created_ms: self.created_ms,
                attempts: self.attempts,
            }),
        };
        OutboxItem { id, mail }
    }

    fn record(&self) -> Option<RequestRecord> {
        match &self.content {
            Content::Request { ticket, user, request } => Some(self.request(ticket, user, request)),
            Content::Other(_) => None,
        }
    }

    fn request(&self, ticket: &str, user: &Address, r: &NewRequest) -> RequestRecord {
        RequestRecord {
            ticket: ticket.to_owned(),
            user: user.clone(),
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
    /// Each job with the end of its lease, ms.
    photos: BTreeMap<i64, (PhotoJob, i64)>,
    next_photo: i64,
    /// The outbound queue by id (from 1), each with its lease's end.
    outbound: BTreeMap<i64, (OutboundRecord, i64)>,
    /// Each user's last inbound message time.
    inbound: HashMap<Address, i64>,
    accounts: BTreeMap<String, Account>,
    console_sessions: HashMap<String, ConsoleSession>,
    sign_in_failures: HashMap<String, Vec<i64>>,
    audit: Vec<AuditEntry>,
    conversations: HashMap<Address, ConversationSummary>,
    transcripts: HashMap<Address, Vec<TranscriptLine>>,
    turn_counts: BTreeMap<(i64, String, String), i64>,
    reply_waits: Vec<(i64, i64)>,
}

impl State {
    fn queue(&mut self, items: impl IntoIterator<Item = NewOutbound>, now_ms: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        for o in items {
            let id = self.outbound.keys().next_back().map_or(1, |last| last + 1);
            let item = OutboundItem {
                id,
                to: o.to,
                from: o.from,
                payload: o.payload,
                attempts: 0,
                created_ms: now_ms,
                last_inbound_ms: None,
            };
            let record = OutboundRecord {
                item,
                state: OutboundState::Queued,
                provider_message_id: None,
                last_error: None,
                next_attempt_ms: now_ms,
                sent_ms: None,
            };
            self.outbound.insert(id, (record, 0));
            ids.push(id);
        }
        ids
    }

    fn inbound(&mut self, user: &Address, at_ms: i64) {
        let last = self.inbound.entry(user.clone()).or_insert(at_ms);
        *last = (*last).max(at_ms);
    }

    /// The record with the user's last inbound time filled in.
    fn record(&self, id: i64) -> Option<OutboundRecord> {
        let (record, _) = self.outbound.get(&id)?;
        let mut record = record.clone();
        record.item.last_inbound_ms = self.inbound.get(&record.item.to).copied();
        Some(record)
    }

    fn queued(&mut self, id: i64) -> Option<&mut (OutboundRecord, i64)> {
        self.outbound.get_mut(&id).filter(|(r, _)| r.state == OutboundState::Queued)
    }

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
                content: Content::Request {
                    ticket: ticket.clone(),
                    user: turn.user.clone(),
                    request: Box::new(req.clone()),
                },
                created_ms: turn.now_ms,
                state: MailState::Queued,
                attempts: 0,
                permanent_failures: 0,
                last_error: None,
                next_attempt_ms: turn.now_ms,
                sent_ms: None,
                history: Vec::new(),
            };
            s.outbox.insert(id, row);
            ticket
        });
        if let Some(mail) = turn.mail {
            let id = s.outbox.keys().next_back().map_or(1, |last| last + 1);
            let row = Row {
                content: Content::Other(mail),
                created_ms: turn.now_ms,
                state: MailState::Queued,
                attempts: 0,
                permanent_failures: 0,
                last_error: None,
                next_attempt_ms: turn.now_ms,
                sent_ms: None,
                history: Vec::new(),
            };
            s.outbox.insert(id, row);
        }
        let messages: Vec<String> = match &ticket {
            Some(t) => turn.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, t)).collect(),
            None => turn.messages,
        };
        if !turn.outbound.is_empty() {
            let outbound = turn.outbound.into_iter().map(|o| match &ticket {
                Some(t) => NewOutbound { payload: o.payload.replace(TICKET_PLACEHOLDER, t), ..o },
                None => o,
            });
            s.queue(outbound, turn.now_ms);
            if claim.is_some() {
                s.inbound(&turn.user, turn.now_ms);
            }
        }
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
        Ok(due.into_iter().take(limit).map(|(id, r)| r.item(*id)).collect())
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
            r.event(at_ms, MailEventKind::Sent, None, None);
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

    async fn mark_failed(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(r) = self.lock().outbox.get_mut(&outbox_id).filter(|r| r.state == MailState::Queued) {
            r.attempts += 1;
            r.last_error = Some(error.to_owned());
            r.next_attempt_ms = retry_at_ms;
            r.event(at_ms, MailEventKind::Failed, Some(error), Some(retry_at_ms));
        }
        Ok(())
    }

    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
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
        let retry = (r.state == MailState::Queued).then_some(retry_at_ms);
        r.event(at_ms, MailEventKind::Rejected, Some(error), retry);
        Ok(r.state)
    }
}

#[async_trait]
impl Outbound for MemoryBackend {
    async fn queue_outbound(&self, items: Vec<NewOutbound>, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        Ok(self.lock().queue(items, now_ms))
    }

    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboundItem>, StoreError> {
        let mut s = self.lock();
        let mut due: Vec<(i64, i64)> = s
            .outbound
            .iter()
            .filter(|(_, (r, lease))| {
                r.state == OutboundState::Queued && r.next_attempt_ms <= now_ms && *lease <= now_ms
            })
            .map(|(id, (r, _))| (r.next_attempt_ms, *id))
            .collect();
        due.sort_unstable();
        let mut items = Vec::new();
        for (_, id) in due.into_iter().take(limit) {
            if let Some((r, lease)) = s.outbound.get_mut(&id) {
                r.item.attempts += 1;
                *lease = now_ms.saturating_add(lease_ms);
            }
            if let Some(r) = s.record(id) {
                items.push(r.item);
            }
        }
        Ok(items)
    }

    async fn outbound_sent(
        &self,
        id: i64,
        provider_message_id: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some((r, lease)) = s.queued(id) else { return Ok(false) };
        r.state = OutboundState::Sent;
        r.provider_message_id = provider_message_id.map(str::to_owned);
        r.sent_ms = Some(at_ms);
        r.last_error = None;
        *lease = 0;
        Ok(true)
    }

    async fn outbound_retry(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        if let Some((r, lease)) = self.lock().queued(id) {
            r.last_error = Some(error.to_owned());
            r.next_attempt_ms = retry_at_ms;
            *lease = 0;
        }
        Ok(())
    }

    async fn outbound_dropped(&self, id: i64, reason: &str, at_ms: i64) -> Result<(), StoreError> {
        if let Some((r, lease)) = self.lock().queued(id) {
            r.state = OutboundState::Dropped;
            r.last_error = Some(reason.to_owned());
            r.next_attempt_ms = at_ms;
            *lease = 0;
        }
        Ok(())
    }

    async fn next_outbound_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let s = self.lock();
        Ok(s.outbound
            .values()
            .filter(|(r, _)| r.state == OutboundState::Queued)
            .map(|(r, lease)| r.next_attempt_ms.max(*lease))
            .filter(|at| *at > after_ms)
            .min())
    }

    async fn outbound_counts(&self) -> Result<OutboundCounts, StoreError> {
        let mut counts = OutboundCounts::default();
        for (r, _) in self.lock().outbound.values() {
            match r.state {
                OutboundState::Queued => counts.queued += 1,
                OutboundState::Sent => counts.sent += 1,
                OutboundState::Dropped => counts.dropped += 1,
            }
        }
        Ok(counts)
    }

    async fn outbound_record(&self, id: i64) -> Result<Option<OutboundRecord>, StoreError> {
        Ok(self.lock().record(id))
    }

    async fn record_inbound(&self, user: &Address, at_ms: i64) -> Result<(), StoreError> {
        self.lock().inbound(user, at_ms);
        Ok(())
    }
}

#[async_trait]
impl Reports for MemoryBackend {
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        Ok(self.lock().outbox.values().rev().filter_map(Row::record).take(limit).collect())
    }

    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        Ok(self.lock().outbox.values().find(|r| r.ticket() == Some(&ticket)).and_then(Row::record))
    }

    async fn mail_history(&self, ticket: &str) -> Result<Vec<MailEvent>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        Ok(self
            .lock()
            .outbox
            .values()
            .find(|r| r.ticket() == Some(&ticket))
            .map(|r| r.history.clone())
            .unwrap_or_default())
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
    async fn enqueue_photo(
        &self,
        job: PhotoJob,
        reply: Vec<String>,
        held_until_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let mut s = self.lock();
        if let Some(id) = &job.message_id
            && let Some(first) = s.claim((job.user.channel(), id.clone()), &reply, job.created_ms)
        {
            return Ok(Enqueued::Replayed(first));
        }
        if job.message_id.is_some() {
            s.inbound(&job.user, job.created_ms);
        }
        s.next_photo += 1;
        let id = s.next_photo;
        s.photos.insert(id, (job, held_until_ms));
        Ok(Enqueued::Queued(id))
    }

    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        let s = self.lock();
        let mut jobs: Vec<PendingPhoto> =
            s.photos.iter().map(|(id, (job, _))| PendingPhoto { id: *id, job: job.clone() }).collect();
        jobs.sort_by_key(|p| (p.job.created_ms, p.id));
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn claim_photos(
        &self,
        channels: &[Channel],
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingPhoto>, StoreError> {
        let mut s = self.lock();
        let mut free: Vec<(i64, i64)> = s
            .photos
            .iter()
            .filter(|(_, (job, held))| *held <= now_ms && channels.contains(&job.user.channel()))
            .map(|(id, (job, _))| (job.created_ms, *id))
            .collect();
        free.sort_unstable();
        free.truncate(limit);
        let mut claimed = Vec::with_capacity(free.len());
        for (_, id) in free {
            if let Some((job, held)) = s.photos.get_mut(&id) {
                *held = until_ms;
                claimed.push(PendingPhoto { id, job: job.clone() });
            }
        }
        Ok(claimed)
    }

    async fn release_photos(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut s = self.lock();
        for id in ids {
            if let Some((_, held)) = s.photos.get_mut(id) {
                *held = 0;
            }
        }
        Ok(())
    }

    async fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.lock().photos.remove(&id).is_some())
    }

    async fn finish_photo(
        &self,
        id: i64,
        outbound: Vec<NewOutbound>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.photos.remove(&id).is_none() {
            return Ok(false);
        }
        s.queue(outbound, now_ms);
        Ok(true)
    }
}

#[async_trait]
impl Maintenance for MemoryBackend {
    /// Message ids oldest first up to the first one to keep, as SQLite walks its table;
    /// sessions idle since before `sessions_before_ms`.
    async fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let mut s = self.lock();
        let before = s.outbound.len();
        s.outbound
            .retain(|_, (r, _)| r.state == OutboundState::Queued || r.item.created_ms >= messages_before_ms);
        let mut removed = before - s.outbound.len();
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

#[async_trait]
impl Accounts for MemoryBackend {
    async fn add_account(&self, account: Account) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.accounts.contains_key(&account.email) {
            return Ok(false);
        }
        s.accounts.insert(account.email.clone(), account);
        Ok(true)
    }

    async fn account(&self, email: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.lock().accounts.get(email).cloned())
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(self.lock().accounts.values().cloned().collect())
    }

    async fn remove_account(&self, email: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        s.console_sessions.retain(|_, c| c.email != email);
        Ok(s.accounts.remove(email).is_some())
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some(a) = s.accounts.get_mut(email) else { return Ok(false) };
        a.password_hash = password_hash.to_owned();
        s.console_sessions.retain(|_, c| c.email != email);
        Ok(true)
    }

    async fn open_session(&self, session: ConsoleSession) -> Result<(), StoreError> {
        let mut s = self.lock();
        let now = session.created_ms;
        s.console_sessions.retain(|_, c| c.expires_ms > now);
        s.console_sessions.insert(session.token_hash.clone(), session);
        Ok(())
    }

    async fn console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, Account)>, StoreError> {
        let s = self.lock();
        let Some(session) = s.console_sessions.get(token_hash).filter(|c| c.expires_ms > now_ms) else {
            return Ok(None);
        };
        Ok(s.accounts.get(&session.email).map(|a| (session.clone(), a.clone())))
    }

    async fn close_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.lock().console_sessions.remove(token_hash);
        Ok(())
    }

    async fn sign_in_failed(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        let mut s = self.lock();
        let times = s.sign_in_failures.entry(key.to_owned()).or_default();
        times.retain(|&t| t >= forget_before_ms);
        times.push(at_ms);
        Ok(())
    }

    async fn sign_in_failures(&self, key: &str, since_ms: i64) -> Result<u32, StoreError> {
        let s = self.lock();
        let n = s.sign_in_failures.get(key).map_or(0, |t| t.iter().filter(|&&t| t >= since_ms).count());
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        self.lock().sign_in_failures.remove(key);
        Ok(())
    }

    async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.lock().audit.push(entry);
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.lock().audit.iter().rev().take(limit).cloned().collect())
    }
}

#[async_trait]
impl Transcripts for MemoryBackend {
    async fn record(
        &self,
        user: &Address,
        bot: Option<&Address>,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        let Some(last) = lines.last().cloned() else { return Ok(()) };
        let mut s = self.lock();
        let c = s.conversations.entry(user.clone()).or_insert_with(|| ConversationSummary {
            user: user.clone(),
            bot: None,
            handed_over_ms: None,
            last_ms: last.at_ms,
            last_text: String::new(),
        });
        if bot.is_some() {
            c.bot = bot.cloned();
        }
        c.last_ms = last.at_ms;
        c.last_text = last.text;
        s.transcripts.entry(user.clone()).or_default().extend(lines);
        Ok(())
    }

    async fn set_handed_over(&self, user: &Address, since_ms: Option<i64>) -> Result<(), StoreError> {
        let mut s = self.lock();
        let c = s.conversations.entry(user.clone()).or_insert_with(|| ConversationSummary {
            user: user.clone(),
            bot: None,
            handed_over_ms: None,
            last_ms: since_ms.unwrap_or(0),
            last_text: String::new(),
        });
        c.handed_over_ms = since_ms;
        Ok(())
    }

    async fn conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut all: Vec<ConversationSummary> = self.lock().conversations.values().cloned().collect();
        all.sort_by(|a, b| match (a.handed_over_ms, b.handed_over_ms) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => b.last_ms.cmp(&a.last_ms),
        });
        all.truncate(limit);
        Ok(all)
    }

    async fn conversation(&self, user: &Address) -> Result<Option<ConversationSummary>, StoreError> {
        Ok(self.lock().conversations.get(user).cloned())
    }

    async fn transcript(&self, user: &Address, limit: usize) -> Result<Vec<TranscriptLine>, StoreError> {
        let s = self.lock();
        let lines = s.transcripts.get(user).map_or(&[][..], Vec::as_slice);
        Ok(lines[lines.len().saturating_sub(limit)..].to_vec())
    }

    async fn prune_transcripts(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut s = self.lock();
        let mut removed = 0;
        for lines in s.transcripts.values_mut() {
            let before = lines.len();
            lines.retain(|l| l.at_ms >= before_ms);
            removed += before - lines.len();
        }
        s.transcripts.retain(|_, l| !l.is_empty());
        let before = s.conversations.len();
        s.conversations.retain(|_, c| c.handed_over_ms.is_some() || c.last_ms >= before_ms);
        Ok(removed + before - s.conversations.len())
    }
}

#[async_trait]
impl Figures for MemoryBackend {
    async fn count_turn(&self, day: i64, kind: &str, topic: Option<&str>) -> Result<(), StoreError> {
        *self
            .lock()
            .turn_counts
            .entry((day, kind.to_owned(), topic.unwrap_or("").to_owned()))
            .or_default() += 1;
        Ok(())
    }

    async fn agent_replied(&self, at_ms: i64, waited_ms: i64) -> Result<(), StoreError> {
        self.lock().reply_waits.push((at_ms, waited_ms));
        Ok(())
    }

    async fn day_counts(&self, since_day: i64) -> Result<Vec<DayCount>, StoreError> {
        let mut out: Vec<DayCount> = Vec::new();
        for ((day, kind, _), n) in self.lock().turn_counts.range((since_day, String::new(), String::new())..)
        {
            match out.last_mut() {
                Some(last) if last.day == *day && last.kind == *kind => last.count += n,
                _ => out.push(DayCount { day: *day, kind: kind.clone(), count: *n }),
            }
        }
        Ok(out)
    }

    async fn top_topics(&self, since_day: i64, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
        let mut by: HashMap<String, i64> = HashMap::new();
        for ((day, _, topic), n) in self.lock().turn_counts.iter() {
            if *day >= since_day && !topic.is_empty() {
                *by.entry(topic.clone()).or_default() += n;
            }
        }
        let mut out: Vec<(String, i64)> = by.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(limit);
        Ok(out)
    }

    async fn reply_waits(&self, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        Ok(self.lock().reply_waits.iter().filter(|(at, _)| *at >= since_ms).map(|(_, w)| *w).collect())
    }
}

#[async_trait]
impl crate::store::roles::Resend for MemoryBackend {
    async fn resend_mail(&self, ticket: &str, actor: &str, now_ms: i64) -> Result<bool, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        let mut s = self.lock();
        let Some(row) = s.outbox.values_mut().find(|r| r.ticket() == Some(&ticket)) else { return Ok(false) };
        row.state = MailState::Queued;
        row.next_attempt_ms = now_ms;
        row.permanent_failures = 0;
        row.sent_ms = None;
        row.history.push(MailEvent {
            at_ms: now_ms,
            kind: MailEventKind::Resent,
            error: None,
            retry_at_ms: None,
            actor: Some(actor.to_owned()),
        });
        Ok(true)
    }
}
