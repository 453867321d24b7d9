//! Typed settings: defaults, then an optional TOML file, then environment variables, then
//! command-line flags (applied by the binary). Secrets come from the environment only and
//! are wrapped so they never print.
//!
//! | setting | TOML key | environment | default |
//! |---|---|---|---|
//! | listen address | `listen` | `WABOT_LISTEN` | `127.0.0.1:5000` |
//! | corpus path | `corpus` | `WABOT_CORPUS` | the embedded corpus |
//! | public base URL | `public_url` | `WABOT_PUBLIC_URL` | none (the listen address) |
//! | semantic scorer beside the lexical engine | `matching.semantic` | `WABOT_SEMANTIC` | `on` |
//! | match threshold | `threshold` | `WABOT_THRESHOLD` | `0.5` (fused confidence); `0.25` (cosine) with the semantic scorer off |
//! | max request body | `max_body_bytes` | `WABOT_MAX_BODY_BYTES` | `65536` |
//! | Twilio auth token | — | `TWILIO_AUTH_TOKEN` | none: signatures unchecked, loopback only |
//! | Twilio SharedKey secret (webhooks signed per a Webhook Setting) | — | `TWILIO_WEBHOOK_SHARED_KEY` | none: such webhooks refused |
//! | admin API token | — | `WABOT_ADMIN_TOKEN` | none: no admin API |
//! | journal of live FAQ changes | `faq_journal` | `WABOT_FAQ_JOURNAL` | `data/faq-journal.jsonl` |
//! | corpus polling period, seconds | `corpus_poll_secs` | `WABOT_CORPUS_POLL_SECS` | `5` (0: off) |
//! | the durable store: a SQLite file, or a `postgres://user@host:port/db` URL (sessions, requests, outbox) | `db` | `WABOT_DB` | `data/wabot.db` |
//! | PostgreSQL password, when the URL has none | — | `WABOT_DB_PASSWORD` | none |
//! | SMTP server (lettre URL) | `mail.smtp_url` | `WABOT_SMTP_URL` | none: mail off, requests queue |
//! | SMTP password | — | `WABOT_SMTP_PASSWORD` | none |
//! | sender | `mail.from` | `WABOT_MAIL_FROM` | `wabot <wabot@example.com>` |
//! | Reply-To | `mail.reply_to` | `WABOT_MAIL_REPLY_TO` | none |
//! | mail retry delays, ms | `mail.retry_initial_ms`, `mail.retry_max_ms` | `WABOT_MAIL_RETRY_INITIAL_MS`, `WABOT_MAIL_RETRY_MAX_MS` | `5000`, `900000` |
//! | one delivery's whole SMTP exchange, seconds | `mail.timeout_secs` | `WABOT_MAIL_TIMEOUT_SECS` | `30` |
//! | deliveries at once | `mail.max_concurrent` | `WABOT_MAIL_MAX_CONCURRENT` | `4` |
//! | permanent rejections before the dead letter | `mail.max_permanent_failures` | `WABOT_MAIL_MAX_PERMANENT_FAILURES` | `3` |
//! | SMTP credentials without TLS to a non-loopback host | `mail.allow_plaintext_auth` | `WABOT_SMTP_ALLOW_PLAINTEXT_AUTH` | `false` |
//! | request types | `[[requests.types]]` | — | [`requests::default_types`] |
//! | request form idle expiry, seconds | `requests.idle_secs` | `WABOT_REQUEST_IDLE_SECS` | `1800` |
//! | badge OCR | `[badge]` table | `WABOT_OCR*`, `WABOT_DIRECTORY` | see [`BadgeSettings`] |
//! | Twilio's API base, media hosts, account | `[twilio]` table (`api_base`, `media_redirect_hosts`; once `[badge] twilio_api_base`, `[badge] media_redirect_hosts`, still read with a notice) | `WABOT_TWILIO_API_BASE`, `WABOT_MEDIA_REDIRECT_HOSTS`, `TWILIO_ACCOUNT_SID` | see [`TwilioSettings`] |
//! | Meta's WhatsApp Cloud API | `[meta]` table (`graph_base`, `phone_number_id`, `[meta.templates.<key>]` `name`, `language`) | `WABOT_META_GRAPH_BASE`, `META_PHONE_NUMBER_ID`, `META_ACCESS_TOKEN`, `META_APP_SECRET`, `META_VERIFY_TOKEN` | off; see [`MetaSettings`] |
//! | outbound queue's sender | `[outbound]` table (`max_concurrent`, `lease_ms`, `retry_initial_ms`, `retry_max_ms`, `max_attempts`) | `WABOT_OUTBOUND_*` | see [`OutboundSettings`] |
//! | request timeout, ms | `limits.request_timeout_ms` | `WABOT_REQUEST_TIMEOUT_MS` | `10000` |
//! | requests in flight before shedding (503) | `limits.max_in_flight` | `WABOT_MAX_IN_FLIGHT` | `1024` |
//! | messages per sender per minute (0: off) | `limits.sender_per_minute` | `WABOT_SENDER_PER_MINUTE` | `30` |
//! | a sender's burst | `limits.sender_burst` | `WABOT_SENDER_BURST` | `10` |
//! | header read and idle keep-alive bound, ms | `limits.header_read_timeout_ms` | `WABOT_HEADER_READ_TIMEOUT_MS` | `10000` |
//! | open connections (0: the open-file limit less 256) | `limits.max_connections` | `WABOT_MAX_CONNECTIONS` | `0` |
//! | log format (`human`, `json`) | `log_format` | `WABOT_LOG_FORMAT` | `human` |
//! | web console (`on`, `off`; default: on when an account exists) | `console.enabled` | `WABOT_CONSOLE` | — |
//! | console sign-in lifetime, hours | `console.session_hours` | — | `12` |
//! | failed sign-ins per account and per address before refusal | `console.max_failures` | — | `5` |
//! | their window, seconds | `console.failure_window_secs` | — | `900` |
//! | a handover returns to the bot after, minutes idle | `console.handoff_idle_mins` | — | `240` |
//! | office hours told to the employee | `console.office_hours_en`, `console.office_hours_fr` | — | Monday to Friday, 9:00 to 17:00 |
//! | transcripts kept, days | `console.transcript_days` | — | `30` |
//! | where a handover is e-mailed | `console.hr_email` | `WABOT_HR_EMAIL` | none: no e-mail |

