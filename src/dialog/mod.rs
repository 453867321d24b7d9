//! What the bot says: greetings, the menu, FAQ answers and the honest fallback, in the
//! user's language.
//!
//! A pure state machine over the user's [`Session`]: [`Dialog::respond`] takes an
//! [`Incoming`] message and the session, changes the session and returns the [`Reply`]. No
//! store, no I/O: the desk loads the session and commits it with the reply (see
//! [`crate::desk`]), for the Twilio webhook and `wabot chat` alike.
//!
//! The FAQ can change while the bot runs (see [`crate::knowledge::faq`]): the menu lists the engine's
//! live entries, under the categories of the live FAQ's knowledge base
//! ([`Dialog::live`]).

pub mod messages;

pub mod form;
pub mod handoff;

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

pub use form::RequestForm;
pub use handoff::HandoffPolicy;

use crate::domain::{Address, Choice, Choices, Clock, NewRequest, Pending, Session, SystemClock};
use crate::engine::{Engine, FaqEntry, Lang};
use crate::knowledge::corpus::{Category, KnowledgeBase};
use crate::knowledge::faq::LiveKnowledge;
use messages as msg;

/// The id a tap on an FAQ entry's row or button carries (`faq:<entry id>`), and a category's
/// (`cat:<category id>`): read whatever the conversation's state, so a tap on a list sent
/// earlier — WhatsApp keeps old lists tappable — opens what its row said, not what its
/// number means now. Typed numbers keep working against the latest list.
const ENTRY_TAP: &str = "faq:";
/// See [`ENTRY_TAP`].
const CATEGORY_TAP: &str = "cat:";
/// WhatsApp's limit on a row's or a button's id.
const MAX_TAP_ID: usize = 200;

/// A stable tap id, or the row's number when the id would be too long for WhatsApp.
fn tap_id(prefix: &str, id: &str, n: usize) -> String {
    let tap = format!("{prefix}{id}");
    if tap.len() <= MAX_TAP_ID { tap } else { n.to_string() }
}

/// Below the threshold, suggestions are offered down to this fraction of it.
const SUGGESTION_FLOOR: f32 = 0.6;
/// How many suggestions at most.
const MAX_SUGGESTIONS: usize = 3;

/// A message from a user.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Who wrote it.
    pub user: Address,
    /// The text typed.
    pub text: String,
    /// The user's display name, when the channel gives one.
    pub profile_name: Option<String>,
}

/// What happened with a message, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A greeting was answered.
    Greeting,
    /// The menu or a category was shown.
    Menu,
    /// An FAQ entry answered.
    Answered {
        /// The entry.
        id: String,
        /// Its score.
        score: f32,
    },
    /// Suggestions were offered instead of an answer.
    Suggested,
    /// Nothing matched well enough.
    Declined,
    /// Small talk, language switch, empty message.
    Other,
    /// A step of the request form (see [`form`]).
    Request,
    /// The user confirmed a request: it must be committed (see [`crate::desk::Desk`])
    /// before the reply, which holds the ticket placeholder, is sent.
    RequestSubmitted(Box<NewRequest>),
    /// The conversation was handed over to a person (see [`handoff`]).
    HandedOver,
    /// A message for the person who has the conversation: the bot says nothing.
    ForAgent,
    /// The employee took the bot back.
    HandedBack,
}

/// The bot's reply to one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The messages to send, in order.
    pub messages: Vec<String>,
    /// The language replied in.
    pub lang: Lang,
    /// What happened.
    pub outcome: Outcome,
    /// The choices the last message offers, for a channel that shows them as buttons or a
    /// list; the message's text numbers them already, for a channel that does not.
    pub offer: Option<Offer>,
}

/// Choices offered with a reply: each one's id is what the dialog understands when it is
/// typed (a number, `yes`, `skip`…), so a tap is read as a typed answer — except an FAQ
/// entry's and a category's, which name them (`faq:…`, `cat:…`) so that a tap on a list
/// sent earlier still opens what its row said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The text shown above the choices, without them.
    pub prompt: String,
    /// The choices and their shape.
    pub choices: Choices,
}

