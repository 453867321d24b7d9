//! The behaviour every [`Ledger`] must have, run against each backend: SQLite (a file, as
//! `wabot serve` uses it) and the in-memory store. A new backend (PostgreSQL) adds its line
//! to [`backends`] and passes the same tests.

use std::sync::Arc;

use super::ledger::{Committed, Enqueued, Ledger, PhotoJob, Turn};
use super::{MemoryLedger, SqliteStore, StoreError};
use crate::domain::{Address, Channel, MailState, MessageId, NewRequest, Session, TICKET_PLACEHOLDER};
use crate::engine::Lang;

/// 2026-05-28 and 2027-01-15, in ms since the epoch.
const T2026: i64 = 1_780_000_000_000;
const T2027: i64 = 1_800_000_000_000;

/// Each backend, fresh, with what must outlive it.
fn backends() -> Vec<(&'static str, Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("conformance.db")).unwrap();
    vec![("sqlite", Arc::new(sqlite), Some(dir)), ("memory", Arc::new(MemoryLedger::new()), None)]
}

/// A Twilio user.
fn a(id: &str) -> Address {
    Address::parse(Channel::Twilio, id).unwrap()
}

fn m(id: &str) -> MessageId {
    MessageId::parse(id).unwrap()
}

const TW: Channel = Channel::Twilio;

fn request() -> NewRequest {
    NewRequest {
        kind: "work-certificate".into(),
        kind_label: "Work certificate / Attestation de travail".into(),
        recipient: "hr@example.com".into(),
        first_name: "Élodie".into(),
        last_name: "Martin".into(),
        employee_id: None,
        employee_email: None,
        department: None,
        details: None,
        lang: Lang::Fr,
    }
}

fn turn<'a>(
    user: &'a Address,
    sid: &'a MessageId,
    session: &'a Session,
    version: i64,
    messages: &'a [String],
    now_ms: i64,
) -> Turn<'a> {
    Turn {
        user,
        message_id: Some(sid),
        session,
        session_version: version,
        messages,
        request: None,
        unanswered: None,
        now_ms,
    }
}

/// Commits a request for `user` (a new user) at `now_ms`; its ticket.
fn file_request(store: &dyn Ledger, user: &str, sid: &str, now_ms: i64) -> String {
    let (session, req) = (Session::default(), request());
    let messages = [format!("registered under {TICKET_PLACEHOLDER}")];
    let (user, sid) = (a(user), m(sid));
    let committed = store
        .commit(&Turn { request: Some(&req), ..turn(&user, &sid, &session, 0, &messages, now_ms) })
        .unwrap();
    committed.ticket.unwrap()
}

#[test]
fn a_message_id_commits_once_however_many_deliveries_race() {
    for (name, store, _dir) in backends() {
        let (session, req) = (Session::default(), request());
        let messages = [format!("registered under {TICKET_PLACEHOLDER}")];
        let (user, sid) = (a("+33600000001"), m("SM1"));
        let results: Vec<Committed> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let t = turn(&user, &sid, &session, 0, &messages, T2026);
                        store.commit(&Turn { request: Some(&req), ..t })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|c| !c.replayed).count(), 1, "{name}");
        for c in &results {
            assert_eq!(c.messages, ["registered under REQ-2026-000001"], "{name}");
        }
        assert_eq!(store.requests(10).unwrap().len(), 1, "{name}");
        assert_eq!(
            store.replay(TW, &m("SM1")).unwrap().unwrap(),
            ["registered under REQ-2026-000001"],
            "{name}"
        );
    }
}

#[test]
fn a_turn_computed_on_a_stale_session_conflicts_and_writes_nothing() {
    for (name, store, _dir) in backends() {
        let first = Session { lang: Some(Lang::Fr), ..Session::default() };
        let reply = ["Bonjour".to_owned()];
        store.commit(&turn(&a("u"), &m("SM1"), &first, 0, &reply, T2026)).unwrap();
        let (loaded, version) = store.load_versioned(&a("u")).unwrap();
        assert_eq!(loaded, first, "{name}");
        assert!(version >= 1, "{name}");
        let second = Session { lang: Some(Lang::En), ..Session::default() };
        let err = store.commit(&turn(&a("u"), &m("SM2"), &second, 0, &reply, T2026 + 1)).unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{name}: {err}");
        assert_eq!(store.load_versioned(&a("u")).unwrap(), (first, version), "{name}");
        assert_eq!(
            store.replay(TW, &m("SM2")).unwrap(),
            None,
            "{name}: the message id's claim went back too"
        );
        store.commit(&turn(&a("u"), &m("SM2"), &second, version, &reply, T2026 + 2)).unwrap();
        assert_eq!(store.load_versioned(&a("u")).unwrap().0, second, "{name}");
    }
}

