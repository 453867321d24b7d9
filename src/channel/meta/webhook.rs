//! `GET /meta` and `POST /meta`: Meta's WhatsApp Cloud API webhook.
//!
//! `GET` answers Meta's verification: `hub.mode=subscribe` and a `hub.verify_token` equal
//! (in constant time) to `META_VERIFY_TOKEN` echo `hub.challenge` as text/plain; anything
//! else is 403. `POST` checks `X-Hub-Signature-256` over the raw body bytes before reading
//! them (missing: 401, forged: 403), then reads the notification: each message's turn is
//! committed with its reply queued for the sender worker, the badge photos handed to badge
//! reading, delivery statuses counted. The answer is 200 once everything is durably queued
//! (Meta redelivers for days otherwise); a store failure answers 500, with nothing of that
//! message committed, so Meta's redelivery is handled afresh. A redelivered message id —
//! also several copies at once — queues nothing more.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::graph::GraphClient;
use super::{Notification, SIGNATURE_HEADER, WebhookMessage, user_address, valid_signature};
use crate::desk::Desk;
use crate::desk::badge::{BadgeDesk, Photo, PhotoMessage};
use crate::desk::limits::{MAX_BODY_CHARS, SenderLimiter};
use crate::dialog::{Dialog, Incoming, Outcome, messages};
use crate::domain::{Address, Bilingual, MessageId, Outgoing};
use crate::engine::Lang;
use crate::telemetry::metrics::{MessageOutcome, Metrics};
use crate::web::HttpError;

/// The answer to a kind of message the bot cannot read (a sticker, a voice note…).
pub const UNSUPPORTED: Bilingual = Bilingual {
    en: "Sorry, I can only read text and photos. Please type your question, or send a photo of your badge.",
    fr: "Désolé, je ne sais lire que du texte et des photos. Écrivez votre question, ou envoyez une photo de votre badge.",
};

/// What the webhook works with; the server builds it from the settings.
#[derive(Clone)]
pub struct MetaState {
    /// The dialog: its engine guesses the language of a refusal without store work.
    pub dialog: Arc<Dialog>,
    /// Runs each message's turn, its reply queued.
    pub desk: Arc<Desk>,
    /// Badge OCR, when on.
    pub badges: Option<Arc<BadgeDesk>>,
    /// The per-sender rate limit, when on.
    pub limiter: Option<Arc<SenderLimiter>>,
    /// Where messages and statuses are counted.
    pub metrics: Arc<Metrics>,
    /// `META_APP_SECRET`: the signature's key.
    pub app_secret: SecretString,
    /// `META_VERIFY_TOKEN`: without it, verification is refused.
    pub verify_token: Option<SecretString>,
    /// The business phone number's id: the bot's address on Meta.
    pub phone_number_id: String,
    /// The Graph API, to mark messages read.
    pub graph: Option<GraphClient>,
}

/// The `/meta` routes over `state`.
pub fn router(state: MetaState) -> Router {
    Router::new().route("/meta", get(verify).post(receive)).with_state(state)
}

#[derive(Debug, Deserialize)]
struct Verification {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn verify(State(state): State<MetaState>, Query(q): Query<Verification>) -> Response {
    let matches = match (&state.verify_token, &q.token) {
        (Some(expected), Some(given)) => {
            bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes()))
        }
        _ => false,
    };
    match (q.mode.as_deref(), matches, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("Meta webhook verified");
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge).into_response()
        }
        _ => HttpError::new(StatusCode::FORBIDDEN, "verification_failed", "webhook verification refused")
            .into_response(),
    }
}

async fn receive(
    State(state): State<MetaState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, HttpError> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        HttpError::new(StatusCode::UNAUTHORIZED, "bad_signature", "missing X-Hub-Signature-256")
    })?;
    if !valid_signature(state.app_secret.expose_secret().as_bytes(), &body, signature) {
        return Err(HttpError::new(StatusCode::FORBIDDEN, "bad_signature", "invalid X-Hub-Signature-256"));
    }
    let notification: Notification = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, "bad_json", format!("malformed notification: {e}"))
    })?;
    for change in notification.entry.iter().flat_map(|e| &e.changes) {
        let value = &change.value;
        for status in &value.statuses {
            state.metrics.channel_status(&status.status);
        }
        for message in &value.messages {
            let started = Instant::now();
            let Ok(user) = user_address(message, &value.contacts) else {
                tracing::warn!(message_id = %message.id, "a Meta message without a sender: ignored");
                continue;
            };
            let span = tracing::info_span!(
                "message",
                message_id = %message.id,
                from = %crate::telemetry::mask_sender(user.id())
            );
            let name = value
                .contacts
                .iter()
                .find(|c| c.wa_id.as_deref() == Some(user.id()) || c.user_id.as_deref() == Some(user.id()))
                .or(value.contacts.first())
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.clone());
            let outcome = handle(&state, message, user, name).instrument(span).await?;
            state.metrics.message(outcome, started.elapsed());
        }
    }
    Ok(StatusCode::OK)
}

