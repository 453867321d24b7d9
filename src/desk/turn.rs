//! The webhook's side of a turn: run the dialog, commit, reply; deduplicated by message id.
//!
//! Order, and why: (1) the session is loaded — from the store's memory, usually — and the
//! dialog answers, with no I/O; (2) the message id, the session, a confirmed request (its
//! ticket allocated there), its outbox row and a declined question's count are committed in
//! one transaction — a message id already committed, or a duplicate racing this turn, finds
//! its key taken and gets the first reply back, with nothing written; a turn whose session
//! changed since (another message of the same user, committed meanwhile) commits nothing and
//! is handled again from (1); (3) only then is the reply returned, and the mail worker
//! woken. So a user told "registered" has a stored request, and a retried webhook never
//! creates a second one.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{Notify, Semaphore};

use super::outbound::Postbox;
use crate::dialog::{Dialog, Incoming, Outcome, Reply};
use crate::domain::{Address, Clock, MessageId, Outgoing};
use crate::engine::Lang;
use crate::store::{
    Committed, Conversations, Figures, NewMail, NewOutbound, Speaker, StoreError, TranscriptLine,
    Transcripts, Turn,
};

/// How many times a turn is handled again after losing a race on its user's session.
const MAX_CONFLICTS: usize = 8;

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
    /// What the dialog did; `None` for a replayed message.
    pub outcome: Option<Outcome>,
    /// The language replied in (the session's, for a replay).
    pub lang: Lang,
    /// The ticket of the request this message created.
    pub ticket: Option<String>,
    /// True when this message had been handled before: nothing new was done.
    pub replayed: bool,
}

/// Runs turns of the dialog over the durable store.
#[derive(Clone)]
pub struct Desk {
    dialog: Arc<Dialog>,
    store: Arc<dyn Conversations>,
    /// The time of each turn (a ticket's year, what pruning measures a session by).
    clock: Arc<dyn Clock>,
    mail_wakeup: Arc<Notify>,
    /// The outbound queue, for channels whose replies go out after the webhook's answer.
    postbox: Option<Postbox>,
    /// With the semantic scorer on, a turn's matching takes milliseconds of CPU: it runs on
    /// the blocking pool, at most one per core, so the async workers keep serving.
    matching: Arc<Semaphore>,
    /// Where each turn's lines go, and which conversations wait for a person (none: not
    /// kept).
    transcripts: Option<Arc<dyn Transcripts>>,
    /// Where each turn is counted for the dashboard (none: not counted).
    figures: Option<Arc<dyn Figures>>,
    /// Where a handover is e-mailed, and the console's base URL for the link.
    handover_mail: Option<(String, String)>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").field("dialog", &self.dialog).finish_non_exhaustive()
    }
}

impl Desk {
    /// A desk answering with `dialog`, committing to `store`, and waking `mail_wakeup` (the
    /// outbox worker's) when a request is queued; replies that go out later are queued
    /// through `postbox` ([`Desk::handle_queued`]).
    pub fn new(
        dialog: Arc<Dialog>,
        store: Arc<dyn Conversations>,
        clock: Arc<dyn Clock>,
        mail_wakeup: Arc<Notify>,
        postbox: Option<Postbox>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Desk {
            dialog,
            store,
            clock,
            mail_wakeup,
            postbox,
            matching: Arc::new(Semaphore::new(cores)),
            transcripts: None,
            figures: None,
            handover_mail: None,
        }
    }

    /// E-mails each handover to `recipient` through the outbox, committed with the turn
    /// like a request (it is listed among them), with a link to the conversation under
    /// `base_url` (the server's public URL).
    pub fn with_handover_mail(mut self, recipient: String, base_url: String) -> Self {
        self.handover_mail = Some((recipient, base_url.trim_end_matches('/').to_owned()));
        self
    }

    /// Keeps each turn's lines in `transcripts`, with which conversations are handed over,
    /// and counts each turn in `figures`.
    pub fn with_transcripts(mut self, transcripts: Arc<dyn Transcripts>, figures: Arc<dyn Figures>) -> Self {
        self.transcripts = Some(transcripts);
        self.figures = Some(figures);
        self
    }

    /// What wakes the outbox worker (when an e-mail is queued).
    pub fn mail_wakeup(&self) -> &Arc<Notify> {
        &self.mail_wakeup
    }

