//! The web console over HTTP: sign-in, sessions and their cookie, anti-forgery tokens, the
//! throttle, security headers, and pages that change the live FAQ or show what employees
//! typed.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use wabot::domain::{Address, Channel, NewRequest, TICKET_PLACEHOLDER};
use wabot::engine::Lang;
use wabot::store::{Account, AccountRole, Turn, Turns};

use crate::helpers::{Options, TestApp, fresh_sid, spawn_with, twiml_messages, whatsapp_form_with};

pub const EMAIL: &str = "ann@example.com";
pub const PASSWORD: &str = "a long console password";

/// Every page and action of the console, as (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/console"),
    ("GET", "/console/try"),
    ("POST", "/console/try"),
    ("POST", "/console/try/reset"),
    ("GET", "/console/faq"),
    ("GET", "/console/faq/payslip-copy-en"),
    ("POST", "/console/faq/payslip-copy-en"),
    ("POST", "/console/faq/payslip-copy-en/delete"),
    ("GET", "/console/faq-new"),
    ("POST", "/console/faq-new"),
    ("GET", "/console/requests"),
    ("GET", "/console/requests/REQ-2026-000001"),
    ("POST", "/console/requests/REQ-2026-000001/resend"),
    ("GET", "/console/unanswered"),
    ("GET", "/console/conversations"),
    ("GET", "/console/conversations/twilio/%2B33611112222"),
    ("POST", "/console/conversations/twilio/%2B33611112222/reply"),
    ("POST", "/console/conversations/twilio/%2B33611112222/hand-back"),
    ("GET", "/console/dashboard"),
    ("POST", "/console/sign-out"),
];

/// The server with the console on, an FAQ journal, and one account.
pub async fn console_app() -> (TestApp, tempfile::TempDir) {
    console_app_with(wabot::config::TwilioSettings::default()).await
}

/// [`console_app`] with Twilio's REST API at `twilio`.
pub async fn console_app_with(twilio: wabot::config::TwilioSettings) -> (TestApp, tempfile::TempDir) {
    console_app_options(Options { twilio, ..Options::default() }).await
}

/// [`console_app`] e-mailing through the SMTP server at `smtp_url`.
pub async fn console_app_mailing(smtp_url: String) -> (TestApp, tempfile::TempDir) {
    console_app_options(Options { mail: crate::requests::mail_to(smtp_url), ..Options::default() }).await
}

/// [`console_app`] with `opts` for the rest.
pub async fn console_app_options(opts: Options) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let console = wabot::config::ConsoleSettings {
        enabled: Some(true),
        hr_email: Some("hr-desk@example.com".into()),
        ..Default::default()
    };
    let opts = Options { journal: Some(dir.path().join("journal.jsonl")), console, ..opts };
    let app = spawn_with(opts).await;
    let account = Account {
        email: EMAIL.into(),
        name: "Ann <Agent>".into(),
        role: AccountRole::Admin,
        password_hash: wabot::console::password::hash(PASSWORD).unwrap(),
        created_ms: 0,
    };
    assert!(app.accounts().add_account(account).await.unwrap());
    (app, dir)
}

/// A client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of the hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The `name=value` of a response's cookie `name`, with its attributes.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A signed-in browser, by hand: its session cookie and the session's anti-forgery token.
pub struct Signed {
    pub cookie: String,
    pub csrf: String,
}