impl Offer {
    /// A list opened by `button`, its rows numbered from 1.
    pub fn numbered_list(
        prompt: &str,
        button: &str,
        rows: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Offer {
        let choices = rows
            .into_iter()
            .enumerate()
            .map(|(i, (title, description))| Choice { id: (i + 1).to_string(), title, description })
            .collect();
        Offer { prompt: prompt.to_owned(), choices: Choices::List { button: button.to_owned(), choices } }
    }

    /// A list opened by `button`, with rows of their own ids.
    pub fn list(prompt: &str, button: &str, choices: Vec<Choice>) -> Offer {
        Offer { prompt: prompt.to_owned(), choices: Choices::List { button: button.to_owned(), choices } }
    }

    /// Reply buttons: `(id, title)` each.
    pub fn buttons(prompt: &str, buttons: &[(&str, &str)]) -> Offer {
        let choices = buttons
            .iter()
            .map(|(id, title)| Choice { id: (*id).to_owned(), title: (*title).to_owned(), description: None })
            .collect();
        Offer { prompt: prompt.to_owned(), choices: Choices::Buttons { choices } }
    }
}

impl Reply {
    /// The reply with `offer` on its last message.
    pub fn offering(mut self, offer: Offer) -> Reply {
        self.offer = Some(offer);
        self
    }
}

/// The conversation logic, shared by every channel.
pub struct Dialog {
    /// Menu categories and their titles; swapped when the corpus is reloaded.
    kb: LiveKnowledge,
    engine: Arc<Engine>,
    /// What a request form's expiry is measured by.
    clock: Arc<dyn Clock>,
    /// The request form, when requests are on (the server sets it).
    requests: ArcSwapOption<RequestForm>,
    /// Handing over to a person, when on (the server sets it).
    handoff: ArcSwapOption<HandoffPolicy>,
}

impl std::fmt::Debug for Dialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialog").field("entries", &self.engine.len()).finish()
    }
}

/// A message that is a command rather than a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Greeting(Option<Lang>),
    Menu(Option<Lang>),
    SetLang(Lang),
    Thanks(Option<Lang>),
    Number(usize),
}

fn command(text: &str) -> Option<Command> {
    let words = crate::engine::text::words(text);
    let key = words.join(" ");
    use Command::*;
    Some(match key.as_str() {
        "hi" | "hello" | "hey" | "hiya" | "good morning" | "good afternoon" | "good evening" | "hi there"
        | "hello there" => Greeting(Some(Lang::En)),
        "bonjour" | "salut" | "bonsoir" | "coucou" | "bjr" | "slt" | "bonjour bonjour" => {
            Greeting(Some(Lang::Fr))
        }
        "start" => Greeting(None),
        "menu" => Menu(None),
        "help" | "options" | "topics" => Menu(Some(Lang::En)),
        "aide" | "sommaire" | "themes" => Menu(Some(Lang::Fr)),
        "english" | "anglais" | "en" => SetLang(Lang::En),
        "francais" | "french" | "fr" => SetLang(Lang::Fr),
        "thanks" | "thank you" | "thx" | "ty" | "thanks a lot" | "ok thanks" => Thanks(Some(Lang::En)),
        "merci" | "merci beaucoup" | "ok merci" | "super merci" => Thanks(Some(Lang::Fr)),
        _ => {
            let t = text.trim().trim_end_matches(['.', ')']);
            if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) {
                Number(t.parse().ok()?)
            } else if text.trim() == "?" {
                Menu(None)
            } else {
                return None;
            }
        }
    })
}

impl Dialog {
    /// A dialog answering from `kb` through `engine`, on the system's clock.
    pub fn new(kb: Arc<KnowledgeBase>, engine: Arc<Engine>) -> Self {
        Dialog::live(Arc::new(ArcSwap::new(kb)), engine, Arc::new(SystemClock))
    }

