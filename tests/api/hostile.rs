//! Hostile input: every refused request gets the right 4xx and leaves no trace in the store.

use wabot::channel::twilio::{WebhookForm, compute_signature};

use crate::helpers::*;

const FORM: &str = "application/x-www-form-urlencoded";

fn sign(form: &WebhookForm) -> String {
    compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params())
}

/// `form` with `field` set to `value` (every occurrence).
fn with(form: &WebhookForm, field: &str, value: &str) -> WebhookForm {
    let pairs = form
        .params()
        .iter()
        .map(|(k, v)| (k.clone(), if k == field { value.to_owned() } else { v.clone() }))
        .collect();
    WebhookForm::from_pairs(pairs)
}

fn assert_untouched(app: &TestApp) {
    for table in ["messages", "sessions", "requests", "outbox", "unanswered"] {
        assert_eq!(app.rows(table), 0, "a refused request left a row in {table}");
    }
}

#[tokio::test]
async fn malformed_forms_are_400_and_leave_no_trace() {
    let app = spawn_app().await;
    let valid = whatsapp_form("hi");
    let sig = sign(&valid);
    for body in [
        &b"From=whatsapp%3A%2B33600000000&Body=100%zz"[..],
        b"From=whatsapp%3A%2B33600000000&Body=%",
        b"From=whatsapp%3A%2B33600000000&Body=%FF%FE",
        b"From=whatsapp%3A%2B33600000000&B%C3%28dy=hi",
        b"From=whatsapp%3A%2B33600000000&Body=\xff\xfe",
    ] {
        let answer = app.post_raw(body.to_vec(), FORM, Some(&sig)).await;
        assert_eq!(answer.status, 400, "{:?}: {}", String::from_utf8_lossy(body), answer.text);
        assert!(!answer.text.contains("<Response>"));
    }
    assert_untouched(&app);
}

#[tokio::test]
async fn wrong_content_types_are_415_and_leave_no_trace() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let sig = sign(&form);
    for content_type in ["application/json", "text/plain", "multipart/form-data; boundary=x", "text/xml", ""]
    {
        let answer = app.post_raw(form.to_body().into_bytes(), content_type, Some(&sig)).await;
        assert_eq!(answer.status, 415, "{content_type:?}");
    }
    let get = app.client.get(app.url("/bot")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_untouched(&app);
}

#[tokio::test]
async fn a_huge_field_is_413_and_leaves_no_trace() {
    let app = spawn_app().await;
    let form = whatsapp_form(&"é".repeat(200_000));
    let answer = app.post_raw(form.to_body().into_bytes(), FORM, Some(&sign(&form))).await;
    assert_eq!(answer.status, 413);
    let huge_name = whatsapp_form("hi");
    let huge_name = with(&huge_name, "ProfileName", &"x".repeat(100_000));
    let answer = app.post_raw(huge_name.to_body().into_bytes(), FORM, Some(&sign(&huge_name))).await;
    assert_eq!(answer.status, 413);
    assert_untouched(&app);
}

#[tokio::test]
async fn a_replayed_signature_with_any_field_changed_is_403_and_leaves_no_trace() {
    let app = spawn_app().await;
    let original = whatsapp_form("How can I reset my password?");
    let sig = sign(&original);
    for (field, value) in [
        ("Body", "I want a work certificate"),
        ("From", "whatsapp:+33699999999"),
        ("MessageSid", "SM00000000000000000000000000000000"),
        ("ProfileName", "Mallory"),
        ("NumMedia", "1"),
    ] {
        let changed = with(&original, field, value);
        let answer = app.post_raw(changed.to_body().into_bytes(), FORM, Some(&sig)).await;
        assert_eq!(answer.status, 403, "changed {field}");
    }
    // A parameter added twice, or appended, changes what was signed too.
    let mut pairs = original.params().to_vec();
    pairs.push(("Body".into(), "second body".into()));
    let repeated = WebhookForm::from_pairs(pairs);
    let answer = app.post_raw(repeated.to_body().into_bytes(), FORM, Some(&sig)).await;
    assert_eq!(answer.status, 403, "repeated Body");
    // Signed for another URL.
    let elsewhere = compute_signature(TOKEN.as_bytes(), "https://evil.example.com/bot", original.params());
    let answer = app.post_raw(original.to_body().into_bytes(), FORM, Some(&elsewhere)).await;
    assert_eq!(answer.status, 403, "another URL");
    assert_untouched(&app);

    // The untouched original still goes through: the refusals consumed nothing.
    let answer = app.post_raw(original.to_body().into_bytes(), FORM, Some(&sig)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.rows("messages"), 1);
}

#[tokio::test]
async fn a_signed_form_repeating_who_sent_it_or_what_it_says_is_400_and_leaves_no_trace() {
    let app = spawn_app().await;
    for (field, second) in [("Body", "I want a work certificate"), ("From", "whatsapp:+33699999999")] {
        let mut pairs = whatsapp_form("How can I reset my password?").params().to_vec();
        pairs.push((field.into(), second.into()));
        let twice = WebhookForm::from_pairs(pairs);
        // Correctly signed, as a leaked token would let anyone sign it.
        let answer = app.post_raw(twice.to_body().into_bytes(), FORM, Some(&sign(&twice))).await;
        assert_eq!(answer.status, 400, "{field} twice: {}", answer.text);
        assert!(answer.text.contains(field), "{}", answer.text);
    }
    assert_untouched(&app);
}

#[tokio::test]
async fn xml_significant_text_cannot_inject_twiml_elements() {
    let app = spawn_app().await;
    let text = "<?xml?><Response><Redirect>http://evil</Redirect></Response> & ]]>";
    let answer = app.post_signed(&whatsapp_form(text)).await;
    assert_eq!(answer.status, 200);
    let messages = twiml_messages(&answer.text);
    assert_eq!(messages.len(), 1, "one message, no injected element: {}", answer.text);
    assert!(!answer.text.contains("<Redirect>"));
}
