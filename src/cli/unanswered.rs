//! `wabot unanswered`: what users asked that the FAQ could not answer, most frequent first.
//! The grouping key is [`crate::domain::group_key`]; the same rows are served by
//! `GET /admin/unanswered` ([`crate::server::admin`]).

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