    /// A dialog answering from a live FAQ: the knowledge base its reloads replace
    /// ([`crate::knowledge::faq::Faq::knowledge`]) and its engine. Conversations in progress keep
    /// going; the next menu shows the new categories. An idle request form expires by
    /// `clock`.
    pub fn live(kb: LiveKnowledge, engine: Arc<Engine>, clock: Arc<dyn Clock>) -> Self {
        Dialog { kb, engine, clock, requests: ArcSwapOption::empty(), handoff: ArcSwapOption::empty() }
    }

    /// Turns the request form on (`request`/`demande`, and an entry at the end of the menu)
    /// or off. Submitting needs a [`crate::desk::Desk`] to commit the request.
    pub fn set_requests(&self, form: Option<Arc<RequestForm>>) {
        self.requests.store(form);
    }

    /// The knowledge base in use.
    pub fn knowledge_base(&self) -> Arc<KnowledgeBase> {
        self.kb.load_full()
    }

    /// The engine in use.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Turns handing over to a person on (with its policy) or off.
    pub fn set_handoff(&self, policy: Option<Arc<HandoffPolicy>>) {
        self.handoff.store(policy);
    }

    /// The reply to `msg` given `session`, which it updates. No I/O.
    ///
    /// With handing over on: while a person has the conversation, a message goes to them
    /// (no reply) unless it takes the bot back or the conversation sat idle past the
    /// policy's idle time; a request for a person hands the conversation over; the second
    /// declined question in a row offers it.
    pub fn respond(&self, session: &mut Session, msg: &Incoming) -> Reply {
        let Some(policy) = self.handoff.load_full() else {
            return self.respond_to_bot(session, msg);
        };
        let now = self.clock.now_ms();
        let lang = session.lang.unwrap_or(Lang::En);
        if let Some(h) = session.handoff.as_mut() {
            if now.saturating_sub(h.last_ms) <= policy.idle_ms {
                if handoff::takes_bot_back(&msg.text) {
                    session.handoff = None;
                    session.pending = None;
                    return reply(lang, Outcome::HandedBack, handoff::BACK_TO_BOT.get(lang));
                }
                h.last_ms = now;
                return Reply { messages: Vec::new(), lang, outcome: Outcome::ForAgent, offer: None };
            }
            session.handoff = None;
        }
        if session.request.is_none() && handoff::asks_for_person(&msg.text) {
            let lang = detect_lang(&msg.text).unwrap_or(lang);
            session.handoff = Some(crate::domain::Handoff { since_ms: now, last_ms: now });
            session.pending = None;
            session.declines = 0;
            let text = handoff::HANDED_OVER.get(lang).replace("{hours}", policy.hours(lang));
            return reply(lang, Outcome::HandedOver, &text);
        }
        let mut r = self.respond_to_bot(session, msg);
        if r.outcome == Outcome::Declined {
            session.declines = session.declines.saturating_add(1);
            if session.declines >= 2 {
                r.messages.push(handoff::OFFER.get(r.lang).to_owned());
            }
        } else {
            session.declines = 0;
        }
        r
    }

