//! Where the durable store lives: a SQLite file (the default, one process) or a PostgreSQL
//! database shared by several replicas. `WABOT_DB` (TOML `db`) holds either a path or a
//! `postgres://user@host:port/database` URL; the database password comes from
//! `WABOT_DB_PASSWORD` — a password written in the file's URL is refused, like
//! `mail.smtp_url`'s.

use secrecy::{ExposeSecret, SecretString};

/// A PostgreSQL database to use instead of the SQLite file.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// The `postgres://` URL; secret, since one given in the environment may carry a
    /// password. Log [`PostgresSettings::redacted`] instead.
    pub url: SecretString,
    /// The password, when the URL has none (`WABOT_DB_PASSWORD`).
    pub password: Option<SecretString>,
}

impl PostgresSettings {
    /// The URL with any password masked: what may be shown.
    pub fn redacted(&self) -> String {
        redacted(self.url.expose_secret())
    }
}

/// `url` with its password, if any, replaced by `***`: what may be logged.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "postgres://(an unparsable URL)".to_owned(),
    }
}

/// True when `value` (of `WABOT_DB` or `db`) names a PostgreSQL database rather than a file.
pub fn is_postgres_url(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// True when the URL carries a password.
pub(super) fn has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, Settings, test_env};
    use super::*;

    #[test]
    fn a_postgres_url_in_wabot_db_chooses_postgres_with_the_password_from_the_environment() {
        let env = test_env(&[("WABOT_DB", "postgres://wabot@db:5432/wabot"), ("WABOT_DB_PASSWORD", "pw")]);
        let s = Settings::load_with(None, env).unwrap();
        let pg = s.postgres.expect("postgres chosen");
        assert_eq!(pg.url.expose_secret(), "postgres://wabot@db:5432/wabot");
        assert_eq!(pg.password.map(|p| p.expose_secret().to_owned()).as_deref(), Some("pw"));
        let sqlite = Settings::load_with(None, test_env(&[("WABOT_DB", "state/w.db")])).unwrap();
        assert!(sqlite.postgres.is_none());
        assert_eq!(sqlite.db, std::path::PathBuf::from("state/w.db"));
    }

    #[test]
    fn a_password_in_the_files_database_url_is_refused_and_a_bare_url_is_not_made_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wabot.toml");
        std::fs::write(&file, "db = \"postgres://wabot:hunter22@db/wabot\"\n").unwrap();
        let err = Settings::load_with(Some(&file), test_env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::PasswordInUrl { key: "db", .. }), "{err}");
        assert!(!err.to_string().contains("hunter22"), "{err}");
        std::fs::write(&file, "db = \"postgresql://wabot@db/wabot?sslmode=verify-full\"\n").unwrap();
        let s = Settings::load_with(Some(&file), test_env(&[])).unwrap();
        assert_eq!(s.postgres.unwrap().redacted(), "postgresql://wabot@db/wabot?sslmode=verify-full");
    }
}
