//! `GET /metrics`: the registry of [`crate::telemetry::metrics`] in the OpenMetrics text
//! format, with the outbox's depth and dead letters and the outbound queue's depth read from the store at each scrape; and
//! the dialog's outcomes as the registry's labels.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::dialog::Outcome;
use crate::store::Store;
use crate::telemetry::metrics::{CONTENT_TYPE, MessageOutcome, Metrics};

impl From<&Outcome> for MessageOutcome {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Answered { .. } => MessageOutcome::Answered,
            Outcome::Declined => MessageOutcome::Declined,
            Outcome::Suggested => MessageOutcome::Suggested,
            Outcome::Request => MessageOutcome::Request,
            Outcome::RequestSubmitted(_) => MessageOutcome::RequestSubmitted,
            Outcome::Greeting
            | Outcome::Menu
            | Outcome::Other
            | Outcome::HandedOver
            | Outcome::ForAgent
            | Outcome::HandedBack => MessageOutcome::Other,
        }
    }
}

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
}

/// `GET /metrics`; the outbox depth and dead letters are read from the store at each scrape.
pub fn router(metrics: Arc<Metrics>, store: Arc<dyn Store>) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(MetricsState { metrics, store })
}

async fn scrape(State(state): State<MetricsState>) -> Response {
    match state.store.outbox_depth().await {
        Ok(depth) => state.metrics.set_outbox_depth(depth),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox depth"),
    }
    match state.store.dead_mail().await {
        Ok(dead) => state.metrics.set_outbox_dead(dead),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the dead letters"),
    }
    match state.store.outbound_counts().await {
        Ok(counts) => state.metrics.set_outbound_depth(counts.queued),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbound queue"),
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.encode()).into_response()
}
