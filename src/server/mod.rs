//! The HTTP server: each channel's webhook (`POST /bot`, [`crate::channel::twilio::webhook`];
//! `GET`/`POST /meta`, [`crate::channel::meta::webhook`], when Meta's channel is on),
//! `GET /healthz`, `GET /metrics`, and the [`admin`] routes when an admin token is set.
//!
//! Owns routing, the request limits' layers and the accept loop. Connections are accepted by
//! hand (hyper's HTTP/1.1 server, not `axum::serve`): at most
//! [`LimitSettings::connection_cap`] open at once, each closed when its client takes longer
//! than `header_read_timeout_ms` to send a request's headers or leaves it idle that long
//! between requests — so stalled or idle sockets cannot use up the process's file
//! descriptors. Opens the durable store (`WABOT_DB`) and runs the e-mail outbox worker beside
//! the HTTP server; the webhook's turns go through [`Desk`] (deduplication by MessageSid,
//! commit before reply).

pub mod admin;
pub mod limits;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::channel::meta;
use crate::channel::twilio::{self, webhook::WebhookState};
use crate::config::LimitSettings;
use crate::config::Settings;
use crate::desk::Desk;
use crate::desk::limits::SenderLimiter;
use crate::desk::outbound::{Deliver, Postbox, Sender};
use crate::dialog::Dialog;
use crate::dialog::RequestForm;
use crate::domain::Channel;
use crate::domain::{Clock, SystemClock};
use crate::knowledge::faq::Faq;
use crate::mail::{MailError, Outbox};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::Metrics;

/// The blocking pool's bound for `wabot serve`: the store's callers plus a margin for
/// reloads and badge reading's few store calls. Tokio's default (512) let a 10-minute soak
/// keep ~120 threads, each holding its own allocator pages (RSS about 290 MiB instead of 78).
pub const MAX_BLOCKING_THREADS: usize = crate::store::sqlite::CONCURRENT_CALLS + 8;

/// What can stop the server from starting.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Listening without authentication on a non-loopback address.
    #[error(
        "refusing to listen on {0} with no channel that can authenticate its webhook. \
         Set TWILIO_AUTH_TOKEN (Twilio's signatures are then checked), or Meta's channel \
         (META_APP_SECRET…), or listen on 127.0.0.1"
    )]
    Unauthenticated(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The durable store could not be opened.
    #[error("database {path}: {source}")]
    Store {
        /// The database file.
        path: String,
        /// The underlying error.
        #[source]
        source: StoreError,
    },
    /// The e-mail settings are unusable.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: LimitSettings,
    outbox: Option<Outbox>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    badges: Option<Arc<crate::desk::badge::BadgeDesk>>,
    sender: Sender,
    /// The transcripts to prune, and after how many days, when the console is on.
    transcripts: Option<(Arc<dyn crate::store::Transcripts>, u64)>,
}

/// The outbound queue's two ends: the postbox the desk and badge reading queue into, and
/// each channel's outbound API the sender worker delivers through.
pub struct OutboundParts {
    /// Queues messages and wakes the worker.
    pub postbox: Postbox,
    /// Each channel's outbound API.
    pub channels: std::collections::HashMap<Channel, Arc<dyn Deliver>>,
}

