//! The schema: one migration per entry, applied in order from `PRAGMA user_version` when the
//! database is opened.

use rusqlite::{Connection, TransactionBehavior};

use super::{backend, failed};
use crate::store::StoreError;

/// The schema, one migration per entry; applied in order from `user_version`. Never edit
/// a shipped entry: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sessions (
    user        TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE messages (
    sid         TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    reply       TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE TABLE ticket_seq (
    year        INTEGER PRIMARY KEY,
    last        INTEGER NOT NULL
);
CREATE TABLE requests (
    id              INTEGER PRIMARY KEY,
    ticket          TEXT NOT NULL UNIQUE,
    user            TEXT NOT NULL,
    message_sid     TEXT UNIQUE,
    kind            TEXT NOT NULL,
    kind_label      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    employee_id     TEXT,
    employee_email  TEXT,
    department      TEXT,
    details         TEXT,
    lang            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    request_id      INTEGER NOT NULL UNIQUE REFERENCES requests(id),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    sent_ms         INTEGER
);
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE state = 'queued';
",
    r"
CREATE TABLE unanswered (
    question    TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL
);
CREATE INDEX unanswered_count ON unanswered(count DESC);
",
    // Badge photos accepted and not yet answered; a row is deleted once its result is sent
    // (see `Jobs::photo_done`), so the table is the pending set and stays small.
    r"
CREATE TABLE photo_jobs (
    id           INTEGER PRIMARY KEY,
    message_sid  TEXT UNIQUE,
    user         TEXT NOT NULL,
    bot          TEXT NOT NULL,
    media_url    TEXT NOT NULL,
    content_type TEXT,
    lang         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL
);
",
    // The dead letter: an e-mail the SMTP server rejected permanently (5xx) too many times
    // ends in state 'dead', never tried again. SQLite cannot change a CHECK constraint, so
    // the table is rebuilt, rows and ids kept.
    r"
CREATE TABLE outbox_v4 (
    id                 INTEGER PRIMARY KEY,
    request_id         INTEGER NOT NULL UNIQUE REFERENCES requests(id),
    state              TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms    INTEGER NOT NULL,
    last_error         TEXT,
    sent_ms            INTEGER,
    permanent_failures INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_v4 (id, request_id, state, attempts, next_attempt_ms, last_error, sent_ms)
    SELECT id, request_id, state, attempts, next_attempt_ms, last_error, sent_ms FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE state = 'queued';
",
    // Users are addresses on a channel, and messages are keyed by the channel's message id:
    // the same number on two channels is two users. Every row before this step came through
    // Twilio, which spelled the user `whatsapp:+…`; the channel now holds what the prefix
    // said. Sessions and claimed messages are rebuilt (their keys change), rows and rowids
    // kept in order (pruning walks them by rowid); requests and photo jobs keep their
    // tables, with columns renamed and the channel added.
    r"
CREATE TABLE sessions_v5 (
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    data        TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
);
INSERT OR REPLACE INTO sessions_v5 (rowid, channel, address, data, version, updated_ms)
    SELECT rowid, 'twilio', CASE WHEN user LIKE 'whatsapp:%' THEN substr(user, 10) ELSE user END,
           data, version, updated_ms
    FROM sessions ORDER BY rowid;
DROP TABLE sessions;
ALTER TABLE sessions_v5 RENAME TO sessions;
CREATE TABLE messages_v5 (
    channel     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    reply       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, message_id)
);
INSERT INTO messages_v5 (rowid, channel, message_id, address, reply, received_ms)
    SELECT rowid, 'twilio', sid, CASE WHEN user LIKE 'whatsapp:%' THEN substr(user, 10) ELSE user END,
           reply, received_ms
    FROM messages ORDER BY rowid;
DROP TABLE messages;
ALTER TABLE messages_v5 RENAME TO messages;
ALTER TABLE requests RENAME COLUMN user TO address;
ALTER TABLE requests RENAME COLUMN message_sid TO message_id;
ALTER TABLE requests ADD COLUMN channel TEXT NOT NULL DEFAULT 'twilio';
UPDATE requests SET address = substr(address, 10) WHERE address LIKE 'whatsapp:%';
ALTER TABLE photo_jobs RENAME COLUMN message_sid TO message_id;
ALTER TABLE photo_jobs RENAME COLUMN user TO address;
ALTER TABLE photo_jobs ADD COLUMN channel TEXT NOT NULL DEFAULT 'twilio';
UPDATE photo_jobs SET address = substr(address, 10) WHERE address LIKE 'whatsapp:%';
UPDATE photo_jobs SET bot = substr(bot, 10) WHERE bot LIKE 'whatsapp:%';
",
    // The outbound queue: messages sent after the webhook answered (every Meta reply, badge
    // results), each claimed with a lease (`claimed_until_ms`) so that two workers never
    // attempt it at once; `provider_message_id` is the channel's answer, recorded before
    // anything else. `inbound` keeps each user's last message time, for WhatsApp's
    // 24-hour window.
    r"
CREATE TABLE outbound (
    id                  INTEGER PRIMARY KEY,
    channel             TEXT NOT NULL,
    address             TEXT NOT NULL,
    sender              TEXT,
    payload             TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'dropped')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms     INTEGER NOT NULL,
    claimed_until_ms    INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    provider_message_id TEXT,
    created_ms          INTEGER NOT NULL,
    sent_ms             INTEGER
);
CREATE INDEX outbound_due ON outbound(next_attempt_ms) WHERE state = 'queued';
CREATE TABLE inbound (
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    last_ms     INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
);
",
    // The web console: accounts (argon2id hashes, never passwords), their sessions (the
    // cookie token's SHA-256 only), failed sign-ins for throttling, the audit log; and
    // conversations' transcripts with which of them are handed over to a person; per-day
    // turn counts and agents' reply waits for the dashboard.
    r"
