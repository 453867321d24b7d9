//! What every route shares, whoever serves it (the server's own routes and each channel's
//! webhook): the one error a route answers with, and the request's content type.
//!
//! [`HttpError`] is a status, a stable `code` for programs and a `message` for people, sent
//! as `{"error": {"code": "...", "message": "..."}}` and logged once when it becomes a
//! response (a warning for the client's mistakes, an error with its source for the
//! server's). The source is never sent. Twilio's webhook answers TwiML when it answers at
//! all; its refusals use this body.
//!
//! A leaf: it imports nothing else of the crate, so that the server and the channels below
//! it can both use it.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What went wrong inside, for the log only.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An HTTP error response; see the module doc.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    source: Option<Source>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether the message may be logged: a parser's message can quote what the client
    /// sent, which the logs must not hold.
    quiet: bool,
}

impl HttpError {
    /// `status` with `code` (`snake_case`, stable) and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError { status, code, message: message.into(), source: None, headers: Vec::new(), quiet: false }
    }

    /// The error inside, logged with the response and never sent.
    pub fn with_source(mut self, source: impl Into<Source>) -> HttpError {
        self.source = Some(source.into());
        self
    }

    /// A header to send with the body (`Retry-After`, `WWW-Authenticate`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> HttpError {
        self.headers.push((name, value));
        self
    }

    /// Logs the message at debug level only: it may quote the request.
    pub fn quiet(mut self) -> HttpError {
        self.quiet = true;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status.as_u16();
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(status, code = self.code, error = %source, "{}", self.message)
                }
                None => tracing::warn!(status, code = self.code, "{}", self.message),
            }
        } else if self.quiet {
            tracing::warn!(status, code = self.code, "request refused");
            tracing::debug!(status, code = self.code, "{}", self.message);
        } else {
            tracing::warn!(status, code = self.code, "request refused: {}", self.message);
        }
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// True when the request's `Content-Type` is `media_type`, whatever its parameters.
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_has_one_shape_and_the_source_stays_inside() {
        let e = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "overloaded, retry later")
            .with_source(std::io::Error::other("secret detail"))
            .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        let response = e.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": { "code": "overloaded", "message": "overloaded, retry later" } })
        );
        assert!(!String::from_utf8_lossy(&bytes).contains("secret"));
    }
}
