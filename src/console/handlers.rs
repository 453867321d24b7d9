//! The console's handlers: each reads its form or query, calls the part that does the work
//! (the store, the live FAQ, the dialog) and renders a page of [`views`](super::views).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::views::{self, Page};
use super::{
    ConsoleState, Exchange, MAX_EXCHANGES, Matched, SESSION_COOKIE, SIGN_IN_COOKIE, Signed, client, cookie,
    page_lang, password, refuse, same, set_cookie,
};
use crate::desk::handoff::HandoffError;
use crate::dialog::{Incoming, Outcome};
use crate::domain::{Address, Channel, MailState, TICKET_PLACEHOLDER};
use crate::engine::{FaqEntry, Lang};
use crate::knowledge::faq::FaqError;
use crate::store::{AuditEntry, ConsoleSession, StoreError};

/// How many rows a list shows.
const ROWS_SHOWN: usize = 200;

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn store_failed(e: StoreError) -> Response {
    tracing::error!(error = %e, "console: the store failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "the store failed; see the server's log")
}

async fn audit(st: &ConsoleState, who: &Signed, action: &str, detail: &str) {
    let entry = AuditEntry {
        at_ms: st.clock.now_ms(),
        actor: who.account.email.clone(),
        action: action.to_owned(),
        detail: detail.to_owned(),
    };
    if let Err(e) = st.accounts.audit(entry).await {
        tracing::error!(error = %e, action, "console: cannot write the audit log");
    }
}

fn page<'a>(headers: &HeaderMap, who: &'a Signed, active: &'static str) -> Page<'a> {
    Page { lang: page_lang(headers), who: Some((&who.account, &who.session.csrf)), active }
}

// ---- sign-in ----

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The sign-in form, with a fresh anti-forgery token in a cookie and in the form.
pub(super) async fn sign_in_page(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    sign_in_form(&st, page_lang(&headers), None, StatusCode::OK)
}

fn sign_in_form(st: &ConsoleState, lang: Lang, error: Option<&str>, status: StatusCode) -> Response {
    let Ok(token) = password::token() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let cookie = set_cookie(SIGN_IN_COOKIE, &token, 3600, st.secure_cookie);
    let body = views::sign_in(lang, &token, error);
    (status, [(header::SET_COOKIE, cookie)], Html(body.into_string())).into_response()
}

/// Checks the sign-in token, the throttle and the password; opens a session.
pub(super) async fn sign_in(
    State(st): State<Arc<ConsoleState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let lang = page_lang(&headers);
    if !same(&form.csrf, cookie(&headers, SIGN_IN_COOKIE).unwrap_or("")) {
        return refuse(StatusCode::FORBIDDEN, "the form's anti-forgery token is wrong: reload the page");
    }
    let email = form.email.trim().to_lowercase();
    let now = st.clock.now_ms();
    let window = i64::try_from(st.settings.failure_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let since = now.saturating_sub(window);
    let keys = [format!("account:{email}"), format!("address:{}", client(peer.as_deref()))];
    for key in &keys {
        match st.accounts.sign_in_failures(key, since).await {
            Ok(n) if n >= st.settings.max_failures => {
                tracing::warn!("console: sign-in refused, too many failures");
                let msg = views::t(
                    lang,
                    "Too many failed sign-ins: try again later.",
                    "Trop d'échecs de connexion : réessayez plus tard.",
                );
                return sign_in_form(&st, lang, Some(msg), StatusCode::TOO_MANY_REQUESTS);
            }
            Ok(_) => {}
            Err(e) => return store_failed(e),
        }
    }
    let account = match st.accounts.account(&email).await {
        Ok(a) => a,
        Err(e) => return store_failed(e),
    };
    let hash =
        account.as_ref().map_or_else(|| password::decoy_hash().to_owned(), |a| a.password_hash.clone());
    let pw = form.password;
    let matches = tokio::task::spawn_blocking(move || password::verify(&pw, &hash)).await.unwrap_or(false);
    let Some(account) = account.filter(|_| matches) else {
        for key in &keys {
            if let Err(e) = st.accounts.sign_in_failed(key, now, since).await {
                return store_failed(e);
            }
        }
        tracing::warn!("console: a sign-in failed");
        let msg = views::t(lang, "Wrong e-mail or password.", "E-mail ou mot de passe incorrect.");
        return sign_in_form(&st, lang, Some(msg), StatusCode::UNAUTHORIZED);
    };
    let (Ok(token), Ok(csrf)) = (password::token(), password::token()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let lifetime_secs = st.settings.session_hours * 3600;
    let session = ConsoleSession {
        token_hash: password::token_hash(&token),
        email: account.email.clone(),
        csrf,
        created_ms: now,
        expires_ms: now.saturating_add(i64::try_from(lifetime_secs * 1000).unwrap_or(i64::MAX)),
    };
    if let Err(e) = st.accounts.open_session(session).await {
        return store_failed(e);
    }
    if let Err(e) = st.accounts.clear_sign_in_failures(&keys[0]).await {
        return store_failed(e);
    }
    tracing::info!(role = account.role.as_str(), "console: signed in");
    let mut res = Redirect::to("/console/try").into_response();
    let h = res.headers_mut();
    if let Ok(v) = set_cookie(SESSION_COOKIE, &token, lifetime_secs, st.secure_cookie).parse() {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(SIGN_IN_COOKIE, "", 0, st.secure_cookie).parse() {
        h.append(header::SET_COOKIE, v);
    }
    res
}

/// Closes the session.
pub(super) async fn sign_out(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
) -> Response {
    if let Err(e) = st.accounts.close_session(&who.session.token_hash).await {
        return store_failed(e);
    }
    st.simulations().remove(&who.session.token_hash);
    let mut res = Redirect::to("/console/sign-in").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, st.secure_cookie).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

// ---- try the bot ----

#[derive(Deserialize)]
pub(super) struct TryForm {
    #[serde(default)]
    message: String,
}

/// The simulated conversation.
pub(super) async fn try_page(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    let sim = st.simulations().get(&who.session.token_hash).cloned().unwrap_or_default();
    html(views::try_bot(&page(&headers, &who, "try"), &sim.exchanges))
}

/// One message to the live dialog, as a console-only user whose turn is never stored.
pub(super) async fn try_send(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    Form(form): Form<TryForm>,
) -> Response {
    let text = crate::domain::clean_text(&form.message, 1600);
    if text.trim().is_empty() {
        return Redirect::to("/console/try").into_response();
    }
    let Ok(user) = Address::parse(Channel::Twilio, "console-simulator") else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "simulator address");
    };
    let mut sim = st.simulations().get(&who.session.token_hash).cloned().unwrap_or_default();
    let incoming = Incoming { user, text: text.clone(), profile_name: None };
    let reply = st.dialog.respond(&mut sim.session, &incoming);
    let mut note = None;
    let replies: Vec<String> =
        reply.messages.iter().map(|m| m.replace(TICKET_PLACEHOLDER, "REQ-SIMULATION")).collect();
    if matches!(reply.outcome, Outcome::RequestSubmitted(_)) {
        note = Some("simulated: no request was filed");
    }
    let matched = match reply.outcome {
        Outcome::Answered { .. } | Outcome::Suggested | Outcome::Declined => {
            explain(&st, &text, &reply.outcome)
        }
        _ => None,
    };
    sim.exchanges.push(Exchange { said: text, replies, matched, note });
    if sim.exchanges.len() > MAX_EXCHANGES {
        sim.exchanges.remove(0);
    }
    st.simulations().insert(who.session.token_hash.clone(), sim);
    Redirect::to("/console/try#last").into_response()
}

/// The entry the engine matched for `text`, its score and what contributed.
fn explain(st: &ConsoleState, text: &str, outcome: &Outcome) -> Option<Matched> {
    let engine = st.dialog.engine();
    let best = engine.search(text, 1).into_iter().next()?;
    let x = engine.explain(text, &best);
    let ranked = engine.rank(text, 1).and_then(|r| r.into_iter().next());
    let encoders = ranked.as_ref().map_or_else(Vec::new, |top| {
        engine
            .encoder_names()
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                Some((name.to_string(), *top.evidence.similarity.get(k)?, *top.evidence.z.get(k)?))
            })
            .collect()
    });
    let (entry, score) = match outcome {
        Outcome::Answered { id, score } => (id.clone(), *score),
        _ => (best.entry.id.clone(), best.score),
    };
    Some(Matched {
        entry,
        answered: matches!(outcome, Outcome::Answered { .. }),
        score,
        confidence: ranked.map(|r| r.evidence.confidence),
        terms: x.terms.into_iter().take(8).collect(),
        encoders,
    })
}

