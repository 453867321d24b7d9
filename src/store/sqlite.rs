//! The store's roles on SQLite: one file (`WABOT_DB`), WAL journal, schema migrations applied
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
//! Group commit: turns are queued ([`Turns::commit`], or [`Blocking::commit`] which waits),
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
//! A badge photo's job ([`Jobs::enqueue_photo`]) is written outside the batches, with its
//! message id's claim, at `synchronous = FULL`: "Reading your badge…" is a promise, like
//! "registered under REQ-…".
//!
//! Sessions are cached in memory, keyed by address, with the version last committed
//! ([`Sessions::cached_session`]): a turn usually needs no read at all. The cache is only a
//! guess of the stored version — the commit checks it inside the transaction, and a turn
//! that finds it stale (another process wrote, an entry was pruned) is retried on a fresh
//! read. A turn that leaves its session as the cache holds it does not rewrite it: its
//! version is checked all the same.
//!
//! SQLite blocks, so the async roles bridge (`sqlite/bridge.rs`): a commit is handed to
//! the writer thread and awaited on a oneshot; a cached session is read with no thread; anything else
//! runs on tokio's blocking pool behind a semaphore of [`CONCURRENT_CALLS`], so that a burst
//! of webhooks never grows that pool. [`Blocking`] is the same calls, synchronous, for the
//! CLI.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use tokio::sync::Semaphore;

use super::StoreError;
use super::roles::{Committed, Turn};
#[cfg(doc)]
use super::roles::{Jobs, Sessions, Turns};

mod accounts;
mod bridge;
mod calls;
mod checkpoint;
mod outbound;
mod rows;
mod schema;
mod sessions;
mod transcripts;
mod turns;

use checkpoint::Checkpointer;
use schema::migrate;
use sessions::{SessionCache, Stored, cache_key};
use turns::{SessionWrite, Written, commit_batch};

use rows::{address, all};

/// Rows [`Blocking::prune`] looks at, or deletes, per transaction: a few milliseconds of the
/// writer's time, however large the tables.
const PRUNE_CHUNK: i64 = 2000;

