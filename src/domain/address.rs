//! Who a message comes from, and which message it is: an [`Address`] is a channel and the
//! channel's own id of the user (a phone number for Twilio, a `wa_id` for Meta's Cloud
//! API), so that the same person on two channels is two keys, never one by accident. A
//! [`MessageId`] is the channel's id of one message, the deduplication key of its turn.
//!
//! The channel's own spelling of an address (Twilio's `whatsapp:` prefix) stays in its
//! folder: here an address is the channel and the bare id.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A WhatsApp provider the bot speaks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Twilio's WhatsApp API.
    Twilio,
    /// Meta's WhatsApp Cloud API.
    Meta,
}

impl Channel {
    /// The stable name stores and logs use: `twilio`, `meta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Twilio => "twilio",
            Channel::Meta => "meta",
        }
    }

    /// The channel named `name` (see [`Channel::as_str`]).
    pub fn parse(name: &str) -> Result<Channel, AddressError> {
        match name {
            "twilio" => Ok(Channel::Twilio),
            "meta" => Ok(Channel::Meta),
            _ => Err(AddressError::UnknownChannel(name.to_owned())),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value is not an address or a message id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// The id is empty or blank.
    #[error("empty id")]
    Empty,
    /// No such channel.
    #[error("unknown channel {0:?}")]
    UnknownChannel(String),
}

/// An id is kept exactly as the channel gave it, since it is a key; only a blank one is
/// refused. Whatever else it holds is data: who shows it (an e-mail, a log) makes it safe
/// there.
fn checked_id(id: &str) -> Result<String, AddressError> {
    if id.trim().is_empty() {
        return Err(AddressError::Empty);
    }
    Ok(id.to_owned())
}

/// A user (or the bot) on one channel: the channel and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    channel: Channel,
    id: String,
}

impl Address {
    /// The address `id` on `channel`, kept as given; refused when blank.
    pub fn parse(channel: Channel, id: &str) -> Result<Address, AddressError> {
        Ok(Address { channel, id: checked_id(id)? })
    }

    /// The channel.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The channel's id of the user, as the channel's folder gave it (no transport prefix).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address as people read it: a phone number with its `+` (a Meta `wa_id` is the
    /// number's digits alone), else the id as it is.
    pub fn display(&self) -> String {
        let digits = !self.id.is_empty() && self.id.bytes().all(|b| b.is_ascii_digit());
        if digits { format!("+{}", self.id) } else { self.id.clone() }
    }
}

impl fmt::Display for Address {
    /// `twilio:+33612345678`: channel and id, for logs and keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.id)
    }
}

/// The channel's id of one message (Twilio's `MessageSid`, Meta's `wamid`): a second
/// delivery of it is the same message, answered once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// The message id `id`, kept as given; refused when blank.
    pub fn parse(id: &str) -> Result<MessageId, AddressError> {
        checked_id(id).map(MessageId)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_number_on_two_channels_is_two_addresses() {
        let twilio = Address::parse(Channel::Twilio, "+33612345678").unwrap();
        let meta = Address::parse(Channel::Meta, "33612345678").unwrap();
        assert_ne!(twilio, meta);
        assert_eq!((twilio.display(), meta.display()), ("+33612345678".into(), "+33612345678".into()));
        assert_eq!(twilio.to_string(), "twilio:+33612345678");
        assert_ne!(meta, Address::parse(Channel::Twilio, "33612345678").unwrap());
    }

    #[test]
    fn a_blank_id_is_refused_and_any_other_kept_as_given() {
        assert_eq!(Address::parse(Channel::Twilio, "  "), Err(AddressError::Empty));
        assert_eq!(MessageId::parse(""), Err(AddressError::Empty));
        assert_eq!(Address::parse(Channel::Meta, " 33\r\n6").unwrap().id(), " 33\r\n6");
        assert_eq!(MessageId::parse("SM1").unwrap().as_str(), "SM1");
    }

    #[test]
    fn channels_round_trip_through_their_names() {
        for c in [Channel::Twilio, Channel::Meta] {
            assert_eq!(Channel::parse(c.as_str()), Ok(c));
        }
        assert!(Channel::parse("sms").is_err());
    }
}
