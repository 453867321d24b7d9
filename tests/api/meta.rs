//! Meta's WhatsApp Cloud API channel end to end: signed notifications posted to `/meta`,
//! replies queued and sent to a fake Graph API on loopback that records every call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::{Value, json};
use wabot::channel::meta::sign;
use wabot::config::MetaSettings;

use crate::helpers::*;

pub const APP_SECRET: &str = "test-meta-app-secret";
pub const ACCESS_TOKEN: &str = "EAAG-test-access-token";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PHONE_ID: &str = "106540352242922";
pub const WA_ID: &str = "33612345678";

/// One call the fake Graph API received.
#[derive(Debug, Clone)]
pub struct GraphCall {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct GraphState {
    calls: Mutex<Vec<GraphCall>>,
    /// Statuses (and bodies) the next message sends answer with, before 200s.
    script: Mutex<VecDeque<(u16, String)>>,
    files: Mutex<std::collections::HashMap<String, Vec<u8>>>,
    addr: Mutex<Option<SocketAddr>>,
}

/// A stand-in for Meta's Graph API on 127.0.0.1.
pub struct FakeGraph {
    pub addr: SocketAddr,
    pub state: Arc<GraphState>,
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        FakeGraph::start_on(0).await
    }

    /// On `port` (0: any free one).
    pub async fn start_on(port: u16) -> FakeGraph {
        let state = Arc::new(GraphState::default());
        let app = Router::new()
            .route("/v23.0/{phone}/messages", post(messages))
            .route("/v23.0/{media}", get(media))
            .route("/files/{name}", get(file))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeGraph { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}/v23.0", self.addr)
    }

    /// The channel's settings pointed at this fake.
    pub fn settings(&self) -> MetaSettings {
        let secret = |s: &str| Some(SecretString::from(s.to_owned()));
        MetaSettings {
            graph_base: self.base(),
            phone_number_id: Some(PHONE_ID.to_owned()),
            access_token: secret(ACCESS_TOKEN),
            app_secret: secret(APP_SECRET),
            verify_token: secret(VERIFY_TOKEN),
            ..MetaSettings::default()
        }
    }

    pub fn script(&self, answers: &[(u16, &str)]) {
        let mut s = self.state.script.lock().unwrap();
        s.extend(answers.iter().map(|(status, body)| (*status, (*body).to_owned())));
    }

    pub fn serve_file(&self, name: &str, bytes: Vec<u8>) {
        self.state.files.lock().unwrap().insert(name.to_owned(), bytes);
    }

    pub fn calls(&self) -> Vec<GraphCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The message sends (not the read receipts), answered or not.
    pub fn attempts(&self) -> Vec<GraphCall> {
        self.calls().into_iter().filter(|c| c.method == "POST" && c.body.get("type").is_some()).collect()
    }

    /// The message sends answered with 200.
    pub fn sent(&self) -> Vec<GraphCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.body.get("type").is_some() && c.body["_status"] == 200)
            .collect()
    }

    /// Waits for at least `n` sent messages.
    pub async fn wait_for_sent(&self, n: usize) -> Vec<GraphCall> {
        for _ in 0..300 {
            let sent = self.sent();
            if sent.len() >= n {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} messages not sent after 15 s; calls: {:#?}", self.calls());
    }
}

fn auth(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned())
}

async fn messages(
    State(state): State<Arc<GraphState>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let read_receipt = json.get("status").is_some_and(|s| s == "read");
    let scripted = if read_receipt { None } else { state.script.lock().unwrap().pop_front() };
    let (status, answer) = scripted.unwrap_or_else(|| {
        let n = state.calls.lock().unwrap().iter().filter(|c| c.body.get("type").is_some()).count();
        (200, format!(r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.out.{n}"}}]}}"#))
    });
    if let Value::Object(m) = &mut json {
        m.insert("_status".into(), json!(status));
    }
    let call = GraphCall {
        method: "POST".into(),
        path: format!("/v23.0/{phone}/messages"),
        authorization: auth(&headers),
        body: json,
    };
    state.calls.lock().unwrap().push(call);
    (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, "application/json")], answer)
        .into_response()
}

