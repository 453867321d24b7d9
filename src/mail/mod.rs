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
//! Must not log message bodies or secrets: the SMTP URL may carry a user name, the
//! password comes from `WABOT_SMTP_PASSWORD`; logs name the host and the ticket only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tokio::sync::Notify;

use crate::requests::clean_line;
use crate::store::{Durable, OutboxItem, RequestRecord, StoreError};

/// How many queued e-mails one pass takes.
const BATCH: usize = 16;
/// With nothing queued, the worker still looks at the outbox this often (a request
/// committed by another process, e.g. a second replica, wakes nobody here).
const IDLE_POLL: Duration = Duration::from_secs(30);

/// E-mail settings (TOML `[mail]`, environment `WABOT_SMTP_URL`, `WABOT_SMTP_PASSWORD`,
/// `WABOT_MAIL_FROM`, `WABOT_MAIL_REPLY_TO`).
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
    /// SMTP command timeout, seconds.
    pub timeout_secs: u64,
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
        Ok(())
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
        Ok(Some(builder.timeout(Some(Duration::from_secs(self.timeout_secs.max(1)))).build()))
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
    }

    /// Applies `WABOT_SMTP_URL`, `WABOT_SMTP_PASSWORD`, `WABOT_MAIL_FROM`,
    /// `WABOT_MAIL_REPLY_TO`, `WABOT_MAIL_RETRY_INITIAL_MS`, `WABOT_MAIL_RETRY_MAX_MS`; an
    /// unusable value is reported with its variable's name (never its value).
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

/// `2026-11-25 12:00 UTC`.
pub fn utc(ms: i64) -> String {
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
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
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

    /// Delivers forever: whatever is due, then sleeps until the next due time, a wake-up,
    /// or [`IDLE_POLL`].
    pub async fn run(self) {
        tracing::info!(smtp = %self.settings.smtp_host().unwrap_or_default(), "mail on: delivering queued requests");
        loop {
            if let Err(e) = self.drain().await {
                // The store, not SMTP, failed: wait before trying again rather than spin.
                tracing::error!(error = %e, "outbox: store failed; retrying");
                tokio::time::sleep(Duration::from_millis(self.settings.retry_initial_ms)).await;
                continue;
            }
            let next = self.store.run(|s| s.next_mail_due()).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "outbox: store failed");
                None
            });
            let wait = match next {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(IDLE_POLL),
                None => IDLE_POLL,
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wakeup.notified() => {}
            }
        }
    }

    /// Sends every e-mail due now; the number sent.
    pub async fn drain(&self) -> Result<usize, MailError> {
        let mut sent = 0;
        loop {
            let now = now_ms();
            let due = self.store.run(move |s| s.due_mail(now, BATCH)).await?;
            if due.is_empty() {
                return Ok(sent);
            }
            for item in due {
                if self.deliver(item).await? {
                    sent += 1;
                }
            }
        }
    }

    async fn deliver(&self, item: OutboxItem) -> Result<bool, MailError> {
        let OutboxItem { id, request } = item;
        let ticket = request.ticket.clone();
        let result = match compose(&request, &self.from, self.reply_to.as_ref()) {
            Ok(message) => self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                let at = now_ms();
                self.store.run(move |s| s.mark_sent(id, at)).await?;
                if let Some(m) = &self.metrics {
                    m.mail_sent();
                }
                tracing::info!(ticket = %ticket, attempts = request.attempts + 1, "request e-mailed");
                Ok(true)
            }
            Err(error) => {
                if let Some(m) = &self.metrics {
                    m.mail_failed();
                }
                let attempts = request.attempts + 1;
                let delay = self.settings.retry_delay_ms(attempts);
                let retry_at = now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                tracing::warn!(ticket = %ticket, attempts, retry_in_ms = delay, error = %error, "request e-mail not delivered");
                self.store.run(move |s| s.mark_failed(id, &error, retry_at)).await?;
                Ok(false)
            }
        }
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
    use crate::store::MailState;

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
    fn dates_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_089_600_000), "2026-11-19 12:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn plain_starttls_and_implicit_tls_urls_all_build_a_transport() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://helpdesk@mail.example.com:587?tls=required",
            "smtp://helpdesk@mail.example.com:587?tls=opportunistic",
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
