//! The HTTP server: `POST /bot` (Twilio's WhatsApp webhook), `GET /healthz`, and the
//! [`admin`](crate::admin) routes when an admin token is set.
//!
//! Owns routing, request limits, the webhook's order of checks (content type → form →
//! signature → dialog) and the mapping of every failure to a status code. Nothing is
//! processed before the signature is verified.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::channel::{self, WebhookForm};
use crate::config::Settings;
use crate::dialog::{Dialog, Incoming, Outcome, messages};
use crate::engine::Lang;
use crate::faq::Faq;

/// The header Twilio signs its requests with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// What can stop the server from starting.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Listening without authentication on a non-loopback address.
    #[error(
        "refusing to listen on {0} without TWILIO_AUTH_TOKEN: anyone could post to the webhook. \
         Set TWILIO_AUTH_TOKEN (signatures are then checked), or listen on 127.0.0.1"
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
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Shared state of the request handlers.
#[derive(Clone)]
struct AppState {
    dialog: Arc<Dialog>,
    auth_token: Option<SecretString>,
    webhook_url: Arc<str>,
    /// Badge OCR, when on: photos go there.
    badges: Option<Arc<crate::badge::BadgeDesk>>,
}

/// A request the webhook refuses, with the status that fits.
#[derive(Debug, Error)]
enum WebhookError {
    #[error("expected Content-Type application/x-www-form-urlencoded")]
    ContentType,
    #[error("malformed webhook form: {0}")]
    Form(#[from] channel::ChannelError),
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    #[error("invalid X-Twilio-Signature")]
    BadSignature,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match self {
            WebhookError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::Form(_) => StatusCode::BAD_REQUEST,
            WebhookError::MissingSignature | WebhookError::BadSignature => StatusCode::FORBIDDEN,
        };
        tracing::warn!(status = status.as_u16(), error = %self, "webhook request refused");
        (status, self.to_string()).into_response()
    }
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish()
    }
}

impl Server {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the routes over `faq`.
    pub async fn bind(settings: &Settings, faq: Arc<Faq>) -> Result<Server, ServerError> {
        Server::bind_with_badges(settings, faq, None).await
    }

    /// [`Server::bind`], with photos of badges read by `badges`.
    pub async fn bind_with_badges(
        settings: &Settings,
        faq: Arc<Faq>,
        badges: Option<Arc<crate::badge::BadgeDesk>>,
    ) -> Result<Server, ServerError> {
        if settings.twilio_auth_token.is_none() && !settings.listen.ip().is_loopback() {
            return Err(ServerError::Unauthenticated(settings.listen));
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: settings.listen, source })?;
        Ok(Server { listener, router: router_with_badges(settings, faq, badges) })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve)
    }
}

/// The application's routes; `/admin` only when `settings.admin_token` is set.
pub fn router(settings: &Settings, faq: Arc<Faq>) -> Router {
    router_with_badges(settings, faq, None)
}

/// [`router`], with photos of badges read by `badges`.
pub fn router_with_badges(
    settings: &Settings,
    faq: Arc<Faq>,
    badges: Option<Arc<crate::badge::BadgeDesk>>,
) -> Router {
    let state = AppState {
        dialog: Arc::clone(faq.dialog()),
        auth_token: settings.twilio_auth_token.clone(),
        webhook_url: settings.webhook_url().into(),
        badges,
    };
    let mut router =
        Router::new().route("/bot", post(webhook)).route("/healthz", get(healthz)).with_state(state);
    if let Some(token) = &settings.admin_token {
        router = router.merge(crate::admin::router(faq, token));
    }
    router.layer(DefaultBodyLimit::max(settings.max_body_bytes))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({ "status": "ok", "entries": state.dialog.engine().len() });
    axum::Json(body).into_response()
}

/// True when the request's `Content-Type` is `media_type`, whatever its parameters.
pub(crate) fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    if !has_media_type(&headers, "application/x-www-form-urlencoded") {
        return Err(WebhookError::ContentType);
    }
    let form = WebhookForm::parse(&body)?;
    if let Some(token) = &state.auth_token {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingSignature)?;
        let valid = channel::validate_signature(
            token.expose_secret().as_bytes(),
            &state.webhook_url,
            form.params(),
            signature,
        );
        if !valid {
            return Err(WebhookError::BadSignature);
        }
    }
    if let Some(badges) = &state.badges
        && let Some(media) = form.media()?.into_iter().next()
    {
        let photo = crate::badge::PhotoMessage {
            user: form.from()?.to_owned(),
            bot: form.to().unwrap_or_default().to_owned(),
            message_sid: form.message_sid().map(str::to_owned),
            media,
        };
        let reply = badges.accept(photo);
        return Ok(
            ([(header::CONTENT_TYPE, channel::TWIML_CONTENT_TYPE)], channel::twiml(&[reply])).into_response()
        );
    }
    let incoming = Incoming {
        user: form.from()?.to_owned(),
        text: form.body().to_owned(),
        profile_name: form.profile_name().map(str::to_owned),
    };
    let messages = match state.dialog.handle(&incoming) {
        Ok(reply) => {
            log_outcome(form.message_sid(), &reply.outcome);
            reply.messages
        }
        Err(e) => {
            tracing::error!(error = %e, message_sid = form.message_sid(), "dialog failed");
            vec![messages::INTERNAL_ERROR.get(Lang::En).to_owned()]
        }
    };
    Ok(([(header::CONTENT_TYPE, channel::TWIML_CONTENT_TYPE)], channel::twiml(&messages)).into_response())
}

fn log_outcome(message_sid: Option<&str>, outcome: &Outcome) {
    match outcome {
        Outcome::Answered { id, score } => {
            tracing::info!(message_sid, entry = %id, score = *score, "answered");
        }
        other => tracing::info!(message_sid, outcome = ?other, "replied"),
    }
}
