//! The server on PostgreSQL when the database goes away and comes back: the webhook answers
//! 503 with nothing written, `/healthz` says so, and the pool reconnects once it is back.
//! Skipped (with the reason printed) without `WABOT_TEST_POSTGRES_URL`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::helpers::*;

/// A TCP relay to the test PostgreSQL server that can be cut: every connection through it
/// dropped, new ones refused, as when the database restarts or the network fails.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let cut = Arc::clone(&cut2);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The test PostgreSQL server, or `None` (skip) with the reason printed.
pub fn test_server() -> Option<url::Url> {
    match std::env::var("WABOT_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(u) => Some(url::Url::parse(&u).expect("WABOT_TEST_POSTGRES_URL is a URL")),
        None if std::env::var("WABOT_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("WABOT_TEST_POSTGRES_REQUIRED=1 but WABOT_TEST_POSTGRES_URL is not set")
        }
        None => {
            eprintln!("PostgreSQL skipped: WABOT_TEST_POSTGRES_URL is not set (.ci/run sets it)");
            None
        }
    }
}

// Several threads: the relay keeps running while `rows` blocks one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_the_webhook_answers_503_and_writes_nothing_then_recovers() {
    // A fault test must fail, not hang, if a connection is stuck.
    let within = std::time::Duration::from_secs(60);
    tokio::time::timeout(within, database_gone_and_back())
        .await
        .expect("the fault test finished within a minute");
}

/// A server on a fresh schema of the test PostgreSQL server, reached through a [`Relay`];
/// `None` (skip) without a test server.
async fn behind_a_relay(prefix: &str) -> Option<(TestApp, Relay)> {
    let server = test_server()?;
    let target: SocketAddr = format!("{}:{}", server.host_str().unwrap(), server.port().unwrap_or(5432))
        .parse()
        .expect("the test server is at an IP address");
    let relay = Relay::start(target).await;
    let mut through = server.clone();
    through.set_port(Some(relay.addr.port())).unwrap();
    let url = wabot::store::postgres::fresh_schema_url(through.as_str(), prefix).await.unwrap();
    let app = spawn_with(Options { pg_url: Some(url), ..Options::default() }).await;
    Some((app, relay))
}

async fn database_gone_and_back() {
    let Some((app, relay)) = behind_a_relay("fault").await else { return };
    assert_eq!(app.ask("How can I reset my password?").await.len(), 1);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    relay.down();
    let form = whatsapp_form("How can I reset my password?");
    let refused = app.post_signed(&form).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");

    relay.restore();
    // The same message again, as the provider retries it: handled now, as a first delivery.
    let answered = app.post_signed(&form).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert!(twiml_messages(&answered.text)[0].contains("password"), "{}", answered.text);
    assert_eq!(app.rows("messages"), 2, "the refused delivery left no claim");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

/// The database restarting under load: 16 employees fill in a request form at once while
/// every connection to PostgreSQL is dropped and new ones refused for a second, twice. Each
/// webhook either commits its turn or answers 503 and writes nothing; the provider's retry
/// (the same MessageSid) is then handled as a first delivery. In the end: one request per
/// employee, each with its e-mail queued, tickets without a gap, one claim per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarting_under_load_leaves_every_turn_committed_or_refused_and_none_half_written() {
    let within = std::time::Duration::from_secs(120);
    tokio::time::timeout(within, restart_under_load())
        .await
        .expect("the fault test finished within two minutes");
}

