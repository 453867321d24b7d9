//! `wabot-load`: a closed-loop load generator for `POST /bot` (Twilio) or `POST /meta`
//! (Meta's Cloud API) on loopback.
//!
//! Each connection (HTTP/1.1 keep-alive) sends correctly signed Twilio WhatsApp forms — or,
//! with `--channel meta`, Meta notifications signed with `X-Hub-Signature-256` — one after
//! the other: questions of the embedded corpus in both languages plus a few the FAQ
//! cannot answer, a fresh MessageSid each, spread over many senders. It reports throughput,
//! status codes and latency percentiles; with `--rss-pid`, it samples that process's resident
//! memory every `--rss-every` seconds (the soak test) and reports its CPU time per message,
//! which tells runs on machines of different speeds apart. With `--graph-sink PORT` it also
//! answers, on that loopback port, the Graph API calls the server makes to send its queued
//! Meta replies, and counts them. See `scripts/load.sh`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wabot::channel::twilio::{WebhookForm, compute_signature};

/// Which webhook the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// `POST /bot`, Twilio's signed form.
    Twilio,
    /// `POST /meta`, Meta's signed JSON.
    Meta,
}

/// Questions the FAQ declines, so the load is not all answers.
const OFF_TOPIC: &[&str] = &["Who will win the football world cup?", "Quel temps fera-t-il demain ?"];

