//! Badge photos: the webhook answers at once, the result goes out through a local stand-in
//! for Twilio's REST API, which also serves the media (behind a redirect to a "CDN" on
//! another host) and records every request, headers included.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use image::RgbImage;
use reqwest::Url;
use secrecy::SecretString;
use wabot::channel::twilio::WebhookForm;
use wabot::channel::twilio::media::{MediaFetcher, MediaPolicy};
use wabot::channel::twilio::rest::{RestConfig, RestSender};
use wabot::desk::badge::{BadgeDesk, EXAMPLE_DIRECTORY, FetchMedia};
use wabot::domain::Channel;
use wabot::knowledge::directory::Directory;
use wabot::ocr::{
    BadgeReader, BadgeText, IdExtractor, OcrBadgeReader, OcrEngine, OcrError, OcrPool, TextLine,
};

use crate::helpers::*;

const SID: &str = "AC0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    authorization: Option<String>,
    form: HashMap<String, String>,
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Where media redirects go.
    cdn: Mutex<String>,
    /// The next this many sends fail with a 500.
    failing_sends: AtomicUsize,
}

/// A stand-in for Twilio on 127.0.0.1: the REST API, media paths and a CDN.
struct FakeTwilio {
    addr: SocketAddr,
    rec: Arc<Recorder>,
}

impl FakeTwilio {
    async fn start() -> FakeTwilio {
        let rec = Arc::new(Recorder::default());
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(send))
            .route("/2010-04-01/Accounts/{sid}/Messages/{msg}/Media/{media}", get(media))
            .route("/files/{name}", get(file))
            .with_state(Arc::clone(&rec));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTwilio { addr, rec }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn serve_file(&self, name: &str, content_type: &str, bytes: Vec<u8>) {
        self.rec.files.lock().unwrap().insert(name.to_owned(), (content_type.to_owned(), bytes));
    }

    fn calls(&self) -> Vec<Call> {
        self.rec.calls.lock().unwrap().clone()
    }

    fn sends(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.method == "POST").collect()
    }

    /// Waits for the `n`th message sent through the REST API.
    async fn wait_for_sends(&self, n: usize) -> Vec<Call> {
        for _ in 0..600 {
            let sends = self.sends();
            if sends.len() >= n {
                return sends;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no REST call after 30 s; calls: {:?}", self.calls());
    }
}

fn record(rec: &Recorder, method: &str, path: String, headers: &HeaderMap, form: HashMap<String, String>) {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
    rec.calls.lock().unwrap().push(Call { method: method.into(), path, authorization, form });
}

async fn send(
    State(rec): State<Arc<Recorder>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    record(&rec, "POST", format!("/2010-04-01/Accounts/{sid}/Messages.json"), &headers, form.clone());
    if rec.failing_sends.load(Ordering::SeqCst) > 0 {
        rec.failing_sends.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, r#"{"code": 20500, "message": "Internal Server Error"}"#)
            .into_response();
    }
    if form.get("To").is_some_and(|to| to.contains("+000")) {
        return (StatusCode::BAD_REQUEST, r#"{"code": 21211, "message": "Invalid 'To' Phone Number"}"#)
            .into_response();
    }
    (StatusCode::CREATED, r#"{"sid": "SM1", "status": "queued"}"#).into_response()
}

async fn media(
    State(rec): State<Arc<Recorder>>,
    Path((sid, msg, media)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    record(
        &rec,
        "GET",
        format!("/2010-04-01/Accounts/{sid}/Messages/{msg}/Media/{media}"),
        &headers,
        HashMap::new(),
    );
    let cdn = rec.cdn.lock().unwrap().clone();
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, format!("{cdn}/files/{media}"))]).into_response()
}

async fn file(State(rec): State<Arc<Recorder>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    record(&rec, "GET", format!("/files/{name}"), &headers, HashMap::new());
    match rec.files.lock().unwrap().get(&name) {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct.clone())], bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A reader that says what it is told, after waiting for `gate` if there is one.
struct FakeReader {
    lines: Vec<&'static str>,
    gate: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl BadgeReader for FakeReader {
    fn read_badge(&self, _: &RgbImage) -> Result<BadgeText, OcrError> {
        if let Some(gate) = &self.gate {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        }
        let lines: Vec<TextLine> =
            self.lines.iter().map(|t| TextLine { text: (*t).to_owned(), confidence: 0.9 }).collect();
        Ok(BadgeText { candidates: IdExtractor::default().candidates(&lines), lines, rotation: 0 })
    }
}

fn fake(lines: Vec<&'static str>) -> Arc<dyn BadgeReader> {
    Arc::new(FakeReader { lines, gate: None })
}

/// The desk as `BadgeDesk::build` makes it, pointed at `api` with short retry delays; media
/// may redirect to the CDN `api` redirects to.
fn desk(reader: Arc<dyn BadgeReader>, api: &FakeTwilio, queue: usize) -> Option<BuildDesk> {
    let cdn = Url::parse(&api.rec.cdn.lock().unwrap()).ok();
    let cdn = cdn.and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port()?)));
    desk_redirecting_to(reader, api, queue, cdn.into_iter().collect())
}

