//! What keeps the public webhook up and fair: the connection limits (a bound on reading a
//! request's headers and on an idle keep-alive connection, a cap on open connections, the
//! open-file limit raised at start), the tower layers every request passes (timeout,
//! concurrency limit with load shedding). The per-sender rate limit is the desk's
//! ([`crate::desk::limits`]).
//!
//! Owns the limits and their settings; the order of checks inside the webhook stays in
//! [`crate::server`]. A shed or timed-out request gets `503 Service Unavailable` with
//! `Retry-After` at once, never a hang: Twilio retries it, and a turn that was already being
//! committed is deduplicated by its MessageSid then. The rate limit is checked after the
//! signature (a forger cannot use up a real sender's allowance) and before any dialog or
//! store work.

use std::sync::Arc;
use std::time::Duration;

use axum::BoxError;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;

use crate::config::LimitSettings;
use crate::config::limits::RESERVED_FDS;
use crate::telemetry::metrics::Metrics;

/// What a shed or timed-out request is told to wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

impl LimitSettings {
    /// The connection cap in force: as configured, else sized from the current open-file
    /// limit (raise it first, see [`raise_fd_limit`]).
    pub fn connection_cap(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let files = fd_limit().map_or(1024, |l| usize::try_from(l).unwrap_or(usize::MAX));
        files.saturating_sub(RESERVED_FDS).clamp(64, 1 << 20)
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`).
pub fn fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Raises the soft limit on open files to the hard limit (a server with the usual soft
/// limit of 1,024 runs out of descriptors long before it runs out of anything else); the
/// soft limit before and after.
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, fd_limit()?))
}

/// Wraps every route of `router` in the timeout and the server-wide concurrency limit;
/// past the limit, a request is shed at once with 503 and `Retry-After`, counted in `metrics`.
pub fn apply(router: Router, settings: &LimitSettings, metrics: Arc<Metrics>) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |e: BoxError| unavailable(Arc::clone(&metrics), e)))
            .load_shed()
            // Global: one semaphore for all routes, not one per route.
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(settings.max_in_flight))
            .timeout(Duration::from_millis(settings.request_timeout_ms)),
    )
}

async fn unavailable(metrics: Arc<Metrics>, error: BoxError) -> Response {
    let reason = if error.is::<tower::load_shed::error::Overloaded>() {
        "overloaded"
    } else if error.is::<tower::timeout::error::Elapsed>() {
        "timed out"
    } else {
        "unavailable"
    };
    metrics.unavailable(reason);
    let code = if reason == "timed out" { "timed_out" } else { reason };
    crate::web::HttpError::new(StatusCode::SERVICE_UNAVAILABLE, code, format!("{reason}, retry later"))
        .with_header(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECS))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit_and_sizes_the_connection_cap() {
        let (before, after) = raise_fd_limit().unwrap();
        assert!(after >= before);
        assert_eq!(fd_limit().unwrap(), after);
        let auto = LimitSettings::default().connection_cap();
        let expected =
            usize::try_from(after).unwrap_or(usize::MAX).saturating_sub(RESERVED_FDS).clamp(64, 1 << 20);
        assert_eq!(auto, expected);
        assert_eq!(LimitSettings { max_connections: 10, ..LimitSettings::default() }.connection_cap(), 10);
        assert!(LimitSettings { header_read_timeout_ms: 0, ..LimitSettings::default() }.validate().is_err());
    }
}
