//! The use cases, transport-free: the [`Desk`] runs a webhook turn — the sender's session,
//! the dialog, then the commit of the session, a confirmed request with its ticket and
//! outbox row, and the MessageSid with its reply, all before the user is told anything.
//!
//! The conversation's rules are the [`dialog`](crate::dialog)'s (the request form
//! included); the data is kept by the [`store`](crate::store). Must not: send e-mail (that is
//! [`crate::mail`]'s worker, reading the outbox), speak HTTP or know a channel.

pub mod badge;
pub mod limits;
mod turn;

pub use turn::{Desk, DeskError, Handled};
