//! The web console at `/console`: the HR team's pages to try the bot, keep the FAQ, follow
//! requests and declined questions, rendered on the server (maud), with one stylesheet and
//! one small script embedded in the binary.
//!
//! | route | what |
//! |---|---|
//! | `GET /console/sign-in`, `POST /console/sign-in` | the sign-in form (**Email**, **Password**, **Sign in**) |
//! | `POST /console/sign-out` | closes the session |
//! | `GET /console/try`, `POST /console/try`, `POST /console/try/reset` | *Try the bot*: a console-only conversation with the live dialog |
//! | `GET /console/faq`, `GET /console/faq/{id}`, `POST /console/faq/{id}`, `POST /console/faq/{id}/delete`, `GET`/`POST /console/faq-new` | the live FAQ, changed through its journal |
//! | `GET /console/requests`, `GET /console/requests/{ticket}`, `POST …/{ticket}/resend` | requests, filtered, one request's e-mail, and sending it again |
//! | `GET /console/unanswered` | declined questions by group, each with **Create an entry** |
//! | `GET /console/conversations`, `GET /console/conversations/{channel}/{id}` | conversations, handed-over ones first, and one's transcript |
//! | `POST …/{channel}/{id}/reply`, `POST …/{channel}/{id}/hand-back` | an agent's reply (**Send reply**) and **Hand back to the bot** |
//! | `GET /console/dashboard` | figures |
//! | `GET /console/assets/*` | the stylesheet and the script |
//!
//! Owns sign-in and sessions: an account signs in with its e-mail and password (argon2id);
//! the server keeps the session in the store ([`Accounts`]) under the SHA-256 of a random
//! 256-bit token, which the browser holds in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when the public URL is https). Every page but sign-in refuses a request
//! without a live session (a redirect to sign-in for a page, 401 for an action), and
//! every form carries the session's anti-forgery token, compared in constant time before
//! the handler runs (403 otherwise); the sign-in form carries a token of its own, held in
//! a short cookie. Sign-ins are throttled per account and per client address. Every page
//! goes out with a Content-Security-Policy allowing only the console's own script and
//! stylesheet, `frame-ancestors 'none'`, `nosniff` and `no-referrer`; whatever an
//! employee typed is escaped by the templates.
//!
//! Must not: decide how the FAQ is stored ([`Faq`]) or how the bot answers ([`Dialog`]).

mod handlers;
pub mod password;
mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use crate::config::ConsoleSettings;
use crate::desk::handoff::HandoffDesk;
use crate::dialog::Dialog;
use crate::domain::{Clock, Session};
use crate::engine::Lang;
use crate::knowledge::faq::Faq;
use crate::store::{Account, Accounts, ConsoleSession, Reports, Resend};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wabot_console";
/// The sign-in form's anti-forgery cookie.
const SIGN_IN_COOKIE: &str = "wabot_sign_in";
/// The largest form the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Exchanges kept per simulated conversation.
const MAX_EXCHANGES: usize = 50;

/// The Content-Security-Policy of every console response.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's pages work with.
pub struct ConsoleState {
    accounts: Arc<dyn Accounts>,
    reports: Arc<dyn Reports>,
    faq: Arc<Faq>,
    dialog: Arc<Dialog>,
    clock: Arc<dyn Clock>,
    settings: ConsoleSettings,
    secure_cookie: bool,
    /// Agents' replies and hand-backs, and the transcripts.
    handoff: HandoffDesk,
    /// Requeues a request's e-mail, and wakes the outbox worker.
    resend: Arc<dyn Resend>,
    /// The e-mails waiting, for the dashboard.
    outbox: Arc<dyn crate::store::Outbox>,
    mail_wakeup: Arc<tokio::sync::Notify>,
    /// The self-evaluation's confusable pairs of topics, recomputed after each FAQ change.
    confusions: Arc<Mutex<Vec<crate::eval::self_check::Confusion>>>,
    /// Each signed-in session's *Try the bot* conversation, by session token hash; never
    /// stored, never a real user's.
    simulations: Mutex<HashMap<String, Simulation>>,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState").field("secure_cookie", &self.secure_cookie).finish()
    }
}

