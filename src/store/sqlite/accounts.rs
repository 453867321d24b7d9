//! The console's accounts, sessions, failed sign-ins and audit log on SQLite (see
//! [`Accounts`](crate::store::roles::Accounts)).

use rusqlite::params;

use super::rows::{all, exec, one, sql_limit};
use super::{Blocking, Sync};
use crate::store::StoreError;
use crate::store::roles::{Account, AccountRole, AuditEntry, ConsoleSession, MailEventKind};

const ACCOUNT_COLUMNS: &str = "email, name, role, password_hash, created_ms";

fn account(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let role: String = r.get(2)?;
    Ok(Account {
        email: r.get(0)?,
        name: r.get(1)?,
        // The table's CHECK allows only these two.
        role: AccountRole::parse(&role).unwrap_or(AccountRole::Agent),
        password_hash: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

impl Blocking {
    /// See [`Accounts::add_account`](crate::store::roles::Accounts::add_account).
    pub fn add_account(&self, a: &Account) -> Result<bool, StoreError> {
        let n = self.write(Sync::Full, |tx| {
            exec(
                tx,
                "INSERT INTO console_accounts (email, name, role, password_hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (email) DO NOTHING",
                params![a.email, a.name, a.role.as_str(), a.password_hash, a.created_ms],
            )
        })?;
        Ok(n == 1)
    }

    /// See [`Accounts::account`](crate::store::roles::Accounts::account).
    pub fn account(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE email = ?1");
        self.read(|c| one(c, &sql, [email], account))
    }

    /// See [`Accounts::accounts`](crate::store::roles::Accounts::accounts).
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts ORDER BY email");
        self.read(|c| all(c, &sql, [], account))
    }

    /// See [`Accounts::remove_account`](crate::store::roles::Accounts::remove_account).
    pub fn remove_account(&self, email: &str) -> Result<bool, StoreError> {
        let n = self.write(Sync::Full, |tx| {
            exec(tx, "DELETE FROM console_sessions WHERE email = ?1", [email])?;
            exec(tx, "DELETE FROM console_accounts WHERE email = ?1", [email])
        })?;
        Ok(n == 1)
    }

    /// See [`Accounts::set_password`](crate::store::roles::Accounts::set_password).
    pub fn set_password(&self, email: &str, hash: &str) -> Result<bool, StoreError> {
        let n = self.write(Sync::Full, |tx| {
            let n =
                exec(tx, "UPDATE console_accounts SET password_hash = ?2 WHERE email = ?1", [email, hash])?;
            exec(tx, "DELETE FROM console_sessions WHERE email = ?1", [email])?;
            Ok(n)
        })?;
        Ok(n == 1)
    }

    /// See [`Accounts::open_session`](crate::store::roles::Accounts::open_session).
    pub fn open_session(&self, s: &ConsoleSession) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "INSERT INTO console_sessions (token_hash, email, csrf, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.token_hash, s.email, s.csrf, s.created_ms, s.expires_ms],
            )?;
            // Expired sessions go as new ones come.
            exec(tx, "DELETE FROM console_sessions WHERE expires_ms <= ?1", [s.created_ms])
        })?;
        Ok(())
    }

    /// See [`Accounts::console_session`](crate::store::roles::Accounts::console_session).
    pub fn console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, Account)>, StoreError> {
        self.read(|c| {
            one(
                c,
                "SELECT s.token_hash, s.email, s.csrf, s.created_ms, s.expires_ms,
                        a.email, a.name, a.role, a.password_hash, a.created_ms
                 FROM console_sessions s JOIN console_accounts a ON a.email = s.email
                 WHERE s.token_hash = ?1 AND s.expires_ms > ?2",
                params![token_hash, now_ms],
                |r| {
                    let session = ConsoleSession {
                        token_hash: r.get(0)?,
                        email: r.get(1)?,
                        csrf: r.get(2)?,
                        created_ms: r.get(3)?,
                        expires_ms: r.get(4)?,
                    };
                    let role: String = r.get(7)?;
                    let account = Account {
                        email: r.get(5)?,
                        name: r.get(6)?,
                        role: AccountRole::parse(&role).unwrap_or(AccountRole::Agent),
                        password_hash: r.get(8)?,
                        created_ms: r.get(9)?,
                    };
                    Ok((session, account))
                },
            )
        })
    }

    /// See [`Accounts::close_session`](crate::store::roles::Accounts::close_session).
    pub fn close_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(tx, "DELETE FROM console_sessions WHERE token_hash = ?1", [token_hash])
        })?;
        Ok(())
    }

    /// See [`Accounts::sign_in_failed`](crate::store::roles::Accounts::sign_in_failed).
    pub fn sign_in_failed(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "DELETE FROM sign_in_failures WHERE key = ?1 AND at_ms < ?2",
                params![key, forget_before_ms],
            )?;
            exec(tx, "INSERT INTO sign_in_failures (key, at_ms) VALUES (?1, ?2)", params![key, at_ms])
        })?;
        Ok(())
    }

    /// See [`Accounts::sign_in_failures`](crate::store::roles::Accounts::sign_in_failures).
    pub fn sign_in_failures(&self, key: &str, since_ms: i64) -> Result<u32, StoreError> {
        let n: Option<i64> = self.read(|c| {
            one(
                c,
                "SELECT count(*) FROM sign_in_failures WHERE key = ?1 AND at_ms >= ?2",
                params![key, since_ms],
                |r| r.get(0),
            )
        })?;
        Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
    }

    /// See [`Accounts::clear_sign_in_failures`](crate::store::roles::Accounts::clear_sign_in_failures).
    pub fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| exec(tx, "DELETE FROM sign_in_failures WHERE key = ?1", [key]))?;
        Ok(())
    }

    /// See [`Accounts::audit`](crate::store::roles::Accounts::audit).
    pub fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.write(Sync::Full, |tx| {
            exec(
                tx,
                "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
                params![e.at_ms, e.actor, e.action, e.detail],
            )
        })?;
        Ok(())
    }

    /// See [`Accounts::audit_log`](crate::store::roles::Accounts::audit_log).
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            all(
                c,
                "SELECT at_ms, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
                [sql_limit(limit)],
                |r| {
                    Ok(AuditEntry {
                        at_ms: r.get(0)?,
                        actor: r.get(1)?,
                        action: r.get(2)?,
                        detail: r.get(3)?,
                    })
                },
            )
        })
    }
}

impl Blocking {
    /// See [`Resend::resend_mail`](crate::store::roles::Resend::resend_mail).
    pub fn resend_mail(&self, ticket: &str, actor: &str, now_ms: i64) -> Result<bool, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        self.write(Sync::Normal, |tx| {
            let id: Option<i64> = one(
                tx,
                "UPDATE outbox SET state = 'queued', next_attempt_ms = ?2, permanent_failures = 0, sent_ms = NULL
                 WHERE request_id = (SELECT id FROM requests WHERE ticket = ?1)
                 RETURNING id",
                params![ticket, now_ms],
                |r| r.get(0),
            )?;
            let Some(id) = id else { return Ok(false) };
            super::calls::mail_event(tx, id, now_ms, MailEventKind::Resent, None, None, Some(actor))?;
            Ok(true)
        })
    }
}
