//! Checkpoints of the WAL, off the writer's path.
//!
//! A commit appends pages to the WAL; a checkpoint copies them into the database file and
//! syncs both files — two fsyncs, which on a loaded disk take tens of milliseconds. SQLite's
//! automatic checkpoint runs them inside the committing transaction every thousand pages,
//! so every turn of that batch would wait. Here a thread of its own, on its own connection,
//! does them, and the writer never waits for a checkpoint but for its last few pages.
//!
//! The log starts over from its beginning only when a transaction begins with every page
//! of it copied; under steady load the writer always adds more meanwhile, so background
//! checkpoints alone would let the WAL grow forever. So a checkpoint copies in passes while
//! the writer goes on, each pass shorter than the one before, and copies the last pages
//! while holding the writer: a pause of one short pass, after which the next batch writes
//! the log afresh.
//!
//! Checkpoints are rare — when the log reaches [`CHECKPOINT_BYTES`], or
//! [`CHECKPOINT_AFTER`] after the first page that waits — so that a page rewritten many
//! times is copied once. In between, the log is handed to the disk a little at a time
//! behind the page being appended ([`WalWriteback`]): a checkpoint's fsync then finds
//! little left to write, and the writer never appends to a page the disk is busy with,
//! which would make it wait for the whole flush.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the checkpointer looks at the WAL's size.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// The WAL's size at which a checkpoint starts.
const CHECKPOINT_BYTES: u64 = 256 << 20;

/// The longest committed pages wait for a checkpoint, which also syncs them: what a power
/// cut can take of the turns committed without a flush of their own.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(10);

/// The last pass, with the writer held, once no more than this many pages are left.
const TAIL_FRAMES: i64 = 256;

/// Passes without the writer before the last one, at most.
const PASSES: usize = 6;

/// The checkpointer's state: its connection, the log's files, what the writer reported.
pub(super) struct Checkpointer {
    conn: Connection,
    files: WalWriteback,
    /// Pages in the WAL after the writer's last commit (its WAL hook sets it).
    frames: Arc<AtomicI64>,
    /// Since when pages have been waiting for a checkpoint.
    waiting_since: Option<Instant>,
    /// [`CHECKPOINT_BYTES`] and [`CHECKPOINT_AFTER`], but in tests.
    bytes: u64,
    after: Duration,
}

impl Checkpointer {
    /// A checkpointer on `conn` (a connection of its own to the database), told the WAL's
    /// size through `frames`.
    pub(super) fn new(conn: Connection, frames: Arc<AtomicI64>) -> Self {
        let files = WalWriteback::new(&conn);
        Checkpointer {
            conn,
            files,
            frames,
            waiting_since: None,
            bytes: CHECKPOINT_BYTES,
            after: CHECKPOINT_AFTER,
        }
    }

    /// Checkpoints at `bytes` or after `after` instead (tests).
    #[cfg(test)]
    pub(super) fn with_limits(mut self, bytes: u64, after: Duration) -> Self {
        self.bytes = bytes;
        self.after = after;
        self
    }

    /// Looks at the WAL once: hands more of it to the disk and, when one is due, makes a
    /// checkpoint; `pause` holds the writer for the checkpoint's last pass while its guard
    /// lives.
    pub(super) fn tick<G>(&mut self, pause: impl FnOnce() -> G) {
        let frames = self.frames.load(Ordering::Relaxed);
        if frames == 0 {
            self.waiting_since = None;
            return;
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        self.files.start(frames);
        if self.files.bytes(frames) < self.bytes && since.elapsed() < self.after {
            return;
        }
        if let Err(e) = self.checkpoint(pause) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        self.waiting_since = None;
    }

    fn checkpoint<G>(&mut self, pause: impl FnOnce() -> G) -> rusqlite::Result<()> {
        for _ in 0..PASSES {
            self.files.flush(self.frames.load(Ordering::Relaxed));
            let copied = self.passive()?;
            if self.frames.load(Ordering::Relaxed) - copied <= TAIL_FRAMES {
                break;
            }
        }
        let _paused = pause();
        self.passive()?;
        // The writer's next transaction starts the log over: until then, nothing is new.
        self.frames.store(0, Ordering::Relaxed);
        self.files.restarted();
        Ok(())
    }

    /// A passive checkpoint: copies what it can without blocking anyone; the pages of the
    /// log copied so far.
    fn passive(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))
    }
}