/// Starts the simulated conversation again.
pub(super) async fn try_reset(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
) -> Response {
    st.simulations().remove(&who.session.token_hash);
    Redirect::to("/console/try").into_response()
}

// ---- FAQ ----

#[derive(Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    question: String,
}

/// The live entries, filtered by a search.
pub(super) async fn faq_list(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let needle = crate::engine::text::words(&search.q).join(" ");
    let mut entries: Vec<_> = st
        .faq
        .engine()
        .entries()
        .into_iter()
        .filter(|e| {
            needle.is_empty() || {
                let hay =
                    crate::engine::text::words(&format!("{} {} {}", e.id, e.questions.join(" "), e.answer))
                        .join(" ");
                hay.contains(&needle)
            }
        })
        .collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    let total = entries.len();
    entries.truncate(ROWS_SHOWN);
    let confused: Vec<Vec<(String, usize)>> =
        entries.iter().map(|e| st.confused_with(e.topic_key())).collect();
    html(views::faq_list(&page(&headers, &who, "faq"), &search.q, &entries, &confused, total))
}

/// One entry, in its edit form.
pub(super) async fn faq_view(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let found = st.faq.engine().entries().into_iter().find(|e| e.id == id);
    let p = page(&headers, &who, "faq");
    match found {
        Some(e) => {
            let confused = st.confused_with(e.topic_key());
            html(views::faq_edit(&p, &EntryForm::from_entry(&e), false, None, &confused))
        }
        None => (StatusCode::NOT_FOUND, html(views::not_found(&p))).into_response(),
    }
}

