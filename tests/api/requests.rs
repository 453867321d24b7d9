//! Administrative requests end to end: the webhook, the SQLite store, and e-mail spoken over
//! SMTP to a real server process (`tests/support/smtp_sink.py`).

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wabot::channel::twilio::compute_signature;
use wabot::config::MailSettings;
use wabot::domain::{Employee, MailState, Session};
use wabot::store::Store;
use wabot::store::sqlite::SqliteStore;

use crate::helpers::*;
use crate::smtp::{SmtpSink, free_port};

const WAIT: Duration = Duration::from_secs(15);

pub fn mail_to(url: String) -> MailSettings {
    MailSettings {
        smtp_url: Some(SecretString::from(url)),
        from: "Helpdesk bot <wabot@example.org>".into(),
        reply_to: Some("HR helpdesk <helpdesk@example.org>".into()),
        retry_initial_ms: 100,
        retry_max_ms: 400,
        timeout_secs: 5,
        ..MailSettings::default()
    }
}

async fn app_mailing(url: String) -> TestApp {
    spawn_with(Options { mail: mail_to(url), ..Options::default() }).await
}

fn ledger(app: &TestApp) -> Arc<dyn Store> {
    Arc::clone(&app.store)
}

/// The ticket in a confirmation.
fn ticket_in(message: &str) -> String {
    let start = message.find("REQ-").unwrap_or_else(|| panic!("no ticket in {message:?}"));
    message[start..start + 15].to_owned()
}

/// Answers each step with `answers`; the last reply's first message.
async fn say(app: &TestApp, answers: &[&str]) -> String {
    let mut last = Vec::new();
    for a in answers {
        last = app.ask(a).await;
    }
    last.into_iter().next().expect("a reply")
}

#[tokio::test]
async fn a_request_is_emailed_with_recipient_subject_ticket_and_the_utf8_name() {
    let sink = SmtpSink::start();
    let app = app_mailing(sink.url()).await;
    let first = say(&app, &["request"]).await;
    assert!(first.contains("1. Work certificate (hr@example.com)"), "{first}");
    let summary = say(&app, &["1", "Élodie", "Garçon", "Deux exemplaires, en français"]).await;
    assert!(summary.contains("Élodie Garçon"), "{summary}");
    let confirmation = say(&app, &["yes"]).await;
    let ticket = ticket_in(&confirmation);
    assert!(ticket.starts_with("REQ-20") && ticket.ends_with("-000001"), "{ticket}");

    let got = sink.wait_for(1, WAIT).await;
    let m = &got[0];
    assert_eq!(m.rcpt_tos, ["hr@example.com"]);
    assert_eq!(m.mail_from, "wabot@example.org");
    assert_eq!(m.header("To"), "hr@example.com");
    assert_eq!(m.header("From"), "Helpdesk bot <wabot@example.org>");
    assert_eq!(m.header("Reply-To"), "HR helpdesk <helpdesk@example.org>");
    assert_eq!(
        m.header("Subject"),
        format!("[{ticket}] Work certificate / Attestation de travail — Élodie Garçon")
    );
    let id = m.header("Message-ID");
    assert!(
        id.starts_with(&format!("<{}.", ticket.to_ascii_lowercase())) && id.ends_with("@example.org>"),
        "{id}"
    );
    assert!(m.body.contains(&format!("Ticket: {ticket}")), "{}", m.body);
    assert!(m.body.contains("Employee / Salarié: Élodie Garçon"), "{}", m.body);
    assert!(m.body.contains("WhatsApp: +33612345678"), "{}", m.body);
    assert!(m.body.contains("Deux exemplaires, en français"), "{}", m.body);

    let rec = wait_until_sent(&app, &ticket).await;
    assert_eq!(rec.attempts, 1);
    assert_eq!(sink.messages().len(), 1);
}

