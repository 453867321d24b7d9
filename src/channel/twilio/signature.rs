//! `X-Twilio-Signature`: how Twilio proves a webhook came from it.
//!
//! The signature is `base64(HMAC(key, url ++ name₁ ++ value₁ ++ …))` with the parameters
//! sorted by name. Repeated names follow Twilio's Python SDK: each distinct name in sorted
//! order, then each of its distinct values in sorted order. Sorting is by code point (Rust's
//! `str` order), which is what the SDKs' string sorts give.
//!
//! By default the key is the account's auth token and the hash SHA-1. A webhook that a
//! Twilio *Webhook Setting* signs with a SharedKey carries
//! `X-Twilio-Webhooks-Signature-Settings: key=<key id>,algorithm=HMAC_SHA256`: the same
//! string is then signed with the SharedKey's secret and the named hash (`HMAC_SHA1` or
//! `HMAC_SHA256`), as Twilio's SDKs validate it (`twilio` for Python ≥ 9.13:
//! `RequestValidator.validate(…, algorithm=get_signature_algorithm(header))`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// The header naming the key and the algorithm of a SharedKey signature.
pub const SIGNATURE_SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// The HMAC a webhook is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// `HMAC_SHA1`: the auth token's signature, and a SharedKey's when so configured.
    HmacSha1,
    /// `HMAC_SHA256`: a SharedKey's.
    HmacSha256,
}

impl SignatureAlgorithm {
    /// The algorithm an `X-Twilio-Webhooks-Signature-Settings` value names, read as Twilio's
    /// SDKs read it: comma-separated `name=value` parts; no `algorithm=` part means
    /// `HMAC_SHA1`; the name is compared without regard to case. `None` for an algorithm
    /// this version does not know — such a request is refused, never guessed at.
    pub fn from_settings(header: &str) -> Option<SignatureAlgorithm> {
        let named = header.split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            (name.trim() == "algorithm" && !value.trim().is_empty()).then(|| value.trim())
        });
        match named {
            None => Some(SignatureAlgorithm::HmacSha1),
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA1") => Some(SignatureAlgorithm::HmacSha1),
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA256") => Some(SignatureAlgorithm::HmacSha256),
            Some(_) => None,
        }
    }
}

/// The signature Twilio would send for a request to `url` carrying `params`, signed with
/// the auth token (HMAC-SHA1).
pub fn compute_signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    compute_signature_with(SignatureAlgorithm::HmacSha1, auth_token, url, params)
}

/// The signature of a request to `url` carrying `params` with `key` and `algorithm`.
pub fn compute_signature_with(
    algorithm: SignatureAlgorithm,
    key: &[u8],
    url: &str,
    params: &[(String, String)],
) -> String {
    match algorithm {
        SignatureAlgorithm::HmacSha1 => sign::<HmacSha1>(key, url, params),
        SignatureAlgorithm::HmacSha256 => sign::<HmacSha256>(key, url, params),
    }
}

