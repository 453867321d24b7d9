//! The store's roles on PostgreSQL (`WABOT_DB=postgres://…`): what several wabot replicas
//! share, so that any of them may take any message.
//!
//! Driver: tokio-postgres with a deadpool pool. Both are small (no macros, no compile-time
//! query checking needing a database at build time), async all the way, on the rustls
//! already in the tree; tokio-postgres gives the connection's message stream, which is
//! where `LISTEN`/`NOTIFY` arrive.
//!
//! Every guarantee SQLite gives within one process holds here across processes, by the
//! database's own locks rather than by a writer thread:
//! - a turn is one transaction (READ COMMITTED): the message id is claimed first with
//!   `INSERT … ON CONFLICT DO NOTHING`. A duplicate racing the first delivery blocks on the
//!   first one's uncommitted row, then finds it committed and returns its reply — or, if
//!   the first rolled back, claims it itself;
//! - the session is written only over the version the turn was computed on (`UPDATE …
//!   WHERE version = $n`; a concurrent writer makes it match no row): a stale turn is a
//!   [`StoreError::Conflict`] and the desk computes it again on a fresh read. There is no
//!   session cache: every turn reads its session (one primary-key lookup), so a
//!   conversation moving between replicas turn by turn is never answered from stale data;
//! - a ticket number is taken from its year's row of `ticket_seq` (`INSERT … ON CONFLICT DO
//!   UPDATE … RETURNING`), locked until the turn commits or rolls back: unique and gap-free;
//! - an e-mail is taken for one attempt by [`Outbox::claim_mail`] (`FOR UPDATE SKIP LOCKED`
//!   and a lease in `next_attempt_ms`): any number of replicas drain the outbox, a mail is
//!   sent once, and one taken by a replica that died is due again when its lease ends;
//! - migrations run under an advisory lock ([`schema`]), pruning under another
//!   ([`Maintenance::prune`] returns 0 at once where another replica is pruning).
//!
//! A dropped connection fails the calls in flight with [`StoreError::Backend`] (the webhook
//! answers 503, nothing half-written: a transaction that did not commit rolled back), and
//! the pool opens new connections for the next calls.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::StoreError;
use super::roles::{
    Committed, Enqueued, Jobs, MailEvent, MailEventKind, Maintenance, NewMail, NewOutbound, Outbox,
    OutboxItem, OutboxMail, PendingPhoto, PhotoJob, Reports, Sessions, StoredMail, StoredSession, Turn,
    Turns,
};
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord, TICKET_PLACEHOLDER, Unanswered};
use crate::domain::{format_ticket, utc_year};
use crate::engine::Lang;

pub mod connect;
mod console;
pub mod faq;
pub mod import;
mod outbound;
mod schema;

pub use connect::redacted;

/// The advisory lock migrations run under.
const ADVISORY_MIGRATE: i64 = 0x7761_626f_7401;
/// The advisory lock pruning runs under.
const ADVISORY_PRUNE: i64 = 0x7761_626f_7402;
/// The advisory lock FAQ changes are journaled under.
const ADVISORY_FAQ: i64 = 0x7761_626f_7403;

/// Connections per process: the webhook's turns, the mail worker, the admin API. Three
/// replicas hold 3 × this, well under PostgreSQL's default `max_connections` of 100.
pub const POOL_SIZE: usize = 16;

/// How long a call waits for a free connection, or for one to be opened.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 2000;

/// A failure while `doing` something, as a [`StoreError`]: a serialization failure or a
/// deadlock (the transaction was rolled back, nothing written) is a
/// [`StoreError::Conflict`], handled like a stale session; anything else is the backend's.
fn pg<E: Into<PgFailure>>(doing: impl std::fmt::Display) -> impl FnOnce(E) -> StoreError {
    move |e| match e.into() {
        PgFailure::Db(e)
            if matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED) =>
        {
            StoreError::Conflict
        }
        PgFailure::Db(e) => StoreError::backend(format!("postgres: {doing}: {}", db_message(&e))),
        PgFailure::Pool(deadpool_postgres::PoolError::Backend(e)) => {
            StoreError::backend(format!("postgres: {doing}: {}", db_message(&e)))
        }
        PgFailure::Pool(e) => StoreError::backend(format!("postgres: {doing}: {e}")),
    }
}

/// What the driver says, with the server's message when there is one.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The two errors a call can end in.
enum PgFailure {
    Db(tokio_postgres::Error),
    Pool(deadpool_postgres::PoolError),
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        PgFailure::Db(e)
    }
}

impl From<deadpool_postgres::PoolError> for PgFailure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgFailure::Pool(e)
    }
}

/// The durable store on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL; see [`connect`]), with
    /// `password` when the URL has none, and brings its schema up to date.
    pub async fn open(url: &str, password: Option<&str>) -> Result<PostgresStore, StoreError> {
        let target = connect::target(url, password)?;
        let manager = Manager::from_config(
            target.config,
            target.tls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::backend(format!("postgres: building the pool: {e}")))?;
        let store = PostgresStore { pool };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pg("connecting"))
    }

    /// The schema version (number of migrations applied).
    pub async fn schema_version(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let v: Option<i32> = client
            .query_one("SELECT max(version) FROM wabot_migrations", &[])
            .await
            .map_err(pg("reading the schema version"))?
            .get(0);
        Ok(usize::try_from(v.unwrap_or(0)).unwrap_or(0))
    }

    /// The pool (the migration command and the FAQ journal use it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Fr => "fr",
    }
}