/// [`desk`] with media redirects allowed to `redirect_hosts` only.
fn desk_redirecting_to(
    reader: Arc<dyn BadgeReader>,
    api: &FakeTwilio,
    queue: usize,
    redirect_hosts: Vec<String>,
) -> Option<BuildDesk> {
    let base = Url::parse(&api.url("/")).unwrap();
    let token = SecretString::from(TOKEN.to_owned());
    Some(Box::new(move |store, clock, postbox| {
        let mut policy = MediaPolicy::twilio(base.clone(), Some(SID.to_owned()), Some(token.clone()));
        policy.allow_http_loopback = true;
        policy.redirect_hosts = redirect_hosts;
        let directory = Directory::from_csv(EXAMPLE_DIRECTORY.as_bytes(), "example").unwrap();
        let fetcher: Arc<dyn FetchMedia> = Arc::new(MediaFetcher::new(policy).unwrap());
        BadgeDesk::new(
            reader,
            OcrPool::new(1, queue),
            [(Channel::Twilio, fetcher)].into_iter().collect(),
            postbox,
            Arc::new(directory),
            store,
            clock,
        )
    }))
}

/// A WhatsApp message with one attachment.
fn photo_form(url: &str, content_type: &str, from: &str) -> WebhookForm {
    let mut pairs: Vec<(String, String)> =
        whatsapp_form("").params().iter().filter(|(k, _)| k != "NumMedia" && k != "From").cloned().collect();
    pairs.push(("NumMedia".into(), "1".into()));
    pairs.push(("MediaUrl0".into(), url.into()));
    pairs.push(("MediaContentType0".into(), content_type.into()));
    pairs.push(("From".into(), from.into()));
    WebhookForm::from_pairs(pairs)
}

fn media_url(api: &FakeTwilio, media: &str) -> String {
    api.url(&format!("/2010-04-01/Accounts/{SID}/Messages/MM0123456789abcdef0123456789abcdef/Media/{media}"))
}