impl OutboundParts {
    /// A queue over `store` with the channels given, woken by a fresh signal.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        channels: std::collections::HashMap<Channel, Arc<dyn Deliver>>,
    ) -> OutboundParts {
        let wakeup = Arc::new(tokio::sync::Notify::new());
        let postbox = Postbox::new(store, clock, wakeup, channels.keys().copied().collect());
        OutboundParts { postbox, channels }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl Server {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the routes over `faq`,
    /// with the database at `settings.db`.
    pub async fn bind(settings: &Settings, faq: Arc<Faq>) -> Result<Server, ServerError> {
        let backend = open_backend(settings).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let outbound = OutboundParts::new(backend.store.clone(), Arc::clone(&clock), Default::default());
        Server::bind_with(settings, faq, backend, None, clock, outbound).await
    }

    /// [`Server::bind`] over a store already open (see [`open_store`]), with photos of
    /// badges read by `badges` (built over the same store, so that the employee it
    /// identifies is in the session the request form reads), and messages sent later
    /// through `outbound`'s channels.
    pub async fn bind_with(
        settings: &Settings,
        faq: Arc<Faq>,
        backend: Backend,
        badges: Option<Arc<crate::desk::badge::BadgeDesk>>,
        clock: Arc<dyn Clock>,
        outbound: OutboundParts,
    ) -> Result<Server, ServerError> {
        if twilio_webhook(settings) == TwilioWebhook::Off && !settings.meta.enabled() {
            return Err(ServerError::Unauthenticated(settings.listen));
        }
        let Backend { store, console: console_stores } = backend;
        let console_on = match &console_stores {
            Some(roles) => console_enabled(settings, &*roles.accounts).await?,
            None => {
                if settings.console.enabled == Some(true) {
                    tracing::warn!("web console off: this database does not keep the console's accounts");
                }
                false
            }
        };
        let dialog = Arc::new(Dialog::live(faq.knowledge(), faq.shared_engine(), Arc::clone(&clock)));
        let (desk, outbox) = desk_over(
            settings,
            Arc::clone(&store),
            Arc::clone(&dialog),
            Arc::clone(&clock),
            Some(outbound.postbox.clone()),
        )?;
        // Handing over to a person needs someone to hand over to: it is on with the console.
        let console_roles = console_stores.filter(|_| console_on);
        let desk = if let Some(roles) = &console_roles {
            let c = &settings.console;
            dialog.set_handoff(Some(Arc::new(crate::dialog::HandoffPolicy {
                idle_ms: i64::try_from(c.handoff_idle_mins.saturating_mul(60_000)).unwrap_or(i64::MAX),
                hours_en: c.office_hours_en.clone(),
                hours_fr: c.office_hours_fr.clone(),
            })));
            let desk = desk.with_transcripts(Arc::clone(&roles.transcripts), Arc::clone(&roles.figures));
            match &c.hr_email {
                Some(to) => desk.with_handover_mail(to.clone(), console_base_url(settings)),
                None => {
                    tracing::warn!("console.hr_email is not set: handovers are not e-mailed");
                    desk
                }
            }
        } else {
            desk
        };
        let mail_wakeup = Arc::clone(desk.mail_wakeup());
        let desk = Arc::new(desk);
        let metrics = Arc::new(Metrics::new());
        let sender = Sender::new(
            store.clone(),
            outbound.channels,
            Arc::clone(&clock),
            outbound.postbox.wakeup(),
            settings.outbound.clone(),
            Some(Arc::clone(&metrics)),
        );
        let outbox = outbox.map(|o| o.with_metrics(Arc::clone(&metrics)));
        if let Some(badges) = &badges {
            badges.record_to(Arc::clone(&metrics));
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: settings.listen, source })?;
        let console = console_roles.as_ref().map(|roles| {
            console_state(
                settings,
                &faq,
                &dialog,
                &store,
                (roles, Arc::clone(&mail_wakeup)),
                &clock,
                &outbound.postbox,
            )
        });
        let router =
            router(settings, faq, dialog, desk, Arc::clone(&store), badges.clone(), Arc::clone(&metrics))
                .merge(console.map(crate::console::router).unwrap_or_default());
        let transcripts = console_roles.map(|roles| (roles.transcripts, settings.console.transcript_days));
        Ok(Server {
            transcripts,
            listener,
            router,
            limits: settings.limits.clone(),
            outbox,
            store,
            clock,
            metrics,
            badges,
            sender,
        })
    }

    /// The server's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    /// The outbox worker runs beside it and stops with it; an e-mail in flight then is
    /// not marked sent, and goes again at the next start. Likewise badge photos: those
    /// accepted before this start, not answered and held by no other desk are resumed
    /// before the first request is taken, those of a desk that died are taken once their
    /// lease runs out, and those still being read when it stops are given back.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        if let Some(badges) = &self.badges
            && let Err(e) = badges.resume().await
        {
            // They stay pending: the next start tries again.
            tracing::error!(error = %e, "cannot resume the pending badge photos");
        }
        let sweeper = self.badges.as_ref().map(|b| tokio::spawn(Arc::clone(b).sweep_forever()));
        let worker = self.outbox.map(|o| tokio::spawn(o.run()));
        let sender = tokio::spawn(self.sender.run());
        let clock = Arc::clone(&self.clock);
        let pruner = tokio::spawn(crate::store::prune_forever(
            self.store,
            self.clock,
            std::time::Duration::from_secs(3600),
        ));
        let transcripts = self
            .transcripts
            .map(|(t, days)| tokio::spawn(prune_transcripts_forever(t, Arc::clone(&clock), days)));
        let served = serve(self.listener, self.router, &self.limits, shutdown).await;
        if let Some(w) = worker {
            w.abort();
        }
        if let Some(t) = transcripts {
            t.abort();
        }
        pruner.abort();
        sender.abort();
        if let Some(s) = sweeper {
            s.abort();
        }
        if let Some(badges) = &self.badges {
            badges.stop().await;
        }
        served
    }
}

