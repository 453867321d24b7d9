//! E-mail for requests: the message composed from a stored request, and the [`Outbox`]
//! worker that delivers queued ones over SMTP (lettre, tokio, rustls).
//!
//! Owns delivery only: a request reaches the outbox in the same transaction that stores it
//! ([`crate::store::Ledger::commit`]). The worker takes due rows, sends each, and marks it
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tokio::sync::Notify;

use crate::domain::{MailState, RequestRecord, clean_line, utc};
use crate::store::{Durable, OutboxItem, StoreError};

/// With nothing queued, the worker still looks at the outbox this often (a request
/// committed by another process, e.g. a second replica, wakes nobody here).
const IDLE_POLL: Duration = Duration::from_secs(30);

/// E-mail settings (TOML `[mail]`, environment `WABOT_SMTP_URL`, `WABOT_SMTP_PASSWORD`,
/// `WABOT_MAIL_*`, `WABOT_SMTP_ALLOW_PLAINTEXT_AUTH`).
#[derive(Clone)]
pub struct MailSettings {
    /// The SMTP server in lettre's URL form: `smtp://127.0.0.1:2525` (plain, a local
    /// relay), `smtp://user@mail.example.com:587?tls=required` (STARTTLS),
    /// `smtps://user@mail.example.com` (implicit TLS). `None`: mail is off, requests queue.
    /// Secret, since a URL may carry credentials.
    pub smtp_url: Option<SecretString>,
    /// The SMTP password, for the URL's user; environment only.
    pub smtp_password: Option<SecretString>,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// Where replies go, if not to the sender.
    pub reply_to: Option<String>,
    /// First retry delay after a failed delivery, ms; doubles at each failure.
    pub retry_initial_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// The longest one delivery may take, seconds: connection, greeting, every command and
    /// the data together.
    pub timeout_secs: u64,
    /// Deliveries in progress at once.
    pub max_concurrent: usize,
    /// Permanent rejections (5xx) after which an e-mail is dead-lettered.
    pub max_permanent_failures: u32,
    /// Accept sending the SMTP credentials over a connection without TLS to a host that is
    /// not loopback (warned about at start).
    pub allow_plaintext_auth: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            smtp_url: None,
            smtp_password: None,
            from: "wabot <wabot@example.com>".into(),
            reply_to: None,
            retry_initial_ms: 5_000,
            retry_max_ms: 15 * 60 * 1000,
            timeout_secs: 30,
            max_concurrent: 4,
            max_permanent_failures: 3,
            allow_plaintext_auth: false,
        }
    }
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_host", &self.smtp_host())
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "[REDACTED]"))
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_permanent_failures", &self.max_permanent_failures)
            .field("allow_plaintext_auth", &self.allow_plaintext_auth)
            .finish()
    }
}