impl ConsoleState {
    /// The console over these parts; `secure_cookie` when the public URL is https.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        accounts: Arc<dyn Accounts>,
        reports: Arc<dyn Reports>,
        faq: Arc<Faq>,
        dialog: Arc<Dialog>,
        clock: Arc<dyn Clock>,
        settings: ConsoleSettings,
        secure_cookie: bool,
        handoff: HandoffDesk,
        mail: (Arc<dyn Resend>, Arc<dyn crate::store::Outbox>, Arc<tokio::sync::Notify>),
    ) -> ConsoleState {
        let state = ConsoleState {
            resend: mail.0,
            outbox: mail.1,
            mail_wakeup: mail.2,
            confusions: Arc::default(),
            handoff,
            accounts,
            reports,
            faq,
            dialog,
            clock,
            settings,
            secure_cookie,
            simulations: Mutex::new(HashMap::new()),
        };
        state.evaluate();
        state
    }

    /// Recomputes the confusable pairs in the background, on a lexical copy of the live
    /// FAQ (holding questions out changes an engine, so never the serving one).
    fn evaluate(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let entries: Vec<crate::engine::FaqEntry> =
            self.faq.engine().entries().iter().map(|e| (**e).clone()).collect();
        let kb = self.faq.knowledge().load_full();
        let params = self.faq.engine().params();
        let out = Arc::clone(&self.confusions);
        runtime.spawn_blocking(move || {
            let engine = crate::engine::Engine::with_params(&entries, kb.lexicon(), params);
            let report = crate::eval::self_check::self_evaluate(&engine);
            *out.lock().unwrap_or_else(|p| p.into_inner()) = report.confusions;
        });
    }

    /// The pairs of topics the self-evaluation found mixed up that involve `topic`: the
    /// other topic and how many held-out questions went astray.
    fn confused_with(&self, topic: &str) -> Vec<(String, usize)> {
        let all = self.confusions.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter_map(|c| {
                if c.a == topic {
                    Some((c.b.clone(), c.count))
                } else if c.b == topic {
                    Some((c.a.clone(), c.count))
                } else {
                    None
                }
            })
            .collect()
    }

    fn simulations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Simulation>> {
        self.simulations.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A *Try the bot* conversation: the dialog's session and what was said.
#[derive(Debug, Default, Clone)]
struct Simulation {
    session: Session,
    exchanges: Vec<Exchange>,
}

/// One message typed in *Try the bot* and the bot's reply, with how it was matched.
#[derive(Debug, Clone)]
struct Exchange {
    said: String,
    replies: Vec<String>,
    matched: Option<Matched>,
    note: Option<&'static str>,
}

/// The entry a simulated answer came from and why.
#[derive(Debug, Clone)]
struct Matched {
    entry: String,
    answered: bool,
    score: f32,
    confidence: Option<f32>,
    /// `(term, query weight, entry weight, contribution)`.
    terms: Vec<(String, f32, f32, f32)>,
    /// `(encoder, similarity, z)`.
    encoders: Vec<(String, f32, f32)>,
}

/// The signed-in account and its session, set by [`require_session`].
#[derive(Debug, Clone)]
struct Signed {
    account: Account,
    session: ConsoleSession,
}

/// The console's routes, under `/console`.
pub fn router(state: Arc<ConsoleState>) -> Router {
    let protected = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/try") }))
        .route("/console/", get(|| async { Redirect::to("/console/try") }))
        .route("/console/sign-out", post(handlers::sign_out))
        .route("/console/try", get(handlers::try_page).post(handlers::try_send))
        .route("/console/try/reset", post(handlers::try_reset))
        .route("/console/faq", get(handlers::faq_list))
        .route("/console/faq-new", get(handlers::faq_new).post(handlers::faq_create))
        .route("/console/faq/{id}", get(handlers::faq_view).post(handlers::faq_save))
        .route("/console/faq/{id}/delete", post(handlers::faq_delete))
        .route("/console/requests", get(handlers::requests_list))
        .route("/console/requests/{ticket}", get(handlers::request_view))
        .route("/console/requests/{ticket}/resend", post(handlers::request_resend))
        .route("/console/unanswered", get(handlers::unanswered))
        .route("/console/conversations", get(handlers::conversations))
        .route("/console/conversations/{channel}/{id}", get(handlers::conversation))
        .route("/console/conversations/{channel}/{id}/reply", post(handlers::conversation_reply))
        .route("/console/conversations/{channel}/{id}/hand-back", post(handlers::conversation_hand_back))
        .route("/console/dashboard", get(handlers::dashboard))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_session));
    Router::new()
        .route("/console/sign-in", get(handlers::sign_in_page).post(handlers::sign_in))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .merge(protected)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/console.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body)
        .into_response()
}

/// Adds the console's security headers to every response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Lets a request through only with a live session, and a form only with its session's
/// anti-forgery token.
async fn require_session(State(st): State<Arc<ConsoleState>>, req: Request, next: Next) -> Response {
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    let signed = match cookie(req.headers(), SESSION_COOKIE) {
        Some(token) => st.accounts.console_session(&password::token_hash(token), st.clock.now_ms()).await,
        None => Ok(None),
    };
    let (session, account) = match signed {
        Ok(Some(found)) => found,
        Ok(None) if reading => return Redirect::to("/console/sign-in").into_response(),
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "sign in first"),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the session");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the session could not be read");
        }
    };
    let mut req = req;
    if !reading {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let sent = form_field(&bytes, "csrf").unwrap_or_default();
        if !same(&sent, &session.csrf) {
            tracing::warn!("console: a form with a wrong anti-forgery token was refused");
            return refuse(StatusCode::FORBIDDEN, "the form's anti-forgery token is wrong: reload the page");
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Signed { account, session });
    next.run(req).await
}

/// A short plain-text refusal.
fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The first value of `name` in an urlencoded form.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The value of the cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's path.
fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
}

/// The page language: French when the browser prefers it, else English.
fn page_lang(headers: &HeaderMap) -> Lang {
    let first = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .unwrap_or("");
    if first.trim().to_ascii_lowercase().starts_with("fr") { Lang::Fr } else { Lang::En }
}

/// The client's address, when the server recorded it.
fn client(req: Option<&ConnectInfo<SocketAddr>>) -> String {
    req.map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}
