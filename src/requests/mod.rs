//! Administrative requests: the configured request types, the guided form that fills one
//! in ([`form`]), and the [`Desk`] that commits each turn — session, request, outbox row
//! and MessageSid — before the user is told anything.
//!
//! Owns what a user may type into a request and how it is cleaned: every user-provided
//! field passes through [`clean_line`] or [`clean_text`] before it is stored, so no control
//! character (CR/LF above all) ever reaches an e-mail header. Must not: send e-mail (that is
//! [`crate::mail`]'s worker, reading the outbox) or speak HTTP.

pub mod desk;
pub mod form;
pub mod report;

use serde::{Deserialize, Serialize};

pub use desk::{Desk, DeskError, Handled};
pub use form::{Draft, RequestForm, Step};

use crate::engine::Lang;

/// The longest name part accepted, in characters.
pub const MAX_NAME_CHARS: usize = 60;
/// The longest details accepted, in characters.
pub const MAX_DETAILS_CHARS: usize = 1000;

/// A kind of request employees can make, and the service it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestType {
    /// Stable id, stored with each request (`work-certificate`).
    pub id: String,
    /// Label in English.
    pub label_en: String,
    /// Label in French.
    pub label_fr: String,
    /// The service address the request is e-mailed to.
    pub email: String,
}

impl RequestType {
    /// The label in `lang`.
    pub fn label(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.label_en,
            Lang::Fr => &self.label_fr,
        }
    }
}

/// Settings of the request form (TOML `[requests]`, with `[[requests.types]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings {
    /// The request types, in menu order.
    pub types: Vec<RequestType>,
    /// A form left this long without a reply is dropped; the user is told on their next
    /// message. Seconds.
    pub idle_secs: u64,
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings { types: default_types(), idle_secs: 30 * 60 }
    }
}

impl RequestSettings {
    /// Checks the types: at least one, unique ids, plausible addresses, non-empty labels.
    pub fn validate(&self) -> Result<(), String> {
        if self.types.is_empty() {
            return Err("requests.types: at least one request type is needed".into());
        }
        for (i, t) in self.types.iter().enumerate() {
            if t.id.trim().is_empty() || t.label_en.trim().is_empty() || t.label_fr.trim().is_empty() {
                return Err(format!("requests.types[{i}]: id, label_en and label_fr must not be empty"));
            }
            if t.email.parse::<lettre::Address>().is_err() {
                return Err(format!(
                    "requests.types[{i}] ({}): {:?} is not an e-mail address",
                    t.id, t.email
                ));
            }
            if self.types[..i].iter().any(|o| o.id == t.id) {
                return Err(format!("requests.types: id {:?} appears twice", t.id));
            }
        }
        Ok(())
    }
}

/// The `[requests]` table of the configuration file; `types` replaces the default list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsFile {
    types: Option<Vec<RequestType>>,
    idle_secs: Option<u64>,
}

impl RequestSettings {
    /// Applies the file's `[requests]` table.
    pub fn apply_file(&mut self, f: RequestsFile) {
        if let Some(types) = f.types {
            self.types = types;
        }
        self.idle_secs = f.idle_secs.unwrap_or(self.idle_secs);
    }

    /// Applies `WABOT_REQUEST_IDLE_SECS`.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        if let Some(v) = env("WABOT_REQUEST_IDLE_SECS") {
            self.idle_secs = v.trim().parse().map_err(|e| ("WABOT_REQUEST_IDLE_SECS", format!("{e}")))?;
        }
        Ok(())
    }
}

