//! The guided request form, one step per message: type → first name → last name → details
//! → summary and confirmation. Pure: the state is the session's [`Draft`], the clock is a
//! parameter, nothing is stored or sent here.
//!
//! The names are skipped when the session knows the employee (badge read and found in the
//! directory). `cancel`/`annuler` leaves at any step; a wrong answer re-asks the same step
//! and says what is expected; a draft idle longer than the configured time is dropped and
//! the user told so.

use super::{Offer, Outcome, Reply};
use crate::config::RequestSettings;
use crate::domain::Bilingual;
use crate::domain::{
    Details, Draft, MAX_NAME_CHARS, NewRequest, PersonName, RequestType, Session, Step, TICKET_PLACEHOLDER,
    clean_line,
};
use crate::engine::Lang;

const MENU_ENTRY: Bilingual = Bilingual::new(
    "Make an administrative request (certificate, payslip copy, leave…)",
    "Faire une demande administrative (attestation, fiche de paie, congés…)",
);
const ASK_KIND: Bilingual = Bilingual::new(
    "New administrative request. Which one? Reply with a number (or *cancel* at any time):",
    "Nouvelle demande administrative. Laquelle ? Répondez par un numéro (ou *annuler* à tout moment) :",
);
const BAD_KIND: Bilingual = Bilingual::new(
    "Please reply with one of the numbers below, or *cancel*.",
    "Merci de répondre par l'un des numéros ci-dessous, ou *annuler*.",
);
const ASK_FIRST: Bilingual =
    Bilingual::new("*{label}*. What is your first name?", "*{label}*. Quel est votre prénom ?");
const ASK_LAST: Bilingual = Bilingual::new("And your last name?", "Et votre nom de famille ?");
const BAD_NAME: Bilingual = Bilingual::new(
    "That doesn't look like a name: letters, spaces, hyphens and apostrophes only, up to 60 characters. Please type it again, or *cancel*.",
    "Cela ne ressemble pas à un nom : lettres, espaces, traits d'union et apostrophes seulement, 60 caractères au plus. Merci de le retaper, ou *annuler*.",
);
const ASK_DETAILS: Bilingual = Bilingual::new(
    "Any details for the service (dates, number of copies, new address…)? Type them, or *skip*.",
    "Des précisions pour le service (dates, nombre d'exemplaires, nouvelle adresse…) ? Écrivez-les, ou *passer*.",
);
const ASK_DETAILS_KNOWN: Bilingual = Bilingual::new(
    "*{label}* for {name}. Any details for the service (dates, number of copies, new address…)? Type them, or *skip*.",
    "*{label}* pour {name}. Des précisions pour le service (dates, nombre d'exemplaires, nouvelle adresse…) ? Écrivez-les, ou *passer*.",
);
const BAD_DETAILS: Bilingual = Bilingual::new(
    "Please type the details as text, or *skip*.",
    "Merci d'écrire les précisions, ou *passer*.",
);
const SUMMARY: Bilingual = Bilingual::new(
    "Please check your request:\n• Request: {label}\n• Name: {name}\n• Details: {details}\nIt will be e-mailed to {email}. Send it? Reply *yes* or *no*.",
    "Merci de vérifier votre demande :\n• Demande : {label}\n• Nom : {name}\n• Précisions : {details}\nElle sera envoyée par e-mail à {email}. L'envoyer ? Répondez *oui* ou *non*.",
);
const TYPES_BUTTON: Bilingual = Bilingual::new("Requests", "Demandes");
const NO_DETAILS: Bilingual = Bilingual::new("none", "aucune");
const BAD_CONFIRM: Bilingual = Bilingual::new(
    "Please reply *yes* to send the request, or *no* to cancel it.",
    "Merci de répondre *oui* pour envoyer la demande, ou *non* pour l'annuler.",
);
const SUBMITTED: Bilingual = Bilingual::new(
    "Your request is registered under the number *{ticket}*. It will be e-mailed to {email}; keep the number to follow it up.",
    "Votre demande est enregistrée sous le numéro *{ticket}*. Elle sera envoyée par e-mail à {email} ; gardez ce numéro pour la suivre.",
);
const MID_FORM: Bilingual = Bilingual::new(
    "You are making a request: answer the question below, or type *cancel* to stop it.",
    "Vous êtes en train de faire une demande : répondez à la question ci-dessous, ou tapez *annuler* pour l'arrêter.",
);
const CANCELLED: Bilingual = Bilingual::new(
    "Request cancelled: nothing was sent. Type *request* to start a new one, or *menu*.",
    "Demande annulée : rien n'a été envoyé. Tapez *demande* pour en faire une nouvelle, ou *menu*.",
);
const EXPIRED: Bilingual = Bilingual::new(
    "Your request in progress was cancelled after {minutes} minutes without a reply, and nothing was sent. Type *request* to start again.",
    "Votre demande en cours a été annulée après {minutes} minutes sans réponse, et rien n'a été envoyé. Tapez *demande* pour recommencer.",
);

