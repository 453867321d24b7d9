//! One turn's commit inside the writer's transaction: the message id's claim, the session's
//! version check and write, a confirmed request with its ticket and outbox row, a declined
//! question's count — each turn in its own savepoint, so a conflict or a duplicate rolls
//! back that turn alone.

use rusqlite::{Connection, TransactionBehavior, params};

use super::backend;
use super::rows::{exec, lang_code, one};
use crate::domain::format_ticket;
use crate::domain::{NewRequest, TICKET_PLACEHOLDER};
use crate::store::StoreError;
use crate::store::roles::{Committed, NewOutbound, Turn};

pub(super) fn insert_request(tx: &Connection, turn: &Turn, req: &NewRequest) -> Result<String, StoreError> {
    // The year of the request, in UTC, and the next number of that year: both inside the
    // transaction, so two requests never share a ticket.
    let year: i64 =
        one(tx, "SELECT CAST(strftime('%Y', ?1 / 1000, 'unixepoch') AS INTEGER)", [turn.now_ms], |r| {
            r.get(0)
        })?
        .ok_or_else(|| backend("no year for the request's time"))?;
    let seq: i64 = one(
        tx,
        "INSERT INTO ticket_seq (year, last) VALUES (?1, 1)
         ON CONFLICT (year) DO UPDATE SET last = last + 1 RETURNING last",
        [year],
        |r| r.get(0),
    )?
    .ok_or_else(|| backend("no ticket number allocated"))?;
    let ticket = format_ticket(year, seq);
    exec(
        tx,
        "INSERT INTO requests (ticket, channel, address, message_id, kind, kind_label, recipient,
             first_name, last_name, employee_id, employee_email, department, details, lang, created_ms)
         VALUES (?1, ?15, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            ticket,
            turn.user.id(),
            turn.message_id.as_ref().map(|m| m.as_str()),
            req.kind,
            req.kind_label,
            req.recipient,
            req.first_name,
            req.last_name,
            req.employee_id,
            req.employee_email,
            req.department,
            req.details,
            lang_code(req.lang),
            turn.now_ms,
            turn.user.channel().as_str()
        ],
    )?;
    let request_id = tx.last_insert_rowid();
    exec(
        tx,
        "INSERT INTO outbox (request_id, state, next_attempt_ms) VALUES (?1, 'queued', ?2)",
        params![request_id, turn.now_ms],
    )?;
    Ok(ticket)
}

/// How a turn's session is committed.
#[derive(Debug, Clone, Copy)]
pub(super) enum SessionWrite {
    /// Written as the turn has it, over the version the turn was computed on.
    Store,
    /// Left as stored (the turn did not change it): only its version is checked.
    Keep,
}

/// What one turn wrote: its result, and the session as it wrote it, for the cache.
#[derive(Debug)]
pub(super) struct Written {
    pub(super) committed: Committed,
    pub(super) session: Option<Box<str>>,
}