/// The base URL of links to the console: the public URL, else the listen address.
fn console_base_url(settings: &Settings) -> String {
    match &settings.public_url {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("http://{}", settings.listen),
    }
}

/// Whether the web console is on: `console.enabled`, else whether an account exists.
async fn console_enabled(
    settings: &Settings,
    accounts: &dyn crate::store::Accounts,
) -> Result<bool, ServerError> {
    let on = match settings.console.enabled {
        Some(on) => on,
        None => !accounts
            .accounts()
            .await
            .map_err(|source| ServerError::Store { path: settings.db.display().to_string(), source })?
            .is_empty(),
    };
    if on {
        tracing::info!("web console on: /console; conversations can be handed over to a person");
    } else {
        tracing::info!("web console off (add an account with `wabot users add`, or set console.enabled)");
    }
    Ok(on)
}

/// The web console's state: its store roles, the live FAQ and dialog, and agents' replies
/// sent through Twilio's REST API when its account is configured.
fn console_state(
    settings: &Settings,
    faq: &Arc<Faq>,
    dialog: &Arc<Dialog>,
    store: &Arc<dyn Store>,
    (roles, mail_wakeup): (&ConsoleStores, Arc<tokio::sync::Notify>),
    clock: &Arc<dyn Clock>,
    postbox: &Postbox,
) -> Arc<crate::console::ConsoleState> {
    let secure = settings.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let sender = Some(Arc::new(postbox.clone()) as Arc<dyn crate::desk::handoff::AgentReplies>);
    let handoff = crate::desk::handoff::HandoffDesk::new(
        Arc::clone(store) as Arc<dyn crate::store::Conversations>,
        Arc::clone(&roles.transcripts),
        Arc::clone(&roles.figures),
        sender,
        Arc::clone(clock),
    );
    Arc::new(crate::console::ConsoleState::new(
        Arc::clone(&roles.accounts),
        Arc::clone(store) as Arc<dyn crate::store::Reports>,
        Arc::clone(faq),
        Arc::clone(dialog),
        Arc::clone(clock),
        settings.console.clone(),
        secure,
        handoff,
        (Arc::clone(&roles.resend), Arc::clone(store) as Arc<dyn crate::store::Outbox>, mail_wakeup),
    ))
}