/// The form over the configured request types.
#[derive(Debug, Clone)]
pub struct RequestForm {
    settings: RequestSettings,
}

/// The words of `text`, lowercased and without accents, joined by spaces; a lone letter
/// (`y`, `n`, `o`) is kept, though the engine's tokenizer drops those.
fn key(text: &str) -> String {
    let bare = text.trim().trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    if bare.chars().count() == 1 { bare } else { crate::engine::text::words(text).join(" ") }
}

/// `request` or `demande` (and a few variants): the language they are in.
fn start_command(key: &str) -> Option<Lang> {
    match key {
        "request" | "requests" | "new request" | "make a request" | "administrative request" => {
            Some(Lang::En)
        }
        "demande" | "demandes" | "nouvelle demande" | "faire une demande" | "demande administrative" => {
            Some(Lang::Fr)
        }
        _ => None,
    }
}

/// Words that mean "get me out of here" or "where am I", not an answer: the form reminds
/// the user where they are instead of taking `menu` for a first name.
fn is_interruption(key: &str) -> bool {
    matches!(
        key,
        "menu" | "help" | "aide" | "options" | "sommaire" | "start" | "hi" | "hello" | "bonjour" | "salut"
    )
}

fn is_cancel(key: &str) -> bool {
    matches!(key, "cancel" | "annuler" | "annule" | "abandon" | "abandonner" | "quit")
}

fn yes_no(key: &str) -> Option<bool> {
    match key {
        "yes" | "y" | "yep" | "yeah" | "ok" | "okay" | "confirm" | "send" | "oui" | "o" | "ouais"
        | "accord" | "confirmer" | "valider" | "envoyer" => Some(true),
        "no" | "n" | "nope" | "non" => Some(false),
        _ => None,
    }
}

fn is_skip(key: &str) -> bool {
    matches!(key, "skip" | "passer" | "none" | "no" | "non" | "aucune" | "aucun" | "rien" | "nothing")
}

