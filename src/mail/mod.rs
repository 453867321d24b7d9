//! E-mail for requests: the message composed from a stored request, and the [`Outbox`]
//! worker that delivers queued ones over SMTP (lettre, tokio, rustls).
//!
//! Owns delivery only: a request reaches the outbox in the same transaction that stores it
//! ([`crate::store::Turns::commit`]). The worker takes due rows, sends each, and marks it
//! sent only once the server has accepted it; a failure is recorded with the next attempt
//! time, doubling from `retry_initial_ms` up to `retry_max_ms`. So with SMTP down requests
//! wait, and after a crash or `kill -9` whatever was not marked sent goes out on restart.
//! Delivery is at least once: a crash between the server's "250 OK" and the mark would send
//! that message again — with the same Message-ID, which lets mail systems drop the copy.
//!
//! A server that accepts the connection and then stalls (a tarpit, a half-open connection, a
//! relay stuck mid-exchange) cannot hold the worker: the whole exchange — connect, greeting,
//! every command, the data — is bounded by `timeout_secs`, and an expiry is a failed attempt
//! like any other. Deliveries run concurrently, up to `max_concurrent` at once, each as soon
//! as it is due: a message stuck on its server holds one place, not the queue behind it.
//! A permanent rejection (5xx, or a message that cannot be composed) is retried like a
//! transient failure until it has happened `max_permanent_failures` times; the e-mail is
//! then dead-lettered (never tried again, shown as `dead` by `wabot requests`, counted in
//! `wabot_outbox_dead`).
//!
//! Must not log message bodies or secrets: the SMTP URL may carry a user name, the
//! password comes from `WABOT_SMTP_PASSWORD`; logs name the host and the ticket only.
//! Credentials are refused over a connection that TLS does not protect unless the server
//! is on loopback or `allow_plaintext_auth` is set (then a warning at start).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thiserror::Error;
use tokio::sync::Notify;

use crate::config::MailSettings;
use crate::domain::{Clock, MailState, RequestRecord, clean_line, utc};
use crate::store::{OutboxItem, OutboxMail, StoreError, StoredMail};

/// With nothing queued, the worker still looks at the outbox this often (a request
/// committed by another process, e.g. a second replica, wakes nobody here).
const IDLE_POLL: Duration = Duration::from_secs(30);

/// What composing or sending can fail with.
#[derive(Debug, Error)]
pub enum MailError {
    /// A configured address does not parse.
    #[error("{0}: not a valid address: {1}")]
    Address(&'static str, String),
    /// The settings are unusable.
    #[error("{0}")]
    Settings(String),
    /// The message could not be built.
    #[error("composing the e-mail: {0}")]
    Compose(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `REQ-2026-000123`'s message: stable across retries and restarts, since it is built
/// from the stored request only.
pub fn compose(
    req: &RequestRecord,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
) -> Result<Message, MailError> {
    let to: Mailbox = req.recipient.parse().map_err(|e| MailError::Compose(format!("recipient: {e}")))?;
    let name = clean_line(&format!("{} {}", req.first_name, req.last_name), 200);
    let subject = clean_line(&format!("[{}] {} — {}", req.ticket, req.kind_label, name), 300);
    let domain = from.email.domain().to_owned();
    let message_id = format!("<{}.{}@{}>", req.ticket.to_ascii_lowercase(), req.created_at_ms, domain);
    let date = UNIX_EPOCH + Duration::from_millis(u64::try_from(req.created_at_ms).unwrap_or(0));
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id))
        .date(date)
        .user_agent(format!("wabot/{}", env!("CARGO_PKG_VERSION")));
    if let Some(r) = reply_to {
        builder = builder.reply_to(r.clone());
    }
    builder.header(ContentType::TEXT_PLAIN).body(body(req)).map_err(|e| MailError::Compose(e.to_string()))
}

/// The message of an e-mail that is not a request (outbox row `id`): stable across retries
/// and restarts, like a request's.
pub fn compose_other(
    id: i64,
    stored: &StoredMail,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
) -> Result<Message, MailError> {
    let mail = &stored.mail;
    let to: Mailbox = mail.recipient.parse().map_err(|e| MailError::Compose(format!("recipient: {e}")))?;
    let domain = from.email.domain().to_owned();
    let message_id = format!("<mail-{id}.{}@{}>", stored.created_ms, domain);
    let date = UNIX_EPOCH + Duration::from_millis(u64::try_from(stored.created_ms).unwrap_or(0));
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(clean_line(&mail.subject, 300))
        .message_id(Some(message_id))
        .date(date)
        .user_agent(format!("wabot/{}", env!("CARGO_PKG_VERSION")));
    if let Some(r) = reply_to {
        builder = builder.reply_to(r.clone());
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError::Compose(e.to_string()))
}

/// The plain-text body: everything the service needs to act, in both languages' labels.
pub fn body(req: &RequestRecord) -> String {
    let line = |s: &str| clean_line(s, 300);
    let mut out = String::new();
    out.push_str("New administrative request received by WhatsApp / Nouvelle demande administrative reçue par WhatsApp\n\n");
    out.push_str(&format!("Ticket: {}\n", req.ticket));
    out.push_str(&format!("Request / Demande: {}\n", line(&req.kind_label)));
    out.push_str(&format!("Employee / Salarié: {} {}\n", line(&req.first_name), line(&req.last_name)));
    if let Some(id) = &req.employee_id {
        out.push_str(&format!(
            "Employee ID / Matricule: {} (identified by badge / identifié par badge)\n",
            line(id)
        ));
    }
    if let Some(e) = &req.employee_email {
        out.push_str(&format!("E-mail: {}\n", line(e)));
    }
    if let Some(d) = &req.department {
        out.push_str(&format!("Department / Service: {}\n", line(d)));
    }
    out.push_str(&format!("WhatsApp: {}\n", line(&req.user.display())));
    out.push_str(&format!(
        "Language / Langue: {}\n",
        if req.lang == crate::engine::Lang::Fr { "fr" } else { "en" }
    ));
    out.push_str(&format!("Received / Reçue: {}\n", utc(req.created_at_ms)));
    out.push_str("\nDetails / Précisions:\n");
    out.push_str(req.details.as_deref().unwrap_or("(none / aucune)"));
    out.push_str(
        "\n\n-- \nSent by wabot. Reply to this e-mail to answer the service's mailbox, quoting the ticket.\n",
    );
    out
}

/// The worker delivering the outbox.
pub struct Outbox {
    store: Arc<dyn crate::store::Outbox>,
    /// What "due" and a retry's delay are measured by.
    clock: Arc<dyn Clock>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: MailSettings,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    wakeup: Arc<Notify>,
    metrics: Option<Arc<crate::telemetry::metrics::Metrics>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("smtp", &self.settings.smtp_host()).finish_non_exhaustive()
    }
}

