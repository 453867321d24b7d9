//! The [`Ledger`] on SQLite: one file (`WABOT_DB`), WAL journal, `synchronous = FULL`,
//! schema migrations applied on open (tracked in `PRAGMA user_version`).
//!
//! One connection behind a mutex. SQLite has a single writer anyway, every statement here
//! takes well under a millisecond, and async callers reach it through
//! [`Durable`](super::Durable), which bounds how many blocking threads wait for it. A
//! second process (`wabot requests list`) opens its own connection; WAL lets it read while
//! the server writes, and the busy timeout covers the moments both write.
//!
//! Atomicity of a turn: `BEGIN IMMEDIATE` takes the write lock first, then the MessageSid is
//! inserted with `ON CONFLICT DO NOTHING`. A duplicate — even one racing this very turn —
//! finds the row, rolls back and returns the first turn's messages.
//!
//! Group commit: with `synchronous = FULL` each transaction waits for an fsync, which caps
//! one-transaction-per-turn at about a thousand turns a second. So [`Ledger::commit`] queues
//! its turn, then takes the connection; whoever gets it commits every queued turn in one
//! transaction, each inside its own savepoint (a conflict or a duplicate rolls back that turn
//! alone), with one fsync for the batch, and hands each caller its result only after COMMIT.
//! A caller whose turn a previous holder already committed just takes its result. Nothing is
//! acknowledged before it is durable.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::ledger::{
    Committed, Ledger, MailState, NewRequest, OutboxItem, RequestRecord, TICKET_PLACEHOLDER, Turn,
};
use super::{Session, SessionStore, StoreError};
use crate::engine::Lang;
use crate::unanswered::Unanswered;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one migration per entry; applied in order from `user_version`. Never edit
/// a shipped entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sessions (
    user        TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE messages (
    sid         TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    reply       TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE TABLE ticket_seq (
    year        INTEGER PRIMARY KEY,
    last        INTEGER NOT NULL
);
CREATE TABLE requests (
    id              INTEGER PRIMARY KEY,
    ticket          TEXT NOT NULL UNIQUE,
    user            TEXT NOT NULL,
    message_sid     TEXT UNIQUE,
    kind            TEXT NOT NULL,
    kind_label      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    employee_id     TEXT,
    employee_email  TEXT,
    department      TEXT,
    details         TEXT,
    lang            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    request_id      INTEGER NOT NULL UNIQUE REFERENCES requests(id),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    sent_ms         INTEGER
);
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE state = 'queued';
",
    r"
CREATE TABLE unanswered (
    question    TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL
);
CREATE INDEX unanswered_count ON unanswered(count DESC);
",
];

/// Calls [`Durable`](super::Durable) should let wait on one store at once: enough turns
/// for group commit to batch, few enough blocking threads.
pub const CONCURRENT_CALLS: usize = 32;

/// Where a queued turn's result is left for its caller.
type Slot = Arc<Mutex<Option<Result<Committed, StoreError>>>>;

/// A turn queued for the next group commit, owning what [`Turn`] borrows.
struct QueuedTurn {
    user: String,
    message_sid: Option<String>,
    session: Session,
    session_version: i64,
    messages: Vec<String>,
    request: Option<NewRequest>,
    now_ms: i64,
    slot: Slot,
}

impl QueuedTurn {
    fn turn(&self) -> Turn<'_> {
        Turn {
            user: &self.user,
            message_sid: self.message_sid.as_deref(),
            session: &self.session,
            session_version: self.session_version,
            messages: &self.messages,
            request: self.request.as_ref(),
            now_ms: self.now_ms,
        }
    }
}

/// The durable store on one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    queue: Mutex<Vec<QueuedTurn>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        Self::setup(conn)
    }

    /// A private in-memory database (tests, or a server that must not keep anything).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(backend)?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        // WAL: readers (the CLI) never block the server's writes. FULL: a commit the user
        // was told about survives a power cut, not only a crash.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
        if mode != "wal" && mode != "memory" {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn), queue: Mutex::new(Vec::new()) })
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let v: i64 = self.lock().query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Every write runs in a transaction that rolls back when dropped, so a panic while
        // holding the lock leaves the database consistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this wabot's {}: upgrade wabot",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(|e| StoreError::Backend(format!("migration {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// `REQ-2026-000123`.
pub fn format_ticket(year: i64, seq: i64) -> String {
    format!("REQ-{year}-{seq:06}")
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Fr => "fr",
    }
}

