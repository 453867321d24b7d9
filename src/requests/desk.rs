//! The webhook's side of a turn: deduplicate by MessageSid, run the dialog, commit, reply.
//!
//! Order, and why: (1) a MessageSid already committed gets its stored messages at once;
//! (2) the session is loaded and the dialog answers, with no I/O; (3) the session, a
//! confirmed request (its ticket allocated there), its outbox row and the MessageSid's
//! messages are committed in one transaction — a duplicate racing this turn loses at the
//! MessageSid's unique key and gets the winner's messages; (4) only then is the reply
//! returned, and the mail worker woken. So a user told "registered" has a stored request,
//! and a retried webhook never creates a second one.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Notify;

use crate::dialog::{Dialog, Incoming, Outcome};
use crate::engine::Lang;
use crate::store::{Durable, StoreError, Turn};

/// What a turn can fail with.
#[derive(Debug, Error)]
pub enum DeskError {
    /// The durable store failed: nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a handled message produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The messages to send back.
    pub messages: Vec<String>,
    /// What the dialog did; `None` for a replayed MessageSid.
    pub outcome: Option<Outcome>,
    /// The language replied in (the session's, for a replay).
    pub lang: Lang,
    /// The ticket of the request this message created.
    pub ticket: Option<String>,
    /// True when this MessageSid had been handled before: nothing new was done.
    pub replayed: bool,
}

/// Runs turns of the dialog over the durable store.
#[derive(Debug, Clone)]
pub struct Desk {
    dialog: Arc<Dialog>,
    store: Durable,
    mail_wakeup: Arc<Notify>,
}

impl Desk {
    /// A desk answering with `dialog`, committing to `store`, and waking `mail_wakeup` (the
    /// outbox worker's) when a request is queued.
    pub fn new(dialog: Arc<Dialog>, store: Durable, mail_wakeup: Arc<Notify>) -> Self {
        Desk { dialog, store, mail_wakeup }
    }

    /// The store.
    pub fn store(&self) -> &Durable {
        &self.store
    }

    /// Handles one message; `message_sid` is Twilio's id of it, the deduplication key.
    pub async fn handle(&self, msg: Incoming, message_sid: Option<String>) -> Result<Handled, DeskError> {
        let user = msg.user.clone();
        if let Some(sid) = message_sid.clone() {
            let (replay, session) = self
                .store
                .run(move |s| {
                    let replay = s.replay(&sid)?;
                    let session = if replay.is_some() { Some(s.load(&user)?) } else { None };
                    Ok((replay, session))
                })
                .await?;
            if let Some(messages) = replay {
                let lang = session.and_then(|s| s.lang).unwrap_or(Lang::En);
                return Ok(Handled { messages, outcome: None, lang, ticket: None, replayed: true });
            }
        }
        let user = msg.user.clone();
        let mut session = self.store.run(move |s| s.load(&user)).await?;
        let reply = self.dialog.respond(&mut session, &msg);
        session.lang = Some(reply.lang);
        let lang = reply.lang;
        let outcome = reply.outcome;
        let messages = reply.messages;
        let request = match &outcome {
            Outcome::RequestSubmitted(req) => Some((**req).clone()),
            _ => None,
        };
        let user = msg.user;
        let sid = message_sid;
        let committed = self
            .store
            .run(move |s| {
                s.commit(&Turn {
                    user: &user,
                    message_sid: sid.as_deref(),
                    session: &session,
                    messages: &messages,
                    request: request.as_ref(),
                    now_ms: super::now_ms(),
                })
            })
            .await?;
        if committed.ticket.is_some() {
            self.mail_wakeup.notify_one();
        }
        Ok(Handled {
            messages: committed.messages,
            outcome: (!committed.replayed).then_some(outcome),
            lang,
            ticket: committed.ticket,
            replayed: committed.replayed,
        })
    }
}
