//! The durable store's contract: conversation turns committed atomically with the request
//! they create and the message id they answer, the e-mail outbox, the badge photos waiting
//! for their result, and the request records the CLI shows.
//!
//! [`Ledger`] is synchronous (SQLite blocks); async callers go through [`Durable`]. A turn's
//! commit is handed to the store's own writer ([`Ledger::submit`]) and awaited without a
//! thread; a session the store holds in memory is read without one
//! ([`Ledger::cached_session`]); anything else runs on tokio's blocking pool behind a
//! semaphore, so that a burst of webhooks never grows that pool. A PostgreSQL
//! implementation for several replicas would implement the same trait, with the same
//! atomicity: one transaction per [`Ledger::commit`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{SessionStore, StoreError};
use crate::domain::{Address, Channel, MailState, MessageId, NewRequest, RequestRecord, Session, Unanswered};
use crate::engine::Lang;

/// How long a message id is remembered: providers retry within minutes, a week is ample.
pub const MESSAGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an inactive conversation (its language, a badge identification) is kept.
pub const SESSION_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// One handled message, to commit in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// The user.
    pub user: &'a Address,
    /// The channel's id of the message: a second turn with the same one (on the user's
    /// channel) commits nothing and gets the first one's messages back.
    pub message_id: Option<&'a MessageId>,
    /// The session after the message.
    pub session: &'a Session,
    /// The version the session had when loaded ([`Ledger::load_versioned`]); a different
    /// stored version fails the commit with [`StoreError::Conflict`].
    pub session_version: i64,
    /// The reply; with a request, [`TICKET_PLACEHOLDER`](crate::domain::TICKET_PLACEHOLDER) is replaced by its ticket.
    pub messages: &'a [String],
    /// The request the message confirmed, if any.
    pub request: Option<&'a NewRequest>,
    /// A question the FAQ declined, by its grouping key (see
    /// [`crate::domain::group_key`]): counted with the turn, so a redelivery is not
    /// counted twice. Never the sender.
    pub unanswered: Option<&'a str>,
    /// The time of the turn, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// A [`Turn`] that owns its parts, to hand over to a store that commits it later
/// ([`Ledger::submit`]).
#[derive(Debug, Clone)]
pub struct OwnedTurn {
    /// See [`Turn::user`].
    pub user: Address,
    /// See [`Turn::message_id`].
    pub message_id: Option<MessageId>,
    /// See [`Turn::session`].
    pub session: Session,
    /// See [`Turn::session_version`].
    pub session_version: i64,
    /// See [`Turn::messages`].
    pub messages: Vec<String>,
    /// See [`Turn::request`].
    pub request: Option<NewRequest>,
    /// See [`Turn::unanswered`].
    pub unanswered: Option<String>,
    /// See [`Turn::now_ms`].
    pub now_ms: i64,
}

impl OwnedTurn {
    /// The turn, borrowed.
    pub fn turn(&self) -> Turn<'_> {
        Turn {
            user: &self.user,
            message_id: self.message_id.as_ref(),
            session: &self.session,
            session_version: self.session_version,
            messages: &self.messages,
            request: self.request.as_ref(),
            unanswered: self.unanswered.as_deref(),
            now_ms: self.now_ms,
        }
    }
}

impl From<&Turn<'_>> for OwnedTurn {
    fn from(t: &Turn<'_>) -> Self {
        OwnedTurn {
            user: t.user.clone(),
            message_id: t.message_id.cloned(),
            session: t.session.clone(),
            session_version: t.session_version,
            messages: t.messages.to_vec(),
            request: t.request.cloned(),
            unanswered: t.unanswered.map(str::to_owned),
            now_ms: t.now_ms,
        }
    }
}

/// Where the result of a turn handed to [`Ledger::submit`] arrives, once it is committed.
pub type CommitReceiver = tokio::sync::oneshot::Receiver<Result<Committed, StoreError>>;

/// What [`Ledger::commit`] did.
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
/// kept until it is ([`Ledger::enqueue_photo`]).
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
    /// The job's row, for [`Ledger::photo_done`].
    pub id: i64,
    /// The job.
    pub job: PhotoJob,
}

/// What [`Ledger::enqueue_photo`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The message id was claimed and the job stored under this id.
    Queued(i64),
    /// The message id had already been handled: nothing was written; its first reply.
    Replayed(Vec<String>),
}

