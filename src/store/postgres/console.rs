//! The web console's store roles on PostgreSQL: accounts, sessions, failed sign-ins and the
//! audit log ([`Accounts`]), transcripts and handover flags ([`Transcripts`]), the
//! dashboard's counters ([`Figures`]) and a request's e-mail queued again ([`Resend`]) — the
//! same tables as SQLite's, so that every replica serves the console over one database.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PostgresStore, address, pg, sql_limit};
use crate::domain::Address;
use crate::store::StoreError;
use crate::store::roles::{
    Account, AccountRole, Accounts, AuditEntry, ConsoleSession, ConversationSummary, DayCount, Figures,
    Resend, Speaker, TranscriptLine, Transcripts,
};

const ACCOUNT_COLUMNS: &str = "email, name, role, password_hash, created_ms";

fn get_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(format!("postgres: a console row: {e}"))
}

/// The account in `row`'s columns from `at`.
fn account(row: &Row, at: usize) -> Result<Account, StoreError> {
    let role: String = row.try_get(at + 2).map_err(get_err)?;
    Ok(Account {
        email: row.try_get(at).map_err(get_err)?,
        name: row.try_get(at + 1).map_err(get_err)?,
        // The table's CHECK allows only these two.
        role: AccountRole::parse(&role).unwrap_or(AccountRole::Agent),
        password_hash: row.try_get(at + 3).map_err(get_err)?,
        created_ms: row.try_get(at + 4).map_err(get_err)?,
    })
}

fn summary(row: &Row) -> Result<ConversationSummary, StoreError> {
    let channel: String = row.try_get(0).map_err(get_err)?;
    let id: String = row.try_get(1).map_err(get_err)?;
    let user = address(&channel, &id)?;
    let bot: Option<String> = row.try_get(2).map_err(get_err)?;
    Ok(ConversationSummary {
        bot: bot.and_then(|b| Address::parse(user.channel(), &b).ok()),
        user,
        handed_over_ms: row.try_get(3).map_err(get_err)?,
        last_ms: row.try_get(4).map_err(get_err)?,
        last_text: row.try_get(5).map_err(get_err)?,
    })
}

const SUMMARY: &str = "SELECT channel, address, bot, handed_over_ms, last_ms, last_text FROM conversations";

