//! The `[badge]` settings: OCR workers and models, the employee directory, and where
//! Twilio's API and media live.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::ConfigError;
use crate::ocr;
use crate::ocr::IdExtractor;

/// Twilio's REST API.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

/// Where Twilio's media API redirects: its media CDN (`mms.twiliocdn.com` for accounts that
/// require HTTP authentication on media, `media.twiliocdn.com`) and, for media stored before
/// that setting, `s3-external-1.amazonaws.com`.
pub const TWILIO_MEDIA_HOSTS: &[&str] =
    &["mms.twiliocdn.com", "media.twiliocdn.com", "s3-external-1.amazonaws.com"];

/// Badge reading settings (`[badge]` in the TOML file).
#[derive(Debug, Clone)]
pub struct BadgeSettings {
    /// Read badges at all.
    pub enabled: bool,
    /// Directory holding the two ONNX models.
    pub models: PathBuf,
    /// Cap on the detector input's long side, pixels.
    pub max_side: u32,
    /// OCR worker threads.
    pub workers: usize,
    /// `rten` threads per worker; 0: the cores divided among the workers.
    pub threads: usize,
    /// Photos waiting beyond those being read; more are told to try again.
    pub queue: usize,
    /// Employee directory CSV; `None`: the shipped example.
    pub directory: Option<PathBuf>,
    /// Organisation-specific ID patterns, tried before the default labels.
    pub id_patterns: Vec<String>,
    /// Twilio's API base URL.
    pub twilio_api_base: String,
    /// `TWILIO_ACCOUNT_SID` (environment only).
    pub twilio_account_sid: Option<SecretString>,
    /// Test only: media and REST over `http://` to loopback.
    pub allow_http_loopback: bool,
    /// The hosts a media URL may redirect to (Twilio's media CDN, see
    /// [`TWILIO_MEDIA_HOSTS`]).
    pub media_redirect_hosts: Vec<String>,
}

impl Default for BadgeSettings {
    fn default() -> Self {
        BadgeSettings {
            enabled: true,
            models: ocr::ModelPaths::default_dir(),
            max_side: ocr::pipeline::DEFAULT_MAX_SIDE,
            workers: 1,
            threads: 0,
            queue: 8,
            directory: None,
            id_patterns: Vec::new(),
            twilio_api_base: TWILIO_API_BASE.to_owned(),
            twilio_account_sid: None,
            allow_http_loopback: false,
            media_redirect_hosts: TWILIO_MEDIA_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        }
    }
}

/// The `[badge]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeFile {
    enabled: Option<bool>,
    models: Option<PathBuf>,
    max_side: Option<u32>,
    workers: Option<usize>,
    threads: Option<usize>,
    queue: Option<usize>,
    directory: Option<PathBuf>,
    id_patterns: Option<Vec<String>>,
    twilio_api_base: Option<String>,
    media_redirect_hosts: Option<Vec<String>>,
}

impl BadgeSettings {
    /// Applies the file's `[badge]` table; `relative` resolves paths against the file.
    pub fn apply_file(&mut self, f: BadgeFile, relative: impl Fn(PathBuf) -> PathBuf) {
        self.enabled = f.enabled.unwrap_or(self.enabled);
        self.models = f.models.map_or(self.models.clone(), &relative);
        self.max_side = f.max_side.unwrap_or(self.max_side);
        self.workers = f.workers.unwrap_or(self.workers);
        self.threads = f.threads.unwrap_or(self.threads);
        self.queue = f.queue.unwrap_or(self.queue);
        self.directory = f.directory.map(&relative).or(self.directory.take());
        self.id_patterns = f.id_patterns.unwrap_or(std::mem::take(&mut self.id_patterns));
        self.twilio_api_base = f.twilio_api_base.unwrap_or(std::mem::take(&mut self.twilio_api_base));
        self.media_redirect_hosts =
            f.media_redirect_hosts.unwrap_or(std::mem::take(&mut self.media_redirect_hosts));
    }