async fn media(
    State(state): State<Arc<GraphState>>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    let call = GraphCall {
        method: "GET".into(),
        path: format!("/v23.0/{media}"),
        authorization: auth(&headers),
        body: Value::Null,
    };
    state.calls.lock().unwrap().push(call);
    let addr = state.addr.lock().unwrap().unwrap();
    let size = state.files.lock().unwrap().get(&media).map_or(0, Vec::len);
    let body = json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{addr}/files/{media}"),
        "mime_type": "image/jpeg",
        "file_size": size,
        "id": media,
    });
    axum::Json(body).into_response()
}

async fn file(
    State(state): State<Arc<GraphState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let call = GraphCall {
        method: "GET".into(),
        path: format!("/files/{name}"),
        authorization: auth(&headers),
        body: Value::Null,
    };
    state.calls.lock().unwrap().push(call);
    match state.files.lock().unwrap().get(&name) {
        Some(bytes) => ([(header::CONTENT_TYPE, "image/jpeg")], bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A notification carrying `messages` from the test user, as Meta posts it.
pub fn notification(messages: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "WABA-1",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550001111", "phone_number_id": PHONE_ID },
                    "contacts": [{ "profile": { "name": "Élodie" }, "wa_id": WA_ID }],
                    "messages": messages,
                }
            }]
        }]
    })
}

/// A text message with a fresh wamid.
pub fn text_message(body: &str) -> Value {
    json!({ "from": WA_ID, "id": fresh_wamid(), "timestamp": "1767225600", "type": "text", "text": { "body": body } })
}

/// A tap on a list row or a reply button.
pub fn tap(kind: &str, id: &str, title: &str) -> Value {
    json!({
        "from": WA_ID, "id": fresh_wamid(), "timestamp": "1767225600", "type": "interactive",
        "interactive": { "type": kind, kind: { "id": id, "title": title } }
    })
}

pub fn fresh_wamid() -> String {
    format!("wamid.{}", fresh_sid())
}

