//! The messaging channels: one folder per provider, each owning its wire format, its webhook
//! and its outbound API. A provider folder
//! imports nothing of its sibling (`tests/architecture.rs` checks it).
//!
//! - [`twilio`]: Twilio's WhatsApp API (webhook form, signature, TwiML, REST sender, media).
//!
//! A second provider (Meta's Cloud API) goes in `channel/meta/`, beside it.

pub mod twilio;

use axum::http::{HeaderMap, header};

/// True when the request's `Content-Type` is `media_type`, whatever its parameters.
pub(crate) fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}
