//! TwiML replies: the XML Twilio reads back from our webhook response.

/// The longest message body Twilio accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// The `Content-Type` of a TwiML reply.
pub const TWIML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A TwiML reply sending each of `messages`, split into parts of at most
/// [`MAX_MESSAGE_CHARS`]; no message (or only blank ones) gives an empty `<Response>`, which
/// Twilio reads as "no reply".
pub fn twiml(messages: &[String]) -> String {
    let mut xml = String::from(XML_DECLARATION);
    xml.push_str("<Response>");
    // Characters XML cannot carry go before splitting, so that no part is left empty or
    // untrimmed once they are dropped.
    let carried = messages.iter().map(|m| m.chars().filter(|&c| is_xml_char(c)).collect::<String>());
    for part in carried.flat_map(|message| split_message(&message, MAX_MESSAGE_CHARS)) {
        xml.push_str("<Message>");
        xml.push_str(&xml_escape(&part));
        xml.push_str("</Message>");
    }
    xml.push_str("</Response>");
    xml
}

/// `s` made safe as XML text or attribute content: `& < > " '` become entities and
/// characters XML 1.0 forbids (control characters other than tab, line feed and carriage
/// return; U+FFFE and U+FFFF) are dropped, since no escape can carry them.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// XML 1.0's `Char` production; surrogates cannot occur in a Rust `str`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` cut into parts of at most `max_chars` characters (not bytes), for a channel that
/// limits message length.
///
/// Each cut is made at the last line break within the limit, else after the last sentence end
/// (`. `, `! `, `? `, `…`), else at the last breaking whitespace, else at the last grapheme
/// boundary (so an emoji sequence or an accent is not torn apart), else at a character
/// boundary. Parts are trimmed and never empty: blank text gives no part at all. Only the
/// whitespace at the cuts is lost. A `max_chars` of 0 is taken as 1.
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    if rest.len() <= max_chars {
        // No more characters than bytes: it fits whole, without counting them.
        return if rest.is_empty() { parts } else { vec![rest.to_owned()] };
    }
    while !rest.is_empty() {
        let Some(cut) = find_cut(rest, max_chars) else {
            parts.push(rest.to_owned());
            break;
        };
        parts.push(rest[..cut.part_end].trim_end().to_owned());
        rest = rest[cut.rest_start..].trim_start();
    }
    parts
}

/// Byte positions of one cut: the part is `rest[..part_end]`, what follows `rest[rest_start..]`.
struct Cut {
    part_end: usize,
    rest_start: usize,
}

/// Where to cut `rest` (which starts with a non-space), or `None` if it fits whole.
fn find_cut(rest: &str, max_chars: usize) -> Option<Cut> {
    let mut line_break = None;
    let mut sentence_end = None;
    let mut space = None;
    let mut limit = None;
    let mut chars = rest.char_indices().enumerate().peekable();
    // A break character at index `max_chars` still counts: what precedes it fits.
    while let Some((index, (byte, c))) = chars.next() {
        if index == max_chars {
            limit = Some(byte);
        }
        if index > max_chars {
            break;
        }
        let after = byte + c.len_utf8();
        let next_is_space = chars.peek().is_some_and(|(_, (_, n))| n.is_whitespace());
        if c == '\n' {
            line_break = Some(Cut { part_end: byte, rest_start: after });
        } else if index < max_chars && (c == '…' || (matches!(c, '.' | '!' | '?') && next_is_space)) {
            sentence_end = Some(Cut { part_end: after, rest_start: after });
        } else if is_breaking_space(c) {
            space = Some(Cut { part_end: byte, rest_start: after });
        }
    }
    let limit = limit?;
    line_break.or(sentence_end).or(space).or_else(|| Some(hard_cut(rest, limit)))
}

/// Whitespace a line may break at: not the no-break spaces French puts before `?`, `!`, `:`.
fn is_breaking_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{A0}' | '\u{2007}' | '\u{202F}')
}