#[async_trait]
impl Accounts for PostgresStore {
    async fn add_account(&self, a: Account) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO console_accounts (email, name, role, password_hash, created_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING",
                &[&a.email, &a.name, &a.role.as_str(), &a.password_hash, &a.created_ms],
            )
            .await
            .map_err(pg("adding an account"))?;
        Ok(n == 1)
    }

    async fn account(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE email = $1");
        let row = client.query_opt(&sql, &[&email]).await.map_err(pg("reading an account"))?;
        row.map(|r| account(&r, 0)).transpose()
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts ORDER BY email");
        let rows = client.query(&sql, &[]).await.map_err(pg("listing the accounts"))?;
        rows.iter().map(|r| account(r, 0)).collect()
    }

    async fn remove_account(&self, email: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("removing an account"))?;
        tx.execute("DELETE FROM console_sessions WHERE email = $1", &[&email])
            .await
            .map_err(pg("closing an account's sessions"))?;
        let n = tx
            .execute("DELETE FROM console_accounts WHERE email = $1", &[&email])
            .await
            .map_err(pg("removing an account"))?;
        tx.commit().await.map_err(pg("removing an account"))?;
        Ok(n == 1)
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("setting a password"))?;
        let n = tx
            .execute(
                "UPDATE console_accounts SET password_hash = $2 WHERE email = $1",
                &[&email, &password_hash],
            )
            .await
            .map_err(pg("setting a password"))?;
        tx.execute("DELETE FROM console_sessions WHERE email = $1", &[&email])
            .await
            .map_err(pg("closing an account's sessions"))?;
        tx.commit().await.map_err(pg("setting a password"))?;
        Ok(n == 1)
    }

    async fn open_session(&self, s: ConsoleSession) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("opening a console session"))?;
        tx.execute(
            "INSERT INTO console_sessions (token_hash, email, csrf, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[&s.token_hash, &s.email, &s.csrf, &s.created_ms, &s.expires_ms],
        )
        .await
        .map_err(pg("opening a console session"))?;
        // Expired sessions go as new ones come.
        tx.execute("DELETE FROM console_sessions WHERE expires_ms <= $1", &[&s.created_ms])
            .await
            .map_err(pg("forgetting expired console sessions"))?;
        tx.commit().await.map_err(pg("opening a console session"))?;
        Ok(())
    }

    async fn console_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(ConsoleSession, Account)>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.token_hash, s.email, s.csrf, s.created_ms, s.expires_ms,
                        a.email, a.name, a.role, a.password_hash, a.created_ms
                 FROM console_sessions s JOIN console_accounts a ON a.email = s.email
                 WHERE s.token_hash = $1 AND s.expires_ms > $2",
                &[&token_hash, &now_ms],
            )
            .await
            .map_err(pg("reading a console session"))?;
        let Some(r) = row else { return Ok(None) };
        let session = ConsoleSession {
            token_hash: r.try_get(0).map_err(get_err)?,
            email: r.try_get(1).map_err(get_err)?,
            csrf: r.try_get(2).map_err(get_err)?,
            created_ms: r.try_get(3).map_err(get_err)?,
            expires_ms: r.try_get(4).map_err(get_err)?,
        };
        Ok(Some((session, account(&r, 5)?)))
    }

    async fn close_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM console_sessions WHERE token_hash = $1", &[&token_hash])
            .await
            .map_err(pg("closing a console session"))?;
        Ok(())
    }

    async fn sign_in_failed(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("counting a failed sign-in"))?;
        tx.execute("DELETE FROM sign_in_failures WHERE key = $1 AND at_ms < $2", &[&key, &forget_before_ms])
            .await
            .map_err(pg("forgetting old failed sign-ins"))?;
        tx.execute("INSERT INTO sign_in_failures (key, at_ms) VALUES ($1, $2)", &[&key, &at_ms])
            .await
            .map_err(pg("counting a failed sign-in"))?;
        tx.commit().await.map_err(pg("counting a failed sign-in"))?;
        Ok(())
    }

    async fn sign_in_failures(&self, key: &str, since_ms: i64) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM sign_in_failures WHERE key = $1 AND at_ms >= $2",
                &[&key, &since_ms],
            )
            .await
            .map_err(pg("reading failed sign-ins"))?;
        Ok(u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX))
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM sign_in_failures WHERE key = $1", &[&key])
            .await
            .map_err(pg("clearing failed sign-ins"))?;
        Ok(())
    }

    async fn audit(&self, e: AuditEntry) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES ($1, $2, $3, $4)",
                &[&e.at_ms, &e.actor, &e.action, &e.detail],
            )
            .await
            .map_err(pg("writing the audit log"))?;
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at_ms, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                &[&sql_limit(limit)],
            )
            .await
            .map_err(pg("reading the audit log"))?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at_ms: r.try_get(0).map_err(get_err)?,
                    actor: r.try_get(1).map_err(get_err)?,
                    action: r.try_get(2).map_err(get_err)?,
                    detail: r.try_get(3).map_err(get_err)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Transcripts for PostgresStore {
    async fn record(
        &self,
        user: &Address,
        bot: Option<&Address>,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        let Some(last) = lines.last() else { return Ok(()) };
        let (ch, id) = (user.channel().as_str(), user.id());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("recording a transcript"))?;
        let line = tx
            .prepare_cached(
                "INSERT INTO transcript_lines (channel, address, speaker, author, text, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await
            .map_err(pg("recording a transcript line"))?;
        for l in &lines {
            tx.execute(&line, &[&ch, &id, &l.speaker.as_str(), &l.author, &l.text, &l.at_ms])
                .await
                .map_err(pg("recording a transcript line"))?;
        }
        let conversation = tx
            .prepare_cached(
                "INSERT INTO conversations (channel, address, bot, last_ms, last_text) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (channel, address) DO UPDATE SET
                     bot = coalesce(excluded.bot, conversations.bot), last_ms = excluded.last_ms,
                     last_text = excluded.last_text",
            )
            .await
            .map_err(pg("recording a conversation"))?;
        tx.execute(&conversation, &[&ch, &id, &bot.map(Address::id), &last.at_ms, &last.text])
            .await
            .map_err(pg("recording a conversation"))?;
        tx.commit().await.map_err(pg("recording a transcript"))?;
        Ok(())
    }

    async fn set_handed_over(&self, user: &Address, since_ms: Option<i64>) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO conversations (channel, address, handed_over_ms, last_ms, last_text)
                 VALUES ($1, $2, $3::BIGINT, coalesce($3::BIGINT, 0), '')
                 ON CONFLICT (channel, address) DO UPDATE SET handed_over_ms = excluded.handed_over_ms",
                &[&user.channel().as_str(), &user.id(), &since_ms],
            )
            .await
            .map_err(pg("marking a handover"))?;
        Ok(())
    }

    async fn conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "{SUMMARY} ORDER BY handed_over_ms IS NULL, handed_over_ms, last_ms DESC, channel, address LIMIT $1"
        );
        let rows = client.query(&sql, &[&sql_limit(limit)]).await.map_err(pg("listing conversations"))?;
        rows.iter().map(summary).collect()
    }

    async fn conversation(&self, user: &Address) -> Result<Option<ConversationSummary>, StoreError> {
        let client = self.client().await?;
        let sql = format!("{SUMMARY} WHERE channel = $1 AND address = $2");
        let row = client
            .query_opt(&sql, &[&user.channel().as_str(), &user.id()])
            .await
            .map_err(pg("reading a conversation"))?;
        row.as_ref().map(summary).transpose()
    }

    async fn transcript(&self, user: &Address, limit: usize) -> Result<Vec<TranscriptLine>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT speaker, author, text, at_ms FROM transcript_lines
                 WHERE channel = $1 AND address = $2 ORDER BY id DESC LIMIT $3",
                &[&user.channel().as_str(), &user.id(), &sql_limit(limit)],
            )
            .await
            .map_err(pg("reading a transcript"))?;
        let mut lines = rows
            .iter()
            .map(|r| {
                let speaker: String = r.try_get(0).map_err(get_err)?;
                Ok(TranscriptLine {
                    speaker: Speaker::parse(&speaker).unwrap_or(Speaker::Bot),
                    author: r.try_get(1).map_err(get_err)?,
                    text: r.try_get(2).map_err(get_err)?,
                    at_ms: r.try_get(3).map_err(get_err)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        lines.reverse();
        Ok(lines)
    }

    async fn prune_transcripts(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("pruning transcripts"))?;
        let lines = tx
            .execute("DELETE FROM transcript_lines WHERE at_ms < $1", &[&before_ms])
            .await
            .map_err(pg("pruning transcripts"))?;
        let conversations = tx
            .execute("DELETE FROM conversations WHERE handed_over_ms IS NULL AND last_ms < $1", &[&before_ms])
            .await
            .map_err(pg("pruning conversations"))?;
        tx.commit().await.map_err(pg("pruning transcripts"))?;
        Ok(usize::try_from(lines + conversations).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl Figures for PostgresStore {
    async fn count_turn(&self, day: i64, kind: &str, topic: Option<&str>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let count = client
            .prepare_cached(
                "INSERT INTO turn_counts (day, kind, topic, count) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (day, kind, topic) DO UPDATE SET count = turn_counts.count + 1",
            )
            .await
            .map_err(pg("counting a turn"))?;
        client.execute(&count, &[&day, &kind, &topic.unwrap_or("")]).await.map_err(pg("counting a turn"))?;
        Ok(())
    }

    async fn agent_replied(&self, at_ms: i64, waited_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("INSERT INTO reply_waits (at_ms, waited_ms) VALUES ($1, $2)", &[&at_ms, &waited_ms])
            .await
            .map_err(pg("recording a reply's wait"))?;
        Ok(())
    }

    async fn day_counts(&self, since_day: i64) -> Result<Vec<DayCount>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT day, kind, sum(count)::BIGINT FROM turn_counts WHERE day >= $1
                 GROUP BY day, kind ORDER BY day, kind",
                &[&since_day],
            )
            .await
            .map_err(pg("reading the turn counts"))?;
        rows.iter()
            .map(|r| {
                Ok(DayCount {
                    day: r.try_get(0).map_err(get_err)?,
                    kind: r.try_get(1).map_err(get_err)?,
                    count: r.try_get(2).map_err(get_err)?,
                })
            })
            .collect()
    }

    async fn top_topics(&self, since_day: i64, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT topic, sum(count)::BIGINT AS n FROM turn_counts WHERE day >= $1 AND topic <> ''
                 GROUP BY topic ORDER BY n DESC, topic LIMIT $2",
                &[&since_day, &sql_limit(limit)],
            )
            .await
            .map_err(pg("reading the top topics"))?;
        rows.iter().map(|r| Ok((r.try_get(0).map_err(get_err)?, r.try_get(1).map_err(get_err)?))).collect()
    }

    async fn reply_waits(&self, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT waited_ms FROM reply_waits WHERE at_ms >= $1", &[&since_ms])
            .await
            .map_err(pg("reading the reply waits"))?;
        rows.iter().map(|r| r.try_get(0).map_err(get_err)).collect()
    }
}

#[async_trait]
impl Resend for PostgresStore {
    async fn resend_mail(&self, ticket: &str, actor: &str, now_ms: i64) -> Result<bool, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        let client = self.client().await?;
        // One statement: the row's change and its history's event commit together.
        let n = client
            .execute(
                "WITH done AS (
                     UPDATE outbox SET state = 'queued', next_attempt_ms = $2, permanent_failures = 0,
                         sent_ms = NULL
                     WHERE request_id = (SELECT id FROM requests WHERE ticket = $1) RETURNING id)
                 INSERT INTO mail_events (outbox_id, at_ms, kind, actor) SELECT id, $2, 'resent', $3 FROM done",
                &[&ticket, &now_ms, &actor],
            )
            .await
            .map_err(pg("queueing an e-mail again"))?;
        Ok(n == 1)
    }
}
