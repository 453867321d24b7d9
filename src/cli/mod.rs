//! What the command line does beyond parsing: each subcommand of `wabot` other than `serve`
//! (which is [`crate::startup`]), run over the library and written to the given output. The
//! binary parses the arguments, loads the settings and calls these.

pub mod ask;
pub mod chat;
pub mod db;
pub mod eval;
pub mod ocr;
pub mod requests;
pub mod unanswered;
pub mod users;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::ExposeSecret;

use thiserror::Error;

use crate::config::Settings;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// What a command can fail with; the message says what was being done.
#[derive(Debug, Error)]
pub enum CliError {
    /// `wabot requests` or `wabot unanswered` without a database to read.
    #[error("no database at {} (set WABOT_DB): no {what} was ever stored there", path.display())]
    NoDatabase {
        /// The database file looked for.
        path: PathBuf,
        /// What would have been there: `request`, `question`.
        what: &'static str,
    },
    /// The database exists but cannot be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The database file, or PostgreSQL's URL without its password.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// No request has this ticket.
    #[error("no request {0}")]
    NoRequest(String),
    /// `wabot eval --semantic-only` with the semantic scorer off.
    #[error("--semantic-only needs the semantic scorer: unset WABOT_SEMANTIC=off (matching.semantic)")]
    NoSemantic,
    /// `wabot ask` with neither a question nor questions piped in.
    #[error("give a QUESTION, or pipe questions on stdin (one per line)")]
    NoQuestion,
    /// Standard input could not be read.
    #[error("reading stdin")]
    Stdin(#[source] std::io::Error),
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A photo could not be decoded.
    #[error("decoding {}", path.display())]
    Decode {
        /// The photo.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::ocr::decode::DecodeError,
    },
    /// The OCR models could not load or run.
    #[error(transparent)]
    Ocr(#[from] crate::ocr::OcrError),
    /// An ID pattern of the settings is not a regular expression.
    #[error(transparent)]
    Pattern(#[from] crate::ocr::id::PatternError),
    /// The directory of the database could not be created.
    #[error("creating {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The store, the desk or the mail worker could not start.
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    /// The labelled queries could not be read.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A console account could not be added or changed; the message says why.
    #[error("{0}")]
    Account(String),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A value could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The store a report reads, and the runtime its calls run on.
struct Opened {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
}

impl Opened {
    /// Runs one of the store's calls to its end.
    fn run<T>(&self, call: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, CliError> {
        Ok(self.runtime.block_on(call)?)
    }
}

/// Opens the database the reports read: the PostgreSQL database of the settings, or the
/// SQLite file, which must exist — a report never creates one.
fn open_existing(settings: &Settings, what: &'static str) -> Result<Opened, CliError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CliError::Runtime)?;
    let store: Arc<dyn Store> = match &settings.postgres {
        Some(pg) => {
            let password = pg.password.as_ref().map(|p| p.expose_secret());
            let opened = runtime.block_on(PostgresStore::open(pg.url.expose_secret(), password));
            Arc::new(opened.map_err(|source| CliError::Open { path: pg.redacted().into(), source })?)
        }
        None => {
            let db = &settings.db;
            if !db.exists() {
                return Err(CliError::NoDatabase { path: db.to_owned(), what });
            }
            Arc::new(SqliteStore::open(db).map_err(|source| CliError::Open { path: db.to_owned(), source })?)
        }
    };
    Ok(Opened { runtime, store })
}

/// Opens the SQLite file at `db`, which must exist: the console's accounts live there.
fn open_existing_sqlite(db: &Path, what: &'static str) -> Result<SqliteStore, CliError> {
    if !db.exists() {
        return Err(CliError::NoDatabase { path: db.to_owned(), what });
    }
    SqliteStore::open(db).map_err(|source| CliError::Open { path: db.to_owned(), source })
}

/// Writes `report` as pretty JSON, or as its text.
pub fn print_report<R: serde::Serialize + std::fmt::Display>(
    report: &R,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(())
}
