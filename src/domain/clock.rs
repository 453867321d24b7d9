//! Time as the rest of the crate reads it: milliseconds since the Unix epoch, from a
//! [`Clock`] wherever time decides what happens (a form's expiry, a retry's delay, what
//! pruning forgets), and their rendering in UTC for people.

use std::sync::atomic::{AtomicI64, Ordering};

/// Where "now" comes from. The composition root hands the [`SystemClock`] to everything;
/// tests hand a [`TestClock`] they move by hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that stands still until moved: [`TestClock::set`], [`TestClock::advance`].
#[derive(Debug, Default)]
pub struct TestClock(AtomicI64);

impl TestClock {
    /// A clock showing `ms`.
    pub fn at(ms: i64) -> TestClock {
        TestClock(AtomicI64::new(ms))
    }

    /// Shows `ms` from now on.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the clock `ms` forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the Unix epoch, now, by the system's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-25 12:00 UTC`.
pub fn utc(ms: i64) -> String {
    let (year, month, day, rem) = civil(ms);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// `ms` as a UTC date and time to the second, `2026-11-19 12:00:05 UTC`: for events that
/// can follow each other within a minute (an e-mail's delivery attempts).
pub fn utc_seconds(ms: i64) -> String {
    let (year, month, day, rem) = civil(ms);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The year of `ms`, in UTC: what a ticket's number counts within.
pub fn utc_year(ms: i64) -> i64 {
    civil(ms).0
}

/// Year, month, day and seconds into the day of `ms`, in UTC.
fn civil(ms: i64) -> (i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told() {
        let clock = TestClock::at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(7);
        assert_eq!(clock.now_ms(), 7);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_089_600_000), "2026-11-19 12:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_seconds(1_795_089_605_999), "2026-11-19 12:00:05 UTC");
        assert_eq!((utc_year(1_798_761_599_999), utc_year(1_798_761_600_000)), (2026, 2027));
    }
}
