//! A message the bot sends on its own, after the webhook has answered: its content as any
//! channel can show it — text, reply buttons, a list — and, for a channel that refuses
//! free text to a user who has not written lately, the template to send instead.
//!
//! A channel renders what it can: Twilio sends the text (its choices are already numbered
//! in it), Meta's Cloud API sends real buttons and lists. The store keeps an outgoing
//! message as the JSON of [`Outgoing`], without reading it.

use serde::{Deserialize, Serialize};

/// One choice offered to the user: a list row or a reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// What the channel sends back when it is tapped: a text the dialog understands when
    /// typed (the row's number, `yes`, `no`…), so a tap and a typed answer are one path.
    pub id: String,
    /// The short label.
    pub title: String,
    /// A longer line under the title (list rows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How choices are shown where a channel can show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Choices {
    /// A few short answers (yes / no, a suggestion or two): reply buttons.
    Buttons {
        /// The buttons, in order.
        choices: Vec<Choice>,
    },
    /// A menu: a list opened by a button labelled `button`.
    List {
        /// The label of the button that opens the list.
        button: String,
        /// The rows, in order.
        choices: Vec<Choice>,
    },
}

impl Choices {
    /// The choices, whatever their shape.
    pub fn items(&self) -> &[Choice] {
        match self {
            Choices::Buttons { choices } | Choices::List { choices, .. } => choices,
        }
    }
}

/// What an outgoing message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The whole text, choices numbered in it: what a channel without buttons sends.
    pub text: String,
    /// The text above the choices, without them, for a channel that shows them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The choices on offer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Choices>,
    /// The configured template to send instead when the channel refuses free text to this
    /// user (outside WhatsApp's 24-hour window), by its key in the settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl Outgoing {
    /// A plain text.
    pub fn text(text: impl Into<String>) -> Outgoing {
        Outgoing { text: text.into(), prompt: None, choices: None, template: None }
    }

    /// As the store keeps it.
    pub fn to_json(&self) -> String {
        // A struct of strings and vectors always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back from the store; `None` when it is not an outgoing message.
    pub fn from_json(json: &str) -> Option<Outgoing> {
        serde_json::from_str(json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outgoing_message_round_trips_through_json() {
        let m = Outgoing {
            text: "Menu\n1. Pay".into(),
            prompt: Some("Menu".into()),
            choices: Some(Choices::List {
                button: "Topics".into(),
                choices: vec![Choice { id: "1".into(), title: "Pay".into(), description: None }],
            }),
            template: Some("notice".into()),
        };
        assert_eq!(Outgoing::from_json(&m.to_json()), Some(m));
        assert_eq!(Outgoing::from_json(r#"{"text":"hi"}"#), Some(Outgoing::text("hi")));
        assert_eq!(Outgoing::from_json("nope"), None);
    }
}