/// Forgets transcript lines older than `days`, now and every hour.
async fn prune_transcripts_forever(
    transcripts: Arc<dyn crate::store::Transcripts>,
    clock: Arc<dyn Clock>,
    days: u64,
) {
    let keep_ms = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    loop {
        match transcripts.prune_transcripts(clock.now_ms().saturating_sub(keep_ms)).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned old transcripts"),
            Err(e) => tracing::warn!(error = %e, "pruning transcripts failed"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Accepts connections until `shutdown` completes, at most `limits.connection_cap()` open at
/// once (further clients wait in the listen backlog), each served over HTTP/1.1 with the
/// header read and idle keep-alive bounded; then lets the requests in flight finish.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &LimitSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .keep_alive(true);
    let cap = limits.connection_cap();
    let places = Arc::new(Semaphore::new(cap));
    let service = router;
    let graceful = GracefulShutdown::new();
    tracing::debug!(
        max_connections = cap,
        header_read_timeout_ms = limits.header_read_timeout_ms,
        "accepting"
    );
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(place) = place else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The client's address, for what throttles per address (the console's sign-in).
        let peer = stream.peer_addr().ok();
        let service = service.clone();
        let with_peer = tower::util::MapRequest::new(
            service,
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                if let Some(peer) = peer {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                }
                req
            },
        );
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(with_peer)));
        tokio::spawn(async move {
            // A client that hangs up or times out is its own business: nothing to report.
            let _ = connection.await;
            drop(place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed `accept`: a connection that died in the backlog is nothing; anything
/// else (out of file descriptors, whatever the cap) is logged and waited out briefly
/// rather than retried in a hot loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The store roles only the web console and the handover use.
#[derive(Clone)]
pub struct ConsoleStores {
    /// Console accounts, sessions, throttling and the audit log.
    pub accounts: Arc<dyn crate::store::Accounts>,
    /// Handed-over conversations' transcripts.
    pub transcripts: Arc<dyn crate::store::Transcripts>,
    /// The dashboard's per-turn counters.
    pub figures: Arc<dyn crate::store::Figures>,
    /// A request's e-mail queued again.
    pub resend: Arc<dyn crate::store::Resend>,
}

impl ConsoleStores {
    /// The four roles of one backend.
    pub fn of<S>(store: &Arc<S>) -> ConsoleStores
    where
        S: crate::store::Accounts
            + crate::store::Transcripts
            + crate::store::Figures
            + crate::store::Resend
            + 'static,
    {
        ConsoleStores {
            accounts: store.clone(),
            transcripts: store.clone(),
            figures: store.clone(),
            resend: store.clone(),
        }
    }
}

impl std::fmt::Debug for ConsoleStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleStores").finish_non_exhaustive()
    }
}

/// An open database: the store every part uses, and the console's roles when the backend
/// keeps them.
#[derive(Clone)]
pub struct Backend {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The web console's roles; `None`: this backend cannot serve the console.
    pub console: Option<ConsoleStores>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("console", &self.console.is_some()).finish_non_exhaustive()
    }
}

/// Opens the durable store the settings name, migrated (see [`open_backend`]).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServerError> {
    Ok(open_backend(settings).await?.store)
}

/// Opens the database the settings name, migrated: the PostgreSQL database of
/// `settings.postgres`, else (creating it if need be) the SQLite file at `settings.db`.
pub async fn open_backend(settings: &Settings) -> Result<Backend, ServerError> {
    if let Some(pg) = &settings.postgres {
        let password = pg.password.as_ref().map(|p| p.expose_secret());
        let store = PostgresStore::open(pg.url.expose_secret(), password)
            .await
            .map_err(|source| ServerError::Store { path: pg.redacted(), source })?;
        tracing::info!(db = %pg.redacted(), "database open (PostgreSQL)");
        let store = Arc::new(store);
        return Ok(Backend { console: Some(ConsoleStores::of(&store)), store });
    }
    let path = settings.db.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .map_err(StoreError::backend)
        .and_then(|r| r)
        .map_err(|source| ServerError::Store { path: settings.db.display().to_string(), source })?;
    tracing::info!(db = %settings.db.display(), "database open");
    let store = Arc::new(store);
    Ok(Backend { console: Some(ConsoleStores::of(&store)), store })
}

/// Opens the durable store at `settings.db` and the e-mail outbox, and gives `dialog` the
/// request form: what a turn of the dialog needs, for the webhook and `wabot chat` alike.
/// The outbox (none when mail is off) must be run for requests to be e-mailed.
pub async fn open_desk(
    settings: &Settings,
    dialog: Arc<Dialog>,
) -> Result<(Desk, Option<Outbox>), ServerError> {
    desk_over(settings, open_store(settings).await?, dialog, Arc::new(SystemClock), None)
}

fn desk_over(
    settings: &Settings,
    store: Arc<dyn Store>,
    dialog: Arc<Dialog>,
    clock: Arc<dyn Clock>,
    postbox: Option<Postbox>,
) -> Result<(Desk, Option<Outbox>), ServerError> {
    let wakeup = Arc::new(tokio::sync::Notify::new());
    let outbox = Outbox::new(&settings.mail, store.clone(), Arc::clone(&clock), Arc::clone(&wakeup))?;
    if outbox.is_none() {
        tracing::warn!(
            "mail is off (WABOT_SMTP_URL is not set): requests are stored and queued, not e-mailed"
        );
    }
    dialog.set_requests(Some(Arc::new(RequestForm::new(settings.requests.clone()))));
    Ok((Desk::new(dialog, store, clock, wakeup, postbox), outbox))
}

