//! The sender worker: drains the store's outbound queue ([`Outbound`]) through each
//! channel's outbound API ([`Deliver`], implemented by `channel::twilio::rest` and
//! `channel::meta`'s Graph client; the composition root hands them in, so this module knows
//! no channel).
//!
//! A message is committed before it is attempted (with the turn that produced it, or on its
//! own), then claimed with a lease: several workers — or replicas on one database — never
//! attempt it at once, and one that died mid-send leaves it to be claimed again when the
//! lease ends. The channel's answer is recorded first thing after it comes: "sent" with the
//! channel's message id, and from then on the message is never sent again. A failure worth
//! repeating (the network, a 429, a 5xx, Meta's throughput errors) is retried after a
//! doubling delay; anything else — or too many attempts — drops the message with the reason
//! logged. A crash between the channel's acceptance and the record sends it again after the
//! lease: at least once, never silently lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use thiserror::Error;
use tokio::sync::Notify;

use crate::config::OutboundSettings;
use crate::domain::{Address, Channel, Clock, Outgoing};
use crate::store::{NewOutbound, Outbound, OutboundItem, StoreError};
use crate::telemetry::metrics::Metrics;

/// WhatsApp's customer-service window: free text only this long after the user's last
/// message.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How long the worker sleeps with nothing due before looking again: messages queued by
/// another process on the same database (a replica, the CLI) wake no one here.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A message that could not be sent.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct SendFailure {
    /// Why, as the channel's API said it.
    pub message: String,
    /// True when trying again later may succeed (network, rate limit, server error); false
    /// when the channel refused the message for good.
    pub retryable: bool,
}

/// One message to deliver, as the worker hands it to a channel.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The user.
    pub to: Address,
    /// The bot's own address, when the message was queued with one.
    pub from: Option<Address>,
    /// What to say.
    pub message: Outgoing,
    /// True when the user wrote within [`WINDOW`]: free text is allowed.
    pub in_window: bool,
}

/// What the channel answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The channel's id of the (last) message sent.
    pub provider_message_id: Option<String>,
}

/// Sends a queued message: implemented by each channel's outbound API.
pub trait Deliver: Send + Sync {
    /// Sends `delivery`, rendered as the channel can (text, buttons, a list, a template).
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<Delivered, SendFailure>>;
}

/// Queues messages and wakes the worker: what the desk, badge reading and (later) the
/// console hold.
#[derive(Clone)]
pub struct Postbox {
    store: Arc<dyn Outbound>,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Notify>,
    channels: Arc<Vec<Channel>>,
}

impl std::fmt::Debug for Postbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postbox").field("channels", &self.channels).finish_non_exhaustive()
    }
}

impl Postbox {
    /// A postbox over `store`, whose worker delivers on `channels` and listens on `wakeup`.
    pub fn new(
        store: Arc<dyn Outbound>,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Notify>,
        channels: Vec<Channel>,
    ) -> Postbox {
        Postbox { store, clock, wakeup, channels: Arc::new(channels) }
    }

    /// True when a worker can deliver on `channel`.
    pub fn delivers(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }

    /// Queues `message` for `to`, durably, and wakes the worker.
    pub async fn post(
        &self,
        to: &Address,
        from: Option<&Address>,
        message: &Outgoing,
    ) -> Result<i64, StoreError> {
        let item = NewOutbound { to: to.clone(), from: from.cloned(), payload: message.to_json() };
        let ids = self.store.queue_outbound(vec![item], self.clock.now_ms()).await?;
        self.wake();
        ids.first().copied().ok_or_else(|| StoreError::backend("nothing queued"))
    }

    /// The signal the worker waits on.
    pub fn wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.wakeup)
    }

    /// Wakes the worker: something was committed.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }
}

/// The sender worker.
pub struct Sender {
    store: Arc<dyn Outbound>,
    channels: HashMap<Channel, Arc<dyn Deliver>>,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Notify>,
    settings: OutboundSettings,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels: Vec<Channel> = self.channels.keys().copied().collect();
        f.debug_struct("Sender").field("channels", &channels).finish_non_exhaustive()
    }
}