impl MailSettings {
    /// The SMTP server's host and port, safe to log.
    pub fn smtp_host(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.as_ref()?.expose_secret()).ok()?;
        Some(format!("{}:{}", url.host_str()?, url.port().map_or("default".into(), |p| p.to_string())))
    }

    /// Checks the addresses and the URL without connecting.
    pub fn validate(&self) -> Result<(), MailError> {
        self.from.parse::<Mailbox>().map_err(|e| MailError::Address("mail.from", e.to_string()))?;
        if let Some(r) = &self.reply_to {
            r.parse::<Mailbox>().map_err(|e| MailError::Address("mail.reply_to", e.to_string()))?;
        }
        if self.smtp_url.is_some() {
            self.transport()?;
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(MailError::Settings(
                "mail retry delays: need 0 < retry_initial_ms <= retry_max_ms".into(),
            ));
        }
        if self.timeout_secs == 0 || self.max_concurrent == 0 || self.max_permanent_failures == 0 {
            return Err(MailError::Settings(
                "mail.timeout_secs, mail.max_concurrent and mail.max_permanent_failures must be at least 1"
                    .into(),
            ));
        }
        if let Some(host) = self.cleartext_credentials_host()
            && !self.allow_plaintext_auth
        {
            return Err(MailError::Settings(format!(
                "the SMTP credentials would go to {host} without TLS: use smtps://… or smtp://…?tls=required \
                 in mail.smtp_url / WABOT_SMTP_URL, or accept it with mail.allow_plaintext_auth = true \
                 (WABOT_SMTP_ALLOW_PLAINTEXT_AUTH=1)"
            )));
        }
        Ok(())
    }

    /// The server's host and port when credentials would be sent to it over a connection
    /// that TLS does not protect: credentials set (a password in the URL or
    /// `WABOT_SMTP_PASSWORD`), neither `smtps://` nor `?tls=required` (opportunistic
    /// STARTTLS can be stripped by anyone on the path), and a host that is not loopback.
    pub fn cleartext_credentials_host(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.as_ref()?.expose_secret()).ok()?;
        let credentials = url.password().is_some() || self.smtp_password.is_some();
        let tls = url.scheme() == "smtps" || url.query_pairs().any(|(k, v)| k == "tls" && v == "required");
        let loopback = match url.host()? {
            // `smtp:` is not a special scheme to the URL parser: an IPv4 host stays text.
            url::Host::Domain(d) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        (credentials && !tls && !loopback).then(|| self.smtp_host()).flatten()
    }

    /// The transport, when an SMTP URL is set. The password, if any, goes with the URL's
    /// user name.
    pub fn transport(&self) -> Result<Option<AsyncSmtpTransport<Tokio1Executor>>, MailError> {
        let Some(url) = &self.smtp_url else { return Ok(None) };
        let url = url.expose_secret();
        // lettre's errors may quote the URL; they are not passed on.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
            MailError::Settings(
                "WABOT_SMTP_URL is not a valid SMTP URL (smtp://host:port, smtp://user@host:587?tls=required, smtps://user@host)"
                    .into(),
            )
        })?;
        if let Some(password) = &self.smtp_password {
            let user = url::Url::parse(url).map(|u| u.username().to_owned()).unwrap_or_default();
            if user.is_empty() {
                return Err(MailError::Settings(
                    "WABOT_SMTP_PASSWORD is set but WABOT_SMTP_URL has no user (smtp://user@host…)".into(),
                ));
            }
            let user = percent_decode(&user);
            builder = builder.credentials(Credentials::new(user, password.expose_secret().to_owned()));
        }
        Ok(Some(builder.timeout(Some(self.exchange_timeout())).build()))
    }

    /// The bound on one whole delivery.
    pub fn exchange_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// The retry delay after `attempts` failures (1 for the first).
    pub fn retry_delay_ms(&self, attempts: u32) -> u64 {
        let doubled = self.retry_initial_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
        doubled.min(self.retry_max_ms)
    }
}

/// The `[mail]` table of the configuration file. The password is never read from a file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailFile {
    smtp_url: Option<String>,
    from: Option<String>,
    reply_to: Option<String>,
    retry_initial_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    timeout_secs: Option<u64>,
    max_concurrent: Option<usize>,
    max_permanent_failures: Option<u32>,
    allow_plaintext_auth: Option<bool>,
}

impl MailSettings {
    /// Applies the file's `[mail]` table.
    pub fn apply_file(&mut self, f: MailFile) {
        if let Some(u) = f.smtp_url {
            self.smtp_url = Some(SecretString::from(u));
        }
        self.from = f.from.unwrap_or(std::mem::take(&mut self.from));
        self.reply_to = f.reply_to.or(self.reply_to.take());
        self.retry_initial_ms = f.retry_initial_ms.unwrap_or(self.retry_initial_ms);
        self.retry_max_ms = f.retry_max_ms.unwrap_or(self.retry_max_ms);
        self.timeout_secs = f.timeout_secs.unwrap_or(self.timeout_secs);
        self.max_concurrent = f.max_concurrent.unwrap_or(self.max_concurrent);
        self.max_permanent_failures = f.max_permanent_failures.unwrap_or(self.max_permanent_failures);
        self.allow_plaintext_auth = f.allow_plaintext_auth.unwrap_or(self.allow_plaintext_auth);
    }

