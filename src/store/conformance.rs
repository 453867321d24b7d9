//! The behaviour every [`Store`] must have, run against each backend: SQLite (a file, as
//! `wabot serve` uses it) and the in-memory store. A new backend (PostgreSQL) adds its line
//! to [`backends`] and passes the same tests.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::postgres::fresh_schema_url;
use super::roles::{Committed, Enqueued, PhotoJob, Store, Turn};
use super::{MemoryBackend, PostgresStore, SqliteStore, StoreError};
use crate::domain::{Address, Channel, MailState, MessageId, NewRequest, TICKET_PLACEHOLDER};
use crate::engine::Lang;

/// 2026-05-28 and 2027-01-15, in ms since the epoch.
const T2026: i64 = 1_780_000_000_000;
const T2027: i64 = 1_800_000_000_000;

/// The channel of the test users; also used by the SQLite backend's own tests.
pub(super) const TW: Channel = Channel::Twilio;

/// Each backend, fresh, with what must outlive it: PostgreSQL's in a schema of its own
/// when [`postgres_url`] names a server.
async fn backends() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("conformance.db")).unwrap();
    let mut all: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir)), ("memory", Arc::new(MemoryBackend::new()), None)];
    if let Some(url) = postgres_url() {
        all.push(("postgres", Arc::new(fresh_postgres(&url).await), None));
    }
    all
}

/// The PostgreSQL server the tests use (`WABOT_TEST_POSTGRES_URL`), or `None` with the
/// reason printed. With `WABOT_TEST_POSTGRES_REQUIRED=1` (CI) a missing one fails the test.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var("WABOT_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var("WABOT_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("WABOT_TEST_POSTGRES_REQUIRED=1 but WABOT_TEST_POSTGRES_URL is not set")
        }
        None => {
            eprintln!("PostgreSQL skipped: WABOT_TEST_POSTGRES_URL is not set (.ci/run sets it)");
            None
        }
    }
}

/// A store on a fresh schema of the server at `url`; an unreachable server fails the test.
pub(crate) async fn fresh_postgres(url: &str) -> PostgresStore {
    let schema = fresh_schema_url(url, "conformance").await.expect("the test PostgreSQL server");
    PostgresStore::open(&schema, None).await.unwrap()
}

/// A Twilio user.
pub(super) fn a(id: &str) -> Address {
    Address::parse(TW, id).unwrap()
}

/// A message id.
pub(super) fn m(id: &str) -> MessageId {
    MessageId::parse(id).unwrap()
}

/// A work-certificate request with accented names.
pub(super) fn request() -> NewRequest {
    NewRequest {
        kind: "work-certificate".into(),
        kind_label: "Work certificate / Attestation de travail".into(),
        recipient: "hr@example.com".into(),
        first_name: "Élodie".into(),
        last_name: "Garçon".into(),
        employee_id: None,
        employee_email: None,
        department: None,
        details: None,
        lang: Lang::Fr,
    }
}

/// A turn of `user`, message `sid`, leaving the session as `session` over `version`.
fn turn(user: &Address, sid: &str, session: &str, version: i64, reply: &str, now_ms: i64) -> Turn {
    Turn {
        user: user.clone(),
        message_id: Some(m(sid)),
        session: session.to_owned(),
        session_version: version,
        messages: vec![reply.to_owned()],
        request: None,
        unanswered: None,
        now_ms,
    }
}

/// Commits a request for `user` (a new user) at `now_ms`; its ticket.
async fn file_request(store: &dyn Store, user: &str, sid: &str, now_ms: i64) -> String {
    let reply = format!("registered under {TICKET_PLACEHOLDER}");
    let t = Turn { request: Some(request()), ..turn(&a(user), sid, "{}", 0, &reply, now_ms) };
    store.commit(t).await.unwrap().ticket.unwrap()
}

