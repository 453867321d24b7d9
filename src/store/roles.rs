//! The durable store's contract, one trait per role: [`Sessions`], [`Turns`] (committed
//! with their message id's claim), the e-mail [`Outbox`], the [`Outbound`] message queue,
//! the badge photos' [`Jobs`], the
//! [`Reports`] the CLI and the admin API read, and [`Maintenance`]. [`Store`] is all of
//! them; each caller holds the roles it uses.
//!
//! The traits are async (`#[async_trait]`): a backend on an async driver (PostgreSQL)
//! implements them directly, and callers hold them as trait objects (`Arc<dyn Store>`,
//! `Arc<dyn Outbox>`), which native `async fn` in traits does not allow. SQLite blocks: it
//! bridges with its writer thread for commits and the blocking pool for the rest.
//!
//! The store keeps data, not rules: a session is an opaque value (the JSON the desk
//! writes) with a version the store increments on each write and checks on commit.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Address, Channel, MailState, MessageId, NewRequest, RequestRecord, Unanswered};
use crate::engine::Lang;

/// How long a message id is remembered: providers retry within minutes, a week is ample.
pub const MESSAGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an inactive conversation (its language, a badge identification) is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// A user's session as stored: opaque data and its version (1 after the first write, then
/// one more per write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// What the desk wrote (JSON).
    pub data: String,
    /// The version, for the commit's check.
    pub version: i64,
}

/// One handled message, to commit in one transaction.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The user.
    pub user: Address,
    /// The channel's id of the message: a second turn with the same one (on the user's
    /// channel) commits nothing and gets the first one's messages back.
    pub message_id: Option<MessageId>,
    /// The session after the message, as data to store.
    pub session: String,
    /// The version the session had when loaded (0: none stored); a different stored
    /// version fails the commit with [`StoreError::Conflict`].
    pub session_version: i64,
    /// The reply; with a request, [`TICKET_PLACEHOLDER`](crate::domain::TICKET_PLACEHOLDER)
    /// is replaced by its ticket.
    pub messages: Vec<String>,
    /// The request the message confirmed, if any.
    pub request: Option<NewRequest>,
    /// An e-mail that is not a request (telling HR a conversation was handed over to
    /// them), queued in the outbox with the turn: delivered and retried like a request's,
    /// with no ticket, never listed or counted as a request.
    pub mail: Option<NewMail>,
    /// A question the FAQ declined, by its grouping key (see
    /// [`crate::domain::group_key`]): counted with the turn, so a redelivery is not
    /// counted twice. Never the sender.
    pub unanswered: Option<String>,
    /// The time of the turn, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// Messages to deliver later through the outbound queue ([`Outbound`]), committed with
    /// the turn: for a channel whose replies do not go back in the webhook's answer. A
    /// payload's [`TICKET_PLACEHOLDER`](crate::domain::TICKET_PLACEHOLDER) is replaced by
    /// the turn's ticket. A turn with a message id that queues messages also records the
    /// user's last inbound time (see [`OutboundItem::last_inbound_ms`]).
    pub outbound: Vec<NewOutbound>,
}

/// What [`Turns::commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The messages to send back: this turn's, or those of the turn first committed with
    /// the same message id.
    pub messages: Vec<String>,
    /// The ticket allocated for this turn's request.
    pub ticket: Option<String>,
    /// True when the message id had already been committed: nothing was written.
    pub replayed: bool,
}

/// What happened to an e-mail at one point of its delivery history ([`MailEvent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailEventKind {
    /// The SMTP server accepted it.
    Sent,
    /// An attempt failed (network, timeout, a temporary SMTP refusal); tried again later.
    Failed,
    /// The SMTP server refused it permanently (5xx); tried again later, or dead-lettered.
    Rejected,
    /// Queued again from the console.
    Resent,
}

impl MailEventKind {
    /// The stored name: `sent`, `failed`, `rejected`, `resent`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailEventKind::Sent => "sent",
            MailEventKind::Failed => "failed",
            MailEventKind::Rejected => "rejected",
            MailEventKind::Resent => "resent",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<MailEventKind> {
        match s {
            "sent" => Some(MailEventKind::Sent),
            "failed" => Some(MailEventKind::Failed),
            "rejected" => Some(MailEventKind::Rejected),
            "resent" => Some(MailEventKind::Resent),
            _ => None,
        }
    }
}