async fn post_photo(app: &TestApp, url: &str, content_type: &str) -> Vec<String> {
    let answer = app.post_signed(&photo_form(url, content_type, "whatsapp:+33612345678")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    twiml_messages(&answer.text)
}

fn badge_jpeg(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/badges/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Media on the "API host" redirect to a second server standing for the CDN.
async fn api_and_cdn() -> (FakeTwilio, FakeTwilio) {
    let (api, cdn) = (FakeTwilio::start().await, FakeTwilio::start().await);
    *api.rec.cdn.lock().unwrap() = cdn.url("");
    (api, cdn)
}

#[tokio::test]
async fn a_badge_photo_is_answered_at_once_then_identified_by_name_through_the_rest_api() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME1", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = OcrEngine::load_dir(&root.join("models")).unwrap();
    let reader = Arc::new(OcrBadgeReader::new(engine, IdExtractor::default()));
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(reader, &api, 2),
        ..Options::default()
    })
    .await;

    let started = std::time::Instant::now();
    let reply = post_photo(&app, &media_url(&api, "ME1"), "image/jpeg").await;
    assert!(started.elapsed() < Duration::from_secs(2), "the webhook does not wait for OCR");
    assert_eq!(reply, vec!["Reading your badge… I'll reply in a few seconds.".to_owned()]);

    let sends = api.wait_for_sends(1).await;
    let sent = &sends[0];
    assert_eq!(sent.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    assert_eq!(sent.form["To"], "whatsapp:+33612345678");
    assert_eq!(sent.form["From"], "whatsapp:+14155238886");
    assert!(
        sent.form["Body"].contains("Élodie Garçon") && sent.form["Body"].contains("712056"),
        "{:?}",
        sent.form
    );
    let basic = format!("Basic {}", base64_encode(&format!("{SID}:{TOKEN}")));
    assert_eq!(sent.authorization.as_deref(), Some(basic.as_str()));

    let media_get = api.calls().into_iter().find(|c| c.path.contains("/Media/")).unwrap();
    assert_eq!(
        media_get.authorization.as_deref(),
        Some(basic.as_str()),
        "credentials on Twilio's media path"
    );
    let cdn_calls = cdn.calls();
    assert_eq!(cdn_calls.len(), 1);
    assert_eq!(cdn_calls[0].authorization, None, "the redirect to the CDN carries no credentials");

    let user = wabot::channel::twilio::address("whatsapp:+33612345678").unwrap();
    let (session, _) = wabot::desk::decode_session(app.store.session(&user).await.unwrap());
    assert_eq!(session.employee.map(|e| e.email), Some("elodie.garcon@example.com".to_owned()));
    let metrics =
        app.client.get(format!("http://{}/metrics", app.addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wabot_ocr_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("wabot_messages_total{outcome=\"badge\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_media_url_on_another_host_is_never_fetched_with_or_without_credentials() {
    let (api, other) = api_and_cdn().await;
    other.serve_file("ME2", "image/jpeg", badge_jpeg("02-loic.jpg"));
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["Matricule : 21957-B"]), &api, 2),
        ..Options::default()
    })
    .await;
    // Twilio's media path, but on a host that is not the API's (the CDN's, allowed only as a
    // redirect target).
    let forged = other.url(&format!("/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME2"));
    post_photo(&app, &forged, "image/jpeg").await;
    post_photo(&app, &other.url("/files/ME2"), "image/jpeg").await;
    let sends = api.wait_for_sends(2).await;
    assert!(other.calls().is_empty(), "{:?}", other.calls());
    assert!(sends.iter().all(|s| s.form["Body"].contains("couldn't download your photo")), "{sends:?}");
}

/// A loopback listener that must never see a connection.
struct Trap {
    listener: std::net::TcpListener,
}

impl Trap {
    fn new() -> Trap {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Trap { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    fn assert_untouched(&self, what: &str) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{what}: a connection arrived from {from}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test]
async fn media_urls_pointing_elsewhere_are_refused_before_any_connection() {
    let (api, _cdn) = api_and_cdn().await;
    let trap = Trap::new();
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["Matricule : 21957-B"]), &api, 2),
        ..Options::default()
    })
    .await;
    let (port, api_host) = (trap.port(), api.addr.to_string());
    let path = format!("/2010-04-01/Accounts/{SID}/Messages/MM0123456789abcdef0123456789abcdef/Media/ME9");
    let forms = [
        format!("http://user@127.0.0.1:{port}{path}"),
        format!("http://user:pw@{api_host}{path}"),
        format!("http://127.0.0.1:{port}\\@{api_host}{path}"),
        format!("http://{api_host}\\@127.0.0.1:{port}{path}"),
        format!("http://localhost:{port}{path}"),
        format!("http://2130706433:{port}{path}"),
        format!("http://0x7f.0.0.1:{port}{path}"),
        format!("http://0177.0.0.1:{port}{path}"),
        format!("http://[::ffff:127.0.0.1]:{port}{path}"),
        format!("http://[::1]:{port}{path}"),
    ];
    for (n, url) in forms.iter().enumerate() {
        post_photo(&app, url, "image/jpeg").await;
        let sends = api.wait_for_sends(n + 1).await;
        assert!(sends[n].form["Body"].contains("couldn't download your photo"), "{url}: {:?}", sends[n]);
        trap.assert_untouched(url);
    }
    assert!(api.calls().iter().all(|c| !c.path.contains("/Media/")), "{:?}", api.calls());
}