fn lang_from_code(code: &str) -> Lang {
    if code == "fr" { Lang::Fr } else { Lang::En }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn address(channel: &str, id: &str) -> Result<Address, StoreError> {
    let channel = Channel::parse(channel)
        .map_err(|e| StoreError::backend(format!("postgres: a stored channel: {e}")))?;
    Address::parse(channel, id).map_err(|e| StoreError::backend(format!("postgres: a stored address: {e}")))
}

const RECORD_COLUMNS: &str = "r.ticket, r.address, r.kind, r.kind_label, r.recipient, r.first_name, \
     r.last_name, r.employee_id, r.employee_email, r.department, r.details, r.lang, r.created_ms, \
     o.state, o.attempts, o.last_error, o.next_attempt_ms, o.sent_ms, o.id, r.channel";

fn record(row: &Row) -> Result<(i64, RequestRecord), StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::backend(format!("postgres: a request row: {e}"));
    let lang: String = row.try_get(11).map_err(get)?;
    let state: String = row.try_get(13).map_err(get)?;
    let mail = match state.as_str() {
        "sent" => MailState::Sent,
        "dead" => MailState::Dead,
        _ => MailState::Queued,
    };
    let attempts: i32 = row.try_get(14).map_err(get)?;
    let next: i64 = row.try_get(16).map_err(get)?;
    let channel: String = row.try_get(19).map_err(get)?;
    let id: String = row.try_get(1).map_err(get)?;
    Ok((
        row.try_get(18).map_err(get)?,
        RequestRecord {
            ticket: row.try_get(0).map_err(get)?,
            user: address(&channel, &id)?,
            kind: row.try_get(2).map_err(get)?,
            kind_label: row.try_get(3).map_err(get)?,
            recipient: row.try_get(4).map_err(get)?,
            first_name: row.try_get(5).map_err(get)?,
            last_name: row.try_get(6).map_err(get)?,
            employee_id: row.try_get(7).map_err(get)?,
            employee_email: row.try_get(8).map_err(get)?,
            department: row.try_get(9).map_err(get)?,
            details: row.try_get(10).map_err(get)?,
            lang: lang_from_code(&lang),
            created_at_ms: row.try_get(12).map_err(get)?,
            mail,
            attempts: u32::try_from(attempts).unwrap_or(0),
            last_error: row.try_get(15).map_err(get)?,
            next_attempt_ms: (mail == MailState::Queued).then_some(next),
            sent_at_ms: row.try_get(17).map_err(get)?,
        },
    ))
}

fn get_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(format!("postgres: a request row: {e}"))
}

/// A mail state as the outbox's `state` column stores it.
fn mail_state_name(m: MailState) -> &'static str {
    match m {
        MailState::Queued => "queued",
        MailState::Sent => "sent",
        MailState::Dead => "dead",
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

fn from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(StoreError::backend)
}

/// Claims the message id `sid` of `user` with `reply` (JSON) in `tx`: `None` when this is
/// its first delivery, else the reply stored with its first (a redelivery, here or on
/// another replica), and nothing written.
async fn claim_message(
    tx: &deadpool_postgres::Transaction<'_>,
    user: &Address,
    sid: &str,
    reply: &str,
    at_ms: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let channel = user.channel().as_str();
    let claim = tx
        .prepare_cached(
            "INSERT INTO messages (channel, message_id, address, reply, received_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, message_id) DO NOTHING",
        )
        .await
        .map_err(pg("claiming the message id"))?;
    let claimed = tx
        .execute(&claim, &[&channel, &sid, &user.id(), &reply, &at_ms])
        .await
        .map_err(pg("claiming the message id"))?;
    if claimed > 0 {
        return Ok(None);
    }
    let row = tx
        .query_one("SELECT reply FROM messages WHERE channel = $1 AND message_id = $2", &[&channel, &sid])
        .await
        .map_err(pg("reading the first reply"))?;
    Ok(Some(from_json(row.get(0))?))
}

