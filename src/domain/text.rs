//! User text made safe before it is kept: every user-provided field of a request passes
//! through [`clean_line`] or [`clean_text`], so no control character (CR/LF above all) ever
//! reaches an e-mail header. What the form keeps has a type saying it was checked:
//! [`PersonName`] (a first or last name), [`SingleLine`] (one safe line) and [`Details`]
//! (free text on several lines), each made by `parse`; once a value has the type, nobody
//! checks it again.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TextError {
    /// Nothing is left once made safe.
    #[error("empty")]
    Empty,
    /// Longer than allowed.
    #[error("too long")]
    TooLong,
    /// Not what a name is made of: no letter, or digits, `@`, `:`, `<`…
    #[error("not a name")]
    NotAName,
}

/// A first or last name as typed, made safe: letters and a few signs (space, `-`, `'`,
/// `’`, `.`), at most [`MAX_NAME_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// The name `text` is, cleaned (see [`clean_line`]); refused when it is not a
    /// plausible name: empty, too long, without a letter, or with characters names do not
    /// have.
    pub fn parse(text: &str) -> Result<PersonName, TextError> {
        let name = clean_line(text, usize::MAX);
        if name.is_empty() {
            return Err(TextError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(TextError::TooLong);
        }
        let allowed = |c: char| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '’' | '.');
        if !name.chars().any(char::is_alphabetic) || !name.chars().all(allowed) {
            return Err(TextError::NotAName);
        }
        Ok(PersonName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of text safe for a header or a summary (see [`clean_line`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SingleLine(String);

impl SingleLine {
    /// `text` as one safe line of at most `max` characters (cut there); refused when
    /// nothing is left.
    pub fn parse(text: &str, max: usize) -> Result<SingleLine, TextError> {
        let line = clean_line(text, max);
        if line.is_empty() { Err(TextError::Empty) } else { Ok(SingleLine(line)) }
    }

    /// The line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text on several lines, safe for an e-mail body (see [`clean_text`]), at most
/// [`MAX_DETAILS_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Details(String);

impl Details {
    /// `text` made safe and cut at [`MAX_DETAILS_CHARS`]; refused when nothing is left.
    pub fn parse(text: &str) -> Result<Details, TextError> {
        let details = clean_text(text, MAX_DETAILS_CHARS);
        if details.is_empty() { Err(TextError::Empty) } else { Ok(Details(details)) }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_conversions {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
    )*};
}

text_conversions!(PersonName, SingleLine, Details);

/// The longest name part accepted, in characters.
pub const MAX_NAME_CHARS: usize = 60;

/// The longest details accepted, in characters.
pub const MAX_DETAILS_CHARS: usize = 1000;

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
        let name = |t: &str| PersonName::parse(t).map(String::from);
        assert_eq!(name("  Élodie ").as_deref(), Ok("Élodie"));
        assert_eq!(name("Jean-Pierre O'Neil").as_deref(), Ok("Jean-Pierre O'Neil"));
        assert_eq!(name("Garçon\r\n").as_deref(), Ok("Garçon"));
        assert_eq!(name("Élodie\r\nBcc: x@evil.example"), Err(TextError::NotAName));
        assert_eq!(name("12345"), Err(TextError::NotAName));
        assert_eq!(name(""), Err(TextError::Empty));
        assert_eq!(name(&"a".repeat(61)), Err(TextError::TooLong));
    }

    #[test]
    fn lines_and_details_are_safe_once_typed() {
        assert_eq!(SingleLine::parse("a\r\nBcc: b", 100).unwrap().as_str(), "a Bcc: b");
        assert_eq!(SingleLine::parse(" \t ", 100), Err(TextError::Empty));
        assert_eq!(Details::parse("one\r\ntwo").unwrap().as_str(), "one\ntwo");
        assert_eq!(Details::parse("\r\n\u{7}"), Err(TextError::Empty));
        assert_eq!(Details::parse(&"x".repeat(2000)).unwrap().as_str().len(), MAX_DETAILS_CHARS);
    }

    #[test]
    fn a_typed_value_is_stored_as_its_text() {
        let name = PersonName::parse("Élodie").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"Élodie\"");
    }
}
