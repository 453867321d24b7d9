//! The limits: load shedding, timeout, per-sender rate limit, long bodies, graceful shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wabot::channel::twilio::compute_signature;
use wabot::config::LimitSettings;

use crate::helpers::*;

/// A signed request whose body is only half sent: the server is inside the handler,
/// waiting for the rest, and holds a slot of the concurrency limit.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    async fn start(app: &TestApp, text: &str) -> SlowRequest {
        let form = whatsapp_form(text);
        let sig = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
        let body = form.to_body().into_bytes();
        let head = format!(
            "POST /bot HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Twilio-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.addr,
            body.len()
        );
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..half]).await.unwrap();
        // Let the server parse the head and enter the handler.
        tokio::time::sleep(Duration::from_millis(100)).await;
        SlowRequest { stream, rest: body[half..].to_vec() }
    }

    /// Sends the rest of the body and returns the raw response.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        self.response().await
    }

    async fn response(mut self) -> String {
        let mut out = Vec::new();
        self.stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test]
async fn past_the_concurrency_limit_a_request_is_shed_at_once_with_503_and_retry_after() {
    let limits = LimitSettings { max_in_flight: 1, ..LimitSettings::default() };
    let app = spawn_with(Options { limits, ..Options::default() }).await;
    let slow = SlowRequest::start(&app, "How can I reset my password?").await;

    let started = Instant::now();
    let resp = app
        .client
        .post(app.url("/bot"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Body=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
    assert!(started.elapsed() < Duration::from_secs(1), "shed, not queued: {:?}", started.elapsed());
    let body: serde_json::Value = resp.json().await.expect("the one JSON error shape");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 503, "the limit is server-wide, /metrics included");
    let first = slow.finish().await;
    assert!(first.starts_with("HTTP/1.1 200"), "the request in flight completes: {first}");
    assert!(first.contains("it.example.com/password"), "{first}");
    assert_eq!(app.ask("How can I reset my password?").await.len(), 1, "a slot is free again");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("wabot_unavailable_total{reason=\"overloaded\"} 2"), "{text}");
}

#[tokio::test]
async fn a_request_that_takes_too_long_gets_503_with_retry_after() {
    let limits = LimitSettings { request_timeout_ms: 300, ..LimitSettings::default() };
    let app = spawn_with(Options { limits, ..Options::default() }).await;
    let started = Instant::now();
    let slow = SlowRequest::start(&app, "hi").await;
    let response = slow.response().await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(app.rows("messages"), 0, "nothing was handled");
}

#[tokio::test]
async fn a_sender_over_the_rate_limit_is_asked_to_slow_down_in_their_language_and_nothing_is_stored() {
    let limits = LimitSettings { sender_per_minute: 1, sender_burst: 2, ..LimitSettings::default() };
    let app = spawn_with(Options { limits, ..Options::default() }).await;
    let alice = "whatsapp:+33611111111";
    for _ in 0..2 {
        let answer =
            app.post_signed(&whatsapp_form_with("How can I reset my password?", &fresh_sid(), alice)).await;
        assert!(twiml_messages(&answer.text)[0].contains("it.example.com/password"));
    }
    let answer =
        app.post_signed(&whatsapp_form_with("How can I reset my password?", &fresh_sid(), alice)).await;
    assert_eq!(answer.status, 200, "Twilio must not retry a refused message");
    let messages = twiml_messages(&answer.text);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].starts_with("You are sending messages faster"), "{messages:?}");
    let fr = app
        .post_signed(&whatsapp_form_with("Comment réinitialiser mon mot de passe ?", &fresh_sid(), alice))
        .await;
    assert!(twiml_messages(&fr.text)[0].starts_with("Vous envoyez des messages plus vite"), "{}", fr.text);
    assert_eq!(app.rows("messages"), 2, "refused messages leave no trace");

    let bob = whatsapp_form_with("How can I reset my password?", &fresh_sid(), "whatsapp:+33622222222");
    assert!(twiml_messages(&app.post_signed(&bob).await.text)[0].contains("password"), "others are served");
}