/// The durable store. Implementations must make [`Ledger::commit`] atomic: the session,
/// the request, its outbox row and the message id's reply are all written, or none; and
/// conditional on the session's version, so two messages of one user handled at once (a
/// double-tapped "yes") cannot both act on the same state.
pub trait Ledger: SessionStore {
    /// The user's session and its version, which each commit increments (0: none stored).
    fn load_versioned(&self, user: &Address) -> Result<(Session, i64), StoreError>;
    /// The messages committed for `message_id` on `channel`, if it was already handled.
    fn replay(&self, channel: Channel, message_id: &MessageId) -> Result<Option<Vec<String>>, StoreError>;
    /// Commits a turn (see [`Turn`]); allocates the request's ticket inside the transaction.
    fn commit(&self, turn: &Turn<'_>) -> Result<Committed, StoreError>;
    /// Queues `turn` to be committed as [`Ledger::commit`] would, and returns at once with
    /// where its result will arrive: async callers need no blocking thread to wait for it.
    /// A store that only commits synchronously gives the turn back.
    fn submit(&self, turn: Box<OwnedTurn>) -> Result<CommitReceiver, Box<OwnedTurn>> {
        Err(turn)
    }
    /// The user's session and version as last committed, when the store holds them in
    /// memory: no I/O. `None` means "ask [`Ledger::load_versioned`]", not "no session".
    fn cached_session(&self, user: &Address) -> Option<(Session, i64)> {
        let _ = user;
        None
    }
    /// Queued e-mails due at `now_ms`, oldest first.
    fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;
    /// When the earliest queued e-mail is due, if any is queued.
    fn next_mail_due(&self) -> Result<Option<i64>, StoreError>;
    /// When the earliest queued e-mail due strictly after `after_ms` is due: what the worker
    /// waits for while the ones due now are in flight.
    fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.next_mail_due()?.map(|at| at.max(after_ms + 1)))
    }
    /// E-mails queued and not yet delivered, for the metrics; `None` when the store cannot
    /// tell cheaply.
    fn outbox_depth(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// The most frequent declined questions, most frequent first.
    fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }
    /// Records that the SMTP server accepted the e-mail.
    fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError>;
    /// Records a permanent rejection (SMTP 5xx): like [`Ledger::mark_failed`], and once the
    /// e-mail has been rejected `dead_after` times, it is dead-lettered ([`MailState::Dead`])
    /// instead. The state it is left in.
    fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError>;
    /// E-mails dead-lettered, for the metrics; `None` when the store cannot count them.
    fn dead_mail(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// The latest requests, newest first.
    fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError>;
    /// One request by ticket.
    fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError>;
    /// Claims the job's message id with `reply` (the webhook's answer) and stores the job, in
    /// one durable transaction: once this returns [`Enqueued::Queued`], the photo is read
    /// and answered even if the process stops right after. A message id already claimed —
    /// by a photo or a text — stores nothing and gives its first reply back.
    fn enqueue_photo(&self, job: &PhotoJob, reply: &[String]) -> Result<Enqueued, StoreError>;
    /// Photo jobs not yet done, oldest first, at most `limit`.
    fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError>;
    /// Records that the job's result was sent, or can never be: the job is forgotten (its
    /// message id's claim stays, so a redelivery still gets the first reply). False when
    /// there was no such job.
    fn photo_done(&self, id: i64) -> Result<bool, StoreError>;
    /// Forgets message ids received before `messages_before_ms` and sessions inactive since
    /// before `sessions_before_ms`; requests and the outbox are kept. The rows removed.
    fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError>;
}

/// A [`Ledger`] for async callers. Commits and cached sessions need no thread (see the
/// module doc); other calls run on the blocking pool, at most `permits` at a time
/// ([`CONCURRENT_CALLS`](super::sqlite::CONCURRENT_CALLS) for SQLite), so a burst of
/// webhooks waits on the semaphore instead of growing the blocking pool.
#[derive(Clone)]
pub struct Durable {
    ledger: Arc<dyn Ledger>,
    gate: Arc<Semaphore>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").field("permits", &self.gate.available_permits()).finish()
    }
}

impl Durable {
    /// Wraps `ledger`, allowing `permits` calls in flight.
    pub fn new(ledger: Arc<dyn Ledger>, permits: usize) -> Self {
        Durable { ledger, gate: Arc::new(Semaphore::new(permits.max(1))) }
    }

    /// The ledger, for blocking callers (the CLI).
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Prunes old message ids and sessions now, then every `every`, forever (see
    /// [`MESSAGE_RETENTION`], [`SESSION_RETENTION`]): without it both tables only grow.
    pub async fn prune_forever(self, every: Duration) {
        loop {
            let now = crate::domain::now_ms();
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let (m, s) =
                (now.saturating_sub(ms(MESSAGE_RETENTION)), now.saturating_sub(ms(SESSION_RETENTION)));
            match self.run(move |l| l.prune(m, s)).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "pruned old message ids and sessions"),
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The user's session and its version: from the store's memory when it has them,
    /// else read on the blocking pool.
    pub async fn load_session(&self, user: &Address) -> Result<(Session, i64), StoreError> {
        if let Some(hit) = self.ledger.cached_session(user) {
            return Ok(hit);
        }
        let user = user.clone();
        self.run(move |l| l.load_versioned(&user)).await
    }

    /// Commits `turn` (see [`Ledger::commit`]). A store that queues turns
    /// ([`Ledger::submit`]) is awaited without a blocking thread; the others run on the
    /// blocking pool. Either way, once handed over the turn is committed even if the caller
    /// is dropped.
    pub async fn commit(&self, turn: OwnedTurn) -> Result<Committed, StoreError> {
        match self.ledger.submit(Box::new(turn)) {
            Ok(done) => {
                done.await.map_err(|_| StoreError::Backend("the store stopped before committing".into()))?
            }
            Err(turn) => self.run(move |l| l.commit(&turn.turn())).await,
        }
    }

    /// Runs `f` on the blocking pool. Once started, `f` runs to the end even if the caller
    /// is dropped (a client hanging up mid-commit still gets its turn committed).
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Ledger) -> Result<R, StoreError> + Send + 'static,
    {
        let _permit = self.gate.acquire().await.map_err(|_| StoreError::Backend("store is closed".into()))?;
        let ledger = Arc::clone(&self.ledger);
        tokio::task::spawn_blocking(move || f(&*ledger))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}
