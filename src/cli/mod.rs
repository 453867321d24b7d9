//! What the command line prints: the reports of `wabot requests` and `wabot unanswered`.
//! The binary parses the arguments and calls these; they only format what the store gave.

pub mod requests;
pub mod unanswered;