    fn respond_to_bot(&self, session: &mut Session, msg: &Incoming) -> Reply {
        let text = msg.text.trim();
        let fallback_lang = session.lang.unwrap_or(Lang::En);
        if let Some(reply) = self.tapped(session, text, fallback_lang) {
            return reply;
        }
        if let Some(form) = self.requests.load_full()
            && let Some(reply) = form.respond(session, text, self.clock.now_ms())
        {
            return reply;
        }
        if text.is_empty() {
            return reply(fallback_lang, Outcome::Other, msg::EMPTY.get(fallback_lang));
        }
        match command(text) {
            Some(Command::Greeting(l)) => {
                let lang = l.unwrap_or(fallback_lang);
                session.pending = None;
                let name = msg
                    .profile_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| format!(" {}", n.chars().take(60).collect::<String>()))
                    .unwrap_or_default();
                reply(lang, Outcome::Greeting, &msg::GREETING.get(lang).replace("{name}", &name))
            }
            Some(Command::Menu(l)) => {
                let lang = l.unwrap_or(fallback_lang);
                session.pending = Some(Pending::Categories);
                reply(lang, Outcome::Menu, &self.menu(lang)).offering(self.menu_offer(lang))
            }
            Some(Command::SetLang(lang)) => {
                session.pending = None;
                reply(lang, Outcome::Other, msg::LANGUAGE_SET.get(lang))
            }
            Some(Command::Thanks(l)) => {
                let lang = l.unwrap_or(fallback_lang);
                session.pending = None;
                reply(lang, Outcome::Other, msg::THANKS.get(lang))
            }
            Some(Command::Number(n)) => self.choose(session, n, fallback_lang),
            None => self.answer(session, text),
        }
    }

    /// The menu's categories: those of the knowledge base that have a live entry, then
    /// those named only by live entries (added through the admin API), titled by their id.
    fn categories(&self, live: &[Arc<FaqEntry>]) -> Vec<Category> {
        let kb = self.kb.load();
        let has_entry = |id: &str| live.iter().any(|e| e.category.as_deref() == Some(id));
        let mut out: Vec<Category> = kb.categories().iter().filter(|c| has_entry(&c.id)).cloned().collect();
        for id in live.iter().filter_map(|e| e.category.as_deref()) {
            if !out.iter().any(|c| c.id == id) && !kb.categories().iter().any(|c| c.id == id) {
                out.push(Category { id: id.to_owned(), title_en: id.to_owned(), title_fr: id.to_owned() });
            }
        }
        out
    }

    fn menu(&self, lang: Lang) -> String {
        let mut out = String::from(msg::MENU_HEADER.get(lang));
        for (i, c) in self.categories(&self.engine.entries()).iter().enumerate() {
            out.push_str(&format!("\n{}. {}", i + 1, c.title(lang)));
        }
        if self.requests.load().is_some() {
            let n = self.categories(&self.engine.entries()).len() + 1;
            out.push_str(&format!("\n{n}. {}", RequestForm::menu_label(lang)));
        }
        out.push('\n');
        out.push_str(msg::MENU_FOOTER.get(lang));
        out
    }

    /// The menu as a list: the categories, then the request form's entry.
    fn menu_offer(&self, lang: Lang) -> Offer {
        let mut rows: Vec<Choice> = self
            .categories(&self.engine.entries())
            .iter()
            .enumerate()
            .map(|(i, c)| Choice {
                id: tap_id(CATEGORY_TAP, &c.id, i + 1),
                title: c.title(lang).to_owned(),
                description: None,
            })
            .collect();
        if self.requests.load().is_some() {
            let start = match lang {
                Lang::En => "request",
                Lang::Fr => "demande",
            };
            rows.push(Choice {
                id: start.to_owned(),
                title: RequestForm::menu_label(lang).to_owned(),
                description: None,
            });
        }
        Offer::list(msg::MENU_HEADER.get(lang), msg::TOPICS_BUTTON.get(lang), rows)
    }

    /// The reply to a tap on an entry's or a category's row sent earlier (see
    /// [`ENTRY_TAP`]); `None` for anything else, or an entry or category gone since.
    fn tapped(&self, session: &mut Session, text: &str, lang: Lang) -> Option<Reply> {
        if let Some(id) = text.strip_prefix(ENTRY_TAP) {
            let entry = self.engine.entry(id)?;
            session.pending = None;
            let lang = session.lang.unwrap_or(entry.lang);
            let outcome = Outcome::Answered { id: entry.id.clone(), score: 1.0 };
            return Some(reply(lang, outcome, &self.answer_text(&entry, lang)));
        }
        let id = text.strip_prefix(CATEGORY_TAP)?;
        let categories = self.categories(&self.engine.entries());
        let category = categories.iter().find(|c| c.id == id)?;
        Some(self.show_category(session, category, lang))
    }

    /// A category's questions, numbered, as a list.
    fn show_category(&self, session: &mut Session, category: &Category, lang: Lang) -> Reply {
        let live = self.engine.entries();
        let in_category = live.iter().filter(|e| e.category.as_deref() == Some(&category.id));
        let entries = self.in_language(in_category, lang);
        let header = msg::CATEGORY_HEADER.get(lang).replace("{title}", category.title(lang));
        let mut out = header.clone();
        for (i, e) in entries.iter().enumerate() {
            out.push_str(&format!("\n{}. {}", i + 1, e.questions[0]));
        }
        session.pending = Some(Pending::Entries(entries.iter().map(|e| e.id.clone()).collect()));
        let rows = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Choice {
                id: tap_id(ENTRY_TAP, &e.id, i + 1),
                title: e.questions[0].clone(),
                description: None,
            })
            .collect();
        let offer = Offer::list(&header, msg::QUESTIONS_BUTTON.get(lang), rows);
        reply(lang, Outcome::Menu, &out).offering(offer)
    }

    fn choose(&self, session: &mut Session, n: usize, lang: Lang) -> Reply {
        match session.pending.clone() {
            Some(Pending::Categories) => {
                let live = self.engine.entries();
                let categories = self.categories(&live);
                if n == categories.len() + 1
                    && let Some(form) = self.requests.load_full()
                {
                    return form.start(session, lang, self.clock.now_ms());
                }
                let Some(category) = n.checked_sub(1).and_then(|i| categories.get(i)) else {
                    return reply(lang, Outcome::Other, msg::BAD_CHOICE.get(lang));
                };
                self.show_category(session, category, lang)
            }
            Some(Pending::Entries(ids)) => {
                let entry = n.checked_sub(1).and_then(|i| ids.get(i)).and_then(|id| self.engine.entry(id));
                match entry {
                    Some(e) => {
                        let outcome = Outcome::Answered { id: e.id.clone(), score: 1.0 };
                        reply(lang, outcome, &self.answer_text(&e, lang))
                    }
                    None => reply(lang, Outcome::Other, msg::BAD_CHOICE.get(lang)),
                }
            }
            None => self.answer(session, &n.to_string()),
        }
    }

    /// Entries of a category for a user writing in `lang`: those in `lang`, plus those
    /// whose topic has no entry in `lang`.
    fn in_language<'a>(
        &self,
        entries: impl Iterator<Item = &'a Arc<FaqEntry>>,
        lang: Lang,
    ) -> Vec<&'a Arc<FaqEntry>> {
        entries.filter(|e| e.lang == lang || self.engine.twin(e, lang).is_none()).collect()
    }

    fn answer(&self, session: &mut Session, text: &str) -> Reply {
        session.pending = None;
        // Not sure enough to answer: the nearest questions are offered, if any come close.
        let floor = self.engine.params().threshold * SUGGESTION_FLOOR;
        let found = self.engine.consult(text, session.lang, 2 * MAX_SUGGESTIONS, floor);
        let lang = found.lang.or(found.answer.as_ref().map(|m| m.entry.lang)).unwrap_or(Lang::En);
        if let Some(m) = found.answer {
            let outcome = Outcome::Answered { id: m.entry.id.clone(), score: m.score };
            return reply(lang, outcome, &self.answer_text(&m.entry, lang));
        }
        // Each suggestion in the user's language where its topic has it, each topic once.
        let mut suggestions: Vec<Arc<FaqEntry>> = Vec::new();
        for m in found.nearest {
            let entry = self.engine.twin(&m.entry, lang).unwrap_or(m.entry);
            if suggestions.len() < MAX_SUGGESTIONS && !suggestions.iter().any(|s| s.id == entry.id) {
                suggestions.push(entry);
            }
        }
        if suggestions.is_empty() {
            return reply(lang, Outcome::Declined, msg::NOT_UNDERSTOOD.get(lang));
        }
        let mut out = String::from(msg::SUGGESTIONS.get(lang));
        for (i, e) in suggestions.iter().enumerate() {
            out.push_str(&format!("\n{}. {}", i + 1, e.questions[0]));
        }
        session.pending = Some(Pending::Entries(suggestions.iter().map(|e| e.id.clone()).collect()));
        let ids: Vec<String> =
            suggestions.iter().enumerate().map(|(i, e)| tap_id(ENTRY_TAP, &e.id, i + 1)).collect();
        let buttons: Vec<(&str, &str)> =
            ids.iter().zip(&suggestions).map(|(id, e)| (id.as_str(), e.questions[0].as_str())).collect();
        let offer = Offer::buttons(&out, &buttons);
        reply(lang, Outcome::Suggested, &out).offering(offer)
    }

    fn answer_text(&self, e: &FaqEntry, lang: Lang) -> String {
        match (e.lang, lang) {
            (Lang::Fr, Lang::En) => format!("{}\n{}", msg::ONLY_IN_FRENCH, e.answer),
            (Lang::En, Lang::Fr) => format!("{}\n{}", msg::ONLY_IN_ENGLISH, e.answer),
            _ => e.answer.clone(),
        }
    }
}

