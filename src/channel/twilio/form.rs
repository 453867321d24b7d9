//! The webhook's `application/x-www-form-urlencoded` body, decoded strictly.
//!
//! Strict because the parameters feed the signature: a lossy decoder (replacement characters,
//! stray `%` kept as-is) would make us sign something other than what Twilio signed, and hide
//! garbage from the dialog.

use super::ChannelError;

/// Twilio attaches at most this many media items to one message.
pub const MAX_MEDIA: usize = 10;

/// The POST parameters of one webhook request: all of them, in order, repeated and unknown
/// ones included, since the signature covers every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookForm {
    params: Vec<(String, String)>,
}

/// One media item attached to an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Where Twilio serves the file (`MediaUrlN`).
    pub url: String,
    /// Its MIME type (`MediaContentTypeN`), if Twilio gave one.
    pub content_type: Option<String>,
}

impl WebhookForm {
    /// Parses a form body: pairs split on `&`, `+` read as a space, percent-escapes decoded to
    /// bytes, then each name and value checked as UTF-8.
    ///
    /// Empty pairs (`a=1&&b=2`) are skipped; a pair without `=` is a name with an empty value.
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8, are errors.
    pub fn parse(body: &[u8]) -> Result<Self, ChannelError> {
        let mut params = Vec::new();
        let mut pair_start = 0;
        for pair in body.split(|&b| b == b'&') {
            let offset = pair_start;
            pair_start += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (raw_name, raw_value, value_offset) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..], offset + eq + 1),
                None => (pair, &[][..], offset + pair.len()),
            };
            let name = decode_component(raw_name, offset)?;
            let name = String::from_utf8(name)
                .map_err(|e| invalid_utf8(String::from_utf8_lossy(e.as_bytes()).into_owned()))?;
            let value = decode_component(raw_value, value_offset)?;
            let value = String::from_utf8(value).map_err(|_| invalid_utf8(name.clone()))?;
            params.push((name, value));
        }
        Ok(Self { params })
    }

    /// A form holding exactly these parameters, in this order.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { params: pairs }
    }

    /// Encodes the form as a request body; [`WebhookForm::parse`] gives back the same form.
    pub fn to_body(&self) -> String {
        let mut body = String::new();
        for (i, (name, value)) in self.params.iter().enumerate() {
            if i > 0 {
                body.push('&');
            }
            encode_component(name, &mut body);
            // Always written, so that a pair with an empty name still round-trips.
            body.push('=');
            encode_component(value, &mut body);
        }
        body
    }

    /// Every parameter, in the order received.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Refuses a form in which a parameter that carries the message — who sent it, to
    /// whom, its text, its id, its media — is given twice: Twilio never does, and taking the
    /// first (or the last) would be a guess. Other parameters may repeat; the signature
    /// covers them all.
    pub fn check_single_values(&self) -> Result<(), ChannelError> {
        const SINGLE: &[&str] = &[
            "From",
            "To",
            "Body",
            "MessageSid",
            "SmsMessageSid",
            "AccountSid",
            "NumMedia",
            "ProfileName",
            "WaId",
        ];
        let carries = |name: &str| {
            SINGLE.contains(&name)
                || ["MediaUrl", "MediaContentType"].iter().any(|p| {
                    name.strip_prefix(p)
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
        };
        for (i, (name, _)) in self.params.iter().enumerate() {
            if carries(name) && self.params[..i].iter().any(|(n, _)| n == name) {
                return Err(ChannelError::RepeatedField(name.clone()));
            }
        }
        Ok(())
    }

    /// The first value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, unless absent or empty: Twilio sends empty strings for
    /// things it does not know, and those carry nothing.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The sender (`From`, e.g. `whatsapp:+33612345678`); every message has one.
    pub fn from(&self) -> Result<&str, ChannelError> {
        self.non_empty("From").ok_or(ChannelError::MissingField("From"))
    }

    /// The organisation's number the message was sent to (`To`).
    pub fn to(&self) -> Option<&str> {
        self.non_empty("To")
    }

    /// The message text (`Body`); empty for a media-only message.
    pub fn body(&self) -> &str {
        self.get("Body").unwrap_or("")
    }

    /// The sender's WhatsApp id (`WaId`): the phone number without `+`.
    pub fn wa_id(&self) -> Option<&str> {
        self.non_empty("WaId")
    }

    /// The sender's WhatsApp display name (`ProfileName`).
    pub fn profile_name(&self) -> Option<&str> {
        self.non_empty("ProfileName")
    }

    /// Twilio's id of this message (`MessageSid`).
    pub fn message_sid(&self) -> Option<&str> {
        self.non_empty("MessageSid")
    }

    /// The Twilio account the message belongs to (`AccountSid`).
    pub fn account_sid(&self) -> Option<&str> {
        self.non_empty("AccountSid")
    }

    /// How many media items are attached (`NumMedia`); 0 when absent.
    pub fn num_media(&self) -> Result<usize, ChannelError> {
        let Some(raw) = self.get("NumMedia") else {
            return Ok(0);
        };
        // Only plain digits: `usize::from_str` would also accept `+3`.
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid_num_media(format!("{raw:?} is not a number")));
        }
        raw.parse().map_err(|_| invalid_num_media(format!("{raw} is out of range")))
    }

    /// The attached media, from `MediaUrl0`/`MediaContentType0` up to `NumMedia - 1`.
    pub fn media(&self) -> Result<Vec<Media>, ChannelError> {
        let num_media = self.num_media()?;
        if num_media > MAX_MEDIA {
            return Err(invalid_num_media(format!("{num_media} exceeds Twilio's maximum of {MAX_MEDIA}")));
        }
        (0..num_media)
            .map(|index| {
                let url = self
                    .non_empty(&format!("MediaUrl{index}"))
                    .ok_or(ChannelError::MissingMedia { index, num_media })?;
                let content_type = self.non_empty(&format!("MediaContentType{index}")).map(str::to_owned);
                Ok(Media { url: url.to_owned(), content_type })
            })
            .collect()
    }
}

