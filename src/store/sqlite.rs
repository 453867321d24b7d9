//! The [`Ledger`] on SQLite: one file (`WABOT_DB`), WAL journal, schema migrations applied
//! on open (tracked in `PRAGMA user_version`).
//!
//! Three connections: one every write goes through, one for reads, so that reading a
//! session or the outbox never waits behind a batch being committed (WAL lets readers run
//! beside the writer), and the checkpointer's ([`checkpoint`]: copying the WAL into the
//! database happens off the writer's path). A second process (`wabot requests list`)
//! opens its own connections; the busy timeout covers the moments both write.
//!
//! Atomicity of a turn: the message id is inserted with `ON CONFLICT DO NOTHING` first — a
//! duplicate, even one racing this very turn, finds the row and gets the first turn's
//! messages — then the session is written only if its version is still the one the turn
//! was computed on, else nothing of the turn is kept ([`StoreError::Conflict`]).
//!
//! Group commit: turns are queued ([`Ledger::submit`], or [`Ledger::commit`] which waits),
//! and one writer thread commits everything queued in one transaction, each turn inside its
//! own savepoint (a conflict or a duplicate rolls back that turn alone), then hands each
//! caller its result — only after COMMIT. Nothing is acknowledged before it is written.
//!
//! Durability is chosen per transaction. A batch holding a confirmed request commits with
//! `synchronous = FULL`: the user is told "registered under REQ-…" only once the request is
//! on disk, power cut included. A batch of conversation turns only (FAQ answers, menus, form
//! steps) commits with `synchronous = NORMAL`: written to the WAL before the reply, so it
//! survives the process being killed, and synced at the next durable commit or checkpoint;
//! a power cut may forget the last of them — a redelivered message then gets a fresh
//! answer and a form resumes one step earlier, nothing the user was promised. Waiting for a
//! disk flush on every FAQ answer would cap the webhook at the disk's fsync rate.
//!
//! A badge photo's job ([`Ledger::enqueue_photo`]) is written outside the batches, with its
//! message id's claim, at `synchronous = FULL`: "Reading your badge…" is a promise, like
//! "registered under REQ-…".
//!
//! Sessions are cached in memory, keyed by address, with the version last committed
//! ([`Ledger::cached_session`]): a turn usually needs no read at all. The cache is only a
//! guess of the stored version — the commit checks it inside the transaction, and a turn
//! that finds it stale (another process wrote, an entry was pruned) is retried on a fresh
//! read. A turn that leaves its session as the cache holds it does not rewrite it: its
//! version is checked all the same.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

use super::ledger::{
    CommitReceiver, Committed, Enqueued, Ledger, OutboxItem, OwnedTurn, PendingPhoto, PhotoJob, Turn,
};
use super::{SessionStore, StoreError};
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord, Session, Unanswered};

mod checkpoint;
mod rows;
mod schema;
mod sessions;
mod turns;

use checkpoint::Checkpointer;
use schema::migrate;
use sessions::{Cached, SessionCache, Stored, cache_key};
use turns::{SessionWrite, Written, commit_batch};

pub use rows::format_ticket;
use rows::{
    RECORD_COLUMNS, address, all, decode_session, exec, lang_code, lang_from_code, one, record, sql_limit,
};

/// Rows [`Ledger::prune`] looks at, or deletes, per transaction: a few milliseconds of the
/// writer's time, however large the tables.
const PRUNE_CHUNK: i64 = 2000;

fn chunk_len() -> usize {
    usize::try_from(PRUNE_CHUNK).unwrap_or(usize::MAX)
}

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls [`Durable`](super::Durable) should let wait on one store at once: the reads and
/// rare writes that go through the blocking pool (commits are queued, see
/// [`Ledger::submit`]).
pub const CONCURRENT_CALLS: usize = 8;

/// Sessions kept in memory: the most recent users'. Each costs about 200 bytes (the key,
/// the session's stored JSON, the cache's links).
pub const SESSION_CACHE: usize = 100_000;

/// The page size of a new database. A turn rewrites a few scattered b-tree pages — its
/// MessageSid's index leaf, its session — and the WAL takes each whole: 1 KiB pages write
/// a quarter of what SQLite's default 4 KiB would, for the same turns.
const PAGE_SIZE: i64 = 1024;

/// A session a turn leaves as it was is not written again, unless it was last written this
/// long ago: its `updated_ms` keeps an active user's session from being pruned.
const SESSION_TOUCH_MS: i64 = 24 * 3600 * 1000;

/// Turns committed in one transaction at most: a longer queue is split, so that one batch
/// never holds the writer for long.
const MAX_BATCH: usize = 256;

/// What one turn's caller waits on.
enum Done {
    /// A blocking caller ([`Ledger::commit`]).
    Blocking(std::sync::mpsc::SyncSender<Result<Committed, StoreError>>),
    /// An async caller ([`Ledger::submit`]).
    Async(tokio::sync::oneshot::Sender<Result<Committed, StoreError>>),
}

impl Done {
    fn send(self, result: Result<Committed, StoreError>) {
        // A caller that went away (a client that hung up) no longer needs the result; the
        // turn is committed all the same.
        match self {
            Done::Blocking(tx) => drop(tx.send(result)),
            Done::Async(tx) => drop(tx.send(result)),
        }
    }
}

/// A turn waiting for the writer.
struct QueuedTurn {
    turn: Box<OwnedTurn>,
    done: Done,
}

/// The writer's queue.
#[derive(Default)]
struct Queue {
    turns: Vec<QueuedTurn>,
    /// True once the store is dropped or the writer has stopped: nothing more is taken.
    closed: bool,
}

/// How a transaction is flushed to disk (`PRAGMA synchronous`), see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// In the WAL before COMMIT returns; survives a crash of the process.
    Normal,
    /// Also flushed to the disk before COMMIT returns; survives a power cut.
    Full,
}

/// The connection writes go through, and the synchronous level it is at.
struct Writer {
    conn: Connection,
    sync: Sync,
}

impl Writer {
    /// Sets the level the next transaction commits with (outside a transaction).
    fn durability(&mut self, sync: Sync) -> Result<&mut Connection, StoreError> {
        if self.sync != sync {
            let value = match sync {
                Sync::Normal => "NORMAL",
                Sync::Full => "FULL",
            };
            self.conn.pragma_update(None, "synchronous", value).map_err(backend)?;
            self.sync = sync;
        }
        Ok(&mut self.conn)
    }
}

