//! The real `wabot` binary, killed with SIGKILL: a request it accepted is e-mailed after the
//! restart. And `wabot requests list|show` on the same database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::smtp::{SmtpSink, free_port};
use wabot::channel::twilio::{WebhookForm, compute_signature};

const TOKEN: &str = "process-test-token-0123456789";
const PUBLIC_URL: &str = "https://wabot.example.com";
const USER: &str = "whatsapp:+33611112222";
const WAIT: Duration = Duration::from_secs(20);
const ADMIN_TOKEN: &str = "process-admin-token-0123456789abcdef";

struct Wabot {
    child: Child,
    port: u16,
}

impl Drop for Wabot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wabot(dir: &Path) -> Command {
    wabot_on(dir, dir.join("wabot.db").as_os_str())
}

/// `wabot` with its data in `dir` and its database at `db` (a path or a `postgres://` URL).
fn wabot_on(dir: &Path, db: &std::ffi::OsStr) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wabot"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WABOT_DB", db)
        .env("WABOT_FAQ_JOURNAL", dir.join("faq-journal.jsonl"))
        .env("WABOT_LOG", "info")
        // These tests are about durability; the semantic scorer would embed the FAQ at each start.
        .env("WABOT_SEMANTIC", "off");
    cmd
}

/// Starts `wabot serve` on a free port and waits for `/healthz`.
async fn serve(dir: &Path, smtp_port: u16) -> Wabot {
    serve_on(dir, dir.join("wabot.db").as_os_str(), smtp_port).await
}

