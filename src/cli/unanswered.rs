//! `wabot unanswered`: what users asked that the FAQ could not answer, most frequent first.
//! The grouping key is [`crate::domain::group_key`]; the same rows are served by
//! `GET /admin/unanswered` ([`crate::server::admin`]).

use std::io::Write;

use super::CliError;
use crate::config::Settings;
use crate::domain::Unanswered;

/// A table of the most frequent declined questions, for the CLI.
pub fn report(rows: &[Unanswered]) -> String {
    if rows.is_empty() {
        return "no declined question recorded\n".to_owned();
    }
    let mut out = format!("{:>6}  {:<16}  question\n", "count", "last asked");
    for r in rows {
        out.push_str(&format!("{:>6}  {:<16}  {}\n", r.count, crate::domain::utc(r.last_ms), r.question));
    }
    out
}

/// `wabot unanswered`: the `limit` most frequent declined questions of the settings'
/// database, as a table or one JSON object per line.
pub fn run(settings: &Settings, limit: usize, json: bool, out: &mut impl Write) -> Result<(), CliError> {
    let opened = super::open_existing(settings, "question")?;
    let rows = opened.run(opened.store.unanswered(limit))?;
    if json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        write!(out, "{}", report(&rows))?;
    }
    Ok(())
}