pub mod badge;
pub mod console;
pub mod database;
pub mod limits;
pub mod mail;
pub mod meta;
pub mod outbound;
pub mod requests;
pub mod twilio;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

pub use badge::BadgeSettings;
pub use console::ConsoleSettings;
pub use database::PostgresSettings;
pub use limits::LimitSettings;
pub use mail::MailSettings;
pub use meta::MetaSettings;
pub use outbound::OutboundSettings;
pub use requests::RequestSettings;
pub use twilio::TwilioSettings;

/// Names of the secrets that must never appear in a configuration file.
const SECRET_KEYS: &[&str] = &[
    "twilio_auth_token",
    "auth_token",
    "admin_token",
    "wabot_admin_token",
    "smtp_password",
    "db_password",
    "password",
    "twilio_webhook_shared_key",
    "webhook_shared_key",
    "shared_key",
    "access_token",
    "app_secret",
    "verify_token",
];

/// The shortest admin token accepted: anything shorter could be guessed.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// What can be wrong with the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable holds an unusable value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A secret was put in a file.
    #[error("configuration file {path}: `{key}` is a secret; set it in the environment instead")]
    SecretInFile {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A URL in the file carries a password.
    #[error(
        "configuration file {path}: `{key}` holds a password; remove it from the URL (the user name may stay) \
         and set {env} in the environment instead"
    )]
    PasswordInUrl {
        /// The file.
        path: PathBuf,
        /// The key holding the URL.
        key: &'static str,
        /// The environment variable to use instead.
        env: &'static str,
    },
    /// The settings contradict each other.
    #[error("{0}")]
    Invalid(String),
}