    /// The outbound queue, when the desk has one.
    pub fn postbox(&self) -> Option<&Postbox> {
        self.postbox.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Conversations> {
        &self.store
    }

    /// Handles one message; `message_id` is the channel's id of it, the deduplication key.
    pub async fn handle(&self, msg: Incoming, message_id: Option<MessageId>) -> Result<Handled, DeskError> {
        self.handle_with(msg, message_id, None, None).await
    }

    /// [`Desk::handle`] for a message sent to the bot's address `bot` (kept with the
    /// conversation: a person's reply comes from there).
    pub async fn handle_to(
        &self,
        msg: Incoming,
        message_id: Option<MessageId>,
        bot: Option<Address>,
    ) -> Result<Handled, DeskError> {
        self.handle_with(msg, message_id, None, bot).await
    }

    /// Handles one message whose reply goes out later, through the outbound queue: the
    /// reply (its choices included) is committed to the queue with the turn — the message
    /// id's claim, the session — in one transaction, from `from` (the bot's address, if
    /// the channel needs one), and the sender worker is woken. A redelivered message id
    /// queues nothing. Without a postbox the reply is only returned.
    pub async fn handle_queued(
        &self,
        msg: Incoming,
        message_id: Option<MessageId>,
        from: Option<Address>,
    ) -> Result<Handled, DeskError> {
        let handled = self.handle_with(msg, message_id, Some(from.clone()), from).await?;
        if let Some(postbox) = &self.postbox
            && !handled.replayed
        {
            postbox.wake();
        }
        Ok(handled)
    }

    /// Queues `text` for `user` as the answer to `message_id`, the session left as it is:
    /// a channel's own refusal (a kind of message the bot cannot read), claimed like a
    /// turn so that a redelivery queues nothing. False when the message id was handled
    /// before.
    pub async fn say_queued(
        &self,
        user: &Address,
        message_id: Option<MessageId>,
        text: &str,
    ) -> Result<bool, DeskError> {
        let mut conflicts = 0;
        loop {
            let (session, version) = super::load_session(&*self.store, user).await?;
            let outbound = match &self.postbox {
                Some(_) => vec![NewOutbound {
                    to: user.clone(),
                    from: None,
                    payload: Outgoing::text(text).to_json(),
                }],
                None => Vec::new(),
            };
            let turn = Turn {
                user: user.clone(),
                message_id: message_id.clone(),
                session: super::encode_session(&session)?,
                session_version: version,
                messages: vec![text.to_owned()],
                request: None,
                mail: None,
                unanswered: None,
                now_ms: self.clock.now_ms(),
                outbound,
            };
            match self.store.commit(turn).await {
                Err(StoreError::Conflict) if conflicts < MAX_CONFLICTS => conflicts += 1,
                Err(e) => return Err(e.into()),
                Ok(committed) => {
                    if let Some(postbox) = &self.postbox
                        && !committed.replayed
                    {
                        postbox.wake();
                    }
                    return Ok(!committed.replayed);
                }
            }
        }
    }

    async fn handle_with(
        &self,
        msg: Incoming,
        message_id: Option<MessageId>,
        queue: Option<Option<Address>>,
        bot: Option<Address>,
    ) -> Result<Handled, DeskError> {
        let mut conflicts = 0;
        loop {
            match self.turn(&msg, message_id.clone(), queue.as_ref()).await {
                Err(StoreError::Conflict) if conflicts < MAX_CONFLICTS => conflicts += 1,
                Err(e) => return Err(e.into()),
                Ok((committed, outcome, lang, handed)) => {
                    // A request's e-mail, or a handover's (see `handover_mail`), was queued.
                    let handover = !committed.replayed && matches!(outcome, Outcome::HandedOver);
                    if committed.ticket.is_some() || (handover && self.handover_mail.is_some()) {
                        self.mail_wakeup.notify_one();
                    }
                    if !committed.replayed {
                        self.keep_transcript(&msg, bot.as_ref(), &committed.messages, handed).await;
                        self.count(&outcome).await;
                    }
                    return Ok(Handled {
                        messages: committed.messages,
                        outcome: (!committed.replayed).then_some(outcome),
                        lang,
                        ticket: committed.ticket,
                        replayed: committed.replayed,
                    });
                }
            }
        }
    }

    /// Loads the session, answers, commits: once. A message id already committed is found
    /// by the commit, which then writes nothing and gives the first reply back: the dialog
    /// has no side effects, so answering a duplicate again costs only the matching.
    async fn turn(
        &self,
        msg: &Incoming,
        message_id: Option<MessageId>,
        queue: Option<&Option<Address>>,
    ) -> Result<(Committed, Outcome, Lang, Option<Option<i64>>), StoreError> {
        let (mut session, version) = super::load_session(&*self.store, &msg.user).await?;
        let was = session.handoff.map(|h| h.since_ms);
        let reply = if self.dialog.engine().is_semantic() {
            // The semaphore is never closed.
            let _place = self.matching.acquire().await.ok();
            let (dialog, msg) = (Arc::clone(&self.dialog), msg.clone());
            let done = tokio::task::spawn_blocking(move || {
                let reply = dialog.respond(&mut session, &msg);
                (session, reply)
            })
            .await;
            let (back, reply) = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            session = back;
            reply
        } else {
            self.dialog.respond(&mut session, msg)
        };
        session.lang = Some(reply.lang);
        let now = session.handoff.map(|h| h.since_ms);
        let handed = (was != now).then_some(now);
        let request = match &reply.outcome {
            Outcome::RequestSubmitted(req) => Some((**req).clone()),
            _ => None,
        };
        let mail = match &reply.outcome {
            Outcome::HandedOver => self.handover_mail(msg, &session, reply.lang),
            _ => None,
        };
        // Counted for HR with the turn itself, so a redelivery is not counted twice.
        let unanswered = match reply.outcome {
            Outcome::Declined => crate::domain::group_key(&msg.text),
            _ => None,
        };
        let outbound = match (queue, &self.postbox) {
            (Some(from), Some(_)) => outgoing(&reply)
                .iter()
                .map(|m| NewOutbound { to: msg.user.clone(), from: from.clone(), payload: m.to_json() })
                .collect(),
            _ => Vec::new(),
        };
        let committed = self
            .store
            .commit(Turn {
                user: msg.user.clone(),
                message_id,
                session: super::encode_session(&session)?,
                session_version: version,
                messages: reply.messages,
                request,
                mail,
                unanswered,
                now_ms: self.clock.now_ms(),
                outbound,
            })
            .await?;
        Ok((committed, reply.outcome, reply.lang, handed))
    }

    /// The e-mail telling HR a conversation waits for them, with the link to answer it in
    /// the console: outbox mail of its own, not a request (no ticket, in no list of
    /// requests).
    fn handover_mail(&self, msg: &Incoming, session: &crate::domain::Session, lang: Lang) -> Option<NewMail> {
        let (recipient, base) = self.handover_mail.as_ref()?;
        let id: String = url::form_urlencoded::byte_serialize(msg.user.id().as_bytes()).collect();
        let link = format!("{base}/console/conversations/{}/{id}", msg.user.channel().as_str());
        let line = |s: &str| crate::domain::clean_line(s, 100);
        let name = msg.profile_name.as_deref().map(line).filter(|n| !n.is_empty());
        let who = match &name {
            Some(n) => format!("{n} ({})", msg.user.display()),
            None => msg.user.display(),
        };
        let mut body = String::new();
        body.push_str("A conversation waits for a person / Une conversation attend une personne\n\n");
        body.push_str(&format!("WhatsApp: {who}\n"));
        if let Some(e) = &session.employee {
            body.push_str(&format!("Employee ID / Matricule: {}\n", line(&e.id)));
        }
        body.push_str(&format!("Language / Langue: {}\n", lang.code()));
        body.push_str(&format!("\nAnswer in the console / Répondre dans la console : {link}\n"));
        body.push_str("\n-- \nSent by wabot.\n");
        Some(NewMail {
            recipient: recipient.clone(),
            subject: crate::domain::clean_line(
                &format!(
                    "Conversation handed over to a person / Conversation transmise à une personne — {who}"
                ),
                300,
            ),
            body,
        })
    }

    /// Counts the turn by what the bot did, with the topic of an answer.
    async fn count(&self, outcome: &Outcome) {
        let Some(figures) = &self.figures else { return };
        let (kind, topic) = match outcome {
            Outcome::Answered { id, .. } => {
                ("answered", self.dialog.engine().entry(id).map(|e| e.topic_key().to_owned()))
            }
            Outcome::Declined | Outcome::Suggested => ("declined", None),
            Outcome::HandedOver => ("handed_over", None),
            _ => ("other", None),
        };
        let day = self.clock.now_ms().div_euclid(86_400_000);
        if let Err(e) = figures.count_turn(day, kind, topic.as_deref()).await {
            tracing::warn!(error = %e, "cannot count the turn");
        }
    }

    /// Appends the message and its reply to the transcript and records a handover or a
    /// return to the bot (`handed`). After the commit: a failure here is logged, the turn
    /// stands.
    async fn keep_transcript(
        &self,
        msg: &Incoming,
        bot: Option<&Address>,
        replies: &[String],
        handed: Option<Option<i64>>,
    ) {
        let Some(transcripts) = &self.transcripts else { return };
        let at_ms = self.clock.now_ms();
        let mut lines =
            vec![TranscriptLine { speaker: Speaker::Employee, author: None, text: msg.text.clone(), at_ms }];
        lines.extend(replies.iter().map(|r| TranscriptLine {
            speaker: Speaker::Bot,
            author: None,
            text: r.clone(),
            at_ms,
        }));
        if let Err(e) = transcripts.record(&msg.user, bot, lines).await {
            tracing::error!(error = %e, "cannot keep the transcript");
        }
        if let Some(since) = handed {
            match transcripts.set_handed_over(&msg.user, since).await {
                Ok(()) if since.is_some() => tracing::info!("a conversation was handed over to a person"),
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "cannot record the handover"),
            }
        }
    }
}