#[derive(Parser)]
#[command(about = "Signed Twilio or Meta webhook load against a running wabot")]
struct Args {
    /// Address of the server; several (`--addr A --addr B`, or `A,B`) for replicas, the
    /// connections spread over them in turn, as a round-robin balancer would.
    #[arg(long, default_value = "127.0.0.1:5000", value_delimiter = ',', required = true)]
    addr: Vec<std::net::SocketAddr>,
    /// The webhook URL the server signs for (its WABOT_PUBLIC_URL + /bot; every replica's
    /// must be the same).
    #[arg(long)]
    signed_url: Option<String>,
    /// Twilio auth token the server checks signatures with.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true, default_value = "")]
    token: String,
    /// The webhook to load.
    #[arg(long, value_enum, default_value_t = Target::Twilio)]
    channel: Target,
    /// Meta's app secret the server checks signatures with (`--channel meta`).
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true, default_value = "")]
    meta_secret: String,
    /// Answer the server's Graph API calls on this loopback port, and count them.
    #[arg(long)]
    graph_sink: Option<u16>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Distinct senders the messages are spread over.
    #[arg(long, default_value_t = 100_000)]
    senders: u64,
    /// A process whose resident memory is sampled during the run (the server's pid).
    #[arg(long)]
    rss_pid: Option<u32>,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 10)]
    rss_every: u64,
    /// Print every second's latency, not only the three slowest seconds.
    #[arg(long)]
    timeline: bool,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// The second of the run each response came in, beside its latency.
    seconds: Vec<u32>,
    ok: u64,
    unavailable: u64,
    other: u64,
    errors: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(first) = args.addr.first() else { bail!("no --addr") };
    let signed_url = args.signed_url.clone().unwrap_or_else(|| format!("http://{first}/bot"));
    let kb = wabot::knowledge::corpus::KnowledgeBase::embedded().context("loading the embedded corpus")?;
    let mut questions: Vec<String> = kb.entries().iter().flat_map(|e| e.questions.iter().cloned()).collect();
    questions.extend(OFF_TOPIC.iter().map(|q| (*q).to_owned()));
    if questions.is_empty() {
        bail!("no questions in the corpus");
    }
    let questions: Arc<[String]> = questions.into();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = match args.graph_sink {
        Some(port) => Some(graph_sink(port).await?),
        None => None,
    };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.connections);
    for conn in 0..args.connections {
        let job = Job {
            addr: args.addr[conn % args.addr.len()],
            signed_url: signed_url.clone(),
            token: args.token.clone(),
            channel: args.channel,
            meta_secret: args.meta_secret.clone(),
            questions: Arc::clone(&questions),
            senders: args.senders.max(1),
            conn: conn as u64,
            stop: Arc::clone(&stop),
            started,
        };
        tasks.push(tokio::spawn(job.run()));
    }
    let sampler = args.rss_pid.map(|pid| tokio::spawn(sample_rss(pid, args.rss_every, Arc::clone(&stop))));
    let cpu_before = (args.rss_pid.and_then(cpu_seconds), cpu_seconds_of("self"));
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_us.extend(t.latencies_us);
        all.seconds.extend(t.seconds);
        all.ok += t.ok;
        all.unavailable += t.unavailable;
        all.other += t.other;
        all.errors += t.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = Cpu {
        server: args.rss_pid.and_then(cpu_seconds).zip(cpu_before.0).map(|(after, before)| after - before),
        load: cpu_seconds_of("self").zip(cpu_before.1).map(|(after, before)| after - before),
    };
    let rss = match sampler {
        Some(s) => s.await?,
        None => Vec::new(),
    };
    report(&args, &all, elapsed, &rss, &cpu);
    if let Some(sent) = sink {
        // The replies still queued go out after the load: a moment to drain them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "graph api calls answered (replies sent from the queue, read receipts): {}",
            sent.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

/// Answers every request on `127.0.0.1:port` with 200 and a message id, as the Graph API
/// does; the count of requests answered.
async fn graph_sink(port: u16) -> anyhow::Result<Arc<std::sync::atomic::AtomicU64>> {
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.context("binding the graph sink")?;
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    buf.clear();
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if read_more(&mut s, &mut buf).await.is_err() {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        if read_more(&mut s, &mut buf).await.is_err() {
                            return;
                        }
                    }
                    let n = counted.fetch_add(1, Ordering::Relaxed);
                    let body = format!(
                        r#"{{"messaging_product":"whatsapp","messages":[{{"id":"wamid.load.{n}"}}]}}"#
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(count)
}

struct Job {
    addr: std::net::SocketAddr,
    signed_url: String,
    token: String,
    channel: Target,
    meta_secret: String,
    questions: Arc<[String]>,
    senders: u64,
    conn: u64,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Job {
    async fn run(self) -> Tally {
        let mut tally = Tally::default();
        let mut stream: Option<TcpStream> = None;
        let mut buf = Vec::with_capacity(8192);
        let mut n: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let request = self.request(n);
            let s = match stream.as_mut() {
                Some(s) => s,
                None => match TcpStream::connect(self.addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        stream.insert(s)
                    }
                    Err(_) => {
                        tally.errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let t0 = Instant::now();
            match exchange(s, &request, &mut buf).await {
                Ok((status, keep_alive)) => {
                    tally.latencies_us.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    tally.seconds.push(u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX));
                    match status {
                        200 => tally.ok += 1,
                        503 => tally.unavailable += 1,
                        _ => tally.other += 1,
                    }
                    if !keep_alive {
                        stream = None;
                    }
                }
                Err(_) => {
                    tally.errors += 1;
                    stream = None;
                }
            }
        }
        tally
    }

    /// The `n`-th request of this connection: a signed form with a fresh MessageSid, or a
    /// signed Meta notification with a fresh wamid.
    fn request(&self, n: u64) -> Vec<u8> {
        let mix = (self.conn.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let question = &self.questions[(mix % self.questions.len() as u64) as usize];
        if self.channel == Target::Meta {
            return self.meta_request(n, question, (mix >> 17) % self.senders);
        }
        let sender = format!("whatsapp:+336{:08}", (mix >> 17) % self.senders);
        let sid = format!("SM{:016x}{:016x}", self.conn, n);
        let pairs = [
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("ProfileName", "Load"),
            ("MessageType", "text"),
            ("SmsSid", sid.as_str()),
            ("WaId", sender.trim_start_matches("whatsapp:+")),
            ("SmsStatus", "received"),
            ("Body", question.as_str()),
            ("To", "whatsapp:+14155238886"),
            ("NumSegments", "1"),
            ("MessageSid", sid.as_str()),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", sender.as_str()),
            ("ApiVersion", "2010-04-01"),
        ];
        let form =
            WebhookForm::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        let signature = compute_signature(self.token.as_bytes(), &self.signed_url, form.params());
        let body = form.to_body();
        let mut out = format!(
            "POST /bot HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Twilio-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

impl Job {
    fn meta_request(&self, n: u64, question: &str, sender: u64) -> Vec<u8> {
        let wa_id = format!("336{sender:08}");
        let notification = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "WABA", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550001111", "phone_number_id": "1234" },
                "contacts": [{ "profile": { "name": "Load" }, "wa_id": wa_id }],
                "messages": [{ "from": wa_id, "id": format!("wamid.load.{:016x}{n:016x}", self.conn),
                               "timestamp": "1767225600", "type": "text", "text": { "body": question } }]
            }}]}]
        });
        let body = serde_json::to_vec(&notification).unwrap_or_default();
        let signature = wabot::channel::meta::sign(self.meta_secret.as_bytes(), &body);
        let mut out = format!(
            "POST /meta HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// Writes `request`, reads one response; its status and whether the connection stays open.
async fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    s.write_all(request).await?;
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head is not UTF-8"))?;
    let status: u16 =
        head.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| bad("no status in the response"))?;
    let mut length = 0usize;
    let mut keep_alive = true;
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| bad("bad content-length"))?;
            } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                keep_alive = false;
            }
        }
    }
    while buf.len() < head_end + length {
        read_more(s, buf).await?;
    }
    Ok((status, keep_alive))
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// `(seconds since start, RSS in KiB)` every `every` seconds until `stop`.
async fn sample_rss(pid: u32, every: u64, stop: Arc<AtomicBool>) -> Vec<(u64, u64)> {
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        if let Some(kib) = rss_kib(pid) {
            let at = started.elapsed().as_secs();
            println!("rss t={at:>4}s {:>8.1} MiB", kib as f64 / 1024.0);
            samples.push((at, kib));
        }
        for _ in 0..every * 10 {
            if stop.load(Ordering::Relaxed) {
                return samples;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time used during the run, in seconds: the server's and this load generator's.
struct Cpu {
    server: Option<f64>,
    load: Option<f64>,
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_of(&pid.to_string())
}

/// User and system time of a process (`/proc/PID/stat`, fields 14 and 15, in USER_HZ
/// ticks: 100 per second on every Linux architecture), all its threads together.
fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some((user + system) as f64 / 100.0)
}

/// One second of the run.
struct Window {
    second: u32,
    count: usize,
    p99_ms: f64,
    max_ms: f64,
}

/// The run, second by second.
fn per_second(t: &Tally) -> Vec<Window> {
    let mut by_second: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for (s, l) in t.seconds.iter().zip(&t.latencies_us) {
        by_second.entry(*s).or_default().push(*l);
    }
    by_second
        .into_iter()
        .map(|(second, mut lat)| {
            lat.sort_unstable();
            let at = |p: f64| {
                f64::from(lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1]) / 1000.0
            };
            Window { second, count: lat.len(), p99_ms: at(0.99), max_ms: at(1.0) }
        })
        .collect()
}

fn report(args: &Args, t: &Tally, elapsed: f64, rss: &[(u64, u64)], cpu: &Cpu) {
    let mut lat = t.latencies_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let total = t.ok + t.unavailable + t.other;
    println!(
        "{:?}: {} connections to {} server(s), {:.1} s: {} responses, {:.0} msgs/s (200: {}, 503: {}, other: {}, transport errors: {})",
        args.channel,
        args.connections,
        args.addr.len(),
        elapsed,
        total,
        total as f64 / elapsed,
        t.ok,
        t.unavailable,
        t.other,
        t.errors
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        lat.last().map_or(0.0, |m| f64::from(*m) / 1000.0)
    );
    let windows = per_second(t);
    let slow: Vec<&Window> = windows.iter().filter(|w| w.p99_ms > 5.0).collect();
    println!("seconds with a p99 over 5 ms: {} of {}", slow.len(), windows.len());
    let mut worst: Vec<&Window> = windows.iter().collect();
    worst.sort_by(|a, b| b.max_ms.total_cmp(&a.max_ms));
    for w in
        if args.timeline { windows.iter().collect() } else { worst.into_iter().take(3).collect::<Vec<_>>() }
    {
        println!(
            "  t={:>4}s {:>6} responses  p99 {:>6.2} ms  max {:>7.2} ms",
            w.second, w.count, w.p99_ms, w.max_ms
        );
    }
    // CPU per message tells runs on machines of different speeds apart.
    let per_message = |s: f64| s * 1e6 / total.max(1) as f64;
    match (cpu.server, cpu.load) {
        (Some(server), Some(load)) => println!(
            "cpu per message: server {:.0} µs, wabot-load {:.0} µs ({:.0}% and {:.0}% of one core)",
            per_message(server),
            per_message(load),
            server * 100.0 / elapsed,
            load * 100.0 / elapsed
        ),
        (None, Some(load)) => println!(
            "cpu per message: wabot-load {:.0} µs ({:.0}% of one core)",
            per_message(load),
            load * 100.0 / elapsed
        ),
        _ => {}
    }
    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        let max = rss.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "rss MiB: first {:.1}  last {:.1}  max {:.1}  ({} samples)",
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            max as f64 / 1024.0,
            rss.len()
        );
    }
}