impl RequestForm {
    /// A form offering `settings.types`.
    pub fn new(settings: RequestSettings) -> Self {
        RequestForm { settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RequestSettings {
        &self.settings
    }

    /// The line the main menu shows for requests.
    pub fn menu_label(lang: Lang) -> &'static str {
        MENU_ENTRY.get(lang)
    }

    /// Starts a new form (the menu entry was chosen, or `request` typed).
    pub fn start(&self, session: &mut Session, lang: Lang, now_ms: i64) -> Reply {
        session.pending = None;
        session.request = Some(Draft {
            step: Step::Kind,
            kind: None,
            first_name: None,
            last_name: None,
            details: None,
            touched_ms: now_ms,
        });
        self.reply(lang, &format!("{}\n{}", ASK_KIND.get(lang), self.type_list(lang)))
            .offering(self.types_offer(lang))
    }

    /// The request types as a list.
    fn types_offer(&self, lang: Lang) -> Offer {
        let rows = self.settings.types.iter().map(|t| (t.label(lang).to_owned(), Some(t.email.clone())));
        Offer::numbered_list(ASK_KIND.get(lang), TYPES_BUTTON.get(lang), rows)
    }

    /// A "skip" button under the details' question.
    fn skip_offer(text: &str, lang: Lang) -> Offer {
        let (id, title) = match lang {
            Lang::En => ("skip", "Skip"),
            Lang::Fr => ("passer", "Passer"),
        };
        Offer::buttons(text, &[(id, title)])
    }

    /// "Yes" and "no" buttons under the summary.
    fn confirm_offer(text: &str, lang: Lang) -> Offer {
        match lang {
            Lang::En => Offer::buttons(text, &[("yes", "Yes, send it"), ("no", "No, cancel")]),
            Lang::Fr => Offer::buttons(text, &[("oui", "Oui, envoyer"), ("non", "Non, annuler")]),
        }
    }

    /// Handles `text` if it belongs to the form: a draft is open, or it is a start command.
    /// `None` leaves the message to the rest of the dialog.
    pub fn respond(&self, session: &mut Session, text: &str, now_ms: i64) -> Option<Reply> {
        let key = key(text);
        let lang = session.lang.unwrap_or(Lang::En);
        let Some(mut draft) = session.request.take() else {
            let lang = start_command(&key)?;
            return Some(self.start(session, lang, now_ms));
        };
        let idle_ms = i64::try_from(self.settings.idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(draft.touched_ms) > idle_ms {
            let minutes = self.settings.idle_secs.div_ceil(60).to_string();
            return Some(self.reply(lang, &EXPIRED.get(lang).replace("{minutes}", &minutes)));
        }
        if is_cancel(&key) {
            return Some(self.reply(lang, CANCELLED.get(lang)));
        }
        draft.touched_ms = now_ms;
        if is_interruption(&key) {
            let text = format!("{}\n\n{}", MID_FORM.get(lang), self.question(session, &draft, lang));
            session.request = Some(draft);
            return Some(self.reply(lang, &text));
        }
        let (reply, next) = self.step(session, draft, text, &key, lang);
        session.request = next;
        Some(reply)
    }

    /// The question of the draft's current step, asked again.
    fn question(&self, session: &Session, draft: &Draft, lang: Lang) -> String {
        let kind = self.kind(draft);
        let label = kind.map_or("", |k| k.label(lang));
        match (draft.step, kind) {
            (Step::FirstName, _) => ASK_FIRST.get(lang).replace("{label}", label),
            (Step::LastName, _) => ASK_LAST.get(lang).to_owned(),
            (Step::Details, _) => match &session.employee {
                Some(e) => ASK_DETAILS_KNOWN
                    .get(lang)
                    .replace("{label}", label)
                    .replace("{name}", &clean_line(&e.full_name(), 2 * MAX_NAME_CHARS + 1)),
                None => ASK_DETAILS.get(lang).to_owned(),
            },
            (Step::Confirm, Some(k)) => self.summary(session, draft, k, lang).messages.remove(0),
            (Step::Kind, _) | (Step::Confirm, None) => {
                format!("{}\n{}", ASK_KIND.get(lang), self.type_list(lang))
            }
        }
    }

    /// A fresh draft at the first step, and the question.
    fn restart(&self, lang: Lang, now_ms: i64) -> (Reply, Option<Draft>) {
        let mut fresh = Session::default();
        let reply = self.start(&mut fresh, lang, now_ms);
        (reply, fresh.request)
    }

    /// The reply to one answer, and the draft after it (`None`: the form is closed).
    fn step(
        &self,
        session: &Session,
        mut draft: Draft,
        text: &str,
        key: &str,
        lang: Lang,
    ) -> (Reply, Option<Draft>) {
        let reply = match draft.step {
            Step::Kind => {
                let chosen = key
                    .trim_end_matches(['.', ')'])
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| self.settings.types.get(i));
                let Some(kind) = chosen else {
                    let text = format!("{}\n{}", BAD_KIND.get(lang), self.type_list(lang));
                    return (self.reply(lang, &text).offering(self.types_offer(lang)), Some(draft));
                };
                draft.kind = Some(kind.id.clone());
                if let Some(e) = &session.employee {
                    draft.step = Step::Details;
                    let name = clean_line(&e.full_name(), 2 * MAX_NAME_CHARS + 1);
                    let text = ASK_DETAILS_KNOWN
                        .get(lang)
                        .replace("{label}", kind.label(lang))
                        .replace("{name}", &name);
                    return (self.reply(lang, &text).offering(Self::skip_offer(&text, lang)), Some(draft));
                }
                draft.step = Step::FirstName;
                self.reply(lang, &ASK_FIRST.get(lang).replace("{label}", kind.label(lang)))
            }
            Step::FirstName => match PersonName::parse(text) {
                Ok(name) => {
                    draft.first_name = Some(name);
                    draft.step = Step::LastName;
                    self.reply(lang, ASK_LAST.get(lang))
                }
                Err(_) => self.reply(lang, BAD_NAME.get(lang)),
            },
            Step::LastName => match PersonName::parse(text) {
                Ok(name) => {
                    draft.last_name = Some(name);
                    draft.step = Step::Details;
                    let text = ASK_DETAILS.get(lang);
                    self.reply(lang, text).offering(Self::skip_offer(text, lang))
                }
                Err(_) => self.reply(lang, BAD_NAME.get(lang)),
            },
            Step::Details => {
                if is_skip(key) {
                    draft.details = None;
                } else {
                    let Ok(details) = Details::parse(text) else {
                        return (self.reply(lang, BAD_DETAILS.get(lang)), Some(draft));
                    };
                    draft.details = Some(details);
                }
                draft.step = Step::Confirm;
                let Some(kind) = self.kind(&draft) else { return self.restart(lang, draft.touched_ms) };
                self.summary(session, &draft, kind, lang)
            }
            Step::Confirm => match yes_no(key) {
                Some(true) => {
                    // The type may have left the configuration since: start over then.
                    let Some(kind) = self.kind(&draft) else { return self.restart(lang, draft.touched_ms) };
                    let text = SUBMITTED.get(lang).replace("{email}", &kind.email);
                    let reply = Reply {
                        messages: vec![text.replace("{ticket}", TICKET_PLACEHOLDER)],
                        lang,
                        outcome: Outcome::RequestSubmitted(Box::new(
                            self.request(session, &draft, kind, lang),
                        )),
                        offer: None,
                    };
                    return (reply, None);
                }
                Some(false) => return (self.reply(lang, CANCELLED.get(lang)), None),
                None => {
                    let text = BAD_CONFIRM.get(lang);
                    self.reply(lang, text).offering(Self::confirm_offer(text, lang))
                }
            },
        };
        (reply, Some(draft))
    }

    fn kind(&self, draft: &Draft) -> Option<&RequestType> {
        let id = draft.kind.as_deref()?;
        self.settings.types.iter().find(|t| t.id == id)
    }

    fn names(session: &Session, draft: &Draft) -> (String, String) {
        match &session.employee {
            Some(e) => (clean_line(&e.first_name, MAX_NAME_CHARS), clean_line(&e.last_name, MAX_NAME_CHARS)),
            None => {
                let name =
                    |n: &Option<PersonName>| n.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default();
                (name(&draft.first_name), name(&draft.last_name))
            }
        }
    }

    fn summary(&self, session: &Session, draft: &Draft, kind: &RequestType, lang: Lang) -> Reply {
        let (first, last) = Self::names(session, draft);
        let text = SUMMARY
            .get(lang)
            .replace("{label}", kind.label(lang))
            .replace("{email}", &kind.email)
            .replace("{name}", &format!("{first} {last}"))
            .replace("{details}", draft.details.as_ref().map_or(NO_DETAILS.get(lang), Details::as_str));
        self.reply(lang, &text).offering(Self::confirm_offer(&text, lang))
    }

    fn request(&self, session: &Session, draft: &Draft, kind: &RequestType, lang: Lang) -> NewRequest {
        let (first_name, last_name) = Self::names(session, draft);
        let e = session.employee.as_ref();
        let clean = |s: &str| clean_line(s, 200);
        NewRequest {
            kind: kind.id.clone(),
            kind_label: format!("{} / {}", kind.label_en, kind.label_fr),
            recipient: kind.email.clone(),
            first_name,
            last_name,
            employee_id: e.map(|e| clean(&e.id)),
            employee_email: e.map(|e| clean(&e.email)),
            department: e.map(|e| clean(&e.department)),
            details: draft.details.clone().map(String::from),
            lang,
        }
    }

    fn type_list(&self, lang: Lang) -> String {
        let lines: Vec<String> = self
            .settings
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}. {} ({})", i + 1, t.label(lang), t.email))
            .collect();
        lines.join("\n")
    }