/// The form for a new entry, its first question filled in from `question`.
pub(super) async fn faq_new(
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let p = page(&headers, &who, "faq");
    let form = EntryForm {
        questions: search.question.clone(),
        lang: p.lang.code().to_owned(),
        ..EntryForm::default()
    };
    html(views::faq_edit(&p, &form, true, None, &[]))
}

/// An entry as its form holds it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EntryForm {
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) lang: String,
    #[serde(default)]
    pub(super) questions: String,
    #[serde(default)]
    pub(super) answer: String,
    #[serde(default)]
    pub(super) category: String,
    #[serde(default)]
    pub(super) topic: String,
}

impl EntryForm {
    fn from_entry(e: &FaqEntry) -> EntryForm {
        EntryForm {
            id: e.id.clone(),
            lang: e.lang.code().to_owned(),
            questions: e.questions.join("\n"),
            answer: e.answer.clone(),
            category: e.category.clone().unwrap_or_default(),
            topic: e.topic.clone().unwrap_or_default(),
        }
    }

    fn to_entry(&self) -> Result<FaqEntry, String> {
        let lang = match self.lang.as_str() {
            "en" => Lang::En,
            "fr" => Lang::Fr,
            other => return Err(format!("language must be en or fr, got {other:?}")),
        };
        if !crate::engine::valid_id(self.id.trim()) {
            return Err(crate::engine::ID_RULE.to_owned());
        }
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(FaqEntry {
            id: self.id.trim().to_owned(),
            lang,
            questions: self
                .questions
                .lines()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect(),
            answer: self.answer.trim().replace("\r\n", "\n"),
            category: opt(&self.category),
            topic: opt(&self.topic),
        })
    }
}

