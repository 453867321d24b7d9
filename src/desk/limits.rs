//! The limits a message meets before its turn: the per-sender rate limit (a token bucket per
//! sender, checked after the channel verified the sender and before any dialog or store
//! work) and the longest body matched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LimitSettings;

/// What Twilio accepts in one WhatsApp message body; a longer one is answered politely
/// instead of being matched.
pub const MAX_BODY_CHARS: usize = 1600;

/// Senders tracked before idle ones (whose bucket is full again) are forgotten.
const MAX_TRACKED_SENDERS: usize = 100_000;

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
}
