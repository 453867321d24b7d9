//! The messaging channels: one folder per provider, each owning its wire format, its webhook
//! and its outbound API. A provider folder
//! imports nothing of its sibling (`tests/architecture.rs` checks it).
//!
//! - [`twilio`]: Twilio's WhatsApp API (webhook form, signature, TwiML, REST sender, media).
//!
//! A second provider (Meta's Cloud API) goes in `channel/meta/`, beside it.

pub mod twilio;