fn invalid_utf8(field: String) -> ChannelError {
    ChannelError::InvalidUtf8 { field }
}

fn invalid_num_media(reason: String) -> ChannelError {
    ChannelError::InvalidField { field: "NumMedia", reason }
}

/// Decodes one name or value to bytes; `offset` is where `raw` starts in the body, for errors.
fn decode_component(raw: &[u8], offset: usize) -> Result<Vec<u8>, ChannelError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_digit);
                let lo = raw.get(i + 2).copied().and_then(hex_digit);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ChannelError::InvalidEncoding {
                        offset: offset + i,
                        reason: "`%` must be followed by two hexadecimal digits",
                    });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` form-encoded: unreserved bytes as-is, space as `+`, everything else `%XX`.
fn encode_component(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_typical_whatsapp_webhook_is_parsed_in_order() {
        let body = b"SmsMessageSid=SM1&NumMedia=0&ProfileName=Ren%C3%A9e&WaId=33612345678\
            &Body=O%C3%B9+est+ma+fiche+de+paie+%3F&To=whatsapp%3A%2B14155238886\
            &From=whatsapp%3A%2B33612345678&MessageSid=SM1&AccountSid=AC1";
        let form = WebhookForm::parse(body).unwrap();
        assert_eq!(form.params().len(), 9);
        assert_eq!(form.params()[0], ("SmsMessageSid".into(), "SM1".into()));
        assert_eq!(form.from().unwrap(), "whatsapp:+33612345678");
        assert_eq!(form.to(), Some("whatsapp:+14155238886"));
        assert_eq!(form.body(), "Où est ma fiche de paie ?");
        assert_eq!(form.profile_name(), Some("Renée"));
        assert_eq!(form.wa_id(), Some("33612345678"));
        assert_eq!(form.message_sid(), Some("SM1"));
        assert_eq!(form.account_sid(), Some("AC1"));
        assert_eq!(form.num_media().unwrap(), 0);
        assert!(form.media().unwrap().is_empty());
    }

    #[test]
    fn a_plus_is_a_space_and_an_encoded_plus_is_a_plus() {
        let form = WebhookForm::parse(b"a=1+2&b=%2B33&c+d=+").unwrap();
        assert_eq!(form.params(), pairs(&[("a", "1 2"), ("b", "+33"), ("c d", " ")]));
    }

    #[test]
    fn empty_pairs_are_skipped_and_a_bare_name_has_an_empty_value() {
        let form = WebhookForm::parse(b"&a=1&&b&=&c=&").unwrap();
        assert_eq!(form.params(), pairs(&[("a", "1"), ("b", ""), ("", ""), ("c", "")]));
        assert!(WebhookForm::parse(b"").unwrap().params().is_empty());
    }

    #[test]
    fn only_the_first_equals_sign_separates_name_and_value() {
        let form = WebhookForm::parse(b"a=b=c").unwrap();
        assert_eq!(form.get("a"), Some("b=c"));
    }

    #[test]
    fn a_repeated_parameter_that_carries_the_message_is_refused_and_others_are_not() {
        let form = |pairs: &[(&str, &str)]| {
            WebhookForm::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
        };
        let ok = form(&[("From", "whatsapp:+1"), ("Body", "hi"), ("ButtonText", "a"), ("ButtonText", "b")]);
        assert!(ok.check_single_values().is_ok());
        for field in ["From", "Body", "MessageSid", "MediaUrl0", "MediaContentType12"] {
            let twice = form(&[("From", "whatsapp:+1"), (field, "a"), ("Body", "hi"), (field, "b")]);
            let err = twice.check_single_values().unwrap_err();
            assert!(matches!(&err, ChannelError::RepeatedField(f) if f == field), "{field}: {err}");
        }
        let look_alike = form(&[("MediaUrlX", "a"), ("MediaUrlX", "b")]);
        assert!(look_alike.check_single_values().is_ok());
    }

    #[test]
    fn repeated_and_unknown_parameters_are_all_kept() {
        let form = WebhookForm::parse(b"x=2&Custom=1&x=1&x=1").unwrap();
        assert_eq!(form.params(), pairs(&[("x", "2"), ("Custom", "1"), ("x", "1"), ("x", "1")]));
        assert_eq!(form.get("x"), Some("2"));
        assert_eq!(form.get("y"), None);
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement_character() {
        assert_eq!(
            WebhookForm::parse(b"Body=%FF").unwrap_err(),
            ChannelError::InvalidUtf8 { field: "Body".into() }
        );
        // A truncated multi-byte sequence, as a sloppy client might cut it.
        assert!(matches!(WebhookForm::parse(b"Body=caf%C3"), Err(ChannelError::InvalidUtf8 { .. })));
        assert!(matches!(WebhookForm::parse(b"%FF=1"), Err(ChannelError::InvalidUtf8 { .. })));
        assert!(matches!(WebhookForm::parse(b"Body=\xFF"), Err(ChannelError::InvalidUtf8 { .. })));
    }

    #[test]
    fn a_percent_without_two_hex_digits_is_an_error() {
        for (body, offset) in
            [(&b"Body=%G1"[..], 5), (b"Body=%4", 5), (b"Body=%", 5), (b"a=1&B%ody=2", 5), (b"Body=ok%2", 7)]
        {
            assert_eq!(
                WebhookForm::parse(body).unwrap_err(),
                ChannelError::InvalidEncoding {
                    offset,
                    reason: "`%` must be followed by two hexadecimal digits"
                },
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn lowercase_hex_escapes_are_accepted() {
        let form = WebhookForm::parse(b"Body=%c3%a9").unwrap();
        assert_eq!(form.body(), "é");
    }

    #[test]
    fn hostile_text_round_trips_through_to_body_and_parse() {
        let form = WebhookForm::from_pairs(pairs(&[
            ("Body", "]]><script>&amp;\"'</script> % + = & ; #"),
            ("Body", "Ça coûte 5 € ? Œuvre naïve… 👩‍💻🇫🇷"),
            ("", ""),
            ("Empty", ""),
            ("name with spaces", "line\r\nbreak\ttab\0nul"),
        ]));
        let body = form.to_body();
        assert!(body.is_ascii());
        assert_eq!(WebhookForm::parse(body.as_bytes()).unwrap(), form);
    }

    /// A small deterministic generator, enough to shake out encoding corner cases.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[(self.next() % items.len() as u64) as usize]
        }
    }

    #[test]
    fn random_forms_round_trip_exactly() {
        const PIECES: &[&str] =
            &["a", "Z", "0", " ", "+", "%", "%2B", "&", "=", "&&", "é", "€", "👩‍💻", "\n", "\0", "<", "]]>"];
        let text = |rng: &mut XorShift| -> String {
            let len = rng.next() % 6;
            (0..len).map(|_| *rng.pick(PIECES)).collect()
        };
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..500 {
            let count = rng.next() % 5;
            let form =
                WebhookForm::from_pairs((0..count).map(|_| (text(&mut rng), text(&mut rng))).collect());
            assert_eq!(WebhookForm::parse(form.to_body().as_bytes()).unwrap(), form);
        }
    }

    #[test]
    fn random_bytes_are_parsed_or_rejected_without_panicking() {
        const BYTES: &[u8] = b"a=&+%%0fFgG\xC3\xA9\xFF\x80";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let len = rng.next() % 12;
            let body: Vec<u8> = (0..len).map(|_| *rng.pick(BYTES)).collect();
            if let Ok(form) = WebhookForm::parse(&body) {
                assert_eq!(WebhookForm::parse(form.to_body().as_bytes()).unwrap(), form);
            }
        }
    }

    #[test]
    fn from_is_required_and_must_not_be_empty() {
        let missing = WebhookForm::parse(b"Body=hi").unwrap();
        assert_eq!(missing.from(), Err(ChannelError::MissingField("From")));
        let empty = WebhookForm::parse(b"From=&Body=hi").unwrap();
        assert_eq!(empty.from(), Err(ChannelError::MissingField("From")));
    }

    #[test]
    fn absent_optional_fields_are_none_and_an_absent_body_is_empty() {
        let form = WebhookForm::parse(b"From=whatsapp%3A%2B1&ProfileName=").unwrap();
        assert_eq!(form.body(), "");
        assert_eq!(form.to(), None);
        assert_eq!(form.profile_name(), None);
        assert_eq!(form.wa_id(), None);
        assert_eq!(form.message_sid(), None);
        assert_eq!(form.account_sid(), None);
    }

    #[test]
    fn media_are_read_in_order_with_their_content_types() {
        let form = WebhookForm::parse(
            b"NumMedia=2&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm1\
              &MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm0&MediaContentType0=image%2Fjpeg",
        )
        .unwrap();
        assert_eq!(form.num_media().unwrap(), 2);
        assert_eq!(
            form.media().unwrap(),
            vec![
                Media { url: "https://api.twilio.com/m0".into(), content_type: Some("image/jpeg".into()) },
                Media { url: "https://api.twilio.com/m1".into(), content_type: None },
            ]
        );
    }

    #[test]
    fn a_num_media_that_is_not_a_number_is_an_invalid_field() {
        for raw in ["two", "", "+1", "-1", "1.0", "99999999999999999999999"] {
            let form = WebhookForm::from_pairs(pairs(&[("NumMedia", raw)]));
            assert!(
                matches!(form.num_media(), Err(ChannelError::InvalidField { field: "NumMedia", .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn more_than_ten_media_is_an_invalid_field() {
        let form = WebhookForm::parse(b"NumMedia=11").unwrap();
        assert_eq!(form.num_media().unwrap(), 11);
        assert!(matches!(form.media(), Err(ChannelError::InvalidField { field: "NumMedia", .. })));
    }

    #[test]
    fn a_missing_media_url_is_reported_with_its_index() {
        let form = WebhookForm::parse(b"NumMedia=2&MediaUrl0=https%3A%2F%2Fx").unwrap();
        assert_eq!(form.media(), Err(ChannelError::MissingMedia { index: 1, num_media: 2 }));
    }
}
