//! `POST /bot`: Twilio's WhatsApp webhook. The order of checks — content type (415), form
//! (400), signature (403), parameters given once (400) — then the per-sender limits, then a
//! photo to badge reading or a text to the desk, and the reply as TwiML. Nothing is
//! processed before the signature is verified.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tracing::Instrument;

use super::{ChannelError, Media, SIGNATURE_SETTINGS_HEADER, SignatureAlgorithm, WebhookForm};
use crate::desk::Desk;
use crate::desk::badge::{BadgeDesk, Photo, PhotoMessage};
use crate::desk::limits::{MAX_BODY_CHARS, SenderLimiter};
use crate::dialog::{Dialog, Incoming, Outcome, messages};
use crate::domain::Address;
use crate::engine::Lang;
use crate::telemetry::metrics::{MessageOutcome, Metrics};
use crate::web::{HttpError, has_media_type};

/// The header Twilio signs its requests with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// What the webhook works with; the server builds it from the settings.
#[derive(Clone)]
pub struct WebhookState {
    /// The dialog: its engine guesses the language of a refusal without store work.
    pub dialog: Arc<Dialog>,
    /// Runs each text message's turn.
    pub desk: Arc<Desk>,
    /// `TWILIO_AUTH_TOKEN`, for webhooks signed with HMAC-SHA1.
    pub auth_token: Option<SecretString>,
    /// The SharedKey's secret, for webhooks carrying `X-Twilio-Webhooks-Signature-Settings`.
    pub shared_key: Option<SecretString>,
    /// The public URL Twilio signs.
    pub webhook_url: Arc<str>,
    /// Badge OCR, when on: photos go there.
    pub badges: Option<Arc<BadgeDesk>>,
    /// The per-sender rate limit, when on.
    pub limiter: Option<Arc<SenderLimiter>>,
    /// Where messages are counted.
    pub metrics: Arc<Metrics>,
}

/// A request the webhook refuses, with the status that fits.
#[derive(Debug, Error)]
enum WebhookError {
    #[error("expected Content-Type application/x-www-form-urlencoded")]
    ContentType,
    #[error("malformed webhook form: {0}")]
    Form(#[from] ChannelError),
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    #[error("invalid X-Twilio-Signature")]
    BadSignature,
    #[error("unsupported X-Twilio-Webhooks-Signature-Settings")]
    UnknownAlgorithm,
    #[error("signed with a SharedKey, and TWILIO_WEBHOOK_SHARED_KEY is not set")]
    NoSharedKey,
    #[error("signed with the auth token, and TWILIO_AUTH_TOKEN is not set")]
    NoAuthToken,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match self {
            WebhookError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::Form(_) => StatusCode::BAD_REQUEST,
            WebhookError::MissingSignature
            | WebhookError::BadSignature
            | WebhookError::UnknownAlgorithm
            | WebhookError::NoSharedKey
            | WebhookError::NoAuthToken => StatusCode::FORBIDDEN,
        };
        let code = match self {
            WebhookError::ContentType => "unsupported_media_type",
            WebhookError::Form(_) => "bad_form",
            WebhookError::MissingSignature | WebhookError::BadSignature => "bad_signature",
            WebhookError::UnknownAlgorithm => "unknown_signature_algorithm",
            WebhookError::NoSharedKey | WebhookError::NoAuthToken => "no_secret",
        };
        HttpError::new(status, code, self.to_string()).into_response()
    }
}

/// The `/bot` route over `state`.
pub fn router(state: WebhookState) -> Router {
    Router::new().route("/bot", post(webhook)).with_state(state)
}

async fn webhook(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let started = std::time::Instant::now();
    if !has_media_type(&headers, "application/x-www-form-urlencoded") {
        return Err(WebhookError::ContentType);
    }
    let form = WebhookForm::parse(&body)?;
    check_signature(&state, &headers, &form)?;
    form.check_single_values()?;
    let from = form.from()?;
    let user = super::address(from)
        .map_err(|e| ChannelError::InvalidField { field: "From", reason: e.to_string() })?;
    let span = tracing::info_span!(
        "message",
        message_sid = form.message_sid(),
        from = %crate::telemetry::mask_sender(from)
    );
    let media = form.media()?.into_iter().next();
    // A turn the store could not commit (the database unreachable) wrote nothing: 503.
    let (outcome, messages, status) = turn(&state, &form, user, media).instrument(span).await;
    state.metrics.message(outcome, started.elapsed());
    Ok((status, [(header::CONTENT_TYPE, super::TWIML_CONTENT_TYPE)], super::twiml(&messages)).into_response())
}

