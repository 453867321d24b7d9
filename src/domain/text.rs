//! User text made safe before it is kept: every user-provided field of a request passes
//! through [`clean_line`] or [`clean_text`], so no control character (CR/LF above all) ever
//! reaches an e-mail header.

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
}
