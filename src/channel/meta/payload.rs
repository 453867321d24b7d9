//! The webhook notification's JSON, as Meta posts it: `entry[].changes[].value` with
//! `messages`, `contacts` and `statuses`. Every field this wabot does not need is ignored,
//! and every field it reads is optional where Meta may leave it out, so a new kind of
//! message is an "unsupported" reply, not a refused request.

use serde::Deserialize;

use crate::domain::{Address, AddressError};

/// One webhook request's body.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    /// `whatsapp_business_account`.
    #[serde(default)]
    pub object: Option<String>,
    /// The accounts' changes.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One account's changes.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// The changes.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One change: `field` is `messages` for what this wabot reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    /// The subscribed field.
    #[serde(default)]
    pub field: Option<String>,
    /// What changed.
    #[serde(default)]
    pub value: Value,
}

/// A change's value: messages received, the contacts who sent them, delivery statuses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Value {
    /// The business number the change concerns.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// The senders.
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Messages received.
    #[serde(default)]
    pub messages: Vec<WebhookMessage>,
    /// Delivery statuses of messages sent.
    #[serde(default)]
    pub statuses: Vec<Status>,
}

/// The business number.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Its phone number id.
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

/// A sender.
#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    /// Their WhatsApp id (the number's digits), when they show it.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Their user id, for users with a username who hide their number.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Their profile.
    #[serde(default)]
    pub profile: Option<Profile>,
}

/// A sender's profile.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    /// The name they chose.
    #[serde(default)]
    pub name: Option<String>,
}

/// A message received.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookMessage {
    /// Its `wamid`.
    pub id: String,
    /// The sender's `wa_id`.
    #[serde(default)]
    pub from: Option<String>,
    /// The sender's user id (a username user), when Meta gives one.
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// `text`, `image`, `interactive`, `button`, or another kind.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A text's content.
    #[serde(default)]
    pub text: Option<Text>,
    /// A photo.
    #[serde(default)]
    pub image: Option<Image>,
    /// A tap on reply buttons or a list.
    #[serde(default)]
    pub interactive: Option<Interactive>,
    /// A tap on a template's quick-reply button.
    #[serde(default)]
    pub button: Option<TemplateButton>,
}

/// A text's content.
#[derive(Debug, Clone, Deserialize)]
pub struct Text {
    /// What was typed.
    #[serde(default)]
    pub body: String,
}

/// A photo: its media id, to look up through the Graph API.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    /// The media id.
    pub id: String,
    /// Its type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Its caption.
    #[serde(default)]
    pub caption: Option<String>,
}

/// A tap on reply buttons (`button_reply`) or a list (`list_reply`).
#[derive(Debug, Clone, Deserialize)]
pub struct Interactive {
    /// `button_reply` or `list_reply`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The button tapped.
    #[serde(default)]
    pub button_reply: Option<TapReply>,
    /// The row chosen.
    #[serde(default)]
    pub list_reply: Option<TapReply>,
}

/// What was tapped: the id the bot gave it, and its title.
#[derive(Debug, Clone, Deserialize)]
pub struct TapReply {
    /// The id the bot gave it.
    pub id: String,
    /// Its title.
    #[serde(default)]
    pub title: Option<String>,
}

/// A template's quick-reply button.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateButton {
    /// The payload the template gave it.
    #[serde(default)]
    pub payload: Option<String>,
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
}

/// A delivery status of a message the bot sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// The `wamid` of the message.
    #[serde(default)]
    pub id: Option<String>,
    /// `sent`, `delivered`, `read`, `failed`.
    #[serde(default)]
    pub status: String,
}

impl WebhookMessage {
    /// What the dialog reads of it: the text typed, the id of what was tapped, or a photo's
    /// caption; `None` for a kind it cannot read.
    pub fn text(&self) -> Option<String> {
        match self.kind.as_str() {
            "text" => self.text.as_ref().map(|t| t.body.clone()),
            "interactive" => {
                let i = self.interactive.as_ref()?;
                i.button_reply.as_ref().or(i.list_reply.as_ref()).map(|r| r.id.clone())
            }
            "button" => self.button.as_ref().and_then(|b| b.payload.clone().or_else(|| b.text.clone())),
            _ => None,
        }
    }
}

/// The sender of `message` as an address: their `wa_id`, else their user id (from the
/// message or its contact).
pub fn user_address(message: &WebhookMessage, contacts: &[Contact]) -> Result<Address, AddressError> {
    let contact = contacts.iter().find(|c| c.wa_id.is_some() && c.wa_id == message.from).or(contacts.first());
    let id = message
        .from
        .clone()
        .or_else(|| message.from_user_id.clone())
        .or_else(|| contact.and_then(|c| c.wa_id.clone().or_else(|| c.user_id.clone())))
        .unwrap_or_default();
    super::address(&id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_with_messages_contacts_and_statuses_parses() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",
            "value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"1234"},
            "contacts":[{"profile":{"name":"Élodie"},"wa_id":"33612345678","user_id":"US.1"}],
            "messages":[{"from":"33612345678","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"Bonjour 👋"}},
                        {"from":"33612345678","id":"wamid.B","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"2","title":"Pay"}}},
                        {"from":"33612345678","id":"wamid.C","type":"sticker","sticker":{"id":"9"}}],
            "statuses":[{"id":"wamid.X","status":"delivered","recipient_id":"33612345678"}]}}]}]}"#;
        let n: Notification = serde_json::from_str(json).unwrap();
        let value = &n.entry[0].changes[0].value;
        let texts: Vec<Option<String>> = value.messages.iter().map(WebhookMessage::text).collect();
        assert_eq!(texts, [Some("Bonjour 👋".to_owned()), Some("2".to_owned()), None]);
        assert_eq!(user_address(&value.messages[0], &value.contacts).unwrap().id(), "33612345678");
        assert_eq!(value.statuses[0].status, "delivered");
        assert_eq!(value.contacts[0].profile.as_ref().and_then(|p| p.name.as_deref()), Some("Élodie"));
    }
}
