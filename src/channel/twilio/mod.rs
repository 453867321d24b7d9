//! Everything Twilio: the WhatsApp webhook's wire format — form parsing,
//! `X-Twilio-Signature` validation, TwiML replies — the REST sender for replies that come
//! later ([`rest`]) and the media download with its credential policy ([`media`]). The
//! webhook's handler is [`webhook`].
//!
//! - [`form`](WebhookForm): the `application/x-www-form-urlencoded` body Twilio posts, decoded
//!   strictly and kept whole (every parameter, in order), because the signature covers them all.
//! - [`signature`](validate_signature): HMAC-SHA1 over the URL and the sorted parameters, as
//!   Twilio's SDKs compute it, with their tolerance for the URL's default port.
//! - [`twiml`](twiml()): the XML reply, split into messages Twilio accepts and escaped.
//! - [`address`](address()): Twilio's spelling of a WhatsApp user (`whatsapp:+33…`) to a
//!   [`domain::Address`](crate::domain::Address) and back; the prefix is known nowhere else.
//!
//! ```
//! use wabot::channel::twilio::{WebhookForm, compute_signature, validate_signature, twiml};
//!
//! let form = WebhookForm::parse(b"From=whatsapp%3A%2B33612345678&Body=Bonjour+%21").unwrap();
//! assert_eq!(form.from().unwrap(), "whatsapp:+33612345678");
//! assert_eq!(form.body(), "Bonjour !");
//!
//! let url = "https://bot.example.org/bot";
//! let signature = compute_signature(b"token", url, form.params());
//! assert!(validate_signature(b"token", url, form.params(), &signature));
//!
//! let reply = twiml(&["Bienvenue !".to_owned()]);
//! assert!(reply.ends_with("<Response><Message>Bienvenue !</Message></Response>"));
//! ```

mod form;
pub mod media;
pub mod rest;
mod signature;
mod twiml;
pub mod webhook;

pub use form::{MAX_MEDIA, Media, WebhookForm};
pub use signature::{
    SIGNATURE_SETTINGS_HEADER, SignatureAlgorithm, compute_signature, compute_signature_with,
    url_port_variants, validate_signature, validate_signature_with,
};
pub use twiml::{MAX_MESSAGE_CHARS, TWIML_CONTENT_TYPE, split_message, twiml, xml_escape};

use thiserror::Error;

use crate::domain::{Address, AddressError, Channel, MessageId};

/// How Twilio spells a WhatsApp address: `whatsapp:+33612345678`.
pub const WHATSAPP_PREFIX: &str = "whatsapp:";

/// The Twilio address Twilio writes `whatsapp:+33…` (`From`, `To`): the channel, and the
/// number without the prefix. A value without the prefix is kept whole.
pub fn address(twilio: &str) -> Result<Address, AddressError> {
    Address::parse(Channel::Twilio, twilio.strip_prefix(WHATSAPP_PREFIX).unwrap_or(twilio))
}

/// Twilio's spelling of `address` (`whatsapp:+33…`), for its REST API.
pub fn whatsapp_address(address: &Address) -> String {
    format!("{WHATSAPP_PREFIX}{}", address.id())
}

/// The `MessageSid` of `form` as a message id, when it has one Twilio could have sent.
pub fn message_id(form: &WebhookForm) -> Option<MessageId> {
    form.message_sid().and_then(|sid| MessageId::parse(sid).ok())
}

/// Why a webhook request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    /// The body is not valid `application/x-www-form-urlencoded`.
    #[error("invalid form encoding at byte {offset}: {reason}")]
    InvalidEncoding {
        /// Byte offset in the body where the problem starts.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// A parameter decodes to bytes that are not UTF-8.
    #[error("form parameter `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The parameter's name (lossily decoded when the name itself is the invalid part).
        field: String,
    },
    /// A parameter Twilio always sends is absent or empty.
    #[error("form parameter `{0}` is missing or empty")]
    MissingField(&'static str),
    /// `NumMedia` announces more media than the form carries.
    #[error("form parameter `MediaUrl{index}` is missing although `NumMedia` is {num_media}")]
    MissingMedia {
        /// The index of the missing `MediaUrlN`.
        index: usize,
        /// The announced `NumMedia`.
        num_media: usize,
    },
    /// A parameter is present but its value makes no sense.
    #[error("form parameter `{field}` is invalid: {reason}")]
    InvalidField {
        /// The parameter's name.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A parameter that carries the message is given more than once: which one is meant?
    #[error("form parameter `{0}` is given more than once")]
    RepeatedField(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_error_bounds<E: std::error::Error + Send + Sync + 'static>() {}

    #[test]
    fn channel_error_can_travel_across_threads_as_a_boxed_error() {
        assert_error_bounds::<ChannelError>();
    }

    #[test]
    fn error_messages_name_the_problem() {
        let err = WebhookForm::parse(b"Body=%G1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid form encoding at byte 5: `%` must be followed by two hexadecimal digits"
        );
        let err = WebhookForm::parse(b"Body=%FF").unwrap_err();
        assert_eq!(err.to_string(), "form parameter `Body` is not valid UTF-8");
        assert_eq!(
            ChannelError::MissingField("From").to_string(),
            "form parameter `From` is missing or empty"
        );
    }
}
