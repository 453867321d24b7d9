//! Starts the real application on port 0 with its own fresh state.

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::oneshot;
use wabot::channel::{WebhookForm, compute_signature};
use wabot::config::Settings;
use wabot::corpus::KnowledgeBase;
use wabot::dialog::Dialog;
use wabot::engine::Engine;
use wabot::server::Server;
use wabot::store::MemoryStore;

pub const TOKEN: &str = "test-auth-token-0123456789abcdef";
pub const PUBLIC_URL: &str = "https://wabot.example.com";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub token: Option<String>,
    _stop: oneshot::Sender<()>,
}

pub struct Options {
    pub token: Option<&'static str>,
    pub kb: Option<KnowledgeBase>,
    pub max_body_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { token: Some(TOKEN), kb: None, max_body_bytes: 64 * 1024 }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: Some(PUBLIC_URL.to_owned()),
        twilio_auth_token: opts.token.map(|t| SecretString::from(t.to_owned())),
        max_body_bytes: opts.max_body_bytes,
        ..Settings::default()
    };
    let kb = Arc::new(opts.kb.unwrap_or_else(|| KnowledgeBase::embedded().expect("embedded corpus")));
    let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
    let dialog = Arc::new(Dialog::new(kb, engine, Arc::new(MemoryStore::default())));
    let server = Server::bind(&settings, dialog).await.expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp { addr, client: reqwest::Client::new(), token: opts.token.map(str::to_owned), _stop: stop }
}

/// A webhook form as Twilio sends it for a WhatsApp text message.
pub fn whatsapp_form(body: &str) -> WebhookForm {
    let pairs = [
        ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("NumMedia", "0"),
        ("ProfileName", "Élodie"),
        ("MessageType", "text"),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("WaId", "33612345678"),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "whatsapp:+33612345678"),
        ("ApiVersion", "2010-04-01"),
    ];
    WebhookForm::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts raw bytes to /bot with the given signature header.
    pub async fn post_raw(&self, body: Vec<u8>, content_type: &str, signature: Option<&str>) -> Answer {
        let mut req = self.client.post(self.url("/bot")).header("content-type", content_type).body(body);
        if let Some(sig) = signature {
            req = req.header("x-twilio-signature", sig);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        Answer { status, content_type, text: resp.text().await.expect("body") }
    }

    /// Posts `form`, signed as Twilio would sign it for the public webhook URL.
    pub async fn post_signed(&self, form: &WebhookForm) -> Answer {
        let token = self.token.as_deref().unwrap_or(TOKEN);
        let sig = compute_signature(token.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
        self.post_raw(form.to_body().into_bytes(), "application/x-www-form-urlencoded", Some(&sig)).await
    }

    /// Sends one WhatsApp text and returns the TwiML messages of the reply.
    pub async fn ask(&self, text: &str) -> Vec<String> {
        let answer = self.post_signed(&whatsapp_form(text)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        twiml_messages(&answer.text)
    }
}

/// Parses a TwiML document with a real XML parser and returns its messages' text.
pub fn twiml_messages(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("malformed TwiML ({e}): {xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "Response");
    root.children()
        .filter(|n| n.is_element())
        .map(|n| {
            assert_eq!(n.tag_name().name(), "Message");
            n.text().unwrap_or("").to_owned()
        })
        .collect()
}