/// Posts the sign-in form as a browser would.
async fn post_sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let c = client();
    let form = c.get(app.url("/console/sign-in")).send().await.unwrap();
    let pre = set_cookie(&form, "wabot_sign_in").expect("a sign-in cookie");
    let pre = pre.split(';').next().unwrap().to_owned();
    let token = csrf_of(&form.text().await.unwrap());
    c.post(app.url("/console/sign-in"))
        .header(COOKIE, pre)
        .form(&[("csrf", token.as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

pub async fn sign_in(app: &TestApp) -> Signed {
    let res = post_sign_in(app, EMAIL, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&res, "wabot_console").expect("a session cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = client().get(app.url("/console/try")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    Signed { cookie, csrf }
}

impl Signed {
    pub async fn get(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let res = client().get(app.url(path)).header(COOKIE, &self.cookie).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        client().post(app.url(path)).header(COOKIE, &self.cookie).form(&form).send().await.unwrap()
    }
}

#[tokio::test]
async fn every_console_route_refuses_a_request_without_a_session() {
    let (app, _dir) = console_app().await;
    for (method, path) in ROUTES {
        let req = match *method {
            "GET" => client().get(app.url(path)),
            _ => client().post(app.url(path)).form(&[("csrf", "x")]),
        };
        let res = req.header(COOKIE, "wabot_console=0000").send().await.unwrap();
        if *method == "GET" {
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{method} {path}");
            assert_eq!(res.headers()[LOCATION], "/console/sign-in", "{method} {path}");
        } else {
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_form_with_a_forged_or_missing_anti_forgery_token_is_refused() {
    let (app, _dir) = console_app().await;
    let me = sign_in(&app).await;
    for csrf in ["forged", ""] {
        let res = client()
            .post(app.url("/console/faq/payslip-copy-en/delete"))
            .header(COOKIE, &me.cookie)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
    }
    assert!(app.faq.engine().entries().iter().any(|e| e.id == "payslip-copy-en"), "nothing was deleted");
    // The sign-in form has its own token.
    let res = client()
        .post(app.url("/console/sign-in"))
        .header(COOKIE, "wabot_sign_in=abc")
        .form(&[("csrf", "abd"), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_secure_cookie_and_signing_out_ends_the_session() {
    let (app, _dir) = console_app().await;
    let res = post_sign_in(&app, EMAIL, PASSWORD).await;
    let cookie = set_cookie(&res, "wabot_console").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let token = cookie.split(';').next().unwrap().trim_start_matches("wabot_console=");
    assert_eq!(token.len(), 64, "a 256-bit token, hex");
    let by_token = app.accounts().console_session(token, wabot::domain::now_ms()).await.unwrap();
    assert!(by_token.is_none(), "the store keeps the token's hash, not the token");
    let sessions =
        app.execute(&format!("UPDATE console_sessions SET csrf = csrf WHERE token_hash = '{token}'")).await;
    assert_eq!(sessions, 0, "no row holds the token itself");
    let me = sign_in(&app).await;
    assert_eq!(me.post(&app, "/console/sign-out", &[]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(me.get(&app, "/console/faq").await.0, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_account_even_when_the_right_one_follows() {
    let (app, _dir) = console_app().await;
    for _ in 0..5 {
        assert_eq!(post_sign_in(&app, EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    let res = post_sign_in(&app, EMAIL, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&res, "wabot_console").is_none());
}

#[tokio::test]
async fn console_pages_carry_a_strict_content_security_policy_and_nosniff() {
    let (app, _dir) = console_app().await;
    let res = client().get(app.url("/console/sign-in")).send().await.unwrap();
    let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let body = res.text().await.unwrap();
    for label in [">Email<", ">Password<", ">Sign in<"] {
        assert!(body.contains(label), "{label}");
    }
    assert!(!body.contains(" style="), "no inline style");
}

#[tokio::test]
async fn try_the_bot_answers_as_the_employee_sees_it_with_the_matched_entry_and_its_terms() {
    let (app, _dir) = console_app().await;
    let me = sign_in(&app).await;
    let res = me.post(&app, "/console/try", &[("message", "how do I get my payslip?")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, page) = me.get(&app, "/console/try").await;
    assert!(page.contains("payslip-copy-en"), "the matched entry is named");
    assert!(page.contains("score"), "with its score");
    for label in [">Try the bot<", ">Conversations<", ">FAQ<", ">Requests<", ">Unanswered<", ">Dashboard<"] {
        assert!(page.contains(label), "nav {label}");
    }
    assert_eq!(app.rows("messages"), 0, "the simulator stores no turn");
}

#[tokio::test]
async fn an_faq_entry_edited_in_the_console_is_answered_at_once_and_audited() {
    let (app, _dir) = console_app().await;
    let me = sign_in(&app).await;
    let (status, page) = me.get(&app, "/console/faq/payslip-copy-en").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("payslip"));
    let fields = [
        ("id", "payslip-copy-en"),
        ("lang", "en"),
        ("questions", "How do I get a copy of my payslip?\nWhere is my payslip?"),
        ("answer", "Payslips now live in the new Workday portal."),
        ("topic", ""),
        ("category", ""),
    ];
    let res = me.post(&app, "/console/faq/payslip-copy-en", &fields).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    me.post(&app, "/console/try", &[("message", "where is my payslip")]).await;
    let (_, page) = me.get(&app, "/console/try").await;
    assert!(
        page.contains("Payslips now live in the new Workday portal."),
        "the simulator answers the new text"
    );
    let log = app.accounts().audit_log(5).await.unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str(), log[0].detail.as_str()),
        (EMAIL, "faq.edit", "payslip-copy-en")
    );
    // Validated as the loader validates: no question, no save.
    let mut bad = fields;
    bad[2] = ("questions", "   ");
    assert_eq!(me.post(&app, "/console/faq/payslip-copy-en", &bad).await.status(), StatusCode::BAD_REQUEST);
}

/// Commits a request whose details hold markup, as if an employee had typed them.
pub async fn store_request_with_markup(app: &TestApp) -> String {
    let request = NewRequest {
        kind: "work-certificate".into(),
        kind_label: "Work certificate / Attestation de travail".into(),
        recipient: "hr@example.com".into(),
        first_name: "Élodie".into(),
        last_name: "Garçon".into(),
        employee_id: Some("E123".into()),
        employee_email: None,
        department: None,
        details: Some("<script>alert('x')</script> for my bank".into()),
        lang: Lang::En,
    };
    let turn = Turn {
        user: Address::parse(Channel::Twilio, "+33600000001").unwrap(),
        message_id: None,
        session: "{}".into(),
        session_version: 0,
        messages: vec![format!("registered under {TICKET_PLACEHOLDER}")],
        request: Some(request),
        mail: None,
        unanswered: None,
        now_ms: wabot::domain::now_ms(),
        outbound: Vec::new(),
    };
    let store: Arc<dyn Turns> = app.store.clone();
    store.commit(turn).await.unwrap().ticket.unwrap()
}

#[tokio::test]
async fn a_requests_details_show_what_the_employee_typed_as_text_never_as_markup() {
    let (app, _dir) = console_app().await;
    let ticket = store_request_with_markup(&app).await;
    let me = sign_in(&app).await;
    let (_, list) = me.get(&app, "/console/requests?status=queued").await;
    assert!(list.contains(&ticket));
    let (_, none) = me.get(&app, "/console/requests?status=sent").await;
    assert!(!none.contains(&ticket), "filtered by status");
    let (status, page) = me.get(&app, &format!("/console/requests/{ticket}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Élodie") && page.contains("hr@example.com") && page.contains("queued"));
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"), "escaped");
    assert!(!page.contains("<script>alert"), "never markup");
    // The account's name, which an admin typed, is escaped too.
    assert!(page.contains("Ann &lt;Agent&gt;"));
    // Sent, then sent again from the console: queued once more, and audited.
    let due = app.store.due_mail(i64::MAX, 10).await.unwrap();
    app.store.mark_sent(due[0].id, wabot::domain::now_ms()).await.unwrap();
    let (_, sent) = me.get(&app, &format!("/console/requests/{ticket}")).await;
    assert!(sent.contains(">sent<"), "{sent}");
    let res = me.post(&app, &format!("/console/requests/{ticket}/resend"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, again) = me.get(&app, &format!("/console/requests/{ticket}")).await;
    assert!(again.contains(">queued<"), "{again}");
    assert_eq!(app.accounts().audit_log(1).await.unwrap()[0].action, "request.resend");
}

/// Waits until the e-mail of `ticket` satisfies `done` (the outbox worker retries every
/// 100 to 400 ms here).
pub async fn wait_for_mail(
    app: &TestApp,
    ticket: &str,
    done: impl Fn(&wabot::domain::RequestRecord) -> bool,
) -> wabot::domain::RequestRecord {
    let start = std::time::Instant::now();
    loop {
        let rec = app.store.request(ticket).await.unwrap().expect("the request is stored");
        if done(&rec) {
            return rec;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "not reached: {rec:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Files a work-certificate request through the webhook, as an employee does (so the
/// outbox worker is woken); its ticket.
pub async fn file_request_by_whatsapp(app: &TestApp) -> String {
    let mut last = Vec::new();
    for text in ["request", "1", "Élodie", "Garçon", "Two copies", "yes"] {
        last = app.ask(text).await;
    }
    let reply = last.join(" ");
    let start = reply.find("REQ-").unwrap_or_else(|| panic!("no ticket in {reply:?}"));
    reply[start..start + 15].to_owned()
}

#[tokio::test]
async fn a_requests_page_shows_its_e_mails_delivery_history_refused_then_accepted_then_resent() {
    // No SMTP server at first: the connection is refused, and retried.
    let port = crate::smtp::free_port();
    let (app, _dir) = console_app_mailing(format!("smtp://127.0.0.1:{port}")).await;
    let ticket = file_request_by_whatsapp(&app).await;
    let me = sign_in(&app).await;
    let (_, page) = me.get(&app, &format!("/console/requests/{ticket}")).await;
    assert!(page.contains("Delivery history"), "{page}");
    wait_for_mail(&app, &ticket, |r| r.attempts >= 2).await;
    let sink = crate::smtp::SmtpSink::start_on(port);
    sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    let sent = wait_for_mail(&app, &ticket, |r| r.mail == wabot::domain::MailState::Sent).await;

    let history = app.store.mail_history(&ticket).await.unwrap();
    assert_eq!(history.len(), sent.attempts as usize, "one event per attempt: {history:?}");
    let (last, failures) = history.split_last().unwrap();
    assert_eq!(last.kind, wabot::store::MailEventKind::Sent);
    assert_eq!(Some(last.at_ms), sent.sent_at_ms);
    for f in failures {
        assert_eq!(f.kind, wabot::store::MailEventKind::Failed, "{f:?}");
        assert!(f.retry_at_ms.is_some_and(|r| r > f.at_ms), "{f:?}");
        assert!(f.error.as_deref().is_some_and(|e| !e.is_empty()), "{f:?}");
    }
    let (status, page) = me.get(&app, &format!("/console/requests/{ticket}")).await;
    assert_eq!(status, StatusCode::OK);
    let table = &page[page.find("id=\"mail-history\"").expect("the history's table")..];
    assert_eq!(table.matches(">Failed<").count(), failures.len(), "{table}");
    assert_eq!(table.matches(">Sent<").count(), 1, "{table}");
    assert!(!table.contains(">Queued again<"), "{table}");
    let error = failures[0].error.clone().unwrap();
    assert!(table.contains(&maud::html! { (error) }.into_string()), "the error shown: {table}");

    // Sent again from the console: who and when, then the new delivery.
    let res = me.post(&app, &format!("/console/requests/{ticket}/resend"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    sink.wait_for(2, std::time::Duration::from_secs(20)).await;
    wait_for_mail(&app, &ticket, |r| r.mail == wabot::domain::MailState::Sent).await;
    let start = std::time::Instant::now();
    let page = loop {
        let (_, page) = me.get(&app, &format!("/console/requests/{ticket}")).await;
        let table = page.split("id=\"mail-history\"").nth(1).unwrap_or_default();
        if table.matches(">Sent<").count() == 2 {
            break page;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(page.contains(">Queued again<") && page.contains(EMAIL), "{page}");
    // In French too.
    let url = app.url(&format!("/console/requests/{ticket}"));
    let res =
        client().get(url).header(COOKIE, &me.cookie).header("accept-language", "fr").send().await.unwrap();
    let fr = res.text().await.unwrap();
    assert!(fr.contains("Historique d'envoi"), "{fr}");
    assert!(fr.contains(">Échec<") && fr.contains(">Remis en file<") && fr.contains(">Envoyé<"), "{fr}");
}

/// A stand-in for Twilio's REST API on loopback: records each message sent.
pub struct FakeTwilioApi {
    pub addr: std::net::SocketAddr,
    pub sent: Arc<std::sync::Mutex<Vec<std::collections::HashMap<String, String>>>>,
}

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

impl FakeTwilioApi {
    pub async fn start() -> FakeTwilioApi {
        let sent: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
        let record = Arc::clone(&sent);
        let app = axum::Router::new().route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(
                move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                    let record = Arc::clone(&record);
                    async move {
                        record.lock().unwrap().push(form);
                        (axum::http::StatusCode::CREATED, r#"{"sid": "SM1", "status": "queued"}"#)
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTwilioApi { addr, sent }
    }

    /// Twilio settings pointing at this fake.
    pub fn settings(&self) -> wabot::config::TwilioSettings {
        wabot::config::TwilioSettings {
            api_base: format!("http://{}", self.addr),
            account_sid: Some(secrecy::SecretString::from(ACCOUNT_SID.to_owned())),
            allow_http_loopback: true,
            ..Default::default()
        }
    }

    pub fn sent(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.sent.lock().unwrap().clone()
    }

    /// The messages received once there are `n` of them: replies go out through the
    /// outbound queue, after the console's answer. Panics after 10 s.
    pub async fn wait_sent(&self, n: usize) -> Vec<std::collections::HashMap<String, String>> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let sent = self.sent();
            if sent.len() >= n || tokio::time::Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The employee of the handover tests.
pub const EMPLOYEE: &str = "whatsapp:+33611112222";

/// Sends `text` from [`EMPLOYEE`] through the signed webhook; the TwiML messages back.
pub async fn employee_says(app: &TestApp, text: &str) -> Vec<String> {
    let answer = app.post_signed(&whatsapp_form_with(text, &fresh_sid(), EMPLOYEE)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    twiml_messages(&answer.text)
}

#[tokio::test]
async fn a_conversation_handed_over_by_webhook_is_answered_from_the_console_through_twilio_then_handed_back()
{
    let twilio = FakeTwilioApi::start().await;
    let sink = crate::smtp::SmtpSink::start();
    let mail = crate::requests::mail_to(sink.url());
    let (app, _dir) =
        console_app_options(Options { twilio: twilio.settings(), mail, ..Options::default() }).await;
    let reply = employee_says(&app, "I want to talk to a person").await;
    assert!(reply[0].contains("HR colleague") && reply[0].contains("Monday to Friday"), "{reply:?}");
    let reply = employee_says(&app, "my contract <script>alert(1)</script> is wrong").await;
    assert!(reply.is_empty(), "while handed over the bot says nothing: {reply:?}");
    assert_eq!(app.rows("unanswered"), 0, "nor does the FAQ see it");
    // HR is e-mailed through the outbox, once, with a link to the conversation.
    let got = sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    assert_eq!(got[0].rcpt_tos, ["hr-desk@example.com"]);
    assert!(
        got[0].header("Subject").contains("Conversation handed over to a person"),
        "{:?}",
        got[0].header("Subject")
    );
    let link = "https://wabot.example.com/console/conversations/twilio/%2B33611112222";
    assert!(got[0].body.contains(link), "{}", got[0].body);
    assert_eq!(app.rows("outbox"), 1);
    // It is not a request: no ticket, in no list or count of requests.
    assert!(app.store.requests(5).await.unwrap().is_empty(), "wabot requests lists no handover");
    let all = wabot::store::RequestQuery::default();
    assert!(app.store.count_requests(&all).await.unwrap().is_empty());
    assert!(app.store.request_kinds().await.unwrap().is_empty());
    let me = sign_in(&app).await;
    let (_, requests) = me.get(&app, "/console/requests").await;
    assert!(!requests.contains("REQ-") && !requests.contains("handed over"), "{requests}");
    let (_, list) = me.get(&app, "/console/conversations").await;
    assert!(list.contains("+33611112222") && list.contains("waiting for a person"), "{list}");
    let path = "/console/conversations/twilio/%2B33611112222";
    let (status, page) = me.get(&app, path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("my contract &lt;script&gt;alert(1)&lt;/script&gt; is wrong"), "escaped");
    assert!(!page.contains("<script>alert"));
    for label in [">Reply<", ">Send reply<", ">Hand back to the bot<"] {
        assert!(page.contains(label), "{label}");
    }
    let res = me.post(&app, &format!("{path}/reply"), &[("reply", "Hello, Ann from HR here.")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let sent = twilio.wait_sent(1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["To"], EMPLOYEE);
    assert_eq!(sent[0]["From"], "whatsapp:+14155238886");
    assert_eq!(sent[0]["Body"], "Hello, Ann from HR here.");
    let res = me.post(&app, &format!("{path}/hand-back"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let sent = twilio.wait_sent(2).await;
    assert!(
        sent.len() == 2 && sent[1]["Body"].contains("back with the assistant"),
        "the employee is told: {sent:?}"
    );
    let reply = employee_says(&app, "Where can I download my payslip?").await;
    assert!(
        !reply.is_empty() && reply[0].to_lowercase().contains("payslip"),
        "the bot answers again: {reply:?}"
    );
    let (_, list) = me.get(&app, "/console/conversations").await;
    assert!(!list.contains("waiting for a person"), "{list}");
    let log = app.accounts().audit_log(5).await.unwrap();
    assert_eq!(log[0].action, "conversation.hand_back");
    // Counted for the dashboard: the handover, the answer after it, the wait for a person.
    assert_eq!(app.rows("reply_waits"), 1);
    let (_, dashboard) = me.get(&app, "/console/dashboard").await;
    assert!(dashboard.contains("Messages per day") && dashboard.contains("payslip-copy"), "{dashboard}");
    assert!(dashboard.contains("just now"), "the median wait: {dashboard}");
    assert_eq!(sink.messages().len(), 1, "the handover e-mailed once");
}

#[tokio::test]
async fn two_declined_questions_in_a_row_offer_a_person_and_bot_takes_the_bot_back() {
    let (app, _dir) = console_app().await;
    let first = employee_says(&app, "zorglub quantum flux capacitor").await;
    assert!(!first.iter().any(|m| m.contains("HR colleague")), "{first:?}");
    let second = employee_says(&app, "blorp snizzle wobble").await;
    assert!(second.iter().any(|m| m.contains("talk to an HR colleague")), "{second:?}");
    let handed = employee_says(&app, "parler à quelqu'un").await;
    assert!(handed[0].contains("collègue des RH"), "in French: {handed:?}");
    // No mail server here: the notice to HR waits in the outbox, and the dashboard counts it.
    let me = sign_in(&app).await;
    let (_, dashboard) = me.get(&app, "/console/dashboard").await;
    assert!(dashboard.contains("<dt>E-mails waiting</dt><dd>1</dd>"), "{dashboard}");
    let back = employee_says(&app, "bot").await;
    assert!(back[0].contains("de retour avec l'assistant"), "{back:?}");
}

/// A load run, not a timed test: `cargo test --test api console_pages_load_run -- --ignored
/// --nocapture` seeds 10,000 requests, then asks each console page 200 times over loopback,
/// one at a time, and prints the median and the 99th percentile.
#[tokio::test]
#[ignore]
async fn console_pages_load_run() {
    let (app, _dir) = console_app().await;
    let seeded = std::time::Instant::now();
    let store: Arc<dyn Turns> = app.store.clone();
    let mut pending = Vec::new();
    for i in 0..10_000 {
        let mut request = NewRequest {
            kind: ["work-certificate", "payslip-copy", "address-change"][i % 3].into(),
            kind_label: "Work certificate / Attestation de travail".into(),
            recipient: "hr@example.com".into(),
            first_name: "Élodie".into(),
            last_name: format!("Garçon {i}"),
            employee_id: None,
            employee_email: None,
            department: None,
            details: Some("for my bank".into()),
            lang: Lang::Fr,
        };
        request.details = Some(format!("request {i}"));
        let turn = Turn {
            user: Address::parse(Channel::Twilio, &format!("+3360{i:07}")).unwrap(),
            message_id: None,
            session: "{}".into(),
            session_version: 0,
            messages: vec![TICKET_PLACEHOLDER.into()],
            request: Some(request),
            mail: None,
            unanswered: Some(format!("question {}", i % 300)),
            now_ms: wabot::domain::now_ms(),
            outbound: Vec::new(),
        };
        let store = Arc::clone(&store);
        pending.push(tokio::spawn(async move { store.commit(turn).await.unwrap() }));
        if pending.len() == 500 {
            for p in pending.drain(..) {
                p.await.unwrap();
            }
        }
    }
    for p in pending {
        p.await.unwrap();
    }
    println!("seeded 10000 requests in {:?}", seeded.elapsed());
    let me = sign_in(&app).await;
    me.post(&app, "/console/try", &[("message", "Where can I download my payslip?")]).await;
    let ticket = app.store.requests(1).await.unwrap()[0].ticket.clone();
    let request_page = format!("/console/requests/{ticket}");
    let pages = [
        "/console/try",
        "/console/faq",
        "/console/faq?q=payslip",
        "/console/faq/payslip-copy-en",
        "/console/requests",
        "/console/requests?status=queued&kind=payslip-copy",
        request_page.as_str(),
        "/console/unanswered",
        "/console/conversations",
        "/console/dashboard",
    ];
    let c = client();
    for page in pages {
        let mut ms = Vec::new();
        let mut size = 0;
        for _ in 0..200 {
            let t = std::time::Instant::now();
            let res = c.get(app.url(page)).header(COOKIE, &me.cookie).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{page}");
            size = res.bytes().await.unwrap().len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!("{page:<52} {size:>7} bytes  p50 {:>6.2} ms  p99 {:>6.2} ms", ms[100], ms[197]);
    }
}

#[tokio::test]
async fn the_faq_page_shows_the_self_evaluations_confusable_pairs_beside_their_entries() {
    let (app, _dir) = console_app().await;
    let me = sign_in(&app).await;
    for _ in 0..100 {
        let (_, page) = me.get(&app, "/console/faq").await;
        if page.contains("confused with ") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no confusable pair shown after 10 s");
}

#[tokio::test]
async fn a_browser_preferring_french_gets_the_console_in_french() {
    let (app, _dir) = console_app().await;
    let res = client()
        .get(app.url("/console/sign-in"))
        .header("accept-language", "fr-FR,fr;q=0.9")
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(
        page.contains("lang=\"fr\"") && page.contains(">Mot de passe<") && page.contains(">Se connecter<")
    );
}

#[tokio::test]
async fn a_meta_conversation_handed_over_is_answered_through_the_graph_api_and_a_day_later_as_the_template() {
    use crate::meta::{FakeGraph, WA_ID, notification, post_signed, text_message};
    let graph = FakeGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut meta = graph.settings();
    meta.templates.insert(
        "agent_reply".into(),
        wabot::config::meta::MetaTemplate { name: "wabot_hr_reply".into(), language: "fr".into() },
    );
    let console = wabot::config::ConsoleSettings { enabled: Some(true), ..Default::default() };
    let opts =
        Options { journal: Some(dir.path().join("journal.jsonl")), console, meta, ..Options::default() };
    let app = spawn_with(opts).await;
    let account = Account {
        email: EMAIL.into(),
        name: "Ann".into(),
        role: AccountRole::Agent,
        password_hash: wabot::console::password::hash(PASSWORD).unwrap(),
        created_ms: 0,
    };
    assert!(app.accounts().add_account(account).await.unwrap());
    let (status, body) =
        post_signed(&app, &notification(serde_json::json!([text_message("je veux parler à quelqu'un")])))
            .await;
    assert_eq!(status, 200, "{body}");
    let told = graph.wait_for_sent(1).await;
    assert!(told[0].body["text"]["body"].as_str().unwrap_or("").contains("RH"), "{:?}", told[0].body);
    let me = sign_in(&app).await;
    let path = format!("/console/conversations/meta/{WA_ID}");
    let (status, page) = me.get(&app, &path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("parler à quelqu&#39;un") || page.contains("parler à quelqu'un"), "{page}");
    let res = me.post(&app, &format!("{path}/reply"), &[("reply", "Bonjour, ici Ann des RH.")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let sent = graph.wait_for_sent(2).await;
    assert_eq!(sent[1].body["to"], WA_ID);
    assert_eq!(
        (sent[1].body["type"].as_str(), sent[1].body["text"]["body"].as_str()),
        (Some("text"), Some("Bonjour, ici Ann des RH."))
    );
    // A day later WhatsApp refuses free text: the agent's reply goes as the template.
    let day_ago = wabot::domain::now_ms() - 25 * 3600 * 1000;
    let moved = app.execute(&format!("UPDATE inbound SET last_ms = {day_ago} WHERE channel = 'meta'")).await;
    assert_eq!(moved, 1, "the employee's last message time is kept");
    let res = me.post(&app, &format!("{path}/reply"), &[("reply", "Votre badge est réactivé.")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let sent = graph.wait_for_sent(3).await;
    assert_eq!(sent[2].body["type"], "template", "{:?}", sent[2].body);
    assert_eq!(sent[2].body["template"]["name"], "wabot_hr_reply");
    assert_eq!(
        sent[2].body["template"]["components"][0]["parameters"][0]["text"],
        "Votre badge est réactivé."
    );
}
