//! What users asked that the FAQ could not answer: declined questions counted under a
//! grouping key, so HR sees the most frequent ones (`wabot unanswered`,
//! `GET /admin/unanswered`).
//!
//! Owns the grouping key and the admin route. Only the key is stored: the question folded
//! (lowercase, no accents, no punctuation) with long digit runs replaced by `#`, never
//! who asked nor a number they typed.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::store::Durable;

/// Longest key stored, in characters: a longer question is cut there.
pub const MAX_KEY_CHARS: usize = 200;
/// Digit runs at least this long (phone, account, badge numbers) are replaced by `#`.
const MAX_KEPT_DIGITS: usize = 4;
/// Rows listed when no limit is given.
pub const DEFAULT_LIMIT: usize = 50;

/// A declined question and how often it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unanswered {
    /// The grouping key: the question's folded words.
    pub question: String,
    /// How many times.
    pub count: i64,
    /// First asked, milliseconds since the Unix epoch.
    pub first_ms: i64,
    /// Last asked, milliseconds since the Unix epoch.
    pub last_ms: i64,
}

/// The key declined questions are grouped under: `Où est la CANTINE ??` and
/// `ou est la cantine` meet on `ou est la cantine`. `None` for a message without words.
pub fn group_key(question: &str) -> Option<String> {
    let mut key = String::new();
    crate::engine::text::for_each_word(question, |w| {
        if key.chars().count() >= MAX_KEY_CHARS {
            return;
        }
        if !key.is_empty() {
            key.push(' ');
        }
        if w.chars().filter(char::is_ascii_digit).count() > MAX_KEPT_DIGITS {
            key.push('#');
        } else {
            key.push_str(w);
        }
    });
    let key: String = key.chars().take(MAX_KEY_CHARS).collect();
    (!key.is_empty()).then_some(key)
}

/// A table of the most frequent declined questions, for the CLI.
pub fn report(rows: &[Unanswered]) -> String {
    if rows.is_empty() {
        return "no declined question recorded\n".to_owned();
    }
    let mut out = format!("{:>6}  {:<16}  question\n", "count", "last asked");
    for r in rows {
        out.push_str(&format!("{:>6}  {:<16}  {}\n", r.count, crate::mail::utc(r.last_ms), r.question));
    }
    out
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// `GET /admin/unanswered?limit=N`, behind the admin bearer token.
pub fn router(store: Durable, token: &SecretString) -> Router {
    let routes = Router::new().route("/admin/unanswered", get(list)).with_state(Arc::new(store));
    crate::admin::protect(routes, token)
}

async fn list(State(store): State<Arc<Durable>>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(1000);
    match store.run(move |s| s.unanswered(limit)).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list unanswered questions");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_question_meet_on_one_key() {
        assert_eq!(group_key("Où est la CANTINE ??").as_deref(), Some("ou est la cantine"));
        assert_eq!(group_key("où est   la cantine").as_deref(), Some("ou est la cantine"));
        assert_eq!(group_key("?!"), None);
    }

    #[test]
    fn long_numbers_are_not_kept() {
        let key = group_key("call me on 0612345678 about badge 42").unwrap();
        assert_eq!(key, "call me on # about badge 42");
    }

    #[test]
    fn a_key_is_bounded() {
        let key = group_key(&"word ".repeat(1000)).unwrap();
        assert!(key.chars().count() <= MAX_KEY_CHARS);
    }
}
