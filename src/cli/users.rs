//! `wabot users add|list|remove|passwd`: the web console's accounts, in the database the
//! server uses (the SQLite file, or the PostgreSQL database of `WABOT_DB`). A password is read from standard input when it is not a terminal (one
//! line), else prompted for twice without echo. Every change is written to the audit log
//! as made by `cli`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use secrecy::ExposeSecret;

use super::CliError;
use crate::config::Settings;
use crate::console::password;
use crate::domain::{now_ms, utc};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Account, AccountRole, Accounts, AuditEntry, StoreError};

/// Where a new password comes from.
pub enum PasswordSource<'a> {
    /// One line of this reader (standard input that is not a terminal).
    Line(&'a mut dyn BufRead),
    /// Prompted for twice on the terminal.
    Prompt,
}

impl PasswordSource<'_> {
    fn read(self) -> Result<String, CliError> {
        let password = match self {
            PasswordSource::Line(input) => {
                let mut line = String::new();
                input.read_line(&mut line).map_err(CliError::Stdin)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
            PasswordSource::Prompt => {
                let first = rpassword::prompt_password("Password: ").map_err(CliError::Stdin)?;
                let again = rpassword::prompt_password("Password again: ").map_err(CliError::Stdin)?;
                if first != again {
                    return Err(CliError::Account("the two passwords differ".into()));
                }
                first
            }
        };
        password::check_new(&password).map_err(|e| CliError::Account(e.to_string()))?;
        Ok(password)
    }
}

/// An e-mail address as accounts are keyed: trimmed, lowercase, checked.
pub fn account_email(email: &str) -> Result<String, CliError> {
    let email = email.trim().to_lowercase();
    if email.parse::<lettre::Address>().is_err() {
        return Err(CliError::Account(format!("{email:?} is not an e-mail address")));
    }
    Ok(email)
}

/// The accounts of the database the settings name, and a runtime to call them on.
struct Opened {
    runtime: tokio::runtime::Runtime,
    accounts: Arc<dyn Accounts>,
}

impl Opened {
    fn run<T>(&self, call: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, CliError> {
        Ok(self.runtime.block_on(call)?)
    }

    fn audit(&self, action: &str, detail: &str) -> Result<(), CliError> {
        let entry =
            AuditEntry { at_ms: now_ms(), actor: "cli".into(), action: action.into(), detail: detail.into() };
        self.run(self.accounts.audit(entry))
    }
}

/// Opens the database of `settings`: PostgreSQL's, or the SQLite file, created (with its
/// directory) when `create`, else required to exist.
fn open(settings: &Settings, create: bool) -> Result<Opened, CliError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CliError::Runtime)?;
    let accounts: Arc<dyn Accounts> = match &settings.postgres {
        Some(pg) => {
            let password = pg.password.as_ref().map(|p| p.expose_secret());
            let opened = runtime.block_on(PostgresStore::open(pg.url.expose_secret(), password));
            Arc::new(opened.map_err(|source| CliError::Open { path: pg.redacted().into(), source })?)
        }
        None if create => {
            let db = &settings.db;
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| CliError::Create { path: dir.to_owned(), source })?;
            }
            Arc::new(SqliteStore::open(db).map_err(|source| CliError::Open { path: db.to_owned(), source })?)
        }
        None => Arc::new(super::open_existing_sqlite(&settings.db, "account")?),
    };
    Ok(Opened { runtime, accounts })
}

/// `wabot users add`: a new account (the database is created if need be).
pub fn add(
    settings: &Settings,
    email: &str,
    name: Option<&str>,
    role: AccountRole,
    source: PasswordSource<'_>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let email = account_email(email)?;
    let store = open(settings, true)?;
    if store.run(store.accounts.account(&email))?.is_some() {
        return Err(CliError::Account(format!("an account {email} exists already")));
    }
    let hash = password::hash(&source.read()?).map_err(|e| CliError::Account(e.to_string()))?;
    let name = name.map(str::trim).filter(|n| !n.is_empty()).map_or_else(
        || email.split('@').next().unwrap_or(&email).to_owned(),
        |n| crate::domain::clean_line(n, 100),
    );
    let account = Account { email: email.clone(), name, role, password_hash: hash, created_ms: now_ms() };
    if !store.run(store.accounts.add_account(account))? {
        return Err(CliError::Account(format!("an account {email} exists already")));
    }
    store.audit("account.add", &format!("{email} ({})", role.as_str()))?;
    writeln!(out, "added {email} ({})", role.as_str())?;
    Ok(())
}