/// One event of an e-mail's delivery history, recorded in the same transaction as the
/// outbox's change of state ([`Outbox::mark_sent`], [`Outbox::mark_failed`],
/// [`Outbox::mark_rejected`], [`Resend::resend_mail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailEvent {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// What happened.
    pub kind: MailEventKind,
    /// A failure's or a rejection's error, as the SMTP server or the network gave it.
    pub error: Option<String>,
    /// After a failure or a rejection, when the next attempt is due; `None` once
    /// dead-lettered.
    pub retry_at_ms: Option<i64>,
    /// Who queued it again (a console account's e-mail), for a resend.
    pub actor: Option<String>,
}

/// An e-mail that is not a request, as a turn queues it ([`Turn::mail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// Where it goes.
    pub recipient: String,
    /// Its subject.
    pub subject: String,
    /// Its plain-text body.
    pub body: String,
}

/// A [`NewMail`] as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMail {
    /// The e-mail.
    pub mail: NewMail,
    /// When it was queued, ms since the Unix epoch.
    pub created_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
}

/// What an outbox row carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMail {
    /// A request's e-mail.
    Request(Box<RequestRecord>),
    /// An e-mail that is not a request.
    Other(StoredMail),
}

/// An e-mail due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The outbox row.
    pub id: i64,
    /// What it carries.
    pub mail: OutboxMail,
}

impl OutboxItem {
    /// The request it carries, if it is a request's e-mail.
    pub fn request(&self) -> Option<&RequestRecord> {
        match &self.mail {
            OutboxMail::Request(r) => Some(r),
            OutboxMail::Other(_) => None,
        }
    }

    /// Delivery attempts so far.
    pub fn attempts(&self) -> u32 {
        match &self.mail {
            OutboxMail::Request(r) => r.attempts,
            OutboxMail::Other(m) => m.attempts,
        }
    }
}

/// A badge photo accepted for reading: a promise that a result will be sent to the user,
/// kept until it is ([`Jobs::enqueue_photo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoJob {
    /// The user: the result goes there.
    pub user: Address,
    /// The bot's own address on the user's channel: the result comes from there.
    pub bot: Address,
    /// The channel's id of the message: a redelivery of it finds the claim and queues
    /// nothing.
    pub message_id: Option<MessageId>,
    /// Where the channel serves the photo.
    pub media_url: String,
    /// Its declared type.
    pub content_type: Option<String>,
    /// The user's language when the photo arrived: the result is written in it.
    pub lang: Lang,
    /// When the photo was accepted, ms since the Unix epoch.
    pub created_ms: i64,
}

/// A [`PhotoJob`] as stored, waiting for its result to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPhoto {
    /// The job's row, for [`Jobs::photo_done`].
    pub id: i64,
    /// The job.
    pub job: PhotoJob,
}

/// What [`Jobs::enqueue_photo`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The message id was claimed and the job stored under this id.
    Queued(i64),
    /// The message id had already been handled: nothing was written; its first reply.
    Replayed(Vec<String>),
}

/// A message to queue for delivery ([`Outbound`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbound {
    /// The user it goes to (and so the channel).
    pub to: Address,
    /// The bot's own address it goes from, when the channel needs one (Twilio's `From`).
    pub from: Option<Address>,
    /// What it says, as the desk wrote it (the JSON of [`crate::domain::Outgoing`]); the
    /// store does not read it.
    pub payload: String,
}

/// A queued message claimed for delivery ([`Outbound::claim_outbound`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundItem {
    /// The row.
    pub id: i64,
    /// The user it goes to.
    pub to: Address,
    /// The bot's address it goes from, if any.
    pub from: Option<Address>,
    /// What it says.
    pub payload: String,
    /// Attempts so far, this claim included.
    pub attempts: u32,
    /// When it was queued.
    pub created_ms: i64,
    /// When the user last wrote on this channel, as far as the store knows (WhatsApp's
    /// 24-hour window is measured from it).
    pub last_inbound_ms: Option<i64>,
}

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// Waiting, or being attempted.
    Queued,
    /// The channel accepted it.
    Sent,
    /// Given up: refused for good, or never sendable.
    Dropped,
}

/// A queued message as stored, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    /// The message.
    pub item: OutboundItem,
    /// Its state.
    pub state: OutboundState,
    /// The channel's id of the message once sent.
    pub provider_message_id: Option<String>,
    /// The last failure, or why it was dropped.
    pub last_error: Option<String>,
    /// When the next attempt is due (queued only).
    pub next_attempt_ms: i64,
    /// When it was sent.
    pub sent_ms: Option<i64>,
}

