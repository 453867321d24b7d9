//! Moving an installation from its SQLite file to PostgreSQL
//! (`wabot db migrate-sqlite-to-postgres`): every table copied row for row, ids kept, in
//! one PostgreSQL transaction that commits only when each table's count matches the file's.
//! The target must be empty: nothing is merged, nothing overwritten.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::try_join_all;
use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, pg};
use crate::store::{SqliteStore, StoreError};

/// The tables, in an order that respects their references, each with its columns (the same
/// names on both sides).
const TABLES: &[(&str, &[&str])] = &[
    ("sessions", &["channel", "address", "data", "version", "updated_ms"]),
    ("messages", &["channel", "message_id", "address", "reply", "received_ms"]),
    ("ticket_seq", &["year", "last"]),
    (
        "requests",
        &[
            "id",
            "ticket",
            "channel",
            "address",
            "message_id",
            "kind",
            "kind_label",
            "recipient",
            "first_name",
            "last_name",
            "employee_id",
            "employee_email",
            "department",
            "details",
            "lang",
            "created_ms",
        ],
    ),
    (
        "outbox",
        &[
            "id",
            "request_id",
            "state",
            "attempts",
            "next_attempt_ms",
            "last_error",
            "sent_ms",
            "permanent_failures",
        ],
    ),
    ("unanswered", &["question", "count", "first_ms", "last_ms"]),
    (
        "photo_jobs",
        &["id", "channel", "message_id", "address", "bot", "media_url", "content_type", "lang", "created_ms"],
    ),
    (
        "outbound",
        &[
            "id",
            "channel",
            "address",
            "sender",
            "payload",
            "state",
            "attempts",
            "next_attempt_ms",
            "claimed_until_ms",
            "last_error",
            "provider_message_id",
            "created_ms",
            "sent_ms",
        ],
    ),
    ("inbound", &["channel", "address", "last_ms"]),
    ("console_accounts", &["email", "name", "role", "password_hash", "created_ms"]),
    ("console_sessions", &["token_hash", "email", "csrf", "created_ms", "expires_ms"]),
    ("sign_in_failures", &["key", "at_ms"]),
    ("audit_log", &["id", "at_ms", "actor", "action", "detail"]),
    ("conversations", &["channel", "address", "bot", "handed_over_ms", "last_ms", "last_text"]),
    ("transcript_lines", &["id", "channel", "address", "speaker", "author", "text", "at_ms"]),
    ("turn_counts", &["day", "kind", "topic", "count"]),
    ("reply_waits", &["at_ms", "waited_ms"]),
];

/// Columns PostgreSQL holds as `INTEGER` (4 bytes); every other integer is a `BIGINT`.
const INT4: &[(&str, &str)] = &[
    ("ticket_seq", "year"),
    ("outbox", "attempts"),
    ("outbox", "permanent_failures"),
    ("outbound", "attempts"),
];

/// Statements sent at once on the connection (pipelined), per round.
const PIPELINE: usize = 256;

/// One table's rows moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: &'static str,
    /// Its rows, in the file and now in PostgreSQL.
    pub rows: u64,
}

/// A value of a SQLite row, as PostgreSQL takes it.
#[derive(Debug)]
enum Cell {
    Int(Option<i64>),
    Int4(Option<i32>),
    Text(Option<String>),
}

impl Cell {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(v) => v,
            Cell::Int4(v) => v,
            Cell::Text(v) => v,
        }
    }
}

fn failed(doing: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("{doing}: {e}"))
}

/// Reads every row of `table` from the file.
fn read_table(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let sql = format!("SELECT {} FROM {table} ORDER BY rowid", columns.join(", "));
    let mut stmt = conn.prepare(&sql).map_err(|e| failed(format_args!("reading {table}"), e))?;
    let rows = stmt
        .query_map([], |r| {
            columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let int4 = INT4.contains(&(table, column));
                    Ok(match r.get::<_, Value>(i)? {
                        Value::Integer(n) if int4 => Cell::Int4(Some(i32::try_from(n).unwrap_or(i32::MAX))),
                        Value::Integer(n) => Cell::Int(Some(n)),
                        Value::Text(t) => Cell::Text(Some(t)),
                        Value::Null if int4 => Cell::Int4(None),
                        // A NULL integer column (sent_ms) or text column: typed by position.
                        Value::Null if column.ends_with("_ms") => Cell::Int(None),
                        Value::Null => Cell::Text(None),
                        Value::Real(f) => Cell::Text(Some(f.to_string())),
                        Value::Blob(b) => Cell::Text(Some(String::from_utf8_lossy(&b).into_owned())),
                    })
                })
                .collect::<rusqlite::Result<Vec<Cell>>>()
        })
        .map_err(|e| failed(format_args!("reading {table}"), e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| failed(format_args!("reading {table}"), e))
}

/// Copies the SQLite database at `sqlite` into the (empty) PostgreSQL one of `target`,
/// reporting `(rows done, rows in all)` to `progress`. The file is first brought to its
/// latest schema, as `wabot serve` would.
pub async fn import_sqlite(
    sqlite: &Path,
    target: &PostgresStore,
    progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> Result<Vec<Copied>, StoreError> {
    if !sqlite.exists() {
        return Err(StoreError::backend(format!("no SQLite database at {}", sqlite.display())));
    }
    drop(SqliteStore::open(sqlite)?);
    let path = sqlite.to_owned();
    let tables = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<Vec<Cell>>>, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| failed(format_args!("opening {}", path.display()), e))?;
        TABLES.iter().map(|(table, columns)| read_table(&conn, table, columns)).collect()
    })
    .await
    .map_err(StoreError::backend)??;
    let total: usize = tables.iter().map(Vec::len).sum();
    let mut client = target.client().await?;
    let tx = client.transaction().await.map_err(pg("starting the copy"))?;
    for (table, _) in TABLES {
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(pg(format_args!("counting {table}")))?
            .get(0);
        if n > 0 {
            return Err(StoreError::backend(format!(
                "the PostgreSQL database already has {n} rows in {table}: migrate into an empty one"
            )));
        }
    }
    let mut done = 0;
    progress(0, total);
    let mut copied = Vec::new();
    for ((table, columns), rows) in TABLES.iter().zip(&tables) {
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql =
            format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), placeholders.join(", "));
        let stmt = tx.prepare(&sql).await.map_err(pg(format_args!("preparing {table}")))?;
        for chunk in rows.chunks(PIPELINE) {
            // The inserts of a chunk are sent without waiting for each answer.
            try_join_all(chunk.iter().map(|row| {
                let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::sql).collect();
                let tx = &tx;
                let stmt = &stmt;
                async move { tx.execute(stmt, &params).await }
            }))
            .await
            .map_err(pg(format_args!("copying {table}")))?;
            done += chunk.len();
            progress(done, total);
        }
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(pg(format_args!("counting {table}")))?
            .get(0);
        let expected = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        if u64::try_from(n).ok() != Some(expected) {
            return Err(StoreError::backend(format!(
                "{table}: {n} rows in PostgreSQL, {expected} in the file; nothing was kept"
            )));
        }
        copied.push(Copied { table, rows: expected });
    }
    // The identities go on after the ids copied.
    for table in ["requests", "outbox", "photo_jobs", "outbound", "audit_log", "transcript_lines"] {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
            ),
            &[],
        )
        .await
        .map_err(pg(format_args!("moving {table}'s id sequence")))?;
    }
    tx.commit().await.map_err(pg("committing the copy"))?;
    Ok(copied)
}
