//! The admin HTTP API: the live FAQ read and changed over HTTP, behind a bearer token.
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/faq` | 200, every live entry: a JSON array of FAQ JSONL objects |
//! | `GET /admin/faq/{id}` | 200, the entry; 404 if there is none |
//! | `PUT /admin/faq/{id}` | 201 when added, 200 when replaced, with the entry stored; the body is a FAQ JSONL object whose `id` may be left out, and must be the path's if present |
//! | `DELETE /admin/faq/{id}` | 204; 404 if there is none |
//!
//! An `{id}` is 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`, starting with a letter or
//! a digit ([`crate::engine::valid_id`], the rule the corpus loaders apply): any other — `.`,
//! `..`, an encoded `/`, a control character — is refused with 400 before anything is looked up.
//!
//! Owns authentication — `Authorization: Bearer <token>`, compared in constant time before
//! anything else is looked at (401 otherwise) — the request format and the status of each
//! failure: 400 for a body that is not a valid entry (the message names the problem), 415
//! for a body that is not JSON, 500 when a change cannot be saved (and is then not applied).
//! Errors are JSON: `{"error": "…"}`. Logs each operation with its id and outcome, never an
//! entry's text.
//!
//! Must not: decide how a change is stored or served — that is [`Faq`]'s job.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::engine::FaqEntry;
use crate::knowledge::faq::{Faq, FaqError, Stored};
use crate::store::Reports;

use crate::web::HttpError;

/// An entry id from the path, checked against [`crate::engine::valid_id`].
struct EntryId(String);

impl<S: Send + Sync> FromRequestParts<S> for EntryId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The id is not logged: it may hold anything.
        let span = tracing::warn_span!("admin", op = %parts.method);
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| span.in_scope(|| AdminError::BadRequest(e.body_text()).into_response()))?;
        if !crate::engine::valid_id(&id) {
            let refused = AdminError::BadRequest(crate::engine::ID_RULE.to_owned());
            return Err(span.in_scope(|| refused.into_response()));
        }
        Ok(EntryId(id))
    }
}

/// A request the admin API refuses, with the status that fits.
#[derive(Debug, Error)]
enum AdminError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("no FAQ entry {0:?}")]
    NotFound(String),
    #[error("expected Content-Type application/json")]
    ContentType,
    #[error("{0}")]
    BadRequest(String),
    #[error("the change could not be saved, so it was not applied")]
    Storage(#[source] FaqError),
    #[error("internal error")]
    Internal(#[source] tokio::task::JoinError),
}

impl From<AdminError> for HttpError {
    fn from(e: AdminError) -> HttpError {
        let message = e.to_string();
        match e {
            AdminError::Unauthorized => HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            AdminError::NotFound(_) => HttpError::new(StatusCode::NOT_FOUND, "not_found", message),
            AdminError::ContentType => {
                HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
            }
            // A serde message can quote the body.
            AdminError::BadRequest(_) => {
                HttpError::new(StatusCode::BAD_REQUEST, "bad_request", message).quiet()
            }
            AdminError::Storage(source) => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", message).with_source(source)
            }
            AdminError::Internal(source) => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message).with_source(source)
            }
        }
    }
}