/// A reply as queued messages: one per message of the reply, the last one with the
/// choices it offers.
fn outgoing(reply: &Reply) -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = reply.messages.iter().map(Outgoing::text).collect();
    if let (Some(last), Some(offer)) = (out.last_mut(), &reply.offer) {
        last.prompt = Some(offer.prompt.clone());
        last.choices = Some(offer.choices.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::config::RequestSettings;
    use crate::dialog::RequestForm;
    use crate::domain::{Address, Channel, NewRequest, Session};
    use crate::engine::Engine;
    use crate::knowledge::corpus::KnowledgeBase;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Reports, Sessions, StoredSession, Turns};

    fn user() -> Address {
        Address::parse(Channel::Twilio, "+33600000000").unwrap()
    }

    fn id(sid: &str) -> MessageId {
        MessageId::parse(sid).unwrap()
    }

    /// SQLite, plus one "concurrent" turn slipped in just before the first commit: another
    /// message of the same user that confirmed the request first.
    struct Racing {
        inner: SqliteStore,
        race: Mutex<Option<NewRequest>>,
    }

    #[async_trait]
    impl Sessions for Racing {
        async fn session(&self, user: &Address) -> Result<Option<StoredSession>, StoreError> {
            self.inner.session(user).await
        }
    }

    #[async_trait]
    impl Turns for Racing {
        async fn commit(&self, turn: Turn) -> Result<Committed, StoreError> {
            let race = self.race.lock().unwrap().take();
            if let Some(req) = race {
                let version = self.inner.session(&turn.user).await?.map_or(0, |s| s.version);
                let done = Session { lang: Some(Lang::En), ..Session::default() };
                self.inner
                    .commit(Turn {
                        user: turn.user.clone(),
                        message_id: Some(id("SM-other")),
                        session: crate::desk::encode_session(&done)?,
                        session_version: version,
                        messages: vec!["first".to_owned()],
                        request: Some(req),
                        mail: None,
                        unanswered: None,
                        now_ms: turn.now_ms,
                        outbound: Vec::new(),
                    })
                    .await?;
            }
            self.inner.commit(turn).await
        }
        async fn replay(&self, channel: Channel, sid: &MessageId) -> Result<Option<Vec<String>>, StoreError> {
            self.inner.replay(channel, sid).await
        }
    }

    fn say(text: &str, sid: &str) -> (Incoming, Option<MessageId>) {
        (Incoming { user: user(), text: text.into(), profile_name: None }, Some(id(sid)))
    }

    #[tokio::test]
    async fn a_turn_that_lost_a_race_on_the_session_is_handled_again_on_the_new_state() {
        let kb = Arc::new(KnowledgeBase::embedded().unwrap());
        let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
        let dialog = Arc::new(Dialog::new(kb, engine));
        dialog.set_requests(Some(Arc::new(RequestForm::new(RequestSettings::default()))));
        let racing =
            Arc::new(Racing { inner: SqliteStore::open_in_memory().unwrap(), race: Mutex::new(None) });
        let clock = Arc::new(crate::domain::SystemClock);
        let desk = Desk::new(dialog, racing.clone(), clock, Arc::new(Notify::new()), None);
        for (i, t) in ["request", "1", "Ana", "Lopez", "skip"].iter().enumerate() {
            let (m, sid) = say(t, &format!("SM{i}"));
            desk.handle(m, sid).await.unwrap();
        }
        let other = NewRequest {
            kind: "work-certificate".into(),
            kind_label: "Work certificate / Attestation de travail".into(),
            recipient: "hr@example.com".into(),
            first_name: "Ana".into(),
            last_name: "Lopez".into(),
            employee_id: None,
            employee_email: None,
            department: None,
            details: None,
            lang: Lang::En,
        };
        *racing.race.lock().unwrap() = Some(other);
        let (m, sid) = say("yes", "SM-late");
        let handled = desk.handle(m, sid).await.unwrap();
        assert!(handled.ticket.is_none(), "{handled:?}");
        assert!(!handled.messages[0].contains("REQ-"), "answered on the new state: {:?}", handled.messages);
        assert_eq!(racing.inner.requests(10).await.unwrap().len(), 1, "one request, the first one");
        assert!(
            racing.replay(Channel::Twilio, &id("SM-late")).await.unwrap().is_some(),
            "the retried turn was committed"
        );
    }
}