    /// Applies `WABOT_OCR*`, `WABOT_DIRECTORY`, `WABOT_TWILIO_API_BASE`,
    /// `WABOT_MEDIA_REDIRECT_HOSTS` (comma-separated), `TWILIO_ACCOUNT_SID`.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e: T::Err| ConfigError::Env { name, message: e.to_string() })
        }
        if let Some(v) = env("WABOT_OCR") {
            self.enabled = match v.to_ascii_lowercase().as_str() {
                "on" | "1" | "true" | "yes" => true,
                "off" | "0" | "false" | "no" => false,
                _ => {
                    return Err(ConfigError::Env {
                        name: "WABOT_OCR",
                        message: format!("{v:?} is not on or off"),
                    });
                }
            };
        }
        if let Some(v) = env("WABOT_OCR_MODELS") {
            self.models = PathBuf::from(v);
        }
        if let Some(v) = env("WABOT_OCR_MAX_SIDE") {
            self.max_side = num("WABOT_OCR_MAX_SIDE", &v)?;
        }
        if let Some(v) = env("WABOT_OCR_WORKERS") {
            self.workers = num("WABOT_OCR_WORKERS", &v)?;
        }
        if let Some(v) = env("WABOT_OCR_THREADS") {
            self.threads = num("WABOT_OCR_THREADS", &v)?;
        }
        if let Some(v) = env("WABOT_OCR_QUEUE") {
            self.queue = num("WABOT_OCR_QUEUE", &v)?;
        }
        if let Some(v) = env("WABOT_DIRECTORY") {
            self.directory = Some(PathBuf::from(v));
        }
        if let Some(v) = env("WABOT_TWILIO_API_BASE") {
            self.twilio_api_base = v;
        }
        if let Some(v) = env("WABOT_MEDIA_REDIRECT_HOSTS") {
            self.media_redirect_hosts =
                v.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
        }
        if let Some(v) = env("TWILIO_ACCOUNT_SID").filter(|v| !v.is_empty()) {
            self.twilio_account_sid = Some(SecretString::from(v));
        }
        self.validate()
    }

    /// Checks values that parse but are still wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(64..=4096).contains(&self.max_side) {
            return Err(ConfigError::Invalid(format!(
                "badge max_side must be 64 to 4096, got {}",
                self.max_side
            )));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(ConfigError::Invalid(format!("badge workers must be 1 to 64, got {}", self.workers)));
        }
        let base = Url::parse(&self.twilio_api_base)
            .map_err(|e| ConfigError::Invalid(format!("twilio_api_base {:?}: {e}", self.twilio_api_base)))?;
        if base.scheme() != "https" && !self.allow_http_loopback {
            return Err(ConfigError::Invalid(format!(
                "twilio_api_base must be https://, got {:?}",
                self.twilio_api_base
            )));
        }
        IdExtractor::new(&self.id_patterns).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// `rten` threads per worker: as configured, else the cores shared among the workers.
    pub fn threads_per_worker(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / self.workers.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_env as env;
    use super::*;

    #[test]
    fn the_environment_sets_badge_reading_and_the_account_sid_never_prints() {
        let mut s = BadgeSettings::default();
        s.apply_env(&env(&[
            ("WABOT_OCR_MAX_SIDE", "800"),
            ("WABOT_OCR_WORKERS", "2"),
            ("WABOT_DIRECTORY", "/srv/employees.csv"),
            ("TWILIO_ACCOUNT_SID", "AC5ecret0123"),
        ]))
        .unwrap();
        assert_eq!((s.max_side, s.workers), (800, 2));
        assert_eq!(s.directory, Some(PathBuf::from("/srv/employees.csv")));
        assert!(!format!("{s:?}").contains("AC5ecret0123"));
        s.apply_env(&env(&[("WABOT_OCR", "off")])).unwrap();
        assert!(!s.enabled);
    }

    #[test]
    fn bad_badge_settings_name_the_problem() {
        let err = BadgeSettings::default().apply_env(&env(&[("WABOT_OCR_WORKERS", "many")])).unwrap_err();
        assert!(err.to_string().starts_with("environment variable WABOT_OCR_WORKERS"), "{err}");
        let err = BadgeSettings::default().apply_env(&env(&[("WABOT_OCR_MAX_SIDE", "10")])).unwrap_err();
        assert!(err.to_string().contains("max_side must be 64 to 4096"), "{err}");
        let err = BadgeSettings::default()
            .apply_env(&env(&[("WABOT_TWILIO_API_BASE", "http://api.twilio.com")]))
            .unwrap_err();
        assert!(err.to_string().contains("must be https://"), "{err}");
        let s = BadgeSettings { id_patterns: vec!["(".into()], ..BadgeSettings::default() };
        assert!(s.validate().unwrap_err().to_string().contains("not a valid regular expression"));
    }

    #[test]
    fn the_threads_per_worker_share_the_cores() {
        let s = BadgeSettings { workers: 64, ..BadgeSettings::default() };
        assert_eq!(s.threads_per_worker(), 1, "never zero");
        let s = BadgeSettings { threads: 3, ..BadgeSettings::default() };
        assert_eq!(s.threads_per_worker(), 3);
    }

    #[test]
    fn a_badge_table_in_the_file_is_read_with_paths_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(
            &path,
            "[badge]\ndirectory = \"staff.csv\"\nid_patterns = ['EMP-\\d{6}']\nqueue = 2\n",
        )
        .unwrap();
        let s = super::super::Settings::load_with(Some(&path), |_| None).unwrap();
        assert_eq!(s.badge.directory, Some(dir.path().join("staff.csv")));
        assert_eq!(s.badge.id_patterns, vec![r"EMP-\d{6}".to_owned()]);
        assert_eq!(s.badge.queue, 2);
        std::fs::write(&path, "[badge]\naccount_sid = \"AC1\"\n").unwrap();
        let err = super::super::Settings::load_with(Some(&path), |_| None).unwrap_err().to_string();
        assert!(err.contains("unknown field `account_sid`") && !err.contains("AC1"), "{err}");
    }
}