const RECORD_COLUMNS: &str = "r.ticket, r.user, r.kind, r.kind_label, r.recipient, r.first_name, \
     r.last_name, r.employee_id, r.employee_email, r.department, r.details, r.lang, r.created_ms, \
     o.state, o.attempts, o.last_error, o.next_attempt_ms, o.sent_ms, o.id";

fn record(row: &Row<'_>) -> rusqlite::Result<(i64, RequestRecord)> {
    let lang: String = row.get(11)?;
    let state: String = row.get(13)?;
    let mail = if state == "sent" { MailState::Sent } else { MailState::Queued };
    let attempts: i64 = row.get(14)?;
    let next: i64 = row.get(16)?;
    Ok((
        row.get(18)?,
        RequestRecord {
            ticket: row.get(0)?,
            user: row.get(1)?,
            kind: row.get(2)?,
            kind_label: row.get(3)?,
            recipient: row.get(4)?,
            first_name: row.get(5)?,
            last_name: row.get(6)?,
            employee_id: row.get(7)?,
            employee_email: row.get(8)?,
            department: row.get(9)?,
            details: row.get(10)?,
            lang: if lang == "fr" { Lang::Fr } else { Lang::En },
            created_at_ms: row.get(12)?,
            mail,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            last_error: row.get(15)?,
            next_attempt_ms: (mail == MailState::Queued).then_some(next),
            sent_at_ms: row.get(17)?,
        },
    ))
}

fn save_session(tx: &Connection, user: &str, session: &Session, now_ms: i64) -> Result<(), StoreError> {
    let data = serde_json::to_string(session).map_err(backend)?;
    tx.execute(
        "INSERT INTO sessions (user, data, version, updated_ms) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (user) DO UPDATE
         SET data = excluded.data, version = version + 1, updated_ms = excluded.updated_ms",
        params![user, data, now_ms],
    )
    .map_err(backend)?;
    Ok(())
}

fn insert_request(tx: &Connection, turn: &Turn<'_>, req: &NewRequest) -> Result<String, StoreError> {
    // The year of the request, in UTC, and the next number of that year: both inside the
    // transaction, so two requests never share a ticket.
    let year: i64 = tx
        .query_row("SELECT CAST(strftime('%Y', ?1 / 1000, 'unixepoch') AS INTEGER)", [turn.now_ms], |r| {
            r.get(0)
        })
        .map_err(backend)?;
    let seq: i64 = tx
        .query_row(
            "INSERT INTO ticket_seq (year, last) VALUES (?1, 1)
             ON CONFLICT (year) DO UPDATE SET last = last + 1 RETURNING last",
            [year],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let ticket = format_ticket(year, seq);
    tx.execute(
        "INSERT INTO requests (ticket, user, message_sid, kind, kind_label, recipient, first_name,
             last_name, employee_id, employee_email, department, details, lang, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            ticket,
            turn.user,
            turn.message_sid,
            req.kind,
            req.kind_label,
            req.recipient,
            req.first_name,
            req.last_name,
            req.employee_id,
            req.employee_email,
            req.department,
            req.details,
            lang_code(req.lang),
            turn.now_ms
        ],
    )
    .map_err(backend)?;
    let request_id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO outbox (request_id, state, next_attempt_ms) VALUES (?1, 'queued', ?2)",
        params![request_id, turn.now_ms],
    )
    .map_err(backend)?;
    Ok(ticket)
}

/// One turn's statements, inside the group's transaction (in a savepoint).
fn commit_in(tx: &Connection, turn: &Turn<'_>) -> Result<Committed, StoreError> {
    // Claim the MessageSid first: a duplicate stops here, before anything is written.
    if let Some(sid) = turn.message_sid {
        let claimed = tx
            .execute(
                "INSERT INTO messages (sid, user, reply, received_ms) VALUES (?1, ?2, '[]', ?3)
                 ON CONFLICT (sid) DO NOTHING",
                params![sid, turn.user, turn.now_ms],
            )
            .map_err(backend)?;
        if claimed == 0 {
            let reply: String = tx
                .query_row("SELECT reply FROM messages WHERE sid = ?1", [sid], |r| r.get(0))
                .map_err(backend)?;
            let messages = serde_json::from_str(&reply).map_err(backend)?;
            return Ok(Committed { messages, ticket: None, replayed: true });
        }
    }
    let stored: i64 = tx
        .query_row("SELECT version FROM sessions WHERE user = ?1", [turn.user], |r| r.get(0))
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    if stored != turn.session_version {
        // Dropping the savepoint rolls back the MessageSid's claim too.
        return Err(StoreError::Conflict);
    }
    let ticket = turn.request.map(|req| insert_request(tx, turn, req)).transpose()?;
    let messages: Vec<String> = match &ticket {
        Some(t) => turn.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, t)).collect(),
        None => turn.messages.to_vec(),
    };
    if let Some(sid) = turn.message_sid {
        let reply = serde_json::to_string(&messages).map_err(backend)?;
        tx.execute("UPDATE messages SET reply = ?2 WHERE sid = ?1", params![sid, reply]).map_err(backend)?;
    }
    save_session(tx, turn.user, turn.session, turn.now_ms)?;
    Ok(Committed { messages, ticket, replayed: false })
}