impl Outbox {
    /// The worker for `settings`, or `None` when no SMTP server is configured (mail off:
    /// requests stay queued). `wakeup` is notified when a request is queued.
    pub fn new(
        settings: &MailSettings,
        store: Arc<dyn crate::store::Outbox>,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Notify>,
    ) -> Result<Option<Outbox>, MailError> {
        settings.validate().map_err(MailError::Settings)?;
        let Some(transport) = settings.transport().map_err(MailError::Settings)? else { return Ok(None) };
        if let Some(host) = settings.cleartext_credentials_host() {
            tracing::warn!(
                smtp = %host,
                "mail.allow_plaintext_auth: the SMTP credentials go to this server without TLS; \
                 anyone on the path can read them"
            );
        }
        let from = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Address("mail.from", e.to_string()))?;
        let reply_to = match &settings.reply_to {
            Some(r) => Some(r.parse().map_err(|e: lettre::address::AddressError| {
                MailError::Address("mail.reply_to", e.to_string())
            })?),
            None => None,
        };
        Ok(Some(Outbox {
            store,
            clock,
            transport,
            settings: settings.clone(),
            from,
            reply_to,
            wakeup,
            metrics: None,
        }))
    }

    /// Counts deliveries and failed attempts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::telemetry::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Delivers forever: every due e-mail as soon as one of the `max_concurrent` places is
    /// free, each bounded by the exchange timeout; between, sleeps until the next due time, a
    /// wake-up, a delivery ending, or [`IDLE_POLL`].
    pub async fn run(self) {
        tracing::info!(
            smtp = %self.settings.smtp_host().unwrap_or_default(),
            max_concurrent = self.settings.max_concurrent,
            timeout_secs = self.settings.timeout_secs,
            "mail on: delivering queued requests"
        );
        let mut in_flight = FuturesUnordered::new();
        let mut taken: HashSet<i64> = HashSet::new();
        loop {
            let now = self.clock.now_ms();
            let room = self.settings.max_concurrent.saturating_sub(taken.len());
            // More due than places: wait for a place rather than for the next due time.
            let mut backlog = room == 0;
            let mut store_failed = false;
            if room > 0 {
                // The rows in flight are leased, no longer due; ask for one more than there is
                // room for, to see a backlog.
                let limit = taken.len() + room + 1;
                match self.store.due_mail(now, limit).await {
                    Ok(due) => {
                        let fresh: Vec<OutboxItem> =
                            due.into_iter().filter(|i| !taken.contains(&i.id)).collect();
                        backlog = fresh.len() > room;
                        let until = now.saturating_add(self.lease_ms());
                        for item in fresh.into_iter().take(room) {
                            // Another replica on the same database may have taken it.
                            match self.store.claim_mail(item.id, now, until).await {
                                Ok(true) => {
                                    taken.insert(item.id);
                                    in_flight.push(self.deliver(item));
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    tracing::error!(error = %e, "outbox: store failed; retrying");
                                    store_failed = true;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: store failed; retrying");
                        store_failed = true;
                    }
                }
            }
            let wait = if backlog {
                IDLE_POLL
            } else if store_failed {
                // The store, not SMTP, failed: wait before trying again rather than spin.
                Duration::from_millis(self.settings.retry_initial_ms)
            } else {
                match self.store.next_mail_due_after(now).await {
                    Ok(Some(at)) => {
                        Duration::from_millis(u64::try_from(at - self.clock.now_ms()).unwrap_or(0))
                            .min(IDLE_POLL)
                    }
                    Ok(None) => IDLE_POLL,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: store failed");
                        Duration::from_millis(self.settings.retry_initial_ms)
                    }
                }
            };
            tokio::select! {
                Some((id, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    taken.remove(&id);
                    if let Err(e) = result {
                        tracing::error!(error = %e, "outbox: store failed recording a delivery");
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = self.wakeup.notified() => {}
            }
        }
    }

    /// How long an e-mail taken for an attempt is kept from other workers
    /// ([`MailSettings::lease`]: by default the whole SMTP exchange and a minute more). A
    /// worker that dies mid-send leaves it due again after that.
    fn lease_ms(&self) -> i64 {
        let lease = self.settings.lease();
        i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// One attempt at `item`, its outcome recorded; the outbox row's id, and an error only
    /// when the store failed.
    async fn deliver(&self, item: OutboxItem) -> (i64, Result<(), MailError>) {
        let id = item.id;
        (id, self.attempt(item).await)
    }

    async fn attempt(&self, item: OutboxItem) -> Result<(), MailError> {
        let id = item.id;
        let attempts = item.attempts() + 1;
        // What the log calls it: the request's ticket, or the e-mail's outbox row.
        let ticket = match &item.mail {
            OutboxMail::Request(r) => r.ticket.clone(),
            OutboxMail::Other(_) => format!("mail-{id}"),
        };
        let limit = self.settings.exchange_timeout();
        let composed = match &item.mail {
            OutboxMail::Request(r) => compose(r, &self.from, self.reply_to.as_ref()),
            OutboxMail::Other(m) => compose_other(id, m, &self.from, self.reply_to.as_ref()),
        };
        // (permanent, error)
        let result: Result<(), (bool, String)> = match composed {
            // lettre bounds the connection only: a server that accepts and then stalls is
            // bounded here, the whole exchange at once.
            Ok(message) => match tokio::time::timeout(limit, self.transport.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err((e.is_permanent(), e.to_string())),
                Err(_) => {
                    Err((false, format!("timed out: the SMTP exchange took more than {}s", limit.as_secs())))
                }
            },
            // The same record composes the same way next time.
            Err(e) => Err((true, e.to_string())),
        };
        let (permanent, error) = match result {
            Ok(()) => {
                let at = self.clock.now_ms();
                self.store.mark_sent(id, at).await?;
                if let Some(m) = &self.metrics {
                    m.mail_sent();
                }
                tracing::info!(ticket = %ticket, attempts, "e-mail delivered");
                return Ok(());
            }
            Err(failure) => failure,
        };
        if let Some(m) = &self.metrics {
            m.mail_failed();
        }
        let delay = self.settings.retry_delay_ms(attempts);
        let now = self.clock.now_ms();
        let retry_at = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        if !permanent {
            tracing::warn!(ticket = %ticket, attempts, retry_in_ms = delay, error = %error, "e-mail not delivered");
            self.store.mark_failed(id, &error, now, retry_at).await?;
            return Ok(());
        }
        let dead_after = self.settings.max_permanent_failures;
        let logged = error.clone();
        let state = self.store.mark_rejected(id, &error, now, retry_at, dead_after).await?;
        if state == MailState::Dead {
            if let Some(m) = &self.metrics {
                m.mail_dead_lettered();
            }
            tracing::error!(ticket = %ticket, attempts, error = %logged, "e-mail rejected for good: dead-lettered, not tried again");
        } else {
            tracing::warn!(ticket = %ticket, attempts, retry_in_ms = delay, error = %logged, "e-mail rejected");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    fn record() -> RequestRecord {
        RequestRecord {
            ticket: "REQ-2026-000042".into(),
            user: crate::domain::Address::parse(crate::domain::Channel::Twilio, "+33612345678").unwrap(),
            kind: "work-certificate".into(),
            kind_label: "Work certificate / Attestation de travail".into(),
            recipient: "hr@example.com".into(),
            first_name: "Élodie".into(),
            last_name: "Garçon".into(),
            employee_id: None,
            employee_email: None,
            department: None,
            details: Some("Two copies\nplease".into()),
            lang: Lang::Fr,
            created_at_ms: 1_795_089_600_000,
            mail: MailState::Queued,
            attempts: 0,
            last_error: None,
            next_attempt_ms: None,
            sent_at_ms: None,
        }
    }

    #[test]
    fn the_message_id_and_date_are_stable_across_composes() {
        let from: Mailbox = "wabot <wabot@example.org>".parse().unwrap();
        let a = String::from_utf8(compose(&record(), &from, None).unwrap().formatted()).unwrap();
        let b = String::from_utf8(compose(&record(), &from, None).unwrap().formatted()).unwrap();
        assert_eq!(a, b);
        assert!(a.contains("Message-ID: <req-2026-000042.1795089600000@example.org>"), "{a}");
    }
}
