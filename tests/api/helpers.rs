//! Starts the real application on port 0 with its own fresh state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::SecretString;
use tokio::sync::oneshot;
use wabot::channel::twilio::{WebhookForm, compute_signature};
use wabot::config::PostgresSettings;
use wabot::config::Settings;
use wabot::desk::badge::BadgeDesk;
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::knowledge::faq::{Faq, FaqOptions};
use wabot::startup::Application;
use wabot::store::Store;

pub const TOKEN: &str = "test-auth-token-0123456789abcdef";
pub const PUBLIC_URL: &str = "https://wabot.example.com";
pub const ADMIN_TOKEN: &str = "test-admin-token-fedcba9876543210";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub token: Option<String>,
    /// The live FAQ behind the server, to reload it as `SIGHUP` or polling would.
    pub faq: Arc<Faq>,
    /// The database file (`WABOT_DB`), to restart on the same state (unused on PostgreSQL).
    pub db: PathBuf,
    /// The PostgreSQL database (its own schema) when the app runs on one; see [`backend_url`].
    pub pg_url: Option<String>,
    /// The sessions behind the webhook and badge reading (the database).
    pub store: Arc<dyn Store>,
    /// The web console's store roles, when the database keeps them.
    pub console: Option<wabot::server::ConsoleStores>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
    /// Holds the temporary directory of a database the test did not choose.
    _dir: Option<tempfile::TempDir>,
}

/// Builds badge reading over the app's session store.
pub type BuildDesk = Box<
    dyn FnOnce(Arc<dyn Store>, Arc<dyn wabot::domain::Clock>, wabot::desk::outbound::Postbox) -> BadgeDesk
        + Send,
>;

pub struct Options {
    pub token: Option<&'static str>,
    /// `TWILIO_WEBHOOK_SHARED_KEY`: the SharedKey's secret.
    pub shared_key: Option<&'static str>,
    /// `WABOT_ADMIN_TOKEN`: the admin API exists only with it.
    pub admin_token: Option<&'static str>,
    /// A knowledge base already loaded (else `corpus`, else the embedded one).
    pub kb: Option<KnowledgeBase>,
    /// A corpus directory or file, read at startup and at reloads.
    pub corpus: Option<PathBuf>,
    /// The journal of admin changes; without one they live in memory only.
    pub journal: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// The database; `None` for a fresh one in a temporary directory (or a fresh
    /// PostgreSQL schema, see [`backend_url`]).
    pub db: Option<PathBuf>,
    /// A PostgreSQL database to run on (to restart on the same state).
    pub pg_url: Option<String>,
    /// E-mail settings (no SMTP URL: mail off).
    pub mail: wabot::config::MailSettings,
    /// The request form's settings.
    pub requests: wabot::config::RequestSettings,
    /// Badge OCR: builds the desk over the app's session store (see `badge.rs`).
    pub badges: Option<BuildDesk>,
    /// Timeout, load shedding, per-sender rate limit (the production defaults).
    pub limits: wabot::config::LimitSettings,
    /// Twilio's REST API (a local fake's base URL): with it, `TWILIO_ACCOUNT_SID` is set and
    /// later messages go out through it.
    pub twilio_api: Option<String>,
    /// Meta's channel (see `meta.rs`); off by default.
    pub meta: wabot::config::MetaSettings,
    /// The outbound queue's sender (retries after 50 ms here).
    pub outbound: wabot::config::OutboundSettings,
    /// The web console (by default on only when an account exists: off in a fresh database).
    pub console: wabot::config::ConsoleSettings,
    /// Twilio's REST API and account.
    pub twilio: wabot::config::TwilioSettings,
}

/// The account SID tests give Twilio's REST API.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