/// Saves an entry through the live FAQ's journal.
pub(super) async fn faq_save(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(mut form): Form<EntryForm>,
) -> Response {
    form.id = id;
    put_entry(st, who, headers, form, false).await
}

/// Adds an entry.
pub(super) async fn faq_create(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Form(form): Form<EntryForm>,
) -> Response {
    if st.faq.engine().entries().iter().any(|e| e.id == form.id.trim()) {
        let p = page(&headers, &who, "faq");
        let msg = format!("an entry {:?} exists already", form.id.trim());
        return (StatusCode::CONFLICT, html(views::faq_edit(&p, &form, true, Some(&msg), &[])))
            .into_response();
    }
    put_entry(st, who, headers, form, true).await
}

async fn put_entry(
    st: Arc<ConsoleState>,
    who: Signed,
    headers: HeaderMap,
    form: EntryForm,
    new: bool,
) -> Response {
    let p = page(&headers, &who, "faq");
    let entry = match form.to_entry() {
        Ok(e) => e,
        Err(msg) => {
            return (StatusCode::BAD_REQUEST, html(views::faq_edit(&p, &form, new, Some(&msg), &[])))
                .into_response();
        }
    };
    let id = entry.id.clone();
    let faq = Arc::clone(&st.faq);
    let stored = tokio::task::spawn_blocking(move || faq.put(entry)).await;
    match stored {
        Ok(Ok(_)) => {
            st.evaluate();
            audit(&st, &who, if new { "faq.add" } else { "faq.edit" }, &id).await;
            Redirect::to(&format!("/console/faq/{}?saved=1", url_part(&id))).into_response()
        }
        Ok(Err(FaqError::InvalidEntry(e))) => {
            let msg = e.to_string();
            (StatusCode::BAD_REQUEST, html(views::faq_edit(&p, &form, new, Some(&msg), &[]))).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: an FAQ change could not be saved");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the change could not be saved, so it was not applied")
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// Deletes an entry through the journal.
pub(super) async fn faq_delete(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    Path(id): Path<String>,
) -> Response {
    let faq = Arc::clone(&st.faq);
    let key = id.clone();
    match tokio::task::spawn_blocking(move || faq.delete(&key)).await {
        Ok(Ok(Some(_))) => {
            st.evaluate();
            audit(&st, &who, "faq.delete", &id).await;
            Redirect::to("/console/faq").into_response()
        }
        Ok(Ok(None)) => refuse(StatusCode::NOT_FOUND, "no such entry"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: an FAQ deletion could not be saved");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the change could not be saved, so it was not applied")
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// An id as a path segment: ids are ASCII letters, digits and `-_.:`, all safe there.
fn url_part(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

// ---- requests ----

/// The Requests page's filter.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RequestFilter {
    #[serde(default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) from: String,
    #[serde(default)]
    pub(super) to: String,
}

/// Requests, newest first, filtered by type, e-mail status and date.
pub(super) async fn requests_list(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Query(filter): Query<RequestFilter>,
) -> Response {
    let query = crate::store::RequestQuery {
        kind: Some(filter.kind.clone()).filter(|k| !k.is_empty()),
        mail: match filter.status.as_str() {
            "queued" => Some(MailState::Queued),
            "sent" => Some(MailState::Sent),
            "dead" => Some(MailState::Dead),
            _ => None,
        },
        from_ms: day_ms(&filter.from),
        until_ms: day_ms(&filter.to).map(|d| d + 86_400_000),
    };
    let (shown, kinds) =
        match (st.reports.find_requests(&query, ROWS_SHOWN).await, st.reports.request_kinds().await) {
            (Ok(shown), Ok(kinds)) => (shown, kinds),
            (Err(e), _) | (_, Err(e)) => return store_failed(e),
        };
    html(views::requests(&page(&headers, &who, "requests"), &filter, &kinds, &shown))
}

/// `YYYY-MM-DD` as ms since the epoch at 00:00 UTC.
fn day_ms(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// One request and its e-mail.
pub(super) async fn request_view(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Path(ticket): Path<String>,
) -> Response {
    let p = page(&headers, &who, "requests");
    match st.reports.request(&ticket).await {
        Ok(Some(r)) => match st.reports.mail_history(&ticket).await {
            Ok(history) => html(views::request(&p, &r, &history)),
            Err(e) => store_failed(e),
        },
        Ok(None) => (StatusCode::NOT_FOUND, html(views::not_found(&p))).into_response(),
        Err(e) => store_failed(e),
    }
}

/// Queues a request's e-mail again and wakes the outbox worker.
pub(super) async fn request_resend(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    Path(ticket): Path<String>,
) -> Response {
    match st.resend.resend_mail(&ticket, &who.account.email, st.clock.now_ms()).await {
        Ok(true) => {
            st.mail_wakeup.notify_one();
            audit(&st, &who, "request.resend", &ticket).await;
            Redirect::to(&format!("/console/requests/{}", url_part(&ticket))).into_response()
        }
        Ok(false) => refuse(StatusCode::NOT_FOUND, "no such request"),
        Err(e) => store_failed(e),
    }
}

// ---- unanswered, conversations, dashboard ----

/// Declined questions by group.
pub(super) async fn unanswered(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    match st.reports.unanswered(ROWS_SHOWN).await {
        Ok(rows) => html(views::unanswered(&page(&headers, &who, "unanswered"), &rows)),
        Err(e) => store_failed(e),
    }
}

/// Conversations: handed-over ones first, with their waiting time, then recent ones.
pub(super) async fn conversations(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    match st.handoff.transcripts().conversations(ROWS_SHOWN).await {
        Ok(rows) => {
            html(views::conversations(&page(&headers, &who, "conversations"), &rows, st.clock.now_ms()))
        }
        Err(e) => store_failed(e),
    }
}

fn conversation_user(channel: &str, id: &str) -> Option<Address> {
    Address::parse(Channel::parse(channel).ok()?, id).ok()
}

/// One conversation's transcript, with the reply and hand-back forms.
pub(super) async fn conversation(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
    Path((channel, id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Response {
    let p = page(&headers, &who, "conversations");
    let Some(user) = conversation_user(&channel, &id) else {
        return (StatusCode::NOT_FOUND, html(views::not_found(&p))).into_response();
    };
    let t = st.handoff.transcripts();
    let (summary, lines) = match (t.conversation(&user).await, t.transcript(&user, 200).await) {
        (Ok(Some(s)), Ok(l)) => (s, l),
        (Ok(None), _) => return (StatusCode::NOT_FOUND, html(views::not_found(&p))).into_response(),
        (Err(e), _) | (_, Err(e)) => return store_failed(e),
    };
    let now = st.clock.now_ms();
    html(views::conversation(&p, &summary, &lines, now, st.handoff.can_reply(), notice.error.as_deref()))
}

/// A message shown once after a redirect.
#[derive(Deserialize)]
pub(super) struct Notice {
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ReplyForm {
    #[serde(default)]
    reply: String,
}

/// An agent's reply: into the transcript, then handed over for delivery.
pub(super) async fn conversation_reply(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    Path((channel, id)): Path<(String, String)>,
    Form(form): Form<ReplyForm>,
) -> Response {
    let Some(user) = conversation_user(&channel, &id) else {
        return refuse(StatusCode::NOT_FOUND, "no such conversation");
    };
    let back = format!("/console/conversations/{}/{}", user.channel().as_str(), url_part(user.id()));
    let text = crate::domain::clean_text(&form.reply, 1600);
    if text.trim().is_empty() {
        return Redirect::to(&back).into_response();
    }
    match st.handoff.reply(&who.account.email, &user, text.trim()).await {
        Ok(()) => {
            audit(&st, &who, "conversation.reply", &crate::telemetry::mask_sender(user.id())).await;
            Redirect::to(&back).into_response()
        }
        Err(HandoffError::NotFound) => refuse(StatusCode::NOT_FOUND, "no such conversation"),
        Err(HandoffError::Store(e)) => store_failed(e),
        Err(e) => {
            tracing::warn!(error = %e, "console: an agent's reply was not sent");
            let msg: String = url::form_urlencoded::byte_serialize(e.to_string().as_bytes()).collect();
            Redirect::to(&format!("{back}?error={msg}")).into_response()
        }
    }
}

/// Gives the conversation back to the bot.
pub(super) async fn conversation_hand_back(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    Path((channel, id)): Path<(String, String)>,
) -> Response {
    let Some(user) = conversation_user(&channel, &id) else {
        return refuse(StatusCode::NOT_FOUND, "no such conversation");
    };
    match st.handoff.hand_back(&user).await {
        Ok(()) => {
            audit(&st, &who, "conversation.hand_back", &crate::telemetry::mask_sender(user.id())).await;
            Redirect::to("/console/conversations").into_response()
        }
        Err(HandoffError::Store(e)) => store_failed(e),
        Err(e) => {
            tracing::warn!(error = %e, "console: hand-back failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the conversation could not be handed back")
        }
    }
}

/// Figures: turns per day by what the bot did, top topics, the median wait for a person,
/// requests by type.
pub(super) async fn dashboard(
    State(st): State<Arc<ConsoleState>>,
    Extension(who): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    let now = st.clock.now_ms();
    let today = now.div_euclid(86_400_000);
    let since = today - (views::DAYS_SHOWN - 1);
    let figures = st.handoff.figures();
    let month = crate::store::RequestQuery { from_ms: Some(now - 30 * 86_400_000), ..Default::default() };
    let (days, topics, waits, requests, unanswered) = match (
        figures.day_counts(since).await,
        figures.top_topics(since, 8).await,
        figures.reply_waits(now - 30 * 86_400_000).await,
        st.reports.count_requests(&month).await,
        st.reports.unanswered(10).await,
    ) {
        (Ok(d), Ok(t), Ok(w), Ok(r), Ok(u)) => (d, t, w, r, u),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return store_failed(e);
        }
    };
    // Every e-mail the outbox holds, a handover's notice to HR included, not only requests'.
    let mails_waiting = match st.outbox.outbox_depth().await {
        Ok(n) => n,
        Err(e) => return store_failed(e),
    };
    let mut waits = waits;
    waits.sort_unstable();
    let median = waits.get(waits.len() / 2).copied().filter(|_| !waits.is_empty());
    let d = views::Dashboard {
        today,
        days: &days,
        topics: &topics,
        median_wait_ms: median,
        by_kind: &requests,
        mails_waiting,
        unanswered: &unanswered,
        entries: st.faq.engine().len(),
    };
    html(views::dashboard(&page(&headers, &who, "dashboard"), &d))
}

#[cfg(test)]
mod tests {
    use super::day_ms;

    #[test]
    fn a_day_is_read_as_its_utc_midnight() {
        assert_eq!(day_ms("1970-01-01"), Some(0));
        assert_eq!(day_ms("2026-12-06"), Some(1_796_515_200_000));
        assert_eq!(day_ms("2026-13-01"), None);
        assert_eq!(day_ms("yesterday"), None);
    }
}