#[test]
fn tickets_are_numbered_per_year() {
    for (name, store, _dir) in backends() {
        assert_eq!(file_request(&*store, "a", "SM1", T2026), "REQ-2026-000001", "{name}");
        assert_eq!(file_request(&*store, "b", "SM2", T2026 + 1), "REQ-2026-000002", "{name}");
        assert_eq!(file_request(&*store, "c", "SM3", T2027), "REQ-2027-000001", "{name}");
        let found = store.request(" req-2026-000002 ").unwrap().unwrap();
        assert_eq!((found.user, found.mail), (a("b"), MailState::Queued), "{name}");
        let listed: Vec<String> = store.requests(10).unwrap().into_iter().map(|r| r.ticket).collect();
        assert_eq!(listed, ["REQ-2027-000001", "REQ-2026-000002", "REQ-2026-000001"], "{name}: newest first");
    }
}

#[test]
fn the_outbox_retries_a_failure_then_marks_the_mail_sent() {
    for (name, store, _dir) in backends() {
        let ticket = file_request(&*store, "a", "SM1", T2026);
        let due = store.due_mail(T2026, 10).unwrap();
        assert_eq!(due.len(), 1, "{name}");
        let id = due[0].id;
        assert_eq!(store.outbox_depth().unwrap(), Some(1), "{name}");
        store.mark_failed(id, "421 try again later", T2026 + 1000).unwrap();
        assert!(store.due_mail(T2026, 10).unwrap().is_empty(), "{name}");
        assert_eq!(store.next_mail_due().unwrap(), Some(T2026 + 1000), "{name}");
        let again = store.due_mail(T2026 + 1000, 10).unwrap();
        assert_eq!(
            (again[0].request.attempts, again[0].request.last_error.as_deref()),
            (1, Some("421 try again later")),
            "{name}"
        );
        store.mark_sent(id, T2026 + 2000).unwrap();
        let sent = store.request(&ticket).unwrap().unwrap();
        assert_eq!(
            (sent.mail, sent.sent_at_ms, sent.attempts),
            (MailState::Sent, Some(T2026 + 2000), 2),
            "{name}"
        );
        assert_eq!(store.outbox_depth().unwrap(), Some(0), "{name}");
        assert_eq!(store.next_mail_due().unwrap(), None, "{name}");
    }
}

#[test]
fn a_mail_rejected_for_good_is_dead_lettered_at_the_configured_count() {
    for (name, store, _dir) in backends() {
        file_request(&*store, "a", "SM1", T2026);
        let id = store.due_mail(T2026, 10).unwrap()[0].id;
        assert_eq!(
            store.mark_rejected(id, "550 no such user", T2026 + 1, 3).unwrap(),
            MailState::Queued,
            "{name}"
        );
        assert_eq!(
            store.mark_rejected(id, "550 no such user", T2026 + 2, 3).unwrap(),
            MailState::Queued,
            "{name}"
        );
        assert_eq!(
            store.mark_rejected(id, "550 no such user", T2026 + 3, 3).unwrap(),
            MailState::Dead,
            "{name}"
        );
        assert_eq!(store.dead_mail().unwrap(), Some(1), "{name}");
        assert!(store.due_mail(T2026 + 10_000, 10).unwrap().is_empty(), "{name}");
        assert_eq!(store.next_mail_due().unwrap(), None, "{name}");
    }
}