async fn wait_until_sent(app: &TestApp, ticket: &str) -> wabot::domain::RequestRecord {
    let store = ledger(app);
    let start = std::time::Instant::now();
    loop {
        let rec = store.request(ticket).await.unwrap().expect("the request is stored");
        if rec.mail == MailState::Sent {
            return rec;
        }
        assert!(start.elapsed() < WAIT, "not marked sent: {rec:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_smtp_down_a_request_is_accepted_then_delivered_once_when_smtp_returns() {
    let port = free_port();
    let app = app_mailing(format!("smtp://127.0.0.1:{port}")).await;
    let ticket = ticket_in(&say(&app, &["demande", "3", "Loïc", "Martin", "passer", "oui"]).await);

    // Accepted and stored while the server is down; the worker keeps failing and retrying.
    let store = ledger(&app);
    let start = std::time::Instant::now();
    let failed = loop {
        let rec = store.request(&ticket).await.unwrap().expect("stored");
        if rec.attempts >= 2 {
            break rec;
        }
        assert!(start.elapsed() < WAIT, "no retry recorded: {rec:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.mail, MailState::Queued);
    assert!(failed.last_error.is_some());

    let sink = SmtpSink::start_on(port);
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].rcpt_tos, ["payroll@example.com"]);
    assert!(got[0].header("Subject").starts_with(&format!("[{ticket}]")));
    let rec = wait_until_sent(&app, &ticket).await;
    assert!(rec.last_error.is_none());
    // Several retry periods later, still exactly one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_the_same_confirmation_make_one_request_and_one_email() {
    let sink = SmtpSink::start();
    let app = app_mailing(sink.url()).await;
    say(&app, &["request", "2", "Ana", "Lopez", "skip"]).await;

    let form = whatsapp_form_with("yes", &fresh_sid(), "whatsapp:+33612345678");
    let sig = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
    let body = form.to_body();
    let url = app.url("/bot");
    let deliveries: Vec<_> = (0..20)
        .map(|_| {
            let (client, url, body, sig) = (app.client.clone(), url.clone(), body.clone(), sig.clone());
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(resp.status(), 200);
                twiml_messages(&resp.text().await.expect("body"))
            })
        })
        .collect();
    let mut replies = Vec::new();
    for d in deliveries {
        replies.push(d.await.expect("delivery task"));
    }
    let ticket = ticket_in(&replies[0][0]);
    assert!(replies.iter().all(|r| r == &replies[0]), "every duplicate gets the same reply: {replies:?}");

    let store = ledger(&app);
    assert_eq!(store.requests(100).await.unwrap().len(), 1, "one request");
    sink.wait_for(1, WAIT).await;
    wait_until_sent(&app, &ticket).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "one e-mail");
}