/// One turn's transaction (see the module doc and [`Turns::commit`]).
async fn commit_turn(client: &mut deadpool_postgres::Client, turn: &Turn) -> Result<Committed, StoreError> {
    let tx = client.transaction().await.map_err(pg("starting a turn"))?;
    let (channel, address) = (turn.user.channel().as_str(), turn.user.id());
    if let Some(sid) = turn.message_id.as_ref().map(MessageId::as_str) {
        // Without a request the reply is final; with one it waits for its ticket.
        let reply = match turn.request {
            None => json(&turn.messages)?,
            Some(_) => "[]".to_owned(),
        };
        if let Some(messages) = claim_message(&tx, &turn.user, sid, &reply, turn.now_ms).await? {
            return Ok(Committed { messages, ticket: None, replayed: true });
        }
    }
    let written = if turn.session_version == 0 {
        let insert = tx
            .prepare_cached(
                "INSERT INTO sessions (channel, address, data, version, updated_ms) VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (channel, address) DO NOTHING",
            )
            .await
            .map_err(pg("writing the session"))?;
        tx.execute(&insert, &[&channel, &address, &turn.session, &turn.now_ms]).await
    } else {
        let update = tx
            .prepare_cached(
                "UPDATE sessions SET data = $3, version = version + 1, updated_ms = $4
                 WHERE channel = $1 AND address = $2 AND version = $5",
            )
            .await
            .map_err(pg("writing the session"))?;
        tx.execute(&update, &[&channel, &address, &turn.session, &turn.now_ms, &turn.session_version]).await
    }
    .map_err(pg("writing the session"))?;
    if written == 0 {
        // Dropping the transaction rolls the claim back.
        return Err(StoreError::Conflict);
    }
    let ticket = match &turn.request {
        None => None,
        Some(req) => {
            let year = i32::try_from(utc_year(turn.now_ms)).unwrap_or(i32::MAX);
            let seq: i64 = tx
                .query_one(
                    "INSERT INTO ticket_seq (year, last) VALUES ($1, 1)
                     ON CONFLICT (year) DO UPDATE SET last = ticket_seq.last + 1 RETURNING last",
                    &[&year],
                )
                .await
                .map_err(pg("numbering the request"))?
                .get(0);
            let ticket = format_ticket(i64::from(year), seq);
            let request_id: i64 = tx
                .query_one(
                    "INSERT INTO requests (ticket, channel, address, message_id, kind, kind_label, recipient,
                         first_name, last_name, employee_id, employee_email, department, details, lang,
                         created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
                    &[
                        &ticket,
                        &channel,
                        &address,
                        &turn.message_id.as_ref().map(MessageId::as_str),
                        &req.kind,
                        &req.kind_label,
                        &req.recipient,
                        &req.first_name,
                        &req.last_name,
                        &req.employee_id,
                        &req.employee_email,
                        &req.department,
                        &req.details,
                        &lang_code(req.lang),
                        &turn.now_ms,
                    ],
                )
                .await
                .map_err(pg("storing the request"))?
                .get(0);
            tx.execute(
                "INSERT INTO outbox (request_id, state, next_attempt_ms) VALUES ($1, 'queued', $2)",
                &[&request_id, &turn.now_ms],
            )
            .await
            .map_err(pg("queueing the e-mail"))?;
            Some(ticket)
        }
    };
    if let Some(mail) = &turn.mail {
        tx.execute(
            "INSERT INTO outbox (state, next_attempt_ms, recipient, subject, body, created_ms)
             VALUES ('queued', $1, $2, $3, $4, $1)",
            &[&turn.now_ms, &mail.recipient, &mail.subject, &mail.body],
        )
        .await
        .map_err(pg("queueing an e-mail"))?;
    }
    let messages: Vec<String> = match &ticket {
        Some(t) => turn.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, t)).collect(),
        None => turn.messages.clone(),
    };
    if let (Some(sid), Some(_)) = (&turn.message_id, &ticket) {
        tx.execute(
            "UPDATE messages SET reply = $3 WHERE channel = $1 AND message_id = $2",
            &[&channel, &sid.as_str(), &json(&messages)?],
        )
        .await
        .map_err(pg("storing the reply"))?;
    }
    if !turn.outbound.is_empty() {
        let payloads: Vec<NewOutbound> = turn
            .outbound
            .iter()
            .map(|o| match &ticket {
                Some(t) => NewOutbound { payload: o.payload.replace(TICKET_PLACEHOLDER, t), ..o.clone() },
                None => o.clone(),
            })
            .collect();
        outbound::insert(&tx, payloads, turn.now_ms).await?;
        if turn.message_id.is_some() {
            outbound::inbound(&tx, &turn.user, turn.now_ms).await?;
        }
    }
    if let Some(question) = &turn.unanswered {
        tx.execute(
            "INSERT INTO unanswered (question, count, first_ms, last_ms) VALUES ($1, 1, $2, $2)
             ON CONFLICT (question) DO UPDATE SET count = unanswered.count + 1, last_ms = excluded.last_ms",
            &[question, &turn.now_ms],
        )
        .await
        .map_err(pg("counting the declined question"))?;
    }
    tx.commit().await.map_err(pg("committing the turn"))?;
    Ok(Committed { messages, ticket, replayed: false })
}

#[async_trait]
impl Sessions for PostgresStore {
    async fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError> {
        let client = self.client().await?;
        let read = client
            .prepare_cached("SELECT data, version FROM sessions WHERE channel = $1 AND address = $2")
            .await
            .map_err(pg("reading a session"))?;
        let row = client
            .query_opt(&read, &[&user.channel().as_str(), &user.id()])
            .await
            .map_err(pg("reading a session"))?;
        Ok(row.map(|r| StoredSession { data: r.get(0), version: r.get(1) }))
    }
}

#[async_trait]
impl Turns for PostgresStore {
    async fn commit(&self, turn: Turn) -> Result<Committed, StoreError> {
        let store = self.clone();
        // On a task of its own: a caller that goes away (a client hanging up) does not
        // abandon the transaction half-way; it commits or rolls back whole.
        let task = tokio::spawn(async move {
            let mut client = store.client().await?;
            commit_turn(&mut client, &turn).await
        });
        task.await.map_err(|e| StoreError::backend(format!("postgres: the turn's task: {e}")))?
    }

    async fn replay(
        &self,
        channel: Channel,
        message_id: &MessageId,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT reply FROM messages WHERE channel = $1 AND message_id = $2",
                &[&channel.as_str(), &message_id.as_str()],
            )
            .await
            .map_err(pg("reading a reply"))?;
        row.map(|r| from_json(r.get(0))).transpose()
    }
}