#[tokio::test]
async fn a_redirect_to_a_host_that_is_not_a_media_cdn_is_refused_before_any_connection() {
    let api = FakeTwilio::start().await;
    let trap = Trap::new();
    *api.rec.cdn.lock().unwrap() = format!("http://127.0.0.1:{}", trap.port());
    let allowed = vec!["mms.twiliocdn.com".to_owned()];
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk_redirecting_to(fake(vec!["Matricule : 21957-B"]), &api, 2, allowed),
        ..Options::default()
    })
    .await;
    post_photo(&app, &media_url(&api, "ME12"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].contains("couldn't download your photo"), "{sends:?}");
    assert_eq!(api.calls().iter().filter(|c| c.path.contains("/Media/")).count(), 1, "the API was asked");
    trap.assert_untouched("the redirect");
}

#[tokio::test]
async fn a_redirect_to_an_allowed_name_that_resolves_to_a_private_address_is_refused_before_any_connection() {
    let api = FakeTwilio::start().await;
    let trap = Trap::new();
    // `localhost` is on the allow-list here, and resolves to 127.0.0.1: the resolver refuses it.
    let cdn = format!("localhost:{}", trap.port());
    *api.rec.cdn.lock().unwrap() = format!("http://{cdn}");
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk_redirecting_to(fake(vec!["Matricule : 21957-B"]), &api, 2, vec![cdn]),
        ..Options::default()
    })
    .await;
    post_photo(&app, &media_url(&api, "ME13"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].contains("couldn't download your photo"), "{sends:?}");
    trap.assert_untouched("localhost");
}

#[tokio::test]
async fn a_file_that_is_not_an_image_is_refused_at_once_and_never_downloaded() {
    let (api, cdn) = api_and_cdn().await;
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec![]), &api, 2),
        ..Options::default()
    })
    .await;
    let reply = post_photo(&app, &media_url(&api, "ME3"), "application/pdf").await;
    assert!(reply[0].starts_with("That file isn't a photo"), "{reply:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(api.calls().is_empty() && cdn.calls().is_empty());
}

#[tokio::test]
async fn a_file_declared_as_an_image_but_not_one_gets_a_clear_reply() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME4", "image/jpeg", b"%PDF-1.7 not a photo at all".to_vec());
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["ID: 712056"]), &api, 2),
        ..Options::default()
    })
    .await;
    post_photo(&app, &media_url(&api, "ME4"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].starts_with("I couldn't open that image"), "{sends:?}");
}

#[tokio::test]
async fn an_oversized_file_gets_a_clear_reply() {
    let (api, cdn) = api_and_cdn().await;
    let mut big = badge_jpeg("01-elodie.jpg");
    big.resize(5 * 1024 * 1024 + 1, 0);
    cdn.serve_file("ME5", "image/jpeg", big);
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["ID: 712056"]), &api, 2),
        ..Options::default()
    })
    .await;
    post_photo(&app, &media_url(&api, "ME5"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].starts_with("That file is too large (5 MB at most)"), "{sends:?}");
}

#[tokio::test]
async fn an_unknown_id_and_an_unreadable_badge_get_polite_replies_in_french() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME6", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["Matricule : 999999"]), &api, 2),
        ..Options::default()
    })
    .await;
    app.ask("Bonjour").await;
    post_photo(&app, &media_url(&api, "ME6"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].starts_with("J'ai lu le matricule 999999"), "{sends:?}");

    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME7", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["ACME"]), &api, 2),
        ..Options::default()
    })
    .await;
    post_photo(&app, &media_url(&api, "ME7"), "image/jpeg").await;
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].contains("Tips: put the badge flat"), "{sends:?}");
}

