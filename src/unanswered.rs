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
use serde::Deserialize;

use crate::domain::Unanswered;
use crate::store::Durable;

/// Rows listed when no limit is given.
pub const DEFAULT_LIMIT: usize = 50;

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
