//! The console in headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromedriver`), as a person would use it: by the visible labels of its controls. Each
//! page is photographed into `docs/console/` for the README.
//!
//! Without Chromium these tests print why and pass, except when `WABOT_BROWSER_TESTS` is
//! `required` (CI sets it), where they fail.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::console::{
    EMAIL, EMPLOYEE, FakeTwilioApi, PASSWORD, console_app, console_app_mailing, console_app_with,
    employee_says, file_request_by_whatsapp, store_request_with_markup, wait_for_mail,
};
use crate::helpers::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session behind its own chromedriver.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A browser, or `None` (with the reason printed) when Chromium is not installed and
    /// the tests are not required.
    async fn start() -> Option<Browser> {
        let required = std::env::var("WABOT_BROWSER_TESTS").is_ok_and(|v| v == "required");
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(path).exists() {
                assert!(!required, "WABOT_BROWSER_TESTS=required but {path} is missing");
                eprintln!("skipped: {path} is missing (apt-get install chromium chromium-driver)");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,900",
            "--lang=en-US",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args, "prefs": {"intl.accept_languages": "en-US"}}
        }}});
        let res: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {res}")).to_owned();
        Some(Browser { http, session: format!("{base}/session/{session}"), driver, _profile: profile })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or("").to_owned()
    }

    async fn find(&self, xpath: &str) -> String {
        let v = self
            .call(reqwest::Method::POST, "/element", Some(json!({"using": "xpath", "value": xpath})))
            .await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {xpath}: {v}")).to_owned()
    }

    /// The control labelled `label`, found through the label's `for`.
    async fn labelled(&self, label: &str) -> String {
        let l = self.find(&format!("//label[normalize-space()='{label}']")).await;
        let id = self.call(reqwest::Method::GET, &format!("/element/{l}/attribute/for"), None).await;
        let id = id.as_str().unwrap_or_else(|| panic!("label {label} names no control")).to_owned();
        self.find(&format!("//*[@id='{id}']")).await
    }

    async fn fill(&self, label: &str, text: &str) {
        let el = self.labelled(label).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text })))
            .await;
    }

    async fn click(&self, xpath: &str) {
        let el = self.find(xpath).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// Clicks and waits for the next page to have loaded: the current document is
    /// marked first, and the click is done when a document without the mark is complete.
    async fn navigate(&self, xpath: &str) {
        self.run("window.__before_click = true").await;
        self.click(xpath).await;
        for _ in 0..200 {
            let v = self
                .run("return window.__before_click === undefined && document.readyState === 'complete'")
                .await;
            if v == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clicking {xpath} led to no new page");
    }

    async fn button(&self, text: &str) {
        self.navigate(&format!("//button[normalize-space()='{text}']")).await;
    }

    async fn link(&self, text: &str) {
        self.navigate(&format!("//a[normalize-space()='{text}']")).await;
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        let body = self.find("//body").await;
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn run(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Saves a screenshot as `docs/console/{name}.png`.
    async fn shoot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    async fn sign_in(&self, app: &TestApp) {
        self.goto(&app.url("/console/sign-in")).await;
        self.fill("Email", EMAIL).await;
        self.fill("Password", PASSWORD).await;
        self.button("Sign in").await;
        assert!(self.url().await.ends_with("/console/try"), "signed in: {}", self.url().await);
    }
}

#[tokio::test]
async fn in_chromium_an_agent_signs_in_tries_the_bot_edits_an_faq_entry_and_the_simulator_answers_the_new_text()
 {
    let Some(b) = Browser::start().await else { return };
    let (app, _dir) = console_app().await;
    let ticket = store_request_with_markup(&app).await;
    // Without a session, a page leads to sign-in.
    b.goto(&app.url("/console/faq")).await;
    assert!(b.url().await.ends_with("/console/sign-in"), "{}", b.url().await);
    b.shoot("sign-in").await;
    b.sign_in(&app).await;

    b.fill("Message", "Where can I download my payslip?").await;
    b.button("Send").await;
    let text = b.text().await;
    assert!(text.contains("payslip-copy-en"), "the matched entry under the answer: {text}");
    b.shoot("try-the-bot").await;

    // A forged anti-forgery token is refused.
    b.run("document.querySelector('form.send input[name=csrf]').value = 'forged'").await;
    b.fill("Message", "hello").await;
    b.button("Send").await;
    assert!(b.text().await.contains("anti-forgery"), "{}", b.text().await);

    b.goto(&app.url("/console/try")).await;
    b.link("FAQ").await;
    b.fill("Search", "payslip").await;
    b.button("Search").await;
    b.shoot("faq").await;
    b.link("payslip-copy-en").await;
    b.fill("Answer", "Payslips are in the new Workday portal, under Pay.").await;
    b.shoot("faq-entry").await;
    b.button("Save").await;
    assert!(b.url().await.contains("saved=1"), "saved: {}", b.text().await);
    b.link("Try the bot").await;
    b.fill("Message", "Where can I download my payslip?").await;
    b.button("Send").await;
    let text = b.text().await;
    assert!(
        text.contains("Payslips are in the new Workday portal, under Pay."),
        "the new text at once: {text}"
    );

    b.link("Requests").await;
    b.shoot("requests").await;
    b.link(&ticket).await;
    let text = b.text().await;
    assert!(text.contains("<script>alert('x')</script> for my bank"), "shown as text: {text}");
    let alert = b.call(reqwest::Method::GET, "/alert/text", None).await;
    assert!(alert.get("error").is_some(), "no script ran: {alert}");

    employee_says(&app, "zorglub quantum flux capacitor").await;
    b.link("Unanswered").await;
    b.shoot("unanswered").await;
    b.link("Create an entry").await;
    let questions = b.labelled("Questions (one per line)").await;
    let value = b.call(reqwest::Method::GET, &format!("/element/{questions}/property/value"), None).await;
    assert_eq!(value, "zorglub quantum flux capacitor");
    b.link("Dashboard").await;
    assert!(b.text().await.contains("Messages per day"));
}

#[tokio::test]
async fn in_chromium_a_conversation_handed_over_by_a_signed_webhook_is_answered_through_twilio_and_handed_back()
 {
    let Some(b) = Browser::start().await else { return };
    let twilio = FakeTwilioApi::start().await;
    let (app, _dir) = console_app_with(twilio.settings()).await;
    employee_says(&app, "Where can I download my payslip?").await;
    employee_says(&app, "talk to a human").await;
    employee_says(&app, "My badge <b>stopped</b> working").await;
    b.sign_in(&app).await;
    b.link("Conversations").await;
    assert!(b.text().await.contains("waiting for a person"));
    b.shoot("conversations").await;
    b.link(EMPLOYEE.trim_start_matches("whatsapp:")).await;
    assert!(b.text().await.contains("My badge <b>stopped</b> working"), "shown as text");
    b.fill("Reply", "Hello, Ann from HR: I'll reset your badge now.").await;
    b.button("Send reply").await;
    b.shoot("conversation").await;
    let sent = twilio.wait_sent(1).await;
    assert_eq!(sent.last().unwrap()["Body"], "Hello, Ann from HR: I'll reset your badge now.");
    assert_eq!(sent.last().unwrap()["To"], EMPLOYEE);
    b.button("Hand back to the bot").await;
    assert!(!b.text().await.contains("waiting for a person"));
    let reply = employee_says(&app, "Where can I download my payslip?").await;
    assert!(!reply.is_empty(), "the bot answers again");
    employee_says(&app, "How many days of annual leave do I have?").await;
    employee_says(&app, "zorglub quantum flux capacitor").await;
    store_request_with_markup(&app).await;
    b.link("Dashboard").await;
    let text = b.text().await;
    assert!(text.contains("payslip-copy") && text.contains("handed over"), "{text}");
    // The handover's e-mail is not a request: only the one filed is counted.
    assert!(text.contains("Requests (30 days)\t1") || text.contains("Requests (30 days)\n1"), "{text}");
    b.shoot("dashboard").await;
}

#[tokio::test]
async fn in_chromium_a_requests_details_show_its_e_mail_refused_then_delivered_and_sent_again() {
    let Some(b) = Browser::start().await else { return };
    // The mail server is down at first: the worker's attempts are refused, then it starts.
    let port = crate::smtp::free_port();
    let (app, _dir) = console_app_mailing(format!("smtp://127.0.0.1:{port}")).await;
    let ticket = file_request_by_whatsapp(&app).await;
    wait_for_mail(&app, &ticket, |r| r.attempts >= 2).await;
    let sink = crate::smtp::SmtpSink::start_on(port);
    sink.wait_for(1, Duration::from_secs(20)).await;
    wait_for_mail(&app, &ticket, |r| r.mail == wabot::domain::MailState::Sent).await;

    b.sign_in(&app).await;
    b.link("Requests").await;
    b.link(&ticket).await;
    let text = b.text().await;
    assert!(text.contains("Élodie Garçon") && text.contains("Work certificate"), "the details: {text}");
    assert!(text.contains("Delivery history"), "{text}");
    let rows = b
        .run("return [...document.querySelectorAll('#mail-history tbody tr')].map(r => r.cells[1].innerText)")
        .await;
    let events: Vec<&str> = rows.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(events.last(), Some(&"Sent"), "{events:?}");
    assert!(events[..events.len() - 1].iter().all(|e| *e == "Failed"), "{events:?}");
    b.button("Send the e-mail again").await;
    sink.wait_for(2, Duration::from_secs(20)).await;
    let start = std::time::Instant::now();
    loop {
        b.goto(&app.url(&format!("/console/requests/{ticket}"))).await;
        let text = b.text().await;
        if text.matches("Sent").count() >= 3 {
            assert!(text.contains("Queued again") && text.contains(EMAIL), "{text}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the second delivery never shown: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Tall enough for the details and the whole history in one picture.
    b.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": 1100, "height": 1500}))).await;
    b.shoot("request").await;
}
