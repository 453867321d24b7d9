//! The webhook's side of a turn: deduplicate by MessageSid, run the dialog, commit, reply.
//!
//! Order, and why: (1) a MessageSid already committed gets its stored messages at once;
//! (2) the session is loaded and the dialog answers, with no I/O; (3) the session, a
//! confirmed request (its ticket allocated there), its outbox row and the MessageSid's
//! messages are committed in one transaction — a duplicate racing this turn loses at the
//! MessageSid's unique key and gets the winner's messages; a turn whose session changed
//! since (another message of the same user, committed meanwhile) commits nothing and is
//! handled again from (2); (4) only then is the reply returned, and the mail worker woken. So a user told "registered" has a stored request,
//! and a retried webhook never creates a second one.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Notify;

use crate::dialog::{Dialog, Incoming, Outcome};
use crate::engine::Lang;
use crate::store::{Committed, Durable, StoreError, Turn};

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
        let mut conflicts = 0;
        let (committed, outcome, lang) = loop {
            match self.turn(&msg, message_sid.clone()).await {
                Err(StoreError::Conflict) if conflicts < MAX_CONFLICTS => conflicts += 1,
                other => break other?,
            }
        };
        if committed.ticket.is_some() {
            self.mail_wakeup.notify_one();
        }
        if !committed.replayed
            && matches!(outcome, Outcome::Declined)
            && let Some(key) = crate::unanswered::group_key(&msg.text)
        {
            // Statistics for HR, after the turn: a failure here must not fail the reply.
            let now = super::now_ms();
            if let Err(e) = self.store.run(move |s| s.record_unanswered(&key, now)).await {
                tracing::warn!(error = %e, "declined question not counted");
            }
        }
        Ok(Handled {
            messages: committed.messages,
            outcome: (!committed.replayed).then_some(outcome),
            lang,
            ticket: committed.ticket,
            replayed: committed.replayed,
        })
    }

    /// Loads the session, answers, commits: once.
    async fn turn(
        &self,
        msg: &Incoming,
        sid: Option<String>,
    ) -> Result<(Committed, Outcome, Lang), StoreError> {
        let user = msg.user.clone();
        let (mut session, version) = self.store.run(move |s| s.load_versioned(&user)).await?;
        let reply = self.dialog.respond(&mut session, msg);
        session.lang = Some(reply.lang);
        let request = match &reply.outcome {
            Outcome::RequestSubmitted(req) => Some((**req).clone()),
            _ => None,
        };
        let user = msg.user.clone();
        let messages = reply.messages;
        let committed = self
            .store
            .run(move |s| {
                s.commit(&Turn {
                    user: &user,
                    message_sid: sid.as_deref(),
                    session: &session,
                    session_version: version,
                    messages: &messages,
                    request: request.as_ref(),
                    now_ms: super::now_ms(),
                })
            })
            .await?;
        Ok((committed, reply.outcome, reply.lang))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::corpus::KnowledgeBase;
    use crate::engine::Engine;
    use crate::requests::{RequestForm, RequestSettings};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Ledger, NewRequest, OutboxItem, RequestRecord, Session, SessionStore};

    const USER: &str = "whatsapp:+33600000000";

    /// SQLite, plus one "concurrent" turn slipped in just before the first commit: another
    /// message of the same user that confirmed the request first.
    struct Racing {
        inner: SqliteStore,
        race: Mutex<Option<NewRequest>>,
    }

    impl SessionStore for Racing {
        fn load(&self, user: &str) -> Result<Session, StoreError> {
            self.inner.load(user)
        }
        fn save(&self, user: &str, session: &Session) -> Result<(), StoreError> {
            self.inner.save(user, session)
        }
    }

    impl Ledger for Racing {
        fn load_versioned(&self, user: &str) -> Result<(Session, i64), StoreError> {
            self.inner.load_versioned(user)
        }
        fn replay(&self, sid: &str) -> Result<Option<Vec<String>>, StoreError> {
            self.inner.replay(sid)
        }
        fn commit(&self, turn: &Turn<'_>) -> Result<Committed, StoreError> {
            let race = self.race.lock().unwrap().take();
            if let Some(req) = race {
                let (_, version) = self.inner.load_versioned(turn.user)?;
                let done = Session { lang: Some(Lang::En), ..Session::default() };
                let msgs = vec!["first".to_owned()];
                self.inner.commit(&Turn {
                    user: turn.user,
                    message_sid: Some("SM-other"),
                    session: &done,
                    session_version: version,
                    messages: &msgs,
                    request: Some(&req),
                    now_ms: turn.now_ms,
                })?;
            }
            self.inner.commit(turn)
        }
        fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
            self.inner.due_mail(now_ms, limit)
        }
        fn next_mail_due(&self) -> Result<Option<i64>, StoreError> {
            self.inner.next_mail_due()
        }
        fn mark_sent(&self, id: i64, at_ms: i64) -> Result<(), StoreError> {
            self.inner.mark_sent(id, at_ms)
        }
        fn mark_failed(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
            self.inner.mark_failed(id, error, retry_at_ms)
        }
        fn requests(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
            self.inner.requests(limit)
        }
        fn request(&self, ticket: &str) -> Result<Option<RequestRecord>, StoreError> {
            self.inner.request(ticket)
        }
        fn prune(&self, m: i64, s: i64) -> Result<usize, StoreError> {
            self.inner.prune(m, s)
        }
    }

    fn say(text: &str, sid: &str) -> (Incoming, Option<String>) {
        (Incoming { user: USER.into(), text: text.into(), profile_name: None }, Some(sid.into()))
    }

    #[tokio::test]
    async fn a_turn_that_lost_a_race_on_the_session_is_handled_again_on_the_new_state() {
        let kb = Arc::new(KnowledgeBase::embedded().unwrap());
        let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
        let dialog = Arc::new(Dialog::new(kb, engine, Arc::new(crate::store::MemoryStore::default())));
        dialog.set_requests(Some(Arc::new(RequestForm::new(RequestSettings::default()))));
        let racing =
            Arc::new(Racing { inner: SqliteStore::open_in_memory().unwrap(), race: Mutex::new(None) });
        let desk = Desk::new(dialog, Durable::new(racing.clone(), 1), Arc::new(Notify::new()));
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
        assert_eq!(racing.requests(10).unwrap().len(), 1, "one request, the first one");
        assert!(racing.replay("SM-late").unwrap().is_some(), "the retried turn was committed");
    }
}
