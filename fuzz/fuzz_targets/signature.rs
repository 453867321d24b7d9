//! `channel::{compute_signature, validate_signature, url_port_variants}`.
//!
//! Input, read as UTF-8 (lossily) and split on `\n`, so seeds in `corpus/signature/` are
//! readable:
//!
//! ```text
//! auth token
//! URL
//! a signature to try (usually garbage)
//! name=value        (any number of parameter lines; no `=` means an empty value)
//! ```
//!
//! Signatures are checked against a model written from Twilio's description rather than from
//! wabot's code: base64(HMAC-SHA1(token, url ++ name ++ value ++ …)) over the distinct pairs in
//! sorted order. Two signatures match exactly when the signed bytes match (an HMAC-SHA1
//! collision aside), so validation can be predicted exactly, even in the odd cases where the
//! concatenation without separators makes two different parameter lists sign alike.
#![no_main]

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha1::Sha1;
use wabot::channel::twilio::{compute_signature, url_port_variants, validate_signature};

type Params = Vec<(String, String)>;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let token = lines.next().unwrap_or_default().as_bytes().to_vec();
    let url = lines.next().unwrap_or_default();
    let garbage = lines.next().unwrap_or_default();
    let params: Params = lines
        .map(|line| match line.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect();
    let pick = data.len();

    check_variants(url);
    let signature = check_signature(&token, url, &params);
    check_tolerated_urls(&token, url, &params);
    check_garbage(&token, url, &params, garbage);
    check_other_token(&token, url, &params, &signature);
    check_changed_request(&token, url, &params, &signature, pick);
});

/// The bytes Twilio signs: the URL, then each distinct `(name, value)` in sorted order.
fn signed_bytes(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let distinct: BTreeSet<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut bytes = url.as_bytes().to_vec();
    for (name, value) in distinct {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(value.as_bytes());
    }
    bytes
}

fn model_signature(token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(token).expect("HMAC takes any key");
    mac.update(&signed_bytes(url, params));
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The URLs validation accepts a signature for: as given, with and without the default port.
fn candidates(url: &str) -> Vec<String> {
    let (with_port, without_port) = url_port_variants(url);
    vec![url.to_owned(), with_port, without_port]
}

fn check_variants(url: &str) {
    let (with_port, without_port) = url_port_variants(url);
    if with_port == without_port {
        // Unreadable, other scheme or other port: left alone.
        assert_eq!(with_port, url);
        return;
    }
    // `with_port` is `without_port` with `:443` or `:80` inserted at one place.
    let port = if url.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("https")) { ":443" } else { ":80" };
    assert_eq!(with_port.len(), without_port.len() + port.len(), "{url:?}");
    let at =
        with_port.bytes().zip(without_port.bytes()).position(|(a, b)| a != b).unwrap_or(without_port.len());
    assert_eq!(&with_port[at..at + port.len()], port, "{url:?} → {with_port:?}");
    assert_eq!(format!("{}{}", &with_port[..at], &with_port[at + port.len()..]), without_port);
    // Stable: each variant has the same pair of variants.
    assert_eq!(url_port_variants(&with_port), (with_port.clone(), without_port.clone()));
    assert_eq!(url_port_variants(&without_port), (with_port.clone(), without_port.clone()));
}

fn check_signature(token: &[u8], url: &str, params: &Params) -> String {
    let signature = compute_signature(token, url, params);
    assert_eq!(signature, model_signature(token, url, params), "{url:?} {params:?}");
    assert_eq!(signature.len(), 28, "base64 of a 20-byte HMAC-SHA1");
    assert!(validate_signature(token, url, params, &signature), "own signature rejected");

    // Arrival order and exact repeats do not matter.
    let mut reordered = params.clone();
    reordered.reverse();
    if let Some(first) = params.first() {
        reordered.push(first.clone());
    }
    assert_eq!(compute_signature(token, url, &reordered), signature);
    signature
}

/// A proxy may add or strip the default port: a signature over either form validates.
fn check_tolerated_urls(token: &[u8], url: &str, params: &Params) {
    for candidate in candidates(url) {
        let signature = compute_signature(token, &candidate, params);
        assert!(validate_signature(token, url, params, &signature), "{candidate:?} for {url:?}");
    }
}

/// Any string validates exactly when it is the signature over one of the tolerated URLs.
fn check_garbage(token: &[u8], url: &str, params: &Params, garbage: &str) {
    let expected =
        !garbage.is_empty() && candidates(url).iter().any(|c| compute_signature(token, c, params) == garbage);
    assert_eq!(validate_signature(token, url, params, garbage), expected, "{garbage:?}");
    // Near misses of the real signature: any change of case, padding or length fails.
    let real = compute_signature(token, url, params);
    for near in
        [real.to_lowercase(), real.trim_end_matches('=').to_owned(), format!("{real} "), format!("{real}=")]
    {
        if near != real {
            assert!(!validate_signature(token, url, params, &near), "{near:?} accepted");
        }
    }
}

/// A token of the same length that differs in one bit: distinct HMAC keys, so no signature
/// made with one validates with the other. (HMAC pads short keys with zeros, so `t` and
/// `t\0` *are* the same key: that is HMAC's doing, hence the same-length change here.)
fn check_other_token(token: &[u8], url: &str, params: &Params, signature: &str) {
    let mut other = token.to_vec();
    match other.first_mut() {
        Some(byte) => *byte ^= 1,
        None => other.push(1),
    }
    assert!(!validate_signature(&other, url, params, signature), "other token accepted");
}

/// Changing a value, adding a parameter or changing the URL fails validation unless the
/// signed bytes stay the same (a repeat of a pair already there, or the separator-free
/// concatenation happening to line up), which the model predicts exactly.
fn check_changed_request(token: &[u8], url: &str, params: &Params, signature: &str, pick: usize) {
    let original = signed_bytes(url, params);
    let still_valid =
        |url: &str, params: &Params| candidates(url).iter().any(|c| signed_bytes(c, params) == original);

    if !params.is_empty() {
        let mut changed = params.clone();
        changed[pick % params.len()].1.push('x');
        assert_eq!(
            validate_signature(token, url, &changed, signature),
            still_valid(url, &changed),
            "changed value {changed:?}"
        );
    }
    let mut added = params.clone();
    added.push(("Body".to_owned(), "injected".to_owned()));
    assert_eq!(validate_signature(token, url, &added, signature), still_valid(url, &added));

    let moved = format!("{url}x");
    assert_eq!(validate_signature(token, &moved, params, signature), still_valid(&moved, params));
}