/// Every user with a stored session, as the cache keys them.
fn stored_users(conn: &Connection) -> Result<Vec<String>, StoreError> {
    all(conn, "SELECT channel, address FROM sessions", [], |r| Ok(cache_key(&address(r, 0, 1)?)))
}

/// What the store's handle and its writer thread share.
struct Shared {
    writer: Mutex<Writer>,
    /// `None` for an in-memory database, which a second connection would not see: reads
    /// then use the writer's connection.
    reader: Option<Mutex<Connection>>,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// Signalled when the store closes, for the checkpointer.
    closing: Condvar,
    sessions: SessionCache,
}

impl Shared {
    fn writer(&self) -> MutexGuard<'_, Writer> {
        // Every write runs in a transaction that rolls back when dropped, so a panic while
        // holding the lock leaves the database consistent.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read on the reader connection (the writer's, in memory).
    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        match &self.reader {
            Some(reader) => f(&reader.lock().unwrap_or_else(|p| p.into_inner())),
            None => f(&self.writer().conn),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, turn: Box<OwnedTurn>, done: Done) {
        let mut queue = self.queue();
        if queue.closed {
            drop(queue);
            done.send(Err(StoreError::Backend("the store is closed".into())));
            return;
        }
        queue.turns.push(QueuedTurn { turn, done });
        drop(queue);
        self.queued.notify_one();
    }

    /// The writer thread: commits whatever is queued, batch after batch, until the store
    /// is dropped and the queue is empty.
    fn write_forever(&self) {
        // However the loop ends, later turns are refused instead of waiting forever.
        struct Close<'a>(&'a Shared);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let pending = {
                    let mut queue = self.0.queue();
                    queue.closed = true;
                    std::mem::take(&mut queue.turns)
                };
                for q in pending {
                    q.done.send(Err(StoreError::Backend("the store's writer stopped".into())));
                }
            }
        }
        let _close = Close(self);
        loop {
            let batch = {
                let mut queue = self.queue();
                while queue.turns.is_empty() && !queue.closed {
                    queue = self.queued.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
                if queue.turns.is_empty() {
                    return;
                }
                let n = queue.turns.len().min(MAX_BATCH);
                queue.turns.drain(..n).collect::<Vec<_>>()
            };
            self.commit_batch(batch);
        }
    }

    /// The checkpointer thread (see [`checkpoint`]), until the store closes.
    fn checkpoint_forever(&self, mut checkpointer: Checkpointer) {
        loop {
            {
                let queue = self.queue();
                if queue.closed {
                    return;
                }
                let (queue, _) =
                    self.closing.wait_timeout(queue, checkpoint::POLL).unwrap_or_else(|p| p.into_inner());
                if queue.closed {
                    return;
                }
            }
            checkpointer.tick(|| self.writer());
        }
    }

    /// Commits `batch` and answers each caller; the session cache follows what committed.
    fn commit_batch(&self, batch: Vec<QueuedTurn>) {
        // Serialised, and compared with the cache, before taking the connection.
        let writes: Vec<Result<SessionWrite, StoreError>> = batch
            .iter()
            .map(|q| {
                let t = &q.turn;
                let data = serde_json::to_string(&t.session).map_err(backend)?;
                let fresh = t.now_ms.saturating_sub(SESSION_TOUCH_MS);
                // A turn with a request always moves the version: a second confirmation
                // computed on the same state must conflict, whatever the session's text.
                let unchanged =
                    t.request.is_none() && self.sessions.holds(&t.user, &data, t.session_version, fresh);
                Ok(if unchanged { SessionWrite::Keep } else { SessionWrite::Store(data) })
            })
            .collect();
        let turns: Vec<Turn<'_>> = batch.iter().map(|q| q.turn.turn()).collect();
        let sync = if turns.iter().any(|t| t.request.is_some()) { Sync::Full } else { Sync::Normal };
        let results = {
            let mut writer = self.writer();
            match writer.durability(sync) {
                Ok(conn) => commit_batch(conn, &turns, &writes),
                Err(e) => turns.iter().map(|_| Err(StoreError::Backend(e.to_string()))).collect(),
            }
        };
        drop(turns);
        for (queued, result) in batch.into_iter().zip(results) {
            let t = &queued.turn;
            match &result {
                Ok(Written { session: Some(data), .. }) => self.sessions.offer(
                    &t.user,
                    Stored { data: data.clone(), version: t.session_version + 1, updated_ms: t.now_ms },
                ),
                Err(StoreError::Conflict) => self.sessions.forget(&t.user),
                _ => {}
            }
            queued.done.send(result.map(|w| w.committed));
        }
    }
}

