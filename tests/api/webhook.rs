//! POST /bot and GET /healthz.

use crate::helpers::*;
use wabot::channel::twilio::compute_signature;
use wabot::engine::Lang;
use wabot::knowledge::corpus::KnowledgeBase;

#[tokio::test]
async fn a_signed_english_question_gets_the_english_answer_as_twiml() {
    let app = spawn_app().await;
    let answer = app.post_signed(&whatsapp_form("How can I reset my password?")).await;
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/xml"), "{}", answer.content_type);
    assert!(answer.text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>"));
    let messages = twiml_messages(&answer.text);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("it.example.com/password"), "{}", messages[0]);
}

#[tokio::test]
async fn a_signed_french_question_gets_the_french_answer() {
    let app = spawn_app().await;
    let messages = app.ask("J'ai oublié mon mot de passe, comment le réinitialiser ?").await;
    let kb = KnowledgeBase::embedded().unwrap();
    let fr = kb.entries().iter().find(|e| e.id == "password-reset-fr").unwrap();
    assert_eq!(fr.lang, Lang::Fr);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0], fr.answer);
}

#[tokio::test]
async fn greetings_and_the_menu_answer_in_the_users_language() {
    let app = spawn_app().await;
    let hello = app.ask("Bonjour").await;
    assert!(hello[0].starts_with("Bonjour Élodie !"), "{hello:?}");
    let menu = app.ask("menu").await;
    assert!(menu[0].contains("Congés"), "the menu follows the conversation's language: {menu:?}");
}

#[tokio::test]
async fn an_unrelated_question_is_declined_honestly() {
    let app = spawn_app().await;
    let messages = app.ask("Who will win the football world cup?").await;
    assert!(messages[0].starts_with("Sorry, I didn't understand"), "{messages:?}");
    assert!(messages[0].contains("menu"));
}

#[tokio::test]
async fn a_missing_signature_is_refused_and_nothing_is_processed() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let answer = app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", None).await;
    assert_eq!(answer.status, 403);
    assert!(!answer.text.contains("<Response>"));
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let forged = compute_signature(b"not-the-token", &format!("{PUBLIC_URL}/bot"), form.params());
    let answer =
        app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&forged)).await;
    assert_eq!(answer.status, 403);
    let garbage =
        app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some("%%%")).await;
    assert_eq!(garbage.status, 403);
}

#[tokio::test]
async fn a_replayed_signature_with_a_changed_field_is_refused() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let sig = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
    let changed = whatsapp_form("what is my salary?");
    let answer =
        app.post_raw(changed.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&sig)).await;
    assert_eq!(answer.status, 403);
}

#[tokio::test]
async fn a_signature_over_the_url_with_its_default_port_is_accepted() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let sig = compute_signature(TOKEN.as_bytes(), "https://wabot.example.com:443/bot", form.params());
    let answer =
        app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&sig)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let wrong_port = compute_signature(TOKEN.as_bytes(), "https://wabot.example.com:8443/bot", form.params());
    let answer = app
        .post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&wrong_port))
        .await;
    assert_eq!(answer.status, 403);
}

#[tokio::test]
async fn unknown_and_repeated_fields_are_covered_by_the_signature() {
    let app = spawn_app().await;
    let mut pairs = whatsapp_form("hi").params().to_vec();
    pairs.push(("ButtonPayload".into(), "x".into()));
    pairs.push(("ButtonPayload".into(), "y".into()));
    let form = wabot::channel::twilio::WebhookForm::from_pairs(pairs);
    assert_eq!(app.post_signed(&form).await.status, 200);
}

#[tokio::test]
async fn a_malformed_form_is_a_bad_request() {
    let app = spawn_app().await;
    let invalid_utf8 = b"From=whatsapp%3A%2B33600000000&Body=%FF%FE".to_vec();
    let answer = app.post_raw(invalid_utf8, "application/x-www-form-urlencoded", Some("x")).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let bad_escape = b"From=whatsapp%3A%2B33600000000&Body=100%zz".to_vec();
    let answer = app.post_raw(bad_escape, "application/x-www-form-urlencoded", Some("x")).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
}

#[tokio::test]
async fn a_signed_form_without_a_sender_is_a_bad_request() {
    let app = spawn_app().await;
    let pairs: Vec<(String, String)> =
        whatsapp_form("hi").params().iter().filter(|(k, _)| k != "From").cloned().collect();
    let answer = app.post_signed(&wabot::channel::twilio::WebhookForm::from_pairs(pairs)).await;
    assert_eq!(answer.status, 400);
    assert!(answer.text.contains("From"), "{}", answer.text);
}