impl From<FaqError> for AdminError {
    fn from(e: FaqError) -> Self {
        match e {
            FaqError::InvalidEntry(e) => AdminError::BadRequest(e.to_string()),
            other => AdminError::Storage(other),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response()
    }
}

/// The admin routes, answering only requests that carry `token`.
pub fn router(faq: Arc<Faq>, token: &SecretString) -> Router {
    let expected = Arc::new(digest(token.expose_secret()));
    Router::new()
        .route("/admin/faq", get(list))
        .route("/admin/faq/{id}", get(get_one).put(put).delete(delete))
        .route_layer(middleware::from_fn_with_state(expected, require_bearer))
        .with_state(faq)
}

/// `router` behind the same bearer token as `/admin/faq` (for admin routes kept in other
/// modules, e.g. [`crate::unanswered`]).
pub fn protect(router: Router, token: &SecretString) -> Router {
    let expected = Arc::new(digest(token.expose_secret()));
    router.route_layer(middleware::from_fn_with_state(expected, require_bearer))
}

/// Tokens are compared as digests: equal lengths, so the comparison's time depends on
/// neither the expected token's content nor its length.
fn digest(token: &str) -> [u8; 20] {
    Sha1::digest(token.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn require_bearer(
    State(expected): State<Arc<[u8; 20]>>,
    method: Method,
    request: Request,
    next: Next,
) -> Response {
    let valid = bearer(request.headers()).is_some_and(|t| bool::from(digest(t).ct_eq(&expected[..])));
    if !valid {
        let span = tracing::warn_span!("admin", %method, path = request.uri().path());
        return span.in_scope(|| AdminError::Unauthorized.into_response());
    }
    next.run(request).await
}

/// A refused operation's response, logged once (by [`HttpError`]) in a span naming the
/// operation and the entry.
fn refused(op: &str, id: &str, e: AdminError) -> Response {
    tracing::warn_span!("admin", op, id).in_scope(|| e.into_response())
}

async fn list(State(faq): State<Arc<Faq>>) -> Response {
    let entries = faq.engine().entries();
    tracing::info!(op = "list", entries = entries.len(), "admin: listed the FAQ");
    let entries: Vec<&FaqEntry> = entries.iter().map(|e| &**e).collect();
    axum::Json(entries).into_response()
}

async fn get_one(State(faq): State<Arc<Faq>>, EntryId(id): EntryId) -> Response {
    match faq.engine().entry(&id) {
        Some(entry) => {
            tracing::info!(op = "get", id, "admin: entry read");
            axum::Json(&*entry).into_response()
        }
        None => refused("get", &id, AdminError::NotFound(id.clone())),
    }
}

async fn put(State(faq): State<Arc<Faq>>, EntryId(id): EntryId, headers: HeaderMap, body: Bytes) -> Response {
    let stored = async {
        if !crate::web::has_media_type(&headers, "application/json") {
            return Err(AdminError::ContentType);
        }
        let entry = parse_entry(&id, &body)?;
        let echo = entry.clone();
        let stored =
            tokio::task::spawn_blocking(move || faq.put(entry)).await.map_err(AdminError::Internal)??;
        Ok((stored, echo))
    };
    match stored.await {
        Ok((Stored::Created, entry)) => {
            tracing::info!(op = "put", id, outcome = "created", "admin: entry added");
            let location = HeaderValue::from_str(&format!("/admin/faq/{id}")).ok();
            let mut response = (StatusCode::CREATED, axum::Json(entry)).into_response();
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok((Stored::Replaced, entry)) => {
            tracing::info!(op = "put", id, outcome = "replaced", "admin: entry replaced");
            axum::Json(entry).into_response()
        }
        Err(e) => refused("put", &id, e),
    }
}

async fn delete(State(faq): State<Arc<Faq>>, EntryId(id): EntryId) -> Response {
    let target = id.clone();
    let removed = tokio::task::spawn_blocking(move || faq.delete(&target)).await;
    match removed.map_err(AdminError::Internal).and_then(|r| r.map_err(AdminError::from)) {
        Ok(Some(_)) => {
            tracing::info!(op = "delete", id, outcome = "deleted", "admin: entry deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => refused("delete", &id, AdminError::NotFound(id.clone())),
        Err(e) => refused("delete", &id, e),
    }
}

/// The entry in a PUT body: a FAQ JSONL object, its `id` the path's or left out.
fn parse_entry(path_id: &str, body: &[u8]) -> Result<FaqEntry, AdminError> {
    let bad = |message: String| AdminError::BadRequest(message);
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(bad("expected a FAQ entry object: {\"lang\", \"questions\", \"answer\"}".to_owned()));
    };
    match object.get("id") {
        None => {
            object.insert("id".to_owned(), Value::String(path_id.to_owned()));
        }
        Some(Value::String(id)) if id != path_id => {
            return Err(bad(format!("the body's id {id:?} is not the path's id {path_id:?}")));
        }
        // The path's id, or not a string: the shape check below says so.
        Some(_) => {}
    }
    let entry: FaqEntry =
        serde_json::from_value(Value::Object(object)).map_err(|e| bad(format!("not a FAQ entry: {e}")))?;
    entry.validate().map_err(|e| bad(e.to_string()))?;
    Ok(entry)
}

#[derive(Deserialize)]
struct UnansweredQuery {
    limit: Option<usize>,
}

/// `GET /admin/unanswered?limit=N`, behind the admin bearer token.
pub fn unanswered_router(store: Arc<dyn Reports>, token: &SecretString) -> Router {
    let routes = Router::new().route("/admin/unanswered", get(list_unanswered)).with_state(store);
    protect(routes, token)
}

async fn list_unanswered(
    State(store): State<Arc<dyn Reports>>,
    Query(q): Query<UnansweredQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(crate::domain::unanswered::DEFAULT_LIMIT).min(1000);
    match store.unanswered(limit).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", "cannot list unanswered questions")
                .with_source(e)
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic YWxhZGRpbjpvcGVuc2VzYW1l")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_body_without_an_id_takes_the_paths() {
        let e = parse_entry("a-en", br#"{"lang": "en", "questions": ["q?"], "answer": "a."}"#).unwrap();
        assert_eq!(e.id, "a-en");
        let e = parse_entry("a-en", br#"{"id": "a-en", "lang": "en", "questions": ["q?"], "answer": "a."}"#)
            .unwrap();
        assert_eq!(e.id, "a-en");
    }

    #[test]
    fn a_bad_body_is_refused_with_the_problem_named() {
        let message = |path: &str, body: &str| match parse_entry(path, body.as_bytes()) {
            Err(AdminError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        let m = message("a", r#"{"lang": "en", "questions": ["q?"] "answer": "a."}"#);
        assert!(m.starts_with("invalid JSON: ") && m.contains("line 1 column"), "{m}");
        let m = message("a", r#"{"id": "b", "lang": "en", "questions": ["q?"], "answer": "a."}"#);
        assert!(m.contains("\"b\"") && m.contains("\"a\""), "{m}");
        let m = message("a", r#"{"lang": "en", "questions": ["q?"], "answer": "a.", "tags": []}"#);
        assert!(m.contains("unknown field `tags`"), "{m}");
        let m = message("a", r#"{"lang": "de", "questions": ["q?"], "answer": "a."}"#);
        assert!(m.contains("unknown variant `de`"), "{m}");
        let m = message("a", r#"{"lang": "en", "questions": [], "answer": "a."}"#);
        assert!(m.contains("at least one question"), "{m}");
        let m = message("a b", r#"{"lang": "en", "questions": ["q?"], "answer": "a."}"#);
        assert!(m.contains("id must be"), "{m}");
        let m = message("a", r#"["q?"]"#);
        assert!(m.contains("expected a FAQ entry object"), "{m}");
    }
}
