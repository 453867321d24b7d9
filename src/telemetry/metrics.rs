//! Prometheus metrics (`GET /metrics`, OpenMetrics text): messages by outcome, reply
//! latency, match scores, OCR duration, the outbox's depth and e-mail failures.
//!
//! Each server owns its [`Metrics`] (its own registry, no global state): tests running
//! several servers in one process see only their own counts. Handles are cheap to clone;
//! recording is lock-free. Holds counts and durations only, never a message or a number.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of a webhook message, as counted in `wabot_messages_total{outcome=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageOutcome {
    /// An FAQ entry answered.
    Answered,
    /// Nothing matched well enough.
    Declined,
    /// Suggestions were offered.
    Suggested,
    /// A step of the request form.
    Request,
    /// A request was confirmed and queued for e-mail.
    RequestSubmitted,
    /// Greeting, menu, small talk.
    Other,
    /// A MessageSid already handled: its stored reply was sent again.
    Duplicate,
    /// The sender was over the rate limit and was asked to slow down.
    RateLimited,
    /// The body was over [`crate::limits::MAX_BODY_CHARS`].
    TooLong,
    /// The turn failed (the store): the user was asked to resend.
    Error,
    /// A photo of a badge, handed to badge reading.
    Badge,
}

impl MessageOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Answered => "answered",
            MessageOutcome::Declined => "declined",
            MessageOutcome::Suggested => "suggested",
            MessageOutcome::Request => "request",
            MessageOutcome::RequestSubmitted => "request_submitted",
            MessageOutcome::Other => "other",
            MessageOutcome::Duplicate => "duplicate",
            MessageOutcome::RateLimited => "rate_limited",
            MessageOutcome::TooLong => "too_long",
            MessageOutcome::Error => "error",
            MessageOutcome::Badge => "badge",
        }
    }
}

