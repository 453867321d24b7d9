//! The composition root: [`Application::build`] wires every part from the settings through
//! constructors — the live FAQ (corpus, journal, engine, semantic scorer), the durable store,
//! badge reading, the desk, the mail worker and the HTTP server — and binds the listener
//! (port 0 picks a free one, see [`Application::port`]); [`Application::run_until_stopped`]
//! serves until the shutdown future completes. `main.rs` and the tests start the same
//! application this way.
//!
//! Owns the order of startup and what it logs; builds nothing itself that a module's own
//! constructor could build.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use secrecy::ExposeSecret;

use std::collections::HashMap;

use crate::channel::meta::graph::GraphClient;
use crate::channel::meta::media::MetaMedia;
use crate::channel::twilio::media::{MediaFetcher, MediaPolicy};
use crate::channel::twilio::rest::{RestConfig, RestSender};
use crate::config::{ConfigError, Settings};
use crate::desk::badge::{BadgeDesk, BadgeError, EXAMPLE_DIRECTORY, FetchMedia, Fetchers};
use crate::desk::outbound::{Deliver, Postbox};
use crate::domain::{Channel, Clock, SystemClock};
use crate::engine::hybrid::SemanticSetup;
use crate::engine::{Engine, EngineParams};
use crate::knowledge::corpus::{CorpusError, KnowledgeBase};
use crate::knowledge::directory::Directory;
use crate::knowledge::faq::SharedLog;
use crate::knowledge::faq::{self, Faq, FaqError, FaqOptions};
use crate::knowledge::semantic_models::EncodersError;
use crate::ocr::{IdExtractor, OcrBadgeReader, OcrEngine, OcrParams, OcrPool};
use crate::server::{OutboundParts, Server, ServerError};
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::faq::PgFaqJournal;

