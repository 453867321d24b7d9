//! The human side of a handed-over conversation: an agent's reply and the hand-back.
//!
//! An agent's reply goes to the employee through an [`AgentReplies`] port: what it needs
//! is a place to hand the message to, which accepts it or says why not. The server gives
//! it the durable outbound queue ([`Postbox`]): the reply is committed there, and the
//! sender worker owns retries and WhatsApp's 24-hour window (a template outside it, on
//! Meta). The reply is in the transcript before it is handed over.

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use super::outbound::Postbox;
use crate::dialog::handoff::BACK_TO_BOT;
use crate::domain::{Address, Clock, Outgoing};
use crate::engine::Lang;
use crate::store::{Conversations, Figures, Speaker, StoreError, TranscriptLine, Transcripts};

/// How many times a hand-back is tried again after losing a race on the session.
const MAX_CONFLICTS: usize = 8;

/// Where an agent's reply is handed to be delivered.
#[async_trait]
pub trait AgentReplies: Send + Sync {
    /// Accepts `body` for the employee `to`, from the bot's address `from` when the
    /// channel needs one (Twilio's `From`); an error says why it was not accepted (and
    /// nothing will be sent).
    async fn deliver(&self, from: Option<&Address>, to: &Address, body: &str) -> Result<(), String>;
}

/// The template key (`[meta.templates.agent_reply]`) an agent's reply and the hand-back
/// notice are sent as outside WhatsApp's 24-hour window: an agent may answer a day later.
pub const AGENT_REPLY_TEMPLATE: &str = "agent_reply";

/// The outbound queue takes an agent's reply: committed before this returns, then sent,
/// retried and windowed by the sender worker.
#[async_trait]
impl AgentReplies for Postbox {
    async fn deliver(&self, from: Option<&Address>, to: &Address, body: &str) -> Result<(), String> {
        if !self.delivers(to.channel()) {
            return Err(format!("the {} channel has no outbound API configured", to.channel().as_str()));
        }
        let message = Outgoing { template: Some(AGENT_REPLY_TEMPLATE.to_owned()), ..Outgoing::text(body) };
        self.post(to, from, &message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// What an agent's action can fail with.
#[derive(Debug, Error)]
pub enum HandoffError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such conversation.
    #[error("no such conversation")]
    NotFound,
    /// Replies cannot be sent: no outbound API is configured, or the conversation's bot
    /// address is unknown.
    #[error("replies cannot be sent: {0}")]
    NoOutbound(&'static str),
    /// The channel did not accept the reply.
    #[error("the reply was not accepted: {0}")]
    Refused(String),
}

/// An agent's actions on handed-over conversations.
pub struct HandoffDesk {
    store: Arc<dyn Conversations>,
    transcripts: Arc<dyn Transcripts>,
    figures: Arc<dyn Figures>,
    outbound: Option<Arc<dyn AgentReplies>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HandoffDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffDesk").field("outbound", &self.outbound.is_some()).finish()
    }
}

impl HandoffDesk {
    /// Agents' actions over the store, replies handed to `outbound` (none: replies are
    /// refused).
    pub fn new(
        store: Arc<dyn Conversations>,
        transcripts: Arc<dyn Transcripts>,
        figures: Arc<dyn Figures>,
        outbound: Option<Arc<dyn AgentReplies>>,
        clock: Arc<dyn Clock>,
    ) -> HandoffDesk {
        HandoffDesk { store, transcripts, figures, outbound, clock }
    }

    /// The dashboard's figures.
    pub fn figures(&self) -> &Arc<dyn Figures> {
        &self.figures
    }

    /// The transcripts.
    pub fn transcripts(&self) -> &Arc<dyn Transcripts> {
        &self.transcripts
    }

    /// Whether replies can be sent at all.
    pub fn can_reply(&self) -> bool {
        self.outbound.is_some()
    }

    /// Records `text` as `agent`'s reply in `user`'s transcript, then hands it over for
    /// delivery.
    pub async fn reply(&self, agent: &str, user: &Address, text: &str) -> Result<(), HandoffError> {
        let Some(outbound) = &self.outbound else {
            return Err(HandoffError::NoOutbound("no outbound queue"));
        };
        let conversation = self.transcripts.conversation(user).await?.ok_or(HandoffError::NotFound)?;
        let bot = conversation.bot;
        let now = self.clock.now_ms();
        // The first reply since the handover: how long the employee waited.
        if let Some(since) = conversation.handed_over_ms {
            let answered = self.transcripts.transcript(user, 200).await?;
            if !answered.iter().any(|l| l.speaker == Speaker::Agent && l.at_ms >= since) {
                self.figures.agent_replied(now, now.saturating_sub(since)).await?;
            }
        }
        let line = TranscriptLine {
            speaker: Speaker::Agent,
            author: Some(agent.to_owned()),
            text: text.to_owned(),
            at_ms: now,
        };
        self.transcripts.record(user, None, vec![line]).await?;
        outbound.deliver(bot.as_ref(), user, text).await.map_err(HandoffError::Refused)
    }

    /// Gives the conversation back to the bot: the employee's session leaves the handover
    /// (committed like a turn, so a message racing it is handled on one state or the
    /// other), the conversation is unflagged, and the employee is told, when replies can
    /// be sent.
    pub async fn hand_back(&self, user: &Address) -> Result<(), HandoffError> {
        let now = self.clock.now_ms();
        let session = super::update_session(&*self.store, user, now, MAX_CONFLICTS + 1, |session| {
            session.handoff.take().is_some()
        })
        .await?;
        let lang = session.lang.unwrap_or(Lang::En);
        self.transcripts.set_handed_over(user, None).await?;
        let back = BACK_TO_BOT.get(lang);
        let line = TranscriptLine {
            speaker: Speaker::Bot,
            author: None,
            text: back.to_owned(),
            at_ms: self.clock.now_ms(),
        };
        self.transcripts.record(user, None, vec![line]).await?;
        if let Some(outbound) = &self.outbound
            && let Err(e) = outbound
                .deliver(self.transcripts.conversation(user).await?.and_then(|c| c.bot).as_ref(), user, back)
                .await
        {
            tracing::warn!(error = %e, "the employee could not be told the bot is back");
        }
        Ok(())
    }
}