#[tokio::test]
async fn a_double_tapped_yes_makes_one_request() {
    let app = spawn_app().await;
    say(&app, &["request", "1", "Ana", "Lopez", "skip"]).await;
    // Five messages (five MessageSids) at once, all answering the same summary: whatever
    // the interleaving, one request. (The desk's unit test forces the losing interleaving.)
    let taps: Vec<_> = (0..5)
        .map(|_| {
            let form = whatsapp_form("yes");
            let sig = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
            let (client, url) = (app.client.clone(), app.url("/bot"));
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", sig)
                    .body(form.to_body())
                    .send()
                    .await
                    .expect("request");
                twiml_messages(&resp.text().await.expect("body")).remove(0)
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in taps {
        replies.push(t.await.expect("task"));
    }
    let confirmations = replies.iter().filter(|r| r.contains("REQ-")).count();
    assert_eq!(confirmations, 1, "{replies:?}");
    assert_eq!(ledger(&app).requests(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_faq_message_gets_the_same_reply_without_a_second_turn() {
    let app = spawn_app().await;
    let form = whatsapp_form("menu");
    let first = app.post_signed(&form).await;
    let second = app.post_signed(&form).await;
    assert_eq!(first.text, second.text);
    // Had the retry been a second turn, "1" would not open the first category twice in a row.
    let category = app.ask("1").await;
    assert!(category[0].contains("reply with a number"), "{category:?}");
}

#[tokio::test]
async fn header_injection_attempts_in_every_field_add_no_header_and_no_recipient() {
    let sink = SmtpSink::start();
    let app = app_mailing(sink.url()).await;
    let evil_from = "whatsapp:+33612345678\r\nBcc: attacker@evil.example";
    let ask = |text: &str| {
        let mut pairs = whatsapp_form_with(text, &fresh_sid(), evil_from).params().to_vec();
        for (k, v) in &mut pairs {
            if k == "ProfileName" {
                *v = "Mallory\r\nBcc: attacker@evil.example".into();
            }
        }
        wabot::channel::twilio::WebhookForm::from_pairs(pairs)
    };
    let mut last = String::new();
    for text in [
        "request\r\nBcc: attacker@evil.example",
        "request",
        "1\r\nBcc: attacker@evil.example",
        "1",
        "Élodie\r\nBcc: attacker@evil.example",
        "Élodie\r\n",
        "Garçon\nTo: attacker@evil.example",
        "Garçon\r\n\r\n",
        "Deux exemplaires\r\nBcc: attacker@evil.example\r\nX-Injected: yes\r\n\r\nfin",
        "oui",
    ] {
        let answer = app.post_signed(&ask(text)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        last = twiml_messages(&answer.text).remove(0);
    }
    let ticket = ticket_in(&last);
    let m = &sink.wait_for(1, WAIT).await[0];
    assert_eq!(m.rcpt_tos, ["hr@example.com"], "no second recipient");
    let lines = m.raw_header_lines();
    for bad in ["bcc:", "cc:", "x-injected:"] {
        assert!(!lines.iter().any(|l| l.to_ascii_lowercase().starts_with(bad)), "{bad} in {lines:?}");
    }
    assert_eq!(m.header_all("To"), ["hr@example.com"]);
    let names: Vec<&str> = m.headers.iter().map(|(k, _)| k.as_str()).collect();
    for name in &names {
        assert!(
            [
                "From",
                "Reply-To",
                "To",
                "Subject",
                "Message-ID",
                "Date",
                "User-Agent",
                "Content-Type",
                "Content-Transfer-Encoding",
                "MIME-Version"
            ]
            .contains(name),
            "unexpected header {name}: {names:?}"
        );
    }
    assert_eq!(
        m.header("Subject"),
        format!("[{ticket}] Work certificate / Attestation de travail — Élodie Garçon")
    );
    // What was typed arrives, harmless, in the body.
    assert!(m.body.contains("Bcc: attacker@evil.example\nX-Injected: yes"), "{}", m.body);
    assert!(m.body.contains("WhatsApp: +33612345678 Bcc: attacker@evil.example"), "{}", m.body);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_request_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wabot.db");
    let app = spawn_with(Options { db: Some(db.clone()), ..Options::default() }).await;
    let asked = say(&app, &["request", "2", "Ana"]).await;
    assert!(asked.contains("last name"), "{asked}");
    app.stop().await;

    let app = spawn_with(Options { db: Some(db), ..Options::default() }).await;
    let details = say(&app, &["Lopez"]).await;
    assert!(details.starts_with("Any details"), "resumed at the last name: {details}");
    let summary = say(&app, &["skip"]).await;
    assert!(summary.contains("• Name: Ana Lopez"), "{summary}");
    let ticket = ticket_in(&say(&app, &["yes"]).await);
    // Mail is off here: stored and queued.
    let rec = ledger(&app).request(&ticket).await.unwrap().unwrap();
    assert_eq!((rec.mail, rec.attempts), (MailState::Queued, 0));
    assert_eq!(rec.kind, "salary-certificate");
}

#[tokio::test]
async fn an_employee_identified_by_badge_is_not_asked_for_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wabot.db");
    let session = Session {
        employee: Some(Employee {
            id: "712056".into(),
            first_name: "Élodie".into(),
            last_name: "Garçon".into(),
            email: "elodie.garcon@example.com".into(),
            department: "Finance".into(),
        }),
        ..Session::default()
    };
    let user = wabot::channel::twilio::address("whatsapp:+33612345678").unwrap();
    let turn = wabot::store::Turn {
        user,
        message_id: None,
        session: wabot::desk::encode_session(&session).unwrap(),
        session_version: 0,
        messages: Vec::new(),
        request: None,
        mail: None,
        unanswered: None,
        now_ms: wabot::domain::now_ms(),
        outbound: Vec::new(),
    };
    SqliteStore::open(&db).unwrap().blocking().commit(&turn).unwrap();
    let sink = SmtpSink::start();
    let app = spawn_with(Options { db: Some(db), mail: mail_to(sink.url()), ..Options::default() }).await;
    let details = say(&app, &["request", "5"]).await;
    assert!(details.contains("for Élodie Garçon"), "{details}");
    let ticket = ticket_in(&say(&app, &["New address: 3 rue des Lilas, Lyon", "yes"]).await);
    let m = &sink.wait_for(1, WAIT).await[0];
    assert!(m.header("Subject").ends_with("Change of address / Changement d'adresse — Élodie Garçon"));
    assert!(m.body.contains("Employee ID / Matricule: 712056"), "{}", m.body);
    assert!(m.body.contains("Department / Service: Finance"), "{}", m.body);
    assert!(m.body.contains(&ticket));
}

#[tokio::test]
async fn the_menu_offers_requests_as_its_last_entry() {
    let app = spawn_app().await;
    let menu = app.ask("menu").await.remove(0);
    let entry = menu.lines().find(|l| l.contains("administrative request")).expect("a request entry");
    let number = entry.split('.').next().unwrap().to_owned();
    let types = app.ask(&number).await.remove(0);
    assert!(types.starts_with("New administrative request"), "{types}");
    let cancelled = app.ask("cancel").await.remove(0);
    assert!(cancelled.starts_with("Request cancelled"), "{cancelled}");
}

/// Request types whose e-mails go to `(id, address)` each, in menu order.
fn types_to(destinations: &[(&str, &str)]) -> wabot::config::RequestSettings {
    let types = destinations
        .iter()
        .map(|(id, email)| wabot::domain::RequestType {
            id: (*id).into(),
            label_en: format!("Request {id}"),
            label_fr: format!("Demande {id}"),
            email: (*email).into(),
        })
        .collect();
    wabot::config::RequestSettings { types, ..wabot::config::RequestSettings::default() }
}

/// Files a request of the `n`th type (1-based); its ticket.
async fn file_request(app: &TestApp, n: usize) -> String {
    ticket_in(&say(app, &["request", &n.to_string(), "Élodie", "Garçon", "Two copies", "yes"]).await)
}

/// Waits until `ticket`'s record satisfies `done`, at most `within`.
async fn wait_for_record(
    app: &TestApp,
    ticket: &str,
    within: Duration,
    done: impl Fn(&wabot::domain::RequestRecord) -> bool,
) -> wabot::domain::RequestRecord {
    let store = ledger(app);
    let start = std::time::Instant::now();
    loop {
        let rec = store.request(ticket).await.unwrap().expect("the request is stored");
        if done(&rec) {
            return rec;
        }
        assert!(start.elapsed() < within, "not reached within {within:?}: {rec:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_that_accepts_and_never_greets_costs_a_timed_out_attempt_then_the_relay_behind_the_same_address_gets_the_mail()
 {
    // Listening, never accepting: the kernel completes the connection, nobody ever greets.
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tarpit.local_addr().unwrap().port();
    let mail = MailSettings {
        timeout_secs: 1,
        retry_initial_ms: 500,
        retry_max_ms: 500,
        ..mail_to(format!("smtp://127.0.0.1:{port}"))
    };
    let app = spawn_with(Options { mail, ..Options::default() }).await;
    let started = std::time::Instant::now();
    let ticket = file_request(&app, 1).await;

    let failed = wait_for_record(&app, &ticket, WAIT, |r| r.attempts >= 1).await;
    println!("the stalled attempt failed after {:?}", started.elapsed());
    assert_eq!(failed.mail, MailState::Queued);
    let error = failed.last_error.clone().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    let history = ledger(&app).mail_history(&ticket).await.unwrap();
    let report = wabot::cli::requests::show(&failed, &history);
    assert!(report.contains("queued (1 attempt)") && report.contains("timed out"), "{report}");
    let first = report.lines().find(|l| l.starts_with("history")).unwrap_or_default();
    assert!(first.contains(" failed: timed out") && first.contains("; next attempt "), "{report}");

    // A healthy relay takes over the address.
    drop(tarpit);
    let sink = SmtpSink::start_on(port);
    let switched = std::time::Instant::now();
    // One timeout and one backoff at most, plus the sink's start and a margin for a loaded
    // machine: the point is that the worker was not stuck.
    let got = sink.wait_for(1, Duration::from_secs(1) + Duration::from_millis(500) + WAIT).await;
    println!("delivered {:?} after the relay started", switched.elapsed());
    assert!(got[0].header("Subject").starts_with(&format!("[{ticket}]")));
    let rec = wait_until_sent(&app, &ticket).await;
    assert!(rec.attempts >= 2, "the failed attempt stays counted: {rec:?}");
    let history = ledger(&app).mail_history(&ticket).await.unwrap();
    let report = wabot::cli::requests::show(&rec, &history);
    let lines: Vec<&str> = report.lines().skip_while(|l| !l.starts_with("history")).collect();
    assert!(lines.len() >= 2 && lines.last().is_some_and(|l| l.ends_with("  sent")), "{report}");
}

#[tokio::test]
async fn one_stalled_destination_does_not_delay_another_destinations_mail() {
    let sink = SmtpSink::start_with(free_port(), &["--stall-domain", "stall.example"]);
    let mail = MailSettings { timeout_secs: 60, ..mail_to(sink.url()) };
    let requests = types_to(&[("stuck", "desk@stall.example"), ("certificate", "hr@example.com")]);
    // Two requests from one sender are twelve messages: more than a sender's burst.
    let limits = wabot::config::LimitSettings { sender_per_minute: 0, ..Default::default() };
    let app = spawn_with(Options { mail, requests, limits, ..Options::default() }).await;

    let stuck = file_request(&app, 1).await;
    // The first exchange is under way and stuck at its RCPT TO.
    let start = std::time::Instant::now();
    while sink.rcpt_count("stall.example") == 0 {
        assert!(start.elapsed() < WAIT, "the stalled exchange never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healthy = file_request(&app, 2).await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].rcpt_tos, ["hr@example.com"]);
    assert!(got[0].header("Subject").starts_with(&format!("[{healthy}]")));
    wait_until_sent(&app, &healthy).await;
    // Delivered while the other is still stuck, well inside its 60 s timeout.
    let rec = ledger(&app).request(&stuck).await.unwrap().unwrap();
    assert_eq!((rec.mail, rec.attempts), (MailState::Queued, 0), "{rec:?}");
}

#[tokio::test]
async fn a_permanent_rejection_is_dead_lettered_after_the_configured_number_of_attempts() {
    let sink = SmtpSink::start_with(free_port(), &["--reject-domain", "gone.example"]);
    let mail = MailSettings { max_permanent_failures: 3, ..mail_to(sink.url()) };
    let requests = types_to(&[("gone", "nobody@gone.example"), ("certificate", "hr@example.com")]);
    // Two requests from one sender are twelve messages: more than a sender's burst.
    let limits = wabot::config::LimitSettings { sender_per_minute: 0, ..Default::default() };
    let app = spawn_with(Options { mail, requests, limits, ..Options::default() }).await;

    let ticket = file_request(&app, 1).await;
    let dead = wait_for_record(&app, &ticket, WAIT, |r| r.mail == MailState::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.next_attempt_ms, None);
    let error = dead.last_error.clone().unwrap_or_default();
    assert!(error.contains("550"), "{error}");
    assert!(wabot::cli::requests::mail_status(&dead).starts_with("dead"), "{dead:?}");
    assert!(
        wabot::cli::requests::list(std::slice::from_ref(&dead))
            .contains("dead: rejected for good (3 attempts)")
    );

    // Never tried again, however many retry periods pass; other mail still goes.
    let other = file_request(&app, 2).await;
    wait_until_sent(&app, &other).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.rcpt_count("gone.example"), 3);
    assert_eq!(ledger(&app).request(&ticket).await.unwrap().unwrap(), dead);

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "wabot_outbox_dead 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "wabot_mail_dead_lettered_total 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "wabot_outbox_depth 0"), "{metrics}");
}
