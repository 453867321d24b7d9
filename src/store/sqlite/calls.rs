//! The store's calls, synchronous: each runs on the calling thread against the reader
//! connection, or through the writer (a turn waits for its batch).

use rusqlite::params;

use super::rows::{
    PHOTO_COLUMNS, RECORD_COLUMNS, address, all, exec, lang_code, one, pending_photo, record, sql_limit,
};
use super::sessions::{Cached, Stored};
use super::{Blocking, Done, PRUNE_CHUNK, Sync, backend, chunk_len, failed};
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord, Unanswered};
use crate::store::StoreError;
use crate::store::roles::{
    Committed, Enqueued, MailEvent, MailEventKind, NewMail, OutboxItem, OutboxMail, PendingPhoto, PhotoJob,
    StoredMail, StoredSession, Turn,
};
#[cfg(doc)]
use crate::store::roles::{Jobs, Maintenance, Outbox, Reports, Sessions, Turns};

impl Blocking {
    /// The user's stored session, from the cache when it has it (see [`Sessions::session`]).
    pub fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError> {
        if let Some(known) = self.cached_session(user) {
            return Ok(known);
        }
        let row: Option<(String, i64, i64)> = self.read(|c| {
            one(
                c,
                "SELECT data, version, updated_ms FROM sessions WHERE channel = ?1 AND address = ?2",
                [user.channel().as_str(), user.id()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        Ok(row.map(|(data, version, updated_ms)| {
            self.sessions.offer(user, Stored { data: data.as_str().into(), version, updated_ms });
            StoredSession { data, version }
        }))
    }

    /// What the cache knows of the user's session (see [`Sessions::cached_session`]).
    pub fn cached_session(&self, user: &Address) -> Option<Option<StoredSession>> {
        match self.sessions.get(user) {
            Cached::Session(s) => Some(Some(StoredSession { data: s.data.into(), version: s.version })),
            Cached::None => Some(None),
            Cached::Unknown => None,
        }
    }

    /// See [`Turns::replay`].
    pub fn replay(
        &self,
        channel: Channel,
        message_id: &MessageId,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let reply: Option<String> = self.read(|c| {
            one(
                c,
                "SELECT reply FROM messages WHERE channel = ?1 AND message_id = ?2",
                [channel.as_str(), message_id.as_str()],
                |r| r.get(0),
            )
        })?;
        reply.map(|r| serde_json::from_str(&r).map_err(backend)).transpose()
    }

    /// Commits `turn` through the writer thread and waits for it (see [`Turns::commit`]).
    pub fn commit(&self, turn: &Turn) -> Result<Committed, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue(Box::new(turn.clone()), Done::Blocking(tx));
        rx.recv().map_err(|e| failed("the store's writer stopped", e))?
    }

    /// See [`Outbox::due_mail`].
    pub fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        // A row with no request is an e-mail of its own (see `Turn::mail`).
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, o.recipient, o.subject, o.body, o.created_ms, o.attempts
             FROM outbox o LEFT JOIN requests r ON r.id = o.request_id
             WHERE o.state = 'queued' AND o.next_attempt_ms <= ?1
             ORDER BY o.next_attempt_ms, o.id LIMIT ?2"
        );
        self.read(|c| {
            all(c, &sql, params![now_ms, sql_limit(limit)], |row| {
                let Some(recipient) = row.get::<_, Option<String>>(20)? else {
                    let (id, request) = record(row)?;
                    return Ok(OutboxItem { id, mail: OutboxMail::Request(Box::new(request)) });
                };
                let mail = NewMail { recipient, subject: row.get(21)?, body: row.get(22)? };
                let attempts: i64 = row.get(24)?;
                let stored = StoredMail {
                    mail,
                    created_ms: row.get(23)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                };
                Ok(OutboxItem { id: row.get(18)?, mail: OutboxMail::Other(stored) })
            })
        })
    }

    /// See [`Outbox::next_mail_due_after`].
    pub fn next_mail_due_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            one(
                c,
                "SELECT min(next_attempt_ms) FROM outbox WHERE state = 'queued' AND next_attempt_ms > ?1",
                [after_ms],
                |r| r.get(0),
            )
            .map(Option::flatten)
        })
    }

    /// See [`Outbox::outbox_depth`].
    pub fn outbox_depth(&self) -> Result<u64, StoreError> {
        let n: Option<i64> =
            self.read(|c| one(c, "SELECT count(*) FROM outbox WHERE state = 'queued'", [], |r| r.get(0)))?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// See [`Reports::mail_history`].
    pub fn mail_history(&self, ticket: &str) -> Result<Vec<MailEvent>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        self.read(|c| {
            all(
                c,
                "SELECT e.at_ms, e.kind, e.error, e.retry_at_ms, e.actor FROM mail_events e
                 JOIN outbox o ON o.id = e.outbox_id JOIN requests r ON r.id = o.request_id
                 WHERE r.ticket = ?1 ORDER BY e.id",
                [ticket],
                |r| {
                    let kind: String = r.get(1)?;
                    Ok(MailEvent {
                        at_ms: r.get(0)?,
                        kind: MailEventKind::parse(&kind).unwrap_or(MailEventKind::Failed),
                        error: r.get(2)?,
                        retry_at_ms: r.get(3)?,
                        actor: r.get(4)?,
                    })
                },
            )
        })
    }

    /// See [`Reports::unanswered`].
    pub fn unanswered(&self, limit: usize) -> Result<Vec<Unanswered>, StoreError> {
        self.read(|c| {
            all(
                c,
                "SELECT question, count, first_ms, last_ms FROM unanswered
                 ORDER BY count DESC, last_ms DESC LIMIT ?1",
                [sql_limit(limit)],
                |r| {
                    Ok(Unanswered {
                        question: r.get(0)?,
                        count: r.get(1)?,
                        first_ms: r.get(2)?,
                        last_ms: r.get(3)?,
                    })
                },
            )
        })
    }

    /// See [`Outbox::mark_sent`].
    pub fn mark_sent(&self, outbox_id: i64, at_ms: i64) -> Result<(), StoreError> {
        // Flushed: a "sent" forgotten in a power cut would send the e-mail again.
        self.write(Sync::Full, |tx| {
            let n = exec(
                tx,
                "UPDATE outbox SET state = 'sent', sent_ms = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
                params![outbox_id, at_ms],
            )?;
            if n == 1 {
                mail_event(tx, outbox_id, at_ms, MailEventKind::Sent, None, None, None)?;
            }
            Ok(())
        })
    }

    /// See [`Outbox::claim_mail`].
    pub fn claim_mail(&self, outbox_id: i64, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let taken = self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "UPDATE outbox SET next_attempt_ms = ?3
                 WHERE id = ?1 AND state = 'queued' AND next_attempt_ms <= ?2",
                params![outbox_id, now_ms, until_ms],
            )
        })?;
        Ok(taken == 1)
    }

    /// See [`Outbox::mark_failed`].
    pub fn mark_failed(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            let n = exec(
                tx,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
                 WHERE id = ?1 AND state = 'queued'",
                params![outbox_id, error, retry_at_ms],
            )?;
            if n == 1 {
                let kind = MailEventKind::Failed;
                mail_event(tx, outbox_id, at_ms, kind, Some(error), Some(retry_at_ms), None)?;
            }
            Ok(())
        })
    }

    /// See [`Outbox::mark_rejected`].
    pub fn mark_rejected(
        &self,
        outbox_id: i64,
        error: &str,
        at_ms: i64,
        retry_at_ms: i64,
        dead_after: u32,
    ) -> Result<MailState, StoreError> {
        let state: Option<String> = self.write(Sync::Normal, |tx| {
            let state: Option<String> = one(
                tx,
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3,
                     permanent_failures = permanent_failures + 1,
                     state = CASE WHEN permanent_failures + 1 >= ?4 THEN 'dead' ELSE 'queued' END
                 WHERE id = ?1 AND state = 'queued'
                 RETURNING state",
                params![outbox_id, error, retry_at_ms, i64::from(dead_after.max(1))],
                |r| r.get(0),
            )?;
            if let Some(state) = &state {
                let retry = (state != "dead").then_some(retry_at_ms);
                mail_event(tx, outbox_id, at_ms, MailEventKind::Rejected, Some(error), retry, None)?;
            }
            Ok(state)
        })?;
        Ok(if state.as_deref() == Some("dead") { MailState::Dead } else { MailState::Queued })
    }

    /// See [`Outbox::dead_mail`].
    pub fn dead_mail(&self) -> Result<u64, StoreError> {
        let n: Option<i64> =
            self.read(|c| one(c, "SELECT count(*) FROM outbox WHERE state = 'dead'", [], |r| r.get(0)))?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// See [`Reports::requests`].
    pub fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
             ORDER BY r.id DESC LIMIT ?1"
        );
        let rows = self.read(|c| all(c, &sql, [sql_limit(limit)], record))?;
        Ok(rows.into_iter().map(|(_, rec)| rec).collect())
    }

    /// See [`crate::store::Reports::find_requests`]: filtered by the database.
    pub fn find_requests(
        &self,
        query: &crate::store::RequestQuery,
        limit: usize,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mail = query.mail.map(|m| match m {
            MailState::Queued => "queued",
            MailState::Sent => "sent",
            MailState::Dead => "dead",
        });
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
             WHERE (?1 IS NULL OR r.kind = ?1) AND (?2 IS NULL OR o.state = ?2)
               AND (?3 IS NULL OR r.created_ms >= ?3) AND (?4 IS NULL OR r.created_ms < ?4)
             ORDER BY r.id DESC LIMIT ?5"
        );
        let params = rusqlite::params![query.kind, mail, query.from_ms, query.until_ms, sql_limit(limit)];
        let rows = self.read(|c| all(c, &sql, params, record))?;
        Ok(rows.into_iter().map(|(_, rec)| rec).collect())
    }

    /// See [`crate::store::Reports::count_requests`].
    pub fn count_requests(
        &self,
        query: &crate::store::RequestQuery,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mail = query.mail.map(|m| match m {
            MailState::Queued => "queued",
            MailState::Sent => "sent",
            MailState::Dead => "dead",
        });
        let sql = "SELECT r.kind, count(*) FROM requests r JOIN outbox o ON o.request_id = r.id
             WHERE (?1 IS NULL OR r.kind = ?1) AND (?2 IS NULL OR o.state = ?2)
               AND (?3 IS NULL OR r.created_ms >= ?3) AND (?4 IS NULL OR r.created_ms < ?4)
             GROUP BY r.kind ORDER BY count(*) DESC, r.kind";
        let params = rusqlite::params![query.kind, mail, query.from_ms, query.until_ms];
        self.read(|c| {
            all(c, sql, params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.unsigned_abs())))
        })
    }

    /// See [`crate::store::Reports::request_kinds`].
    pub fn request_kinds(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| all(c, "SELECT DISTINCT kind FROM requests ORDER BY kind", [], |r| r.get(0)))
    }

    /// Forgets old message ids and idle sessions (see [`Maintenance::prune`]).
    ///
    /// In short transactions, so that turns commit in between: message ids oldest first
    /// along the table (they are inserted in time order), stopping at the first one to
    /// keep; sessions found on the reader connection, then deleted unless a turn touched
    /// them meanwhile.
    pub fn prune(&self, messages_before_ms: i64, sessions_before_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        // Sent and dropped outbound messages are kept as long as message ids: a week.
        loop {
            let deleted = self.write(Sync::Normal, |tx| {
                exec(
                    tx,
                    "DELETE FROM outbound WHERE id IN (SELECT id FROM outbound
                         WHERE state != 'queued' AND created_ms < ?1 ORDER BY id LIMIT ?2)",
                    params![messages_before_ms, PRUNE_CHUNK],
                )
            })?;
            removed += deleted;
            if deleted < chunk_len() {
                break;
            }
        }
        loop {
            let (deleted, done) = self.write(Sync::Normal, |tx| {
                let rows: Vec<(i64, i64)> = all(
                    tx,
                    "SELECT rowid, received_ms FROM messages ORDER BY rowid LIMIT ?1",
                    [PRUNE_CHUNK],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let old = rows.iter().take_while(|(_, at)| *at < messages_before_ms).count();
                let Some(&(last, _)) = old.checked_sub(1).and_then(|i| rows.get(i)) else {
                    return Ok((0, true));
                };
                let deleted = exec(tx, "DELETE FROM messages WHERE rowid <= ?1", [last])?;
                Ok((deleted, old < rows.len() || rows.len() < chunk_len()))
            })?;
            removed += deleted;
            if done {
                break;
            }
        }
        let mut after = i64::MIN;
        loop {
            // The candidates, a range of rows at a time, without holding the writer.
            let (rows, last) = self.read(|c| {
                let rows: Vec<(i64, Address, i64)> = all(
                    c,
                    "SELECT rowid, channel, address, updated_ms FROM sessions WHERE rowid > ?1
                     ORDER BY rowid LIMIT ?2",
                    params![after, PRUNE_CHUNK],
                    |r| Ok((r.get(0)?, address(r, 1, 2)?, r.get(3)?)),
                )?;
                let last = rows.last().map(|(id, ..)| *id);
                let idle = rows.into_iter().filter(|(.., at)| *at < sessions_before_ms).map(|(_, u, _)| u);
                Ok((idle.collect::<Vec<_>>(), last))
            })?;
            if !rows.is_empty() {
                removed += self.write(Sync::Normal, |tx| {
                    let mut deleted = 0;
                    for user in &rows {
                        // Still idle? A turn may have come since the read.
                        if exec(
                            tx,
                            "DELETE FROM sessions WHERE channel = ?1 AND address = ?2 AND updated_ms < ?3",
                            params![user.channel().as_str(), user.id(), sessions_before_ms],
                        )? > 0
                        {
                            deleted += 1;
                            // Under the writer's lock: no turn commits in between. Should
                            // the transaction fail, forgetting costs only a read.
                            self.sessions.pruned(user);
                        }
                    }
                    Ok(deleted)
                })?;
            }
            match last {
                Some(id) => after = id,
                None => break,
            }
        }
        Ok(removed)
    }

    /// See [`Jobs::enqueue_photo`].
    pub fn enqueue_photo(
        &self,
        job: &PhotoJob,
        reply: &[String],
        held_until_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let reply = serde_json::to_string(reply).map_err(backend)?;
        self.write(Sync::Full, |tx| {
            let channel = job.user.channel().as_str();
            if let Some(sid) = &job.message_id {
                let claimed = exec(
                    tx,
                    "INSERT INTO messages (channel, message_id, address, reply, received_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (channel, message_id) DO NOTHING",
                    params![channel, sid.as_str(), job.user.id(), reply, job.created_ms],
                )?;
                if claimed == 0 {
                    let first: String = one(
                        tx,
                        "SELECT reply FROM messages WHERE channel = ?1 AND message_id = ?2",
                        [channel, sid.as_str()],
                        |r| r.get(0),
                    )?
                    .ok_or_else(|| backend("a claimed message id has no row"))?;
                    return Ok(Enqueued::Replayed(serde_json::from_str(&first).map_err(backend)?));
                }
                super::outbound::inbound(tx, &job.user, job.created_ms)?;
            }
            exec(
                tx,
                "INSERT INTO photo_jobs (message_id, channel, address, bot, media_url, content_type, lang,
                     created_ms, claimed_until_ms)
                 VALUES (?1, ?8, ?2, ?3, ?4, ?5, ?6, ?7, ?9)",
                params![
                    job.message_id.as_ref().map(MessageId::as_str),
                    job.user.id(),
                    job.bot.id(),
                    job.media_url,
                    job.content_type,
                    lang_code(job.lang),
                    job.created_ms,
                    channel,
                    held_until_ms
                ],
            )?;
            Ok(Enqueued::Queued(tx.last_insert_rowid()))
        })
    }

    /// See [`Jobs::pending_photos`].
    pub fn pending_photos(&self, limit: usize) -> Result<Vec<PendingPhoto>, StoreError> {
        self.read(|c| {
            all(
                c,
                &format!("SELECT {PHOTO_COLUMNS} FROM photo_jobs ORDER BY created_ms, id LIMIT ?1"),
                [sql_limit(limit)],
                pending_photo,
            )
        })
    }

    /// See [`Jobs::claim_photos`]. The jobs are chosen and leased in one write
    /// transaction, so two callers never take one job.
    pub fn claim_photos(
        &self,
        channels: &[Channel],
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingPhoto>, StoreError> {
        if channels.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
        let channels = serde_json::to_string(&channels).map_err(backend)?;
        self.write(Sync::Full, |tx| {
            let claimed = all(
                tx,
                &format!(
                    "SELECT {PHOTO_COLUMNS} FROM photo_jobs
                     WHERE claimed_until_ms <= ?1 AND channel IN (SELECT value FROM json_each(?2))
                     ORDER BY created_ms, id LIMIT ?3"
                ),
                params![now_ms, channels, sql_limit(limit)],
                pending_photo,
            )?;
            for photo in &claimed {
                exec(
                    tx,
                    "UPDATE photo_jobs SET claimed_until_ms = ?2 WHERE id = ?1",
                    params![photo.id, until_ms],
                )?;
            }
            Ok(claimed)
        })
    }

    /// See [`Jobs::release_photos`].
    pub fn release_photos(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(Sync::Full, |tx| {
            for id in ids {
                exec(tx, "UPDATE photo_jobs SET claimed_until_ms = 0 WHERE id = ?1", [id])?;
            }
            Ok(())
        })
    }

    /// See [`Jobs::photo_done`].
    ///
    /// Deletes the job rather than marking it: the outcome is in the log and the metrics,
    /// the message id's claim (in `messages`) keeps answering redeliveries, and a done
    /// job's user number and media URL are nothing to keep. Flushed: a "done" lost in a
    /// power cut would send the result again.
    pub fn photo_done(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = self.write(Sync::Full, |tx| exec(tx, "DELETE FROM photo_jobs WHERE id = ?1", [id]))?;
        Ok(deleted > 0)
    }

    /// See [`Jobs::finish_photo`](crate::store::Jobs::finish_photo).
    pub fn finish_photo(
        &self,
        id: i64,
        outbound: Vec<crate::store::NewOutbound>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(Sync::Full, |tx| {
            if exec(tx, "DELETE FROM photo_jobs WHERE id = ?1", [id])? == 0 {
                return Ok(false);
            }
            super::outbound::insert(tx, outbound, now_ms)?;
            Ok(true)
        })
    }

    /// See [`Reports::request`].
    pub fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
        let ticket = ticket.trim().to_ascii_uppercase();
        self.read(|c| {
            one(
                c,
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM requests r JOIN outbox o ON o.request_id = r.id
                     WHERE r.ticket = ?1"
                ),
                [ticket],
                record,
            )
            .map(|r| r.map(|(_, rec)| rec))
        })
    }
}

/// Appends one event to an e-mail's delivery history, inside the caller's transaction.
pub(super) fn mail_event(
    tx: &rusqlite::Connection,
    outbox_id: i64,
    at_ms: i64,
    kind: MailEventKind,
    error: Option<&str>,
    retry_at_ms: Option<i64>,
    actor: Option<&str>,
) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO mail_events (outbox_id, at_ms, kind, error, retry_at_ms, actor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![outbox_id, at_ms, kind.as_str(), error, retry_at_ms, actor],
    )?;
    Ok(())
}