/// What can stop the application from starting or running. Each message says what was
/// being done; the cause follows as its source.
#[derive(Debug, Error)]
pub enum StartupError {
    /// The sentence encoders or their vector cache.
    #[error(
        "loading the semantic scorer (matching.semantic = \"off\" or WABOT_SEMANTIC=off runs lexical only)"
    )]
    Semantic(#[source] EncodersError),
    /// The corpus or the journal.
    #[error("loading the FAQ")]
    Faq(#[source] FaqError),
    /// The OCR models, the directory or the Twilio clients of badge reading.
    #[error("starting badge OCR (set WABOT_OCR=off to run without it)")]
    Badge(#[source] BadgeError),
    /// A channel's outbound API or media client.
    #[error("starting the {channel} channel's API client: {message}")]
    Channel {
        /// The channel.
        channel: Channel,
        /// What went wrong.
        message: String,
    },
    /// The corpus of a command that reads it once.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// The store, the mail settings, the listener, or the server while it ran.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// On PostgreSQL, the FAQ journal in the database and the changes it holds (for
/// [`FaqOptions::shared`]); `None` on SQLite, whose FAQ journal is the `faq_journal` file.
pub async fn shared_faq_journal(
    settings: &Settings,
) -> Result<Option<(Arc<PgFaqJournal>, SharedLog)>, StartupError> {
    let Some(pg) = &settings.postgres else { return Ok(None) };
    let password = pg.password.as_ref().map(|p| p.expose_secret());
    let store = PostgresStore::open(pg.url.expose_secret(), password)
        .await
        .map_err(|source| ServerError::Store { path: pg.redacted(), source })?;
    let journal = Arc::new(PgFaqJournal::new(store));
    let log =
        journal.shared_log().await.map_err(|source| ServerError::Store { path: pg.redacted(), source })?;
    Ok(Some((journal, log)))
}

/// Follows the database's FAQ journal for `faq`, forever: the other replicas' changes are
/// served here within seconds.
pub fn follow_faq(settings: &Settings, faq: Arc<Faq>, journal: Arc<PgFaqJournal>) {
    let Some(pg) = &settings.postgres else { return };
    let url = pg.url.expose_secret().to_owned();
    let password = pg.password.as_ref().map(|p| p.expose_secret().to_owned());
    tokio::spawn(crate::store::postgres::faq::follow_forever(faq, journal, url, password));
}

/// The semantic scorer the settings ask for, its vectors cached beside the database.
pub fn semantic(settings: &Settings) -> Result<Option<SemanticSetup>, StartupError> {
    let data = settings.db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::knowledge::semantic_models::setup(settings.semantic, data).map_err(StartupError::Semantic)
}

/// The knowledge base at `corpus` (else the embedded one) and an engine over it with the
/// threshold and the semantic scorer the settings ask for: what `wabot ask`, `eval` and
/// `chat` match with.
pub fn load_engine(
    corpus: Option<&Path>,
    settings: &Settings,
) -> Result<(Arc<KnowledgeBase>, Arc<Engine>), StartupError> {
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

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
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

/// Each configured channel's outbound API, for the sender worker: Twilio's REST API when
/// `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` are set (one attempt per claim: the queue
/// retries), Meta's Graph API when the `[meta]` channel is on.
pub fn outbound_channels(settings: &Settings) -> Result<HashMap<Channel, Arc<dyn Deliver>>, StartupError> {
    let mut channels: HashMap<Channel, Arc<dyn Deliver>> = HashMap::new();
    let failed = |channel: Channel| {
        move |e: &dyn std::fmt::Display| StartupError::Channel { channel, message: e.to_string() }
    };
    if let (Some(sid), Some(token)) = (&settings.twilio.account_sid, &settings.twilio_auth_token) {
        let api = settings.twilio.api_url().map_err(|e| failed(Channel::Twilio)(&e))?;
        let mut config = RestConfig::new(api, sid.expose_secret().to_owned(), token.clone());
        config.attempts = 1;
        let sender = RestSender::new(config).map_err(|e| failed(Channel::Twilio)(&e))?;
        channels.insert(Channel::Twilio, Arc::new(sender));
    }
    if settings.meta.enabled()
        && let Some(graph) = GraphClient::new(&settings.meta).map_err(|e| failed(Channel::Meta)(&e))?
    {
        channels.insert(Channel::Meta, Arc::new(graph));
    }
    Ok(channels)
}

/// Each channel's media download for badge reading: Twilio's (credentials only on its
/// media path), and Meta's media lookup when its channel is on.
pub fn media_fetchers(settings: &Settings) -> Result<Fetchers, BadgeError> {
    let twilio = &settings.twilio;
    let api_base = twilio.api_url()?;
    let sid = twilio.account_sid.as_ref().map(|s| s.expose_secret().to_owned());
    let mut policy = MediaPolicy::twilio(api_base, sid, settings.twilio_auth_token.clone());
    policy.allow_http_loopback = twilio.allow_http_loopback || twilio.loopback_api();
    policy.redirect_hosts = twilio.media_redirect_hosts.clone();
    let fetcher = MediaFetcher::new(policy).map_err(|e| BadgeError::Client(e.to_string()))?;
    let mut fetchers: Fetchers = HashMap::new();
    fetchers.insert(Channel::Twilio, Arc::new(fetcher) as Arc<dyn FetchMedia>);
    if settings.meta.enabled()
        && let Some(graph) =
            GraphClient::new(&settings.meta).map_err(|e| BadgeError::Client(e.to_string()))?
    {
        fetchers.insert(Channel::Meta, Arc::new(MetaMedia::new(graph)));
    }
    Ok(fetchers)
}

/// Badge reading as the settings ask: off, or the OCR models, the directory and each
/// channel's media download over `store`, results queued through `postbox`.
fn badge_desk(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    postbox: Postbox,
) -> Result<Option<BadgeDesk>, StartupError> {
    if !settings.badge.enabled {
        return Ok(None);
    }
    build_badge_desk(settings, store, clock, postbox).map(Some).map_err(StartupError::Badge)
}

/// Loads the OCR models and the directory and builds each channel's media client. A photo
/// on a channel that cannot send later messages (Twilio without `TWILIO_ACCOUNT_SID` and
/// `TWILIO_AUTH_TOKEN`) is answered with "not available".
pub fn build_badge_desk(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    postbox: Postbox,
) -> Result<BadgeDesk, BadgeError> {
    let badge = &settings.badge;
    badge.validate()?;
    let params = OcrParams { max_side: badge.max_side, threads: badge.threads_per_worker() };
    let engine = OcrEngine::load(&crate::ocr::ModelPaths::in_dir(&badge.models), params)?;
    let ids = IdExtractor::new(&badge.id_patterns).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let reader = Arc::new(OcrBadgeReader::new(engine, ids));
    let directory = match &badge.directory {
        Some(path) => Directory::load(path)?,
        None => Directory::from_csv(EXAMPLE_DIRECTORY.as_bytes(), "corpus/employees.example.csv (embedded)")?,
    };
    let fetchers = media_fetchers(settings)?;
    let pool = OcrPool::new(badge.workers, badge.queue);
    Ok(BadgeDesk::new(reader, pool, fetchers, postbox, Arc::new(directory), store, clock)
        .with_lease(std::time::Duration::from_millis(badge.lease_ms)))
}

/// The whole bot, built and bound, not yet serving.
pub struct Application {
    settings: Settings,
    faq: Arc<Faq>,
    store: Arc<dyn Store>,
    console: Option<crate::server::ConsoleStores>,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("server", &self.server).finish_non_exhaustive()
    }
}

impl Application {
    /// Builds everything `settings` describes and binds `settings.listen`. On PostgreSQL
    /// the FAQ's live changes are journaled in the database and followed from the other
    /// replicas ([`shared_faq_journal`]), not in the `faq_journal` file.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let shared = shared_faq_journal(&settings).await?;
        let options = FaqOptions {
            corpus: settings.corpus.clone(),
            journal: Some(settings.faq_journal.clone()),
            params: EngineParams { threshold: settings.threshold(), ..EngineParams::default() },
            semantic: semantic(&settings)?,
            shared: shared.as_ref().map(|(_, log)| log.clone()),
        };
        let faq = Arc::new(Faq::open(options).map_err(StartupError::Faq)?);
        if let Some((journal, _)) = shared {
            follow_faq(&settings, Arc::clone(&faq), journal);
        }
        Application::build_with(settings, faq, badge_desk).await
    }

    /// [`Application::build`] over a live FAQ already loaded, with badge reading built by
    /// `badges` over the database (`None`: off). The tests start the application this way,
    /// with their own corpus and fake OCR.
    pub async fn build_with(
        settings: Settings,
        faq: Arc<Faq>,
        badges: impl FnOnce(
            &Settings,
            Arc<dyn Store>,
            Arc<dyn Clock>,
            Postbox,
        ) -> Result<Option<BadgeDesk>, StartupError>,
    ) -> Result<Application, StartupError> {
        for notice in &settings.deprecations {
            tracing::warn!("configuration: {notice}; the old key still works for now");
        }
        // Before anything opens files: the connection cap is sized from the raised limit.
        match crate::server::limits::raise_fd_limit() {
            Ok((before, after)) if after > before => tracing::info!(before, after, "open-file limit raised"),
            Ok((_, limit)) => tracing::info!(limit, "open-file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
        let backend = crate::server::open_backend(&settings).await?;
        let store = backend.store.clone();
        let console = backend.console.clone();
        // The one clock everything that decides by time reads.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let outbound = OutboundParts::new(store.clone(), Arc::clone(&clock), outbound_channels(&settings)?);
        let badges =
            badges(&settings, store.clone(), Arc::clone(&clock), outbound.postbox.clone())?.map(Arc::new);
        let channels: Vec<&str> = outbound.channels.keys().map(|c| c.as_str()).collect();
        tracing::info!(channels = ?channels, "outbound queue: channels that send later messages");
        let server =
            Server::bind_with(&settings, Arc::clone(&faq), backend, badges.clone(), clock, outbound).await?;
        match &badges {
            Some(desk) if desk.can_reply() => tracing::info!(
                workers = settings.badge.workers,
                threads_per_worker = settings.badge.threads_per_worker(),
                employees = desk.directory().len(),
                "badge OCR on"
            ),
            Some(_) => tracing::warn!(
                "badge OCR loaded but no channel can send later messages (Twilio: TWILIO_ACCOUNT_SID or \
                 TWILIO_AUTH_TOKEN unset; Meta: off): photos are answered with \"not available\""
            ),
            None => tracing::info!("badge OCR off"),
        }
        let twilio_on = match crate::server::twilio_webhook(&settings) {
            crate::server::TwilioWebhook::Signed => "POST /bot",
            crate::server::TwilioWebhook::Unsigned => {
                tracing::warn!(
                    "TWILIO_AUTH_TOKEN is not set: webhook requests are NOT authenticated. \
                     Listening on loopback only; set TWILIO_AUTH_TOKEN before exposing wabot."
                );
                "POST /bot, unauthenticated (loopback only)"
            }
            crate::server::TwilioWebhook::Off => "off (unset: TWILIO_AUTH_TOKEN)",
        };
        let meta_on = if settings.meta.enabled() {
            "GET and POST /meta".to_owned()
        } else {
            format!("off (unset: {})", settings.meta.missing().join(", "))
        };
        tracing::info!(twilio = twilio_on, meta = %meta_on, "channels");
        if settings.meta.enabled() && settings.meta.verify_token.is_none() {
            tracing::warn!(
                "META_VERIFY_TOKEN is not set: Meta cannot verify the webhook (GET /meta answers 403)"
            );
        }
        if settings.admin_token.is_some() {
            tracing::info!(journal = %settings.faq_journal.display(), "admin API on: /admin/faq");
        } else {
            tracing::info!("admin API off: set WABOT_ADMIN_TOKEN to enable /admin/faq");
        }
        Ok(Application { settings, faq, store, console, server })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    /// The database behind the webhook and badge reading.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The web console's store roles, when the database keeps them.
    pub fn console_stores(&self) -> Option<&crate::server::ConsoleStores> {
        self.console.as_ref()
    }

    /// The live FAQ being served.
    pub fn faq(&self) -> &Arc<Faq> {
        &self.faq
    }

    /// Serves until `shutdown` completes, reloading the corpus on `SIGHUP` and, when polling
    /// is on, when its files change; then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Application { settings, faq, server, .. } = self;
        spawn_reloads(&faq, &settings);
        tracing::info!(
            addr = %server.local_addr(),
            webhook_url = %settings.webhook_url(),
            entries = faq.engine().len(),
            signature_check = settings.twilio_auth_token.is_some() || settings.twilio_webhook_shared_key.is_some(),
            shared_key_signatures = settings.twilio_webhook_shared_key.is_some(),
            max_connections = settings.limits.connection_cap(),
            header_read_timeout_ms = settings.limits.header_read_timeout_ms,
            admin_api = settings.admin_token.is_some(),
            "wabot is listening"
        );
        server.run(shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    }
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
