//! Administrative requests as data: the configured kinds, a request the user confirmed, and
//! a stored request with the state of its e-mail.

use serde::{Deserialize, Serialize};

use super::Address;
use crate::engine::Lang;

/// A kind of request employees can make, and the service it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestType {
    /// Stable id, stored with each request (`work-certificate`).
    pub id: String,
    /// Label in English.
    pub label_en: String,
    /// Label in French.
    pub label_fr: String,
    /// The service address the request is e-mailed to.
    pub email: String,
}

impl RequestType {
    /// The label in `lang`.
    pub fn label(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.label_en,
            Lang::Fr => &self.label_fr,
        }
    }
}

/// In a committed turn's messages, replaced by the ticket allocated in the same transaction.
pub const TICKET_PLACEHOLDER: &str = "{ticket}";

/// A request the user confirmed: stored with a ticket and queued for e-mail in the turn's
/// transaction. Every text field is already sanitised (see [`crate::domain::text::clean_line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The request type's id in the configuration.
    pub kind: String,
    /// The request type's label, in English then French, as it was when the user asked.
    pub kind_label: String,
    /// The service address the e-mail goes to.
    pub recipient: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Directory ID, when the employee was identified by badge.
    pub employee_id: Option<String>,
    /// Directory e-mail, when the employee was identified by badge.
    pub employee_email: Option<String>,
    /// Directory department, when the employee was identified by badge.
    pub department: Option<String>,
    /// The optional free-text details.
    pub details: Option<String>,
    /// The language of the conversation.
    pub lang: Lang,
}

/// Where a request's e-mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailState {
    /// Waiting in the outbox (never tried, or tried and failed).
    Queued,
    /// Accepted by the SMTP server.
    Sent,
    /// Rejected for good: the SMTP server refused it permanently (5xx) as many times as
    /// `mail.max_permanent_failures` allows. Never tried again; an administrator reads the
    /// last error in `wabot requests show`.
    Dead,
}

/// A stored request and the state of its e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Human ticket number, `REQ-2026-000123`.
    pub ticket: String,
    /// The user who asked.
    pub user: Address,
    /// The request type's id.
    pub kind: String,
    /// The request type's label.
    pub kind_label: String,
    /// The service address.
    pub recipient: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Directory ID, if identified.
    pub employee_id: Option<String>,
    /// Directory e-mail, if identified.
    pub employee_email: Option<String>,
    /// Directory department, if identified.
    pub department: Option<String>,
    /// Free-text details.
    pub details: Option<String>,
    /// The conversation's language.
    pub lang: Lang,
    /// When it was accepted, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The e-mail's state.
    pub mail: MailState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When the next attempt is due (queued only), ms since the epoch.
    pub next_attempt_ms: Option<i64>,
    /// When the SMTP server accepted it, ms since the epoch.
    pub sent_at_ms: Option<i64>,
}

/// A ticket as people read it: `REQ-2026-000123`, the year and the request's number in it.
pub fn format_ticket(year: i64, seq: i64) -> String {
    format!("REQ-{year}-{seq:06}")
}