async fn restart_under_load() {
    let Some((app, relay)) = behind_a_relay("restart").await else { return };
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let delivered = std::sync::atomic::AtomicUsize::new(0);

    // One employee's form, each message redelivered (same MessageSid) until it is answered.
    let employee = |n: usize| {
        let (app, refused, delivered) = (&app, &refused, &delivered);
        async move {
            let from = format!("whatsapp:+336700000{n:02}");
            let mut last = String::new();
            for step in ["request", "1", "Élodie", "Garçon", "skip", "yes", "How can I reset my password?"]
            {
                let form = whatsapp_form_with(step, &fresh_sid(), &from);
                loop {
                    let answer = app.post_signed(&form).await;
                    delivered.fetch_add(1, Ordering::SeqCst);
                    match answer.status {
                        200 => {
                            last = twiml_messages(&answer.text).join("\n");
                            break;
                        }
                        503 => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        other => panic!("{other}: {}", answer.text),
                    }
                }
                if step == "yes" {
                    assert!(last.contains("REQ-"), "the confirmation names the ticket: {last}");
                }
            }
            last
        }
    };
    let cuts = async {
        for _ in 0..2 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            relay.down();
            tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
            let health = app.client.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(health.status(), 503, "healthz reports the database down");
            relay.restore();
        }
    };
    let (lasts, ()) = tokio::join!(futures_util::future::join_all((0..16).map(employee)), cuts);
    assert!(lasts.iter().all(|l| l.contains("password")), "every form finished: {lasts:?}");
    let refused = refused.load(Ordering::SeqCst);
    assert!(refused > 0, "the outages fell during the load");
    eprintln!("{} deliveries, {refused} answered 503 and retried", delivered.load(Ordering::SeqCst));

    assert_eq!(app.rows("requests"), 16, "one request per employee, none twice, none lost");
    assert_eq!(app.rows("outbox"), 16, "each request's e-mail queued with it");
    assert_eq!(app.rows("messages"), 16 * 7, "one claim per message, none for a refused delivery");
    let store = wabot::store::PostgresStore::open(app.pg_url.as_deref().unwrap(), None).await.unwrap();
    let tickets: Vec<String> =
        wabot::store::Reports::requests(&store, 100).await.unwrap().into_iter().map(|r| r.ticket).collect();
    let mut numbers: Vec<u32> = tickets.iter().map(|t| t[9..].parse().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<u32>>(), "tickets without a gap: {tickets:?}");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the pool reconnected");
    app.stop().await;
}

/// Two apps on one fresh schema, as two replicas; `None` without a test server.
async fn two_replicas() -> Option<(TestApp, TestApp, String)> {
    let server = test_server()?;
    let url = wabot::store::postgres::fresh_schema_url(server.as_str(), "replicas").await.unwrap();
    let replica = |url: &str| Options {
        pg_url: Some(url.to_owned()),
        admin_token: Some(ADMIN_TOKEN),
        ..Options::default()
    };
    let a = spawn_with(replica(&url)).await;
    let b = spawn_with(replica(&url)).await;
    Some((a, b, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_faq_change_made_on_one_replica_is_answered_by_another_within_seconds_and_after_a_restart() {
    let within = std::time::Duration::from_secs(60);
    tokio::time::timeout(within, faq_change_across_replicas()).await.expect("finished within a minute");
}

async fn faq_change_across_replicas() {
    const QUESTION: &str = "Where can I charge my electric bicycle at the office?";
    const ANSWER: &str = "Bicycle chargers are in the basement car park, next to bay B12.";
    let Some((a, b, url)) = two_replicas().await else { return };
    assert!(!b.ask(QUESTION).await.concat().contains("B12"));
    let entry = serde_json::json!({"lang": "en", "questions": [QUESTION], "answer": ANSWER, "category": "facilities"});
    let put = a.admin(reqwest::Method::PUT, "/admin/faq/bike-en").json(&entry).send().await.unwrap();
    assert_eq!(put.status(), 201);
    assert_eq!(a.ask(QUESTION).await, [ANSWER], "served at once where it was made");
    let started = std::time::Instant::now();
    while b.ask(QUESTION).await != [ANSWER] {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the other replica never served it");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    println!("the other replica answered with the change after {:?}", started.elapsed());

    let deleted = b.admin(reqwest::Method::DELETE, "/admin/faq/bike-en").send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let started = std::time::Instant::now();
    while a.faq.engine().entry("bike-en").is_some() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the deletion never reached the first"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A replica started later replays the journal: put, then delete.
    let c = spawn_with(Options { pg_url: Some(url), ..Options::default() }).await;
    assert!(c.faq.engine().entry("bike-en").is_none());
    assert_eq!(c.faq.followed(), 2);
}
