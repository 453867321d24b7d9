//! Handing a conversation to a person: what asks for one ("human", "talk to a person",
//! "conseiller", "parler à quelqu'un" and close variants, accents optional), the offer after
//! two declined questions in a row, and what happens to messages while a person has the
//! conversation (they go to that person; `bot` or `menu` gives the bot back; so does the
//! configured idle time).

use crate::domain::Bilingual;
use crate::engine::Lang;

/// How handing over behaves: the idle time after which the bot takes a conversation back,
/// and the office hours the employee is told, in both languages.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffPolicy {
    /// Idle time before the bot takes the conversation back, ms.
    pub idle_ms: i64,
    /// When HR colleagues answer, in English.
    pub hours_en: String,
    /// The same in French.
    pub hours_fr: String,
}

impl HandoffPolicy {
    /// The office hours in `lang`.
    pub fn hours(&self, lang: Lang) -> &str {
        match lang {
            Lang::Fr => &self.hours_fr,
            _ => &self.hours_en,
        }
    }
}

/// The reply to a handover; `{hours}` is replaced by the office hours.
pub const HANDED_OVER: Bilingual = Bilingual {
    en: "I'm passing you to an HR colleague, who will answer you here ({hours}). Until then your \
         messages go to them. Type *bot* to come back to me.",
    fr: "Je vous passe à un collègue des RH, qui vous répondra ici ({hours}). D'ici là, vos messages \
         lui sont transmis. Tapez *bot* pour revenir vers moi.",
};

/// The reply when the employee takes the bot back.
pub const BACK_TO_BOT: Bilingual = Bilingual {
    en: "You're back with the assistant. Ask me a question, or type *menu*.",
    fr: "Vous êtes de retour avec l'assistant. Posez votre question, ou tapez *menu*.",
};

/// Added to the second declined question in a row.
pub const OFFER: Bilingual = Bilingual {
    en: "Would you like to talk to an HR colleague? Type *human*.",
    fr: "Voulez-vous parler à un collègue des RH ? Tapez *conseiller*.",
};

/// Single words that ask for a person.
const WORDS: &[&str] = &[
    "human",
    "humain",
    "humaine",
    "agent",
    "person",
    "personne",
    "conseiller",
    "conseillere",
    "operator",
    "operateur",
    "someone",
    "quelquun",
];

/// Phrases that ask for a person, as folded words (one-letter words such as `a` and `à`
/// are dropped by the folding).
const PHRASES: &[&str] = &[
    "talk to person",
    "talk to human",
    "talk to someone",
    "talk to somebody",
    "talk to an agent",
    "talk to agent",
    "speak to person",
    "speak to human",
    "speak to someone",
    "speak to an agent",
    "speak with person",
    "speak with human",
    "talk with person",
    "talk with human",
    "real person",
    "human agent",
    "human being",
    "parler quelqu un",
    "parler quelquun",
    "parler un humain",
    "parler une personne",
    "parler un conseiller",
    "parler une conseillere",
    "parler quelqu",
    "un conseiller",
    "une conseillere",
    "vraie personne",
    "vrai personne",
    "etre humain",
];

/// Whether `text` asks for a person.
pub fn asks_for_person(text: &str) -> bool {
    let words = crate::engine::text::words(text);
    if words.is_empty() || words.len() > 10 {
        return false;
    }
    let key = words.join(" ");
    if words.len() == 1 {
        return WORDS.contains(&key.as_str());
    }
    let padded = format!(" {key} ");
    if PHRASES.iter().any(|p| padded.contains(&format!(" {p} "))) {
        return true;
    }
    // "human please", "un conseiller svp": a short message around a word that only ever
    // means a person (not "human resources").
    words.len() <= 3 && !key.contains("resource") && words.iter().any(|w| STRONG.contains(&w.as_str()))
}

/// Words that, in a short message, only ever mean a person.
const STRONG: &[&str] = &["human", "humain", "humaine", "conseiller", "conseillere", "operator", "operateur"];

/// Whether `text` takes the bot back from a person.
pub fn takes_bot_back(text: &str) -> bool {
    let key = crate::engine::text::words(text).join(" ");
    matches!(key.as_str(), "bot" | "robot" | "menu" | "assistant" | "back to bot" | "retour au bot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_asked_for_in_english_and_french_with_or_without_accents() {
        for text in [
            "human",
            "Agent",
            "talk to a person",
            "I want to speak to a human please",
            "Conseiller",
            "parler à quelqu'un",
            "parler a quelqu un",
            "je veux parler à un humain",
            "un conseiller svp",
            "real person!",
        ] {
            assert!(asks_for_person(text), "{text}");
        }
    }

    #[test]
    fn questions_that_merely_mention_people_are_not_a_request_for_one() {
        for text in [
            "human resources phone number",
            "how do I add a person to my health insurance",
            "what is an agent de maîtrise",
            "personne à contacter en cas d'urgence",
            "",
        ] {
            assert!(!asks_for_person(text), "{text}");
        }
    }

    #[test]
    fn bot_and_menu_take_the_bot_back() {
        assert!(takes_bot_back("Bot"));
        assert!(takes_bot_back("menu"));
        assert!(!takes_bot_back("where is my payslip"));
    }
}