/// The shipped request types, routed to example addresses: replace them in the
/// configuration file.
pub fn default_types() -> Vec<RequestType> {
    let t = |id: &str, en: &str, fr: &str, email: &str| RequestType {
        id: id.into(),
        label_en: en.into(),
        label_fr: fr.into(),
        email: email.into(),
    };
    vec![
        t("work-certificate", "Work certificate", "Attestation de travail", "hr@example.com"),
        t("salary-certificate", "Salary certificate", "Attestation de salaire", "payroll@example.com"),
        t("payslip-copy", "Copy of a payslip", "Duplicata de fiche de paie", "payroll@example.com"),
        t("leave-request", "Leave request", "Demande de congés", "leave@example.com"),
        t("address-change", "Change of address", "Changement d'adresse", "hr@example.com"),
        t(
            "bank-details",
            "Change of bank details",
            "Changement de coordonnées bancaires",
            "payroll@example.com",
        ),
        t("expense-claim", "Expense claim follow-up", "Suivi de note de frais", "finance@example.com"),
        t("badge-replacement", "Badge replacement", "Remplacement de badge", "security@example.com"),
    ]
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One line of user text made safe for a header or a summary: every control character
/// (CR, LF, tab, NUL…), line or paragraph separator and bidi override becomes a space,
/// spaces collapse, the ends are trimmed, and the result is cut at `max` characters.
pub fn clean_line(text: &str, max: usize) -> String {
    let spaced: String = text.chars().map(|c| if is_unsafe(c) { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(max).collect()
}

/// Multi-line user text for an e-mail body: line breaks (CRLF, CR, LF) become `\n`, other
/// unsafe characters become spaces, each line is trimmed, blank runs are squeezed and the
/// result is cut at `max` characters.
pub fn clean_text(text: &str, max: usize) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<String> = unified.split('\n').map(|l| clean_line(l, usize::MAX)).collect();
    let mut out = String::new();
    let mut blank = false;
    for line in lines {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(&line);
    }
    out.chars().take(max).collect::<String>().trim_end().to_owned()
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A name part as typed, cleaned; `None` when it is not a plausible name: empty, too long,
/// without a letter, or with characters names do not have (digits, `@`, `:`, `<`…).
pub fn valid_name(text: &str) -> Option<String> {
    let name = clean_line(text, usize::MAX);
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().any(char::is_alphabetic)
        && name.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '’' | '.'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_survives_a_line() {
        assert_eq!(clean_line("Élodie\r\nBcc: x@evil.example", 100), "Élodie Bcc: x@evil.example");
        assert_eq!(clean_line("  a\t\u{0}b\u{2028}c\u{202e} ", 100), "a b c");
        assert_eq!(clean_line("abcdef", 3), "abc");
        for c in (0u32..0x20).chain([0x7f, 0x85]).filter_map(char::from_u32) {
            assert!(!clean_line(&format!("a{c}b"), 10).contains(c));
        }
    }

    #[test]
    fn text_keeps_its_lines_but_not_bare_carriage_returns() {
        let t = clean_text("line one\r\nBcc: x@evil.example\r\r\n\n\nlast\u{7}", 1000);
        assert_eq!(t, "line one\nBcc: x@evil.example\n\nlast");
        assert!(!t.contains('\r'));
    }

    #[test]
    fn names_are_letters_and_a_few_signs() {
        assert_eq!(valid_name("  Élodie ").as_deref(), Some("Élodie"));
        assert_eq!(valid_name("Jean-Pierre O'Neil").as_deref(), Some("Jean-Pierre O'Neil"));
        assert_eq!(valid_name("Garçon\r\n").as_deref(), Some("Garçon"));
        assert!(valid_name("Élodie\r\nBcc: x@evil.example").is_none());
        assert!(valid_name("12345").is_none());
        assert!(valid_name("").is_none());
        assert!(valid_name(&"a".repeat(61)).is_none());
    }

    #[test]
    fn types_mail_and_the_database_come_from_the_file_and_the_environment() {
        use crate::config::Settings;
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(
            &path,
            r#"
db = "state/wabot.db"
[mail]
smtp_url = "smtp://bot@mail.example.com:587?tls=required"
from = "HR bot <bot@example.com>"
retry_initial_ms = 250
[requests]
idle_secs = 60
[[requests.types]]
id = "visa-letter"
label_en = "Visa invitation letter"
label_fr = "Lettre d'invitation pour visa"
email = "mobility@example.com"
"#,
        )
        .unwrap();
        let env = |k: &str| match k {
            "WABOT_SMTP_PASSWORD" => Some("s3cret-pw".to_owned()),
            "WABOT_MAIL_REPLY_TO" => Some("hr@example.com".to_owned()),
            "WABOT_REQUEST_IDLE_SECS" => Some("120".to_owned()),
            _ => None,
        };
        let s = Settings::load_with(Some(&path), env).unwrap();
        assert_eq!(s.db, dir.path().join("state/wabot.db"));
        assert_eq!(s.requests.types.len(), 1);
        assert_eq!(s.requests.types[0].label(Lang::Fr), "Lettre d'invitation pour visa");
        assert_eq!(s.requests.idle_secs, 120);
        assert_eq!(s.mail.retry_initial_ms, 250);
        assert_eq!(s.mail.reply_to.as_deref(), Some("hr@example.com"));
        assert_eq!(s.mail.smtp_password.as_ref().unwrap().expose_secret(), "s3cret-pw");
        assert_eq!(s.mail.smtp_host().as_deref(), Some("mail.example.com:587"));
        assert!(!format!("{s:?}").contains("s3cret-pw"));

        let defaults = Settings::load_with(None, |_| None).unwrap();
        assert_eq!(defaults.db, std::path::PathBuf::from("data/wabot.db"));
        assert!(defaults.mail.smtp_url.is_none(), "mail off by default");
        assert_eq!(defaults.requests, RequestSettings::default());

        std::fs::write(&path, "[mail]\nsmtp_password = \"pw-in-file\"\n").unwrap();
        let err = Settings::load_with(Some(&path), |_| None).unwrap_err().to_string();
        assert!(err.contains("set it in the environment") && !err.contains("pw-in-file"), "{err}");
        std::fs::write(&path, "[[requests.types]]\nid = \"x\"\nlabel_en = \"X\"\nlabel_fr = \"X\"\nemail = \"not an address\"\n").unwrap();
        let err = Settings::load_with(Some(&path), |_| None).unwrap_err().to_string();
        assert!(err.contains("is not an e-mail address"), "{err}");
    }

    #[test]
    fn the_default_types_are_valid() {
        RequestSettings::default().validate().unwrap();
        let mut s = RequestSettings::default();
        s.types[1].id = s.types[0].id.clone();
        assert!(s.validate().unwrap_err().contains("twice"));
        s.types.clear();
        assert!(s.validate().is_err());
    }
}