fn count(row: &Row) -> u64 {
    u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let client = self.client().await?;
        // A row with no request is an e-mail of its own (see `Turn::mail`).
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, o.recipient, o.subject, o.body, o.created_ms, o.attempts
             FROM outbox o LEFT JOIN requests r ON r.id = o.request_id
             WHERE o.state = 'queued' AND o.next_attempt_ms <= $1
             ORDER BY o.next_attempt_ms, o.id LIMIT $2"
        );
        let rows =
            client.query(&sql, &[&now_ms, &sql_limit(limit)]).await.map_err(pg("reading the outbox"))?;
        let get = |e: tokio_postgres::Error| StoreError::backend(format!("postgres: an outbox row: {e}"));
        rows.iter()
            .map(|row| {
                let Some(recipient) = row.try_get::<_, Option<String>>(20).map_err(get)? else {
                    let (id, request) = record(row)?;
                    return Ok(OutboxItem { id, mail: OutboxMail::Request(Box::new(request)) });
                };
                let mail = NewMail {
                    recipient,
                    subject: row.try_get(21).map_err(get)?,
                    body: row.try_get(22).map_err(get)?,
                };
                let attempts: i32 = row.try_get(24).map_err(get)?;
                let stored = StoredMail {
                    mail,
                    created_ms: row.try_get(23).map_err(get)?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                };
                Ok(OutboxItem { id: row.try_get(18).map_err(get)?, mail: OutboxMail::Other(stored) })
            })
            .collect()
    }

    async fn claim_mail(&self, outbox_id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // SKIP LOCKED: a replica taking the same row at this moment makes this one give up
        // at once rather than wait for it.
        let taken = client
            .execute(
                "UPDATE outbox SET next_attempt_ms = $3 WHERE id = (
                     SELECT id FROM outbox WHERE id = $1 AND state = 'queued' AND next_attempt_ms <= $2
                     FOR UPDATE SKIP LOCKED)",
                &[&outbox_id, &now_ms, &until_ms],
            )
            .await
            .map_err(pg("taking an e-mail"))?;
        Ok(taken == 1)
    }

    async fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(next_attempt_ms) FROM outbox WHERE state = 'queued' AND next_attempt_ms > $1",
                &[&after_ms],
            )
            .await
            .map_err(pg("reading the outbox"))?;
        Ok(row.get(0))
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM outbox WHERE state = 'queued'", &[])
            .await
            .map_err(pg("counting the outbox"))?;
        Ok(count(&row))
    }

    async fn dead_mail(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM outbox WHERE state = 'dead'", &[])
            .await
            .map_err(pg("counting the dead letters"))?;
        Ok(count(&row))
    }

    async fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        // One statement: the row's change and its history's event commit together.
        let client = self.client().await?;
        client
            .execute(
                "WITH done AS (
                     UPDATE outbox SET state = 'sent', sent_ms = $2, attempts = attempts + 1, last_error = NULL
                     WHERE id = $1 RETURNING id)
                 INSERT INTO mail_events (outbox_id, at_ms, kind) SELECT id, $2, 'sent' FROM done",
                &[&outbox_id, &at_ms],
            )
            .await
            .map_err(pg("recording a delivery"))?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "WITH done AS (
                     UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_ms = $3
                     WHERE id = $1 AND state = 'queued' RETURNING id)
                 INSERT INTO mail_events (outbox_id, at_ms, kind, error, retry_at_ms)
                     SELECT id, $4, 'failed', $2, $3 FROM done",
                &[&outbox_id, &error, &retry_at_ms, &at_ms],
            )
            .await
            .map_err(pg("recording a failed delivery"))?;
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
        let client = self.client().await?;
        let dead_after = i32::try_from(dead_after.max(1)).unwrap_or(i32::MAX);
        let row = client
            .query_opt(
                "WITH done AS (
                     UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_ms = $3,
                         permanent_failures = permanent_failures + 1,
                         state = CASE WHEN permanent_failures + 1 >= $4 THEN 'dead' ELSE 'queued' END
                     WHERE id = $1 AND state = 'queued'
                     RETURNING id, state),
                 event AS (
                     INSERT INTO mail_events (outbox_id, at_ms, kind, error, retry_at_ms)
                     SELECT id, $5, 'rejected', $2, CASE WHEN state = 'dead' THEN NULL ELSE $3::bigint END
                     FROM done)
                 SELECT state FROM done",
                &[&outbox_id, &error, &retry_at_ms, &dead_after, &at_ms],
            )
            .await
            .map_err(pg("recording a rejection"))?;
        let dead = row.is_some_and(|r| r.get::<_, &str>(0) == "dead");
        Ok(if dead { MailState::Dead } else { MailState::Queued })
    }
}

/// The columns [`pending_photo`] reads, in its order.
const PHOTO_COLUMNS: &str =
    "id, message_id, address, bot, media_url, content_type, lang, created_ms, channel";

/// A `photo_jobs` row selected as [`PHOTO_COLUMNS`].
fn pending_photo(r: &tokio_postgres::Row) -> Result<PendingPhoto, StoreError> {
    let channel: &str = r.get(8);
    let message_id: Option<&str> = r.get(1);
    let message_id = message_id
        .map(|m| {
            MessageId::parse(m)
                .map_err(|e| StoreError::backend(format!("postgres: a stored message id: {e}")))
        })
        .transpose()?;
    Ok(PendingPhoto {
        id: r.get(0),
        job: PhotoJob {
            user: address(channel, r.get(2))?,
            bot: address(channel, r.get(3))?,
            message_id,
            media_url: r.get(4),
            content_type: r.get(5),
            lang: lang_from_code(r.get(6)),
            created_ms: r.get(7),
        },
    })
}

