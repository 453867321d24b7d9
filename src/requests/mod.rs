//! Administrative requests: the guided form that fills one
//! in ([`form`]), and the [`Desk`] that commits each turn — session, request, outbox row
//! and MessageSid — before the user is told anything.
//!
//! Owns what a user may type into a request and how it is cleaned: every user-provided
//! field passes through [`clean_line`](crate::domain::clean_line) or
//! [`clean_text`](crate::domain::clean_text) before it is stored, so no control
//! character (CR/LF above all) ever reaches an e-mail header. Must not: send e-mail (that is
//! [`crate::mail`]'s worker, reading the outbox) or speak HTTP.

pub mod desk;
pub mod form;
pub mod report;

pub use desk::{Desk, DeskError, Handled};
pub use form::RequestForm;