fn chunk_len() -> usize {
    usize::try_from(PRUNE_CHUNK).unwrap_or(usize::MAX)
}

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls of the async roles on the blocking pool at once: the reads and rare writes (commits
/// are queued for the writer thread instead).
pub const CONCURRENT_CALLS: usize = 8;

/// Sessions kept in memory: the most recent users'. Each costs about 200 bytes (the key,
/// the session's stored JSON, the cache's links).
pub const SESSION_CACHE: usize = 100_000;

/// The page size of a new database. A turn rewrites a few scattered b-tree pages — its
/// message id's index leaf, its session — and the WAL takes each whole: 1 KiB pages write
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
    /// A blocking caller ([`Blocking::commit`]).
    Blocking(std::sync::mpsc::SyncSender<Result<Committed, StoreError>>),
    /// An async caller ([`Turns::commit`]).
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
    turn: Box<Turn>,
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

/// The store's synchronous calls, each blocking on SQLite (the CLI's, and what the async
/// roles run on the blocking pool), and what its writer and checkpointer threads share.
pub struct Blocking {
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

impl Blocking {
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

    fn enqueue(&self, turn: Box<Turn>, done: Done) {
        let mut queue = self.queue();
        if queue.closed {
            drop(queue);
            done.send(Err(StoreError::backend("the store is closed")));
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
        struct Close<'a>(&'a Blocking);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let pending = {
                    let mut queue = self.0.queue();
                    queue.closed = true;
                    std::mem::take(&mut queue.turns)
                };
                for q in pending {
                    q.done.send(Err(StoreError::backend("the store's writer stopped")));
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
        // Compared with the cache before taking the connection.
        let writes: Vec<SessionWrite> = batch
            .iter()
            .map(|q| {
                let t = &q.turn;
                let fresh = t.now_ms.saturating_sub(SESSION_TOUCH_MS);
                // A turn with a request always moves the version: a second confirmation
                // computed on the same state must conflict, whatever the session's text.
                let unchanged =
                    t.request.is_none() && self.sessions.holds(&t.user, &t.session, t.session_version, fresh);
                if unchanged { SessionWrite::Keep } else { SessionWrite::Store }
            })
            .collect();
        let turns: Vec<&Turn> = batch.iter().map(|q| &*q.turn).collect();
        // Queued messages are promises too: the webhook said 200 only once they were stored.
        let promised = |t: &&Turn| t.request.is_some() || !t.outbound.is_empty();
        let sync = if turns.iter().any(promised) { Sync::Full } else { Sync::Normal };
        let results = {
            let mut writer = self.writer();
            match writer.durability(sync) {
                Ok(conn) => commit_batch(conn, &turns, &writes),
                Err(e) => turns.iter().map(|_| Err(backend(e.to_string()))).collect(),
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
    shared: Arc<Blocking>,
    /// Places on the blocking pool for the async roles' calls.
    gate: Semaphore,
    /// The writer, and for a file the checkpointer.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// A backend failure: SQLite's error, or one of ours.
fn backend(e: impl Into<super::BackendError>) -> StoreError {
    StoreError::backend(e)
}

/// A backend failure with what was being done.
fn failed(doing: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("{doing}: {e}"))
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
                .map_err(|e| failed(format_args!("creating {}", dir.display()), e))?;
        }
        let open = || -> Result<Connection, StoreError> {
            let conn =
                Connection::open(path).map_err(|e| failed(format_args!("opening {}", path.display()), e))?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
            Ok(conn)
        };
        let mut writer = Self::setup(open()?)?;
        // Checkpoints are the checkpointer's (see `Blocking::checkpoint_forever`), not the
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
        let shared = Arc::new(Blocking {
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
                .map_err(|e| failed(format_args!("starting the store's {name} thread"), e))
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
                    SqliteStore { shared, gate: Semaphore::new(CONCURRENT_CALLS), threads }.close();
                    return Err(e);
                }
            }
        }
        Ok(SqliteStore { shared, gate: Semaphore::new(CONCURRENT_CALLS), threads })
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

    /// The store's synchronous calls (the CLI's).
    pub fn blocking(&self) -> &Blocking {
        &self.shared
    }
}

impl Blocking {
    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let v: i64 = self.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend))?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// A write outside the turns' batches, committed at `sync`.
    fn write<R>(
        &self,
        sync: Sync,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut writer = self.writer();
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

#[cfg(test)]
mod tests {
    use super::schema::MIGRATIONS;
    use super::turns::{SessionWrite, commit_batch};
    use super::*;
    use crate::domain::{Address, Channel, MailState, MessageId, Pending, Session};
    use crate::domain::{NewRequest, TICKET_PLACEHOLDER};
    use crate::engine::Lang;
    use crate::store::conformance::{TW, a, m, request};
    use crate::store::roles::{Enqueued, OutboxMail, PendingPhoto, PhotoJob};
    use rusqlite::params;
    use std::sync::LazyLock;

    fn json(s: &Session) -> String {
        serde_json::to_string(s).unwrap()
    }

    /// The user's stored session, read back, and its version (0: none).
    fn loaded(store: &SqliteStore, user: &Address) -> (Session, i64) {
        let stored = store.blocking().session(user).unwrap();
        stored.map_or((Session::default(), 0), |s| (serde_json::from_str(&s.data).unwrap(), s.version))
    }

    /// What the cache holds of the user's session, read back.
    fn cached(store: &SqliteStore, user: &Address) -> Option<(Session, i64)> {
        let known = store.blocking().cached_session(user)?;
        Some(known.map_or((Session::default(), 0), |s| (serde_json::from_str(&s.data).unwrap(), s.version)))
    }

    /// A moment in November 2026, UTC.
    const NOW: i64 = 1_795_089_600_000;

    static USER: LazyLock<Address> = LazyLock::new(|| a("+33600000000"));

    /// A turn on the session as currently stored.
    fn turn(
        store: &SqliteStore,
        sid: &MessageId,
        session: &Session,
        messages: &[String],
        req: Option<&NewRequest>,
    ) -> Turn {
        Turn {
            user: USER.clone(),
            message_id: Some(sid.clone()),
            session: json(session),
            session_version: loaded(store, &USER).1,
            messages: messages.to_vec(),
            request: req.cloned(),
            mail: None,
            unanswered: None,
            now_ms: NOW,
            outbound: Vec::new(),
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
                            user,
                            message_id: Some(sid),
                            session: json(&Session::default()),
                            session_version: 0,
                            messages: msgs,
                            request: (i % 5 == 0).then(|| req.clone()),
                            mail: None,
                            unanswered: None,
                            now_ms: NOW,
                            outbound: Vec::new(),
                        };
                        let done = store.blocking().commit(&turn).unwrap();
                        assert!(!done.replayed);
                        assert!(done.messages[0].starts_with(&format!("ok {t} {i} ")), "{:?}", done.messages);
                        tickets += usize::from(done.ticket.is_some());
                        // The same message id again: replayed, whichever batch it lands in.
                        let again = store.blocking().commit(&turn).unwrap();
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
            user: USER.clone(),
            message_id: Some(sm_a),
            session: json(&Session::default()),
            session_version: 0,
            messages: msgs,
            request: None,
            mail: None,
            unanswered: None,
            now_ms: NOW,
            outbound: Vec::new(),
        };
        let stale = Turn { message_id: Some(sm_b), ..first.clone() };
        let writes = [SessionWrite::Store, SessionWrite::Store];
        let results = commit_batch(&mut store.shared.writer().conn, &[&first, &stale], &writes);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Conflict)), "{:?}", results[1]);
        assert!(store.blocking().replay(TW, &m("SM-a")).unwrap().is_some());
        assert!(
            store.blocking().replay(TW, &m("SM-b")).unwrap().is_none(),
            "the conflicting turn's message id was rolled back"
        );
    }

    #[test]
    fn migrations_run_once_and_sessions_round_trip_through_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/wabot.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.blocking().schema_version().unwrap(), MIGRATIONS.len());
        let s = Session {
            lang: Some(Lang::Fr),
            pending: Some(Pending::Entries(vec!["a".into()])),
            ..Session::default()
        };
        store.blocking().commit(&faq_turn(&a("u"), &m("SM1"), &s, 0, &[])).unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(loaded(&store, &a("u")).0, s);
        assert_eq!(loaded(&store, &a("other")), (Session::default(), 0));
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
        let first = store.blocking().commit(&turn(&store, &m("SM1"), &session, &msgs, Some(&req))).unwrap();
        assert_eq!(first.ticket.as_deref(), Some("REQ-2026-000001"));
        assert_eq!(first.messages, ["Ticket REQ-2026-000001"]);
        let again = store.blocking().commit(&turn(&store, &m("SM1"), &session, &msgs, Some(&req))).unwrap();
        assert!(again.replayed);
        assert_eq!(again.messages, first.messages);
        assert_eq!(store.blocking().requests(10).unwrap().len(), 1);
        let second = store.blocking().commit(&turn(&store, &m("SM2"), &session, &msgs, Some(&req))).unwrap();
        assert_eq!(second.ticket.as_deref(), Some("REQ-2026-000002"));
        let sm3 = m("SM3");
        let next_year =
            Turn { now_ms: NOW + 60 * 86_400_000, ..turn(&store, &sm3, &session, &msgs, Some(&req)) };
        assert_eq!(store.blocking().commit(&next_year).unwrap().ticket.as_deref(), Some("REQ-2027-000001"));
        assert_eq!(store.blocking().replay(TW, &m("SM2")).unwrap().unwrap(), ["Ticket REQ-2026-000002"]);
        assert!(store.blocking().replay(TW, &m("SM9")).unwrap().is_none());
    }

    #[test]
    fn a_commit_on_a_stale_session_writes_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["ok".to_owned()];
        let session = Session { lang: Some(Lang::Fr), ..Session::default() };
        let sm1 = m("SM1");
        let stale = turn(&store, &sm1, &session, &msgs, None);
        store.blocking().commit(&turn(&store, &m("SM0"), &session, &msgs, None)).unwrap();
        assert!(matches!(store.blocking().commit(&stale), Err(StoreError::Conflict)));
        assert!(
            store.blocking().replay(TW, &m("SM1")).unwrap().is_none(),
            "the message id's claim was rolled back"
        );
        assert_eq!(loaded(&store, &USER).1, 1);
        let req = request();
        let stale = Turn { request: Some(req.clone()), ..stale };
        assert!(matches!(store.blocking().commit(&stale), Err(StoreError::Conflict)));
        assert!(store.blocking().requests(10).unwrap().is_empty(), "no request from a stale turn");
        store.blocking().commit(&turn(&store, &sm1, &session, &msgs, Some(&req))).unwrap();
        assert_eq!(loaded(&store, &USER).1, 2);
    }

    #[test]
    fn the_outbox_retries_then_marks_sent() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec![String::new()];
        store
            .blocking()
            .commit(&turn(&store, &m("SM1"), &Session::default(), &msgs, Some(&request())))
            .unwrap();
        let due = store.blocking().due_mail(NOW, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].request().unwrap().first_name, "Élodie");
        store.blocking().mark_failed(due[0].id, "connection refused", NOW, NOW + 1000).unwrap();
        assert!(store.blocking().due_mail(NOW, 10).unwrap().is_empty());
        assert_eq!(store.blocking().next_mail_due_after(i64::MIN).unwrap(), Some(NOW + 1000));
        let rec = store.blocking().request("req-2026-000001").unwrap().unwrap();
        assert_eq!(
            (rec.mail, rec.attempts, rec.last_error.as_deref()),
            (MailState::Queued, 1, Some("connection refused"))
        );
        assert_eq!(store.blocking().prune(NOW + 1, NOW + 1).unwrap(), 2, "the message id and the session");
        assert!(store.blocking().replay(TW, &m("SM1")).unwrap().is_none());
        assert_eq!(store.blocking().requests(10).unwrap().len(), 1, "requests are kept");
        store.blocking().mark_sent(due[0].id, NOW + 2000).unwrap();
        let rec = store.blocking().request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!((rec.mail, rec.attempts, rec.sent_at_ms), (MailState::Sent, 2, Some(NOW + 2000)));
        assert_eq!(store.blocking().next_mail_due_after(i64::MIN).unwrap(), None);
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
        assert_eq!(store.blocking().schema_version().unwrap(), MIGRATIONS.len());
        let sent = store.blocking().request("REQ-2026-000001").unwrap().unwrap();
        let queued = store.blocking().request("REQ-2026-000002").unwrap().unwrap();
        assert_eq!((sent.mail, sent.attempts), (MailState::Sent, 2));
        assert_eq!(
            (queued.mail, queued.attempts, queued.last_error.as_deref()),
            (MailState::Queued, 2, Some("x"))
        );
        let due = store.blocking().due_mail(NOW, 10).unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [20], "ids kept, the due index rebuilt");
        assert_eq!(store.blocking().mark_rejected(20, "550", NOW, NOW, 1).unwrap(), MailState::Dead);
    }

    #[test]
    fn handovers_once_stored_as_requests_become_e_mails_that_no_list_of_requests_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v8.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..8] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 8).unwrap();
            for (id, kind) in [(1, "work-certificate"), (2, "handover")] {
                conn.execute(
                    "INSERT INTO requests (id, ticket, address, kind, kind_label, recipient, first_name, last_name,
                         details, lang, created_ms)
                     VALUES (?1, ?2, '+33600000000', ?3, 'Handed over', 'hr@example.com', 'Ann', '+33600000000',
                         'Answer in the console: https://x/console', 'en', ?4)",
                    params![id, format!("REQ-2026-00000{id}"), kind, NOW],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO outbox (id, request_id, state, next_attempt_ms) VALUES (?1, ?2, 'queued', ?3)",
                    params![id * 10, id, NOW],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.blocking().schema_version().unwrap(), MIGRATIONS.len());
        let listed = store.blocking().requests(10).unwrap();
        assert_eq!(listed.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["work-certificate"]);
        assert_eq!(store.blocking().request_kinds().unwrap(), ["work-certificate"]);
        assert!(store.blocking().request("REQ-2026-000002").unwrap().is_none());
        let due = store.blocking().due_mail(NOW, 10).unwrap();
        assert_eq!(due.len(), 2, "both still delivered");
        let OutboxMail::Other(mail) = &due[1].mail else { panic!("{:?}", due[1]) };
        assert_eq!(due[1].id, 20);
        assert_eq!(mail.mail.recipient, "hr@example.com");
        assert_eq!(mail.mail.subject, "Handed over — Ann +33600000000");
        assert!(mail.mail.body.contains("https://x/console"));
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
        assert_eq!(store.blocking().schema_version().unwrap(), MIGRATIONS.len());
        assert_eq!(loaded(&store, &USER), (Session { lang: Some(Lang::Fr), ..Session::default() }, 3));
        assert_eq!(store.blocking().replay(TW, &m("SM-new")).unwrap(), Some(vec!["ok".to_owned()]));
        assert_eq!(store.blocking().replay(Channel::Meta, &m("SM-new")).unwrap(), None);
        let request = store.blocking().request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!((&request.user, request.mail), (&*USER, MailState::Queued));
        let jobs = store.blocking().pending_photos(10).unwrap();
        assert_eq!(
            (&jobs[0].job.user, &jobs[0].job.bot, jobs[0].job.message_id.as_ref()),
            (&*USER, &a("+14155238886"), Some(&m("SM-photo")))
        );
        // The claimed messages kept their order: pruning still walks them oldest first.
        assert_eq!(store.blocking().prune(NOW, 0).unwrap(), 1);
        assert!(
            store.blocking().replay(TW, &m("SM-old")).unwrap().is_none()
                && store.blocking().replay(TW, &m("SM-new")).unwrap().is_some()
        );
        // A redelivery of a message claimed before the upgrade is still recognised.
        let again =
            store.blocking().commit(&faq_turn(&USER, &m("SM-new"), &Session::default(), 3, &[])).unwrap();
        assert!(again.replayed);
    }

    #[test]
    fn permanent_rejections_dead_letter_the_mail_after_the_configured_count() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec![String::new()];
        store
            .blocking()
            .commit(&turn(&store, &m("SM1"), &Session::default(), &msgs, Some(&request())))
            .unwrap();
        let id = store.blocking().due_mail(NOW, 10).unwrap()[0].id;
        // A transient failure in between does not count towards the dead letter.
        assert_eq!(
            store.blocking().mark_rejected(id, "550 no such user", NOW, NOW + 10, 2).unwrap(),
            MailState::Queued
        );
        store.blocking().mark_failed(id, "timed out", NOW, NOW + 20).unwrap();
        assert_eq!(store.blocking().dead_mail().unwrap(), 0);
        assert_eq!(
            store.blocking().mark_rejected(id, "550 no such user", NOW, NOW + 30, 2).unwrap(),
            MailState::Dead
        );
        let rec = store.blocking().request("REQ-2026-000001").unwrap().unwrap();
        assert_eq!(
            (rec.mail, rec.attempts, rec.last_error.as_deref()),
            (MailState::Dead, 3, Some("550 no such user"))
        );
        assert_eq!(rec.next_attempt_ms, None);
        assert!(store.blocking().due_mail(i64::MAX, 10).unwrap().is_empty(), "never tried again");
        assert_eq!(store.blocking().next_mail_due_after(i64::MIN).unwrap(), None);
        assert_eq!(store.blocking().outbox_depth().unwrap(), 0);
        assert_eq!(store.blocking().dead_mail().unwrap(), 1);
    }

    fn faq_turn(user: &Address, sid: &MessageId, session: &Session, version: i64, msgs: &[String]) -> Turn {
        Turn {
            user: user.clone(),
            message_id: Some(sid.clone()),
            session: json(session),
            session_version: version,
            messages: msgs.to_vec(),
            request: None,
            mail: None,
            unanswered: None,
            now_ms: NOW,
            outbound: Vec::new(),
        }
    }

    #[test]
    fn conversation_turns_commit_without_a_flush_and_a_request_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.blocking().commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Normal);
        let req = request();
        store
            .blocking()
            .commit(&Turn { request: Some(req.clone()), ..faq_turn(&USER, &m("SM2"), &fr, 1, &msgs) })
            .unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Full, "the request's batch waits for the disk");
        assert_eq!(store.shared.writer().sync, Sync::Full);
    }

    #[test]
    fn a_new_user_needs_no_read_and_a_cached_session_follows_each_commit() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(cached(&store, &USER), Some((Session::default(), 0)), "known to have none");
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.blocking().commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        assert_eq!(cached(&store, &USER), Some((fr.clone(), 1)));
        let menu = Session { pending: Some(Pending::Categories), ..fr.clone() };
        store.blocking().commit(&faq_turn(&USER, &m("SM2"), &menu, 1, &msgs)).unwrap();
        assert_eq!(cached(&store, &USER), Some((menu, 2)));
    }

    #[test]
    fn a_turn_that_leaves_the_session_as_it_was_does_not_rewrite_it_but_still_checks_its_version() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.blocking().commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
        store.blocking().commit(&faq_turn(&USER, &m("SM2"), &fr, 1, &msgs)).unwrap();
        assert_eq!(loaded(&store, &USER).1, 1, "nothing changed, nothing written");
        assert!(
            store.blocking().replay(TW, &m("SM2")).unwrap().is_some(),
            "the message id is recorded all the same"
        );
        let en = Session { lang: Some(Lang::En), ..Session::default() };
        store.blocking().commit(&faq_turn(&USER, &m("SM3"), &en, 1, &msgs)).unwrap();
        let stale = store.blocking().commit(&faq_turn(&USER, &m("SM4"), &fr, 1, &msgs));
        assert!(matches!(stale, Err(StoreError::Conflict)), "computed on version 1, now 2: {stale:?}");
        assert!(store.blocking().replay(TW, &m("SM4")).unwrap().is_none());
    }

    #[test]
    fn a_session_changed_behind_the_cache_fails_the_turn_once_then_is_read_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = SqliteStore::open(&path).unwrap();
        let msgs = vec!["ok".to_owned()];
        let fr = Session { lang: Some(Lang::Fr), ..Session::default() };
        store.blocking().commit(&faq_turn(&USER, &m("SM1"), &fr, 0, &msgs)).unwrap();
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
        let (held, version) = cached(&store, &USER).unwrap();
        let stale = store.blocking().commit(&faq_turn(&USER, &m("SM2"), &held, version, &msgs));
        assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
        assert_eq!(cached(&store, &USER), None, "forgotten: the next turn reads");
        assert_eq!(loaded(&store, &USER), (Session { lang: Some(Lang::En), ..Session::default() }, 7));
        assert_eq!(cached(&store, other), Some((Session::default(), 0)), "a guess, unknown to this store");
        let guessed = store.blocking().commit(&faq_turn(other, &m("SM3"), &fr, 0, &msgs));
        assert!(matches!(guessed, Err(StoreError::Conflict)), "{guessed:?}");
        assert_eq!(cached(&store, other), None, "now known to have one: read next time");
        assert_eq!(loaded(&store, other).1, 3);
    }

    #[test]
    fn a_declined_question_is_counted_with_its_turn_and_not_again_on_a_redelivery() {
        let store = SqliteStore::open_in_memory().unwrap();
        let msgs = vec!["sorry".to_owned()];
        let s = Session::default();
        let sm1 = m("SM1");
        let turn =
            Turn { unanswered: Some("weather tomorrow".into()), ..faq_turn(&USER, &sm1, &s, 0, &msgs) };
        store.blocking().commit(&turn).unwrap();
        assert!(store.blocking().commit(&turn).unwrap().replayed);
        let asked = store.blocking().unanswered(10).unwrap();
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
            let (session, version) = loaded(&store, &user);
            let lang = if (turns / 3000) % 2 == 0 { Lang::En } else { Lang::Fr };
            let session = Session { lang: Some(lang), ..session };
            store
                .blocking()
                .commit(&faq_turn(&user, &m(&format!("SM{turns}")), &session, version, &msgs))
                .unwrap();
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
            store.blocking().replay(TW, &m("SM0")).unwrap().is_some()
                && store.blocking().replay(TW, &m(&last)).unwrap().is_some()
        );
        assert!(loaded(&store, &a("+33600000000")).1 >= 1);
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
            store.blocking().commit(&Turn { now_ms, ..faq_turn(&user, &sid, &fr, 0, &msgs) }).unwrap();
        }
        // A recent turn of an old user keeps their session, not their old message id.
        let kept = &a("+33610000007");
        let (_, version) = loaded(&store, kept);
        store
            .blocking()
            .commit(&Turn {
                now_ms: cut + 1,
                outbound: Vec::new(),
                ..faq_turn(kept, &m("SM-late"), &Session::default(), version, &msgs)
            })
            .unwrap();
        assert_eq!(store.blocking().prune(cut, cut).unwrap(), 2 * n - 1, "message ids and sessions");
        assert!(
            store.blocking().replay(TW, &m("SM0")).unwrap().is_none()
                && store.blocking().replay(TW, &m(&format!("SM{}", n - 1))).unwrap().is_none()
        );
        assert!(
            store.blocking().replay(TW, &m(&format!("SM{n}"))).unwrap().is_some()
                && store.blocking().replay(TW, &m("SM-late")).unwrap().is_some()
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
        assert_eq!(loaded(&store, kept).1, version + 1);
        // A pruned user was cached: now known to have nothing, their next turn is a first.
        let gone = &a("+33610000001");
        assert_eq!(cached(&store, gone), Some((Session::default(), 0)));
        store
            .blocking()
            .commit(&Turn { now_ms: cut + 2, ..faq_turn(gone, &m("SM-back"), &Session::default(), 0, &msgs) })
            .unwrap();
        assert_eq!(store.blocking().prune(cut, cut).unwrap(), 0, "nothing more is old");
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
        store
            .blocking()
            .commit(&faq_turn(&USER, &m("SM-text"), &Session::default(), 0, &["ok".to_owned()]))
            .unwrap();
        assert_eq!(store.shared.writer().sync, Sync::Normal);
        let job = photo(Some("SM-photo"), &USER, NOW);
        let Enqueued::Queued(id) = store.blocking().enqueue_photo(&job, &reading, 0).unwrap() else {
            panic!("a new message id queues its job")
        };
        assert_eq!(store.shared.writer().sync, Sync::Full, "a promise to the user waits for the disk");
        assert_eq!(
            store.blocking().replay(TW, &m("SM-photo")).unwrap(),
            Some(reading.clone()),
            "claimed with the reply"
        );
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.blocking().pending_photos(10).unwrap(),
            vec![PendingPhoto { id, job }],
            "survives a reopen"
        );
    }

    #[test]
    fn a_redelivered_photo_gets_its_first_reply_and_no_second_job() {
        let store = SqliteStore::open_in_memory().unwrap();
        let first = vec!["Reading your badge…".to_owned()];
        assert!(matches!(
            store.blocking().enqueue_photo(&photo(Some("SM1"), &USER, NOW), &first, 0),
            Ok(Enqueued::Queued(_))
        ));
        let again = PhotoJob { lang: Lang::En, created_ms: NOW + 5000, ..photo(Some("SM1"), &USER, NOW) };
        assert_eq!(
            store.blocking().enqueue_photo(&again, &["something else".to_owned()], 0).unwrap(),
            Enqueued::Replayed(first)
        );
        assert_eq!(store.blocking().pending_photos(10).unwrap().len(), 1);
        // The claim is the one text turns use: a message id already answered as text (or
        // the other way round) is not handled twice.
        let text = vec!["an answer".to_owned()];
        store.blocking().commit(&faq_turn(&USER, &m("SM2"), &Session::default(), 0, &text)).unwrap();
        assert_eq!(
            store.blocking().enqueue_photo(&photo(Some("SM2"), &USER, NOW), &[], 0).unwrap(),
            Enqueued::Replayed(text)
        );
        assert!(
            store
                .blocking()
                .commit(&faq_turn(&USER, &m("SM1"), &Session::default(), 1, &[]))
                .unwrap()
                .replayed
        );
        assert_eq!(
            store.blocking().pending_photos(10).unwrap().len(),
            1,
            "the claim and the job go together"
        );
    }

    #[test]
    fn pending_photos_come_oldest_first_and_a_done_one_is_gone_but_still_claimed() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut ids = Vec::new();
        for (sid, at) in [("SM-c", NOW + 300), ("SM-a", NOW + 100), ("SM-b", NOW + 200)] {
            match store.blocking().enqueue_photo(&photo(Some(sid), &USER, at), &["…".to_owned()], 0).unwrap()
            {
                Enqueued::Queued(id) => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        // Without a message id nothing can be claimed, but the job is kept all the same.
        store.blocking().enqueue_photo(&photo(None, &USER, NOW + 400), &[], 0).unwrap();
        let pending = store.blocking().pending_photos(10).unwrap();
        let order: Vec<_> =
            pending.iter().map(|p| p.job.message_id.as_ref().map(MessageId::as_str)).collect();
        assert_eq!(order, [Some("SM-a"), Some("SM-b"), Some("SM-c"), None]);
        assert_eq!(store.blocking().pending_photos(2).unwrap().len(), 2);
        assert!(store.blocking().photo_done(ids[1]).unwrap());
        assert!(!store.blocking().photo_done(ids[1]).unwrap(), "done once");
        let order: Vec<_> =
            store.blocking().pending_photos(10).unwrap().into_iter().map(|p| p.job.message_id).collect();
        assert_eq!(order, [Some(m("SM-b")), Some(m("SM-c")), None]);
        assert!(
            store.blocking().replay(TW, &m("SM-a")).unwrap().is_some(),
            "a redelivery still finds the claim"
        );
        assert!(matches!(
            store.blocking().enqueue_photo(&photo(Some("SM-a"), &USER, NOW), &[], 0),
            Ok(Enqueued::Replayed(_))
        ));
    }
}