/// One turn's statements, inside the group's transaction (in a savepoint).
pub(super) fn commit_in(tx: &Connection, turn: &Turn, session: SessionWrite) -> Result<Written, StoreError> {
    // Claim the message id first: a duplicate stops here, before anything is written.
    // Without a request the reply is already final; with one it waits for its ticket.
    let (channel, address) = (turn.user.channel().as_str(), turn.user.id());
    if let Some(sid) = turn.message_id.as_ref().map(|m| m.as_str()) {
        let reply = match turn.request {
            None => serde_json::to_string(&turn.messages).map_err(backend)?,
            Some(_) => "[]".to_owned(),
        };
        let claimed = exec(
            tx,
            "INSERT INTO messages (channel, message_id, address, reply, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (channel, message_id) DO NOTHING",
            params![channel, sid, address, reply, turn.now_ms],
        )?;
        if claimed == 0 {
            let reply: String = one(
                tx,
                "SELECT reply FROM messages WHERE channel = ?1 AND message_id = ?2",
                [channel, sid],
                |r| r.get(0),
            )?
            .ok_or_else(|| backend("a claimed message id has no row"))?;
            let messages = serde_json::from_str(&reply).map_err(backend)?;
            let committed = Committed { messages, ticket: None, replayed: true };
            return Ok(Written { committed, session: None });
        }
    }
    // The session, only over the version the turn was computed on; otherwise rolling back
    // the savepoint takes the message id's claim back too.
    let written = match session {
        SessionWrite::Keep => {
            let stored = one(
                tx,
                "SELECT version FROM sessions WHERE channel = ?1 AND address = ?2",
                [channel, address],
                |r| r.get::<_, i64>(0),
            )?;
            usize::from(stored == Some(turn.session_version))
        }
        SessionWrite::Store if turn.session_version == 0 => exec(
            tx,
            "INSERT INTO sessions (channel, address, data, version, updated_ms) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (channel, address) DO NOTHING",
            params![channel, address, turn.session, turn.now_ms],
        )?,
        SessionWrite::Store => exec(
            tx,
            "UPDATE sessions SET data = ?3, version = version + 1, updated_ms = ?4
             WHERE channel = ?1 AND address = ?2 AND version = ?5",
            params![channel, address, turn.session, turn.now_ms, turn.session_version],
        )?,
    };
    if written == 0 {
        return Err(StoreError::Conflict);
    }
    let ticket = turn.request.as_ref().map(|req| insert_request(tx, turn, req)).transpose()?;
    if let Some(mail) = &turn.mail {
        exec(
            tx,
            "INSERT INTO outbox (state, next_attempt_ms, recipient, subject, body, created_ms)
             VALUES ('queued', ?1, ?2, ?3, ?4, ?1)",
            params![turn.now_ms, mail.recipient, mail.subject, mail.body],
        )?;
    }
    let messages: Vec<String> = match &ticket {
        Some(t) => turn.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, t)).collect(),
        None => turn.messages.clone(),
    };
    if let (Some(sid), Some(_)) = (&turn.message_id, &ticket) {
        let reply = serde_json::to_string(&messages).map_err(backend)?;
        exec(
            tx,
            "UPDATE messages SET reply = ?3 WHERE channel = ?1 AND message_id = ?2",
            params![channel, sid.as_str(), reply],
        )?;
    }
    if !turn.outbound.is_empty() {
        let payloads = turn.outbound.iter().map(|o| match &ticket {
            Some(t) => NewOutbound { payload: o.payload.replace(TICKET_PLACEHOLDER, t), ..o.clone() },
            None => o.clone(),
        });
        super::outbound::insert(tx, payloads, turn.now_ms)?;
        if turn.message_id.is_some() {
            super::outbound::inbound(tx, &turn.user, turn.now_ms)?;
        }
    }
    if let Some(question) = &turn.unanswered {
        exec(
            tx,
            "INSERT INTO unanswered (question, count, first_ms, last_ms) VALUES (?1, 1, ?2, ?2)
             ON CONFLICT(question) DO UPDATE SET count = count + 1, last_ms = excluded.last_ms",
            params![question, turn.now_ms],
        )?;
    }
    let session = match session {
        SessionWrite::Store => Some(turn.session.as_str().into()),
        SessionWrite::Keep => None,
    };
    Ok(Written { committed: Committed { messages, ticket, replayed: false }, session })
}

/// Runs `f` in a savepoint: kept when it succeeds, rolled back — it alone — when it fails.
/// The outer error means the transaction itself can no longer be trusted.
pub(super) fn in_savepoint<R>(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<Result<R, StoreError>, StoreError> {
    exec(tx, "SAVEPOINT turn", [])?;
    match f(tx) {
        Ok(r) => {
            exec(tx, "RELEASE turn", [])?;
            Ok(Ok(r))
        }
        Err(e) => {
            exec(tx, "ROLLBACK TO turn", [])?;
            exec(tx, "RELEASE turn", [])?;
            Ok(Err(e))
        }
    }
}

/// Commits `turns` in one transaction, each turn in its own savepoint; every result is an
/// error if the transaction itself does not commit.
pub(super) fn commit_batch(
    conn: &mut Connection,
    turns: &[&Turn],
    sessions: &[SessionWrite],
) -> Vec<Result<Written, StoreError>> {
    let failed = |e: &dyn std::fmt::Display| turns.iter().map(|_| Err(backend(e.to_string()))).collect();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let mut results = Vec::with_capacity(turns.len());
    for (turn, session) in turns.iter().zip(sessions) {
        match in_savepoint(&tx, |sp| commit_in(sp, turn, *session)) {
            Ok(result) => results.push(result),
            // Dropping the transaction rolls the whole batch back.
            Err(e) => return failed(&e),
        }
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}