/// All settings of a running wabot.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Corpus directory or file; `None` for the embedded corpus.
    pub corpus: Option<PathBuf>,
    /// The public base URL Twilio calls (e.g. `https://abc.ngrok.app`); `/bot` is appended.
    pub public_url: Option<String>,
    /// Match confidence threshold; `None`: the default of the matching in use (see
    /// [`Settings::threshold`]).
    pub threshold: Option<f32>,
    /// Whether the semantic scorer runs beside the lexical engine (`[matching] semantic`,
    /// `WABOT_SEMANTIC`: `on` or `off`).
    pub semantic: bool,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Twilio auth token: when set, every webhook must carry a valid signature.
    pub twilio_auth_token: Option<SecretString>,
    /// The secret of a Twilio SharedKey: webhooks carrying
    /// `X-Twilio-Webhooks-Signature-Settings` are checked with it.
    pub twilio_webhook_shared_key: Option<SecretString>,
    /// Bearer token of the admin API (`/admin/faq`); without it the API does not exist.
    pub admin_token: Option<SecretString>,
    /// The journal of FAQ changes made through the admin API, replayed at startup.
    pub faq_journal: PathBuf,
    /// How often the corpus files are checked for changes, in seconds; 0 never.
    pub corpus_poll_secs: u64,
    /// The SQLite database: sessions, requests, the e-mail outbox, processed message ids.
    /// Unused when [`Settings::postgres`] is set.
    pub db: PathBuf,
    /// The PostgreSQL database used instead of the SQLite file, when `WABOT_DB` (`db`) is
    /// a `postgres://` URL.
    pub postgres: Option<PostgresSettings>,
    /// E-mail delivery of requests.
    pub mail: MailSettings,
    /// The request form and its types.
    pub requests: RequestSettings,
    /// Badge OCR (`[badge]` in the file; see [`BadgeSettings`]).
    pub badge: BadgeSettings,
    /// Twilio's API, media and account (`[twilio]` in the file; see [`TwilioSettings`]).
    pub twilio: TwilioSettings,
    /// Meta's WhatsApp Cloud API (`[meta]` in the file; see [`MetaSettings`]).
    pub meta: MetaSettings,
    /// The outbound queue's sender worker (`[outbound]`; see [`OutboundSettings`]).
    pub outbound: OutboundSettings,
    /// Keys the file still uses under an old name, each with its new one: logged once
    /// logging is set up.
    pub deprecations: Vec<String>,
    /// Timeout, load shedding, per-sender rate limit.
    pub limits: LimitSettings,
    /// The web console.
    pub console: ConsoleSettings,
    /// How log lines are written.
    pub log_format: crate::telemetry::LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            corpus: None,
            public_url: None,
            threshold: None,
            semantic: true,
            max_body_bytes: 64 * 1024,
            twilio_auth_token: None,
            twilio_webhook_shared_key: None,
            admin_token: None,
            faq_journal: PathBuf::from("data/faq-journal.jsonl"),
            corpus_poll_secs: 5,
            db: PathBuf::from("data/wabot.db"),
            postgres: None,
            mail: MailSettings::default(),
            requests: RequestSettings::default(),
            badge: BadgeSettings::default(),
            twilio: TwilioSettings::default(),
            meta: MetaSettings::default(),
            outbound: OutboundSettings::default(),
            deprecations: Vec::new(),
            limits: LimitSettings::default(),
            console: ConsoleSettings::default(),
            log_format: crate::telemetry::LogFormat::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    corpus: Option<PathBuf>,
    public_url: Option<String>,
    threshold: Option<f32>,
    matching: Option<MatchingFile>,
    max_body_bytes: Option<usize>,
    faq_journal: Option<PathBuf>,
    corpus_poll_secs: Option<u64>,
    db: Option<String>,
    mail: Option<mail::MailFile>,
    requests: Option<requests::RequestsFile>,
    badge: Option<badge::BadgeFile>,
    twilio: Option<twilio::TwilioFile>,
    meta: Option<meta::MetaFile>,
    outbound: Option<outbound::OutboundFile>,
    limits: Option<limits::LimitsFile>,
    console: Option<console::ConsoleFile>,
    log_format: Option<String>,
}