/// The WAL and database files, opened beside SQLite to sync them ahead of a checkpoint.
struct WalWriteback {
    /// The WAL's path; the file itself, once it exists (SQLite creates it at the first
    /// write after opening).
    wal_path: Option<String>,
    wal: Option<File>,
    db: Option<File>,
    /// A page and its frame header.
    frame_bytes: u64,
    /// How much of the log is already handed to the disk.
    started: u64,
}

/// The WAL's header, before its first frame.
const WAL_HEADER: u64 = 32;
/// A frame's header, before its page.
const FRAME_HEADER: u64 = 24;
/// The unit the kernel writes a file back in.
const OS_PAGE: u64 = 4096;

impl WalWriteback {
    fn new(conn: &Connection) -> Self {
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(4096);
        let wal_path = conn.path().filter(|p| !p.is_empty()).map(|p| format!("{p}-wal"));
        WalWriteback {
            wal: wal_path.as_ref().and_then(|p| File::open(p).ok()),
            wal_path,
            db: conn.path().filter(|p| !p.is_empty()).and_then(|p| File::open(p).ok()),
            frame_bytes: u64::try_from(page).unwrap_or(4096) + FRAME_HEADER,
            started: 0,
        }
    }

    /// The size of a log of `frames` pages.
    fn bytes(&self, frames: i64) -> u64 {
        WAL_HEADER + u64::try_from(frames).unwrap_or(0) * self.frame_bytes
    }

    /// The log's first `frames` pages, less the file page the writer appends to.
    fn settled(&self, frames: i64) -> u64 {
        (self.bytes(frames) / OS_PAGE).saturating_sub(1) * OS_PAGE
    }

    fn wal(&mut self) -> Option<&File> {
        if self.wal.is_none() {
            self.wal = self.wal_path.as_ref().and_then(|p| File::open(p).ok());
        }
        self.wal.as_ref()
    }

    /// Starts writing the log back, up to `frames` pages, without waiting.
    fn start(&mut self, frames: i64) {
        let end = self.settled(frames);
        if end > self.started {
            let from = self.started;
            write_back(self.wal(), from, end, false);
            self.started = end;
        }
    }

    /// Syncs the database file (the pages copied so far), writes the log back up to
    /// `frames` and syncs it: what the next pass then syncs is only what came since.
    fn flush(&mut self, frames: i64) {
        if let Some(db) = &self.db {
            let _ = db.sync_data();
        }
        let end = self.settled(frames);
        let wal = self.wal();
        write_back(wal, 0, end, true);
        if let Some(wal) = wal {
            let _ = wal.sync_data();
        }
        self.started = self.started.max(end);
    }

    fn restarted(&mut self) {
        self.started = 0;
    }
}

/// Hands `file`'s bytes `from..to` to the disk (Linux's `sync_file_range`); with `wait`,
/// returns once they are written. Not a durability barrier — the checkpoint's own fsyncs
/// are — only a way to spread the writing out. Elsewhere, nothing.
#[cfg(target_os = "linux")]
fn write_back(file: Option<&File>, from: u64, to: u64, wait: bool) {
    use std::os::fd::AsRawFd;
    let Some(file) = file else { return };
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to.saturating_sub(from))) else {
        return;
    };
    if len == 0 {
        return;
    }
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: the descriptor belongs to `file`, open for the whole call; the call reads
    // only its integer arguments and touches no memory of ours. Failing, it only leaves
    // the writing to the checkpoint's fsync.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
}

#[cfg(not(target_os = "linux"))]
fn write_back(_: Option<&File>, _: u64, _: u64, _: bool) {}