/// Posts raw bytes to /meta with the given signature header.
pub async fn post_meta(app: &TestApp, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let mut req =
        app.client.post(app.url("/meta")).header("content-type", "application/json").body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Posts `json`, signed as Meta signs it.
pub async fn post_signed(app: &TestApp, json: &Value) -> (u16, String) {
    let body = serde_json::to_vec(json).unwrap();
    post_meta(app, &body, Some(&sign(APP_SECRET.as_bytes(), &body))).await
}

/// Sends one text and waits for the reply sent after it.
async fn say(app: &TestApp, graph: &FakeGraph, text: &str) -> Value {
    let before = graph.sent().len();
    let (status, body) = post_signed(app, &notification(json!([text_message(text)]))).await;
    assert_eq!(status, 200, "{body}");
    graph.wait_for_sent(before + 1).await.pop().unwrap().body
}

async fn meta_app(graph: &FakeGraph) -> TestApp {
    spawn_with(Options { meta: graph.settings(), ..Options::default() }).await
}

#[tokio::test]
async fn metas_verification_echoes_the_challenge_only_with_the_right_token() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let get = |q: String| {
        let c = app.client.clone();
        let url = app.url(&format!("/meta?{q}"));
        async move {
            let r = c.get(url).send().await.unwrap();
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (status, ct, body) =
        get(format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")).await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
    assert!(ct.unwrap().starts_with("text/plain"));
    assert_eq!(get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".into()).await.0, 403);
    assert_eq!(
        get(format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1")).await.0,
        403
    );
    assert_eq!(get("hub.challenge=1".into()).await.0, 403);
}

#[tokio::test]
async fn a_signed_text_is_answered_through_the_graph_api_to_the_senders_wa_id() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let sent = say(&app, &graph, "Bonjour").await;
    assert_eq!(sent["to"], WA_ID);
    assert_eq!(sent["messaging_product"], "whatsapp");
    assert_eq!(sent["type"], "text");
    assert!(sent["text"]["body"].as_str().unwrap().starts_with("Bonjour Élodie"), "{sent}");
    let call = graph.sent().pop().unwrap();
    assert_eq!(call.path, format!("/v23.0/{PHONE_ID}/messages"));
    assert_eq!(call.authorization.as_deref(), Some(format!("Bearer {ACCESS_TOKEN}").as_str()));
    let record = app.store.outbound_record(1).await.unwrap().unwrap();
    assert_eq!(record.provider_message_id.as_deref(), Some("wamid.out.0"), "Meta's id recorded");
}

#[tokio::test]
async fn the_signature_is_checked_over_the_raw_bytes_accents_and_emoji_included() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    // Meta's own bytes: literal UTF-8 in one, \u escapes in the other; each signed as sent.
    let literal =
        serde_json::to_string(&notification(json!([text_message("Où est la cantine ? 🍽️ Merci !")])))
            .unwrap();
    let (status, body) =
        post_meta(&app, literal.as_bytes(), Some(&sign(APP_SECRET.as_bytes(), literal.as_bytes()))).await;
    assert_eq!(status, 200, "{body}");
    let escaped = literal.replace('ù', "\\u00f9").replace("🍽", "\\ud83c\\udf7d");
    assert_ne!(escaped, literal);
    let (status, _) =
        post_meta(&app, escaped.as_bytes(), Some(&sign(APP_SECRET.as_bytes(), literal.as_bytes()))).await;
    assert_eq!(status, 403, "the same JSON in other bytes does not carry the signature");
    graph.wait_for_sent(1).await;
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_and_nothing_is_sent() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let body = serde_json::to_vec(&notification(json!([text_message("Bonjour")]))).unwrap();
    assert_eq!(post_meta(&app, &body, None).await.0, 401);
    assert_eq!(post_meta(&app, &body, Some(&sign(b"another secret", &body))).await.0, 403);
    assert_eq!(post_meta(&app, &body, Some("sha256=00")).await.0, 403);
    assert_eq!(post_meta(&app, b"not json", Some(&sign(APP_SECRET.as_bytes(), b"not json"))).await.0, 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(graph.calls().is_empty(), "{:?}", graph.calls());
    assert_eq!((app.rows("outbound"), app.rows("messages")), (0, 0), "nothing processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_redeliveries_arriving_at_once_get_one_reply() {
    let graph = FakeGraph::start().await;
    let app = Arc::new(meta_app(&graph).await);
    let json = notification(json!([text_message("Bonjour")]));
    let posts: Vec<_> = (0..3)
        .map(|_| {
            let (app, json) = (Arc::clone(&app), json.clone());
            tokio::spawn(async move { post_signed(&app, &json).await.0 })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), 200);
    }
    graph.wait_for_sent(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(graph.attempts().len(), 1, "{:?}", graph.attempts());
    assert_eq!(app.rows("outbound"), 1);
}

#[tokio::test]
async fn status_events_are_counted_and_never_answered() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let mut json = notification(json!([]));
    json["entry"][0]["changes"][0]["value"]["statuses"] = json!([
        { "id": "wamid.out.1", "status": "delivered", "timestamp": "1", "recipient_id": WA_ID },
        { "id": "wamid.out.1", "status": "read", "timestamp": "2", "recipient_id": WA_ID }
    ]);
    let (status, _) = post_signed(&app, &json).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(graph.calls().is_empty());
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wabot_channel_statuses_total{status=\"delivered\"} 1"), "{metrics}");
    assert!(metrics.contains("wabot_channel_statuses_total{status=\"read\"} 1"), "{metrics}");
}

#[tokio::test]
async fn several_messages_in_one_post_are_each_answered_and_an_unknown_kind_politely() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let sticker = json!({ "from": WA_ID, "id": fresh_wamid(), "type": "sticker", "sticker": { "id": "1" } });
    let (status, _) = post_signed(&app, &notification(json!([text_message("hello"), sticker]))).await;
    assert_eq!(status, 200);
    let sent = graph.wait_for_sent(2).await;
    let texts: Vec<&str> = sent.iter().map(|c| c.body["text"]["body"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.starts_with("Hello Élodie")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("I can only read text and photos")), "{texts:?}");
}

#[tokio::test]
async fn a_429_then_a_200_sends_the_message_once() {
    let graph = FakeGraph::start().await;
    graph.script(&[(429, r#"{"error":{"message":"(#130429) Rate limit hit","code":130429}}"#)]);
    let app = meta_app(&graph).await;
    let sent = say(&app, &graph, "Bonjour").await;
    assert!(sent["text"]["body"].as_str().unwrap().starts_with("Bonjour"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = graph.attempts();
    assert_eq!(attempts.len(), 2, "one refused, one accepted: {attempts:?}");
    assert_eq!(graph.sent().len(), 1);
    let record = app.store.outbound_record(1).await.unwrap().unwrap();
    assert_eq!(record.item.attempts, 2);
}

#[tokio::test]
async fn a_message_refused_for_good_is_dropped_with_its_reason() {
    let graph = FakeGraph::start().await;
    graph.script(&[(400, r#"{"error":{"message":"Recipient is not a valid WhatsApp user","code":131026}}"#)]);
    let app = meta_app(&graph).await;
    post_signed(&app, &notification(json!([text_message("Bonjour")]))).await;
    for _ in 0..100 {
        if app.store.outbound_counts().await.unwrap().dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = app.store.outbound_record(1).await.unwrap().unwrap();
    assert_eq!(record.state, wabot::store::OutboundState::Dropped);
    assert!(record.last_error.unwrap().contains("131026"));
    assert_eq!(graph.attempts().len(), 1, "not retried");
}

#[tokio::test]
async fn outside_the_24_hour_window_the_configured_template_is_sent_not_free_text() {
    let graph = FakeGraph::start().await;
    let mut settings = graph.settings();
    settings.templates.insert(
        "notice".into(),
        wabot::config::meta::MetaTemplate { name: "wabot_notice".into(), language: "fr".into() },
    );
    let app = spawn_with(Options { meta: settings, ..Options::default() }).await;
    let user = wabot::channel::meta::address(WA_ID).unwrap();
    let day_ago = wabot::domain::now_ms() - 25 * 3600 * 1000;
    app.store.record_inbound(&user, day_ago).await.unwrap();
    let message = |template: Option<&str>| wabot::store::NewOutbound {
        to: user.clone(),
        from: None,
        payload: wabot::domain::Outgoing {
            template: template.map(str::to_owned),
            ..wabot::domain::Outgoing::text("Votre demande REQ-2026-000001 a été envoyée aux RH.")
        }
        .to_json(),
    };
    let ids = app
        .store
        .queue_outbound(vec![message(Some("notice")), message(None)], wabot::domain::now_ms())
        .await
        .unwrap();
    let sent = graph.wait_for_sent(1).await;
    assert_eq!(sent[0].body["type"], "template", "{:?}", sent[0].body);
    assert_eq!(sent[0].body["template"]["name"], "wabot_notice");
    assert_eq!(sent[0].body["template"]["language"]["code"], "fr");
    for _ in 0..100 {
        if app.store.outbound_counts().await.unwrap().dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped = app.store.outbound_record(ids[1]).await.unwrap().unwrap();
    assert!(dropped.last_error.unwrap().contains("24-hour window"), "the reason is recorded");
    assert_eq!(graph.attempts().len(), 1, "no free text was attempted");
}

/// A reader that reads what it is told.
struct SaysId(&'static str);

impl wabot::ocr::BadgeReader for SaysId {
    fn read_badge(&self, _: &image::RgbImage) -> Result<wabot::ocr::BadgeText, wabot::ocr::OcrError> {
        let lines = vec![wabot::ocr::TextLine { text: self.0.to_owned(), confidence: 0.9 }];
        let candidates = wabot::ocr::IdExtractor::default().candidates(&lines);
        Ok(wabot::ocr::BadgeText { candidates, lines, rotation: 0 })
    }
}

#[tokio::test]
async fn a_photo_is_looked_up_with_the_bearer_token_downloaded_and_answered_with_the_badge_result() {
    use wabot::desk::badge::{BadgeDesk, EXAMPLE_DIRECTORY, FetchMedia};
    let graph = FakeGraph::start().await;
    let jpeg =
        std::fs::read(format!("{}/tests/data/badges/01-elodie.jpg", env!("CARGO_MANIFEST_DIR"))).unwrap();
    graph.serve_file("MEDIA1", jpeg);
    let settings = graph.settings();
    let client = wabot::channel::meta::graph::GraphClient::new(&settings).unwrap().unwrap();
    let build: BuildDesk = Box::new(move |store, clock, postbox| {
        let fetcher: Arc<dyn FetchMedia> = Arc::new(wabot::channel::meta::media::MetaMedia::new(client));
        let directory =
            wabot::knowledge::directory::Directory::from_csv(EXAMPLE_DIRECTORY.as_bytes(), "example")
                .unwrap();
        BadgeDesk::new(
            Arc::new(SaysId("ID: 712056")),
            wabot::ocr::OcrPool::new(1, 2),
            [(wabot::domain::Channel::Meta, fetcher)].into_iter().collect(),
            postbox,
            Arc::new(directory),
            store,
            clock,
        )
    });
    let app = spawn_with(Options { meta: settings, badges: Some(build), ..Options::default() }).await;
    let photo = json!({
        "from": WA_ID, "id": fresh_wamid(), "type": "image",
        "image": { "id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x", "caption": "mon badge" }
    });
    let (status, _) = post_signed(&app, &notification(json!([photo]))).await;
    assert_eq!(status, 200);
    let sent = graph.wait_for_sent(2).await;
    let texts: Vec<&str> = sent.iter().map(|c| c.body["text"]["body"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.starts_with("Reading your badge")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("Élodie Garçon") && t.contains("712056")), "{texts:?}");
    let bearer = format!("Bearer {ACCESS_TOKEN}");
    let lookup = graph.calls().into_iter().find(|c| c.path == "/v23.0/MEDIA1").expect("the media looked up");
    assert_eq!(lookup.authorization.as_deref(), Some(bearer.as_str()));
    let download = graph.calls().into_iter().find(|c| c.path == "/files/MEDIA1").expect("downloaded");
    assert_eq!(download.authorization.as_deref(), Some(bearer.as_str()));
}

/// Posts `message` (signed) and returns what was sent after it, once sends settle.
async fn exchange(app: &TestApp, graph: &FakeGraph, message: Value) -> Vec<Value> {
    let before = graph.sent().len();
    let (status, body) = post_signed(app, &notification(json!([message]))).await;
    assert_eq!(status, 200, "{body}");
    graph.wait_for_sent(before + 1).await;
    let mut seen = graph.sent().len();
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = graph.sent().len();
        if now == seen {
            break;
        }
        seen = now;
    }
    graph.sent().into_iter().skip(before).map(|c| c.body).collect()
}

fn rows(list: &Value) -> Vec<(String, String)> {
    assert_eq!(list["type"], "interactive", "{list}");
    assert_eq!(list["interactive"]["type"], "list", "{list}");
    list["interactive"]["action"]["sections"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r["title"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_menu_is_a_list_of_at_most_ten_rows_and_list_replies_drive_the_dialog() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let menu = exchange(&app, &graph, text_message("menu")).await;
    let all: Vec<(String, String)> = menu.iter().flat_map(rows).collect();
    assert!(menu.iter().all(|l| rows(l).len() <= 10), "{menu:?}");
    assert!(all.len() > 10, "the whole menu, over several lists: {all:?}");
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        ids[..ids.len() - 1].iter().all(|id| id.starts_with("cat:")),
        "rows name their category: {ids:?}"
    );
    assert_eq!(ids.last(), Some(&"request"), "the last row starts the request form");
    // A row tapped opens its category, as a list of questions.
    let category = exchange(&app, &graph, tap("list_reply", &all[0].0, &all[0].1)).await;
    let questions = rows(&category[0]);
    assert!(!questions.is_empty() && questions.len() <= 10, "{category:?}");
    assert!(questions.iter().all(|(_, title)| title.chars().count() <= 24), "{questions:?}");
    // And a question tapped is answered.
    let answer = exchange(&app, &graph, tap("list_reply", &questions[0].0, &questions[0].1)).await;
    assert_eq!(answer[0]["type"], "text", "{answer:?}");
    let body = answer[0]["text"]["body"].as_str().unwrap().to_owned();
    assert!(body.len() > 20);
    // Typed numbers still work the same.
    exchange(&app, &graph, text_message("menu")).await;
    let typed = exchange(&app, &graph, text_message("1")).await;
    assert_eq!(rows(&typed[0]), questions);
    // A row of a list sent earlier, tapped after the user moved on, opens what it said.
    exchange(&app, &graph, tap("list_reply", &all[1].0, &all[1].1)).await;
    let stale = exchange(&app, &graph, tap("list_reply", &questions[0].0, &questions[0].1)).await;
    assert_eq!(stale[0]["text"]["body"].as_str(), Some(body.as_str()), "{stale:?}");
}

#[tokio::test]
async fn the_request_form_is_done_by_taps_and_ends_in_one_email() {
    use wabot::desk::badge::{BadgeDesk, EXAMPLE_DIRECTORY, FetchMedia};
    let sink = crate::smtp::SmtpSink::start();
    let graph = FakeGraph::start().await;
    let jpeg =
        std::fs::read(format!("{}/tests/data/badges/01-elodie.jpg", env!("CARGO_MANIFEST_DIR"))).unwrap();
    graph.serve_file("MEDIA2", jpeg);
    let settings = graph.settings();
    let client = wabot::channel::meta::graph::GraphClient::new(&settings).unwrap().unwrap();
    let build: BuildDesk = Box::new(move |store, clock, postbox| {
        let fetcher: Arc<dyn FetchMedia> = Arc::new(wabot::channel::meta::media::MetaMedia::new(client));
        let directory =
            wabot::knowledge::directory::Directory::from_csv(EXAMPLE_DIRECTORY.as_bytes(), "example")
                .unwrap();
        BadgeDesk::new(
            Arc::new(SaysId("ID: 712056")),
            wabot::ocr::OcrPool::new(1, 2),
            [(wabot::domain::Channel::Meta, fetcher)].into_iter().collect(),
            postbox,
            Arc::new(directory),
            store,
            clock,
        )
    });
    let mail = wabot::config::MailSettings {
        smtp_url: Some(SecretString::from(sink.url())),
        from: "Helpdesk bot <wabot@example.org>".into(),
        retry_initial_ms: 100,
        retry_max_ms: 400,
        timeout_secs: 5,
        ..wabot::config::MailSettings::default()
    };
    let app = spawn_with(Options { meta: settings, badges: Some(build), mail, ..Options::default() }).await;
    // Identified by a photo of the badge: no name to type.
    let photo = json!({ "from": WA_ID, "id": fresh_wamid(), "type": "image", "image": { "id": "MEDIA2", "mime_type": "image/jpeg" } });
    let said = exchange(&app, &graph, photo).await;
    if !said.iter().any(|m| m["text"]["body"].as_str().is_some_and(|t| t.contains("712056"))) {
        graph.wait_for_sent(2).await;
    }
    let menu = exchange(&app, &graph, text_message("menu")).await;
    let all: Vec<(String, String)> = menu.iter().flat_map(rows).collect();
    let (request_row, _) = all.last().unwrap().clone();
    let types = exchange(&app, &graph, tap("list_reply", &request_row, "Administrative request")).await;
    let kinds = rows(&types[0]);
    assert!(kinds[0].1.starts_with("Work certificate"), "{kinds:?}");
    let details = exchange(&app, &graph, tap("list_reply", &kinds[0].0, &kinds[0].1)).await;
    let skip = &details[0]["interactive"];
    assert_eq!(skip["type"], "button", "{details:?}");
    let skip_id = skip["action"]["buttons"][0]["reply"]["id"].as_str().unwrap().to_owned();
    let summary = exchange(&app, &graph, tap("button_reply", &skip_id, "Skip")).await;
    let buttons = summary[0]["interactive"]["action"]["buttons"].as_array().unwrap().clone();
    assert_eq!(buttons.len(), 2, "{summary:?}");
    assert!(buttons.iter().all(|b| b["reply"]["title"].as_str().unwrap().chars().count() <= 20));
    let yes = buttons[0]["reply"]["id"].as_str().unwrap().to_owned();
    let done = exchange(&app, &graph, tap("button_reply", &yes, "Yes, send it")).await;
    let confirmation = done[0]["text"]["body"].as_str().unwrap();
    assert!(confirmation.contains("REQ-"), "{confirmation}");
    let got = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0].rcpt_tos, ["hr@example.com"]);
    assert!(got[0].body.contains("712056"), "the identified employee: {}", got[0].body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "one e-mail");
}

#[tokio::test]
async fn a_redelivered_message_of_a_kind_the_bot_cannot_read_is_answered_once() {
    let graph = FakeGraph::start().await;
    let app = meta_app(&graph).await;
    let voice = json!({ "from": WA_ID, "id": fresh_wamid(), "type": "audio", "audio": { "id": "A1" } });
    let json = notification(json!([voice]));
    assert_eq!(post_signed(&app, &json).await.0, 200);
    assert_eq!(post_signed(&app, &json).await.0, 200);
    let sent = graph.wait_for_sent(1).await;
    assert!(sent[0].body["text"]["body"].as_str().unwrap().contains("only read text and photos"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(graph.attempts().len(), 1);
}
