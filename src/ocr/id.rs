//! Finding the employee ID among the lines read on a badge.
//!
//! Text is NFKC-normalised first (the recogniser sometimes emits full-width forms such as
//! `：`), then searched with the organisation's own patterns, if any, then for a value after
//! a common label — `Employee ID`, `ID`, `Staff No`, `Badge n°`, `Matricule`, `N° employé`… —
//! with any spacing (`ID:712056`, `Matricule :21957-B`, `21957 - B`). A label at the end of a
//! line may have its value on the next line. A value must hold a digit.

use regex::Regex;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

use super::TextLine;

/// Labels, case-insensitive, then an optional `.`, `:` or `#`, then the value.
const LABELLED: &str = r"(?x)
    (?i:
        \b(?:employee|employé|staff|badge|emp)\.?\s*(?:id|no|n°|number|num(?:éro|ero)?|\#)
      | \bmatricule
      | \bn°\s*(?:d['’]\s*)?employ[ée]e?\b
      | \bnum(?:éro|ero)\s*(?:d['’]\s*)?employ[ée]e?\b
      | \bid\b
    )
    \s*\.?\s*[:\#]?\s*
    (?P<id>[A-Za-z0-9](?:[A-Za-z0-9]|\s?-\s?[A-Za-z0-9])*)
";

/// The fewest and most characters (letters and digits) an ID may have.
const ID_LEN: std::ops::RangeInclusive<usize> = 3..=20;

/// A bad organisation-specific pattern.
#[derive(Debug, Error)]
#[error("employee ID pattern {pattern:?} is not a valid regular expression: {message}")]
pub struct PatternError {
    /// The pattern as configured.
    pub pattern: String,
    /// What the regex engine says.
    pub message: String,
}

/// Finds employee ID candidates in OCR text.
#[derive(Debug, Clone)]
pub struct IdExtractor {
    custom: Vec<Regex>,
    labelled: Regex,
}

impl Default for IdExtractor {
    fn default() -> Self {
        IdExtractor { custom: Vec::new(), labelled: labelled_regex() }
    }
}

fn labelled_regex() -> Regex {
    // A constant pattern, covered by the tests below.
    Regex::new(LABELLED).unwrap_or_else(|e| panic!("the built-in ID pattern is valid: {e}"))
}

impl IdExtractor {
    /// The default labels plus `patterns` (tried first): regular expressions whose first
    /// capture group, or else whole match, is the ID — e.g. `EMP-\d{6}` or `Ref\s*(\d+)`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<IdExtractor, PatternError> {
        let custom = patterns
            .iter()
            .map(|p| {
                Regex::new(p.as_ref())
                    .map_err(|e| PatternError { pattern: p.as_ref().to_owned(), message: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        Ok(IdExtractor { custom, labelled: labelled_regex() })
    }

    /// The ID candidates in `lines`, most likely first, without repeats.
    pub fn candidates(&self, lines: &[TextLine]) -> Vec<String> {
        let texts: Vec<String> = lines.iter().map(|l| l.text.nfkc().collect()).collect();
        // Each line alone, then each line with the next (a label whose value is below it).
        let windows: Vec<String> =
            texts.iter().cloned().chain(texts.windows(2).map(|w| format!("{} {}", w[0], w[1]))).collect();
        let mut found = Vec::new();
        for re in &self.custom {
            for text in &windows {
                for caps in re.captures_iter(text) {
                    if let Some(m) = caps.get(1).or_else(|| caps.get(0)) {
                        push_id(&mut found, m.as_str());
                    }
                }
            }
        }
        for text in &windows {
            for caps in self.labelled.captures_iter(text) {
                if let Some(m) = caps.name("id") {
                    push_id(&mut found, m.as_str());
                }
            }
        }
        found
    }
}

/// Adds `raw` (spaces removed, upper-cased) if it looks like an ID and is new.
fn push_id(found: &mut Vec<String>, raw: &str) {
    let id: String = raw.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect();
    let significant = id.chars().filter(|c| c.is_alphanumeric()).count();
    if ID_LEN.contains(&significant) && id.chars().any(|c| c.is_ascii_digit()) && !found.contains(&id) {
        found.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<TextLine> {
        texts.iter().map(|t| TextLine { text: (*t).to_owned(), confidence: 0.9 }).collect()
    }

    fn first(texts: &[&str]) -> Option<String> {
        IdExtractor::default().candidates(&lines(texts)).into_iter().next()
    }

    #[test]
    fn ids_are_found_after_every_common_label() {
        let cases = [
            ("Employee ID: 712056", "712056"),
            ("ID:712056", "712056"),
            ("Matricule :21957-B", "21957-B"),
            ("Matricule 21957 - B", "21957-B"),
            ("Staff No. Z48213", "Z48213"),
            ("Badge n° 583920", "583920"),
            ("N° employé : EMP-00417", "EMP-00417"),
            ("Numéro d'employé 40Z7731", "40Z7731"),
            ("Staff ID: A90314", "A90314"),
            ("Badge No:ZK-5521", "ZK-5521"),
            ("Employee No. 375014", "375014"),
        ];
        for (text, id) in cases {
            assert_eq!(first(&[text]).as_deref(), Some(id), "{text}");
        }
    }

    #[test]
    fn full_width_forms_are_normalised_first() {
        assert_eq!(first(&["ID：７１２０５６"]).as_deref(), Some("712056"));
    }

    #[test]
    fn a_value_on_the_next_line_is_found() {
        assert_eq!(
            first(&["ACME", "Employee ID", "662108", "Valid until 12/2027"]).as_deref(),
            Some("662108")
        );
    }

    #[test]
    fn words_and_dates_are_not_ids() {
        assert_eq!(first(&["Valid until 12/2027", "Finance", "ID: Finance"]), None);
        assert_eq!(first(&["ACME Corporation"]), None);
    }

    #[test]
    fn organisation_patterns_come_first_and_bad_ones_are_refused() {
        let ids = IdExtractor::new(&[r"REF\s*(\d{4})"]).unwrap();
        assert_eq!(ids.candidates(&lines(&["ID: 712056", "REF 1234"])), vec!["1234", "712056"]);
        let err = IdExtractor::new(&["(unclosed"]).unwrap_err().to_string();
        assert!(err.contains("\"(unclosed\""), "{err}");
    }
}
