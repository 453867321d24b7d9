//! The messaging channels: one folder per provider, each owning its wire format, its webhook
//! and its outbound API. A provider folder
//! imports nothing of its sibling (`tests/architecture.rs` checks it).
//!
//! - [`twilio`]: Twilio's WhatsApp API (webhook form, signature, TwiML, REST sender, media).
//! - [`meta`]: Meta's WhatsApp Cloud API (webhook JSON, signature, Graph API sender, media).
//!
//! Both can run in one process; a channel without its settings is off.

pub mod meta;
pub mod twilio;
