//! Everything the bot says that does not come from the FAQ, in English and French.

pub use crate::domain::Bilingual;

/// Greeting; `{name}` is replaced by the user's profile name (or removed).
pub const GREETING: Bilingual = Bilingual {
    en: "Hello{name}! I'm the HR & admin helpdesk assistant. Ask me a question in your own words \
         (leave, payslips, certificates, expenses, remote work, badges, IT passwords…), \
         or type *menu* to see the topics.",
    fr: "Bonjour{name} ! Je suis l'assistant du service RH et administratif. Posez votre question \
         avec vos mots (congés, fiches de paie, attestations, notes de frais, télétravail, badges, \
         mots de passe…), ou tapez *menu* pour voir les thèmes.",
};

/// Heading of the menu.
pub const MENU_HEADER: Bilingual = Bilingual {
    en: "Here is what I can help with. Reply with a number to see its questions, or just ask:",
    fr: "Voici les thèmes sur lesquels je peux vous aider. Répondez par un numéro pour voir les questions, ou posez directement la vôtre :",
};

/// Footer of the menu.
pub const MENU_FOOTER: Bilingual =
    Bilingual { en: "Type *français* to switch to French.", fr: "Type *english* to switch to English." };

/// Heading of a category's questions; `{title}` is the category.
pub const CATEGORY_HEADER: Bilingual =
    Bilingual { en: "*{title}* — reply with a number:", fr: "*{title}* — répondez par un numéro :" };

/// Heading of "did you mean" suggestions.
pub const SUGGESTIONS: Bilingual = Bilingual {
    en: "I'm not sure I understood. Did you mean one of these? Reply with a number, rephrase your question, or type *menu*.",
    fr: "Je ne suis pas sûr d'avoir compris. Vouliez-vous dire l'une de ces questions ? Répondez par un numéro, reformulez, ou tapez *menu*.",
};

/// Honest fallback.
pub const NOT_UNDERSTOOD: Bilingual = Bilingual {
    en: "Sorry, I didn't understand your question. Try rephrasing it with other words, or type *menu* (or *help*) to see what I can answer.",
    fr: "Désolé, je n'ai pas compris votre question. Essayez de la reformuler avec d'autres mots, ou tapez *menu* (ou *aide*) pour voir ce à quoi je peux répondre.",
};

/// A number that is not on offer.
pub const BAD_CHOICE: Bilingual = Bilingual {
    en: "That number isn't in the list. Type *menu* to see the topics again.",
    fr: "Ce numéro n'est pas dans la liste. Tapez *menu* pour revoir les thèmes.",
};

/// Reply to an empty message.
pub const EMPTY: Bilingual = Bilingual {
    en: "Send me your question as text, or type *menu* to see the topics.",
    fr: "Envoyez-moi votre question par écrit, ou tapez *menu* pour voir les thèmes.",
};

/// Reply to thanks.
pub const THANKS: Bilingual = Bilingual {
    en: "You're welcome! Anything else? Type *menu* to see the topics.",
    fr: "Avec plaisir ! Autre chose ? Tapez *menu* pour voir les thèmes.",
};

/// Confirmation of a language switch.
pub const LANGUAGE_SET: Bilingual = Bilingual {
    en: "OK, I'll answer in English from now on.",
    fr: "C'est noté, je vous réponds en français désormais.",
};

/// Note before an answer that exists only in the other language.
pub const ONLY_IN_FRENCH: &str = "(This answer is only available in French.)";
/// Note before an answer that exists only in the other language.
pub const ONLY_IN_ENGLISH: &str = "(Cette réponse n'existe qu'en anglais.)";

/// Reply when something inside failed; the details go to the log.
pub const INTERNAL_ERROR: Bilingual = Bilingual {
    en: "Sorry, something went wrong on my side. Please try again in a moment.",
    fr: "Désolé, un problème est survenu de mon côté. Merci de réessayer dans un instant.",
};

/// To a sender over the rate limit (see [`crate::limits`]); the message was not read.
pub const SLOW_DOWN: Bilingual = Bilingual {
    en: "You are sending messages faster than I can read them. Please wait a minute, then send your question again.",
    fr: "Vous envoyez des messages plus vite que je ne peux les lire. Merci de patienter une minute, puis de renvoyer votre question.",
};

/// To a message longer than WhatsApp allows (see [`crate::limits::MAX_BODY_CHARS`]).
pub const TOO_LONG: Bilingual = Bilingual {
    en: "Your message is too long for me. Please ask your question in a few sentences (under 1,600 characters).",
    fr: "Votre message est trop long pour moi. Merci de poser votre question en quelques phrases (moins de 1 600 caractères).",
};

/// The label of the button that opens the menu's list.
pub const TOPICS_BUTTON: Bilingual = Bilingual { en: "Topics", fr: "Thèmes" };

/// The label of the button that opens a category's questions.
pub const QUESTIONS_BUTTON: Bilingual = Bilingual { en: "Questions", fr: "Questions" };