/// How many queued messages are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundCounts {
    /// Waiting or in flight.
    pub queued: u64,
    /// Accepted by their channel.
    pub sent: u64,
    /// Given up.
    pub dropped: u64,
}

/// Users' sessions, read.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// The user's session as stored, `None` when they have none.
    async fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError>;
    /// What the store holds in memory of the user's session, with no I/O: `Some(None)` when
    /// it knows they have none, `None` when it does not know (ask [`Sessions::session`]).
    fn cached_session(&self, user: &Address) -> Option<Option<StoredSession>> {
        let _ = user;
        None
    }
}

/// Conversation turns, committed atomically and deduplicated by message id.
#[async_trait]
pub trait Turns: Send + Sync {
    /// Commits `turn` in one transaction: the message id's claim and its reply, the session
    /// (if its stored version is still `turn.session_version`, else
    /// [`StoreError::Conflict`] and nothing written), a request with its ticket (unique and
    /// gap-free per year, allocated inside the transaction) and outbox row, a declined
    /// question's count — all or none. A message id already claimed commits nothing and
    /// gets the first reply back. Once called, the turn is committed even if the caller
    /// is dropped.
    async fn commit(&self, turn: Turn) -> Result<Committed, StoreError>;
    /// The messages committed for `message_id` on `channel`, if it was already handled.
    async fn replay(
        &self,
        channel: Channel,
        message_id: &MessageId,
    ) -> Result<Option<Vec<String>>, StoreError>;
}