/// A store failure: 500, so that Meta delivers the notification again.
fn unavailable(e: impl std::fmt::Display) -> HttpError {
    tracing::error!(error = %e, "Meta message not queued: Meta will deliver it again");
    HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", "the message could not be queued")
}

/// One message: refused politely, handed to badge reading, or a dialog turn.
async fn handle(
    state: &MetaState,
    message: &WebhookMessage,
    user: Address,
    name: Option<String>,
) -> Result<MessageOutcome, HttpError> {
    let message_id = MessageId::parse(&message.id).ok();
    let text = message.text();
    let guess = |t: &str| state.dialog.engine().detect_language(t).unwrap_or(Lang::En);
    let refusal = if state.limiter.as_ref().is_some_and(|l| !l.allow(user.id(), Some(&message.id))) {
        Some((MessageOutcome::RateLimited, &messages::SLOW_DOWN))
    } else if text.as_ref().is_some_and(|t| t.chars().count() > MAX_BODY_CHARS) {
        Some((MessageOutcome::TooLong, &messages::TOO_LONG))
    } else {
        None
    };
    if let Some((outcome, said)) = refusal {
        tracing::info!(outcome = outcome.as_str(), "message refused");
        let lang = guess(text.as_deref().unwrap_or(""));
        return answer(state, &user, message_id, said.get(lang), outcome).await;
    }
    if message.kind == "image"
        && let Some(image) = &message.image
    {
        let Some(badges) = &state.badges else {
            return answer(state, &user, message_id, UNSUPPORTED.get(Lang::En), MessageOutcome::Other).await;
        };
        let bot = super::address(&state.phone_number_id).map_err(unavailable)?;
        let photo = PhotoMessage {
            user: user.clone(),
            bot,
            message_id,
            media: Photo { url: image.id.clone(), content_type: image.mime_type.clone() },
        };
        let accepted = badges.accept(photo).await;
        if accepted.replayed {
            return Ok(MessageOutcome::Duplicate);
        }
        for said in &accepted.messages {
            post(state, &user, said).await?;
        }
        mark_read(state, &message.id);
        return Ok(MessageOutcome::Badge);
    }
    let Some(text) = text else {
        tracing::info!(kind = %message.kind, "a kind of message the bot cannot read");
        return answer(state, &user, message_id, UNSUPPORTED.get(guess("")), MessageOutcome::Other).await;
    };
    let incoming = Incoming { user, text, profile_name: name };
    let handled = state.desk.handle_queued(incoming, message_id, None).await.map_err(unavailable)?;
    let outcome = match &handled.outcome {
        Some(outcome) => {
            if let Outcome::Answered { score, .. } = outcome {
                state.metrics.match_score(*score);
            }
            tracing::info!(outcome = MessageOutcome::from(outcome).as_str(), "reply queued");
            mark_read(state, &message.id);
            MessageOutcome::from(outcome)
        }
        None => {
            tracing::info!("duplicate delivery: nothing more queued");
            MessageOutcome::Duplicate
        }
    };
    Ok(outcome)
}

/// Queues `text` for `user` as the whole answer to `message_id`, once however often the
/// message is delivered.
async fn answer(
    state: &MetaState,
    user: &Address,
    message_id: Option<MessageId>,
    text: &str,
    outcome: MessageOutcome,
) -> Result<MessageOutcome, HttpError> {
    let fresh = state.desk.say_queued(user, message_id, text).await.map_err(unavailable)?;
    Ok(if fresh { outcome } else { MessageOutcome::Duplicate })
}

/// Queues `text` for `user`.
async fn post(state: &MetaState, user: &Address, text: &str) -> Result<(), HttpError> {
    let Some(postbox) = state.desk.postbox() else {
        return Err(unavailable("no outbound queue"));
    };
    postbox.post(user, None, &Outgoing::text(text)).await.map(|_| ()).map_err(unavailable)
}

/// Marks the message read, in the background: a courtesy, never a reason to fail.
fn mark_read(state: &MetaState, wamid: &str) {
    if let Some(graph) = state.graph.clone() {
        let wamid = wamid.to_owned();
        tokio::spawn(async move {
            if let Err(e) = graph.mark_read(&wamid).await {
                tracing::debug!(error = %e, "cannot mark a Meta message read");
            }
        });
    }
}