#[async_trait]
impl Jobs for PostgresStore {
    async fn enqueue_photo(
        &self,
        job: PhotoJob,
        reply: Vec<String>,
        held_until_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("starting a photo job"))?;
        let reply = json(&reply)?;
        let channel = job.user.channel().as_str();
        let sid = job.message_id.as_ref().map(MessageId::as_str);
        if let Some(sid) = sid {
            if let Some(first) = claim_message(&tx, &job.user, sid, &reply, job.created_ms).await? {
                return Ok(Enqueued::Replayed(first));
            }
            // The result is sent later, inside WhatsApp's window that this message opened.
            outbound::inbound(&tx, &job.user, job.created_ms).await?;
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO photo_jobs (channel, message_id, address, bot, media_url, content_type, lang,
                     created_ms, claimed_until_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &channel,
                    &sid,
                    &job.user.id(),
                    &job.bot.id(),
                    &job.media_url,
                    &job.content_type,
                    &lang_code(job.lang),
                    &job.created_ms,
                    &held_until_ms,
                ],
            )
            .await
            .map_err(pg("storing the photo job"))?
            .get(0);
        tx.commit().await.map_err(pg("committing the photo job"))?;
        Ok(Enqueued::Queued(id))
    }

    async fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {PHOTO_COLUMNS} FROM photo_jobs ORDER BY created_ms, id LIMIT $1"),
                &[&sql_limit(limit)],
            )
            .await
            .map_err(pg("reading the photo jobs"))?;
        rows.iter().map(pending_photo).collect()
    }

    async fn claim_photos(
        &self,
        channels: &[Channel],
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingPhoto>, StoreError> {
        if channels.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
        let client = self.client().await?;
        // SKIP LOCKED: a job another replica is taking at this instant is left to it, not
        // waited for; the lease then keeps it that replica's until it runs out.
        let rows = client
            .query(
                &format!(
                    "UPDATE photo_jobs SET claimed_until_ms = $2
                     WHERE id IN (
                         SELECT id FROM photo_jobs
                         WHERE claimed_until_ms <= $1 AND channel = ANY($3)
                         ORDER BY created_ms, id LIMIT $4
                         FOR UPDATE SKIP LOCKED)
                     RETURNING {PHOTO_COLUMNS}"
                ),
                &[&now_ms, &until_ms, &channels, &sql_limit(limit)],
            )
            .await
            .map_err(pg("claiming photo jobs"))?;
        let mut claimed = rows.iter().map(pending_photo).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|p| (p.job.created_ms, p.id));
        Ok(claimed)
    }

    async fn release_photos(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        client
            .execute("UPDATE photo_jobs SET claimed_until_ms = 0 WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg("releasing photo jobs"))?;
        Ok(())
    }

    async fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM photo_jobs WHERE id = $1", &[&id])
            .await
            .map_err(pg("forgetting a photo job"))?;
        Ok(deleted > 0)
    }

    async fn finish_photo(
        &self,
        id: i64,
        outbound: Vec<NewOutbound>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("finishing a photo job"))?;
        // The row's lock is held to the commit: a second worker finishing the same job
        // waits here, then deletes nothing and queues nothing.
        let deleted = tx
            .execute("DELETE FROM photo_jobs WHERE id = $1", &[&id])
            .await
            .map_err(pg("finishing a photo job"))?;
        if deleted == 0 {
            return Ok(false);
        }
        outbound::insert(&tx, outbound, now_ms).await?;
        tx.commit().await.map_err(pg("committing the photo's result"))?;
        Ok(true)
    }
}

#[async_trait]
impl Reports for PostgresStore {
    async fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
             ORDER BY r.id DESC LIMIT $1"
        );
        let rows = client.query(&sql, &[&sql_limit(limit)]).await.map_err(pg("reading the requests"))?;
        rows.iter().map(|r| record(r).map(|(_, rec)| rec)).collect()
    }

    async fn find_requests(
        &self,
        query: &crate::store::RequestQuery,
        limit: usize,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let client = self.client().await?;
        // Filtered, ordered and cut by the database, among every request.
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
             WHERE ($1::text IS NULL OR r.kind = $1) AND ($2::text IS NULL OR o.state = $2)
               AND ($3::bigint IS NULL OR r.created_ms >= $3) AND ($4::bigint IS NULL OR r.created_ms < $4)
             ORDER BY r.id DESC LIMIT $5"
        );
        let mail = query.mail.map(mail_state_name);
        let rows = client
            .query(&sql, &[&query.kind, &mail, &query.from_ms, &query.until_ms, &sql_limit(limit)])
            .await
            .map_err(pg("finding requests"))?;
        rows.iter().map(|r| record(r).map(|(_, rec)| rec)).collect()
    }

    async fn count_requests(
        &self,
        query: &crate::store::RequestQuery,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client().await?;
        let mail = query.mail.map(mail_state_name);
        let rows = client
            .query(
                "SELECT r.kind, count(*) FROM requests r JOIN outbox o ON o.request_id = r.id
                 WHERE ($1::text IS NULL OR r.kind = $1) AND ($2::text IS NULL OR o.state = $2)
                   AND ($3::bigint IS NULL OR r.created_ms >= $3) AND ($4::bigint IS NULL OR r.created_ms < $4)
                 GROUP BY r.kind ORDER BY count(*) DESC, r.kind",
                &[&query.kind, &mail, &query.from_ms, &query.until_ms],
            )
            .await
            .map_err(pg("counting requests"))?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(0).map_err(get_err)?;
                let n: i64 = r.try_get(1).map_err(get_err)?;
                Ok((kind, n.unsigned_abs()))
            })
            .collect()
    }

    async fn request_kinds(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT DISTINCT kind FROM requests ORDER BY kind", &[])
            .await
            .map_err(pg("reading the request types"))?;
        rows.iter().map(|r| r.try_get(0).map_err(get_err)).collect()
    }

    async fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let client = self.client().await?;
        let ticket = ticket.trim().to_ascii_uppercase();
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id WHERE r.ticket = $1"
        );
        let row = client.query_opt(&sql, &[&ticket]).await.map_err(pg("reading a request"))?;
        row.map(|r| record(&r).map(|(_, rec)| rec)).transpose()
    }

    async fn mail_history(&self, ticket: &str) -> Result<Vec<MailEvent>, StoreError> {
        let client = self.client().await?;
        let ticket = ticket.trim().to_ascii_uppercase();
        let rows = client
            .query(
                "SELECT e.at_ms, e.kind, e.error, e.retry_at_ms, e.actor FROM mail_events e
                 JOIN outbox o ON o.id = e.outbox_id JOIN requests r ON r.id = o.request_id
                 WHERE r.ticket = $1 ORDER BY e.id",
                &[&ticket],
            )
            .await
            .map_err(pg("reading an e-mail's history"))?;
        Ok(rows
            .iter()
            .map(|r| MailEvent {
                at_ms: r.get(0),
                kind: MailEventKind::parse(r.get(1)).unwrap_or(MailEventKind::Failed),
                error: r.get(2),
                retry_at_ms: r.get(3),
                actor: r.get(4),
            })
            .collect())
    }

    async fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT question, count, first_ms, last_ms FROM unanswered
                 ORDER BY count DESC, last_ms DESC LIMIT $1",
                &[&sql_limit(limit)],
            )
            .await
            .map_err(pg("reading the declined questions"))?;
        Ok(rows
            .iter()
            .map(|r| Unanswered {
                question: r.get(0),
                count: r.get(1),
                first_ms: r.get(2),
                last_ms: r.get(3),
            })
            .collect())
    }
}