impl Sender {
    /// A worker delivering `store`'s queue through `channels`, woken by `wakeup`.
    pub fn new(
        store: Arc<dyn Outbound>,
        channels: HashMap<Channel, Arc<dyn Deliver>>,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Notify>,
        settings: OutboundSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> Sender {
        Sender { store, channels, clock, wakeup, settings, metrics }
    }

    /// Runs until aborted: claims what is due, delivers it (up to `max_concurrent` at
    /// once), then sleeps until the next message is due or a commit wakes it.
    pub async fn run(self) {
        let lease = i64::try_from(self.settings.lease_ms).unwrap_or(i64::MAX);
        loop {
            let now = self.clock.now_ms();
            let claimed = match self.store.claim_outbound(now, lease, self.settings.max_concurrent).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!(error = %e, "outbound queue: cannot claim messages");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if !claimed.is_empty() {
                // One user's messages in order, one after the other; users side by side.
                let mut by_user: Vec<(Address, Vec<OutboundItem>)> = Vec::new();
                for item in claimed {
                    match by_user.iter_mut().find(|(to, _)| *to == item.to) {
                        Some((_, items)) => items.push(item),
                        None => by_user.push((item.to.clone(), vec![item])),
                    }
                }
                let this = &self;
                let users = by_user.into_iter().map(|(_, items)| async move {
                    for item in items {
                        this.attempt(item).await;
                    }
                });
                futures_util::future::join_all(users).await;
                continue;
            }
            let next = self.store.next_outbound_after(now).await.ok().flatten();
            let wait = next.map_or(IDLE_POLL, |at| {
                Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0)).min(IDLE_POLL)
            });
            let _ = tokio::time::timeout(wait, self.wakeup.notified()).await;
        }
    }

    /// One attempt at `item`, and its outcome recorded.
    async fn attempt(&self, item: OutboundItem) {
        let id = item.id;
        let channel = item.to.channel();
        let Some(message) = Outgoing::from_json(&item.payload) else {
            self.drop_item(id, channel, "the queued payload is not a message").await;
            return;
        };
        let Some(deliverer) = self.channels.get(&channel) else {
            let reason = format!("the {channel} channel is not configured");
            self.retry(&item, &reason, true).await;
            return;
        };
        let now = self.clock.now_ms();
        let window = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let in_window = item.last_inbound_ms.is_some_and(|at| now.saturating_sub(at) < window);
        let delivery = Delivery { to: item.to.clone(), from: item.from.clone(), message, in_window };
        match deliverer.deliver(&delivery).await {
            Ok(done) => {
                let at = self.clock.now_ms();
                match self.store.outbound_sent(id, done.provider_message_id.as_deref(), at).await {
                    Ok(_) => tracing::info!(outbound = id, channel = %channel, "message sent"),
                    Err(e) => tracing::error!(
                        outbound = id,
                        error = %e,
                        "message sent but not recorded: it may be sent again once its lease ends"
                    ),
                }
                if let Some(m) = &self.metrics {
                    m.outbound_sent();
                }
            }
            Err(e) if e.retryable && item.attempts < self.settings.max_attempts => {
                self.retry(&item, &e.message, false).await;
            }
            Err(e) => self.drop_item(id, channel, &e.message).await,
        }
    }

    async fn retry(&self, item: &OutboundItem, error: &str, long: bool) {
        let exponent = item.attempts.saturating_sub(1).min(30);
        let delay = if long {
            self.settings.retry_max_ms
        } else {
            self.settings.retry_initial_ms.saturating_mul(1u64 << exponent).min(self.settings.retry_max_ms)
        };
        let at = self.clock.now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
        tracing::warn!(
            outbound = item.id,
            attempts = item.attempts,
            retry_in_ms = delay,
            error,
            "message not sent; will retry"
        );
        if let Err(e) = self.store.outbound_retry(item.id, error, at).await {
            tracing::error!(outbound = item.id, error = %e, "cannot record a failed attempt");
        }
        if let Some(m) = &self.metrics {
            m.outbound_retried();
        }
    }

    async fn drop_item(&self, id: i64, channel: Channel, reason: &str) {
        tracing::warn!(outbound = id, channel = %channel, reason, "message dropped");
        if let Err(e) = self.store.outbound_dropped(id, reason, self.clock.now_ms()).await {
            tracing::error!(outbound = id, error = %e, "cannot record a dropped message");
        }
        if let Some(m) = &self.metrics {
            m.outbound_dropped();
        }
    }
}