/// Checks `X-Twilio-Signature` when a secret is configured: with the SharedKey and the
/// algorithm `X-Twilio-Webhooks-Signature-Settings` names, when the request carries that
/// header; else with the auth token and HMAC-SHA1. An algorithm this version does not know is
/// refused, as is a request whose kind of signature has no secret configured here.
fn check_signature(
    state: &WebhookState,
    headers: &HeaderMap,
    form: &WebhookForm,
) -> Result<(), WebhookError> {
    if state.auth_token.is_none() && state.shared_key.is_none() {
        return Ok(());
    }
    let signature =
        headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).ok_or(WebhookError::MissingSignature)?;
    let (key, algorithm) = match headers.get(SIGNATURE_SETTINGS_HEADER) {
        Some(settings) => {
            let algorithm = settings
                .to_str()
                .ok()
                .and_then(SignatureAlgorithm::from_settings)
                .ok_or(WebhookError::UnknownAlgorithm)?;
            (state.shared_key.as_ref().ok_or(WebhookError::NoSharedKey)?, algorithm)
        }
        None => (state.auth_token.as_ref().ok_or(WebhookError::NoAuthToken)?, SignatureAlgorithm::HmacSha1),
    };
    let valid = super::validate_signature_with(
        algorithm,
        key.expose_secret().as_bytes(),
        &state.webhook_url,
        form.params(),
        signature,
    );
    if valid { Ok(()) } else { Err(WebhookError::BadSignature) }
}

/// A signed message's reply: refused politely by the per-sender limits, else handled by the
/// desk.
async fn turn(
    state: &WebhookState,
    form: &WebhookForm,
    user: Address,
    media: Option<Media>,
) -> (MessageOutcome, Vec<String>, StatusCode) {
    let from = form.from().unwrap_or_default();
    let refusal = if state.limiter.as_ref().is_some_and(|l| !l.allow(from, form.message_sid())) {
        Some((MessageOutcome::RateLimited, &messages::SLOW_DOWN))
    } else if form.body().chars().count() > MAX_BODY_CHARS {
        Some((MessageOutcome::TooLong, &messages::TOO_LONG))
    } else {
        None
    };
    if let Some((outcome, text)) = refusal {
        // No store work: the language is guessed from the message itself.
        let lang = state.dialog.engine().detect_language(form.body()).unwrap_or(Lang::En);
        tracing::info!(outcome = outcome.as_str(), "message refused");
        return (outcome, vec![text.get(lang).to_owned()], StatusCode::OK);
    }
    let message_id = super::message_id(form);
    if let (Some(badges), Some(media)) = (&state.badges, media) {
        let Some(bot) = form.to().and_then(|to| super::address(to).ok()) else {
            // Without the bot's own number the result could never be sent.
            tracing::warn!("a photo without a valid To: not read");
            return (
                MessageOutcome::Error,
                vec![messages::INTERNAL_ERROR.get(Lang::En).to_owned()],
                StatusCode::OK,
            );
        };
        let photo = PhotoMessage {
            user,
            bot,
            message_id,
            media: Photo { url: media.url, content_type: media.content_type },
        };
        let accepted = badges.accept(photo).await;
        let outcome = if accepted.replayed { MessageOutcome::Duplicate } else { MessageOutcome::Badge };
        return (outcome, accepted.messages, StatusCode::OK);
    }
    let incoming =
        Incoming { user, text: form.body().to_owned(), profile_name: form.profile_name().map(str::to_owned) };
    let bot = form.to().and_then(|to| super::address(to).ok());
    match state.desk.handle_to(incoming, message_id, bot).await {
        Ok(handled) => {
            let outcome = match &handled.outcome {
                Some(outcome) => {
                    log_outcome(outcome, handled.ticket.as_deref());
                    if let Outcome::Answered { score, .. } = outcome {
                        state.metrics.match_score(*score);
                    }
                    MessageOutcome::from(outcome)
                }
                None => {
                    tracing::info!("duplicate delivery: same reply");
                    MessageOutcome::Duplicate
                }
            };
            (outcome, handled.messages, StatusCode::OK)
        }
        Err(e) => {
            // Nothing was committed, the MessageSid included: the user can simply resend.
            tracing::error!(error = %e, "turn failed");
            // 503: a provider retrying on errors delivers it again, to this replica or another.
            (
                MessageOutcome::Error,
                vec![messages::INTERNAL_ERROR.get(Lang::En).to_owned()],
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

/// One line per message, in its span (MessageSid, masked sender); never what the user typed.
fn log_outcome(outcome: &Outcome, ticket: Option<&str>) {
    match outcome {
        Outcome::Answered { id, score } => {
            tracing::info!(entry = %id, score = *score, "answered");
        }
        Outcome::RequestSubmitted(req) => {
            tracing::info!(ticket, kind = %req.kind, "request accepted and queued for e-mail");
        }
        other => tracing::info!(outcome = MessageOutcome::from(other).as_str(), "replied"),
    }
}
