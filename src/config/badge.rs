//! The `[badge]` settings: OCR workers and models, the employee directory. Where the
//! channel's media and API live is the channel's ([`super::twilio`]).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::ocr;
use crate::ocr::IdExtractor;

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
    /// How long a replica holds a photo it is reading, ms (`lease_ms`,
    /// `WABOT_OCR_LEASE_MS`): if it dies, another replica reads the photo after this.
    pub lease_ms: u64,
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
            lease_ms: 120_000,
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
    lease_ms: Option<u64>,
    /// Deprecated: `[twilio] api_base`.
    pub(super) twilio_api_base: Option<String>,
    /// Deprecated: `[twilio] media_redirect_hosts`.
    pub(super) media_redirect_hosts: Option<Vec<String>>,
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
        self.lease_ms = f.lease_ms.unwrap_or(self.lease_ms);
    }

    /// Applies `WABOT_OCR*` and `WABOT_DIRECTORY`.
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
        if let Some(v) = env("WABOT_OCR_LEASE_MS") {
            self.lease_ms = num("WABOT_OCR_LEASE_MS", &v)?;
        }
        if let Some(v) = env("WABOT_DIRECTORY") {
            self.directory = Some(PathBuf::from(v));
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
        if self.lease_ms < 1000 {
            return Err(ConfigError::Invalid(format!(
                "badge lease_ms must be at least 1000, got {}",
                self.lease_ms
            )));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(ConfigError::Invalid(format!("badge workers must be 1 to 64, got {}", self.workers)));
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
        ]))
        .unwrap();
        assert_eq!((s.max_side, s.workers), (800, 2));
        assert_eq!(s.directory, Some(PathBuf::from("/srv/employees.csv")));
        let all =
            super::super::Settings::load_with(None, env(&[("TWILIO_ACCOUNT_SID", "AC5ecret0123")])).unwrap();
        assert!(all.twilio.account_sid.is_some());
        assert!(!format!("{all:?}").contains("AC5ecret0123"));
        s.apply_env(&env(&[("WABOT_OCR", "off")])).unwrap();
        assert!(!s.enabled);
    }

    #[test]
    fn bad_badge_settings_name_the_problem() {
        let err = BadgeSettings::default().apply_env(&env(&[("WABOT_OCR_WORKERS", "many")])).unwrap_err();
        assert!(err.to_string().starts_with("environment variable WABOT_OCR_WORKERS"), "{err}");
        let err = BadgeSettings::default().apply_env(&env(&[("WABOT_OCR_MAX_SIDE", "10")])).unwrap_err();
        assert!(err.to_string().contains("max_side must be 64 to 4096"), "{err}");
        let err = super::super::Settings::load_with(
            None,
            env(&[("WABOT_TWILIO_API_BASE", "http://api.twilio.com")]),
        )
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