#[tokio::test]
async fn a_wrong_content_type_is_refused() {
    let app = spawn_app().await;
    let answer = app.post_raw(b"{\"Body\": \"hi\"}".to_vec(), "application/json", None).await;
    assert_eq!(answer.status, 415);
    let body: serde_json::Value = serde_json::from_str(&answer.text).expect("the one JSON error shape");
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("x-www-form-urlencoded"), "{body}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_with(Options { max_body_bytes: 4096, ..Options::default() }).await;
    let body = format!("From=whatsapp%3A%2B1&Body={}", "a".repeat(10_000));
    let answer = app.post_raw(body.into_bytes(), "application/x-www-form-urlencoded", Some("x")).await;
    assert_eq!(answer.status, 413);
}

#[tokio::test]
async fn hostile_text_still_yields_well_formed_twiml() {
    let app = spawn_app().await;
    for text in [
        "<Response><Message>pwned</Message></Response>",
        "]]> &amp; &#0; <![CDATA[ x ]]> \" ' <script>",
        "hi & bye < > \u{0007}\u{001b}",
        "menu ]]>",
    ] {
        let messages = app.ask(text).await;
        assert!(!messages.is_empty(), "{text}");
    }
    // The profile name is echoed in the greeting: it must be escaped too.
    let mut pairs = whatsapp_form("hello").params().to_vec();
    for (k, v) in &mut pairs {
        if k == "ProfileName" {
            *v = "</Message><Redirect>http://evil</Redirect>&".into();
        }
    }
    let answer = app.post_signed(&wabot::channel::twilio::WebhookForm::from_pairs(pairs)).await;
    let messages = twiml_messages(&answer.text);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("</Message><Redirect>http://evil</Redirect>&"), "{messages:?}");
}

#[tokio::test]
async fn a_long_answer_is_split_into_several_messages() {
    let long: String = (0..100).map(|i| format!("Step {i}: fill in the form and send it to HR. ")).collect();
    assert!(long.chars().count() > 2 * 1600);
    let line = serde_json::json!({"id": "long-en", "lang": "en", "questions": ["How do I file the long form?"], "answer": long});
    let kb = KnowledgeBase::from_files("test", &[("faq.jsonl".into(), line.to_string())]).unwrap();
    let app = spawn_with(Options { kb: Some(kb), ..Options::default() }).await;
    let messages = app.ask("How do I file the long form?").await;
    assert!(messages.len() >= 3, "{}", messages.len());
    for m in &messages {
        assert!(m.chars().count() <= 1600);
        assert!(m.ends_with("HR."), "split at a sentence end: {m:?}");
    }
    let rejoined: String = messages.join(" ");
    assert_eq!(rejoined.split_whitespace().collect::<Vec<_>>(), long.split_whitespace().collect::<Vec<_>>());
}

#[tokio::test]
async fn without_a_token_unsigned_requests_are_served_on_loopback() {
    let app = spawn_with(Options { token: None, ..Options::default() }).await;
    let form = whatsapp_form("hi");
    let answer = app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", None).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn without_a_token_a_public_address_is_refused() {
    let settings = wabot::config::Settings {
        listen: "0.0.0.0:0".parse().unwrap(),
        twilio_auth_token: None,
        ..Default::default()
    };
    let faq = wabot::knowledge::faq::Faq::open(wabot::knowledge::faq::FaqOptions::default()).unwrap();
    let err = wabot::server::Server::bind(&settings, std::sync::Arc::new(faq)).await.unwrap_err();
    assert!(err.to_string().contains("TWILIO_AUTH_TOKEN"), "{err}");
}

#[tokio::test]
async fn a_meta_only_deployment_listens_publicly_without_twilios_webhook() {
    let graph = crate::meta::FakeGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = wabot::config::Settings {
        listen: "0.0.0.0:0".parse().unwrap(),
        twilio_auth_token: None,
        meta: graph.settings(),
        db: dir.path().join("wabot.db"),
        ..Default::default()
    };
    let faq = wabot::knowledge::faq::Faq::open(wabot::knowledge::faq::FaqOptions::default()).unwrap();
    let server = wabot::server::Server::bind(&settings, std::sync::Arc::new(faq)).await.unwrap();
    let port = server.local_addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let form = whatsapp_form("hi");
    let bot = client
        .post(format!("{base}/bot"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_body())
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), 404, "no unauthenticated Twilio webhook on a public address");
    let verify = client
        .get(format!(
            "{base}/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=42",
            crate::meta::VERIFY_TOKEN
        ))
        .send()
        .await
        .unwrap();
    assert_eq!((verify.status().as_u16(), verify.text().await.unwrap()), (200, "42".to_owned()));
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn healthz_reports_ok() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["entries"].as_u64().unwrap() >= 60);
}

