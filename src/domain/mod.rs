//! The shared nouns, as plain data: a user's address on a channel and a message's id, a
//! user's session, an employee, a request and its record, an unanswered question, user text
//! made safe, a sentence in both languages, the clock. Everything above reads and
//! writes these; this module imports only the engine (for [`Lang`](crate::engine::Lang))
//! and must not learn any feature's rules, transport or storage.

pub mod address;
pub mod bilingual;
pub mod clock;
pub mod employee;
pub mod outbound;
pub mod request;
pub mod session;
pub mod text;
pub mod unanswered;

pub use address::{Address, AddressError, Channel, MessageId};
pub use bilingual::Bilingual;
pub use clock::{Clock, SystemClock, TestClock, now_ms, utc, utc_seconds, utc_year};
pub use employee::Employee;
pub use outbound::{Choice, Choices, Outgoing};
pub use request::{MailState, NewRequest, RequestRecord, RequestType, TICKET_PLACEHOLDER, format_ticket};
pub use session::{Draft, Handoff, Pending, Session, Step};
pub use text::{
    Details, MAX_DETAILS_CHARS, MAX_NAME_CHARS, PersonName, SingleLine, TextError, clean_line, clean_text,
};
pub use unanswered::{Unanswered, group_key};