#[tokio::test]
async fn when_the_queue_is_full_the_user_is_told_at_once_to_try_again() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME8", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let (open, gate) = std::sync::mpsc::channel();
    let reader = Arc::new(FakeReader { lines: vec!["ID: 712056"], gate: Some(Mutex::new(gate)) });
    // One worker, no queue: the first photo holds the only place.
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(reader, &api, 0),
        ..Options::default()
    })
    .await;
    let first = post_photo(&app, &media_url(&api, "ME8"), "image/jpeg").await;
    assert!(first[0].starts_with("Reading your badge"));
    let started = std::time::Instant::now();
    let second = post_photo(&app, &media_url(&api, "ME8"), "image/jpeg").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(second[0].starts_with("I'm reading a lot of badges right now"), "{second:?}");
    open.send(()).unwrap();
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].contains("Élodie Garçon"));
}

#[tokio::test]
async fn a_redelivered_photo_gets_the_same_answer_and_is_read_and_answered_once() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME9", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let app = spawn_with(Options {
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["ID: 712056"]), &api, 2),
        ..Options::default()
    })
    .await;
    // Twilio redelivers a webhook it got no answer to in time: same MessageSid, same form.
    let form = photo_form(&media_url(&api, "ME9"), "image/jpeg", "whatsapp:+33612345678");
    let first = app.post_signed(&form).await;
    let again = app.post_signed(&form).await;
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(twiml_messages(&again.text), twiml_messages(&first.text));
    let sends = api.wait_for_sends(1).await;
    assert!(sends[0].form["Body"].contains("Élodie Garçon"), "{sends:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.sends().len(), 1, "one result for one photo");
    let downloads = api.calls().iter().filter(|c| c.path.contains("/Media/")).count();
    assert_eq!(downloads, 1, "downloaded once");
    assert_eq!(app.rows("photo_jobs"), 0, "done once answered");
    // And once more after it was answered: still the first answer, nothing sent.
    let late = app.post_signed(&form).await;
    assert_eq!(twiml_messages(&late.text), twiml_messages(&first.text));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.sends().len(), 1);
}

#[tokio::test]
async fn a_photo_accepted_before_a_stop_is_answered_after_the_restart_and_a_day_old_one_is_dropped() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME10", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    cdn.serve_file("ME11", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wabot.db");

    // The first server accepts the photo, then stops while it is being read.
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let stuck = Arc::new(FakeReader { lines: vec!["ID: 712056"], gate: Some(Mutex::new(gate)) });
    let app = spawn_with(Options {
        db: Some(db.clone()),
        twilio_api: Some(api.url("")),
        badges: desk(stuck, &api, 2),
        ..Options::default()
    })
    .await;
    let reply = post_photo(&app, &media_url(&api, "ME10"), "image/jpeg").await;
    assert!(reply[0].starts_with("Reading your badge"), "{reply:?}");
    assert_eq!(app.rows("photo_jobs"), 1, "the job is stored before the answer");
    app.stop().await;
    drop(open);
    assert_eq!(api.sends().len(), 0);

    // Meanwhile, a photo accepted more than a day ago and never answered.
    let store = wabot::store::SqliteStore::open(&db).unwrap();
    let day_ago = wabot::domain::now_ms() - 25 * 3600 * 1000;
    let old = wabot::store::PhotoJob {
        user: wabot::channel::twilio::address("whatsapp:+33699999999").unwrap(),
        bot: wabot::channel::twilio::address("whatsapp:+14155238886").unwrap(),
        message_id: Some(wabot::domain::MessageId::parse(&fresh_sid()).unwrap()),
        media_url: media_url(&api, "ME11"),
        content_type: Some("image/jpeg".to_owned()),
        lang: wabot::engine::Lang::En,
        created_ms: day_ago,
    };
    store.blocking().enqueue_photo(&old, &["Reading your badge…".to_owned()], 0).unwrap();
    drop(store);

    // The next start resumes the first and drops the other unread.
    let app = spawn_with(Options {
        db: Some(db),
        twilio_api: Some(api.url("")),
        badges: desk(fake(vec!["ID: 712056"]), &api, 2),
        ..Options::default()
    })
    .await;
    let sends = api.wait_for_sends(1).await;
    assert_eq!(sends[0].form["To"], "whatsapp:+33612345678");
    assert!(sends[0].form["Body"].contains("Élodie Garçon"), "{sends:?}");
    for _ in 0..100 {
        if app.rows("photo_jobs") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.rows("photo_jobs"), 0, "both jobs are done");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.sends().len(), 1, "nothing sent for the stale photo");
    assert!(!api.calls().iter().any(|c| c.path.ends_with("/ME11")), "nor downloaded");
    assert!(!cdn.calls().iter().any(|c| c.path.ends_with("/ME11")));
}

