//! Everything Meta: the WhatsApp Cloud API's webhook — verification (`GET /meta`), the
//! `X-Hub-Signature-256` check over the raw body, the notification's JSON — the Graph API
//! client that sends the queued replies as text, reply buttons, lists or templates
//! ([`graph`]), and the media lookup and download of photos ([`media`]). The webhook's
//! handler is [`webhook`].
//!
//! A user is a [`domain::Address`](crate::domain::Address) on [`Channel::Meta`]: their
//! `wa_id` (the number's digits), or, for a user who hides their number behind a username,
//! Meta's `user_id` for them. A message id is the `wamid`.
//!
//! ```
//! use wabot::channel::meta::{sign, valid_signature};
//!
//! let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
//! let header = sign(b"app-secret", body);
//! assert!(header.starts_with("sha256="));
//! assert!(valid_signature(b"app-secret", body, &header));
//! assert!(!valid_signature(b"other", body, &header));
//! ```

pub mod graph;
pub mod media;
mod payload;
pub mod webhook;

pub use payload::{Contact, Interactive, Notification, Status, TapReply, WebhookMessage, user_address};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::{Address, AddressError, Channel};

/// The header Meta signs its webhook requests with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with the app secret: what Meta sends
/// in [`SIGNATURE_HEADER`].
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// True when `header` is `sha256=` and the hex HMAC-SHA256 of exactly these `body` bytes;
/// compared in constant time.
pub fn valid_signature(app_secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else { return false };
    let Some(given) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret) else { return false };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// The address of a Meta user by their `wa_id` (or `user_id`).
pub fn address(id: &str) -> Result<Address, AddressError> {
    Address::parse(Channel::Meta, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_exact_bytes() {
        let body = "{\"text\":\"Café ☕ réunion\"}".as_bytes();
        let header = sign(b"secret", body);
        assert!(valid_signature(b"secret", body, &header));
        let reserialised = "{\"text\":\"Caf\\u00e9 \\u2615 r\\u00e9union\"}".as_bytes();
        assert!(!valid_signature(b"secret", reserialised, &header), "the same JSON, other bytes");
        assert!(!valid_signature(b"secret", body, &header.replace("sha256=", "sha1=")));
        assert!(!valid_signature(b"secret", body, "sha256=zz"));
        assert!(!valid_signature(b"secret", body, ""));
    }
}