/// The `[matching]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MatchingFile {
    semantic: Option<String>,
}

fn parse_on_off(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("semantic must be \"on\" or \"off\", got {other:?}")),
    }
}

impl Settings {
    /// The confidence threshold in force: the configured one, else the default of the
    /// matching in use (the fused confidence's with the semantic scorer, the lexical
    /// cosine's without).
    pub fn threshold(&self) -> f32 {
        self.threshold.unwrap_or(if self.semantic {
            crate::engine::hybrid::DEFAULT_THRESHOLD
        } else {
            crate::engine::EngineParams::default().threshold
        })
    }

    /// Loads settings from the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with(file, |k| std::env::var(k).ok())
    }

    /// Loads settings from the optional file and the given environment lookup.
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            let f = parse_file(path, &text)?;
            if let Some(l) = f.listen {
                s.listen =
                    parse_addr(&l).map_err(|message| ConfigError::File { path: path.to_owned(), message })?;
            }
            // A relative path in a file is relative to that file.
            let relative = |p: PathBuf| path.parent().map_or(p.clone(), |dir| dir.join(&p));
            s.corpus = f.corpus.map(relative);
            s.faq_journal = f.faq_journal.map_or(s.faq_journal, relative);
            s.corpus_poll_secs = f.corpus_poll_secs.unwrap_or(s.corpus_poll_secs);
            s.public_url = f.public_url.or(s.public_url);
            s.threshold = f.threshold.or(s.threshold);
            if let Some(v) = f.matching.and_then(|m| m.semantic) {
                s.semantic = parse_on_off(&v)
                    .map_err(|message| ConfigError::File { path: path.to_owned(), message })?;
            }
            s.max_body_bytes = f.max_body_bytes.unwrap_or(s.max_body_bytes);
            match f.db {
                Some(url) if database::is_postgres_url(&url) => {
                    s.postgres = Some(PostgresSettings { url: SecretString::from(url), password: None });
                }
                Some(p) => s.db = relative(PathBuf::from(p)),
                None => {}
            }
            s.mail.apply_file(f.mail.unwrap_or_default());
            s.requests.apply_file(f.requests.unwrap_or_default());
            let mut twilio = f.twilio.unwrap_or_default();
            if let Some(mut badge) = f.badge {
                if let Some(old) = badge.twilio_api_base.take() {
                    s.deprecations.push("[badge] twilio_api_base is now [twilio] api_base".into());
                    twilio.api_base = twilio.api_base.or(Some(old));
                }
                if let Some(old) = badge.media_redirect_hosts.take() {
                    s.deprecations
                        .push("[badge] media_redirect_hosts is now [twilio] media_redirect_hosts".into());
                    twilio.media_redirect_hosts = twilio.media_redirect_hosts.or(Some(old));
                }
                s.badge.apply_file(badge, relative);
            }
            s.twilio.apply_file(twilio);
            s.meta.apply_file(f.meta.unwrap_or_default());
            s.outbound.apply_file(f.outbound.unwrap_or_default());
            s.limits.apply_file(f.limits.unwrap_or_default());
            s.console.apply_file(f.console.unwrap_or_default());
            if let Some(v) = f.log_format {
                s.log_format =
                    v.parse().map_err(|message| ConfigError::File { path: path.to_owned(), message })?;
            }
        }
        let env_err = |name: &'static str| move |message: String| ConfigError::Env { name, message };
        if let Some(v) = env("WABOT_LISTEN") {
            s.listen = parse_addr(&v).map_err(env_err("WABOT_LISTEN"))?;
        }
        if let Some(v) = env("WABOT_CORPUS") {
            s.corpus = Some(PathBuf::from(v));
        }
        if let Some(v) = env("WABOT_PUBLIC_URL") {
            s.public_url = Some(v);
        }
        if let Some(v) = env("WABOT_THRESHOLD") {
            s.threshold = Some(v.parse().map_err(|e| env_err("WABOT_THRESHOLD")(format!("{e}")))?);
        }
        if let Some(v) = env("WABOT_SEMANTIC") {
            s.semantic = parse_on_off(&v).map_err(env_err("WABOT_SEMANTIC"))?;
        }
        if let Some(v) = env("WABOT_MAX_BODY_BYTES") {
            s.max_body_bytes = v.parse().map_err(|e| env_err("WABOT_MAX_BODY_BYTES")(format!("{e}")))?;
        }
        if let Some(v) = env("WABOT_FAQ_JOURNAL") {
            s.faq_journal = PathBuf::from(v);
        }
        if let Some(v) = env("WABOT_CORPUS_POLL_SECS") {
            s.corpus_poll_secs = v.parse().map_err(|e| env_err("WABOT_CORPUS_POLL_SECS")(format!("{e}")))?;
        }
        if let Some(v) = env("TWILIO_AUTH_TOKEN").filter(|v| !v.is_empty()) {
            s.twilio_auth_token = Some(SecretString::from(v));
        }
        if let Some(v) = env("TWILIO_WEBHOOK_SHARED_KEY").filter(|v| !v.is_empty()) {
            s.twilio_webhook_shared_key = Some(SecretString::from(v));
        }
        if let Some(v) = env("WABOT_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            s.admin_token = Some(SecretString::from(v));
        }
        if let Some(v) = env("WABOT_DB").filter(|v| !v.is_empty()) {
            if database::is_postgres_url(&v) {
                s.postgres = Some(PostgresSettings { url: SecretString::from(v), password: None });
            } else {
                s.db = PathBuf::from(v);
                s.postgres = None;
            }
        }
        if let Some(pg) = &mut s.postgres {
            pg.password = env("WABOT_DB_PASSWORD").filter(|v| !v.is_empty()).map(SecretString::from);
        }
        s.mail.apply_env(&env).map_err(|(name, message)| ConfigError::Env { name, message })?;
        s.requests.apply_env(&env).map_err(|(name, message)| ConfigError::Env { name, message })?;
        s.badge.apply_env(&env)?;
        s.twilio.apply_env(&env);
        s.meta.apply_env(&env);
        s.outbound.apply_env(&env).map_err(|(name, message)| ConfigError::Env { name, message })?;
        s.limits.apply_env(&env).map_err(|(name, message)| ConfigError::Env { name, message })?;
        s.console.apply_env(&env).map_err(|(name, message)| ConfigError::Env { name, message })?;
        if let Some(v) = env("WABOT_LOG_FORMAT") {
            s.log_format = v.parse().map_err(env_err("WABOT_LOG_FORMAT"))?;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks values that each parse but may still be wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.twilio.validate()?;
        self.meta.validate()?;
        self.outbound.validate().map_err(ConfigError::Invalid)?;
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(ConfigError::Invalid(format!("threshold must be between 0 and 1, got {t}")));
        }
        if let Some(token) = &self.admin_token
            && token.expose_secret().chars().count() < MIN_ADMIN_TOKEN_LEN
        {
            return Err(ConfigError::Invalid(format!(
                "WABOT_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters"
            )));
        }
        if self.faq_journal.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("faq_journal must be a file path".into()));
        }
        self.mail.validate().map_err(ConfigError::Invalid)?;
        self.requests.validate().map_err(ConfigError::Invalid)?;
        self.limits.validate().map_err(ConfigError::Invalid)?;
        self.console.validate().map_err(ConfigError::Invalid)?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("max_body_bytes must be at least 1024".into()));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(format!(
                "public URL must start with https:// or http://, got {url:?}"
            )));
        }
        Ok(())
    }

    /// The URL Twilio signs for the webhook: the public base URL followed by `/bot`.
    pub fn webhook_url(&self) -> String {
        match &self.public_url {
            Some(base) => format!("{}/bot", base.trim_end_matches('/')),
            None => format!("http://{}/bot", self.listen),
        }
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    let value: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.message().to_owned() })?;
    // Secrets are refused at the top level and in tables (`[mail] smtp_password`).
    let tables = value.values().filter_map(|v| v.as_table());
    for table in std::iter::once(&value).chain(tables) {
        if let Some(key) = table.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::SecretInFile { path: path.to_owned(), key: key.clone() });
        }
    }
    let smtp_url = value.get("mail").and_then(|m| m.get("smtp_url")).and_then(|v| v.as_str());
    if smtp_url.and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| u.password().is_some()) {
        return Err(ConfigError::PasswordInUrl {
            path: path.to_owned(),
            key: "mail.smtp_url",
            env: "WABOT_SMTP_PASSWORD",
        });
    }
    let db = value.get("db").and_then(|v| v.as_str());
    if db.is_some_and(|u| database::is_postgres_url(u) && database::has_password(u)) {
        return Err(ConfigError::PasswordInUrl {
            path: path.to_owned(),
            key: "db",
            env: "WABOT_DB_PASSWORD",
        });
    }
    toml::from_str(text)
        .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.message().to_owned() })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an address like 127.0.0.1:5000"))
}

