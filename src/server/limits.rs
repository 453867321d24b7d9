//! What keeps the public webhook up and fair: the connection limits (a bound on reading a
//! request's headers and on an idle keep-alive connection, a cap on open connections, the
//! open-file limit raised at start), the tower layers every request passes (timeout,
//! concurrency limit with load shedding) and the per-sender rate limit.
//!
//! Owns the limits and their settings; the order of checks inside the webhook stays in
//! [`crate::server`]. A shed or timed-out request gets `503 Service Unavailable` with
//! `Retry-After` at once, never a hang: Twilio retries it, and a turn that was already being
//! committed is deduplicated by its MessageSid then. The rate limit is checked after the
//! signature (a forger cannot use up a real sender's allowance) and before any dialog or
//! store work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::BoxError;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;

use crate::config::LimitSettings;
use crate::config::limits::RESERVED_FDS;
use crate::telemetry::metrics::Metrics;

/// What Twilio accepts in one WhatsApp message body; a longer one is answered politely
/// instead of being matched.
pub const MAX_BODY_CHARS: usize = 1600;

/// What a shed or timed-out request is told to wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Senders tracked before idle ones (whose bucket is full again) are forgotten.
const MAX_TRACKED_SENDERS: usize = 100_000;

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
    tracing::warn!(reason, "request refused with 503");
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}, retry later")).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// A token bucket per sender: `per_minute` sustained, `burst` at once.
#[derive(Debug)]
pub struct SenderLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<Box<str>, Bucket>>,
}

/// MessageSids remembered per sender, so that Twilio's redeliveries of a message already
/// counted are not counted again (they get their stored reply from the desk).
const RECENT_SIDS: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Hashes of the latest MessageSids counted; 0 is no sid.
    recent: [u64; RECENT_SIDS],
}

impl SenderLimiter {
    /// The limiter for `settings`, or `None` when the rate limit is off.
    pub fn new(settings: &LimitSettings) -> Option<SenderLimiter> {
        (settings.sender_per_minute > 0).then(|| SenderLimiter {
            per_sec: f64::from(settings.sender_per_minute) / 60.0,
            burst: f64::from(settings.sender_burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one message from `sender`'s allowance now; false when it is used up. A
    /// `message_sid` among the sender's latest ones counted is a redelivery: allowed, free.
    pub fn allow(&self, sender: &str, message_sid: Option<&str>) -> bool {
        self.allow_at(sender, message_sid, Instant::now())
    }

    /// [`SenderLimiter::allow`] at a given instant.
    pub fn allow_at(&self, sender: &str, message_sid: Option<&str>, now: Instant) -> bool {
        let sid = message_sid.map_or(0, |s| {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(s).max(1)
        });
        // A poisoned lock only means another request panicked mid-update: the counts are
        // still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_SENDERS && !buckets.contains_key(sender) {
            let full_after = Duration::from_secs_f64(self.burst / self.per_sec);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let bucket = buckets.entry(sender.into()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            recent: [0; RECENT_SIDS],
        });
        if sid != 0 && bucket.recent.contains(&sid) {
            return true;
        }
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            if sid != 0 {
                bucket.recent.rotate_right(1);
                bucket.recent[0] = sid;
            }
            true
        } else {
            false
        }
    }

    /// Senders currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> SenderLimiter {
        let s =
            LimitSettings { sender_per_minute: per_minute, sender_burst: burst, ..LimitSettings::default() };
        SenderLimiter::new(&s).unwrap()
    }

    #[test]
    fn a_sender_gets_the_burst_then_the_sustained_rate() {
        let l = limiter(60, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow_at("a", None, t0)));
        assert!(!l.allow_at("a", None, t0), "the burst is used up");
        assert!(l.allow_at("b", None, t0), "another sender has its own allowance");
        assert!(!l.allow_at("a", None, t0 + Duration::from_millis(500)));
        assert!(l.allow_at("a", None, t0 + Duration::from_millis(1500)), "one message per second comes back");
    }

    #[test]
    fn a_redelivered_message_sid_is_not_counted_twice() {
        let l = limiter(1, 1);
        let t0 = Instant::now();
        assert!(l.allow_at("a", Some("SM1"), t0));
        assert!(l.allow_at("a", Some("SM1"), t0), "Twilio retried SM1");
        assert!(!l.allow_at("a", Some("SM2"), t0), "a new message is counted");
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_burst() {
        let l = limiter(60, 2);
        let t0 = Instant::now();
        assert!(l.allow_at("a", None, t0));
        let later = t0 + Duration::from_secs(3600);
        assert!(l.allow_at("a", None, later) && l.allow_at("a", None, later));
        assert!(!l.allow_at("a", None, later));
    }

    #[test]
    fn zero_per_minute_turns_the_limit_off_and_bad_values_are_refused() {
        let off = LimitSettings { sender_per_minute: 0, ..LimitSettings::default() };
        assert!(SenderLimiter::new(&off).is_none());
        assert!(LimitSettings { max_in_flight: 0, ..LimitSettings::default() }.validate().is_err());
        assert!(LimitSettings { request_timeout_ms: 0, ..LimitSettings::default() }.validate().is_err());
    }

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