    fn reply(&self, lang: Lang, text: &str) -> Reply {
        Reply { messages: vec![text.to_owned()], lang, outcome: Outcome::Request, offer: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Employee;

    const T0: i64 = 1_795_089_600_000;

    fn form() -> RequestForm {
        RequestForm::new(RequestSettings::default())
    }

    /// Feeds `texts` one by one, a second apart; the last reply.
    fn run(form: &RequestForm, session: &mut Session, texts: &[&str]) -> Reply {
        let mut last = None;
        for (i, t) in texts.iter().enumerate() {
            let r = form.respond(session, t, T0 + 1000 * i as i64).expect("the form answers");
            // As the desk does after every turn.
            session.lang = Some(r.lang);
            last = Some(r);
        }
        last.unwrap()
    }

    fn submitted(r: &Reply) -> &NewRequest {
        match &r.outcome {
            Outcome::RequestSubmitted(req) => req,
            other => panic!("not submitted: {other:?} {:?}", r.messages),
        }
    }

    #[test]
    fn an_english_request_goes_through_every_step() {
        let f = form();
        let mut s = Session::default();
        let r = run(&f, &mut s, &["request"]);
        assert!(r.messages[0].contains("1. Work certificate (hr@example.com)"), "{r:?}");
        let r = run(&f, &mut s, &["1", "Élodie", "Garçon", "Two copies please"]);
        assert!(r.messages[0].contains("• Name: Élodie Garçon"), "{r:?}");
        assert!(r.messages[0].contains("hr@example.com"));
        let r = run(&f, &mut s, &["yes"]);
        let req = submitted(&r);
        assert_eq!((req.first_name.as_str(), req.last_name.as_str()), ("Élodie", "Garçon"));
        assert_eq!(req.recipient, "hr@example.com");
        assert_eq!(req.details.as_deref(), Some("Two copies please"));
        assert!(r.messages[0].contains(TICKET_PLACEHOLDER));
        assert!(s.request.is_none(), "the form is closed");
        assert!(f.respond(&mut s, "hello", T0).is_none(), "other messages go back to the FAQ");
    }

    #[test]
    fn a_french_request_skips_details_and_says_oui() {
        let f = form();
        let mut s = Session::default();
        let r = run(&f, &mut s, &["Demande", "4", "Loïc", "Martin", "passer"]);
        assert_eq!(r.lang, Lang::Fr);
        assert!(r.messages[0].contains("• Précisions : aucune"), "{r:?}");
        let req = submitted(&run(&f, &mut s, &["oui"])).clone();
        assert_eq!((req.kind.as_str(), req.details, req.lang), ("leave-request", None, Lang::Fr));
    }

    #[test]
    fn each_step_re_asks_until_the_answer_fits() {
        let f = form();
        let mut s = Session::default();
        let r = run(&f, &mut s, &["request", "42"]);
        assert!(r.messages[0].starts_with("Please reply with one of the numbers"), "{r:?}");
        assert_eq!(s.request.as_ref().unwrap().step, Step::Kind);
        let r = run(&f, &mut s, &["2", "R2-D2"]);
        assert!(r.messages[0].starts_with("That doesn't look like a name"), "{r:?}");
        let r = run(&f, &mut s, &["Ana", "Bcc: x@evil.example"]);
        assert!(r.messages[0].starts_with("That doesn't look like a name"));
        let r = run(&f, &mut s, &["Lopez", "\r\n\u{7}"]);
        assert!(r.messages[0].starts_with("Please type the details"), "{r:?}");
        let r = run(&f, &mut s, &["skip", "maybe"]);
        assert!(r.messages[0].starts_with("Please reply *yes*"), "{r:?}");
        assert_eq!(submitted(&run(&f, &mut s, &["y"])).last_name, "Lopez");
    }

    #[test]
    fn menu_or_help_mid_form_reminds_the_user_and_asks_again() {
        let f = form();
        let mut s = Session::default();
        let r = run(&f, &mut s, &["request", "1", "menu"]);
        assert!(r.messages[0].starts_with("You are making a request"), "{r:?}");
        assert!(r.messages[0].ends_with("What is your first name?"), "{r:?}");
        assert_eq!(s.request.as_ref().unwrap().step, Step::FirstName, "`menu` is not a first name");
        let r = run(&f, &mut s, &["Ana", "Lopez", "skip", "aide"]);
        assert!(r.messages[0].contains("• Name: Ana Lopez"), "the summary again: {r:?}");
        assert_eq!(submitted(&run(&f, &mut s, &["yes"])).first_name, "Ana");
    }

    #[test]
    fn cancel_works_at_every_step() {
        let f = form();
        let steps = ["request", "1", "Ana", "Lopez", "skip"];
        for n in 1..=steps.len() {
            let mut s = Session::default();
            run(&f, &mut s, &steps[..n]);
            assert!(s.request.is_some());
            let r = run(&f, &mut s, &["Cancel"]);
            assert!(r.messages[0].starts_with("Request cancelled"), "{r:?}");
            assert!(s.request.is_none());
        }
        let mut s = Session::default();
        let r = run(&f, &mut s, &["demande", "1", "annuler"]);
        assert!(r.messages[0].starts_with("Demande annulée"));
        let r = run(&f, &mut s, &["request", "1", "Ana", "Lopez", "skip", "no"]);
        assert!(r.messages[0].starts_with("Request cancelled"), "no at the summary cancels");
    }

    #[test]
    fn an_identified_employee_is_not_asked_for_a_name() {
        let f = form();
        let mut s = Session {
            employee: Some(Employee {
                id: "712056".into(),
                first_name: "Élodie".into(),
                last_name: "Garçon".into(),
                email: "elodie.garcon@example.com".into(),
                department: "Finance".into(),
            }),
            ..Session::default()
        };
        let r = run(&f, &mut s, &["request", "2"]);
        assert!(r.messages[0].contains("for Élodie Garçon"), "{r:?}");
        assert_eq!(s.request.as_ref().unwrap().step, Step::Details);
        let r = run(&f, &mut s, &["skip"]);
        assert!(r.messages[0].contains("• Name: Élodie Garçon"), "{r:?}");
        let req = submitted(&run(&f, &mut s, &["yes"])).clone();
        assert_eq!(req.employee_id.as_deref(), Some("712056"));
        assert_eq!(req.employee_email.as_deref(), Some("elodie.garcon@example.com"));
        assert_eq!((req.first_name.as_str(), req.last_name.as_str()), ("Élodie", "Garçon"));
    }

    #[test]
    fn an_idle_form_expires_and_the_user_is_told() {
        let f = RequestForm::new(RequestSettings { idle_secs: 600, ..RequestSettings::default() });
        let mut s = Session::default();
        run(&f, &mut s, &["request", "1"]);
        let later = T0 + 2000 + 601_000;
        let r = f.respond(&mut s, "Ana", later).unwrap();
        assert!(r.messages[0].contains("cancelled after 10 minutes"), "{r:?}");
        assert!(s.request.is_none());
        assert!(f.respond(&mut s, "Ana", later).is_none(), "the next message is an ordinary one");
    }
}
