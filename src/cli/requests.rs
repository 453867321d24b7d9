//! `wabot requests list` and `wabot requests show`: stored requests and where their e-mail
//! stands, as text for an administrator.

use std::fmt::Write;

use super::CliError;
use crate::config::Settings;
use crate::domain::{MailState, RequestRecord, utc, utc_seconds};
use crate::store::{MailEvent, MailEventKind};

/// Where the e-mail stands, in one phrase: `sent 2026-11-25 12:00 UTC (1 attempt)`,
/// `queued (2 attempts)` or `dead: rejected for good (3 attempts)`.
pub fn mail_status(r: &RequestRecord) -> String {
    let attempts = match r.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    match (r.mail, r.sent_at_ms) {
        (MailState::Sent, Some(at)) => format!("sent {} ({attempts})", utc(at)),
        (MailState::Dead, _) => format!("dead: rejected for good ({attempts})"),
        _ => format!("queued ({attempts})"),
    }
}

/// One line per request, newest first, under a header.
pub fn list(records: &[RequestRecord]) -> String {
    if records.is_empty() {
        return "no requests\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(out, "{:<16} {:<20} {:<22} {:<28} MAIL", "TICKET", "CREATED", "TYPE", "NAME");
    for r in records {
        let name: String = format!("{} {}", r.first_name, r.last_name).chars().take(28).collect();
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:<22} {:<28} {}",
            r.ticket,
            utc(r.created_at_ms),
            r.kind,
            name,
            mail_status(r)
        );
    }
    out
}

/// One event of an e-mail's delivery history, in one line: `2026-11-25 12:00:03 UTC  failed:
/// connection refused; next attempt 12:00:08 UTC`.
pub fn mail_event(e: &MailEvent) -> String {
    let mut line = format!("{}  {}", utc_seconds(e.at_ms), e.kind.as_str());
    if let Some(error) = &e.error {
        let _ = write!(line, ": {error}");
    }
    match (e.kind, e.retry_at_ms) {
        (MailEventKind::Failed | MailEventKind::Rejected, Some(at)) => {
            let _ = write!(line, "; next attempt {}", utc_seconds(at));
        }
        (MailEventKind::Rejected, None) => line.push_str("; dead-lettered"),
        _ => {}
    }
    if let Some(actor) = &e.actor {
        let _ = write!(line, " by {actor}");
    }
    line
}

/// Everything about one request, its e-mail's delivery history last.
pub fn show(r: &RequestRecord, history: &[MailEvent]) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<14} {v}");
    };
    field("ticket", &r.ticket);
    field("created", &utc(r.created_at_ms));
    field("type", &format!("{} ({})", r.kind_label, r.kind));
    field("recipient", &r.recipient);
    field("name", &format!("{} {}", r.first_name, r.last_name));
    if let Some(id) = &r.employee_id {
        field("employee id", id);
    }
    if let Some(e) = &r.employee_email {
        field("e-mail", e);
    }
    if let Some(d) = &r.department {
        field("department", d);
    }
    field("whatsapp", &r.user.display());
    field("details", r.details.as_deref().unwrap_or("-"));
    field("mail", &mail_status(r));
    if r.mail == MailState::Queued
        && let Some(next) = r.next_attempt_ms
    {
        field("next attempt", &utc(next));
    }
    if let Some(e) = &r.last_error {
        field("last error", e);
    }
    for (i, e) in history.iter().enumerate() {
        field(if i == 0 { "history" } else { "" }, &mail_event(e));
    }
    out
}

/// `wabot requests list`: the latest `limit` requests of the settings' database, newest
/// first, as a table or one JSON object per line.
pub fn run_list(
    settings: &Settings,
    limit: usize,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CliError> {
    let opened = super::open_existing(settings, "request")?;
    let records = opened.run(opened.store.requests(limit))?;
    if json {
        for r in &records {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        write!(out, "{}", list(&records))?;
    }
    Ok(())
}

/// `wabot requests show`: one request by ticket, as text or pretty JSON.
pub fn run_show(
    settings: &Settings,
    ticket: &str,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CliError> {
    let opened = super::open_existing(settings, "request")?;
    let Some(r) = opened.run(opened.store.request(ticket))? else {
        return Err(CliError::NoRequest(ticket.to_owned()));
    };
    let history = opened.run(opened.store.mail_history(&r.ticket))?;
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["history"] = history
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at_ms": e.at_ms, "kind": e.kind.as_str(), "error": e.error,
                    "retry_at_ms": e.retry_at_ms, "actor": e.actor,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write!(out, "{}", show(&r, &history))?;
    }
    Ok(())
}