CREATE TABLE console_accounts (
    email         TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX console_sessions_email ON console_sessions(email);
CREATE TABLE sign_in_failures (
    key    TEXT NOT NULL,
    at_ms  INTEGER NOT NULL
);
CREATE INDEX sign_in_failures_key ON sign_in_failures(key, at_ms);
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TABLE conversations (
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    bot             TEXT,
    handed_over_ms  INTEGER,
    last_ms         INTEGER NOT NULL,
    last_text       TEXT NOT NULL,
    PRIMARY KEY (channel, address)
);
CREATE INDEX conversations_last ON conversations(last_ms);
CREATE TABLE transcript_lines (
    id       INTEGER PRIMARY KEY,
    channel  TEXT NOT NULL,
    address  TEXT NOT NULL,
    speaker  TEXT NOT NULL CHECK (speaker IN ('employee', 'bot', 'agent')),
    author   TEXT,
    text     TEXT NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX transcript_lines_user ON transcript_lines(channel, address, id);
CREATE INDEX transcript_lines_at ON transcript_lines(at_ms);
CREATE TABLE turn_counts (
    day    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    topic  TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (day, kind, topic)
);
CREATE TABLE reply_waits (
    at_ms      INTEGER NOT NULL,
    waited_ms  INTEGER NOT NULL
);
CREATE INDEX reply_waits_at ON reply_waits(at_ms);
",
    // Each e-mail's delivery history: every attempt's outcome and every resend, written in
    // the transaction that changes the outbox row.
    r"
CREATE TABLE mail_events (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('sent', 'failed', 'rejected', 'resent')),
    error        TEXT,
    retry_at_ms  INTEGER,
    actor        TEXT
);
CREATE INDEX mail_events_outbox ON mail_events(outbox_id, id);
",
    // E-mails that are not requests (a handover's notice to HR): an outbox row with no
    // request, its recipient, subject and body its own. The table is rebuilt (SQLite cannot
    // drop a NOT NULL), rows and ids kept. Handovers were once stored as requests of kind
    // `handover`: their e-mails become such rows and the requests go, so no list or count
    // of requests holds them.
    r"
CREATE TABLE outbox_v9 (
    id                 INTEGER PRIMARY KEY,
    request_id         INTEGER UNIQUE REFERENCES requests(id),
    state              TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms    INTEGER NOT NULL,
    last_error         TEXT,
    sent_ms            INTEGER,
    permanent_failures INTEGER NOT NULL DEFAULT 0,
    recipient          TEXT,
    subject            TEXT,
    body               TEXT,
    created_ms         INTEGER,
    CHECK ((request_id IS NULL) = (recipient IS NOT NULL))
);
INSERT INTO outbox_v9 (id, request_id, state, attempts, next_attempt_ms, last_error, sent_ms,
                        permanent_failures, recipient, subject, body, created_ms)
    SELECT o.id, CASE WHEN r.kind = 'handover' THEN NULL ELSE o.request_id END, o.state, o.attempts,
           o.next_attempt_ms, o.last_error, o.sent_ms, o.permanent_failures,
           CASE WHEN r.kind = 'handover' THEN r.recipient END,
           CASE WHEN r.kind = 'handover' THEN r.kind_label || ' — ' || r.first_name || ' ' || r.last_name END,
           CASE WHEN r.kind = 'handover' THEN coalesce(r.details, '') END,
           CASE WHEN r.kind = 'handover' THEN r.created_ms END
    FROM outbox o JOIN requests r ON r.id = o.request_id;
DROP TABLE outbox;
ALTER TABLE outbox_v9 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE state = 'queued';
DELETE FROM requests WHERE kind = 'handover';
",
    // Badge photo jobs are leased to the worker reading them (`claimed_until_ms`), as the
    // outbound queue's messages are: another worker takes a job only once its lease ran out.
    r"
ALTER TABLE photo_jobs ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0;
",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::backend(format!(
            "the database has schema version {current}, newer than this wabot's {}: upgrade wabot",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(|e| failed(format_args!("migration {}", i + 1), e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(backend)?;
    }
    tx.commit().map_err(backend)
}