/// The durable store on one SQLite file.
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// The writer, and for a file the checkpointer.
    threads: Vec<std::thread::JoinHandle<()>>,
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
        Self::open_tuned(path, |c| c)
    }

    fn open_tuned(
        path: &Path,
        tune: impl FnOnce(Checkpointer) -> Checkpointer,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let open = || -> Result<Connection, StoreError> {
            let conn = Connection::open(path)
                .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
            Ok(conn)
        };
        let mut writer = Self::setup(open()?)?;
        // Checkpoints are the checkpointer's (see `Shared::checkpoint_forever`), not the
        // writer's: with SQLite's automatic one, every thousand pages a batch would wait for
        // two fsyncs. The hook replaces it, and tells the checkpointer the WAL's size.
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = Arc::clone(&wal_frames);
        writer
            .conn
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                frames.store(i64::from(pages), Ordering::Relaxed);
                Ok(())
            }))
            .map_err(backend)?;
        let reader = open()?;
        reader.pragma_update(None, "query_only", "ON").map_err(backend)?;
        let checkpointer = open()?;
        checkpointer.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        Self::start(writer, Some((reader, tune(Checkpointer::new(checkpointer, wal_frames)))))
    }

    /// A private in-memory database (tests, or a server that must not keep anything).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let writer = Self::setup(Connection::open_in_memory().map_err(backend)?)?;
        Self::start(writer, None)
    }

    fn setup(mut conn: Connection) -> Result<Writer, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        // Only a new database takes it; an existing one keeps its page size.
        conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(backend)?;
        // WAL: readers (the CLI, the reader connection) never block the writes, and a
        // commit is one append to the log.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
        if mode != "wal" && mode != "memory" {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Writer { conn, sync: Sync::Full })
    }

    /// Starts the writer thread and, for a file, the checkpointer thread; reads go to the
    /// file's `reader` connection.
    fn start(writer: Writer, file: Option<(Connection, Checkpointer)>) -> Result<SqliteStore, StoreError> {
        let (reader, checkpointer) = file.unzip();
        let users = stored_users(&writer.conn)?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(writer),
            reader: reader.map(Mutex::new),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            closing: Condvar::new(),
            sessions: SessionCache::new(SESSION_CACHE, users),
        });
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|e| StoreError::Backend(format!("starting the store's {name} thread: {e}")))
        };
        let mut threads = Vec::new();
        let writing = Arc::clone(&shared);
        threads.push(spawn("wabot-store", Box::new(move || writing.write_forever()))?);
        if let Some(checkpointer) = checkpointer {
            let checkpointing = Arc::clone(&shared);
            let run = Box::new(move || checkpointing.checkpoint_forever(checkpointer));
            match spawn("wabot-checkpoint", run) {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    SqliteStore { shared, threads }.close();
                    return Err(e);
                }
            }
        }
        Ok(SqliteStore { shared, threads })
    }

    /// Stops the threads: the writer commits what is still queued first.
    fn close(&mut self) {
        self.shared.queue().closed = true;
        self.shared.queued.notify_all();
        self.shared.closing.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let v: i64 =
            self.shared.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend))?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// A write outside the turns' batches, committed at `sync`.
    fn write<R>(
        &self,
        sync: Sync,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut writer = self.shared.writer();
        let tx = writer
            .durability(sync)?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let r = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(r)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl SessionStore for SqliteStore {
    fn load(&self, user: &Address) -> Result<Session, StoreError> {
        self.load_versioned(user).map(|(s, _)| s)
    }

    fn save(&self, user: &Address, session: &Session) -> Result<(), StoreError> {
        // Outside a conversation turn (a badge identified): rare, and worth a flush.
        let data = serde_json::to_string(session).map_err(backend)?;
        let now = crate::domain::now_ms();
        let version = self.write(Sync::Full, |tx| {
            one(
                tx,
                "INSERT INTO sessions (channel, address, data, version, updated_ms) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (channel, address) DO UPDATE
                 SET data = excluded.data, version = version + 1, updated_ms = excluded.updated_ms
                 RETURNING version",
                params![user.channel().as_str(), user.id(), data, now],
                |r| r.get::<_, i64>(0),
            )?
            .ok_or_else(|| backend("the session was not written"))
        })?;
        self.shared.sessions.offer(user, Stored { data: data.into(), version, updated_ms: now });
        Ok(())
    }
}

impl Ledger for SqliteStore {
    fn load_versioned(&self, user: &Address) -> Result<(Session, i64), StoreError> {
        if let Cached::Session(s) = self.shared.sessions.get(user) {
            return Ok((decode_session(&s.data), s.version));
        }
        let row: Option<(String, i64, i64)> = self.shared.read(|c| {
            one(
                c,
                "SELECT data, version, updated_ms FROM sessions WHERE channel = ?1 AND address = ?2",
                [user.channel().as_str(), user.id()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        match row {
            Some((data, version, updated_ms)) => {
                let session = decode_session(&data);
                self.shared.sessions.offer(user, Stored { data: data.into(), version, updated_ms });
                Ok((session, version))
            }
            None => Ok((Session::default(), 0)),
        }
    }

    fn cached_session(&self, user: &Address) -> Option<(Session, i64)> {
        match self.shared.sessions.get(user) {
            Cached::Session(s) => Some((decode_session(&s.data), s.version)),
            Cached::None => Some((Session::default(), 0)),
            Cached::Unknown => None,
        }
    }

    fn replay(&self, channel: Channel, message_id: &MessageId) -> Result<Option<Vec<String>>, StoreError> {
        let reply: Option<String> = self.shared.read(|c| {
            one(
                c,
                "SELECT reply FROM messages WHERE channel = ?1 AND message_id = ?2",
                [channel.as_str(), message_id.as_str()],
                |r| r.get(0),
            )
        })?;
        reply.map(|r| serde_json::from_str(&r).map_err(backend)).transpose()
    }

    fn commit(&self, turn: &Turn<'_>) -> Result<Committed, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.shared.enqueue(Box::new(OwnedTurn::from(turn)), Done::Blocking(tx));
        rx.recv().map_err(|_| StoreError::Backend("the store's writer stopped".into()))?
    }

    fn submit(&self, turn: Box<OwnedTurn>) -> Result<CommitReceiver, Box<OwnedTurn>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.enqueue(turn, Done::Async(tx));
        Ok(rx)
    }

    fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM outbox o JOIN requests r ON r.id = o.request_id
             WHERE o.state = 'queued' AND o.next_attempt_ms <= ?1
             ORDER BY o.next_attempt_ms, o.id LIMIT ?2"
        );
        let rows = self.shared.read(|c| all(c, &sql, params![now_ms, sql_limit(limit)], record))?;
        Ok(rows.into_iter().map(|(id, request)| OutboxItem { id, request }).collect())
    }

    fn next_mail_due(&self) -> Result<Option<i64>, StoreError> {
        self.shared.read(|c| {
            one(c, "SELECT min(next_attempt_ms) FROM outbox WHERE state = 'queued'", [], |r| r.get(0))
                .map(Option::flatten)
        })
    }

    fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        self.shared.read(|c| {
            one(
                c,
                "SELECT min(next_attempt_ms) FROM outbox WHERE state = 'queued' AND next_attempt_ms > ?1",
                [after_ms],
                |r| r.get(0),
            )
            .map(Option::flatten)
        })
    }

    fn outbox_depth(&self) -> Result<Option<u64>, StoreError> {
        let n: Option<i64> = self
            .shared
            .read(|c| one(c, "SELECT count(*) FROM outbox WHERE state = 'queued'", [], |r| r.get(0)))?;
        Ok(Some(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
    }

    fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        self.shared.read(|c| {
            all(
                c,
                "SELECT question, count, first_ms, last_ms FROM unanswered
                 ORDER BY count DESC, last_ms DESC LIMIT ?1",
                [sql_limit(limit)],
                |r| {
                    Ok(Unanswered {
                        question: r.get(0)?,
                        count: r.get(1)?,
                        first_ms: r.get(2)?,
                        last_ms: r.get(3)?,
                    })
                },
            )
        })
    }

    fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        // Flushed: a "sent" forgotten in a power cut would send the e-mail again.
        self.write(Sync::Full, |tx| {
            exec(
                tx,
                "UPDATE outbox SET state = 'sent', sent_ms = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
                params![outbox_id, at_ms],
            )
        })?;
        Ok(())
    }

    fn mark_failed(&self, outbox_id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
                 WHERE id = ?1 AND state = 'queued'",
                params![outbox_id, error, retry_at_ms],
            )
        })?;
        Ok(())
    }

    fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError> {
        let state: Option<String> = self.write(Sync::Normal, |tx| {
            one(
                tx,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3,
                     permanent_failures = permanent_failures + 1,
                     state = CASE WHEN permanent_failures + 1 >= ?4 THEN 'dead' ELSE 'queued' END
                 WHERE id = ?1 AND state = 'queued'
                 RETURNING state",
                params![outbox_id, error, retry_at_ms, i64::from(dead_after.max(1))],
                |r| r.get(0),
            )
        })?;
        Ok(if state.as_deref() == Some("dead") { MailState::Dead } else { MailState::Queued })
    }

    fn dead_mail(&self) -> Result<Option<u64>, StoreError> {
        let n: Option<i64> = self
            .shared
            .read(|c| one(c, "SELECT count(*) FROM outbox WHERE state = 'dead'", [], |r| r.get(0)))?;
        Ok(Some(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)))
    }

    fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
             ORDER BY r.id DESC LIMIT ?1"
        );
        let rows = self.shared.read(|c| all(c, &sql, [sql_limit(limit)], record))?;
        Ok(rows.into_iter().map(|(_, rec)| rec).collect())
    }

    /// In short transactions, so that turns commit in between: message ids oldest first
    /// along the table (they are inserted in time order), stopping at the first one to
    /// keep; sessions found on the reader connection, then deleted unless a turn touched
    /// them meanwhile.
    fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let (deleted, done) = self.write(Sync::Normal, |tx| {
                let rows: Vec<(i64, i64)> = all(
                    tx,
                    "SELECT rowid, received_ms FROM messages ORDER BY rowid LIMIT ?1",
                    [PRUNE_CHUNK],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let old = rows.iter().take_while(|(_, at)| *at < messages_before_ms).count();
                let Some(&(last, _)) = old.checked_sub(1).and_then(|i| rows.get(i)) else {
                    return Ok((0, true));
                };
                let deleted = exec(tx, "DELETE FROM messages WHERE rowid <= ?1", [last])?;
                Ok((deleted, old < rows.len() || rows.len() < chunk_len()))
            })?;
            removed += deleted;
            if done {
                break;
            }
        }
        let mut after = i64::MIN;
        loop {
            // The candidates, a range of rows at a time, without holding the writer.
            let (rows, last) = self.shared.read(|c| {
                let rows: Vec<(i64, Address, i64)> = all(
                    c,
                    "SELECT rowid, channel, address, updated_ms FROM sessions WHERE rowid > ?1
                     ORDER BY rowid LIMIT ?2",
                    params![after, PRUNE_CHUNK],
                    |r| Ok((r.get(0)?, address(r, 1, 2)?, r.get(3)?)),
                )?;
                let last = rows.last().map(|(id, ..)| *id);
                let idle = rows.into_iter().filter(|(.., at)| *at < sessions_before_ms).map(|(_, u, _)| u);
                Ok((idle.collect::<Vec<_>>(), last))
            })?;
            if !rows.is_empty() {
                removed += self.write(Sync::Normal, |tx| {
                    let mut deleted = 0;
                    for user in &rows {
                        // Still idle? A turn may have come since the read.
                        if exec(
                            tx,
                            "DELETE FROM sessions WHERE channel = ?1 AND address = ?2 AND updated_ms < ?3",
                            params![user.channel().as_str(), user.id(), sessions_before_ms],
                        )? > 0
                        {
                            deleted += 1;
                            // Under the writer's lock: no turn commits in between. Should
                            // the transaction fail, forgetting costs only a read.
                            self.shared.sessions.pruned(user);
                        }
                    }
                    Ok(deleted)
                })?;
            }
            match last {
                Some(id) => after = id,
                None => break,
            }
        }
        Ok(removed)
    }

    fn enqueue_photo(&self, job: &PhotoJob, reply: &[String]) -> Result<Enqueued, StoreError> {
        let reply = serde_json::to_string(reply).map_err(backend)?;
        self.write(Sync::Full, |tx| {
            let channel = job.user.channel().as_str();
            if let Some(sid) = &job.message_id {
                let claimed = exec(
                    tx,
                    "INSERT INTO messages (channel, message_id, address, reply, received_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (channel, message_id) DO NOTHING",
                    params![channel, sid.as_str(), job.user.id(), reply, job.created_ms],
                )?;
                if claimed == 0 {
                    let first: String = one(
                        tx,
                        "SELECT reply FROM messages WHERE channel = ?1 AND message_id = ?2",
                        [channel, sid.as_str()],
                        |r| r.get(0),
                    )?
                    .ok_or_else(|| backend("a claimed message id has no row"))?;
                    return Ok(Enqueued::Replayed(serde_json::from_str(&first).map_err(backend)?));
                }
            }
            exec(
                tx,
                "INSERT INTO photo_jobs (message_id, channel, address, bot, media_url, content_type, lang,
                     created_ms)
                 VALUES (?1, ?8, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    job.message_id.as_ref().map(MessageId::as_str),
                    job.user.id(),
                    job.bot.id(),
                    job.media_url,
                    job.content_type,
                    lang_code(job.lang),
                    job.created_ms,
                    channel
                ],
            )?;
            Ok(Enqueued::Queued(tx.last_insert_rowid()))
        })
    }

    fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        self.shared.read(|c| {
            all(
                c,
                "SELECT id, message_id, address, bot, media_url, content_type, lang, created_ms, channel
                 FROM photo_jobs ORDER BY created_ms, id LIMIT ?1",
                [sql_limit(limit)],
                |r| {
                    let lang: String = r.get(6)?;
                    let message_id: Option<String> = r.get(1)?;
                    let message_id = message_id
                        .map(|m| {
                            MessageId::parse(&m).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    1,
                                    rusqlite::types::Type::Text,
                                    Box::new(e),
                                )
                            })
                        })
                        .transpose()?;
                    Ok(PendingPhoto {
                        id: r.get(0)?,
                        job: PhotoJob {
                            message_id,
                            user: address(r, 8, 2)?,
                            bot: address(r, 8, 3)?,
                            media_url: r.get(4)?,
                            content_type: r.get(5)?,
                            lang: lang_from_code(&lang),
                            created_ms: r.get(7)?,
                        },
                    })
                },
            )
        })
    }

    /// Deletes the job rather than marking it: the outcome is in the log and the metrics,
    /// the message id's claim (in `messages`) keeps answering redeliveries, and a done
    /// job's user number and media URL are nothing to keep. Flushed: a "done" lost in a
    /// power cut would send the result again.
    fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = self.write(Sync::Full, |tx| exec(tx, "DELETE FROM photo_jobs WHERE id = ?1", [id]))?;
        Ok(deleted > 0)
    }

    fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        self.shared.read(|c| {
            one(
                c,
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
                     WHERE r.ticket = ?1"
                ),
                [ticket],
                record,
            )
            .map(|r| r.map(|(_, rec)| rec))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::schema::MIGRATIONS;
    use super::*;
    use crate::domain::Pending;
    use crate::domain::{NewRequest, TICKET_PLACEHOLDER};
    use crate::engine::Lang;
    use std::sync::LazyLock;

    const TW: Channel = Channel::Twilio;

    /// A Twilio user.
    fn a(id: &str) -> Address {
        Address::parse(TW, id).unwrap()
    }

    fn m(id: &str) -> MessageId {
        MessageId::parse(id).unwrap()
    }

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

    static USER: LazyLock<Address> = LazyLock::new(|| a("+33600000000"));

    /// A turn on the session as currently stored.
    fn turn<'a>(
        store: &SqliteStore,
        sid: &'a MessageId,
        session: &'a Session,
        messages: &'a [String],
        req: Option<&'a NewRequest>,
    ) -> Turn<'a> {
        Turn {
            user: &USER,
            message_id: Some(sid),
            session,
            session_version: store.load_versioned(&USER).unwrap().1,
            messages,
            request: req,
            unanswered: None,
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
                        let user = a(&format!("+336000{t:02}{i:03}"));
                        let sid = m(&format!("SM{t}-{i}"));
                        let msgs = vec![format!("ok {t} {i} {TICKET_PLACEHOLDER}")];
                        let req = request();
                        let turn = Turn {
                            user: &user,
                            message_id: Some(&sid),
                            session: &Session::default(),
                            session_version: 0,
                            messages: &msgs,
                            request: (i % 5 == 0).then_some(&req),
                            unanswered: None,
                            now_ms: NOW,
                        };
                        let done = store.commit(&turn).unwrap();
                        assert!(!done.replayed);
                        assert!(done.messages[0].starts_with(&format!("ok {t} {i} ")), "{:?}", done.messages);
                        tickets += usize::from(done.ticket.is_some());
                        // The same message id again: replayed, whichever batch it lands in.
                        let again = store.commit(&turn).unwrap();
                        assert!(again.replayed && again.messages == done.messages);
                    }
                    tickets
                })
            })
            .collect();
        let tickets: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(tickets, 40);
        let writer = store.shared.writer();
        let conn = &writer.conn;
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
        let (sm_a, sm_b) = (m("SM-a"), m("SM-b"));
        let first = Turn {
            user: &USER,
            message_id: Some(&sm_a),
            session: &Session::default(),
            session_version: 0,
            messages: &msgs,
            request: None,
            unanswered: None,
            now_ms: NOW,
        };
        let stale = Turn { message_id: Some(&sm_b), ..first };
        let writes =
            [first, stale].map(|t| Ok(SessionWrite::Store(serde_json::to_string(t.session).unwrap())));
        let results = commit_batch(&mut store.shared.writer().conn, &[first, stale], &writes);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Conflict)), "{:?}", results[1]);
        assert!(store.replay(TW, &m("SM-a")).unwrap().is_some());
        assert!(
            store.replay(TW, &m("SM-b")).unwrap().is_none(),
            "the conflicting turn's message id was rolled back"
        );
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
        store.save(&a("u"), &s).unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load(&a("u")).unwrap(), s);
        assert_eq!(store.load(&a("other")).unwrap(), Session::default());
        let mode: String =
            store.shared.writer().conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn tickets_count_per_year_and_a_repeated_sid_commits_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let session = Session::default();
        let msgs = vec![format!("Ticket {TICKET_PLACEHOLDER}")];
        let req = request();
        let first = store.commit(&turn(&store, &m("SM1"), &session, &msgs, Some(&req))).unwrap();
        assert_eq!(first.ticket.as_deref(), Some("REQ-2026-000001"));
        assert_eq!(first.messages, ["Ticket REQ-2026-000001"]);
        let again = store.commit(&turn(&store, &m("SM1"), &session, &msgs, Some(&req))).unwrap();
        assert!(again.replayed);
        assert_eq!(again.messages, first.messages);
        assert_eq!(store.requests(10).unwrap().len(), 1);
        let second = store.commit(&turn(&store, &m("SM2"), &session, &msgs, Some(&req))).unwrap();
        assert_eq!(second.ticket.as_deref(), Some("REQ-2026-000002"));
        let sm3 = m("SM3");
        let next_year =
            Turn { now_ms: NOW + 60 * 86_400_000, ..turn(&store, &sm3, &session, &msgs, Some(&req)) };
        assert_eq!(store.commit(&next_year).unwrap().ticket.as_deref(), Some("REQ-2027-000001"));
        assert_eq!(store.replay(TW, &m("SM2")).unwrap().unwrap(), ["Ticket REQ-2026-000002"]);
        assert!(store.replay(TW, &m("SM9")).unwrap().is_none());
    }

    #[test]
    fn a_commit_on_a_stale_session_writes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["ok".to_owned()];
        let session = Session { lang: Some(Lang::Fr), ..Session::default() };
        let sm1 = m("SM1");
        let stale = turn(&store, &sm1, &session, &msgs, None);
        store.commit(&turn(&store, &m("SM0"), &session, &msgs, None)).unwrap();
        assert!(matches!(store.commit(&stale), Err(StoreError::Conflict)));
        assert!(store.replay(TW, &m("SM1")).unwrap().is_none(), "the message id's claim was rolled back");
        assert_eq!(store.load_versioned(&USER).unwrap().1, 1);
        let req = request();
        let stale = Turn { request: Some(&req), ..stale };
        assert!(matches!(store.commit(&stale), Err(StoreError::Conflict)));
        assert!(store.requests(10).unwrap().is_empty(), "no request from a stale turn");
        store.commit(&turn(&store, &sm1, &session, &msgs, Some(&req))).unwrap();
        assert_eq!(store.load_versioned(&USER).unwrap().1, 2);
    }

    #[test]
    fn the_outbox_retries_then_marks_sent() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec![String::new()];
        store.commit(&turn(&store, &m("SM1"), &Session::default(), &msgs, Some(&request()))).unwrap();
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
        assert_eq!(store.prune(NOW + 1, NOW + 1).unwrap(), 2, "the message id and the session");
        assert!(store.replay(TW, &m("SM1")).unwrap().is_none());
        assert_eq!(store.requests(10).unwrap().len(), 1, "requests are kept");
        store.mark_sent(due[0].id, NOW + 2000).unwrap();
        let rec = store.request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!((rec.mail, rec.attempts, rec.sent_at_ms), (MailState::Sent, 2, Some(NOW + 2000)));
        assert_eq!(store.next_mail_due().unwrap(), None);
    }

    #[test]
    fn the_dead_letter_migration_keeps_every_outbox_row_and_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            for (id, state) in [(1, "sent"), (2, "queued")] {
                conn.execute(
                    "INSERT INTO requests (id, ticket, user, kind, kind_label, recipient, first_name, last_name, lang, created_ms)
                     VALUES (?1, ?2, 'whatsapp:+33600000000', 'k', 'K', 'hr@example.com', 'A', 'B', 'fr', ?3)",
                    params![id, format!("REQ-2026-00000{id}"), NOW],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO outbox (id, request_id, state, attempts, next_attempt_ms, last_error, sent_ms)
                     VALUES (?1, ?2, ?3, 2, ?4, 'x', NULL)",
                    params![id * 10, id, state, NOW],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        let sent = store.request("REQ-2026-000001").unwrap().unwrap();
        let queued = store.request("REQ-2026-000002").unwrap().unwrap();
        assert_eq!((sent.mail, sent.attempts), (MailState::Sent, 2));
        assert_eq!(
            (queued.mail, queued.attempts, queued.last_error.as_deref()),
            (MailState::Queued, 2, Some("x"))
        );
        let due = store.due_mail(NOW, 10).unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [20], "ids kept, the due index rebuilt");
        assert_eq!(store.mark_rejected(20, "550", NOW, 1).unwrap(), MailState::Dead);
    }

    #[test]
    fn a_database_keyed_by_twilio_addresses_opens_with_its_rows_as_twilio_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let fr = serde_json::to_string(&Session { lang: Some(Lang::Fr), ..Session::default() }).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute(
                "INSERT INTO sessions (user, data, version, updated_ms) VALUES ('whatsapp:+33600000000', ?1, 3, ?2)",
                params![fr, NOW],
            )
            .unwrap();
            for (sid, at) in [("SM-old", NOW - 10), ("SM-new", NOW)] {
                conn.execute(
                    "INSERT INTO messages (sid, user, reply, received_ms)
                     VALUES (?1, 'whatsapp:+33600000000', '[\"ok\"]', ?2)",
                    params![sid, at],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO requests (id, ticket, user, message_sid, kind, kind_label, recipient, first_name,
                     last_name, lang, created_ms)
                 VALUES (1, 'REQ-2026-000001', 'whatsapp:+33600000000', 'SM-new', 'k', 'K', 'hr@example.com',
                     'A', 'B', 'fr', ?1)",
                [NOW],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO outbox (id, request_id, state, next_attempt_ms) VALUES (1, 1, 'queued', ?1)",
                [NOW],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO photo_jobs (message_sid, user, bot, media_url, content_type, lang, created_ms)
                 VALUES ('SM-photo', 'whatsapp:+33600000000', 'whatsapp:+14155238886', 'https://m', NULL, 'fr', ?1)",
                [NOW],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        assert_eq!(
            store.load_versioned(&USER).unwrap(),
            (Session { lang: Some(Lang::Fr), ..Session::default() }, 3)
        );
        assert_eq!(store.replay(TW, &m("SM-new")).unwrap(), Some(vec!["ok".to_owned()]));
        assert_eq!(store.replay(Channel::Meta, &m("SM-new")).unwrap(), None);
        let request = store.request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!((&request.user, request.mail), (&*USER, MailState::Queued));
        let jobs = store.pending_photos(10).unwrap();
        assert_eq!(
            (&jobs[0].job.user, &jobs[0].job.bot, jobs[0].job.message_id.as_ref()),
            (&*USER, &a("+14155238886"), Some(&m("SM-photo")))
        );
        // The claimed messages kept their order: pruning still walks them oldest first.
        assert_eq!(store.prune(NOW, 0).unwrap(), 1);
        assert!(
            store.replay(TW, &m("SM-old")).unwrap().is_none()
                && store.replay(TW, &m("SM-new")).unwrap().is_some()
        );
        // A redelivery of a message claimed before the upgrade is still recognised.
        let again = store.commit(&faq_turn(&USER, &m("SM-new"), &Session::default(), 3, &[])).unwrap();
        assert!(again.replayed);
    }

    #[test]
    fn permanent_rejections_dead_letter_the_mail_after_the_configured_count() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec![String::new()];
        store.commit(&turn(&store, &m("SM1"), &Session::default(), &msgs, Some(&request()))).unwrap();
        let id = store.due_mail(NOW, 10).unwrap()[0].id;
        // A transient failure in between does not count towards the dead letter.
        assert_eq!(store.mark_rejected(id, "550 no such user", NOW + 10, 2).unwrap(), MailState::Queued);
        store.mark_failed(id, "timed out", NOW + 20).unwrap();
        assert_eq!(store.dead_mail().unwrap(), Some(0));
        assert_eq!(store.mark_rejected(id, "550 no such user", NOW + 30, 2).unwrap(), MailState::Dead);
        let rec = store.request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!(
            (rec.mail, rec.attempts, rec.last_error.as_deref()),
            (MailState::Dead, 3, Some("550 no such user"))
        );
        assert_eq!(rec.next_attempt_ms, None);
        assert!(store.due_mail(i64::MAX, 10).unwrap().is_empty(), "never tried again");
        assert_eq!(store.next_mail_due().unwrap(), None);
        assert_eq!(store.outbox_depth().unwrap(), Some(0));
        assert_eq!(store.dead_mail().unwrap(), Some(1));
    }

    fn faq_turn<'a>(
        user: &'a Address,
        sid: &'a MessageId,
        session: &'a Session,
        version: i64,
        msgs: &'a [String],
    ) -> Turn<'a> {
        Turn {
            user,
            message_id: Some(sid),
            session,
            session_version: version,
            messages: msgs,
            request: None,
            unanswered: None,
            now_ms: NOW,
        }
    }

    #[test]
    fn conversation_turns_commit_without_a_flush_and_a_request_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Normal);
        let req = request();
        store.commit(&Turn { request: Some(&req), ..faq_turn(&USER, &m("SM2"), &fr, 1, &msgs) }).unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Full, "the request's batch waits for the disk");
        store.save(&USER, &fr).unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Full);
    }

    #[test]
    fn a_new_user_needs_no_read_and_a_cached_session_follows_each_commit() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(store.cached_session(&USER), Some((Session::default(), 0)), "known to have none");
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        assert_eq!(store.cached_session(&USER), Some((fr.clone(), 1)));
        let menu = Session { pending: Some(Pending::Categories), ..fr.clone() };
        store.commit(&faq_turn(&USER, &m("SM2"), &menu, 1, &msgs)).unwrap();
        assert_eq!(store.cached_session(&USER), Some((menu, 2)));
    }

    #[test]
    fn a_turn_that_leaves_the_session_as_it_was_does_not_rewrite_it_but_still_checks_its_version() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        store.commit(&faq_turn(&USER, &m("SM2"), &fr, 1, &msgs)).unwrap();
        assert_eq!(store.load_versioned(&USER).unwrap().1, 1, "nothing changed, nothing written");
        assert!(store.replay(TW, &m("SM2")).unwrap().is_some(), "the message id is recorded all the same");
        let en = Session { lang: Some(Lang::En), ..Session::default() };
        store.commit(&faq_turn(&USER, &m("SM3"), &en, 1, &msgs)).unwrap();
        let stale = store.commit(&faq_turn(&USER, &m("SM4"), &fr, 1, &msgs));
        assert!(matches!(stale, Err(StoreError::Conflict)), "computed on version 1, now 2: {stale:?}");
        assert!(store.replay(TW, &m("SM4")).unwrap().is_none());
    }

    #[test]
    fn a_session_changed_behind_the_cache_fails_the_turn_once_then_is_read_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = SqliteStore::open(&path).unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        let other = &a("+33611111111");
        // Another process writes both users' sessions.
        let outside = Connection::open(&path).unwrap();
        outside.busy_timeout(BUSY_TIMEOUT).unwrap();
        let en = serde_json::to_string(&Session { lang: Some(Lang::En), ..Session::default() }).unwrap();
        outside
            .execute("UPDATE sessions SET data = ?1, version = 7 WHERE address = ?2", params![en, USER.id()])
            .unwrap();
        outside
            .execute(
                "INSERT INTO sessions (channel, address, data, version, updated_ms) VALUES ('twilio', ?1, ?2, 3, 0)",
                params![other.id(), en],
            )
            .unwrap();
        let (cached, version) = store.cached_session(&USER).unwrap();
        let stale = store.commit(&faq_turn(&USER, &m("SM2"), &cached, version, &msgs));
        assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
        assert_eq!(store.cached_session(&USER), None, "forgotten: the next turn reads");
        assert_eq!(
            store.load_versioned(&USER).unwrap(),
            (Session { lang: Some(Lang::En), ..Session::default() }, 7)
        );
        assert_eq!(
            store.cached_session(other),
            Some((Session::default(), 0)),
            "a guess, unknown to this store"
        );
        let guessed = store.commit(&faq_turn(other, &m("SM3"), &fr, 0, &msgs));
        assert!(matches!(guessed, Err(StoreError::Conflict)), "{guessed:?}");
        assert_eq!(store.cached_session(other), None, "now known to have one: read next time");
        assert_eq!(store.load_versioned(other).unwrap().1, 3);
    }

    #[test]
    fn a_declined_question_is_counted_with_its_turn_and_not_again_on_a_redelivery() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["sorry".to_owned()];
        let s = Session::default();
        let sm1 = m("SM1");
        let turn = Turn { unanswered: Some("weather tomorrow"), ..faq_turn(&USER, &sm1, &s, 0, &msgs) };
        store.commit(&turn).unwrap();
        assert!(store.commit(&turn).unwrap().replayed);
        let asked = store.unanswered(10).unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!((asked[0].question.as_str(), asked[0].count), ("weather tomorrow", 1));
    }

    #[test]
    fn under_steady_commits_the_wal_is_checkpointed_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store =
            SqliteStore::open_tuned(&path, |c| c.with_limits(256 << 10, Duration::from_secs(60))).unwrap();
        let wal = dir.path().join("w.db-wal");
        // The WAL's header counts the times the log started over from its beginning.
        let starts = || {
            let mut header = [0u8; 16];
            std::fs::File::open(&wal)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
                .map_or(0, |()| u32::from_be_bytes([header[12], header[13], header[14], header[15]]))
        };
        let msgs = vec!["x".repeat(400)];
        let (mut first, mut turns) = (None, 0usize);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        // Commits one after the other, never leaving the log idle: a checkpoint that only
        // copied pages, without holding the writer for the last ones, would never see the
        // log wholly copied and it would grow for as long as the commits go on. How fast
        // the log starts over depends on the disk's flushes, so the test waits for it.
        while std::time::Instant::now() < deadline {
            let user = a(&format!("+3360{:07}", turns % 3000));
            let (session, version) = store.load_versioned(&user).unwrap();
            let lang = if (turns / 3000) % 2 == 0 { Lang::En } else { Lang::Fr };
            let session = Session { lang: Some(lang), ..session };
            store.commit(&faq_turn(&user, &m(&format!("SM{turns}")), &session, version, &msgs)).unwrap();
            turns += 1;
            if turns % 64 == 0 {
                let now = starts();
                let first = *first.get_or_insert(now);
                if now >= first + 2 && turns >= 3000 {
                    break;
                }
            }
        }
        assert!(starts() >= first.unwrap() + 2, "after {turns} turns the log never started over twice");
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let last = format!("SM{}", turns - 1);
        assert!(
            store.replay(TW, &m("SM0")).unwrap().is_some() && store.replay(TW, &m(&last)).unwrap().is_some()
        );
        assert!(store.load_versioned(&a("+33600000000")).unwrap().1 >= 1);
    }

    #[test]
    fn pruning_in_chunks_removes_only_what_is_old_and_a_pruned_user_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let msgs = vec!["hi".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        // 5,000 idle users' turns an hour before the cut-off, then 100 recent ones; more
        // than two chunks of each table.
        let (cut, n) = (NOW + 3_600_000, 5_000);
        for i in 0..n + 100 {
            let user = a(&format!("+3361{i:07}"));
            let sid = m(&format!("SM{i}"));
            let now_ms = if i < n { NOW } else { cut + 1 };
            store.commit(&Turn { now_ms, ..faq_turn(&user, &sid, &fr, 0, &msgs) }).unwrap();
        }
        // A recent turn of an old user keeps their session, not their old message id.
        let kept = &a("+33610000007");
        let (_, version) = store.load_versioned(kept).unwrap();
        store
            .commit(&Turn {
                now_ms: cut + 1,
                ..faq_turn(kept, &m("SM-late"), &Session::default(), version, &msgs)
            })
            .unwrap();
        assert_eq!(store.prune(cut, cut).unwrap(), 2 * n - 1, "message ids and sessions");
        assert!(
            store.replay(TW, &m("SM0")).unwrap().is_none()
                && store.replay(TW, &m(&format!("SM{}", n - 1))).unwrap().is_none()
        );
        assert!(
            store.replay(TW, &m(&format!("SM{n}"))).unwrap().is_some()
                && store.replay(TW, &m("SM-late")).unwrap().is_some()
        );
        let count = |t: &str| -> i64 {
            store
                .shared
                .read(|c| {
                    c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).map_err(backend)
                })
                .unwrap()
        };
        assert_eq!((count("messages"), count("sessions")), (101, 101));
        assert_eq!(store.load_versioned(kept).unwrap().1, version + 1);
        // A pruned user was cached: now known to have nothing, their next turn is a first.
        let gone = &a("+33610000001");
        assert_eq!(store.cached_session(gone), Some((Session::default(), 0)));
        store
            .commit(&Turn { now_ms: cut + 2, ..faq_turn(gone, &m("SM-back"), &Session::default(), 0, &msgs) })
            .unwrap();
        assert_eq!(store.prune(cut, cut).unwrap(), 0, "nothing more is old");
    }

    fn photo(sid: Option<&str>, user: &Address, created_ms: i64) -> PhotoJob {
        PhotoJob {
            user: user.clone(),
            bot: a("+14155238886"),
            message_id: sid.map(m),
            media_url: format!("https://api.twilio.com/media/{}", sid.unwrap_or("none")),
            content_type: Some("image/jpeg".to_owned()),
            lang: Lang::Fr,
            created_ms,
        }
    }

    #[test]
    fn a_photo_job_is_committed_with_its_message_id_and_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = SqliteStore::open(&path).unwrap();
        let reading = vec!["Je lis votre badge…".to_owned()];
        store.commit(&faq_turn(&USER, &m("SM-text"), &Session::default(), 0, &["ok".to_owned()])).unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Normal);
        let job = photo(Some("SM-photo"), &USER, NOW);
        let Enqueued::Queued(id) = store.enqueue_photo(&job, &reading).unwrap() else {
            panic!("a new message id queues its job")
        };
        assert_eq!(store.shared.writer().sync, Sync::Full, "a promise to the user waits for the disk");
        assert_eq!(
            store.replay(TW, &m("SM-photo")).unwrap(),
            Some(reading.clone()),
            "claimed with the reply"
        );
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.pending_photos(10).unwrap(), vec![PendingPhoto { id, job }], "survives a reopen");
    }

    #[test]
    fn a_redelivered_photo_gets_its_first_reply_and_no_second_job() {
        let store = SqliteStore::open_in_memory().unwrap();
        let first = vec!["Reading your badge…".to_owned()];
        assert!(matches!(
            store.enqueue_photo(&photo(Some("SM1"), &USER, NOW), &first),
            Ok(Enqueued::Queued(_))
        ));
        let again = PhotoJob { lang: Lang::En, created_ms: NOW + 5000, ..photo(Some("SM1"), &USER, NOW) };
        assert_eq!(
            store.enqueue_photo(&again, &["something else".to_owned()]).unwrap(),
            Enqueued::Replayed(first)
        );
        assert_eq!(store.pending_photos(10).unwrap().len(), 1);
        // The claim is the one text turns use: a message id already answered as text (or
        // the other way round) is not handled twice.
        let text = vec!["an answer".to_owned()];
        store.commit(&faq_turn(&USER, &m("SM2"), &Session::default(), 0, &text)).unwrap();
        assert_eq!(
            store.enqueue_photo(&photo(Some("SM2"), &USER, NOW), &[]).unwrap(),
            Enqueued::Replayed(text)
        );
        assert!(store.commit(&faq_turn(&USER, &m("SM1"), &Session::default(), 1, &[])).unwrap().replayed);
        assert_eq!(store.pending_photos(10).unwrap().len(), 1, "the claim and the job go together");
    }

    #[test]
    fn pending_photos_come_oldest_first_and_a_done_one_is_gone_but_still_claimed() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut ids = Vec::new();
        for (sid, at) in [("SM-c", NOW + 300), ("SM-a", NOW + 100), ("SM-b", NOW + 200)] {
            match store.enqueue_photo(&photo(Some(sid), &USER, at), &["…".to_owned()]).unwrap() {
                Enqueued::Queued(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        // Without a message id nothing can be claimed, but the job is kept all the same.
        store.enqueue_photo(&photo(None, &USER, NOW + 400), &[]).unwrap();
        let pending = store.pending_photos(10).unwrap();
        let order: Vec<_> =
            pending.iter().map(|p| p.job.message_id.as_ref().map(MessageId::as_str)).collect();
        assert_eq!(order, [Some("SM-a"), Some("SM-b"), Some("SM-c"), None]);
        assert_eq!(store.pending_photos(2).unwrap().len(), 2);
        assert!(store.photo_done(ids[1]).unwrap());
        assert!(!store.photo_done(ids[1]).unwrap(), "done once");
        let order: Vec<_> = store.pending_photos(10).unwrap().into_iter().map(|p| p.job.message_id).collect();
        assert_eq!(order, [Some(m("SM-b")), Some(m("SM-c")), None]);
        assert!(store.replay(TW, &m("SM-a")).unwrap().is_some(), "a redelivery still finds the claim");
        assert!(matches!(
            store.enqueue_photo(&photo(Some("SM-a"), &USER, NOW), &[]),
            Ok(Enqueued::Replayed(_))
        ));
    }
}
