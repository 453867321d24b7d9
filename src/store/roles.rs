//! The durable store's contract, one trait per role: [`Sessions`], [`Turns`] (committed
//! with their message id's claim), the e-mail [`Outbox`], the badge photos' [`Jobs`], the
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
    /// A question the FAQ declined, by its grouping key (see
    /// [`crate::domain::group_key`]): counted with the turn, so a redelivery is not
    /// counted twice. Never the sender.
    pub unanswered: Option<String>,
    /// The time of the turn, milliseconds since the Unix epoch.
    pub now_ms: i64,
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

/// An e-mail due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// The outbox row.
    pub id: i64,
    /// The request it carries.
    pub request: RequestRecord,
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

/// The e-mail outbox: one row per request, delivered by the mail worker.
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
    /// Records a failed attempt and when to try again.
    async fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError>;
    /// Records a permanent rejection (SMTP 5xx): like [`Outbox::mark_failed`], and once the
    /// e-mail has been rejected `dead_after` times, it is dead-lettered ([`MailState::Dead`])
    /// instead. The state it is left in.
    async fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError>;
}

/// Badge photos accepted and not yet answered.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Claims the job's message id with `reply` (the webhook's answer) and stores the job,
    /// in one durable transaction: once this returns [`Enqueued::Queued`], the photo is
    /// read and answered even if the process stops right after. A message id already
    /// claimed — by a photo or a text — stores nothing and gives its first reply back.
    async fn enqueue_photo(&self, job: PhotoJob, reply: Vec<String>) -> Result<Enqueued, StoreError>;
    /// Photo jobs not yet done, oldest first, at most `limit`.
    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError>;
    /// Records that the job's result was sent, or can never be: the job is forgotten (its
    /// message id's claim stays, so a redelivery still gets the first reply). False when
    /// there was no such job.
    async fn photo_done(&self, id: i64) -> Result<bool, StoreError>;
}

/// What the CLI and the admin API read.
#[async_trait]
pub trait Reports: Send + Sync {
    /// The latest requests, newest first.
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError>;
    /// One request by ticket (any case, surrounding blanks ignored).
    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError>;
    /// The most frequent declined questions, most frequent first.
    async fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError>;
}

/// Keeping the tables small.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Forgets message ids received before `messages_before_ms` and sessions inactive since
    /// before `sessions_before_ms`; requests and the outbox are kept. The rows removed.
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
pub trait Store: Conversations + Outbox + Jobs + Reports + Maintenance {}

impl<T: Conversations + Outbox + Jobs + Reports + Maintenance + ?Sized> Store for T {}
