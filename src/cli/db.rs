//! `wabot db migrate-sqlite-to-postgres`: an installation's SQLite file moved into an empty
//! PostgreSQL database (see [`crate::store::postgres::import`]), each table's count checked.

use std::io::Write;
use std::path::Path;

use super::CliError;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::import::import_sqlite;

/// Copies the SQLite database at `sqlite` into the PostgreSQL one at `url` (`password` when
/// the URL has none), creating its tables; writes each table's count.
pub fn run_migrate(
    sqlite: &Path,
    url: &str,
    password: Option<&str>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let shown = crate::config::database::redacted(url);
    let copied = runtime.block_on(async {
        let target = PostgresStore::open(url, password)
            .await
            .map_err(|source| CliError::Open { path: shown.clone().into(), source })?;
        let progress = crate::telemetry::progress::reporter("copying rows");
        Ok::<_, CliError>(import_sqlite(sqlite, &target, progress).await?)
    })?;
    for c in &copied {
        writeln!(out, "{:<12} {:>10} rows", c.table, c.rows)?;
    }
    let total: u64 = copied.iter().map(|c| c.rows).sum();
    writeln!(out, "{total} rows copied from {} to {shown}; every table's count checked", sqlite.display())?;
    Ok(())
}
