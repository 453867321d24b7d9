//! The `[mail]` settings: the SMTP server, the sender, retries and bounds. The outbox worker
//! ([`crate::mail`]) reads them; the password comes from the environment only.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// What an e-mail's default lease adds to the delivery's timeout: the time to record the
/// outcome, with room for a slow database.
const DEFAULT_LEASE_MARGIN: Duration = Duration::from_secs(60);

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
    /// How long a worker (a replica) holds an e-mail it is sending, ms: if it dies
    /// mid-send, another sends the e-mail after this. `None`: the exchange's timeout and
    /// a minute more; else it must exceed the timeout.
    pub lease_ms: Option<u64>,
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
            lease_ms: None,
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
            .field("lease_ms", &self.lease_ms)
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
    pub fn validate(&self) -> Result<(), String> {
        self.from.parse::<Mailbox>().map_err(|e| format!("mail.from: not a valid address: {e}"))?;
        if let Some(r) = &self.reply_to {
            r.parse::<Mailbox>().map_err(|e| format!("mail.reply_to: not a valid address: {e}"))?;
        }
        if self.smtp_url.is_some() {
            self.transport()?;
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("mail retry delays: need 0 < retry_initial_ms <= retry_max_ms".into());
        }
        if self.timeout_secs == 0 || self.max_concurrent == 0 || self.max_permanent_failures == 0 {
            return Err(
                "mail.timeout_secs, mail.max_concurrent and mail.max_permanent_failures must be at least 1"
                    .into(),
            );
        }
        if let Some(lease) = self.lease_ms
            && Duration::from_millis(lease) <= self.exchange_timeout()
        {
            return Err(format!(
                "mail.lease_ms ({lease}) must exceed the delivery timeout (mail.timeout_secs = {})",
                self.timeout_secs
            ));
        }
        if let Some(host) = self.cleartext_credentials_host()
            && !self.allow_plaintext_auth
        {
            return Err(format!(
                "the SMTP credentials would go to {host} without TLS: use smtps://… or smtp://…?tls=required \
                 in mail.smtp_url / WABOT_SMTP_URL, or accept it with mail.allow_plaintext_auth = true \
                 (WABOT_SMTP_ALLOW_PLAINTEXT_AUTH=1)"
            ));
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
    /// user name. The error says what is wrong without quoting the URL.
    pub fn transport(&self) -> Result<Option<AsyncSmtpTransport<Tokio1Executor>>, String> {
        let Some(url) = &self.smtp_url else { return Ok(None) };
        let url = url.expose_secret();
        // lettre's errors may quote the URL; they are not passed on.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
            "WABOT_SMTP_URL is not a valid SMTP URL (smtp://host:port, smtp://user@host:587?tls=required, smtps://user@host)"
                .to_owned()
        })?;
        if let Some(password) = &self.smtp_password {
            let user = url::Url::parse(url).map(|u| u.username().to_owned()).unwrap_or_default();
            if user.is_empty() {
                return Err(
                    "WABOT_SMTP_PASSWORD is set but WABOT_SMTP_URL has no user (smtp://user@host…)".into()
                );
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

    /// How long a worker holds an e-mail it sends ([`MailSettings::lease_ms`]).
    pub fn lease(&self) -> Duration {
        match self.lease_ms {
            Some(ms) => Duration::from_millis(ms).max(self.exchange_timeout() + Duration::from_millis(1)),
            None => self.exchange_timeout() + DEFAULT_LEASE_MARGIN,
        }
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
    lease_ms: Option<u64>,
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
        self.lease_ms = f.lease_ms.or(self.lease_ms);
        self.max_concurrent = f.max_concurrent.unwrap_or(self.max_concurrent);
        self.max_permanent_failures = f.max_permanent_failures.unwrap_or(self.max_permanent_failures);
        self.allow_plaintext_auth = f.allow_plaintext_auth.unwrap_or(self.allow_plaintext_auth);
    }

    /// Applies `WABOT_SMTP_URL`, `WABOT_SMTP_PASSWORD`, `WABOT_MAIL_FROM`,
    /// `WABOT_MAIL_REPLY_TO`, `WABOT_MAIL_RETRY_INITIAL_MS`, `WABOT_MAIL_RETRY_MAX_MS`,
    /// `WABOT_MAIL_TIMEOUT_SECS`, `WABOT_MAIL_LEASE_MS`, `WABOT_MAIL_MAX_CONCURRENT`,
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
        if let Some(v) = number("WABOT_MAIL_LEASE_MS")? {
            self.lease_ms = Some(v);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let env = super::super::test_env(&[
            ("WABOT_MAIL_TIMEOUT_SECS", "2"),
            ("WABOT_MAIL_MAX_CONCURRENT", "8"),
            ("WABOT_MAIL_MAX_PERMANENT_FAILURES", "5"),
            ("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "1"),
        ]);
        s.apply_env(&env).unwrap();
        assert_eq!((s.timeout_secs, s.max_concurrent, s.max_permanent_failures), (2, 8, 5));
        assert!(s.allow_plaintext_auth);
        let bad = super::super::test_env(&[("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "maybe")]);
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