/// The e-mail outbox: one row per request, and one per other e-mail a turn queued
/// ([`Turn::mail`]), delivered by the mail worker.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Queued e-mails due at `now_ms`, oldest first.
    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;
    /// Takes the e-mail for one delivery attempt, until `until_ms`: false when it is no
    /// longer queued and due at `now_ms` — another worker (another replica on the same
    /// database) took it, or it was delivered. The lease ends with the attempt's
    /// [`Outbox::mark_sent`], [`Outbox::mark_failed`] or [`Outbox::mark_rejected`], or at
    /// `until_ms`, when the e-mail is due again: a worker that died mid-send leaves it to
    /// another.
    async fn claim_mail(&self, outbox_id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError>;
    /// When the earliest queued e-mail due strictly after `after_ms` is due: what the worker
    /// waits for while the ones due now are in flight.
    async fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError>;
    /// E-mails queued and not yet delivered.
    async fn outbox_depth(&self) -> Result<u64, StoreError>;
    /// E-mails dead-lettered.
    async fn dead_mail(&self) -> Result<u64, StoreError>;
    /// Records that the SMTP server accepted the e-mail.
    async fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError>;
    /// Records a failed attempt made at `at_ms` and when to try again.
    async fn mark_failed(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Records a permanent rejection (SMTP 5xx) at `at_ms`: like [`Outbox::mark_failed`],
    /// and once the e-mail has been rejected `dead_after` times, it is dead-lettered
    /// ([`MailState::Dead`]) instead. The state it is left in.
    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError>;
}

/// The durable outbound queue: every message that does not go back in a webhook's answer
/// (every reply on Meta's Cloud API, badge results, later replies) is committed here before
/// it is attempted, and claimed with a lease by the sender worker, so that several workers,
/// or replicas, never attempt one message at once.
#[async_trait]
pub trait Outbound: Send + Sync {
    /// Queues `items`, due at `now_ms`, in one transaction; their ids, in order.
    async fn queue_outbound(&self, items: Vec<NewOutbound>, now_ms: i64) -> Result<Vec<i64>, StoreError>;
    /// Claims up to `limit` queued messages due at `now_ms` and not claimed by anyone whose
    /// lease still runs, oldest due first: each is leased until `now_ms + lease_ms` and its
    /// attempts counted. A sent or dropped message is never claimed.
    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboundItem>, StoreError>;
    /// Records that the channel accepted the message, with its id there; stored before it
    /// returns, so a restart never sends it again (SQLite: in its log, flushed with the next
    /// durable commit). False when it was not queued.
    async fn outbound_sent(
        &self,
        id: i64,
        provider_message_id: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records a failed attempt worth repeating: the lease is released and the message due
    /// again at `retry_at_ms`.
    async fn outbound_retry(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError>;
    /// Gives the message up, with the reason.
    async fn outbound_dropped(&self, id: i64, reason: &str, at_ms: i64) -> Result<(), StoreError>;
    /// When the earliest queued message becomes claimable strictly after `after_ms` (due,
    /// and its lease expired): what the worker sleeps until.
    async fn next_outbound_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError>;
    /// Messages per state.
    async fn outbound_counts(&self) -> Result<OutboundCounts, StoreError>;
    /// One queued message as stored.
    async fn outbound_record(&self, id: i64) -> Result<Option<OutboundRecord>, StoreError>;
    /// Records that `user` wrote at `at_ms` (kept if an earlier time is given).
    async fn record_inbound(&self, user: &Address, at_ms: i64) -> Result<(), StoreError>;
}

/// Badge photos accepted and not yet answered.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Claims the job's message id with `reply` (the webhook's answer) and stores the job,
    /// in one durable transaction: once this returns [`Enqueued::Queued`], the photo is
    /// read and answered even if the process stops right after. A message id already
    /// claimed — by a photo or a text — stores nothing and gives its first reply back.
    /// The job is leased to its caller until `held_until_ms`: no other worker (or replica)
    /// claims it before then ([`Jobs::claim_photos`]).
    async fn enqueue_photo(
        &self,
        job: PhotoJob,
        reply: Vec<String>,
        held_until_ms: i64,
    ) -> Result<Enqueued, StoreError>;
    /// Photo jobs not yet done, oldest first, at most `limit`, leased or not (for
    /// listings and moves; a worker takes its jobs with [`Jobs::claim_photos`]).
    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError>;
    /// Takes up to `limit` jobs on one of `channels` whose lease has run out at `now_ms`
    /// (never leased, released, or held by a worker that died), oldest first, and leases
    /// them to the caller until `until_ms`. Two callers at once — two replicas on one
    /// database — never take the same job.
    async fn claim_photos(
        &self,
        channels: &[Channel],
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingPhoto>, StoreError>;
    /// Gives the jobs `ids` back (their lease ends now): a worker that stops without
    /// reading them lets another take them at once rather than after the lease.
    async fn release_photos(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Records that the job's result was sent, or can never be: the job is forgotten (its
    /// message id's claim stays, so a redelivery still gets the first reply). False when
    /// there was no such job.
    async fn photo_done(&self, id: i64) -> Result<bool, StoreError>;
    /// Marks the job done and queues its result `outbound`, due at `now_ms`, in one
    /// transaction: a crash can neither lose the result nor, by reading the photo again
    /// after a restart, queue it twice. False, and nothing queued, when there was no such
    /// job (another worker finished it).
    async fn finish_photo(
        &self,
        id: i64,
        outbound: Vec<NewOutbound>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// Which requests to list ([`Reports::find_requests`]); a field left `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestQuery {
    /// The request type's id.
    pub kind: Option<String>,
    /// Where its e-mail stands.
    pub mail: Option<MailState>,
    /// Filed at or after, ms since the Unix epoch.
    pub from_ms: Option<i64>,
    /// Filed before, ms since the Unix epoch.
    pub until_ms: Option<i64>,
}

impl RequestQuery {
    /// Whether `r` matches.
    pub fn matches(&self, r: &RequestRecord) -> bool {
        self.kind.as_ref().is_none_or(|k| &r.kind == k)
            && self.mail.is_none_or(|m| r.mail == m)
            && self.from_ms.is_none_or(|f| r.created_at_ms >= f)
            && self.until_ms.is_none_or(|u| r.created_at_ms < u)
    }
}

/// What the CLI and the admin API read.
#[async_trait]
pub trait Reports: Send + Sync {
    /// The latest requests, newest first.
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError>;
    /// The latest requests matching `query` among all of them, newest first, at most
    /// `limit`. By default a scan of [`Reports::requests`]; a database filters itself.
    async fn find_requests(
        &self,
        query: &RequestQuery,
        limit: usize,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let all = self.requests(usize::MAX).await?;
        Ok(all.into_iter().filter(|r| query.matches(r)).take(limit).collect())
    }
    /// How many requests match `query`, by request type, most first. By default a scan of
    /// [`Reports::requests`]; a database counts itself.
    async fn count_requests(&self, query: &RequestQuery) -> Result<Vec<(String, u64)>, StoreError> {
        let mut counts: Vec<(String, u64)> = Vec::new();
        for r in self.requests(usize::MAX).await?.into_iter().filter(|r| query.matches(r)) {
            match counts.iter_mut().find(|(k, _)| *k == r.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((r.kind, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(counts)
    }
    /// Every request type filed so far, sorted.
    async fn request_kinds(&self) -> Result<Vec<String>, StoreError> {
        let mut kinds: Vec<String> = self.requests(usize::MAX).await?.into_iter().map(|r| r.kind).collect();
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
    /// One request by ticket (any case, surrounding blanks ignored).
    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError>;
    /// The delivery history of the e-mail of the request `ticket` (any case, surrounding
    /// blanks ignored), oldest first; empty for an unknown ticket or an e-mail never tried.
    async fn mail_history(&self, ticket: &str) -> Result<Vec<MailEvent>, StoreError>;
    /// The most frequent declined questions, most frequent first.
    async fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError>;
}

/// Keeping the tables small.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Forgets message ids received before `messages_before_ms`, sent or dropped outbound
    /// messages queued before it, and sessions inactive since before `sessions_before_ms`;
    /// requests, the outbox and queued outbound messages are kept. The rows removed.
    async fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError>;
    /// Checks that the storage answers (`/healthz`); a store that cannot lose its storage
    /// has nothing to check.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What a conversation turn needs: the user's session, and the commit.
pub trait Conversations: Sessions + Turns {}

impl<T: Sessions + Turns + ?Sized> Conversations for T {}

/// Every role: what a backend implements, and what the composition root hands out; an
/// `Arc<dyn Store>` coerces to any one role's.
pub trait Store: Conversations + Outbox + Outbound + Jobs + Reports + Maintenance {}

impl<T: Conversations + Outbox + Outbound + Jobs + Reports + Maintenance + ?Sized> Store for T {}

/// What a console account may do: an admin also manages accounts; an agent answers
/// conversations, keeps the FAQ and follows requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountRole {
    /// Everything, accounts included.
    Admin,
    /// Everything but accounts.
    Agent,
}

impl AccountRole {
    /// The role's name as stored and typed: `admin`, `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::Agent => "agent",
        }
    }

    /// The role named `s` (`admin`, `agent`), if any.
    pub fn parse(s: &str) -> Option<AccountRole> {
        match s {
            "admin" => Some(AccountRole::Admin),
            "agent" => Some(AccountRole::Agent),
            _ => None,
        }
    }
}

/// A person who signs in to the web console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Their e-mail address, lowercase: the sign-in name, unique.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// What they may do.
    pub role: AccountRole,
    /// The password's argon2id hash in PHC string form; never the password.
    pub password_hash: String,
    /// When the account was made, ms since the Unix epoch.
    pub created_ms: i64,
}

/// A signed-in console session, kept server-side: the cookie holds a random token, the
/// store only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The SHA-256 of the cookie's token, hex.
    pub token_hash: String,
    /// The account signed in.
    pub email: String,
    /// The session's anti-forgery token, which every form carries back.
    pub csrf: String,
    /// When it was opened, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it stops being valid, ms since the Unix epoch.
    pub expires_ms: i64,
}

/// One change made through the console or the `users` command: who, when, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Who: an account's e-mail, or `cli` for the command line.
    pub actor: String,
    /// What kind of change: `account.add`, `faq.put`, …
    pub action: String,
    /// What it concerned: an entry id, an e-mail, a ticket.
    pub detail: String,
}

/// The web console's accounts, their sessions, sign-in throttling and the audit log.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Stores a new account; false (and nothing written) when its e-mail is taken.
    async fn add_account(&self, account: Account) -> Result<bool, StoreError>;
    /// The account with this e-mail (as stored: lowercase).
    async fn account(&self, email: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, by e-mail.
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Removes the account and closes its sessions; false when there was none.
    async fn remove_account(&self, email: &str) -> Result<bool, StoreError>;
    /// Replaces the account's password hash and closes its sessions; false when there is
    /// no such account.
    async fn set_password(&self, email: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// Stores a newly opened session.
    async fn open_session(&self, session: ConsoleSession) -> Result<(), StoreError>;
    /// The session with this token hash and its account, if it exists, has not expired
    /// at `now_ms` and its account still exists.
    async fn console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, Account)>, StoreError>;
    /// Closes a session (signing out); closing an unknown one does nothing.
    async fn close_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Records a failed sign-in under `key` (an account or a client address), and forgets
    /// that key's failures older than `forget_before_ms`.
    async fn sign_in_failed(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError>;
    /// How many failed sign-ins were recorded under `key` since `since_ms`.
    async fn sign_in_failures(&self, key: &str, since_ms: i64) -> Result<u32, StoreError>;
    /// Forgets the failed sign-ins under `key` (after a successful one).
    async fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError>;
    /// Appends to the audit log.
    async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError>;
    /// The latest audit entries, newest first.
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Who wrote a line of a conversation's transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The employee.
    Employee,
    /// The bot.
    Bot,
    /// An HR colleague, through the console.
    Agent,
}

impl Speaker {
    /// The stored name: `employee`, `bot`, `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Employee => "employee",
            Speaker::Bot => "bot",
            Speaker::Agent => "agent",
        }
    }

    /// The speaker named `s`.
    pub fn parse(s: &str) -> Option<Speaker> {
        match s {
            "employee" => Some(Speaker::Employee),
            "bot" => Some(Speaker::Bot),
            "agent" => Some(Speaker::Agent),
            _ => None,
        }
    }
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Who wrote it.
    pub speaker: Speaker,
    /// For an agent's line, their account's e-mail.
    pub author: Option<String>,
    /// What was written.
    pub text: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// A conversation as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The employee.
    pub user: Address,
    /// The bot's own address on the user's channel, when known: an agent's reply comes
    /// from there.
    pub bot: Option<Address>,
    /// Since when it waits for a person; `None` while the bot has it.
    pub handed_over_ms: Option<i64>,
    /// Its last line's time, ms since the Unix epoch.
    pub last_ms: i64,
    /// Its last line.
    pub last_text: String,
}

/// Conversations' transcripts and which of them are handed over to a person.
#[async_trait]
pub trait Transcripts: Send + Sync {
    /// Appends `lines` to `user`'s transcript (the conversation is created if new; its bot
    /// address kept when `bot` is `None`).
    async fn record(
        &self,
        user: &Address,
        bot: Option<&Address>,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError>;
    /// Marks the conversation handed over since `since_ms`, or (`None`) back with the bot.
    async fn set_handed_over(&self, user: &Address, since_ms: Option<i64>) -> Result<(), StoreError>;
    /// Conversations: those handed over first, longest waiting first, then the others,
    /// latest first; at most `limit`.
    async fn conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError>;
    /// One conversation.
    async fn conversation(&self, user: &Address) -> Result<Option<ConversationSummary>, StoreError>;
    /// The last `limit` lines of `user`'s transcript, oldest first.
    async fn transcript(&self, user: &Address, limit: usize) -> Result<Vec<TranscriptLine>, StoreError>;
    /// Forgets lines written before `before_ms`, and conversations with no line left that
    /// are not handed over. The rows removed.
    async fn prune_transcripts(&self, before_ms: i64) -> Result<usize, StoreError>;
}

/// Per-day counts of turns by what the bot did, for the console's dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// `answered`, `declined`, `handed_over`, `other`.
    pub kind: String,
    /// Turns.
    pub count: i64,
}

/// The figures of the console's dashboard, counted turn by turn.
#[async_trait]
pub trait Figures: Send + Sync {
    /// Counts one turn of `kind` on `day` (days since the epoch), and the FAQ topic it was
    /// answered from, if any.
    async fn count_turn(&self, day: i64, kind: &str, topic: Option<&str>) -> Result<(), StoreError>;
    /// Records how long a handed-over employee waited for a person's first reply, ms.
    async fn agent_replied(&self, at_ms: i64, waited_ms: i64) -> Result<(), StoreError>;
    /// The counts from `since_day` on, by day then kind.
    async fn day_counts(&self, since_day: i64) -> Result<Vec<DayCount>, StoreError>;
    /// The topics answered most since `since_day`, most first, with their counts.
    async fn top_topics(&self, since_day: i64, limit: usize) -> Result<Vec<(String, i64)>, StoreError>;
    /// The waits recorded since `since_ms`, ms.
    async fn reply_waits(&self, since_ms: i64) -> Result<Vec<i64>, StoreError>;
}

/// Sending a request's e-mail again, from the console.
#[async_trait]
pub trait Resend: Send + Sync {
    /// Queues the e-mail of the request `ticket` again, due at `now_ms`, whatever its state
    /// (sent, queued or dead-lettered), its permanent failures forgotten, and records in its
    /// history that `actor` did; false when there is no such request.
    async fn resend_mail(&self, ticket: &str, actor: &str, now_ms: i64) -> Result<bool, StoreError>;
}