/// An environment made of `pairs`, for the settings' tests here and in other modules.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::test_env as env;
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_port_5000() {
        let s = Settings::load_with(None, env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:5000");
        assert!(s.twilio_auth_token.is_none());
        assert_eq!(s.webhook_url(), "http://127.0.0.1:5000/bot");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nthreshold = 0.4\ncorpus = \"faq\"\n").unwrap();
        let s = Settings::load_with(
            Some(&path),
            env(&[("WABOT_THRESHOLD", "0.5"), ("TWILIO_AUTH_TOKEN", "t0k")]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 7000);
        assert_eq!(s.threshold, Some(0.5));
        assert_eq!(s.corpus, Some(dir.path().join("faq")));
        assert_eq!(s.twilio_auth_token.unwrap().expose_secret(), "t0k");
    }

    #[test]
    fn the_semantic_scorer_is_on_by_default_and_its_threshold_follows_the_matching_in_use() {
        let s = Settings::load_with(None, env(&[])).unwrap();
        assert!(s.semantic);
        assert_eq!(s.threshold(), crate::engine::hybrid::DEFAULT_THRESHOLD);
        let off = Settings::load_with(None, env(&[("WABOT_SEMANTIC", "off")])).unwrap();
        assert!(!off.semantic);
        assert_eq!(off.threshold(), crate::engine::EngineParams::default().threshold);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "threshold = 0.7\n[matching]\nsemantic = \"off\"\n").unwrap();
        let file = Settings::load_with(Some(&path), env(&[])).unwrap();
        assert!(!file.semantic);
        assert_eq!(file.threshold(), 0.7);
        let err = Settings::load_with(None, env(&[("WABOT_SEMANTIC", "maybe")])).unwrap_err().to_string();
        assert!(err.contains("WABOT_SEMANTIC") && err.contains("\"on\" or \"off\""), "{err}");
    }

    #[test]
    fn a_secret_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "twilio_auth_token = \"abc\"\n").unwrap();
        let err = Settings::load_with(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("set it in the environment"), "{err}");
        assert!(!err.contains("abc"));
    }

    #[test]
    fn a_password_inside_the_files_smtp_url_is_refused_naming_the_key_and_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "[mail]\nsmtp_url = \"smtps://helpdesk:s3cr%40t-pw@mail.example.com\"\n")
            .unwrap();
        let err = Settings::load_with(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("`mail.smtp_url` holds a password"), "{err}");
        assert!(err.contains("WABOT_SMTP_PASSWORD"), "{err}");
        assert!(!err.contains("s3cr"), "the password is not repeated: {err}");

        // A user name alone is fine; the password comes from the environment.
        std::fs::write(&path, "[mail]\nsmtp_url = \"smtps://helpdesk@mail.example.com\"\n").unwrap();
        let s = Settings::load_with(Some(&path), env(&[("WABOT_SMTP_PASSWORD", "pw-from-env")])).unwrap();
        assert_eq!(s.mail.smtp_host().as_deref(), Some("mail.example.com:default"));
        assert!(!format!("{s:?}").contains("pw-from-env"));
    }

    #[test]
    fn the_token_never_prints() {
        let s = Settings::load_with(None, env(&[("TWILIO_AUTH_TOKEN", "sup3rs3cret")])).unwrap();
        assert!(!format!("{s:?}").contains("sup3rs3cret"));
    }

    #[test]
    fn the_admin_token_comes_from_the_environment_only_and_never_prints() {
        let s = Settings::load_with(None, env(&[])).unwrap();
        assert!(s.admin_token.is_none(), "no admin API by default");
        let token = "adm1n-s3cret-0123456789";
        let s = Settings::load_with(None, env(&[("WABOT_ADMIN_TOKEN", token)])).unwrap();
        assert_eq!(s.admin_token.as_ref().unwrap().expose_secret(), token);
        assert!(!format!("{s:?}").contains(token));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, format!("admin_token = \"{token}\"\n")).unwrap();
        let err = Settings::load_with(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("set it in the environment"), "{err}");
        assert!(!err.contains(token));
    }

    #[test]
    fn a_short_admin_token_is_refused_without_being_shown() {
        let err =
            Settings::load_with(None, env(&[("WABOT_ADMIN_TOKEN", "hunter2")])).unwrap_err().to_string();
        assert!(err.contains("at least 16 characters"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn the_journal_and_polling_have_defaults_a_file_and_the_environment() {
        let s = Settings::load_with(None, env(&[])).unwrap();
        assert_eq!(s.faq_journal, PathBuf::from("data/faq-journal.jsonl"));
        assert_eq!(s.corpus_poll_secs, 5);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "faq_journal = \"state/journal.jsonl\"\ncorpus_poll_secs = 0\n").unwrap();
        let s = Settings::load_with(Some(&path), env(&[])).unwrap();
        assert_eq!(s.faq_journal, dir.path().join("state/journal.jsonl"), "relative to the file");
        assert_eq!(s.corpus_poll_secs, 0);

        let s = Settings::load_with(
            Some(&path),
            env(&[("WABOT_FAQ_JOURNAL", "/var/lib/wabot/j.jsonl"), ("WABOT_CORPUS_POLL_SECS", "30")]),
        )
        .unwrap();
        assert_eq!(s.faq_journal, PathBuf::from("/var/lib/wabot/j.jsonl"));
        assert_eq!(s.corpus_poll_secs, 30);
        let err = Settings::load_with(None, env(&[("WABOT_CORPUS_POLL_SECS", "-1")])).unwrap_err();
        assert!(err.to_string().starts_with("environment variable WABOT_CORPUS_POLL_SECS"), "{err}");
    }

    #[test]
    fn bad_values_name_their_source() {
        let err = Settings::load_with(None, env(&[("WABOT_LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(err.starts_with("environment variable WABOT_LISTEN"), "{err}");
        let err = Settings::load_with(None, env(&[("WABOT_THRESHOLD", "2")])).unwrap_err().to_string();
        assert!(err.contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn the_webhook_url_appends_bot_to_the_public_base() {
        let s = Settings::load_with(None, env(&[("WABOT_PUBLIC_URL", "https://abc.ngrok.app/")])).unwrap();
        assert_eq!(s.webhook_url(), "https://abc.ngrok.app/bot");
    }
}