/// Whether Twilio's webhook (`POST /bot`) is served, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioWebhook {
    /// Requests are authenticated (`TWILIO_AUTH_TOKEN` or the shared key).
    Signed,
    /// Unauthenticated, which is allowed only on a loopback address (development).
    Unsigned,
    /// Not served: no way to authenticate it on a public address. A deployment on Meta's
    /// channel alone needs no Twilio secret.
    Off,
}

/// How `settings` serve Twilio's webhook.
pub fn twilio_webhook(settings: &Settings) -> TwilioWebhook {
    if settings.twilio_auth_token.is_some() || settings.twilio_webhook_shared_key.is_some() {
        TwilioWebhook::Signed
    } else if settings.listen.ip().is_loopback() {
        TwilioWebhook::Unsigned
    } else {
        TwilioWebhook::Off
    }
}

/// The application's routes, `/metrics` included; `/admin` only when `settings.admin_token`
/// is set; photos of badges go to `badges`, when given. Every route is behind the
/// [`limits`] layers.
pub fn router(
    settings: &Settings,
    faq: Arc<Faq>,
    dialog: Arc<Dialog>,
    desk: Arc<Desk>,
    store: Arc<dyn Store>,
    badges: Option<Arc<crate::desk::badge::BadgeDesk>>,
    metrics: Arc<Metrics>,
) -> Router {
    let (meta_desk, meta_badges) = (Arc::clone(&desk), badges.clone());
    let webhook = WebhookState {
        dialog: Arc::clone(&dialog),
        desk,
        auth_token: settings.twilio_auth_token.clone(),
        shared_key: settings.twilio_webhook_shared_key.clone(),
        webhook_url: settings.webhook_url().into(),
        badges,
        limiter: SenderLimiter::new(&settings.limits).map(Arc::new),
        metrics: Arc::clone(&metrics),
    };
    let health = Health { dialog: Arc::clone(&dialog), store: store.clone() };
    let mut router = Router::new().route("/healthz", get(healthz)).with_state(health);
    if twilio_webhook(settings) != TwilioWebhook::Off {
        router = router.merge(twilio::webhook::router(webhook));
    }
    if let (Some(phone_number_id), Some(app_secret), true) =
        (&settings.meta.phone_number_id, &settings.meta.app_secret, settings.meta.enabled())
    {
        let graph = match meta::graph::GraphClient::new(&settings.meta) {
            Ok(graph) => graph,
            Err(e) => {
                tracing::warn!(error = %e, "Meta's Graph API client: messages will not be marked read");
                None
            }
        };
        router = router.merge(meta::webhook::router(meta::webhook::MetaState {
            dialog,
            desk: Arc::clone(&meta_desk),
            badges: meta_badges,
            limiter: SenderLimiter::new(&settings.limits).map(Arc::new),
            metrics: Arc::clone(&metrics),
            app_secret: app_secret.clone(),
            verify_token: settings.meta.verify_token.clone(),
            phone_number_id: phone_number_id.clone(),
            graph,
        }));
    }
    router = router.merge(metrics::router(Arc::clone(&metrics), store.clone()));
    if let Some(token) = &settings.admin_token {
        router = router.merge(admin::router(faq, token));
        router = router.merge(admin::unanswered_router(store, token));
    }
    let limited = router.layer(DefaultBodyLimit::max(settings.max_body_bytes));
    limits::apply(limited, &settings.limits, metrics)
}

/// What `/healthz` looks at.
#[derive(Clone)]
struct Health {
    dialog: Arc<Dialog>,
    store: Arc<dyn Store>,
}

/// How long `/healthz` waits for the database to answer.
const HEALTH_PING: Duration = Duration::from_secs(2);

/// 200 with the FAQ's size when the database answers; 503 when it does not (a load
/// balancer then sends the webhooks to another replica).
async fn healthz(State(health): State<Health>) -> Response {
    let entries = health.dialog.engine().len();
    let database = match tokio::time::timeout(HEALTH_PING, health.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", HEALTH_PING.as_secs())),
    };
    match database {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok", "entries": entries, "database": "ok" }))
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "healthz: the database does not answer");
            let body =
                serde_json::json!({ "status": "unavailable", "entries": entries, "database": "unreachable" });
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}
