//! Rows to values and back: the ticket's format, language codes, a request record's columns,
//! and the few query helpers every statement goes through (errors as [`StoreError`]).

use rusqlite::{Connection, OptionalExtension, Row};

use super::backend;
use crate::domain::{Address, Channel, MailState, MessageId, RequestRecord};
use crate::engine::Lang;
use crate::store::StoreError;
use crate::store::roles::{PendingPhoto, PhotoJob};

pub(super) fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Fr => "fr",
    }
}

pub(super) fn lang_from_code(code: &str) -> Lang {
    if code == "fr" { Lang::Fr } else { Lang::En }
}

pub(super) const RECORD_COLUMNS: &str = "r.ticket, r.address, r.kind, r.kind_label, r.recipient, r.first_name, \
     r.last_name, r.employee_id, r.employee_email, r.department, r.details, r.lang, r.created_ms, \
     o.state, o.attempts, o.last_error, o.next_attempt_ms, o.sent_ms, o.id, r.channel";

pub(super) fn record(row: &Row<'_>) -> rusqlite::Result<(i64, RequestRecord)> {
    let lang: String = row.get(11)?;
    let state: String = row.get(13)?;
    let mail = match state.as_str() {
        "sent" => MailState::Sent,
        "dead" => MailState::Dead,
        _ => MailState::Queued,
    };
    let attempts: i64 = row.get(14)?;
    let next: i64 = row.get(16)?;
    Ok((
        row.get(18)?,
        RequestRecord {
            ticket: row.get(0)?,
            user: address(row, 19, 1)?,
            kind: row.get(2)?,
            kind_label: row.get(3)?,
            recipient: row.get(4)?,
            first_name: row.get(5)?,
            last_name: row.get(6)?,
            employee_id: row.get(7)?,
            employee_email: row.get(8)?,
            department: row.get(9)?,
            details: row.get(10)?,
            lang: lang_from_code(&lang),
            created_at_ms: row.get(12)?,
            mail,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            last_error: row.get(15)?,
            next_attempt_ms: (mail == MailState::Queued).then_some(next),
            sent_at_ms: row.get(17)?,
        },
    ))
}

/// The columns [`pending_photo`] reads, in its order.
pub(super) const PHOTO_COLUMNS: &str =
    "id, message_id, address, bot, media_url, content_type, lang, created_ms, channel";

/// A `photo_jobs` row selected as [`PHOTO_COLUMNS`].
pub(super) fn pending_photo(r: &Row<'_>) -> rusqlite::Result<PendingPhoto> {
    let lang: String = r.get(6)?;
    let message_id: Option<String> = r.get(1)?;
    let message_id = message_id
        .map(|m| {
            MessageId::parse(&m).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
            })
        })
        .transpose()?;
    Ok(PendingPhoto {
        id: r.get(0)?,
        job: PhotoJob {
            message_id,
            user: address(r, 8, 2)?,
            bot: address(r, 8, 3)?,
            media_url: r.get(4)?,
            content_type: r.get(5)?,
            lang: lang_from_code(&lang),
            created_ms: r.get(7)?,
        },
    })
}

/// The address in columns `channel` and `id` of `row`.
pub(super) fn address(row: &Row<'_>, channel: usize, id: usize) -> rusqlite::Result<Address> {
    let invalid = |i: usize, e: crate::domain::AddressError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let name: String = row.get(channel)?;
    let channel_value = Channel::parse(&name).map_err(|e| invalid(channel, e))?;
    let value: String = row.get(id)?;
    Address::parse(channel_value, &value).map_err(|e| invalid(id, e))
}

/// Runs a cached statement (parsed once per connection).
pub(super) fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(backend)
}

/// Every row of a cached statement.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.query_map(params, f)?.collect()).map_err(backend)
}

/// A `LIMIT` for SQLite.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// One row of a cached statement.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.query_row(params, f).optional()).map_err(backend)
}