/// [`desk`] holding each photo for `lease`.
fn leased(build: Option<BuildDesk>, lease: Duration) -> Option<BuildDesk> {
    let build = build?;
    Some(Box::new(move |store, clock, postbox| build(store, clock, postbox).with_lease(lease)))
}

/// Two servers on one database, as two replicas: the first accepts a photo and hangs
/// reading it (a replica that died holding it, as far as the other can tell). Within the
/// lease the second leaves the photo alone; once it ran out, the second reads it and the
/// employee gets one answer, also when the first finally finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_held_by_a_replica_that_hangs_is_read_by_another_once_its_lease_runs_out_and_answered_once() {
    let (api, cdn) = api_and_cdn().await;
    cdn.serve_file("ME20", "image/jpeg", badge_jpeg("01-elodie.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wabot.db");
    let lease = Duration::from_millis(1500);
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let stuck = Arc::new(FakeReader { lines: vec!["ID: 712056"], gate: Some(Mutex::new(gate)) });
    // No queue: the hung replica has no place to take the photo up again itself.
    let first = spawn_with(Options {
        db: Some(db.clone()),
        twilio_api: Some(api.url("")),
        badges: leased(desk(stuck, &api, 0), lease),
        ..Options::default()
    })
    .await;
    let second = spawn_with(Options {
        db: Some(db.clone()),
        twilio_api: Some(api.url("")),
        badges: leased(desk(fake(vec!["ID: 712056"]), &api, 2), lease),
        ..Options::default()
    })
    .await;
    let accepted = std::time::Instant::now();
    let reply = post_photo(&first, &media_url(&api, "ME20"), "image/jpeg").await;
    assert!(reply[0].starts_with("Reading your badge"), "{reply:?}");

    let sends = api.wait_for_sends(1).await;
    assert!(accepted.elapsed() >= lease, "taken before the lease ran out: {:?}", accepted.elapsed());
    assert_eq!(sends[0].form["To"], "whatsapp:+33612345678");
    assert!(sends[0].form["Body"].contains("Élodie Garçon"), "{sends:?}");
    for _ in 0..100 {
        if second.rows("photo_jobs") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.rows("photo_jobs"), 0, "done once answered");

    // The hung replica finishes reading: it finds the job done and queues nothing.
    drop(open);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(api.sends().len(), 1, "one answer for one photo");
    let downloads = api.calls().iter().filter(|c| c.path.ends_with("/ME20")).count();
    assert_eq!(downloads, 2, "downloaded by each replica that read it");
    drop(first);
}

#[tokio::test]
async fn a_failed_send_is_retried_and_a_refused_one_is_not() {
    let api = FakeTwilio::start().await;
    let base = Url::parse(&api.url("/")).unwrap();
    let mut config = RestConfig::new(base, SID.to_owned(), SecretString::from(TOKEN.to_owned()));
    config.backoff = Duration::from_millis(10);
    config.attempts = 3;
    let sender = RestSender::new(config).unwrap();
    api.rec.failing_sends.store(2, Ordering::SeqCst);
    sender.send("whatsapp:+14155238886", "whatsapp:+33612345678", "hello").await.unwrap();
    assert_eq!(api.sends().len(), 3, "two 500s, then delivered");

    let err = sender.send("whatsapp:+14155238886", "whatsapp:+000", "hello").await.unwrap_err();
    assert_eq!(api.sends().len(), 4, "a 400 is not retried");
    let shown = err.to_string();
    assert!(shown.contains("21211") && shown.contains("Invalid 'To' Phone Number"), "{shown}");
    assert!(!shown.contains(TOKEN));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