impl EncodeLabelValue for MessageOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: MessageOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<OutcomeLabels, Counter>,
    unavailable: Family<ReasonLabels, Counter>,
    reply_seconds: Histogram,
    match_score: Histogram,
    ocr_seconds: Histogram,
    outbox_depth: Gauge,
    outbox_dead: Gauge,
    mail_sent: Counter,
    mail_failures: Counter,
    mail_dead_lettered: Counter,
    outbound_depth: Gauge,
    outbound_sent: Counter,
    outbound_retried: Counter,
    outbound_dropped: Counter,
    statuses: Family<StatusLabels, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wabot");
        let messages = Family::<OutcomeLabels, Counter>::default();
        registry.register("messages", "Webhook messages handled, by outcome", messages.clone());
        let unavailable = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "unavailable",
            "Requests answered 503 by the limits (overloaded, timed out)",
            unavailable.clone(),
        );
        // 100 µs … 3.3 s.
        let reply_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "reply_seconds",
            "Time from a signed webhook request to its reply, in seconds",
            reply_seconds.clone(),
        );
        let match_score = Histogram::new(linear_buckets(0.05, 0.05, 20));
        registry.register("match_score", "Cosine score of answered FAQ matches", match_score.clone());
        // 10 ms … 41 s.
        let ocr_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 13));
        registry.register("ocr_seconds", "Duration of badge OCR, in seconds", ocr_seconds.clone());
        let outbox_depth = Gauge::default();
        registry.register("outbox_depth", "E-mails queued and not yet delivered", outbox_depth.clone());
        let mail_sent = Counter::default();
        registry.register("mail_sent", "Request e-mails the SMTP server accepted", mail_sent.clone());
        let mail_failures = Counter::default();
        registry.register("mail_failures", "Failed attempts to e-mail a request", mail_failures.clone());
        let outbox_dead = Gauge::default();
        registry.register(
            "outbox_dead",
            "E-mails dead-lettered: rejected for good by the SMTP server, never tried again",
            outbox_dead.clone(),
        );
        let mail_dead_lettered = Counter::default();
        registry.register(
            "mail_dead_lettered",
            "Request e-mails dead-lettered by this process",
            mail_dead_lettered.clone(),
        );
        let outbound_depth = Gauge::default();
        registry.register(
            "outbound_depth",
            "Messages queued for a channel and not yet sent or dropped",
            outbound_depth.clone(),
        );
        let outbound_sent = Counter::default();
        registry.register("outbound_sent", "Queued messages a channel accepted", outbound_sent.clone());
        let outbound_retried = Counter::default();
        registry.register(
            "outbound_retried",
            "Attempts to send a queued message that failed and will be repeated",
            outbound_retried.clone(),
        );
        let outbound_dropped = Counter::default();
        registry.register(
            "outbound_dropped",
            "Queued messages given up: refused for good, or never sendable",
            outbound_dropped.clone(),
        );
        let statuses = Family::<StatusLabels, Counter>::default();
        registry.register(
            "channel_statuses",
            "Delivery status events a channel reported (sent, delivered, read, failed)",
            statuses.clone(),
        );
        for outcome in [MessageOutcome::Answered, MessageOutcome::Declined, MessageOutcome::Error] {
            // Present at zero, so a rate() over them works from the first scrape.
            let _ = messages.get_or_create(&OutcomeLabels { outcome });
        }
        Metrics {
            registry,
            messages,
            unavailable,
            reply_seconds,
            match_score,
            ocr_seconds,
            outbox_depth,
            outbox_dead,
            mail_sent,
            mail_failures,
            mail_dead_lettered,
            outbound_depth,
            outbound_sent,
            outbound_retried,
            outbound_dropped,
            statuses,
        }
    }

    /// Sets the number of queued outbound messages.
    pub fn set_outbound_depth(&self, depth: u64) {
        self.outbound_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts a queued message sent.
    pub fn outbound_sent(&self) {
        self.outbound_sent.inc();
    }

    /// Counts a failed attempt that will be repeated.
    pub fn outbound_retried(&self) {
        self.outbound_retried.inc();
    }

    /// Counts a queued message given up.
    pub fn outbound_dropped(&self) {
        self.outbound_dropped.inc();
    }

    /// Counts a delivery status a channel reported; unknown names are counted as `other`.
    pub fn channel_status(&self, status: &str) {
        let status = match status {
            "sent" | "delivered" | "read" | "failed" | "deleted" => status,
            _ => "other",
        };
        self.statuses.get_or_create(&StatusLabels { status: status.to_owned() }).inc();
    }

    /// Counts one webhook message and how long its reply took.
    pub fn message(&self, outcome: MessageOutcome, elapsed: Duration) {
        self.messages.get_or_create(&OutcomeLabels { outcome }).inc();
        self.reply_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts a request refused with 503 by the limits, for `reason`.
    pub fn unavailable(&self, reason: &'static str) {
        self.unavailable.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records the score of an answered match.
    pub fn match_score(&self, score: f32) {
        self.match_score.observe(f64::from(score));
    }

    /// Records how long one badge OCR took.
    pub fn observe_ocr(&self, elapsed: Duration) {
        self.ocr_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts a delivered e-mail.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// Counts a failed e-mail attempt.
    pub fn mail_failed(&self) {
        self.mail_failures.inc();
    }

    /// Counts an e-mail dead-lettered.
    pub fn mail_dead_lettered(&self) {
        self.mail_dead_lettered.inc();
    }

    /// Sets the number of dead-lettered e-mails in the store.
    pub fn set_outbox_dead(&self, dead: u64) {
        self.outbox_dead.set(i64::try_from(dead).unwrap_or(i64::MAX));
    }

    /// Sets the outbox depth.
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// How many messages were counted with `outcome`.
    pub fn messages(&self, outcome: MessageOutcome) -> u64 {
        self.messages.get_or_create(&OutcomeLabels { outcome }).get()
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_show_in_the_text_format() {
        let m = Metrics::new();
        m.message(MessageOutcome::Answered, Duration::from_micros(300));
        m.message(MessageOutcome::RateLimited, Duration::from_micros(50));
        m.match_score(0.62);
        m.observe_ocr(Duration::from_millis(120));
        m.mail_failed();
        m.unavailable("overloaded");
        m.set_outbox_depth(3);
        let text = m.encode();
        assert!(text.contains("wabot_messages_total{outcome=\"answered\"} 1"), "{text}");
        assert!(text.contains("wabot_messages_total{outcome=\"rate_limited\"} 1"), "{text}");
        assert!(text.contains("wabot_messages_total{outcome=\"declined\"} 0"), "{text}");
        assert!(text.contains("wabot_reply_seconds_count 2"), "{text}");
        assert!(text.contains("wabot_match_score_count 1"), "{text}");
        assert!(text.contains("wabot_ocr_seconds_count 1"), "{text}");
        assert!(text.contains("wabot_outbox_depth 3"), "{text}");
        assert!(text.contains("wabot_unavailable_total{reason=\"overloaded\"} 1"), "{text}");
        assert!(text.contains("wabot_mail_failures_total 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn two_servers_do_not_share_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.message(MessageOutcome::Declined, Duration::ZERO);
        assert_eq!(a.messages(MessageOutcome::Declined), 1);
        assert_eq!(b.messages(MessageOutcome::Declined), 0);
    }
}