const SHARED_KEY: &str = "webhook-shared-key-secret-0123456789";
const SETTINGS_SHA256: &str = "key=webhooks_sharedkey_0123456789abcdef,algorithm=HMAC_SHA256";

/// The `X-Twilio-Signature` Twilio's own Python library (`twilio` on PyPI,
/// `RequestValidator` with the algorithm `get_signature_algorithm` reads from the settings
/// header) computes for `form` posted to the public webhook URL.
fn signed_by_twilios_library(
    key: &str,
    algorithm: &str,
    form: &wabot::channel::twilio::WebhookForm,
) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = crate::python::python();
    let path = crate::python::package_path(&python, "twilio==9.13.0", "twilio.request_validator", true);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/twilio_sign.py");
    let mut command = Command::new(&python);
    if let Some(path) = path {
        command.env("PYTHONPATH", path);
    }
    let mut child = command
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let request = serde_json::json!({
        "key": key,
        "algorithm": algorithm,
        "url": format!("{PUBLIC_URL}/bot"),
        "params": form.params(),
    });
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "twilio_sign.py: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn post_with_settings(
    app: &TestApp,
    form: &wabot::channel::twilio::WebhookForm,
    signature: &str,
    settings: &str,
) -> Answer {
    let headers = [("x-twilio-signature", signature), ("x-twilio-webhooks-signature-settings", settings)];
    app.post_with_headers(form.to_body().into_bytes(), "application/x-www-form-urlencoded", &headers).await
}

#[tokio::test]
async fn a_request_signed_by_twilios_python_library_with_a_sha256_shared_key_is_answered_and_a_wrong_key_is_refused()
 {
    let app = spawn_with(Options { shared_key: Some(SHARED_KEY), ..Options::default() }).await;
    let form = whatsapp_form("How can I reset my password?");
    let signature = signed_by_twilios_library(SHARED_KEY, "HMAC_SHA256", &form);
    let answer = post_with_settings(&app, &form, &signature, SETTINGS_SHA256).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(twiml_messages(&answer.text)[0].contains("it.example.com/password"));

    let form = whatsapp_form("How can I reset my password?");
    let wrong = signed_by_twilios_library("another-shared-key-secret", "HMAC_SHA256", &form);
    let answer = post_with_settings(&app, &form, &wrong, SETTINGS_SHA256).await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    assert!(!answer.text.contains("<Response>"));

    // The header says which secret signed: the auth token's signature does not pass for the
    // SharedKey's, nor the SharedKey's for the auth token's.
    let form = whatsapp_form("hi");
    let token_signed = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
    assert_eq!(post_with_settings(&app, &form, &token_signed, SETTINGS_SHA256).await.status, 403);
    let key_signed = signed_by_twilios_library(SHARED_KEY, "HMAC_SHA256", &form);
    assert_eq!(
        app.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&key_signed))
            .await
            .status,
        403
    );
    // And without the header, the auth token's signatures still work.
    assert_eq!(app.post_signed(&form).await.status, 200);
}

#[tokio::test]
async fn a_shared_key_may_sign_with_sha1_too_and_an_unknown_algorithm_is_refused() {
    let app = spawn_with(Options { shared_key: Some(SHARED_KEY), ..Options::default() }).await;
    let form = whatsapp_form("hi");
    let sha1 = signed_by_twilios_library(SHARED_KEY, "HMAC_SHA1", &form);
    assert_eq!(post_with_settings(&app, &form, &sha1, "key=k,algorithm=HMAC_SHA1").await.status, 200);
    let form = whatsapp_form("hi");
    let signature = signed_by_twilios_library(SHARED_KEY, "HMAC_SHA256", &form);
    for settings in ["key=k,algorithm=HMAC_SHA512", "key=k,algorithm=ED25519"] {
        let answer = post_with_settings(&app, &form, &signature, settings).await;
        assert_eq!(answer.status, 403, "{settings}");
    }
}

#[tokio::test]
async fn a_shared_key_signature_is_refused_when_no_shared_key_is_configured() {
    let app = spawn_app().await;
    let form = whatsapp_form("hi");
    let signature = signed_by_twilios_library(SHARED_KEY, "HMAC_SHA256", &form);
    let answer = post_with_settings(&app, &form, &signature, SETTINGS_SHA256).await;
    assert_eq!(answer.status, 403);
    assert!(answer.text.contains("TWILIO_WEBHOOK_SHARED_KEY"), "{}", answer.text);
}
