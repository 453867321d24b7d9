//! `channel::WebhookForm`: the strict `application/x-www-form-urlencoded` decoder and encoder.
//!
//! Each input is used twice:
//! - as a request body for [`WebhookForm::parse`]; what it accepts must match the `url`
//!   crate's decoder (`form_urlencoded`) exactly, survive `to_body` → `parse` unchanged, and
//!   every rejection must point at a real fault;
//! - through `arbitrary` as a list of `(name, value)` pairs for [`WebhookForm::from_pairs`];
//!   its body must be byte-for-byte what `form_urlencoded`'s serializer writes, and parse back
//!   to exactly those pairs.
//!
//! Seeds in `corpus/form/` are plain request bodies.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wabot::channel::twilio::{ChannelError, MAX_MEDIA, WebhookForm};

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    if let Ok(pairs) = Unstructured::new(data).arbitrary::<Vec<(String, String)>>() {
        check_pairs(pairs);
    }
});

fn check_parse(body: &[u8]) {
    match WebhookForm::parse(body) {
        Ok(form) => {
            // On every body the strict decoder accepts, the lenient reference agrees with it
            // (same pair splitting, same `+`, same escapes, nothing replaced).
            let reference: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect();
            assert_eq!(form.params(), reference.as_slice(), "differs from form_urlencoded");

            let encoded = form.to_body();
            assert!(encoded.is_ascii(), "non-ASCII body {encoded:?}");
            let again = WebhookForm::parse(encoded.as_bytes())
                .unwrap_or_else(|e| panic!("to_body output {encoded:?} does not parse: {e}"));
            assert_eq!(again, form, "to_body → parse changed the form (body {encoded:?})");
            // The encoding is canonical: encoding again gives the same bytes.
            assert_eq!(again.to_body(), encoded);

            check_accessors(&form);
        }
        Err(ChannelError::InvalidEncoding { offset, .. }) => {
            // The offset points at a `%` that is really not followed by two hex digits.
            let hex = |i: usize| body.get(i).is_some_and(u8::is_ascii_hexdigit);
            assert_eq!(body.get(offset), Some(&b'%'), "InvalidEncoding at {offset} is not a `%`");
            assert!(!(hex(offset + 1) && hex(offset + 2)), "`%` at {offset} is a valid escape");
        }
        Err(ChannelError::InvalidUtf8 { field }) => {
            // Some pair really decodes to bytes that are not UTF-8, and the error names it.
            let justified = raw_pairs(body).any(|(name, value)| match String::from_utf8(name) {
                Err(e) => String::from_utf8_lossy(e.as_bytes()) == field,
                Ok(name) => name == field && String::from_utf8(value).is_err(),
            });
            assert!(justified, "InvalidUtf8 {{ field: {field:?} }} but no such pair is invalid");
        }
        Err(other) => panic!("parse returned an error it never should: {other:?}"),
    }
}

/// The pairs of `body` decoded to bytes without any checks: split on `&` (skipping empty
/// pieces), name and value on the first `=`, `+` as space, then `%XX`.
fn raw_pairs(body: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    let decode = |raw: &[u8]| -> Vec<u8> {
        let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_encoding::percent_decode(&spaced).collect()
    };
    body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()).map(move |pair| {
        let mut halves = pair.splitn(2, |&b| b == b'=');
        let name = halves.next().unwrap_or_default();
        let value = halves.next().unwrap_or_default();
        (decode(name), decode(value))
    })
}

/// The typed accessors never panic and agree with the raw parameters.
fn check_accessors(form: &WebhookForm) {
    let first = |name: &str| form.params().iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let non_empty = |name: &str| first(name).filter(|v| !v.is_empty());
    assert_eq!(form.get("Body"), first("Body"));
    assert_eq!(form.body(), first("Body").unwrap_or(""));
    assert_eq!(form.from().ok(), non_empty("From"));
    assert_eq!(form.to(), non_empty("To"));
    assert_eq!(form.wa_id(), non_empty("WaId"));
    assert_eq!(form.profile_name(), non_empty("ProfileName"));
    assert_eq!(form.message_sid(), non_empty("MessageSid"));
    assert_eq!(form.account_sid(), non_empty("AccountSid"));
    let num_media = form.num_media();
    match (first("NumMedia"), &num_media) {
        (None, Ok(0)) => {}
        (Some(raw), Ok(n)) => {
            assert!(raw.bytes().all(|b| b.is_ascii_digit()), "NumMedia {raw:?} accepted");
            assert_eq!(raw.parse::<usize>().ok(), Some(*n));
        }
        (Some(_), Err(ChannelError::InvalidField { field: "NumMedia", .. })) => {}
        (raw, result) => panic!("NumMedia {raw:?} gave {result:?}"),
    }
    if let Ok(media) = form.media() {
        assert_eq!(Ok(media.len()), num_media);
        assert!(media.len() <= MAX_MEDIA);
        for (index, item) in media.iter().enumerate() {
            assert_eq!(Some(item.url.as_str()), non_empty(&format!("MediaUrl{index}")));
            assert_eq!(item.content_type.as_deref(), non_empty(&format!("MediaContentType{index}")));
        }
    }
}

fn check_pairs(pairs: Vec<(String, String)>) {
    let form = WebhookForm::from_pairs(pairs.clone());
    assert_eq!(form.params(), pairs.as_slice());
    let body = form.to_body();
    // Byte-for-byte the `url` crate's encoding: same unreserved set, `+` for space, `%XX`
    // uppercase, `=` always written.
    let reference = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    assert_eq!(body, reference, "to_body differs from form_urlencoded for {pairs:?}");
    // Exact round-trip: `to_body` always writes `name=`, so no pair comes out empty and none
    // is skipped by `parse` (which skips only empty pieces between `&`s).
    let parsed = WebhookForm::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("body {body:?} of {pairs:?} does not parse: {e}"));
    assert_eq!(parsed.params(), pairs.as_slice(), "round-trip through {body:?}");
}