impl Default for Options {
    fn default() -> Self {
        Options {
            token: Some(TOKEN),
            shared_key: None,
            admin_token: None,
            kb: None,
            corpus: None,
            journal: None,
            max_body_bytes: 64 * 1024,
            db: None,
            pg_url: None,
            mail: wabot::config::MailSettings::default(),
            requests: wabot::config::RequestSettings::default(),
            badges: None,
            limits: wabot::config::LimitSettings::default(),
            twilio_api: None,
            meta: wabot::config::MetaSettings::default(),
            outbound: wabot::config::OutboundSettings {
                retry_initial_ms: 50,
                retry_max_ms: 2000,
                ..wabot::config::OutboundSettings::default()
            },
            console: wabot::config::ConsoleSettings::default(),
            twilio: wabot::config::TwilioSettings::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// With `WABOT_TEST_API_BACKEND=postgres`, a fresh schema on the test server
/// (`WABOT_TEST_POSTGRES_URL`) for each app the test does not give a database: the API
/// suite then runs on PostgreSQL. `None` (SQLite) otherwise.
pub async fn backend_url() -> Option<String> {
    if std::env::var("WABOT_TEST_API_BACKEND").ok().as_deref() != Some("postgres") {
        return None;
    }
    let url = std::env::var("WABOT_TEST_POSTGRES_URL")
        .expect("WABOT_TEST_API_BACKEND=postgres needs WABOT_TEST_POSTGRES_URL");
    Some(wabot::store::postgres::fresh_schema_url(&url, "api").await.expect("the test PostgreSQL server"))
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let pg_url = match (&opts.pg_url, &opts.db) {
        (Some(url), _) => Some(url.clone()),
        (None, None) => backend_url().await,
        (None, Some(_)) => None,
    };
    let (db, dir) = match opts.db {
        Some(db) => (db, None),
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            (dir.path().join("wabot.db"), Some(dir))
        }
    };
    let postgres =
        pg_url.as_ref().map(|u| PostgresSettings { url: SecretString::from(u.clone()), password: None });
    let mut twilio = opts.twilio;
    if let Some(api) = &opts.twilio_api {
        twilio.api_base = api.clone();
        twilio.account_sid = Some(SecretString::from(ACCOUNT_SID.to_owned()));
    }
    let settings = Settings {
        twilio,
        meta: opts.meta,
        outbound: opts.outbound,
        db: db.clone(),
        postgres,
        mail: opts.mail,
        requests: opts.requests,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: Some(PUBLIC_URL.to_owned()),
        twilio_auth_token: opts.token.map(|t| SecretString::from(t.to_owned())),
        twilio_webhook_shared_key: opts.shared_key.map(|t| SecretString::from(t.to_owned())),
        admin_token: opts.admin_token.map(|t| SecretString::from(t.to_owned())),
        max_body_bytes: opts.max_body_bytes,
        limits: opts.limits,
        console: opts.console,
        ..Settings::default()
    };
    // On PostgreSQL without a journal file of the test's: the FAQ's changes go to the
    // database and are followed from the other apps on it, as `wabot serve` does.
    let shared = match (&settings.postgres, &opts.journal) {
        (Some(_), None) => wabot::startup::shared_faq_journal(&settings).await.expect("the FAQ journal"),
        _ => None,
    };
    let options = FaqOptions {
        corpus: opts.corpus,
        journal: opts.journal,
        shared: shared.as_ref().map(|(_, log)| log.clone()),
        ..FaqOptions::default()
    };
    let faq = match opts.kb {
        Some(kb) => Faq::with_knowledge_base(kb, options),
        None => Faq::open(options),
    };
    let faq = Arc::new(faq.expect("the FAQ loads"));
    if let Some((journal, _)) = shared {
        wabot::startup::follow_faq(&settings, Arc::clone(&faq), journal);
    }
    let badges = opts.badges;
    let app = Application::build_with(settings, Arc::clone(&faq), move |_, store, clock, postbox| {
        Ok(badges.map(|build| build(store, clock, postbox)))
    })
    .await
    .expect("the application starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    let store = Arc::clone(app.store());
    let console = app.console_stores().cloned();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        app.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    TestApp {
        addr,
        client: reqwest::Client::new(),
        token: opts.token.map(str::to_owned),
        faq,
        db,
        pg_url,
        store,
        console,
        stop: Some(stop),
        stopped: Some(running),
        _dir: dir,
    }
}

/// A MessageSid no other message of this test run has.
pub fn fresh_sid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("SM{:032x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A webhook form as Twilio sends it for a WhatsApp text message, with a fresh MessageSid.
pub fn whatsapp_form(body: &str) -> WebhookForm {
    whatsapp_form_with(body, &fresh_sid(), "whatsapp:+33612345678")
}

/// A webhook form for `body` from `from` (`whatsapp:+…`) with the given MessageSid.
pub fn whatsapp_form_with(body: &str, sid: &str, from: &str) -> WebhookForm {
    let wa_id = from.trim_start_matches("whatsapp:+");
    let pairs = [
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ProfileName", "Élodie"),
        ("MessageType", "text"),
        ("SmsSid", sid),
        ("WaId", wa_id),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", from),
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
    /// The console's accounts; the app's database must keep them.
    pub fn accounts(&self) -> Arc<dyn wabot::store::Accounts> {
        Arc::clone(&self.console.as_ref().expect("a database with the console's roles").accounts)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Tells the server to shut down, as a signal would, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Rows in a table of the database, read as the CLI would, beside the server.
    pub fn rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        let Some(url) = self.pg_url.clone() else {
            let conn = rusqlite::Connection::open(&self.db).expect("open the database");
            return conn.query_row(&sql, [], |r| r.get(0)).expect("count");
        };
        // On a thread of its own: the caller's runtime cannot be blocked on from inside; and
        // on a multi-threaded runtime, this worker's tasks move elsewhere meanwhile (the
        // connection may go through a task of the test's own, a relay).
        let count = move || {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let store =
                        wabot::store::PostgresStore::open(&url, None).await.expect("open the database");
                    let client = store.pool().get().await.expect("a connection");
                    client.query_one(&sql, &[]).await.expect("count").get::<_, i64>(0)
                })
            })
            .join()
            .expect("counting rows")
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(count)
            }
            _ => count(),
        }
    }

    /// Runs one statement (its SQL valid on SQLite and PostgreSQL alike) beside the server;
    /// the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        let Some(url) = self.pg_url.clone() else {
            let conn = rusqlite::Connection::open(&self.db).expect("open the database");
            conn.busy_timeout(std::time::Duration::from_secs(5)).expect("a busy timeout");
            return u64::try_from(conn.execute(sql, []).expect("the statement")).unwrap_or(0);
        };
        let store = wabot::store::PostgresStore::open(&url, None).await.expect("open the database");
        let client = store.pool().get().await.expect("a connection");
        client.execute(sql, &[]).await.expect("the statement")
    }

    /// Shuts the server down as a signal would, and waits until it has stopped.
    pub async fn stop(mut self) {
        self.begin_stop();
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("the server stops cleanly");
        }
    }

    /// A request to the admin API, with `WABOT_ADMIN_TOKEN`'s bearer token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    /// Posts raw bytes to /bot with the given signature header.
    pub async fn post_raw(&self, body: Vec<u8>, content_type: &str, signature: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = signature.map(|s| ("x-twilio-signature", s)).into_iter().collect();
        self.post_with_headers(body, content_type, &headers).await
    }

    /// Posts raw bytes to /bot with the given headers.
    pub async fn post_with_headers(
        &self,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.client.post(self.url("/bot")).header("content-type", content_type).body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
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
