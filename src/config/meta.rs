//! The `[meta]` settings: Meta's WhatsApp Cloud API. The channel is on when the phone
//! number id, the access token and the app secret are all set; the secrets
//! (`META_APP_SECRET`, `META_ACCESS_TOKEN`, `META_VERIFY_TOKEN`) come from the environment
//! only.
//!
//! `graph_base` is Meta's versioned Graph API URL; tests and local fakes may use an
//! `http://` base only on a loopback host ([`secure_or_loopback`], the same rule as
//! Twilio's API base).

use std::collections::BTreeMap;
use std::net::IpAddr;

use secrecy::SecretString;
use serde::Deserialize;
use url::{Host, Url};

use super::ConfigError;

/// Meta's Graph API, at the version this wabot speaks.
pub const META_GRAPH_BASE: &str = "https://graph.facebook.com/v23.0";

/// A message template approved in Meta's WhatsApp Manager: what is sent instead of free
/// text to a user whose last message is older than 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaTemplate {
    /// The template's name.
    pub name: String,
    /// Its language code (`en`, `fr`, `en_US`…).
    pub language: String,
}

/// Meta's settings (`[meta]` in the TOML file).
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// The Graph API's base URL (`graph_base`, `WABOT_META_GRAPH_BASE`).
    pub graph_base: String,
    /// The WhatsApp Business phone number's id (`phone_number_id`, `META_PHONE_NUMBER_ID`).
    pub phone_number_id: Option<String>,
    /// `META_ACCESS_TOKEN`: the system user's permanent token (environment only).
    pub access_token: Option<SecretString>,
    /// `META_APP_SECRET`: the key of `X-Hub-Signature-256` (environment only).
    pub app_secret: Option<SecretString>,
    /// `META_VERIFY_TOKEN`: what Meta echoes when the webhook is verified (environment only).
    pub verify_token: Option<SecretString>,
    /// Templates by key (`[meta.templates.<key>]`), e.g. `notice`.
    pub templates: BTreeMap<String, MetaTemplate>,
}

impl Default for MetaSettings {
    fn default() -> Self {
        MetaSettings {
            graph_base: META_GRAPH_BASE.to_owned(),
            phone_number_id: None,
            access_token: None,
            app_secret: None,
            verify_token: None,
            templates: BTreeMap::new(),
        }
    }
}

/// The `[meta]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaFile {
    graph_base: Option<String>,
    phone_number_id: Option<String>,
    templates: Option<BTreeMap<String, MetaTemplate>>,
}

/// True for `https://`, and for `http://` to a loopback host (a local fake of the API).
pub fn secure_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

impl MetaSettings {
    /// Applies the file's `[meta]` table.
    pub fn apply_file(&mut self, f: MetaFile) {
        self.graph_base = f.graph_base.unwrap_or(std::mem::take(&mut self.graph_base));
        self.phone_number_id = f.phone_number_id.or(self.phone_number_id.take());
        self.templates = f.templates.unwrap_or(std::mem::take(&mut self.templates));
    }

    /// Applies `WABOT_META_GRAPH_BASE`, `META_PHONE_NUMBER_ID` and the secrets.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = set("WABOT_META_GRAPH_BASE") {
            self.graph_base = v;
        }
        if let Some(v) = set("META_PHONE_NUMBER_ID") {
            self.phone_number_id = Some(v.trim().to_owned());
        }
        if let Some(v) = set("META_ACCESS_TOKEN") {
            self.access_token = Some(SecretString::from(v));
        }
        if let Some(v) = set("META_APP_SECRET") {
            self.app_secret = Some(SecretString::from(v));
        }
        if let Some(v) = set("META_VERIFY_TOKEN") {
            self.verify_token = Some(SecretString::from(v));
        }
    }

    /// True when the channel can run: a phone number id, an access token and an app secret.
    pub fn enabled(&self) -> bool {
        self.phone_number_id.is_some() && self.access_token.is_some() && self.app_secret.is_some()
    }

    /// What is missing for the channel to run, by name (empty when it is on).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.phone_number_id.is_none() {
            out.push("META_PHONE_NUMBER_ID");
        }
        if self.access_token.is_none() {
            out.push("META_ACCESS_TOKEN");
        }
        if self.app_secret.is_none() {
            out.push("META_APP_SECRET");
        }
        out
    }

    /// The Graph API's base as a URL: `https://`, or `http://` to a loopback host.
    pub fn graph_url(&self) -> Result<Url, ConfigError> {
        let base = Url::parse(&self.graph_base)
            .map_err(|e| ConfigError::Invalid(format!("meta graph_base {:?}: {e}", self.graph_base)))?;
        if !secure_or_loopback(&base) {
            return Err(ConfigError::Invalid(format!(
                "meta graph_base must be https:// (http:// only to a loopback host), got {:?}",
                self.graph_base
            )));
        }
        Ok(base)
    }

    /// Checks values that parse but are still wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.graph_url()?;
        if let Some(id) = &self.phone_number_id
            && !id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ConfigError::Invalid(format!("meta phone_number_id must be digits, got {id:?}")));
        }
        for (key, t) in &self.templates {
            if t.name.trim().is_empty() || t.language.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "meta.templates.{key} needs a name and a language"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::{Settings, test_env};

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load_with(Some(&path), test_env(env))
    }

    #[test]
    fn meta_is_off_without_its_settings_and_on_with_them() {
        let s = load("", &[]).unwrap();
        assert!(!s.meta.enabled());
        assert_eq!(s.meta.graph_base, META_GRAPH_BASE);
        let s = load(
            "[meta]\nphone_number_id = \"1234\"\n[meta.templates.notice]\nname = \"wabot_notice\"\nlanguage = \"en\"\n",
            &[("META_ACCESS_TOKEN", "EAAG"), ("META_APP_SECRET", "s3cret"), ("META_VERIFY_TOKEN", "v")],
        )
        .unwrap();
        assert!(s.meta.enabled(), "{:?}", s.meta.missing());
        assert_eq!(s.meta.templates["notice"].name, "wabot_notice");
        assert_eq!(s.meta.app_secret.as_ref().map(|t| t.expose_secret().to_owned()), Some("s3cret".into()));
    }

    #[test]
    fn a_meta_secret_in_the_file_is_refused() {
        let err = load("[meta]\naccess_token = \"EAAG\"\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::SecretInFile { .. }), "{err}");
    }

    #[test]
    fn plain_http_is_accepted_only_to_a_loopback_host_for_both_apis() {
        assert!(load("", &[("WABOT_META_GRAPH_BASE", "http://127.0.0.1:9/v23.0")]).is_ok());
        assert!(load("", &[("WABOT_META_GRAPH_BASE", "http://graph.example.org/v23.0")]).is_err());
        assert!(load("", &[("WABOT_TWILIO_API_BASE", "http://[::1]:9")]).is_ok());
        assert!(load("", &[("WABOT_TWILIO_API_BASE", "http://api.example.org")]).is_err());
    }
}