#[tokio::test]
async fn a_body_over_1600_characters_gets_a_polite_reply_and_no_dialog() {
    let app = spawn_app().await;
    let long = "Bonjour, j'ai une question sur mes congés. ".repeat(40);
    assert!(long.chars().count() > 1600);
    let answer = app.post_signed(&whatsapp_form(&long)).await;
    assert_eq!(answer.status, 200);
    let messages = twiml_messages(&answer.text);
    assert!(messages[0].starts_with("Votre message est trop long"), "{messages:?}");
    assert_eq!(app.rows("messages"), 0);
    assert_eq!(app.rows("sessions"), 0);
    let exactly = "a".repeat(1600);
    let messages = app.ask(&exactly).await;
    assert!(!messages[0].contains("too long"), "1,600 characters are fine: {messages:?}");
}

#[tokio::test]
async fn on_shutdown_the_request_in_flight_is_finished_and_committed() {
    let mut app = spawn_app().await;
    let slow = SlowRequest::start(&app, "How can I reset my password?").await;
    app.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = slow.finish().await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("it.example.com/password"), "{response}");
    assert_eq!(app.rows("messages"), 1, "its turn was committed before the reply");
    tokio::time::timeout(Duration::from_secs(5), app.stop()).await.expect("the server stops");
}

/// Reads `stream` until the server closes it (EOF or a reset), at most `within`; what was read.
async fn read_until_closed(mut stream: TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(Ok(_)) => Some(got),
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(got),
        Ok(Err(e)) => panic!("reading a stalled connection: {e}"),
        Err(_) => None,
    }
}

#[tokio::test]
async fn with_two_thousand_stalled_connections_open_healthz_still_answers_and_the_stalled_ones_are_closed_after_the_header_timeout()
 {
    const STALLED: usize = 2000;
    // This process holds both ends of every connection.
    let (_, files) = wabot::server::limits::raise_fd_limit().unwrap();
    assert!(
        files as usize > 2 * STALLED + 256,
        "the open-file hard limit ({files}) is too low for this test"
    );
    let header_timeout = Duration::from_millis(1500);
    let limits = LimitSettings {
        header_read_timeout_ms: header_timeout.as_millis() as u64,
        ..LimitSettings::default()
    };
    let app = spawn_with(Options { limits, ..Options::default() }).await;

    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        // Half send the start of a request and stop; half send nothing at all.
        if i % 2 == 0 {
            stream.write_all(b"POST /bot HTTP/1.1\r\nHost: wabot\r\nContent-Ty").await.unwrap();
        }
        stalled.push(stream);
    }
    println!("{STALLED} stalled connections opened in {:?}", opened.elapsed());

    let asked = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(5), app.client.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answers while the stalled connections are open")
        .unwrap();
    let latency = asked.elapsed();
    println!("/healthz answered in {latency:?} with {STALLED} stalled connections open");
    assert_eq!(health.status(), 200);

    // An idle keep-alive connection is bounded by the same timer.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: wabot\r\n\r\n").await.unwrap();

    // Every stalled socket is closed by the server once the header timeout has passed
    // (counted from its opening), well before a slow machine's margin.
    let margin = header_timeout + Duration::from_secs(10);
    let closing: Vec<_> = stalled.into_iter().map(|s| tokio::spawn(read_until_closed(s, margin))).collect();
    for (i, closed) in closing.into_iter().enumerate() {
        let got = closed.await.unwrap().unwrap_or_else(|| panic!("stalled connection {i} still open"));
        assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{i}");
    }
    println!("all closed {:?} after they were opened", opened.elapsed());
    assert!(opened.elapsed() >= header_timeout, "not before the timeout");
    let answered = read_until_closed(idle, margin).await.expect("the idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200 OK"));
    app.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_place_instead_of_breaking_the_server() {
    let limits =
        LimitSettings { header_read_timeout_ms: 500, max_connections: 4, ..LimitSettings::default() };
    let app = spawn_with(Options { limits, ..Options::default() }).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The fifth is accepted once a stalled one is closed by the header timeout.
    let asked = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(10), app.client.get(app.url("/healthz")).send())
        .await
        .expect("answered once a place is free")
        .unwrap();
    assert_eq!(health.status(), 200);
    println!("/healthz answered after {:?} behind 4 stalled connections", asked.elapsed());
    drop(stalled);
}
