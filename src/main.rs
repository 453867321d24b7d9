//! The `wabot` command: parses the command line and calls the library.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use wabot::badge::BadgeDesk;
use wabot::config::Settings;
use wabot::corpus::KnowledgeBase;
use wabot::dialog::Dialog;
use wabot::engine::{Engine, EngineParams, Match};
use wabot::faq::{self, Faq, FaqOptions};
use wabot::server::Server;
use wabot::store::MemoryStore;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Self-hosted WhatsApp assistant for an employee helpdesk.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, env = "WABOT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Twilio WhatsApp webhook server (POST /bot).
    Serve {
        /// Address to listen on [default: 127.0.0.1:5000].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Corpus directory or file [default: the embedded corpus].
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Log lines as `human` text or `json` objects [default: WABOT_LOG_FORMAT, else human].
        #[arg(long)]
        log_format: Option<wabot::telemetry::LogFormat>,
    },
    /// Talk to the bot in the terminal, with no network.
    Chat {
        /// Corpus directory or file [default: the embedded corpus].
        #[arg(long)]
        corpus: Option<PathBuf>,
    },
    /// Match questions against the FAQ: one QUESTION, or one per line on stdin.
    Ask {
        /// Corpus directory or file [default: the embedded corpus].
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// One JSON object per query: {"query", "id", "score", "answer"}.
        #[arg(long)]
        json: bool,
        /// Show the matched terms and their weights.
        #[arg(long)]
        explain: bool,
        /// The question; without it, questions are read from stdin.
        question: Vec<String>,
    },
    /// Read badge photos: the text lines with confidences, the employee ID, the time taken.
    Ocr {
        /// One JSON object per image: {"image", "employee_id", "lines": [{"text", "confidence"}], "ms"}.
        #[arg(long)]
        json: bool,
        /// Cap on the detector input's long side, pixels [default: the configured `max_side`].
        #[arg(long)]
        max_side: Option<u32>,
        /// rten threads [default: the configured threads per worker].
        #[arg(long)]
        threads: Option<usize>,
        /// The photos (JPEG, PNG or WebP).
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Measure matching quality on a labelled query set (JSONL {"q", "expected", "kind"}),
    /// or on the FAQ's own questions held out in turn (--self).
    Eval {
        /// Corpus directory or file [default: the embedded corpus].
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// The labelled queries.
        #[arg(long, required_unless_present = "self_check", conflicts_with = "self_check")]
        queries: Option<PathBuf>,
        /// Hold each question of the FAQ out in turn: top-1, entries mixed up, a suggested
        /// threshold. No labelled queries needed.
        #[arg(long = "self")]
        self_check: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The most frequent questions the FAQ could not answer (from WABOT_DB).
    Unanswered {
        /// How many.
        #[arg(long, default_value_t = wabot::domain::unanswered::DEFAULT_LIMIT)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Administrative requests in the database (WABOT_DB) and their e-mail status.
    Requests {
        #[command(subcommand)]
        action: RequestsAction,
    },
}

#[derive(Subcommand)]
enum RequestsAction {
    /// The latest requests, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One request, with its e-mail's attempts and last error.
    Show {
        /// The ticket, e.g. REQ-2026-000123.
        ticket: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::Serve { listen, corpus, log_format } => {
            wabot::telemetry::init(log_format.unwrap_or(settings.log_format));
            serve(settings, listen, corpus)
        }
        Command::Chat { corpus } => chat(&settings, corpus),
        Command::Ask { corpus, json, explain, question } => {
            let (_, engine) = load(corpus.as_deref().or(settings.corpus.as_deref()), &settings)?;
            ask(&engine, json, explain, question)
        }
        Command::Ocr { json, max_side, threads, images } => ocr(&settings, json, max_side, threads, &images),
        Command::Eval { corpus, queries, self_check, json } => {
            let (_, engine) = load(corpus.as_deref().or(settings.corpus.as_deref()), &settings)?;
            match queries {
                Some(queries) if !self_check => {
                    let set = wabot::eval::load_queries(&queries, &engine)?;
                    print_report(&wabot::eval::evaluate(&engine, &set), json)
                }
                _ => print_report(&wabot::eval::self_check::self_evaluate(&engine), json),
            }
        }
        Command::Requests { action } => requests(&settings, action),
        Command::Unanswered { limit, json } => unanswered(&settings, limit, json),
    }
}

fn print_report<R: serde::Serialize + std::fmt::Display>(report: &R, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// The terminal conversation, through the same turns as the webhook: requests filed here
/// are stored in `settings.db` and e-mailed like any other.
fn chat(settings: &Settings, corpus: Option<PathBuf>) -> anyhow::Result<()> {
    let (kb, engine) = load(corpus.as_deref().or(settings.corpus.as_deref()), settings)?;
    let dialog = Arc::new(Dialog::new(kb, Arc::clone(&engine), Arc::new(MemoryStore::default())));
    if let Some(dir) = settings.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (desk, outbox) = runtime.block_on(wabot::server::open_desk(settings, dialog))?;
    if let Some(outbox) = outbox {
        runtime.spawn(outbox.run());
    }
    let respond = |msg| runtime.block_on(desk.handle(msg, None)).map(|h| h.messages);
    wabot::chat::run(engine.len(), respond, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(())
}

fn unanswered(settings: &Settings, limit: usize, json: bool) -> anyhow::Result<()> {
    use wabot::store::Ledger;
    if !settings.db.exists() {
        bail!("no database at {} (set WABOT_DB): no question was ever stored there", settings.db.display());
    }
    let store = wabot::store::sqlite::SqliteStore::open(&settings.db)
        .with_context(|| format!("opening {}", settings.db.display()))?;
    let rows = store.unanswered(limit)?;
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", wabot::cli::unanswered::report(&rows));
    }
    Ok(())
}

fn requests(settings: &Settings, action: RequestsAction) -> anyhow::Result<()> {
    use wabot::cli::requests as report;
    use wabot::store::Ledger;
    if !settings.db.exists() {
        bail!("no database at {} (set WABOT_DB): no request was ever stored there", settings.db.display());
    }
    let store = wabot::store::sqlite::SqliteStore::open(&settings.db)
        .with_context(|| format!("opening {}", settings.db.display()))?;
    match action {
        RequestsAction::List { limit, json } => {
            let records = store.requests(limit)?;
            if json {
                for r in &records {
                    println!("{}", serde_json::to_string(r)?);
                }
            } else {
                print!("{}", report::list(&records));
            }
        }
        RequestsAction::Show { ticket, json } => {
            let Some(r) = store.request(&ticket)? else { bail!("no request {ticket}") };
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", report::show(&r));
            }
        }
    }
    Ok(())
}

fn load(corpus: Option<&Path>, settings: &Settings) -> anyhow::Result<(Arc<KnowledgeBase>, Arc<Engine>)> {
    let kb = match corpus {
        Some(path) => KnowledgeBase::load(path)?,
        None => KnowledgeBase::embedded()?,
    };
    let params = EngineParams { threshold: settings.threshold(), ..EngineParams::default() };
    let engine = match semantic(settings)? {
        Some(setup) => Engine::with_semantic(kb.entries(), kb.lexicon(), params, setup.models, setup.cache),
        None => Engine::with_params(kb.entries(), kb.lexicon(), params),
    };
    Ok((Arc::new(kb), Arc::new(engine)))
}

/// The semantic scorer the settings ask for, its vectors cached beside the database.
fn semantic(settings: &Settings) -> anyhow::Result<Option<wabot::engine::hybrid::SemanticSetup>> {
    let data = settings.db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    wabot::semantic_models::setup(settings.semantic, data).context(
        "loading the semantic scorer (matching.semantic = \"off\" or WABOT_SEMANTIC=off runs lexical only)",
    )
}

fn serve(
    mut settings: Settings,
    listen: Option<std::net::SocketAddr>,
    corpus: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(l) = listen {
        settings.listen = l;
    }
    if let Some(c) = corpus {
        settings.corpus = Some(c);
    }
    let options = FaqOptions {
        corpus: settings.corpus.clone(),
        journal: Some(settings.faq_journal.clone()),
        params: EngineParams { threshold: settings.threshold(), ..EngineParams::default() },
        semantic: semantic(&settings)?,
    };
    // The webhook's turns load and save sessions in the database; the FAQ's own dialog store
    // only serves the admin API's previews.
    let faq = Arc::new(Faq::open(options, Arc::new(MemoryStore::default())).context("loading the FAQ")?);
    let entries = faq.engine().len();
    // Before anything opens files: the connection cap is sized from the raised limit.
    match wabot::server::limits::raise_fd_limit() {
        Ok((before, after)) if after > before => tracing::info!(before, after, "open-file limit raised"),
        Ok((_, limit)) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(wabot::server::MAX_BLOCKING_THREADS)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = wabot::server::open_store(&settings).await?;
        let badges = if settings.badge.enabled {
            let desk = BadgeDesk::build(&settings.badge, settings.twilio_auth_token.as_ref(), store.clone())
                .context("starting badge OCR (set WABOT_OCR=off to run without it)")?;
            Some(Arc::new(desk))
        } else {
            None
        };
        let server = Server::bind_with(&settings, Arc::clone(&faq), store, badges.clone()).await?;
        match &badges {
            Some(desk) if desk.can_reply() => tracing::info!(
                workers = settings.badge.workers,
                threads_per_worker = settings.badge.threads_per_worker(),
                employees = desk.directory().len(),
                "badge OCR on"
            ),
            Some(_) => tracing::warn!(
                "badge OCR loaded but TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN is unset: photos are answered \
                 with \"not available\" since results go out through Twilio's REST API"
            ),
            None => tracing::info!("badge OCR off"),
        }
        if settings.twilio_auth_token.is_none() && settings.twilio_webhook_shared_key.is_none() {
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: webhook requests are NOT authenticated. \
                 Listening on loopback only; set TWILIO_AUTH_TOKEN before exposing wabot."
            );
        }
        if settings.admin_token.is_some() {
            tracing::info!(journal = %settings.faq_journal.display(), "admin API on: /admin/faq");
        } else {
            tracing::info!("admin API off: set WABOT_ADMIN_TOKEN to enable /admin/faq");
        }
        spawn_reloads(&faq, &settings);
        tracing::info!(
            addr = %server.local_addr(),
            webhook_url = %settings.webhook_url(),
            entries,
            signature_check = settings.twilio_auth_token.is_some() || settings.twilio_webhook_shared_key.is_some(),
            shared_key_signatures = settings.twilio_webhook_shared_key.is_some(),
            max_connections = settings.limits.connection_cap(),
            header_read_timeout_ms = settings.limits.header_read_timeout_ms,
            admin_api = settings.admin_token.is_some(),
            "wabot is listening"
        );
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Reloads the corpus on SIGHUP, and when its files change if polling is on.
fn spawn_reloads(faq: &Arc<Faq>, settings: &Settings) {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            let faq = Arc::clone(faq);
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    faq::reload_and_log(&faq, "SIGHUP").await;
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot catch SIGHUP: reload on signal is off"),
    }
    // The embedded corpus cannot change: nothing to poll.
    if let Some(corpus) = &settings.corpus
        && settings.corpus_poll_secs > 0
    {
        let period = std::time::Duration::from_secs(settings.corpus_poll_secs);
        tracing::info!(corpus = %corpus.display(), every_secs = settings.corpus_poll_secs, "watching the corpus");
        tokio::spawn(faq::poll(Arc::clone(faq), period));
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Lines read from stdin are matched this many at a time, in parallel.
const ASK_BATCH: usize = 4096;

fn ask(engine: &Engine, json: bool, explain: bool, question: Vec<String>) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !question.is_empty() {
        let q = question.join(" ");
        let answer = engine.answer(&q, None);
        ask_one(engine, &q, answer, json, explain, &mut out)?;
        return Ok(out.flush()?);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("give a QUESTION, or pipe questions on stdin (one per line)");
    }
    let mut lines = stdin.lock().lines();
    loop {
        let mut batch = Vec::with_capacity(ASK_BATCH);
        for line in lines.by_ref() {
            let line = line.context("reading stdin")?;
            if !line.trim().is_empty() {
                batch.push(line);
            }
            if batch.len() == ASK_BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        for (q, answer) in batch.iter().zip(engine.answer_batch(&batch, None)) {
            ask_one(engine, q, answer, json, explain, &mut out)?;
        }
    }
    Ok(out.flush()?)
}

fn ask_one(
    engine: &Engine,
    q: &str,
    answer: Option<Match>,
    json: bool,
    explain: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    // Declined: still say how close the best candidate came.
    let best = match &answer {
        Some(m) => Some(m.clone()),
        None => engine.search(q, 1).into_iter().next(),
    };
    let score = best.as_ref().map_or(0.0, |m| m.score);
    if json {
        let mut obj = serde_json::json!({
            "query": q,
            "id": answer.as_ref().map(|m| m.entry.id.as_str()),
            "score": (score * 1e4).round() / 1e4,
            "answer": answer.as_ref().map(|m| m.entry.answer.as_str()),
        });
        if explain && let Some(m) = &best {
            obj["explain"] = serde_json::to_value(engine.explain(q, m))?;
            if let Some(top) = engine.rank(q, 1).and_then(|r| r.into_iter().next()) {
                obj["fused"] = serde_json::to_value(&top.evidence)?;
            }
        }
        writeln!(out, "{obj}")?;
        return Ok(());
    }
    match &answer {
        Some(m) => writeln!(out, "{} ({:.3})\n{}", m.entry.id, m.score, m.entry.answer)?,
        None => writeln!(
            out,
            "(no answer: best score {score:.3} is below the threshold {:.2})",
            engine.params().threshold
        )?,
    }
    if explain && let Some(top) = engine.rank(q, 1).and_then(|r| r.into_iter().next()) {
        let ev = &top.evidence;
        writeln!(out, "  fused: confidence {:.3} for {}", ev.confidence, top.entry.id)?;
        writeln!(out, "    lexical {:.3} (× {})", ev.lexical, wabot::engine::hybrid::LEXICAL_WEIGHT)?;
        for (k, name) in engine.encoder_names().iter().enumerate() {
            writeln!(
                out,
                "    {name:<28} similarity {:.3}, z {:+.2}{}",
                ev.similarity[k],
                ev.z[k],
                if ev.ranked_first[k] { ", ranks it first" } else { "" }
            )?;
        }
        writeln!(out, "    fused score {:.2}, margin over the next entry {:+.2}", ev.fused, ev.margin)?;
    }
    if explain && let Some(m) = &best {
        let x = engine.explain(q, m);
        writeln!(out, "  candidate {} via {:?}: {:?}", m.matched.id, m.unit, x.unit_text)?;
        for (term, qw, dw, c) in &x.terms {
            writeln!(out, "  {term:<24} query {qw:.3} × entry {dw:.3} = {c:.3}")?;
        }
        for (typed, fixed) in &x.corrected {
            writeln!(out, "  corrected {typed:?} → {fixed:?}")?;
        }
        if !x.unknown.is_empty() {
            writeln!(out, "  unknown words: {}", x.unknown.join(", "))?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn ocr(
    settings: &Settings,
    json: bool,
    max_side: Option<u32>,
    threads: Option<usize>,
    images: &[PathBuf],
) -> anyhow::Result<()> {
    use wabot::ocr::{BadgeReader, IdExtractor, ModelPaths, OcrBadgeReader, OcrEngine, OcrParams};
    let badge = &settings.badge;
    let params = OcrParams {
        max_side: max_side.unwrap_or(badge.max_side),
        threads: threads.unwrap_or_else(|| badge.threads_per_worker()),
    };
    let engine = OcrEngine::load(&ModelPaths::in_dir(&badge.models), params)?;
    let reader = OcrBadgeReader::new(engine, IdExtractor::new(&badge.id_patterns)?);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in images {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let started = std::time::Instant::now();
        let image = wabot::channel::twilio::media::decode_image(&bytes)
            .with_context(|| format!("decoding {}", path.display()))?;
        let text = reader.read_badge(&image)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if json {
            let obj = serde_json::json!({
                "image": path.display().to_string(),
                "employee_id": text.employee_id(),
                "lines": text.lines,
                "ms": (ms * 10.0).round() / 10.0,
            });
            writeln!(out, "{obj}")?;
        } else {
            writeln!(out, "{}  ({ms:.0} ms, turned {}°)", path.display(), text.rotation)?;
            for line in &text.lines {
                writeln!(out, "  {:.2}  {}", line.confidence, line.text)?;
            }
            writeln!(out, "  employee ID: {}\n", text.employee_id().unwrap_or("(none found)"))?;
        }
        out.flush()?;
    }
    Ok(())
}