#[async_trait]
impl Maintenance for PostgresStore {
    async fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&ADVISORY_PRUNE])
            .await
            .map_err(pg("taking the pruning lock"))?
            .get(0);
        if !locked {
            // Another replica is pruning.
            return Ok(0);
        }
        let pruned = prune_chunks(&client, messages_before_ms, sessions_before_ms).await;
        let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_PRUNE]).await;
        if unlocked.is_err() {
            // The lock is the connection's: closing it lets the lock go.
            drop(deadpool_postgres::Object::take(client));
        }
        pruned
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(pg("checking the database"))?;
        Ok(())
    }
}

/// Deletes old message ids, then idle sessions, a chunk per statement: turns commit in
/// between.
async fn prune_chunks(
    client: &tokio_postgres::Client,
    messages_before_ms: i64,
    sessions_before_ms: i64,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for (sql, before) in [
        (
            "DELETE FROM messages WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM messages WHERE received_ms < $1 LIMIT $2))",
            messages_before_ms,
        ),
        (
            "DELETE FROM outbound WHERE id = ANY (ARRAY(
                 SELECT id FROM outbound WHERE state <> 'queued' AND created_ms < $1 LIMIT $2))",
            messages_before_ms,
        ),
        (
            "DELETE FROM sessions WHERE ctid = ANY (ARRAY(
                 SELECT ctid FROM sessions WHERE updated_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
            sessions_before_ms,
        ),
    ] {
        loop {
            let n = client.execute(sql, &[&before, &PRUNE_CHUNK]).await.map_err(pg("pruning"))?;
            removed += usize::try_from(n).unwrap_or(0);
            if n < u64::try_from(PRUNE_CHUNK).unwrap_or(0) {
                break;
            }
        }
    }
    Ok(removed)
}