/// Commits `batch` in one transaction, each turn in its own savepoint; every result is an
/// error if the transaction itself does not commit.
fn commit_batch(conn: &mut Connection, batch: &[QueuedTurn]) -> Vec<Result<Committed, StoreError>> {
    let failed = |e: &rusqlite::Error| batch.iter().map(|_| Err(backend(e))).collect();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for queued in batch {
        let result = tx.savepoint().map_err(backend).and_then(|sp| {
            // Dropped without commit, the savepoint rolls this turn back, and only it.
            let committed = commit_in(&sp, &queued.turn())?;
            sp.commit().map_err(backend)?;
            Ok(committed)
        });
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}

impl SessionStore for SqliteStore {
    fn load(&self, user: &str) -> Result<Session, StoreError> {
        self.load_versioned(user).map(|(s, _)| s)
    }

    fn save(&self, user: &str, session: &Session) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        save_session(&tx, user, session, crate::requests::now_ms())?;
        tx.commit().map_err(backend)
    }
}

impl Ledger for SqliteStore {
    fn load_versioned(&self, user: &str) -> Result<(Session, i64), StoreError> {
        let row: Option<(String, i64)> = self
            .lock()
            .query_row("SELECT data, version FROM sessions WHERE user = ?1", [user], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(backend)?;
        match row {
            // A session this version cannot read is a fresh start, not an error forever.
            Some((d, version)) => Ok((
                serde_json::from_str(&d).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "unreadable stored session: starting afresh");
                    Session::default()
                }),
                version,
            )),
            None => Ok((Session::default(), 0)),
        }
    }

    fn replay(&self, message_sid: &str) -> Result<Option<Vec<String>>, StoreError> {
        let reply: Option<String> = self
            .lock()
            .query_row("SELECT reply FROM messages WHERE sid = ?1", [message_sid], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        reply.map(|r| serde_json::from_str(&r).map_err(backend)).transpose()
    }

    fn commit(&self, turn: &Turn<'_>) -> Result<Committed, StoreError> {
        let slot: Slot = Arc::new(Mutex::new(None));
        let queued = QueuedTurn {
            user: turn.user.to_owned(),
            message_sid: turn.message_sid.map(str::to_owned),
            session: turn.session.clone(),
            session_version: turn.session_version,
            messages: turn.messages.to_vec(),
            request: turn.request.cloned(),
            now_ms: turn.now_ms,
            slot: Arc::clone(&slot),
        };
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(queued);
        let mut conn = self.lock();
        // Turns are taken from the queue and their slots filled under the connection's lock:
        // an empty slot here means this turn is still queued.
        if let Some(done) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return done;
        }
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for (queued, result) in batch.iter().zip(commit_batch(&mut conn, &batch)) {
            *queued.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        }
        drop(conn);
        let done = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        done.unwrap_or_else(|| Err(StoreError::Backend("the turn was not committed".into())))
    }

    fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM outbox o JOIN requests r ON r.id = o.request_id
                 WHERE o.state = 'queued' AND o.next_attempt_ms <= ?1
                 ORDER BY o.next_attempt_ms, o.id LIMIT ?2"
            ))
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)], record)
            .map_err(backend)?;
        rows.map(|r| r.map(|(id, request)| OutboxItem { id, request }).map_err(backend)).collect()
    }

    fn next_mail_due(&self) -> Result<Option<i64>, StoreError> {
        self.lock()
            .query_row("SELECT min(next_attempt_ms) FROM outbox WHERE state = 'queued'", [], |r| r.get(0))
            .map_err(backend)
    }

    fn outbox_depth(&self) -> Result<Option<u64>, StoreError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM outbox WHERE state = 'queued'", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    fn record_unanswered(&self, question: &str, now_ms: i64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO unanswered (question, count, first_ms, last_ms) VALUES (?1, 1, ?2, ?2)
                 ON CONFLICT(question) DO UPDATE SET count = count + 1, last_ms = excluded.last_ms",
                params![question, now_ms],
            )
            .map(|_| ())
            .map_err(backend)
    }

    fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT question, count, first_ms, last_ms FROM unanswered
                 ORDER BY count DESC, last_ms DESC LIMIT ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(Unanswered {
                    question: r.get(0)?,
                    count: r.get(1)?,
                    first_ms: r.get(2)?,
                    last_ms: r.get(3)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE outbox SET state = 'sent', sent_ms = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
                params![outbox_id, at_ms],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
                 WHERE id = ?1 AND state = 'queued'",
                params![outbox_id, error, retry_at_ms],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
                 ORDER BY r.id DESC LIMIT ?1"
            ))
            .map_err(backend)?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], record).map_err(backend)?;
        rows.map(|r| r.map(|(_, rec)| rec).map_err(backend)).collect()
    }

    fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let m = tx
            .execute("DELETE FROM messages WHERE received_ms < ?1", [messages_before_ms])
            .map_err(backend)?;
        let s = tx
            .execute("DELETE FROM sessions WHERE updated_ms < ?1", [sessions_before_ms])
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(m + s)
    }

    fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
                     WHERE r.ticket = ?1"
                ),
                [ticket.trim().to_ascii_uppercase()],
                record,
            )
            .optional()
            .map(|r| r.map(|(_, rec)| rec))
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Pending;

    fn request() -> NewRequest {
        NewRequest {
            kind: "work-certificate".into(),
            kind_label: "Work certificate / Attestation de travail".into(),
            recipient: "hr@example.com".into(),
            first_name: "Élodie".into(),
            last_name: "Garçon".into(),
            employee_id: None,
            employee_email: None,
            department: None,
            details: None,
            lang: Lang::Fr,
        }
    }

    /// A moment in November 2026, UTC.
    const NOW: i64 = 1_795_089_600_000;

    const USER: &str = "whatsapp:+33600000000";

    /// A turn on the session as currently stored.
    fn turn<'a>(
        store: &SqliteStore,
        sid: &'a str,
        session: &'a Session,
        messages: &'a [String],
        req: Option<&'a NewRequest>,
    ) -> Turn<'a> {
        Turn {
            user: USER,
            message_sid: Some(sid),
            session,
            session_version: store.load_versioned(USER).unwrap().1,
            messages,
            request: req,
            now_ms: NOW,
        }
    }

    #[test]
    fn concurrent_commits_share_transactions_and_each_gets_its_own_result() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("w.db")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut tickets = 0;
                    for i in 0..25 {
                        let user = format!("whatsapp:+336000{t:02}{i:03}");
                        let sid = format!("SM{t}-{i}");
                        let msgs = vec![format!("ok {t} {i} {TICKET_PLACEHOLDER}")];
                        let req = request();
                        let turn = Turn {
                            user: &user,
                            message_sid: Some(&sid),
                            session: &Session::default(),
                            session_version: 0,
                            messages: &msgs,
                            request: (i % 5 == 0).then_some(&req),
                            now_ms: NOW,
                        };
                        let done = store.commit(&turn).unwrap();
                        assert!(!done.replayed);
                        assert!(done.messages[0].starts_with(&format!("ok {t} {i} ")), "{:?}", done.messages);
                        tickets += usize::from(done.ticket.is_some());
                        // The same MessageSid again: replayed, whichever batch it lands in.
                        let again = store.commit(&turn).unwrap();
                        assert!(again.replayed && again.messages == done.messages);
                    }
                    tickets
                })
            })
            .collect();
        let tickets: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(tickets, 40);
        let conn = store.lock();
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!(
            (count("messages"), count("sessions"), count("requests"), count("outbox")),
            (200, 200, 40, 40)
        );
    }

    #[test]
    fn a_conflicting_turn_in_a_batch_rolls_back_alone() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["hi".to_owned()];
        let first = Turn {
            user: USER,
            message_sid: Some("SM-a"),
            session: &Session::default(),
            session_version: 0,
            messages: &msgs,
            request: None,
            now_ms: NOW,
        };
        let stale = Turn { message_sid: Some("SM-b"), ..first };
        let batch: Vec<QueuedTurn> = [first, stale]
            .iter()
            .map(|t| QueuedTurn {
                user: t.user.into(),
                message_sid: t.message_sid.map(str::to_owned),
                session: t.session.clone(),
                session_version: t.session_version,
                messages: t.messages.to_vec(),
                request: None,
                now_ms: t.now_ms,
                slot: Arc::new(Mutex::new(None)),
            })
            .collect();
        let results = commit_batch(&mut store.lock(), &batch);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Conflict)), "{:?}", results[1]);
        assert!(store.replay("SM-a").unwrap().is_some());
        assert!(store.replay("SM-b").unwrap().is_none(), "the conflicting turn's MessageSid was rolled back");
    }

    #[test]
    fn migrations_run_once_and_sessions_round_trip_through_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/wabot.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        let s = Session {
            lang: Some(Lang::Fr),
            pending: Some(Pending::Entries(vec!["a".into()])),
            ..Session::default()
        };
        store.save("u", &s).unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load("u").unwrap(), s);
        assert_eq!(store.load("other").unwrap(), Session::default());
        let mode: String = store.lock().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn tickets_count_per_year_and_a_repeated_sid_commits_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let session = Session::default();
        let msgs = vec![format!("Ticket {TICKET_PLACEHOLDER}")];
        let req = request();
        let first = store.commit(&turn(&store, "SM1", &session, &msgs, Some(&req))).unwrap();
        assert_eq!(first.ticket.as_deref(), Some("REQ-2026-000001"));
        assert_eq!(first.messages, ["Ticket REQ-2026-000001"]);
        let again = store.commit(&turn(&store, "SM1", &session, &msgs, Some(&req))).unwrap();
        assert!(again.replayed);
        assert_eq!(again.messages, first.messages);
        assert_eq!(store.requests(10).unwrap().len(), 1);
        let second = store.commit(&turn(&store, "SM2", &session, &msgs, Some(&req))).unwrap();
        assert_eq!(second.ticket.as_deref(), Some("REQ-2026-000002"));
        let next_year =
            Turn { now_ms: NOW + 60 * 86_400_000, ..turn(&store, "SM3", &session, &msgs, Some(&req)) };
        assert_eq!(store.commit(&next_year).unwrap().ticket.as_deref(), Some("REQ-2027-000001"));
        assert_eq!(store.replay("SM2").unwrap().unwrap(), ["Ticket REQ-2026-000002"]);
        assert!(store.replay("SM9").unwrap().is_none());
    }

    #[test]
    fn a_commit_on_a_stale_session_writes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["ok".to_owned()];
        let session = Session { lang: Some(Lang::Fr), ..Session::default() };
        let stale = turn(&store, "SM1", &session, &msgs, None);
        store.commit(&turn(&store, "SM0", &session, &msgs, None)).unwrap();
        assert!(matches!(store.commit(&stale), Err(StoreError::Conflict)));
        assert!(store.replay("SM1").unwrap().is_none(), "the MessageSid's claim was rolled back");
        assert_eq!(store.load_versioned(USER).unwrap().1, 1);
        let req = request();
        let stale = Turn { request: Some(&req), ..stale };
        assert!(matches!(store.commit(&stale), Err(StoreError::Conflict)));
        assert!(store.requests(10).unwrap().is_empty(), "no request from a stale turn");
        store.commit(&turn(&store, "SM1", &session, &msgs, Some(&req))).unwrap();
        assert_eq!(store.load_versioned(USER).unwrap().1, 2);
    }

    #[test]
    fn the_outbox_retries_then_marks_sent() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec![String::new()];
        store.commit(&turn(&store, "SM1", &Session::default(), &msgs, Some(&request()))).unwrap();
        let due = store.due_mail(NOW, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].request.first_name, "Élodie");
        store.mark_failed(due[0].id, "connection refused", NOW + 1000).unwrap();
        assert!(store.due_mail(NOW, 10).unwrap().is_empty());
        assert_eq!(store.next_mail_due().unwrap(), Some(NOW + 1000));
        let rec = store.request("req-2026-000001").unwrap().unwrap();
        assert_eq!(
            (rec.mail, rec.attempts, rec.last_error.as_deref()),
            (MailState::Queued, 1, Some("connection refused"))
        );
        assert_eq!(store.prune(NOW + 1, NOW + 1).unwrap(), 2, "the MessageSid and the session");
        assert!(store.replay("SM1").unwrap().is_none());
        assert_eq!(store.requests(10).unwrap().len(), 1, "requests are kept");
        store.mark_sent(due[0].id, NOW + 2000).unwrap();
        let rec = store.request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!((rec.mail, rec.attempts, rec.sent_at_ms), (MailState::Sent, 2, Some(NOW + 2000)));
        assert_eq!(store.next_mail_due().unwrap(), None);
    }
}