/// [`serve`] on the database `db`.
async fn serve_on(dir: &Path, db: &std::ffi::OsStr, smtp_port: u16) -> Wabot {
    let port = free_port();
    let child = wabot_on(dir, db)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .env("WABOT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WABOT_PUBLIC_URL", PUBLIC_URL)
        .env("WABOT_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("WABOT_MAIL_FROM", "wabot@example.org")
        .env("WABOT_MAIL_RETRY_INITIAL_MS", "100")
        .env("WABOT_MAIL_RETRY_MAX_MS", "300")
        // A replica that dies mid-send leaves the e-mail to another after 4 s.
        .env("WABOT_MAIL_TIMEOUT_SECS", "3")
        .env("WABOT_MAIL_LEASE_MS", "4000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wabot");
    let app = Wabot { child, port };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status() == 200
        {
            return app;
        }
        assert!(start.elapsed() < WAIT, "wabot did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static NEXT_SID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Sends one signed WhatsApp message; the first TwiML message of the reply.
async fn say(app: &Wabot, text: &str) -> String {
    let sid = format!("SMproc{:026}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    say_as(app.port, &sid, text).await
}

/// Sends one signed WhatsApp message with the MessageSid `sid` to the server on `port`.
async fn say_as(port: u16, sid: &str, text: &str) -> String {
    let pairs = [("MessageSid", sid), ("From", USER), ("To", "whatsapp:+14155238886"), ("Body", text)];
    let form = WebhookForm::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
    let sig = compute_signature(TOKEN.as_bytes(), &format!("{PUBLIC_URL}/bot"), form.params());
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/bot"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(form.to_body())
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), 200);
    let xml = resp.text().await.expect("body");
    let doc = roxmltree::Document::parse(&xml).expect("TwiML");
    doc.descendants().find(|n| n.has_tag_name("Message")).and_then(|n| n.text()).unwrap_or("").to_owned()
}

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = wabot(dir).args(args).output().expect("run wabot");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test]
async fn a_request_accepted_before_a_sigkill_is_emailed_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port(); // nothing listens there yet: SMTP is down
    let app = serve(dir.path(), smtp_port).await;
    for step in ["request", "1", "Élodie", "Garçon", "skip"] {
        say(&app, step).await;
    }
    let confirmation = say(&app, "yes").await;
    let at = confirmation.find("REQ-").expect("a ticket in the confirmation");
    let ticket = confirmation[at..at + 15].to_owned();

    // Stored, tried, not sent: the moment to die.
    let start = Instant::now();
    loop {
        let shown = cli(dir.path(), &["requests", "show", &ticket]);
        if shown.contains("last error") {
            assert!(shown.contains("queued"), "{shown}");
            break;
        }
        assert!(start.elapsed() < WAIT, "no failed attempt recorded: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut app = app;
    app.child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
    app.child.wait().expect("reaped");

    let sink = SmtpSink::start_on(smtp_port);
    let app = serve(dir.path(), smtp_port).await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].rcpt_tos, ["hr@example.com"]);
    assert!(got[0].header("Subject").starts_with(&format!("[{ticket}]")), "{:?}", got[0].headers);
    assert!(got[0].body.contains("Élodie Garçon"));

    let start = Instant::now();
    loop {
        let shown = cli(dir.path(), &["requests", "show", &ticket]);
        if shown.contains("mail           sent") {
            assert!(!shown.contains("last error"), "{shown}");
            // The history keeps the attempt made before the SIGKILL.
            let history: Vec<&str> = shown.lines().skip_while(|l| !l.starts_with("history")).collect();
            assert!(history.first().is_some_and(|l| l.contains(" failed: ")), "{shown}");
            assert!(history.last().is_some_and(|l| l.ends_with("  sent")), "{shown}");
            break;
        }
        assert!(start.elapsed() < WAIT, "not marked sent: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = cli(dir.path(), &["requests", "list"]);
    assert!(list.starts_with("TICKET"), "{list}");
    assert!(list.contains(&ticket) && list.contains("work-certificate") && list.contains("sent "), "{list}");
    drop(app);
    assert_eq!(sink.messages().len(), 1, "delivered once");

    // The same record as JSON, for scripts.
    let json = cli(dir.path(), &["requests", "show", &ticket, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mail"], "sent");
    assert_eq!(v["first_name"], "Élodie");
}

#[test]
fn requests_commands_explain_a_missing_database_and_an_unknown_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let out = wabot(dir.path()).args(["requests", "list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"), "{out:?}");
    wabot::store::sqlite::SqliteStore::open(&dir.path().join("wabot.db")).unwrap();
    assert_eq!(cli(dir.path(), &["requests", "list"]), "no requests\n");
    let out = wabot(dir.path()).args(["requests", "show", "REQ-2026-000001"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no request REQ-2026-000001"));
}

/// Three `wabot serve` on one PostgreSQL database, as replicas behind a round-robin balancer:
/// a request dialog whose every turn goes to another one, then its confirmation delivered 30
/// times at once across the three → one request, one e-mail, the same reply each time; then
/// an FAQ entry added through one replica's admin API, answered by the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_postgres_carry_one_dialog_and_a_confirmation_raced_thirty_times_files_one_request()
{
    let Some(server) = crate::postgres::test_server() else { return };
    let url = wabot::store::postgres::fresh_schema_url(server.as_str(), "process").await.unwrap();
    let smtp_port = free_port();
    let sink = SmtpSink::start_on(smtp_port);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    for dir in &dirs {
        replicas.push(serve_on(dir.path(), url.as_ref(), smtp_port).await);
    }
    for (i, step) in ["request", "1", "Élodie", "Garçon", "skip"].into_iter().enumerate() {
        let sid = format!("SMrr{:030}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        say_as(replicas[i % 3].port, &sid, step).await;
    }
    let sid = format!("SMrr{:030}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let deliveries: Vec<_> = (0..30)
        .map(|i| {
            let (port, sid) = (ports[i % 3], sid.clone());
            tokio::spawn(async move { say_as(port, &sid, "yes").await })
        })
        .collect();
    let mut replies = Vec::new();
    for d in deliveries {
        replies.push(d.await.unwrap());
    }
    assert!(replies[0].contains("REQ-"), "{}", replies[0]);
    assert!(replies.iter().all(|r| r == &replies[0]), "the same reply each time: {replies:?}");
    let got = sink.wait_for(1, WAIT).await;
    assert!(got[0].body.contains("Élodie Garçon"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.messages().len(), 1, "e-mailed once by the three");
    let list = wabot_on(dirs[0].path(), url.as_ref()).args(["requests", "list", "--json"]).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1, "one request");

    // An FAQ entry added through one replica's admin API is answered by the others.
    const QUESTION: &str = "Where can I charge my electric bicycle at the office?";
    const ANSWER: &str = "Bicycle chargers are in the basement car park, next to bay B12.";
    let entry = serde_json::json!({"lang": "en", "questions": [QUESTION], "answer": ANSWER, "category": "facilities"});
    let put = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/admin/faq/bike-en", ports[0]))
        .bearer_auth(ADMIN_TOKEN)
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let changed = Instant::now();
    for port in &ports[1..] {
        loop {
            let sid = format!("SMrr{:030}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            if say_as(*port, &sid, QUESTION).await == ANSWER {
                break;
            }
            assert!(changed.elapsed() < Duration::from_secs(10), "replica {port} never served the change");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("the other replicas answered with the change within {:?}", changed.elapsed());
}

/// Which of `pids` holds an established TCP connection to 127.0.0.1:`port` (Linux: the
/// sockets of `/proc/net/tcp` matched to each process's file descriptors).
fn connected_to(port: u16, pids: &[u32]) -> Vec<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let remote_port = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
            let inode = f.get(9)?;
            (remote_port == port && *f.get(3)? == "01").then(|| format!("socket:[{inode}]"))
        })
        .collect();
    pids.iter()
        .enumerate()
        .filter(|(_, pid)| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// Three replicas on one PostgreSQL database; the one sending a request's e-mail is
/// SIGKILLed mid-send, with the mail server stuck then down. Another replica takes the
/// e-mail once the dead one's lease has run out, and it reaches the mail server once when
/// the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_send_with_the_mail_server_down_leaves_the_mail_to_another_which_sends_it_once()
{
    let Some(server) = crate::postgres::test_server() else { return };
    let url = wabot::store::postgres::fresh_schema_url(server.as_str(), "killed").await.unwrap();
    let smtp_port = free_port();
    // A mail server that takes the connection and never answers the recipient: the
    // replica sending is stuck mid-send.
    let stuck = SmtpSink::start_with(smtp_port, &["--stall-domain", "example.com"]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    for dir in &dirs {
        replicas.push(serve_on(dir.path(), url.as_ref(), smtp_port).await);
    }
    for (i, step) in ["request", "1", "Élodie", "Garçon", "skip", "yes"].into_iter().enumerate() {
        let sid = format!("SMk{:031}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        say_as(replicas[i % 3].port, &sid, step).await;
    }
    let start = Instant::now();
    let pids: Vec<u32> = replicas.iter().map(|r| r.child.id()).collect();
    let sending = loop {
        let holders = connected_to(smtp_port, &pids);
        if stuck.rcpt_count("example.com") >= 1 && !holders.is_empty() {
            assert_eq!(holders.len(), 1, "one replica sends the e-mail: {holders:?}");
            break holders[0];
        }
        assert!(start.elapsed() < WAIT, "no replica is sending the e-mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut dead = replicas.remove(sending);
    dead.child.kill().expect("SIGKILL");
    dead.child.wait().expect("reaped");
    // Now the mail server is down altogether.
    drop(stuck);
    let killed_at = Instant::now();

    // The others find the e-mail leased to the dead replica, then, once the lease has run
    // out, try it themselves and record that the server is down.
    let db = url.as_ref();
    let ticket = loop {
        let list = wabot_on(dirs[0].path(), db).args(["requests", "list", "--json"]).output().unwrap();
        let line = String::from_utf8_lossy(&list.stdout).lines().next().map(str::to_owned);
        if let Some(line) = line {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["last_error"].is_string() && v["attempts"].as_u64() >= Some(1) {
                break v["ticket"].as_str().unwrap().to_owned();
            }
        }
        assert!(start.elapsed() < WAIT * 2, "no other replica took the e-mail up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(killed_at.elapsed() >= Duration::from_millis(3000), "taken before the lease ran out");

    // The mail server is back: the e-mail is sent, once.
    let sink = SmtpSink::start_on(smtp_port);
    let got = sink.wait_for(1, WAIT).await;
    assert!(got[0].header("Subject").starts_with(&format!("[{ticket}]")), "{:?}", got[0].headers);
    assert!(got[0].body.contains("Élodie Garçon"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.messages().len(), 1, "e-mailed once");
    let shown = wabot_on(dirs[0].path(), db).args(["requests", "show", &ticket]).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("mail           sent"), "{shown:?}");
}

/// `haproxy`, or `None` (skip, with the reason printed) where it is not installed;
/// `WABOT_LB_TESTS=required` (set by `.ci/run`) makes its absence a failure.
fn haproxy() -> Option<std::path::PathBuf> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("WABOT_LB_TESTS").as_deref() != Ok("required"),
            "WABOT_LB_TESTS=required but haproxy is not installed (apt-get install haproxy)"
        );
        eprintln!("the load balancer test is skipped: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

/// The webhook messages a replica handled, from its `/metrics`.
async fn handled(port: u16) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("wabot_messages_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The example configuration `deploy/haproxy.cfg`, as it is, in front of three replicas on
/// one PostgreSQL database: a request dialog through it is spread over the three and files
/// one request, e-mailed once; a replica SIGKILLed is passed over at once (the refused
/// connection tried on another), every message still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_the_example_haproxy_configuration_share_a_dialog_and_survive_one_killed() {
    let Some(server) = crate::postgres::test_server() else { return };
    let Some(haproxy) = haproxy() else { return };
    let url = wabot::store::postgres::fresh_schema_url(server.as_str(), "balanced").await.unwrap();
    let sink = SmtpSink::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    for dir in &dirs {
        replicas.push(serve_on(dir.path(), url.as_ref(), sink.port).await);
    }
    let lb_port = free_port();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let child = Command::new(haproxy)
        .args(["-db", "-f"])
        .arg(&config)
        .env("WABOT_LB_BIND", format!("127.0.0.1:{lb_port}"))
        .env("WABOT_REPLICA_1", format!("127.0.0.1:{}", replicas[0].port))
        .env("WABOT_REPLICA_2", format!("127.0.0.1:{}", replicas[1].port))
        .env("WABOT_REPLICA_3", format!("127.0.0.1:{}", replicas[2].port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let _balancer = Wabot { child, port: lb_port };
    let start = Instant::now();
    while !reqwest::get(format!("http://127.0.0.1:{lb_port}/healthz")).await.is_ok_and(|r| r.status() == 200)
    {
        assert!(start.elapsed() < WAIT, "haproxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut confirmation = String::new();
    for step in ["request", "1", "Élodie", "Garçon", "skip", "yes"] {
        let sid = format!("SMlb{:030}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        confirmation = say_as(lb_port, &sid, step).await;
    }
    assert!(confirmation.contains("REQ-"), "{confirmation}");
    let mut spread = Vec::new();
    for r in &replicas {
        spread.push(handled(r.port).await);
    }
    assert_eq!(spread.iter().sum::<u64>(), 6, "{spread:?}");
    assert!(spread.iter().all(|&n| n == 2), "round robin: every replica took two turns, {spread:?}");
    let got = sink.wait_for(1, WAIT).await;
    assert!(got[0].body.contains("Élodie Garçon"));

    // A replica dies: HAProxy has not noticed yet, yet no message is lost.
    let mut dead = replicas.remove(1);
    dead.child.kill().expect("SIGKILL");
    dead.child.wait().expect("reaped");
    for _ in 0..12 {
        let sid = format!("SMlb{:030}", NEXT_SID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let answer = say_as(lb_port, &sid, "How can I reset my password?").await;
        assert!(answer.to_lowercase().contains("password"), "{answer}");
    }
    let after: u64 = handled(replicas[0].port).await + handled(replicas[1].port).await;
    assert_eq!(after, 4 + 12, "the living replicas answered everything");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.messages().len(), 1, "e-mailed once");
}

#[tokio::test]
async fn a_meta_reply_committed_before_a_sigkill_is_sent_once_after_the_restart() {
    use crate::meta::{APP_SECRET, FakeGraph, PHONE_ID, WA_ID, notification, text_message};
    let dir = tempfile::tempdir().unwrap();
    let graph_port = free_port(); // nothing listens there yet: the Graph API is down
    let start = |dir: &Path| {
        let port = free_port();
        let child = wabot(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("WABOT_META_GRAPH_BASE", format!("http://127.0.0.1:{graph_port}/v23.0"))
            .env("META_PHONE_NUMBER_ID", PHONE_ID)
            .env("META_ACCESS_TOKEN", "EAAG-process")
            .env("META_APP_SECRET", APP_SECRET)
            .env("WABOT_OUTBOUND_RETRY_INITIAL_MS", "100")
            .env("WABOT_OUTBOUND_RETRY_MAX_MS", "300")
            .env("WABOT_OUTBOUND_LEASE_MS", "1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wabot");
        Wabot { child, port }
    };
    let up = |app: &Wabot| {
        let port = app.port;
        async move {
            let start = Instant::now();
            while !reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                assert!(start.elapsed() < WAIT, "wabot did not come up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut app = start(dir.path());
    up(&app).await;
    let body = serde_json::to_vec(&notification(serde_json::json!([text_message("Bonjour")]))).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/meta", app.port))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", wabot::channel::meta::sign(APP_SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "answered once durably queued");
    // Committed and attempted, not sent: the moment to die.
    let db = dir.path().join("wabot.db");
    let started = Instant::now();
    loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let row: Option<(String, i64)> =
            conn.query_row("SELECT state, attempts FROM outbound", [], |r| Ok((r.get(0)?, r.get(1)?))).ok();
        if let Some((state, attempts)) = row
            && attempts >= 1
        {
            assert_eq!(state, "queued");
            break;
        }
        assert!(started.elapsed() < WAIT, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.child.kill().expect("SIGKILL");
    app.child.wait().expect("reaped");

    let graph = FakeGraph::start_on(graph_port).await;
    let app = start(dir.path());
    up(&app).await;
    let sent = graph.wait_for_sent(1).await;
    assert_eq!(sent[0].body["to"], WA_ID);
    assert!(sent[0].body["text"]["body"].as_str().unwrap().starts_with("Bonjour"), "{:?}", sent[0].body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(graph.attempts().len(), 1, "sent once");
    drop(app);
}
