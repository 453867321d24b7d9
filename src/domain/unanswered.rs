//! A question the FAQ could not answer, counted under a grouping key. Only the key is
//! kept: the question folded (lowercase, no accents, no punctuation) with long digit runs
//! replaced by `#`, never who asked nor a number they typed.

use serde::Serialize;

/// Longest key stored, in characters: a longer question is cut there.
pub const MAX_KEY_CHARS: usize = 200;

/// Digit runs at least this long (phone, account, badge numbers) are replaced by `#`.
const MAX_KEPT_DIGITS: usize = 4;
/// Rows listed when no limit is given.
pub const DEFAULT_LIMIT: usize = 50;

/// A declined question and how often it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unanswered {
    /// The grouping key: the question's folded words.
    pub question: String,
    /// How many times.
    pub count: i64,
    /// First asked, milliseconds since the Unix epoch.
    pub first_ms: i64,
    /// Last asked, milliseconds since the Unix epoch.
    pub last_ms: i64,
}

/// The key declined questions are grouped under: `Où est la CANTINE ??` and
/// `ou est la cantine` meet on `ou est la cantine`. `None` for a message without words.
pub fn group_key(question: &str) -> Option<String> {
    let mut key = String::new();
    crate::engine::text::for_each_word(question, |w| {
        if key.chars().count() >= MAX_KEY_CHARS {
            return;
        }
        if !key.is_empty() {
            key.push(' ');
        }
        if w.chars().filter(char::is_ascii_digit).count() > MAX_KEPT_DIGITS {
            key.push('#');
        } else {
            key.push_str(w);
        }
    });
    let key: String = key.chars().take(MAX_KEY_CHARS).collect();
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_question_meet_on_one_key() {
        assert_eq!(group_key("Où est la CANTINE ??").as_deref(), Some("ou est la cantine"));
        assert_eq!(group_key("où est   la cantine").as_deref(), Some("ou est la cantine"));
        assert_eq!(group_key("?!"), None);
    }

    #[test]
    fn long_numbers_are_not_kept() {
        let key = group_key("call me on 0612345678 about badge 42").unwrap();
        assert_eq!(key, "call me on # about badge 42");
    }

    #[test]
    fn a_key_is_bounded() {
        let key = group_key(&"word ".repeat(1000)).unwrap();
        assert!(key.chars().count() <= MAX_KEY_CHARS);
    }
}