    /// Applies `WABOT_SMTP_URL`, `WABOT_SMTP_PASSWORD`, `WABOT_MAIL_FROM`,
    /// `WABOT_MAIL_REPLY_TO`, `WABOT_MAIL_RETRY_INITIAL_MS`, `WABOT_MAIL_RETRY_MAX_MS`,
    /// `WABOT_MAIL_TIMEOUT_SECS`, `WABOT_MAIL_MAX_CONCURRENT`,
    /// `WABOT_MAIL_MAX_PERMANENT_FAILURES`, `WABOT_SMTP_ALLOW_PLAINTEXT_AUTH`; an unusable
    /// value is reported with its variable's name (never its value).
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = set("WABOT_SMTP_URL") {
            self.smtp_url = Some(SecretString::from(v));
        }
        if let Some(v) = set("WABOT_SMTP_PASSWORD") {
            self.smtp_password = Some(SecretString::from(v));
        }
        if let Some(v) = set("WABOT_MAIL_FROM") {
            self.from = v;
        }
        if let Some(v) = set("WABOT_MAIL_REPLY_TO") {
            self.reply_to = Some(v);
        }
        let number = |name: &'static str| -> Result<Option<u64>, (&'static str, String)> {
            set(name).map(|v| v.trim().parse().map_err(|e| (name, format!("{e}")))).transpose()
        };
        if let Some(v) = number("WABOT_MAIL_RETRY_INITIAL_MS")? {
            self.retry_initial_ms = v;
        }
        if let Some(v) = number("WABOT_MAIL_RETRY_MAX_MS")? {
            self.retry_max_ms = v;
        }
        if let Some(v) = number("WABOT_MAIL_TIMEOUT_SECS")? {
            self.timeout_secs = v;
        }
        let small = |name: &'static str, v: u64| u32::try_from(v).map_err(|e| (name, e.to_string()));
        if let Some(v) = number("WABOT_MAIL_MAX_CONCURRENT")? {
            self.max_concurrent = small("WABOT_MAIL_MAX_CONCURRENT", v)? as usize;
        }
        if let Some(v) = number("WABOT_MAIL_MAX_PERMANENT_FAILURES")? {
            self.max_permanent_failures = small("WABOT_MAIL_MAX_PERMANENT_FAILURES", v)?;
        }
        if let Some(v) = set("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH") {
            self.allow_plaintext_auth = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "expected 1 or 0".into())),
            };
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}

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
    let number = req.user.strip_prefix("whatsapp:").unwrap_or(&req.user);
    out.push_str(&format!("WhatsApp: {}\n", line(number)));
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
    store: Durable,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: MailSettings,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    wakeup: Arc<Notify>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
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
        store: Durable,
        wakeup: Arc<Notify>,
    ) -> Result<Option<Outbox>, MailError> {
        settings.validate()?;
        let Some(transport) = settings.transport()? else { return Ok(None) };
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
            transport,
            settings: settings.clone(),
            from,
            reply_to,
            wakeup,
            metrics: None,
        }))
    }

    /// Counts deliveries and failed attempts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
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
            let now = now_ms();
            let room = self.settings.max_concurrent.saturating_sub(taken.len());
            // More due than places: wait for a place rather than for the next due time.
            let mut backlog = room == 0;
            let mut store_failed = false;
            if room > 0 {
                // The rows in flight are still queued and due: ask for enough to see past them.
                let limit = taken.len() + room + 1;
                match self.store.run(move |s| s.due_mail(now, limit)).await {
                    Ok(due) => {
                        let fresh: Vec<OutboxItem> =
                            due.into_iter().filter(|i| !taken.contains(&i.id)).collect();
                        backlog = fresh.len() > room;
                        for item in fresh.into_iter().take(room) {
                            taken.insert(item.id);
                            in_flight.push(self.deliver(item));
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
                match self.store.run(move |s| s.next_mail_due_after(now)).await {
                    Ok(Some(at)) => {
                        Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(IDLE_POLL)
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

    /// One attempt at `item`, its outcome recorded; the outbox row's id, and an error only
    /// when the store failed.
    async fn deliver(&self, item: OutboxItem) -> (i64, Result<(), MailError>) {
        let id = item.id;
        (id, self.attempt(item).await)
    }

    async fn attempt(&self, item: OutboxItem) -> Result<(), MailError> {
        let OutboxItem { id, request } = item;
        let ticket = request.ticket.clone();
        let limit = self.settings.exchange_timeout();
        // (permanent, error)
        let result: Result<(), (bool, String)> = match compose(&request, &self.from, self.reply_to.as_ref()) {
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
                let at = now_ms();
                self.store.run(move |s| s.mark_sent(id, at)).await?;
                if let Some(m) = &self.metrics {
                    m.mail_sent();
                }
                tracing::info!(ticket = %ticket, attempts = request.attempts + 1, "request e-mailed");
                return Ok(());
            }
            Err(failure) => failure,
        };
        if let Some(m) = &self.metrics {
            m.mail_failed();
        }
        let attempts = request.attempts + 1;
        let delay = self.settings.retry_delay_ms(attempts);
        let retry_at = now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        if !permanent {
            tracing::warn!(ticket = %ticket, attempts, retry_in_ms = delay, error = %error, "request e-mail not delivered");
            self.store.run(move |s| s.mark_failed(id, &error, retry_at)).await?;
            return Ok(());
        }
        let dead_after = self.settings.max_permanent_failures;
        let logged = error.clone();
        let state = self.store.run(move |s| s.mark_rejected(id, &error, retry_at, dead_after)).await?;
        if state == MailState::Dead {
            if let Some(m) = &self.metrics {
                m.mail_dead_lettered();
            }
            tracing::error!(ticket = %ticket, attempts, error = %logged, "request e-mail rejected for good: dead-lettered, not tried again");
        } else {
            tracing::warn!(ticket = %ticket, attempts, retry_in_ms = delay, error = %logged, "request e-mail rejected");
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    fn record() -> RequestRecord {
        RequestRecord {
            ticket: "REQ-2026-000042".into(),
            user: "whatsapp:+33612345678".into(),
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

    #[test]
    fn retries_double_up_to_the_cap() {
        let s = MailSettings { retry_initial_ms: 100, retry_max_ms: 1000, ..MailSettings::default() };
        let delays: Vec<u64> = (1..=6).map(|a| s.retry_delay_ms(a)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.retry_delay_ms(u32::MAX), 1000);
    }

    #[test]
    fn plain_starttls_and_implicit_tls_urls_all_build_a_transport() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://helpdesk@mail.example.com:587?tls=required",
            "smtp://mail.example.com:587?tls=opportunistic",
            "smtps://helpdesk@mail.example.com",
            "smtps://help%40desk@mail.example.com:465",
        ] {
            let s = MailSettings {
                smtp_url: Some(SecretString::from(url)),
                smtp_password: url.contains('@').then(|| SecretString::from("pw")),
                ..MailSettings::default()
            };
            s.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(s.transport().unwrap().is_some());
        }
        let bad = MailSettings { smtp_url: Some(SecretString::from("imap://x")), ..MailSettings::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("not a valid SMTP URL"));
        assert!(MailSettings::default().transport().unwrap().is_none(), "no URL: mail off");
        assert_eq!(percent_decode("help%40desk"), "help@desk");
    }

    #[test]
    fn credentials_without_tls_are_refused_unless_on_loopback_or_explicitly_allowed() {
        let settings = |url: &str, password: Option<&str>| MailSettings {
            smtp_url: Some(SecretString::from(url)),
            smtp_password: password.map(SecretString::from),
            ..MailSettings::default()
        };
        for url in [
            "smtp://helpdesk@mail.example.com:587",
            "smtp://helpdesk@mail.example.com:587?tls=opportunistic",
            "smtp://helpdesk@10.0.0.5:25",
        ] {
            let s = settings(url, Some("hunter22"));
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("without TLS"), "{url}: {err}");
            assert!(
                err.contains("mail.allow_plaintext_auth") && err.contains("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH"),
                "{err}"
            );
            assert!(!err.contains("hunter22"), "{err}");
            let allowed = MailSettings { allow_plaintext_auth: true, ..s };
            allowed.validate().unwrap();
            assert!(allowed.cleartext_credentials_host().is_some(), "warned at start");
        }
        // A password in the (environment's) URL counts too.
        let err =
            settings("smtp://helpdesk:pw@mail.example.com:25", None).validate().unwrap_err().to_string();
        assert!(err.contains("without TLS"), "{err}");
        for url in [
            "smtp://helpdesk@127.0.0.1:2525",
            "smtp://helpdesk@localhost:2525",
            "smtp://helpdesk@[::1]:2525",
            "smtp://helpdesk@mail.example.com:587?tls=required",
            "smtps://helpdesk@mail.example.com",
        ] {
            let s = settings(url, Some("hunter22"));
            s.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(s.cleartext_credentials_host(), None, "{url}");
        }
        // No credentials, nothing to protect.
        settings("smtp://mail.example.com:25", None).validate().unwrap();
    }

    #[test]
    fn the_mail_settings_come_from_the_environment_too() {
        let mut s = MailSettings::default();
        let env = crate::config::test_env(&[
            ("WABOT_MAIL_TIMEOUT_SECS", "2"),
            ("WABOT_MAIL_MAX_CONCURRENT", "8"),
            ("WABOT_MAIL_MAX_PERMANENT_FAILURES", "5"),
            ("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "1"),
        ]);
        s.apply_env(&env).unwrap();
        assert_eq!((s.timeout_secs, s.max_concurrent, s.max_permanent_failures), (2, 8, 5));
        assert!(s.allow_plaintext_auth);
        let bad = crate::config::test_env(&[("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "maybe")]);
        assert_eq!(s.apply_env(&bad).unwrap_err().0, "WABOT_SMTP_ALLOW_PLAINTEXT_AUTH");
        assert!(MailSettings { max_permanent_failures: 0, ..MailSettings::default() }.validate().is_err());
    }

    #[test]
    fn a_password_without_a_user_is_refused_and_never_printed() {
        let s = MailSettings {
            smtp_url: Some(SecretString::from("smtp://mail.example.com:587?tls=required")),
            smtp_password: Some(SecretString::from("hunter22")),
            ..MailSettings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("no user"), "{err}");
        assert!(!format!("{s:?}").contains("hunter22"));
        let s = MailSettings {
            smtp_url: Some(SecretString::from("smtp://u:pw-in-url@h:25")),
            ..MailSettings::default()
        };
        assert!(!format!("{s:?}").contains("pw-in-url"));
        assert_eq!(s.smtp_host().as_deref(), Some("h:25"));
    }
}
