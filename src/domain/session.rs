//! One user's conversation state, as plain data: the dialog reads and changes it, the store
//! keeps it (serialised as JSON) with a version.

use serde::{Deserialize, Serialize};

use super::{Details, Employee, PersonName};
use crate::engine::Lang;

/// A choice the user was just offered, so that a bare number answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// The menu of categories was shown.
    Categories,
    /// Numbered entries were offered (a category's questions, or "did you mean").
    Entries(Vec<String>),
}

/// One user's conversation state. Serialised as JSON by durable stores: fields added
/// later must default, so that sessions saved by an older version still load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The language the user writes in, once known.
    pub lang: Option<Lang>,
    /// The numbered choice on offer, if any.
    pub pending: Option<Pending>,
    /// Who the user is, once their badge has been read and found in the directory.
    pub employee: Option<Employee>,
    /// The administrative request being filled in, if any.
    pub request: Option<Draft>,
    /// Set while the conversation is handed over to a person: the employee's messages go
    /// to them, not to the FAQ.
    pub handoff: Option<Handoff>,
    /// Questions declined in a row: at the second, talking to a person is offered.
    pub declines: u8,
}

/// A conversation handed over to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// Since when, ms since the Unix epoch.
    pub since_ms: i64,
    /// The employee's last message meanwhile (or the handover), ms since the Unix epoch:
    /// past the idle time, the bot takes the conversation back.
    pub last_ms: i64,
}

/// Where a draft stands: the question the user was last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Which request type (a number).
    Kind,
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// Optional details.
    Details,
    /// Yes or no to the summary.
    Confirm,
}

/// A request being filled in; lives in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// The question on offer.
    pub step: Step,
    /// The chosen request type's id.
    pub kind: Option<String>,
    /// First name.
    pub first_name: Option<PersonName>,
    /// Last name.
    pub last_name: Option<PersonName>,
    /// Details; `None` when skipped.
    pub details: Option<Details>,
    /// When the user last answered, ms since the epoch.
    pub touched_ms: i64,
}