/// A fresh, empty schema on the server at `url`, named `prefix` and a unique suffix; the
/// URL that uses it (its `search_path`). Each test of the store and of the server gets
/// its own, so they run at once on one database without seeing one another's rows.
pub async fn fresh_schema_url(url: &str, prefix: &str) -> Result<String, StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "{}_{}_{}_{nanos}",
        prefix.chars().filter(char::is_ascii_alphanumeric).collect::<String>(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let target = connect::target(url, None)?;
    let (client, connection) = target
        .config
        .connect(target.tls)
        .await
        .map_err(pg(format_args!("connecting to {}", redacted(url))))?;
    let task = tokio::spawn(connection);
    client.batch_execute(&format!("CREATE SCHEMA {name}")).await.map_err(pg("creating a schema"))?;
    drop(client);
    let _ = task.await;
    let mut u = url::Url::parse(url).map_err(StoreError::backend)?;
    u.query_pairs_mut().append_pair("options", &format!("-csearch_path={name}"));
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    //! What only a shared database can show: several stores — replicas — on one schema.

    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::{a, m, postgres_url, request};

    const T2026: i64 = 1_780_000_000_000;

    /// `n` stores opened at once on one fresh schema, as replicas starting together.
    async fn replicas(n: usize) -> Option<Vec<Arc<PostgresStore>>> {
        let url = fresh_schema_url(&postgres_url()?, "replicas").await.unwrap();
        let opening: Vec<_> = (0..n)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::open(&url, None).await })
            })
            .collect();
        let mut stores = Vec::new();
        for o in opening {
            stores.push(Arc::new(o.await.unwrap().unwrap()));
        }
        Some(stores)
    }

    #[tokio::test]
    async fn handovers_once_stored_as_requests_become_e_mails_that_no_list_of_requests_holds() {
        let Some(base) = postgres_url() else { return };
        let url = fresh_schema_url(&base, "handover").await.unwrap();
        // The schema as the previous version left it, with a request and a handover in it.
        let target = connect::target(&url, None).unwrap();
        let (client, connection) = target.config.connect(target.tls).await.unwrap();
        let task = tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE wabot_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)",
            )
            .await
            .unwrap();
        // Every migration before the one that moved handovers out of the requests.
        let before = schema::MIGRATIONS
            .iter()
            .position(|sql| sql.contains("DELETE FROM requests WHERE kind = 'handover'"))
            .expect("the handover migration");
        for (i, sql) in schema::MIGRATIONS[..before].iter().enumerate() {
            client.batch_execute(sql).await.unwrap();
            let version = i32::try_from(i + 1).unwrap();
            client.execute("INSERT INTO wabot_migrations VALUES ($1, 0)", &[&version]).await.unwrap();
        }
        for (id, kind) in [(1_i64, "work-certificate"), (2, "handover")] {
            client
                .execute(
                    "INSERT INTO requests (id, ticket, channel, address, kind, kind_label, recipient, first_name,
                         last_name, details, lang, created_ms)
                     VALUES ($1, $2, 'twilio', '+33600000000', $3, 'Handed over', 'hr@example.com', 'Ann',
                         '+33600000000', 'Answer in the console: https://x/console', 'en', $4)",
                    &[&id, &format!("REQ-2026-00000{id}"), &kind, &T2026],
                )
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO outbox (id, request_id, state, next_attempt_ms) VALUES ($1, $2, 'queued', $3)",
                    &[&(id * 10), &id, &T2026],
                )
                .await
                .unwrap();
        }
        drop(client);
        let _ = task.await;

        let store = PostgresStore::open(&url, None).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), schema::MIGRATIONS.len());
        let listed = store.requests(10).await.unwrap();
        assert_eq!(listed.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["work-certificate"]);
        assert_eq!(store.request_kinds().await.unwrap(), ["work-certificate"]);
        assert!(store.request("REQ-2026-000002").await.unwrap().is_none());
        let due = store.due_mail(T2026, 10).await.unwrap();
        assert_eq!(due.len(), 2, "both still delivered");
        let OutboxMail::Other(mail) = &due[1].mail else { panic!("{:?}", due[1]) };
        assert_eq!(due[1].id, 20);
        assert_eq!(mail.mail.recipient, "hr@example.com");
        assert_eq!(mail.mail.subject, "Handed over — Ann +33600000000");
        assert!(mail.mail.body.contains("https://x/console"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_starting_at_once_migrate_the_schema_once() {
        let Some(stores) = replicas(6).await else { return };
        for s in &stores {
            assert_eq!(s.schema_version().await.unwrap(), schema::MIGRATIONS.len());
        }
        let client = stores[0].client().await.unwrap();
        let rows: i64 = client.query_one("SELECT count(*) FROM wabot_migrations", &[]).await.unwrap().get(0);
        assert_eq!(usize::try_from(rows).unwrap(), schema::MIGRATIONS.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_message_delivered_to_three_replicas_at_once_commits_once_with_one_reply() {
        let Some(stores) = replicas(3).await else { return };
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let store = Arc::clone(&stores[i % 3]);
                tokio::spawn(async move {
                    let turn = Turn {
                        outbound: Vec::new(),
                        user: a("+33600000001"),
                        message_id: Some(m("SM-confirm")),
                        session: "{}".into(),
                        session_version: 0,
                        messages: vec![format!("registered under {TICKET_PLACEHOLDER}")],
                        request: Some(request()),
                        mail: None,
                        unanswered: None,
                        now_ms: T2026,
                    };
                    store.commit(turn).await
                })
            })
            .collect();
        let mut fresh = 0;
        for h in handles {
            let c = h.await.unwrap().unwrap();
            fresh += usize::from(!c.replayed);
            assert_eq!(c.messages, ["registered under REQ-2026-000001"]);
        }
        assert_eq!(fresh, 1);
        assert_eq!(stores[2].requests(10).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_draining_one_outbox_take_each_e_mail_once() {
        let Some(stores) = replicas(3).await else { return };
        for i in 0..20 {
            let turn = Turn {
                outbound: Vec::new(),
                user: a(&format!("+3360000{i:04}")),
                message_id: Some(m(&format!("SM{i}"))),
                session: "{}".into(),
                session_version: 0,
                messages: vec!["ok".into()],
                request: Some(request()),
                mail: None,
                unanswered: None,
                now_ms: T2026,
            };
            stores[i % 3].commit(turn).await.unwrap();
        }
        let workers: Vec<_> = stores
            .iter()
            .map(|store| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let mut taken = Vec::new();
                    for item in store.due_mail(T2026, 100).await.unwrap() {
                        if store.claim_mail(item.id, T2026, T2026 + 60_000).await.unwrap() {
                            taken.push(item.id);
                        }
                    }
                    taken
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!((n, all.len()), (20, 20), "every e-mail taken, none twice");
    }

    #[tokio::test]
    async fn a_session_written_by_one_replica_is_read_fresh_by_another() {
        let Some(stores) = replicas(2).await else { return };
        let u = a("+33600000009");
        let turn = |sid: &str, data: &str, version: i64| Turn {
            outbound: Vec::new(),
            user: u.clone(),
            message_id: Some(m(sid)),
            session: data.into(),
            session_version: version,
            messages: vec!["ok".into()],
            request: None,
            mail: None,
            unanswered: None,
            now_ms: T2026,
        };
        stores[0].commit(turn("SM1", "one", 0)).await.unwrap();
        let seen = stores[1].session(&u).await.unwrap().unwrap();
        assert_eq!((seen.data.as_str(), seen.version), ("one", 1));
        stores[1].commit(turn("SM2", "two", 1)).await.unwrap();
        let stale = stores[0].commit(turn("SM3", "three", 1)).await.unwrap_err();
        assert!(matches!(stale, StoreError::Conflict), "{stale}");
        assert_eq!(stores[0].session(&u).await.unwrap().unwrap().data, "two");
    }

    #[tokio::test]
    async fn pruning_runs_on_one_replica_at_a_time() {
        let Some(stores) = replicas(2).await else { return };
        let holder = stores[0].client().await.unwrap();
        let _: bool =
            holder.query_one("SELECT pg_try_advisory_lock($1)", &[&ADVISORY_PRUNE]).await.unwrap().get(0);
        let turn = Turn {
            outbound: Vec::new(),
            user: a("+33600000010"),
            message_id: Some(m("SM-old")),
            session: "{}".into(),
            session_version: 0,
            messages: vec!["ok".into()],
            request: None,
            mail: None,
            unanswered: None,
            now_ms: T2026,
        };
        stores[1].commit(turn).await.unwrap();
        assert_eq!(stores[1].prune(T2026 + 1, T2026 + 1).await.unwrap(), 0, "the other replica prunes");
        holder.execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_PRUNE]).await.unwrap();
        assert_eq!(stores[1].prune(T2026 + 1, T2026 + 1).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_backend_error_not_a_hang() {
        let started = std::time::Instant::now();
        let err = PostgresStore::open("postgres://wabot@127.0.0.1:1/wabot?connect_timeout=2", None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_installation_moves_to_postgres_whole_and_goes_on_numbering_after_it() {
        let Some(url) = postgres_url() else { return };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wabot.db");
        let sqlite = crate::store::SqliteStore::open(&file).unwrap();
        let turn = |user: &str, sid: &str, req: bool, at: i64| Turn {
            outbound: Vec::new(),
            user: a(user),
            message_id: Some(m(sid)),
            session: format!("{{\"u\":\"{user}\"}}"),
            session_version: 0,
            messages: vec![format!("ok {TICKET_PLACEHOLDER}")],
            request: req.then(request),
            mail: None,
            unanswered: Some("ou est la cantine".into()),
            now_ms: at,
        };
        for i in 0..40 {
            sqlite
                .commit(turn(&format!("+3360000{i:04}"), &format!("SM{i}"), i % 4 == 0, T2026 + i))
                .await
                .unwrap();
        }
        let first = sqlite.due_mail(T2026 + 100, 1).await.unwrap()[0].id;
        sqlite.mark_sent(first, T2026 + 200).await.unwrap();
        let job = PhotoJob {
            user: a("+33600000001"),
            bot: a("+14155238886"),
            message_id: Some(m("SM-photo")),
            media_url: "https://api.twilio.com/x".into(),
            content_type: None,
            lang: Lang::Fr,
            created_ms: T2026,
        };
        sqlite.enqueue_photo(job.clone(), vec!["Lecture…".into()], 0).await.unwrap();
        drop(sqlite);

        let target =
            PostgresStore::open(&fresh_schema_url(&url, "import").await.unwrap(), None).await.unwrap();
        let seen = Arc::new(std::sync::Mutex::new((0, 0)));
        let progress = {
            let seen = Arc::clone(&seen);
            Arc::new(move |done, total| *seen.lock().unwrap() = (done, total))
        };
        let copied = import::import_sqlite(&file, &target, progress).await.unwrap();
        let rows = |t: &str| copied.iter().find(|c| c.table == t).unwrap().rows;
        assert_eq!((rows("sessions"), rows("messages"), rows("requests"), rows("outbox")), (40, 41, 10, 10));
        assert_eq!((rows("unanswered"), rows("photo_jobs"), rows("ticket_seq")), (1, 1, 1));
        let all = usize::try_from(copied.iter().map(|c| c.rows).sum::<u64>()).unwrap();
        assert!(all >= 104, "{copied:?}");
        assert_eq!(*seen.lock().unwrap(), (all, all), "progress reached the end");

        let sqlite = crate::store::SqliteStore::open(&file).unwrap();
        assert_eq!(target.requests(100).await.unwrap(), sqlite.requests(100).await.unwrap());
        assert_eq!(target.unanswered(10).await.unwrap(), sqlite.unanswered(10).await.unwrap());
        assert_eq!(target.pending_photos(10).await.unwrap(), sqlite.pending_photos(10).await.unwrap());
        let u = a("+33600000007");
        assert_eq!(target.session(&u).await.unwrap(), sqlite.session(&u).await.unwrap());
        assert_eq!(
            target.replay(crate::store::conformance::TW, &m("SM8")).await.unwrap().unwrap(),
            ["ok REQ-2026-000003"]
        );
        assert_eq!(target.outbox_depth().await.unwrap(), 9);

        // Numbering goes on after the copied rows.
        let next = target.commit(turn("+33699999999", "SM-next", true, T2026 + 1000)).await.unwrap();
        assert_eq!(next.ticket.as_deref(), Some("REQ-2026-000011"));
        let Enqueued::Queued(id) = target
            .enqueue_photo(PhotoJob { message_id: Some(m("SM-photo-2")), ..job }, vec![], 0)
            .await
            .unwrap()
        else {
            panic!("queued")
        };
        assert!(id > target.pending_photos(10).await.unwrap()[0].id);
        // Into a database that has rows: refused, nothing merged.
        let again = import::import_sqlite(&file, &target, Arc::new(|_, _| {})).await.unwrap_err();
        assert!(again.to_string().contains("empty"), "{again}");
    }
}