#[test]
fn a_photo_job_is_claimed_once_and_pending_ones_come_oldest_first() {
    for (name, store, _dir) in backends() {
        let job = |sid: &str, created_ms: i64| PhotoJob {
            user: a("+33600000001"),
            bot: a("+14155238886"),
            message_id: Some(m(sid)),
            media_url: format!("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{sid}/Media/ME1"),
            content_type: Some("image/jpeg".into()),
            lang: Lang::En,
            created_ms,
        };
        let reply = ["Reading your badge…".to_owned()];
        let Enqueued::Queued(later) = store.enqueue_photo(&job("SM1", T2026 + 10), &reply).unwrap() else {
            panic!("{name}: the first delivery is queued")
        };
        assert_eq!(
            store.enqueue_photo(&job("SM1", T2026 + 10), &["other".to_owned()]).unwrap(),
            Enqueued::Replayed(reply.to_vec()),
            "{name}"
        );
        let Enqueued::Queued(earlier) = store.enqueue_photo(&job("SM2", T2026), &reply).unwrap() else {
            panic!("{name}: another photo is queued")
        };
        let ids: Vec<i64> = store.pending_photos(10).unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, [earlier, later], "{name}");
        assert!(store.photo_done(earlier).unwrap(), "{name}");
        assert!(!store.photo_done(earlier).unwrap(), "{name}");
        assert_eq!(store.pending_photos(10).unwrap().len(), 1, "{name}");
        assert_eq!(
            store.replay(TW, &m("SM2")).unwrap(),
            Some(reply.to_vec()),
            "{name}: a done job's claim stays"
        );
    }
}

#[test]
fn declined_questions_are_counted_with_their_turns() {
    for (name, store, _dir) in backends() {
        let (session, reply) = (Session::default(), ["Sorry".to_owned()]);
        let (u, sm1, sm2) = (a("u"), m("SM1"), m("SM2"));
        let t = turn(&u, &sm1, &session, 0, &reply, T2026);
        store.commit(&Turn { unanswered: Some("ou est la cantine"), ..t }).unwrap();
        let version = store.load_versioned(&u).unwrap().1;
        let t = turn(&u, &sm2, &session, version, &reply, T2026 + 5);
        store.commit(&Turn { unanswered: Some("ou est la cantine"), ..t }).unwrap();
        let rows = store.unanswered(10).unwrap();
        assert_eq!((rows[0].count, rows[0].first_ms, rows[0].last_ms), (2, T2026, T2026 + 5), "{name}");
    }
}

#[test]
fn pruning_forgets_old_message_ids_and_idle_sessions() {
    for (name, store, _dir) in backends() {
        let (session, reply) =
            (Session { lang: Some(Lang::Fr), ..Session::default() }, ["Bonjour".to_owned()]);
        store.commit(&turn(&a("old"), &m("SM-old"), &session, 0, &reply, T2026)).unwrap();
        store.commit(&turn(&a("new"), &m("SM-new"), &session, 0, &reply, T2026 + 100_000)).unwrap();
        let removed = store.prune(T2026 + 50_000, T2026 + 50_000).unwrap();
        assert_eq!(removed, 2, "{name}: one message id and one session");
        assert_eq!(store.replay(TW, &m("SM-old")).unwrap(), None, "{name}");
        assert!(store.replay(TW, &m("SM-new")).unwrap().is_some(), "{name}");
        assert_eq!(store.load_versioned(&a("old")).unwrap(), (Session::default(), 0), "{name}");
        assert_eq!(store.load_versioned(&a("new")).unwrap().0, session, "{name}");
    }
}

#[test]
fn one_id_on_two_channels_is_two_users_and_two_messages() {
    for (name, store, _dir) in backends() {
        let twilio = a("33600000001");
        let meta = Address::parse(Channel::Meta, "33600000001").unwrap();
        let (fr, en) = (
            Session { lang: Some(Lang::Fr), ..Session::default() },
            Session { lang: Some(Lang::En), ..Session::default() },
        );
        let sid = m("same-id");
        store.commit(&turn(&twilio, &sid, &fr, 0, &["Bonjour".to_owned()], T2026)).unwrap();
        let meta_turn = store.commit(&turn(&meta, &sid, &en, 0, &["Hello".to_owned()], T2026)).unwrap();
        assert!(!meta_turn.replayed, "{name}: another channel's message");
        assert_eq!(store.load_versioned(&twilio).unwrap().0, fr, "{name}");
        assert_eq!(store.load_versioned(&meta).unwrap().0, en, "{name}");
        assert_eq!(store.replay(Channel::Meta, &sid).unwrap(), Some(vec!["Hello".to_owned()]), "{name}");
        assert_eq!(store.replay(TW, &sid).unwrap(), Some(vec!["Bonjour".to_owned()]), "{name}");
    }
}