/// The stored session's data and version, `("", 0)` for none.
async fn session_of(store: &dyn Store, user: &Address) -> (String, i64) {
    store.session(user).await.unwrap().map_or((String::new(), 0), |s| (s.data, s.version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_id_commits_once_however_many_deliveries_race() {
    for (name, store, _dir) in backends().await {
        let user = a("+33600000001");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (store, user) = (Arc::clone(&store), user.clone());
                tokio::spawn(async move {
                    let reply = format!("registered under {TICKET_PLACEHOLDER}");
                    let t = Turn { request: Some(request()), ..turn(&user, "SM1", "{}", 0, &reply, T2026) };
                    store.commit(t).await
                })
            })
            .collect();
        let mut results: Vec<Committed> = Vec::new();
        for h in handles {
            results.push(h.await.unwrap().unwrap());
        }
        assert_eq!(results.iter().filter(|c| !c.replayed).count(), 1, "{name}: one wins");
        for c in &results {
            assert_eq!(c.messages, ["registered under REQ-2026-000001"], "{name}: the others get its reply");
        }
        assert_eq!(store.requests(10).await.unwrap().len(), 1, "{name}");
        assert_eq!(
            store.replay(TW, &m("SM1")).await.unwrap().unwrap(),
            ["registered under REQ-2026-000001"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_turn_computed_on_a_stale_version_conflicts_and_writes_nothing() {
    for (name, store, _dir) in backends().await {
        let u = a("u");
        store.commit(turn(&u, "SM1", r#"{"lang":"fr"}"#, 0, "Bonjour", T2026)).await.unwrap();
        let (data, version) = session_of(&*store, &u).await;
        assert_eq!(
            (data.as_str(), version),
            (r#"{"lang":"fr"}"#, 1),
            "{name}: the store keeps the value as given"
        );
        let stale =
            Turn { request: Some(request()), ..turn(&u, "SM2", r#"{"lang":"en"}"#, 0, "Hi", T2026 + 1) };
        let err = store.commit(stale).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{name}: {err}");
        assert_eq!(session_of(&*store, &u).await, (data, version), "{name}");
        assert_eq!(
            store.replay(TW, &m("SM2")).await.unwrap(),
            None,
            "{name}: the message id's claim went back too"
        );
        assert!(store.requests(10).await.unwrap().is_empty(), "{name}: and the request");
        store.commit(turn(&u, "SM2", r#"{"lang":"en"}"#, version, "Hi", T2026 + 2)).await.unwrap();
        assert_eq!(session_of(&*store, &u).await, (r#"{"lang":"en"}"#.to_owned(), 2), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_turns_of_one_user_on_the_same_version_cannot_both_commit() {
    for (name, store, _dir) in backends().await {
        let u = a("u");
        let handles: Vec<_> = ["SM1", "SM2"]
            .into_iter()
            .map(|sid| {
                let (store, u) = (Arc::clone(&store), u.clone());
                tokio::spawn(async move {
                    let t = Turn { request: Some(request()), ..turn(&u, sid, sid, 0, "ok", T2026) };
                    store.commit(t).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for h in handles {
            outcomes.push(h.await.unwrap());
        }
        assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1, "{name}: {outcomes:?}");
        assert!(outcomes.iter().any(|r| matches!(r, Err(StoreError::Conflict))), "{name}");
        assert_eq!(store.requests(10).await.unwrap().len(), 1, "{name}: one request");
    }
}

#[tokio::test]
async fn tickets_are_numbered_per_year() {
    for (name, store, _dir) in backends().await {
        assert_eq!(file_request(&*store, "a", "SM1", T2026).await, "REQ-2026-000001", "{name}");
        assert_eq!(file_request(&*store, "b", "SM2", T2026 + 1).await, "REQ-2026-000002", "{name}");
        assert_eq!(file_request(&*store, "c", "SM3", T2027).await, "REQ-2027-000001", "{name}");
        let found = store.request(" req-2026-000002 ").await.unwrap().unwrap();
        assert_eq!((found.user, found.mail), (a("b"), MailState::Queued), "{name}");
        let listed: Vec<String> = store.requests(10).await.unwrap().into_iter().map(|r| r.ticket).collect();
        assert_eq!(listed, ["REQ-2027-000001", "REQ-2026-000002", "REQ-2026-000001"], "{name}: newest first");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_filed_at_once_are_unique_and_leave_no_gap() {
    for (name, store, _dir) in backends().await {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let at = if i % 3 == 0 { T2027 } else { T2026 };
                    file_request(&*store, &format!("user-{i}"), &format!("SM{i}"), at).await
                })
            })
            .collect();
        let mut tickets = BTreeSet::new();
        for h in handles {
            assert!(tickets.insert(h.await.unwrap()), "{name}: a ticket given twice");
        }
        let expected: BTreeSet<String> = (1..=16)
            .map(|n| format!("REQ-2026-{n:06}"))
            .chain((1..=8).map(|n| format!("REQ-2027-{n:06}")))
            .collect();
        assert_eq!(tickets, expected, "{name}");
    }
}

#[tokio::test]
async fn the_outbox_retries_a_failure_then_marks_the_mail_sent() {
    for (name, store, _dir) in backends().await {
        let ticket = file_request(&*store, "a", "SM1", T2026).await;
        let due = store.due_mail(T2026, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{name}");
        let id = due[0].id;
        assert_eq!(store.outbox_depth().await.unwrap(), 1, "{name}");
        store.mark_failed(id, "421 try again later", T2026 + 1000).await.unwrap();
        assert!(store.due_mail(T2026, 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.next_mail_due_after(T2026).await.unwrap(), Some(T2026 + 1000), "{name}");
        let again = store.due_mail(T2026 + 1000, 10).await.unwrap();
        assert_eq!(
            (again[0].request.attempts, again[0].request.last_error.as_deref()),
            (1, Some("421 try again later")),
            "{name}"
        );
        store.mark_sent(id, T2026 + 2000).await.unwrap();
        let sent = store.request(&ticket).await.unwrap().unwrap();
        assert_eq!(
            (sent.mail, sent.sent_at_ms, sent.attempts),
            (MailState::Sent, Some(T2026 + 2000), 2),
            "{name}"
        );
        assert_eq!(store.outbox_depth().await.unwrap(), 0, "{name}");
        assert_eq!(store.next_mail_due_after(i64::MIN).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn a_mail_rejected_for_good_is_dead_lettered_at_the_configured_count() {
    for (name, store, _dir) in backends().await {
        file_request(&*store, "a", "SM1", T2026).await;
        let id = store.due_mail(T2026, 10).await.unwrap()[0].id;
        for (at, state) in [(1, MailState::Queued), (2, MailState::Queued), (3, MailState::Dead)] {
            let left = store.mark_rejected(id, "550 no such user", T2026 + at, 3).await.unwrap();
            assert_eq!(left, state, "{name}: rejection {at}");
        }
        assert_eq!(store.dead_mail().await.unwrap(), 1, "{name}");
        assert!(store.due_mail(T2026 + 10_000, 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.next_mail_due_after(i64::MIN).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn a_photo_job_is_claimed_once_and_pending_ones_come_oldest_first() {
    for (name, store, _dir) in backends().await {
        let job = |sid: &str, created_ms: i64| PhotoJob {
            user: a("+33600000001"),
            bot: a("+14155238886"),
            message_id: Some(m(sid)),
            media_url: format!("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{sid}/Media/ME1"),
            content_type: Some("image/jpeg".into()),
            lang: Lang::En,
            created_ms,
        };
        let reply = vec!["Reading your badge…".to_owned()];
        let Enqueued::Queued(later) =
            store.enqueue_photo(job("SM1", T2026 + 10), reply.clone()).await.unwrap()
        else {
            panic!("{name}: the first delivery is queued")
        };
        assert_eq!(
            store.enqueue_photo(job("SM1", T2026 + 10), vec!["other".to_owned()]).await.unwrap(),
            Enqueued::Replayed(reply.clone()),
            "{name}"
        );
        let Enqueued::Queued(earlier) = store.enqueue_photo(job("SM2", T2026), reply.clone()).await.unwrap()
        else {
            panic!("{name}: another photo is queued")
        };
        let ids: Vec<i64> = store.pending_photos(10).await.unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, [earlier, later], "{name}");
        assert!(store.photo_done(earlier).await.unwrap(), "{name}");
        assert!(!store.photo_done(earlier).await.unwrap(), "{name}");
        assert_eq!(store.pending_photos(10).await.unwrap().len(), 1, "{name}");
        assert_eq!(
            store.replay(TW, &m("SM2")).await.unwrap(),
            Some(reply),
            "{name}: a done job's claim stays"
        );
        // A text turn finds the photo's claim: one message is handled once, whatever it carries.
        let text = store.commit(turn(&a("+33600000001"), "SM1", "{}", 0, "an answer", T2026)).await.unwrap();
        assert!(text.replayed, "{name}");
    }
}

#[tokio::test]
async fn declined_questions_are_counted_with_their_turns() {
    for (name, store, _dir) in backends().await {
        let u = a("u");
        let t = turn(&u, "SM1", "{}", 0, "Sorry", T2026);
        store.commit(Turn { unanswered: Some("ou est la cantine".into()), ..t }).await.unwrap();
        let version = session_of(&*store, &u).await.1;
        let t = turn(&u, "SM2", "{}", version, "Sorry", T2026 + 5);
        store.commit(Turn { unanswered: Some("ou est la cantine".into()), ..t.clone() }).await.unwrap();
        assert!(
            store.commit(Turn { unanswered: Some("ou est la cantine".into()), ..t }).await.unwrap().replayed
        );
        let rows = store.unanswered(10).await.unwrap();
        assert_eq!((rows[0].count, rows[0].first_ms, rows[0].last_ms), (2, T2026, T2026 + 5), "{name}");
    }
}

#[tokio::test]
async fn pruning_forgets_old_message_ids_and_idle_sessions() {
    for (name, store, _dir) in backends().await {
        let (old, new) = (a("old"), a("new"));
        store.commit(turn(&old, "SM-old", r#"{"lang":"fr"}"#, 0, "Bonjour", T2026)).await.unwrap();
        store.commit(turn(&new, "SM-new", r#"{"lang":"fr"}"#, 0, "Bonjour", T2026 + 100_000)).await.unwrap();
        let removed = store.prune(T2026 + 50_000, T2026 + 50_000).await.unwrap();
        assert_eq!(removed, 2, "{name}: one message id and one session");
        assert_eq!(store.replay(TW, &m("SM-old")).await.unwrap(), None, "{name}");
        assert!(store.replay(TW, &m("SM-new")).await.unwrap().is_some(), "{name}");
        assert_eq!(session_of(&*store, &old).await, (String::new(), 0), "{name}");
        assert_eq!(session_of(&*store, &new).await.1, 1, "{name}");
        // A pruned user starts afresh: their next turn is a first one.
        store.commit(turn(&old, "SM-back", "{}", 0, "Hello", T2026 + 200_000)).await.unwrap();
        assert_eq!(
            store.prune(T2026 + 50_000, T2026 + 50_000).await.unwrap(),
            0,
            "{name}: nothing more is old"
        );
    }
}

#[tokio::test]
async fn one_id_on_two_channels_is_two_users_and_two_messages() {
    for (name, store, _dir) in backends().await {
        let twilio = a("33600000001");
        let meta = Address::parse(Channel::Meta, "33600000001").unwrap();
        store.commit(turn(&twilio, "same-id", "fr", 0, "Bonjour", T2026)).await.unwrap();
        let meta_turn = store.commit(turn(&meta, "same-id", "en", 0, "Hello", T2026)).await.unwrap();
        assert!(!meta_turn.replayed, "{name}: another channel's message");
        assert_eq!(session_of(&*store, &twilio).await.0, "fr", "{name}");
        assert_eq!(session_of(&*store, &meta).await.0, "en", "{name}");
        assert_eq!(
            store.replay(Channel::Meta, &m("same-id")).await.unwrap(),
            Some(vec!["Hello".to_owned()]),
            "{name}"
        );
        assert_eq!(
            store.replay(TW, &m("same-id")).await.unwrap(),
            Some(vec!["Bonjour".to_owned()]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_e_mail_is_taken_by_one_worker_until_its_lease_ends() {
    for (name, store, _dir) in backends().await {
        file_request(&*store, "a", "SM1", T2026).await;
        let id = store.due_mail(T2026, 10).await.unwrap()[0].id;
        assert!(store.claim_mail(id, T2026, T2026 + 90_000).await.unwrap(), "{name}: the first worker");
        assert!(!store.claim_mail(id, T2026 + 1, T2026 + 90_001).await.unwrap(), "{name}: not a second");
        assert!(store.due_mail(T2026 + 1, 10).await.unwrap().is_empty(), "{name}: leased, not due");
        assert_eq!(store.outbox_depth().await.unwrap(), 1, "{name}: still queued");
        // The first worker died: when the lease ends, another takes it.
        assert_eq!(store.due_mail(T2026 + 90_000, 10).await.unwrap().len(), 1, "{name}");
        assert!(store.claim_mail(id, T2026 + 90_000, T2026 + 180_000).await.unwrap(), "{name}");
        store.mark_sent(id, T2026 + 91_000).await.unwrap();
        assert!(!store.claim_mail(id, T2026 + 500_000, T2026 + 600_000).await.unwrap(), "{name}: sent");
    }
}