/// The language a request for a person is written in, when its words say so.
fn detect_lang(text: &str) -> Option<Lang> {
    const FRENCH: &[&str] = &[
        "humain",
        "humaine",
        "conseiller",
        "conseillere",
        "parler",
        "personne",
        "quelqu",
        "quelquun",
        "operateur",
        "je",
        "veux",
    ];
    let words = crate::engine::text::words(text);
    if words.iter().any(|w| FRENCH.contains(&w.as_str())) { Some(Lang::Fr) } else { Some(Lang::En) }
}

fn reply(lang: Lang, outcome: Outcome, text: &str) -> Reply {
    Reply { messages: vec![text.to_owned()], lang, outcome, offer: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn dialog() -> Dialog {
        let kb = Arc::new(KnowledgeBase::embedded().unwrap());
        let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
        Dialog::new(kb, engine)
    }

    /// One message of a conversation whose state is `session`, as the desk runs it.
    fn say(d: &Dialog, session: &mut Session, text: &str) -> Reply {
        let msg = Incoming {
            user: Address::parse(Channel::Twilio, "+33600000000").unwrap(),
            text: text.into(),
            profile_name: Some("Élodie".into()),
        };
        let reply = d.respond(session, &msg);
        session.lang = Some(reply.lang);
        reply
    }

    #[test]
    fn a_request_form_left_idle_expires_by_the_dialogs_clock() {
        use crate::config::RequestSettings;
        use crate::domain::TestClock;
        let kb = Arc::new(KnowledgeBase::embedded().unwrap());
        let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
        let clock = Arc::new(TestClock::at(1_795_089_600_000));
        let d = Dialog::live(Arc::new(ArcSwap::new(kb)), engine, clock.clone());
        let settings = RequestSettings { idle_secs: 600, ..RequestSettings::default() };
        d.set_requests(Some(Arc::new(RequestForm::new(settings))));
        let mut s = Session::default();
        say(&d, &mut s, "request");
        say(&d, &mut s, "1");
        clock.advance(599_000);
        assert!(say(&d, &mut s, "Ana").messages[0].contains("last name"), "still going at 599 s");
        clock.advance(601_000);
        let r = say(&d, &mut s, "Lopez");
        assert!(r.messages[0].contains("cancelled after 10 minutes"), "{r:?}");
        assert!(s.request.is_none());
    }

    #[test]
    fn a_tap_on_an_earlier_list_opens_what_its_row_said_not_what_its_number_means_now() {
        let d = dialog();
        let mut s = Session::default();
        let menu = say(&d, &mut s, "menu").offer.expect("the menu is a list");
        let Choices::List { choices: categories, .. } = menu.choices else { panic!("a list") };
        assert!(categories.iter().all(|c| c.id.starts_with(CATEGORY_TAP)), "{categories:?}");
        let first = say(&d, &mut s, &categories[0].id).offer.expect("a category is a list");
        let Choices::List { choices: questions, .. } = first.choices else { panic!("a list") };
        let old_row = questions[1].clone();
        // The user moves on to another category, then taps the first list's second row.
        say(&d, &mut s, "menu");
        say(&d, &mut s, &categories[1].id);
        let r = say(&d, &mut s, &old_row.id);
        let entry = old_row.id.strip_prefix(ENTRY_TAP).unwrap();
        assert_eq!(r.outcome, Outcome::Answered { id: entry.to_owned(), score: 1.0 }, "{old_row:?}");
        // A typed number still means the latest list's row.
        say(&d, &mut s, "menu");
        let r = say(&d, &mut s, "1");
        assert_eq!(r.outcome, Outcome::Menu);
        // A tap on an entry removed since is read as text, not as a crash.
        let r = say(&d, &mut s, "faq:no-such-entry");
        assert_ne!(r.outcome, Outcome::Answered { id: "no-such-entry".into(), score: 1.0 });
    }

    #[test]
    fn greetings_answer_in_their_language() {
        let d = dialog();
        let mut s = Session::default();
        let r = say(&d, &mut s, "Bonjour !");
        assert_eq!(r.lang, Lang::Fr);
        assert!(r.messages[0].starts_with("Bonjour Élodie !"), "{}", r.messages[0]);
        let r = say(&d, &mut s, "hi");
        assert_eq!(r.lang, Lang::En);
        assert!(r.messages[0].starts_with("Hello Élodie!"));
    }

    #[test]
    fn the_menu_lists_categories_and_a_number_opens_one() {
        let d = dialog();
        let mut s = Session::default();
        let r = say(&d, &mut s, "aide");
        assert_eq!(r.outcome, Outcome::Menu);
        assert!(r.messages[0].contains("\n1. "));
        let r = say(&d, &mut s, "1");
        assert_eq!(r.outcome, Outcome::Menu);
        let r = say(&d, &mut s, "1");
        assert!(matches!(r.outcome, Outcome::Answered { .. }), "{r:?}");
        assert_eq!(r.lang, Lang::Fr);
    }

    #[test]
    fn the_fallback_is_honest_and_in_the_users_language() {
        let d = dialog();
        let mut s = Session::default();
        let r = say(&d, &mut s, "quelle est la recette des crêpes bretonnes ?");
        assert_eq!(r.outcome, Outcome::Declined);
        assert_eq!(r.lang, Lang::Fr);
        assert!(r.messages[0].contains("menu"));
        let r = say(&d, &mut s, "who won the football match yesterday?");
        assert_eq!(r.outcome, Outcome::Declined);
        assert_eq!(r.lang, Lang::En);
    }

    #[test]
    fn a_number_out_of_range_is_refused_politely() {
        let d = dialog();
        let mut s = Session::default();
        say(&d, &mut s, "menu");
        let r = say(&d, &mut s, "99");
        assert_eq!(r.messages[0], msg::BAD_CHOICE.get(Lang::En));
    }

    #[test]
    fn the_language_can_be_switched() {
        let d = dialog();
        let mut s = Session::default();
        assert_eq!(say(&d, &mut s, "français").lang, Lang::Fr);
        assert_eq!(say(&d, &mut s, "menu").lang, Lang::Fr);
    }

    #[test]
    fn a_close_miss_offers_numbered_suggestions_in_the_users_language() {
        use crate::engine::{EngineParams, FaqEntry, Lexicon};
        let entries = vec![
            FaqEntry::new(
                "pw-en",
                Lang::En,
                &["How do I reset my password on the portal?"],
                "Use it.example.com.",
            ),
            FaqEntry::new(
                "pw-fr",
                Lang::Fr,
                &["Comment réinitialiser mon password ?"],
                "Allez sur it.example.com.",
            ),
        ];
        let kb = Arc::new(KnowledgeBase::default());
        // A high threshold turns every good match into a close miss.
        let params = EngineParams { threshold: 0.95, ..EngineParams::default() };
        let engine = Arc::new(Engine::with_params(&entries, &Lexicon::default(), params));
        let d = Dialog::new(kb, engine);
        let mut s = Session::default();
        let r = say(&d, &mut s, "reset my password please");
        assert_eq!(r.outcome, Outcome::Suggested, "{r:?}");
        assert!(r.messages[0].ends_with("\n1. How do I reset my password on the portal?"), "{r:?}");
        let chosen = say(&d, &mut s, "1");
        assert_eq!(chosen.outcome, Outcome::Answered { id: "pw-en".into(), score: 1.0 });
        assert_eq!(chosen.messages, ["Use it.example.com."]);
    }
}
