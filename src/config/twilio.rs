//! The `[twilio]` settings: where Twilio's REST API and media live, and the account the
//! bot calls them as. The webhook's secrets (`TWILIO_AUTH_TOKEN`,
//! `TWILIO_WEBHOOK_SHARED_KEY`) and the account SID come from the environment only.
//!
//! `api_base` and `media_redirect_hosts` were once keys of `[badge]` (`twilio_api_base`,
//! `media_redirect_hosts`): there they are still read, with a deprecation notice, unless
//! `[twilio]` sets them too.

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::ConfigError;

/// Twilio's REST API.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

/// Where Twilio's media API redirects: its media CDN (`mms.twiliocdn.com` for accounts that
/// require HTTP authentication on media, `media.twiliocdn.com`) and, for media stored before
/// that setting, `s3-external-1.amazonaws.com`.
pub const TWILIO_MEDIA_HOSTS: &[&str] =
    &["mms.twiliocdn.com", "media.twiliocdn.com", "s3-external-1.amazonaws.com"];

/// Twilio's settings (`[twilio]` in the TOML file).
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// Twilio's API base URL (`api_base`, `WABOT_TWILIO_API_BASE`).
    pub api_base: String,
    /// `TWILIO_ACCOUNT_SID` (environment only).
    pub account_sid: Option<SecretString>,
    /// The hosts a media URL may redirect to (`media_redirect_hosts`,
    /// `WABOT_MEDIA_REDIRECT_HOSTS`; Twilio's media CDN, see [`TWILIO_MEDIA_HOSTS`]).
    pub media_redirect_hosts: Vec<String>,
    /// Test only: media and REST over `http://` to loopback.
    pub allow_http_loopback: bool,
}

impl Default for TwilioSettings {
    fn default() -> Self {
        TwilioSettings {
            api_base: TWILIO_API_BASE.to_owned(),
            account_sid: None,
            media_redirect_hosts: TWILIO_MEDIA_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            allow_http_loopback: false,
        }
    }
}

/// The `[twilio]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioFile {
    pub(super) api_base: Option<String>,
    pub(super) media_redirect_hosts: Option<Vec<String>>,
}

impl TwilioSettings {
    /// Applies the file's `[twilio]` table.
    pub fn apply_file(&mut self, f: TwilioFile) {
        self.api_base = f.api_base.unwrap_or(std::mem::take(&mut self.api_base));
        self.media_redirect_hosts =
            f.media_redirect_hosts.unwrap_or(std::mem::take(&mut self.media_redirect_hosts));
    }

    /// Applies `WABOT_TWILIO_API_BASE`, `WABOT_MEDIA_REDIRECT_HOSTS` (comma-separated) and
    /// `TWILIO_ACCOUNT_SID`.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) {
        if let Some(v) = env("WABOT_TWILIO_API_BASE") {
            self.api_base = v;
        }
        if let Some(v) = env("WABOT_MEDIA_REDIRECT_HOSTS") {
            self.media_redirect_hosts =
                v.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
        }
        if let Some(v) = env("TWILIO_ACCOUNT_SID").filter(|v| !v.is_empty()) {
            self.account_sid = Some(SecretString::from(v));
        }
    }

    /// The API base as a URL: `https://`, or `http://` to a loopback host (a local fake of
    /// the API), or anywhere when loopback is allowed (tests).
    pub fn api_url(&self) -> Result<Url, ConfigError> {
        let base = Url::parse(&self.api_base)
            .map_err(|e| ConfigError::Invalid(format!("twilio api_base {:?}: {e}", self.api_base)))?;
        if !super::meta::secure_or_loopback(&base) && !self.allow_http_loopback {
            return Err(ConfigError::Invalid(format!(
                "twilio api_base must be https:// (http:// only to a loopback host), got {:?}",
                self.api_base
            )));
        }
        Ok(base)
    }

    /// True when the API base is a plain-HTTP loopback fake: its media are then fetched the
    /// same way.
    pub fn loopback_api(&self) -> bool {
        Url::parse(&self.api_base).is_ok_and(|u| u.scheme() == "http" && super::meta::secure_or_loopback(&u))
    }

    /// Checks values that parse but are still wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api_url().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Settings, test_env};

    fn load(toml: &str, env: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load_with(Some(&path), test_env(env)).unwrap()
    }

    #[test]
    fn the_twilio_table_sets_the_api_and_the_media_hosts() {
        let s = load(
            "[twilio]\napi_base = \"https://twilio.example.org\"\nmedia_redirect_hosts = [\"cdn.example.org\"]\n",
            &[],
        );
        assert_eq!(s.twilio.api_base, "https://twilio.example.org");
        assert_eq!(s.twilio.media_redirect_hosts, ["cdn.example.org"]);
        assert!(s.deprecations.is_empty());
    }

    #[test]
    fn the_old_badge_keys_still_work_with_a_notice_and_the_twilio_table_wins() {
        let old =
            "[badge]\ntwilio_api_base = \"https://old.example.org\"\nmedia_redirect_hosts = [\"old.cdn\"]\n";
        let s = load(old, &[]);
        assert_eq!(
            (s.twilio.api_base.as_str(), s.twilio.media_redirect_hosts.as_slice()),
            ("https://old.example.org", &["old.cdn".to_owned()][..])
        );
        assert_eq!(s.deprecations.len(), 2, "{:?}", s.deprecations);
        assert!(s.deprecations[0].contains("[twilio] api_base"), "{:?}", s.deprecations);
        let both = format!("{old}[twilio]\napi_base = \"https://new.example.org\"\n");
        assert_eq!(load(&both, &[]).twilio.api_base, "https://new.example.org");
    }

    #[test]
    fn the_environment_keeps_its_names() {
        let s = load(
            "",
            &[
                ("WABOT_TWILIO_API_BASE", "https://env.example.org"),
                ("TWILIO_ACCOUNT_SID", "AC123"),
                ("WABOT_MEDIA_REDIRECT_HOSTS", "a.example, b.example"),
            ],
        );
        assert_eq!(s.twilio.api_base, "https://env.example.org");
        assert!(s.twilio.account_sid.is_some());
        assert_eq!(s.twilio.media_redirect_hosts, ["a.example", "b.example"]);
    }

    #[test]
    fn a_plain_http_api_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, "[twilio]\napi_base = \"http://api.example.org\"\n").unwrap();
        assert!(Settings::load_with(Some(&path), test_env(&[])).is_err());
    }
}