/// A cut at the last grapheme boundary at or before byte `limit`, or at `limit` itself when
/// a single grapheme is longer than the whole part.
fn hard_cut(rest: &str, limit: usize) -> Cut {
    use unicode_segmentation::UnicodeSegmentation as _;
    let boundary = rest
        .grapheme_indices(true)
        .map(|(start, _)| start)
        .take_while(|&start| start <= limit)
        .last()
        .filter(|&start| start > 0)
        .unwrap_or(limit);
    Cut { part_end: boundary, rest_start: boundary }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without_whitespace(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The properties every split must have, whatever the text and the limit.
    fn assert_well_split(text: &str, max_chars: usize) -> Vec<String> {
        let parts = split_message(text, max_chars);
        for part in &parts {
            assert!(!part.is_empty(), "empty part in {parts:?}");
            assert_eq!(part.trim(), part, "untrimmed part in {parts:?}");
            assert!(part.chars().count() <= max_chars.max(1), "part over {max_chars} chars: {part:?}");
        }
        assert_eq!(
            without_whitespace(&parts.concat()),
            without_whitespace(text),
            "content lost splitting at {max_chars}"
        );
        parts
    }

    const FRENCH: &str = "Bonjour Renée ! Votre fiche de paie est disponible dans l’espace \
        salarié. Pour la télécharger, ouvrez « Mes documents », puis « Paie ». \
        Si elle n’y est pas, écrivez à la DRH… Nous répondons sous 48 h.\n\
        Bonne journée 🌞 — l’équipe RH 👩‍💻🇫🇷";

    #[test]
    fn text_within_the_limit_is_one_trimmed_part() {
        assert_eq!(split_message("  Bonjour !\n", 1600), vec!["Bonjour !"]);
        assert_eq!(split_message(FRENCH, 1600), vec![FRENCH]);
        // Exactly at the limit, counted in characters: 5 chars, 10 bytes.
        assert_eq!(split_message("ééééé", 5), vec!["ééééé"]);
    }

    #[test]
    fn blank_text_gives_no_part() {
        assert!(split_message("", 10).is_empty());
        assert!(split_message(" \n\t ", 10).is_empty());
    }

    #[test]
    fn a_line_break_is_the_preferred_cut() {
        assert_eq!(
            split_message("Première ligne. Encore.\nDeuxième ligne", 30),
            vec!["Première ligne. Encore.", "Deuxième ligne"]
        );
        // A line break just past the limit still makes a clean cut.
        assert_eq!(split_message("abcde\nfgh", 5), vec!["abcde", "fgh"]);
    }

    #[test]
    fn without_a_line_break_the_cut_follows_a_sentence_end() {
        assert_eq!(
            split_message("Ça marche ? Oui, très bien merci", 20),
            vec!["Ça marche ?", "Oui, très bien merci"]
        );
        assert_eq!(
            split_message("Attendez… puis réessayez demain", 15),
            vec!["Attendez…", "puis réessayez", "demain"]
        );
        // A decimal point is not a sentence end.
        assert_eq!(split_message("Version 2.5 est sortie", 15), vec!["Version 2.5 est", "sortie"]);
    }

    #[test]
    fn without_a_sentence_end_the_cut_is_at_the_last_space() {
        assert_eq!(split_message("un deux trois quatre", 10), vec!["un deux", "trois", "quatre"]);
    }

    #[test]
    fn no_break_spaces_are_not_cut_points() {
        let parts = split_message("Quoi\u{A0}? Rien", 7);
        assert_eq!(parts, vec!["Quoi\u{A0}?", "Rien"]);
    }

    #[test]
    fn a_long_word_is_cut_on_a_character_boundary() {
        let parts = assert_well_split("àéîõüàéîõüàé", 5);
        assert_eq!(parts, vec!["àéîõü", "àéîõü", "àé"]);
    }

    #[test]
    fn a_hard_cut_does_not_tear_an_emoji_sequence() {
        // Family emoji: 7 chars joined by ZWJ; a flag: 2 regional indicators.
        let parts = assert_well_split("ab👩‍👩‍👧‍👦🇫🇷", 8);
        assert_eq!(parts, vec!["ab", "👩‍👩‍👧‍👦", "🇫🇷"]);
        let parts = assert_well_split("🇫🇷🇫🇷🇫🇷", 3);
        assert_eq!(parts, vec!["🇫🇷", "🇫🇷", "🇫🇷"]);
        // A grapheme longer than the limit has to be torn.
        let parts = assert_well_split("👩‍👩‍👧‍👦", 3);
        assert_eq!(parts.concat(), "👩‍👩‍👧‍👦");
    }

    #[test]
    fn any_split_keeps_all_content_within_the_limit() {
        let mut long = String::new();
        for _ in 0..40 {
            long.push_str(FRENCH);
            long.push_str("\n\n");
        }
        for max in [0, 1, 2, 3, 7, 10, 16, 33, 80, 160, 1600] {
            assert_well_split(FRENCH, max);
            assert_well_split(&long, max);
        }
        let parts = assert_well_split(&long, MAX_MESSAGE_CHARS);
        assert!(parts.len() > 1);
    }

    #[test]
    fn random_text_splits_well_at_any_limit() {
        const PIECES: &[&str] =
            &["mot", "é", "à", "😀", "👩‍💻", "🇫🇷", " ", " ", "\n", "\r\n", ". ", "? ", "…", "\u{A0}", "\t"];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let len = next() % 60;
            let text: String = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            let max = (next() % 12) as usize;
            assert_well_split(&text, max);
        }
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(
            xml_escape(r#"a & b < c > d "e" 'f'"#),
            "a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;"
        );
        assert_eq!(xml_escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn characters_xml_forbids_are_dropped_and_others_kept() {
        assert_eq!(xml_escape("a\0b\u{1}c\u{8}d\u{B}e\u{C}f\u{1F}g\u{FFFE}h\u{FFFF}i"), "abcdefghi");
        assert_eq!(xml_escape("t\tn\nr\r"), "t\tn\nr\r");
        assert_eq!(xml_escape("é€\u{FFFD}\u{10000}🇫🇷"), "é€\u{FFFD}\u{10000}🇫🇷");
    }

    #[test]
    fn no_messages_is_an_empty_response() {
        assert_eq!(twiml(&[]), r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#);
        assert_eq!(
            twiml(&["  ".to_owned()]),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
        );
    }

    #[test]
    fn each_message_becomes_a_message_element() {
        assert_eq!(
            twiml(&["Bonjour !".to_owned(), "Ça va ?".to_owned()]),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Bonjour !</Message><Message>Ça va ?</Message></Response>"#
        );
    }

    #[test]
    fn a_long_message_is_split_into_several_elements() {
        let long = "Une phrase assez longue. ".repeat(100);
        let xml = twiml(&[long]);
        let bodies = message_texts(&xml);
        assert_eq!(bodies.len(), 2);
        assert!(bodies.iter().all(|b| b.chars().count() <= MAX_MESSAGE_CHARS));
    }

    /// The text of each `<Message>`, checked to be well-formed XML character data:
    /// no raw `<` or `>`, and every `&` opening one of the five predefined entities.
    fn message_texts(xml: &str) -> Vec<&str> {
        let body = xml
            .strip_prefix(XML_DECLARATION)
            .and_then(|x| x.strip_prefix("<Response>"))
            .and_then(|x| x.strip_suffix("</Response>"))
            .expect("declaration and Response element");
        let mut texts = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let inner = rest.strip_prefix("<Message>").expect("a Message element");
            let end = inner.find("</Message>").expect("a closed Message");
            let text = &inner[..end];
            assert!(!text.contains(['<', '>']), "raw markup in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| entity.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            assert!(text.chars().all(is_xml_char));
            texts.push(text);
            rest = &inner[end + "</Message>".len()..];
        }
        texts
    }

    #[test]
    fn hostile_text_stays_well_formed_inside_twiml() {
        let hostile = [
            "]]><script>&amp;</script>".to_owned(),
            "</Message><Redirect>https://evil.example</Redirect><Message>".to_owned(),
            "&#x26; &lt &unknown; \"quoted\" 'single' \u{0}\u{1B}[31m".to_owned(),
        ];
        let xml = twiml(&hostile);
        let texts = message_texts(&xml);
        assert_eq!(texts.len(), 3);
        assert_eq!(texts[0], "]]&gt;&lt;script&gt;&amp;amp;&lt;/script&gt;");
        assert!(!xml.contains("<Redirect>"));
    }

    #[test]
    fn a_message_of_forbidden_characters_sends_nothing() {
        // Found by fuzzing: a lone control character made an empty <Message>.
        assert_eq!(twiml(&["\u{1}".to_owned()]), format!("{XML_DECLARATION}<Response></Response>"));
        assert_eq!(
            twiml(&["a \u{1}".to_owned()]),
            format!("{XML_DECLARATION}<Response><Message>a</Message></Response>")
        );
    }
}
