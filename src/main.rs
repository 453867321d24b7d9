//! The `wabot` command: parses the command line and calls the library.

use std::io::{BufWriter, IsTerminal, StdoutLock, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wabot::cli::{self, CliError};
use wabot::config::Settings;
use wabot::engine::Engine;
use wabot::knowledge::corpus::KnowledgeBase;
use wabot::startup::Application;

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
        /// Rank with the sentence encoders alone, without the lexical evidence (an ablation).
        #[arg(long, conflicts_with = "self_check")]
        semantic_only: bool,
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
    /// The database itself.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// The web console's accounts (in WABOT_DB).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Copies a SQLite database into an empty PostgreSQL one (password: WABOT_DB_PASSWORD),
    /// every table's count checked; then set WABOT_DB to the URL.
    MigrateSqliteToPostgres {
        /// The SQLite file, e.g. data/wabot.db (stop `wabot serve` first).
        sqlite: PathBuf,
        /// postgres://user@host:port/database
        url: String,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Adds an account; the password is read from stdin when it is not a terminal, else prompted twice.
    Add {
        /// The e-mail address to sign in with.
        email: String,
        /// The name shown in the console [default: the address's local part].
        #[arg(long)]
        name: Option<String>,
        /// `admin` or `agent`.
        #[arg(long, default_value = "agent", value_parser = ["admin", "agent"])]
        role: String,
    },
    /// Lists the accounts.
    List,
    /// Removes an account and closes its sessions.
    Remove {
        /// The account's e-mail address.
        email: String,
    },
    /// Sets a new password (read like `add`'s) and closes the account's sessions.
    Passwd {
        /// The account's e-mail address.
        email: String,
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
            let listen = listen.unwrap_or(settings.listen);
            serve(Settings { listen, corpus: corpus.or(settings.corpus), ..settings })
        }
        Command::Chat { corpus } => {
            let (kb, engine) = load(&settings, corpus)?;
            Ok(cli::chat::start(&settings, kb, engine)?)
        }
        Command::Ask { corpus, json, explain, question } => {
            let (_, engine) = load(&settings, corpus)?;
            let stdin = std::io::stdin();
            let terminal = stdin.is_terminal();
            to_stdout(|out| cli::ask::run(&engine, json, explain, &question, stdin.lock(), terminal, out))
        }
        Command::Ocr { json, max_side, threads, images } => {
            to_stdout(|out| cli::ocr::run(&settings, json, max_side, threads, &images, out))
        }
        Command::Eval { corpus, queries, self_check, semantic_only, json } => {
            let (_, engine) = load(&settings, corpus)?;
            let queries = queries.filter(|_| !self_check);
            to_stdout(|out| cli::eval::run(&engine, queries.as_deref(), semantic_only, json, out))
        }
        Command::Requests { action: RequestsAction::List { limit, json } } => {
            to_stdout(|out| cli::requests::run_list(&settings, limit, json, out))
        }
        Command::Requests { action: RequestsAction::Show { ticket, json } } => {
            to_stdout(|out| cli::requests::run_show(&settings, &ticket, json, out))
        }
        Command::Db { action: DbAction::MigrateSqliteToPostgres { sqlite, url } } => {
            wabot::telemetry::init(settings.log_format);
            let password = std::env::var("WABOT_DB_PASSWORD").ok().filter(|p| !p.is_empty());
            to_stdout(|out| cli::db::run_migrate(&sqlite, &url, password.as_deref(), out))
        }
        Command::Unanswered { limit, json } => {
            to_stdout(|out| cli::unanswered::run(&settings, limit, json, out))
        }
        Command::Users { action } => users(&settings, action),
    }
}

/// `wabot users …`.
fn users(settings: &Settings, action: UsersAction) -> anyhow::Result<()> {
    use cli::users::{self, PasswordSource};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut lock = stdin.lock();
    fn source<'a>(terminal: bool, lock: &'a mut std::io::StdinLock<'static>) -> PasswordSource<'a> {
        if terminal { PasswordSource::Prompt } else { PasswordSource::Line(lock) }
    }
    let db = settings;
    match action {
        UsersAction::Add { email, name, role } => {
            let role = wabot::store::AccountRole::parse(&role).context("role must be admin or agent")?;
            to_stdout(|out| users::add(db, &email, name.as_deref(), role, source(terminal, &mut lock), out))
        }
        UsersAction::List => to_stdout(|out| users::list(db, out)),
        UsersAction::Remove { email } => to_stdout(|out| users::remove(db, &email, out)),
        UsersAction::Passwd { email } => {
            to_stdout(|out| users::passwd(db, &email, source(terminal, &mut lock), out))
        }
    }
}

/// Runs a command writing to a buffered standard output, flushed at the end.
fn to_stdout(
    command: impl FnOnce(&mut BufWriter<StdoutLock<'static>>) -> Result<(), CliError>,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    command(&mut out)?;
    Ok(out.flush()?)
}

fn load(settings: &Settings, corpus: Option<PathBuf>) -> anyhow::Result<(Arc<KnowledgeBase>, Arc<Engine>)> {
    Ok(wabot::startup::load_engine(corpus.as_deref().or(settings.corpus.as_deref()), settings)?)
}

/// `wabot serve`: the application of [`Application::build`], on a runtime whose blocking
/// pool is bounded, until SIGINT or SIGTERM.
fn serve(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(wabot::server::MAX_BLOCKING_THREADS)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped(wabot::startup::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
