//! `channel::{twiml, split_message, xml_escape}`: the XML reply Twilio reads back.
//!
//! Input: messages separated by the byte 0xFF (which never occurs in UTF-8), each read as
//! UTF-8 lossily, so seeds in `corpus/twiml/` are readable text.
//!
//! The reply is parsed by a real XML parser (`roxmltree`): it must be well-formed, hold a
//! `Response` with only `Message` children, and the text the parser reads back must be
//! exactly the parts `split_message` made, minus the characters XML cannot carry, with the
//! line-end normalisation every XML parser applies (`\r\n` and `\r` read as `\n`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wabot::channel::twilio::{MAX_MESSAGE_CHARS, split_message, twiml, xml_escape};

fuzz_target!(|data: &[u8]| {
    let messages: Vec<String> =
        data.split(|&b| b == 0xFF).map(|m| String::from_utf8_lossy(m).into_owned()).collect();
    for message in &messages {
        for max_chars in [0, 1, 2, 3, 7, 40, MAX_MESSAGE_CHARS] {
            check_split(message, max_chars);
        }
        check_escape(message);
    }
    check_twiml(&messages);
});

/// The contract of `split_message`: non-empty trimmed parts within the limit that are, in
/// order, the trimmed text with only whitespace between them.
fn check_split(text: &str, max_chars: usize) {
    let limit = max_chars.max(1);
    let parts = split_message(text, max_chars);
    let mut rest = text.trim();
    for part in &parts {
        assert!(!part.is_empty(), "empty part splitting {text:?} at {max_chars}: {parts:?}");
        assert_eq!(part.trim(), part, "untrimmed part splitting {text:?} at {max_chars}");
        let len = part.chars().count();
        assert!(len <= limit, "part of {len} chars over {max_chars}: {part:?} from {text:?}");
        rest = rest
            .strip_prefix(part.as_str())
            .unwrap_or_else(|| panic!("part {part:?} is not next in {rest:?} (limit {max_chars})"))
            .trim_start();
    }
    assert!(rest.is_empty(), "{rest:?} lost splitting {text:?} at {max_chars}: {parts:?}");
    // Text that fits is one part, whole.
    if text.trim().chars().count() <= limit && !text.trim().is_empty() {
        assert_eq!(parts, [text.trim()]);
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// What an XML parser reads back from `xml_escape(text)` used as element text.
fn expected_text(text: &str) -> String {
    normalise_line_ends(&text.chars().filter(|&c| is_xml_char(c)).collect::<String>())
}

/// XML 1.0 §2.11: `\r\n` and a lone `\r` are read as `\n`. Applied to what roxmltree returns
/// too, because it leaves a lone `\r` alone when an entity reference follows (`x\r&lt;`).
fn normalise_line_ends(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// `xml_escape` is safe both as element text and inside a quoted attribute value.
fn check_escape(text: &str) {
    let escaped = xml_escape(text);
    let xml = format!("<a b=\"{escaped}\" c='{escaped}'>{escaped}</a>");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e} in {xml:?}"));
    let root = doc.root_element();
    let expected = expected_text(text);
    assert_eq!(normalise_line_ends(root.text().unwrap_or("")), expected, "text of {text:?}");
    // Attribute values also turn tab and line ends into spaces (XML 1.0 §3.3.3).
    let in_attribute =
        |value: Option<&str>| normalise_line_ends(value.unwrap_or("")).replace(['\t', '\n'], " ");
    let expected_attribute = expected.replace(['\t', '\n'], " ");
    assert_eq!(in_attribute(root.attribute("b")), expected_attribute, "attribute of {text:?}");
    assert_eq!(in_attribute(root.attribute("c")), expected_attribute, "attribute of {text:?}");
    assert_eq!(root.attributes().len(), 2);
    assert_eq!(root.children().count(), usize::from(!expected.is_empty()));
}

/// A message made only of characters XML cannot carry (`"\u{1}"`) once came out as an empty
/// `<Message></Message>` (see `regressions/twiml/`); `twiml` now drops them before splitting.
const NO_EMPTY_MESSAGE: bool = true;

/// What `twiml` sends of a message: the characters XML can carry.
fn carried(message: &str) -> String {
    message.chars().filter(|&c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)).collect()
}

fn check_twiml(messages: &[String]) {
    let xml = twiml(messages);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("malformed TwiML ({e}): {xml:?}"));
    let response = doc.root_element();
    assert!(response.has_tag_name("Response"), "root {:?}", response.tag_name());
    assert_eq!(response.attributes().len(), 0);
    let mut texts = Vec::new();
    for node in response.children() {
        assert!(node.is_element() && node.has_tag_name("Message"), "stray node {node:?} in {xml:?}");
        assert_eq!(node.attributes().len(), 0);
        assert!(node.children().all(|n| n.is_text()), "markup inside a Message: {xml:?}");
        texts.push(normalise_line_ends(node.text().unwrap_or("")));
    }
    let expected: Vec<String> = messages
        .iter()
        .flat_map(|m| split_message(&carried(m), MAX_MESSAGE_CHARS))
        .map(|part| expected_text(&part))
        .collect();
    assert_eq!(texts, expected, "messages read back from {xml:?}");
    for text in &texts {
        assert!(text.chars().count() <= MAX_MESSAGE_CHARS, "over-long Message in {xml:?}");
        assert!(!(NO_EMPTY_MESSAGE && text.is_empty()), "empty Message in {xml:?}");
    }
}