fn sign<M: Mac + hmac::digest::KeyInit>(key: &[u8], url: &str, params: &[(String, String)]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (name, value) in signing_order(params) {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's signature of this request with the auth token.
///
/// Like Twilio's SDKs, accepts the URL as given, with the scheme's default port added and with
/// it removed: a proxy may add or strip `:443` between what Twilio signed and what we see.
/// The comparison is constant-time; an empty or malformed signature is simply invalid.
pub fn validate_signature(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    validate_signature_with(SignatureAlgorithm::HmacSha1, auth_token, url, params, signature)
}

/// [`validate_signature`] with `key` and `algorithm` (a SharedKey's).
pub fn validate_signature_with(
    algorithm: SignatureAlgorithm,
    key: &[u8],
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    if signature.is_empty() {
        return false;
    }
    let (with_port, without_port) = url_port_variants(url);
    let mut candidates = vec![url, with_port.as_str(), without_port.as_str()];
    candidates.sort_unstable();
    candidates.dedup();
    // Comparing the encoded strings accepts only the canonical encoding Twilio sends.
    candidates.into_iter().any(|candidate| {
        let expected = compute_signature_with(algorithm, key, candidate, params);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
    })
}

/// `url` with its scheme's default port made explicit, and with it left out:
/// `https://host/p` → (`https://host:443/p`, `https://host/p`).
///
/// Only `http` (80) and `https` (443) have defaults. A URL with another port, another scheme,
/// or an authority this function cannot read comes back unchanged in both places, so that
/// validation never widens beyond the URL as given.
pub fn url_port_variants(url: &str) -> (String, String) {
    match split_port(url) {
        Some(parts) => (
            format!("{}:{}{}", &url[..parts.host_end], parts.default_port, &url[parts.authority_end..]),
            format!("{}{}", &url[..parts.host_end], &url[parts.authority_end..]),
        ),
        None => (url.to_owned(), url.to_owned()),
    }
}

/// Where the host ends and the authority ends in a URL whose port is absent or the default.
struct PortSplit {
    /// Byte index just past the host (before `:port`, if any).
    host_end: usize,
    /// Byte index just past the authority (where path, query or fragment start).
    authority_end: usize,
    default_port: u16,
}

fn split_port(url: &str) -> Option<PortSplit> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return None;
    };
    let authority_start = scheme_end + 3;
    let authority_end =
        url[authority_start..].find(['/', '?', '#']).map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // Userinfo may itself hold `:`; the host starts after the last `@`.
    let host_start = authority_start + authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &url[host_start..authority_end];
    let host_len = if host_port.starts_with('[') {
        // IPv6 literal: its colons are not a port separator.
        host_port.find(']')? + 1
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    if host_len == 0 {
        return None;
    }
    let host_end = host_start + host_len;
    match &url[host_end..authority_end] {
        // `host:` with an empty port means the default, as in `urlparse`.
        "" | ":" => {}
        port => {
            let digits = port.strip_prefix(':')?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.parse() != Ok(default_port) {
                return None;
            }
        }
    }
    Some(PortSplit { host_end, authority_end, default_port })
}

/// The parameters in signing order: by name, then by value, each distinct pair once.
fn signing_order(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> =
        params.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    fn twilio_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn twilios_published_vector_is_reproduced() {
        assert_eq!(compute_signature(TOKEN, URL, &twilio_params()), EXPECTED);
        assert!(validate_signature(TOKEN, URL, &twilio_params(), EXPECTED));
    }

    #[test]
    fn the_settings_header_names_the_algorithm_as_twilios_sdks_read_it() {
        use SignatureAlgorithm::*;
        for (header, expected) in [
            ("key=webhooks_sharedkey_123,algorithm=HMAC_SHA256", Some(HmacSha256)),
            (" algorithm = hmac_sha256 , key=k", Some(HmacSha256)),
            ("key=k,algorithm=HMAC_SHA1", Some(HmacSha1)),
            ("key=k", Some(HmacSha1)),
            ("", Some(HmacSha1)),
            ("key=k,algorithm=", Some(HmacSha1)),
            ("key=k,algorithm=HMAC_SHA512", None),
            ("algorithm=MD5", None),
        ] {
            assert_eq!(SignatureAlgorithm::from_settings(header), expected, "{header:?}");
        }
    }

    #[test]
    fn a_sha256_signature_is_the_same_string_signed_with_sha256() {
        let url = "https://bot.example.org/bot";
        let params = pairs(&[("b", "2"), ("a", "1")]);
        let mut mac = HmacSha256::new_from_slice(b"shared").unwrap();
        mac.update(format!("{url}a1b2").as_bytes());
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        let computed = compute_signature_with(SignatureAlgorithm::HmacSha256, b"shared", url, &params);
        assert_eq!(computed, expected);
        assert!(validate_signature_with(SignatureAlgorithm::HmacSha256, b"shared", url, &params, &expected));
        assert!(!validate_signature_with(SignatureAlgorithm::HmacSha256, b"other", url, &params, &expected));
        assert!(!validate_signature_with(SignatureAlgorithm::HmacSha1, b"shared", url, &params, &expected));
    }

    #[test]
    fn the_order_parameters_arrive_in_does_not_matter() {
        let mut reversed = twilio_params();
        reversed.reverse();
        assert_eq!(compute_signature(TOKEN, URL, &reversed), EXPECTED);
    }

    #[test]
    fn the_url_with_its_default_port_still_validates() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(validate_signature(TOKEN, with_port, &twilio_params(), EXPECTED));
    }

    #[test]
    fn a_signature_made_over_the_url_with_its_port_validates_without_it() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signature = compute_signature(TOKEN, with_port, &twilio_params());
        assert_ne!(signature, EXPECTED);
        assert!(validate_signature(TOKEN, URL, &twilio_params(), &signature));
    }

    #[test]
    fn a_changed_parameter_fails_validation() {
        let mut params = twilio_params();
        params[2].1 = "9999".into();
        assert!(!validate_signature(TOKEN, URL, &params, EXPECTED));
    }

    #[test]
    fn an_added_parameter_fails_validation() {
        let mut params = twilio_params();
        params.push(("Body".into(), "hi".into()));
        assert!(!validate_signature(TOKEN, URL, &params, EXPECTED));
    }

    #[test]
    fn a_changed_url_fails_validation() {
        for url in [
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            "https://evil.example/myapp.php?foo=1&bar=2",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
        ] {
            assert!(!validate_signature(TOKEN, url, &twilio_params(), EXPECTED), "{url}");
        }
    }

    #[test]
    fn a_wrong_token_fails_validation() {
        assert!(!validate_signature(b"54321", URL, &twilio_params(), EXPECTED));
        assert!(!validate_signature(b"", URL, &twilio_params(), EXPECTED));
    }

    #[test]
    fn an_empty_or_garbage_signature_fails_without_panicking() {
        for signature in [
            "",
            "not-a-signature",
            "====",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8==",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8= ",
            "rsoydt4t1cutdk1pdd93/vvr8b8=",
            "é",
        ] {
            assert!(!validate_signature(TOKEN, URL, &twilio_params(), signature), "{signature:?}");
        }
    }

    #[test]
    fn repeated_names_sign_each_distinct_value_once_in_sorted_order() {
        let url = "https://bot.example.org/bot";
        let signed = |list: &[(&str, &str)]| compute_signature(TOKEN, url, &pairs(list));
        let canonical = signed(&[("a", "1"), ("a", "2"), ("b", "2")]);
        assert_eq!(signed(&[("b", "2"), ("a", "2"), ("a", "1"), ("a", "1")]), canonical);
        assert_ne!(signed(&[("a", "2"), ("b", "2")]), canonical);
        // The same as signing the concatenation by hand.
        let mut mac = HmacSha1::new_from_slice(TOKEN).unwrap();
        mac.update(format!("{url}a1a2b2").as_bytes());
        assert_eq!(STANDARD.encode(mac.finalize().into_bytes()), canonical);
    }

    #[test]
    fn non_ascii_parameters_are_signed_as_utf8() {
        let url = "https://bot.example.org/bot";
        let params = pairs(&[("Body", "Où est ma fiche ? 👍")]);
        let mut mac = HmacSha1::new_from_slice(b"tok").unwrap();
        mac.update("https://bot.example.org/botBodyOù est ma fiche ? 👍".as_bytes());
        assert_eq!(compute_signature(b"tok", url, &params), STANDARD.encode(mac.finalize().into_bytes()));
    }

    fn variants(url: &str) -> (String, String) {
        url_port_variants(url)
    }

    fn both(with: &str, without: &str) -> (String, String) {
        (with.to_owned(), without.to_owned())
    }

    #[test]
    fn the_default_port_is_added_and_removed() {
        let expected = both(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
        );
        assert_eq!(variants("https://mycompany.com/myapp.php?foo=1&bar=2"), expected);
        assert_eq!(variants("https://mycompany.com:443/myapp.php?foo=1&bar=2"), expected);
        assert_eq!(
            variants("http://example.org/bot"),
            both("http://example.org:80/bot", "http://example.org/bot")
        );
        assert_eq!(
            variants("HTTPS://Example.org/bot"),
            both("HTTPS://Example.org:443/bot", "HTTPS://Example.org/bot")
        );
    }

    #[test]
    fn a_url_without_a_path_gets_the_port_before_its_query_or_at_the_end() {
        assert_eq!(variants("https://example.org"), both("https://example.org:443", "https://example.org"));
        assert_eq!(
            variants("https://example.org?a=b:c@d/e"),
            both("https://example.org:443?a=b:c@d/e", "https://example.org?a=b:c@d/e")
        );
        assert_eq!(
            variants("https://example.org:443#frag"),
            both("https://example.org:443#frag", "https://example.org#frag")
        );
    }

    #[test]
    fn userinfo_is_kept_and_its_colon_is_not_a_port() {
        assert_eq!(
            variants("https://user:pa:ss@example.org/bot"),
            both("https://user:pa:ss@example.org:443/bot", "https://user:pa:ss@example.org/bot")
        );
        assert_eq!(
            variants("https://user:pass@example.org:443/bot"),
            both("https://user:pass@example.org:443/bot", "https://user:pass@example.org/bot")
        );
    }

    #[test]
    fn an_ipv6_host_keeps_its_colons() {
        assert_eq!(variants("http://[::1]/bot"), both("http://[::1]:80/bot", "http://[::1]/bot"));
        assert_eq!(
            variants("https://[2001:db8::1]:443/bot"),
            both("https://[2001:db8::1]:443/bot", "https://[2001:db8::1]/bot")
        );
    }

    #[test]
    fn an_empty_port_counts_as_the_default() {
        assert_eq!(
            variants("https://example.org:/bot"),
            both("https://example.org:443/bot", "https://example.org/bot")
        );
    }

    #[test]
    fn other_ports_schemes_and_unreadable_urls_are_left_alone() {
        for url in [
            "https://example.org:8443/bot",
            "http://example.org:443/bot",
            "https://example.org:44a/bot",
            "https://example.org:99999/bot",
            "ftp://example.org/bot",
            "example.org/bot",
            "https:///bot",
            "https://[::1/bot",
            "https://[::1]x/bot",
            "",
        ] {
            assert_eq!(variants(url), both(url, url), "{url}");
        }
    }
}