/// `wabot users list`.
pub fn list(settings: &Settings, out: &mut impl Write) -> Result<(), CliError> {
    let store = open(settings, false)?;
    let accounts = store.run(store.accounts.accounts())?;
    if accounts.is_empty() {
        writeln!(out, "no accounts: add one with `wabot users add EMAIL`")?;
    }
    for a in accounts {
        writeln!(out, "{:<32} {:<6} {:<24} created {}", a.email, a.role.as_str(), a.name, utc(a.created_ms))?;
    }
    Ok(())
}

/// `wabot users remove`: the account and its sessions.
pub fn remove(settings: &Settings, email: &str, out: &mut impl Write) -> Result<(), CliError> {
    let email = account_email(email)?;
    let store = open(settings, false)?;
    if !store.run(store.accounts.remove_account(&email))? {
        return Err(CliError::Account(format!("no account {email}")));
    }
    store.audit("account.remove", &email)?;
    writeln!(out, "removed {email}")?;
    Ok(())
}

/// `wabot users passwd`: a new password; the account's sessions are closed.
pub fn passwd(
    settings: &Settings,
    email: &str,
    source: PasswordSource<'_>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let email = account_email(email)?;
    let store = open(settings, false)?;
    if store.run(store.accounts.account(&email))?.is_none() {
        return Err(CliError::Account(format!("no account {email}")));
    }
    let hash = password::hash(&source.read()?).map_err(|e| CliError::Account(e.to_string()))?;
    if !store.run(store.accounts.set_password(&email, &hash))? {
        return Err(CliError::Account(format!("no account {email}")));
    }
    store.audit("account.passwd", &email)?;
    writeln!(out, "password changed for {email}; their sessions are closed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_added_from_piped_input_signs_with_that_password_and_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let settings = Settings { db: db.clone(), ..Settings::default() };
        let mut input: &[u8] = b"a long enough password\n";
        let mut out = Vec::new();
        add(
            &settings,
            " Ann@Example.com ",
            Some("Ann"),
            AccountRole::Admin,
            PasswordSource::Line(&mut input),
            &mut out,
        )
        .unwrap();
        let store = SqliteStore::open(&db).unwrap();
        let a = store.blocking().account("ann@example.com").unwrap().unwrap();
        assert!(password::verify("a long enough password", &a.password_hash));
        assert_eq!((a.name.as_str(), a.role), ("Ann", AccountRole::Admin));
        let mut again: &[u8] = b"a long enough password\n";
        let twice = add(
            &settings,
            "ann@example.com",
            None,
            AccountRole::Agent,
            PasswordSource::Line(&mut again),
            &mut out,
        );
        assert!(matches!(twice, Err(CliError::Account(_))));
        let mut short: &[u8] = b"short\n";
        assert!(passwd(&settings, "ann@example.com", PasswordSource::Line(&mut short), &mut out).is_err());
        remove(&settings, "ann@example.com", &mut out).unwrap();
        let log = store.blocking().audit_log(10).unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["account.remove", "account.add"]);
        assert!(remove(&settings, "ann@example.com", &mut out).is_err());
        assert!(account_email("not an address").is_err());
    }

    #[test]
    fn on_postgresql_an_account_is_added_listed_and_removed_with_its_audit() {
        let Some(url) = crate::store::conformance::postgres_url() else { return };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let schema = runtime.block_on(crate::store::postgres::fresh_schema_url(&url, "users")).unwrap();
        let postgres = crate::config::PostgresSettings { url: schema.into(), password: None };
        let settings = Settings { postgres: Some(postgres), ..Settings::default() };
        let mut input: &[u8] = b"a long enough password\n";
        let mut out = Vec::new();
        add(
            &settings,
            "bob@example.com",
            None,
            AccountRole::Agent,
            PasswordSource::Line(&mut input),
            &mut out,
        )
        .unwrap();
        let mut listed = Vec::new();
        list(&settings, &mut listed).unwrap();
        assert!(String::from_utf8_lossy(&listed).contains("bob@example.com"));
        remove(&settings, "bob@example.com", &mut out).unwrap();
        let store = open(&settings, false).unwrap();
        let log = store.run(store.accounts.audit_log(10)).unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["account.remove", "account.add"]);
        assert!(store.run(store.accounts.accounts()).unwrap().is_empty());
    }
}
