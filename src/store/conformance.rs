//! The behaviour every [`Store`] (and the console's roles) must have, run against each
//! backend: SQLite (a file, as `wabot serve` uses it), the in-memory store, and PostgreSQL
//! when `WABOT_TEST_POSTGRES_URL` names a server. A new backend adds its line to
//! [`backends`] and the console roles' lists and passes the same tests.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::postgres::fresh_schema_url;
use super::roles::{
    Account, AccountRole, Accounts, AuditEntry, Committed, ConsoleSession, Enqueued, Figures, MailEvent,
    MailEventKind, PendingPhoto, PhotoJob, Speaker, Store, TranscriptLine, Transcripts, Turn,
};
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
        mail: None,
        unanswered: None,
        now_ms,
        outbound: Vec::new(),
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
        store.mark_failed(id, "421 try again later", T2026 + 500, T2026 + 1000).await.unwrap();
        assert!(store.due_mail(T2026, 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.next_mail_due_after(T2026).await.unwrap(), Some(T2026 + 1000), "{name}");
        let again = store.due_mail(T2026 + 1000, 10).await.unwrap();
        assert_eq!(
            (again[0].request().unwrap().attempts, again[0].request().unwrap().last_error.as_deref()),
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
        let ticket = file_request(&*store, "a", "SM1", T2026).await;
        let id = store.due_mail(T2026, 10).await.unwrap()[0].id;
        for (at, state) in [(1, MailState::Queued), (2, MailState::Queued), (3, MailState::Dead)] {
            let left = store.mark_rejected(id, "550 no such user", T2026, T2026 + at, 3).await.unwrap();
            assert_eq!(left, state, "{name}: rejection {at}");
        }
        assert_eq!(store.dead_mail().await.unwrap(), 1, "{name}");
        let history = store.mail_history(&ticket).await.unwrap();
        let seen: Vec<_> = history.iter().map(|e| (e.kind, e.error.as_deref(), e.retry_at_ms)).collect();
        let rejected = |at| (MailEventKind::Rejected, Some("550 no such user"), at);
        assert_eq!(seen, [rejected(Some(T2026 + 1)), rejected(Some(T2026 + 2)), rejected(None)], "{name}");
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
            store.enqueue_photo(job("SM1", T2026 + 10), reply.clone(), 0).await.unwrap()
        else {
            panic!("{name}: the first delivery is queued")
        };
        assert_eq!(
            store.enqueue_photo(job("SM1", T2026 + 10), vec!["other".to_owned()], 0).await.unwrap(),
            Enqueued::Replayed(reply.clone()),
            "{name}"
        );
        let Enqueued::Queued(earlier) =
            store.enqueue_photo(job("SM2", T2026), reply.clone(), 0).await.unwrap()
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

fn photo_job(user: Address, sid: &str, created_ms: i64) -> PhotoJob {
    PhotoJob {
        bot: Address::parse(user.channel(), "14155238886").unwrap(),
        user,
        message_id: Some(m(sid)),
        media_url: format!("https://media.example/{sid}"),
        content_type: Some("image/jpeg".into()),
        lang: Lang::En,
        created_ms,
    }
}

/// Four workers at once, each calling `take` until it takes nothing: every id taken, in the
/// order the workers finished.
async fn taken_by_four<F, Fut>(store: &Arc<dyn Store>, take: F) -> Vec<i64>
where
    F: Fn(Arc<dyn Store>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<i64>> + Send,
{
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, take) = (Arc::clone(store), take.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = take(Arc::clone(&store)).await;
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

#[tokio::test]
async fn a_photo_job_is_taken_by_one_worker_until_its_lease_ends_or_it_is_given_back() {
    for (name, store, _dir) in backends().await {
        let ids = |got: Vec<PendingPhoto>| got.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let queued = |e: Enqueued| match e {
            Enqueued::Queued(id) => id,
            other => panic!("{name}: {other:?}"),
        };
        let tw = [Channel::Twilio];
        // Held by the desk that accepted it until T+1000; another, oldest, held by nobody;
        // a third on Meta's channel.
        let held = queued(
            store
                .enqueue_photo(photo_job(a("+33600000011"), "SMh", T2026 + 5), vec![], T2026 + 1000)
                .await
                .unwrap(),
        );
        let free =
            queued(store.enqueue_photo(photo_job(a("+33600000012"), "SMf", T2026), vec![], 0).await.unwrap());
        let meta = Address::parse(Channel::Meta, "33600000013").unwrap();
        let on_meta =
            queued(store.enqueue_photo(photo_job(meta, "wamid.p", T2026), vec![], 0).await.unwrap());

        assert_eq!(ids(store.claim_photos(&tw, T2026, T2026 + 500, 10).await.unwrap()), [free], "{name}");
        assert!(
            store.claim_photos(&tw, T2026 + 499, T2026 + 999, 10).await.unwrap().is_empty(),
            "{name}: both held"
        );
        // The first taker died: its lease runs out, another takes the job.
        assert_eq!(
            ids(store.claim_photos(&tw, T2026 + 500, T2026 + 1500, 10).await.unwrap()),
            [free],
            "{name}"
        );
        let both = ids(store.claim_photos(&tw, T2026 + 1500, T2026 + 2500, 10).await.unwrap());
        assert_eq!(both, [free, held], "{name}: oldest first, once both leases ran out");
        // Given back by a desk that stops: taken at once.
        store.release_photos(&[held]).await.unwrap();
        assert_eq!(
            ids(store.claim_photos(&tw, T2026 + 1600, T2026 + 2600, 10).await.unwrap()),
            [held],
            "{name}"
        );
        // Only the channels asked for, and at most `limit`.
        assert_eq!(
            ids(store.claim_photos(&[Channel::Meta], T2026, T2026 + 1, 10).await.unwrap()),
            [on_meta],
            "{name}"
        );
        store.release_photos(&[free, held, on_meta]).await.unwrap();
        assert_eq!(
            store
                .claim_photos(&[Channel::Twilio, Channel::Meta], T2026 + 1, T2026 + 2, 2)
                .await
                .unwrap()
                .len(),
            2,
            "{name}"
        );
        // A job done is never taken again.
        assert!(store.photo_done(held).await.unwrap(), "{name}");
        store.release_photos(&[free, held, on_meta]).await.unwrap();
        let left = ids(store
            .claim_photos(&[Channel::Twilio, Channel::Meta], T2026 + 3, T2026 + 4, 10)
            .await
            .unwrap());
        assert_eq!(left.len(), 2, "{name}: {left:?}");
        assert!(!left.contains(&held), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_taking_photo_jobs_at_once_never_share_one() {
    for (name, store, _dir) in backends().await {
        for i in 0..30 {
            store
                .enqueue_photo(
                    photo_job(a(&format!("+336000001{i:02}")), &format!("SMr{i}"), T2026 + i),
                    vec![],
                    0,
                )
                .await
                .unwrap();
        }
        let all = taken_by_four(&store, |store| async move {
            let got = store.claim_photos(&[Channel::Twilio], T2026 + 100, T2026 + 60_000, 2).await.unwrap();
            got.into_iter().map(|p| p.id).collect()
        })
        .await;
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (30, 30), "{name}: each taken exactly once");
    }
}

#[tokio::test]
async fn a_finished_photo_queues_its_result_once_with_the_job_done() {
    for (name, store, _dir) in backends().await {
        let job = PhotoJob {
            user: a("+33600000003"),
            bot: a("+14155238886"),
            message_id: Some(m("SMphoto")),
            media_url: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/SMphoto/Media/ME1".into(),
            content_type: Some("image/jpeg".into()),
            lang: Lang::En,
            created_ms: T2026,
        };
        let Enqueued::Queued(id) = store.enqueue_photo(job, vec!["Reading…".to_owned()], 0).await.unwrap()
        else {
            panic!("{name}: queued")
        };
        let result = || vec![outgoing(&a("+33600000003"), "Thanks, Élodie")];
        assert!(store.finish_photo(id, result(), T2026 + 1).await.unwrap(), "{name}");
        assert!(store.pending_photos(10).await.unwrap().is_empty(), "{name}: the job is done");
        assert_eq!(store.outbound_counts().await.unwrap().queued, 1, "{name}");
        // Read again by a second worker (or after a restart that missed the first): nothing more.
        assert!(!store.finish_photo(id, result(), T2026 + 2).await.unwrap(), "{name}");
        assert_eq!(store.outbound_counts().await.unwrap().queued, 1, "{name}: queued once");
    }
}

#[tokio::test]
async fn requests_are_found_by_type_state_and_date_among_all_of_them() {
    use super::roles::RequestQuery;
    for (name, store, _dir) in backends().await {
        // 30 requests, every third a payslip copy, a day apart; the first one's e-mail sent.
        for i in 0..30_i64 {
            let mut req = request();
            if i % 3 == 0 {
                req.kind = "payslip-copy".into();
            }
            let reply = format!("registered under {TICKET_PLACEHOLDER}");
            let t = Turn {
                request: Some(req),
                ..turn(
                    &a(&format!("+336000001{i:02}")),
                    &format!("SMfind{i}"),
                    "{}",
                    0,
                    &reply,
                    T2026 + i * 86_400_000,
                )
            };
            store.commit(t).await.unwrap();
        }
        let first = store.due_mail(T2027, 1).await.unwrap();
        store.mark_sent(first[0].id, T2026 + 1).await.unwrap();
        let kind = |k: &str| RequestQuery { kind: Some(k.into()), ..Default::default() };
        let payslips = store.find_requests(&kind("payslip-copy"), 100).await.unwrap();
        assert_eq!(payslips.len(), 10, "{name}: found among all, not the latest few");
        assert!(payslips.windows(2).all(|w| w[0].created_at_ms > w[1].created_at_ms), "{name}: newest first");
        assert_eq!(store.find_requests(&kind("payslip-copy"), 3).await.unwrap().len(), 3, "{name}");
        let sent = RequestQuery { mail: Some(MailState::Sent), ..Default::default() };
        let sent = store.find_requests(&sent, 100).await.unwrap();
        assert_eq!(sent.iter().map(|r| r.created_at_ms).collect::<Vec<_>>(), [T2026], "{name}");
        let days = RequestQuery {
            from_ms: Some(T2026 + 10 * 86_400_000),
            until_ms: Some(T2026 + 20 * 86_400_000),
            ..kind("work-certificate")
        };
        let found = store.find_requests(&days, 100).await.unwrap();
        assert_eq!(found.len(), 7, "{name}: days 10 to 19 but 12, 15 and 18");
        assert_eq!(
            store.count_requests(&RequestQuery::default()).await.unwrap(),
            [("work-certificate".to_owned(), 20), ("payslip-copy".to_owned(), 10)],
            "{name}"
        );
        assert_eq!(
            store.count_requests(&days).await.unwrap(),
            [("work-certificate".to_owned(), 7)],
            "{name}"
        );
        assert_eq!(
            store.request_kinds().await.unwrap(),
            ["payslip-copy".to_owned(), "work-certificate".to_owned()],
            "{name}"
        );
        // The second one's e-mail dead-lettered: each state filters, in lists and counts.
        let second = store.due_mail(T2027, 1).await.unwrap();
        assert_eq!(store.mark_rejected(second[0].id, "550", T2026, T2026, 1).await.unwrap(), MailState::Dead);
        let dead = RequestQuery { mail: Some(MailState::Dead), ..Default::default() };
        let dead = store.find_requests(&dead, 100).await.unwrap();
        assert_eq!(dead.iter().map(|r| r.created_at_ms).collect::<Vec<_>>(), [T2026 + 86_400_000], "{name}");
        let queued = RequestQuery { mail: Some(MailState::Queued), ..Default::default() };
        assert_eq!(
            store.count_requests(&queued).await.unwrap(),
            [("work-certificate".to_owned(), 19), ("payslip-copy".to_owned(), 9)],
            "{name}"
        );
        // A tie is ordered by type; an unknown type finds nothing.
        let two_days = RequestQuery {
            from_ms: Some(T2026),
            until_ms: Some(T2026 + 2 * 86_400_000),
            ..Default::default()
        };
        assert_eq!(
            store.count_requests(&two_days).await.unwrap(),
            [("payslip-copy".to_owned(), 1), ("work-certificate".to_owned(), 1)],
            "{name}"
        );
        assert!(store.find_requests(&kind("nothing"), 100).await.unwrap().is_empty(), "{name}");
        assert!(store.count_requests(&kind("nothing")).await.unwrap().is_empty(), "{name}");
        assert!(store.find_requests(&RequestQuery::default(), 0).await.unwrap().is_empty(), "{name}");
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

/// A message for `user`, queued as the desk would.
fn outgoing(user: &Address, text: &str) -> super::roles::NewOutbound {
    super::roles::NewOutbound {
        to: user.clone(),
        from: None,
        payload: crate::domain::Outgoing::text(text).to_json(),
    }
}

#[tokio::test]
async fn a_queued_message_is_claimed_with_a_lease_and_once_sent_never_again() {
    use super::roles::OutboundState;
    for (name, store, _dir) in backends().await {
        let u = a("+33600000001");
        let ids = store.queue_outbound(vec![outgoing(&u, "one"), outgoing(&u, "two")], T2026).await.unwrap();
        assert_eq!(ids.len(), 2, "{name}");
        assert!(store.claim_outbound(T2026 - 1, 1000, 10).await.unwrap().is_empty(), "{name}: not yet due");
        let claimed = store.claim_outbound(T2026, 1000, 1).await.unwrap();
        assert_eq!(claimed.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[0]], "{name}: oldest first");
        assert_eq!((claimed[0].attempts, &claimed[0].to), (1, &u), "{name}");
        // While the lease runs, another worker gets only the other message.
        let other = store.claim_outbound(T2026 + 10, 1000, 10).await.unwrap();
        assert_eq!(other.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[1]], "{name}");
        assert!(store.claim_outbound(T2026 + 999, 1000, 10).await.unwrap().is_empty(), "{name}: both leased");
        assert_eq!(store.next_outbound_after(T2026 + 999).await.unwrap(), Some(T2026 + 1000), "{name}");
        assert!(store.outbound_sent(ids[0], Some("wamid.1"), T2026 + 500).await.unwrap(), "{name}");
        assert!(!store.outbound_sent(ids[0], Some("wamid.2"), T2026 + 501).await.unwrap(), "{name}: once");
        // The first lease expires: only the unsent one comes back, its attempts counted.
        let again = store.claim_outbound(T2026 + 2000, 1000, 10).await.unwrap();
        assert_eq!(again.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>(), [(ids[1], 2)], "{name}");
        let sent = store.outbound_record(ids[0]).await.unwrap().unwrap();
        assert_eq!(
            (sent.state, sent.provider_message_id.as_deref(), sent.sent_ms),
            (OutboundState::Sent, Some("wamid.1"), Some(T2026 + 500)),
            "{name}"
        );
        let counts = store.outbound_counts().await.unwrap();
        assert_eq!((counts.queued, counts.sent, counts.dropped), (1, 1, 0), "{name}");
    }
}

#[tokio::test]
async fn a_failed_message_waits_for_its_retry_and_a_dropped_one_is_never_claimed() {
    use super::roles::OutboundState;
    for (name, store, _dir) in backends().await {
        let u = a("+33600000002");
        let ids = store.queue_outbound(vec![outgoing(&u, "a"), outgoing(&u, "b")], T2026).await.unwrap();
        let claimed = store.claim_outbound(T2026, 60_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 2, "{name}");
        store.outbound_retry(ids[0], "HTTP 429", T2026 + 5000).await.unwrap();
        store.outbound_dropped(ids[1], "131026: not a WhatsApp user", T2026 + 1).await.unwrap();
        assert!(store.claim_outbound(T2026 + 4999, 60_000, 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.next_outbound_after(T2026).await.unwrap(), Some(T2026 + 5000), "{name}");
        let retried = store.claim_outbound(T2026 + 5000, 60_000, 10).await.unwrap();
        assert_eq!(retried.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>(), [(ids[0], 2)], "{name}");
        let failed = store.outbound_record(ids[0]).await.unwrap().unwrap();
        assert_eq!(failed.last_error.as_deref(), Some("HTTP 429"), "{name}");
        let dropped = store.outbound_record(ids[1]).await.unwrap().unwrap();
        assert_eq!(
            (dropped.state, dropped.last_error.as_deref()),
            (OutboundState::Dropped, Some("131026: not a WhatsApp user")),
            "{name}"
        );
        assert!(!store.outbound_sent(ids[1], None, T2026 + 6000).await.unwrap(), "{name}: dropped stays");
        assert!(store.claim_outbound(T2026 + 6000, 60_000, 10).await.unwrap().is_empty(), "{name}");
        let counts = store.outbound_counts().await.unwrap();
        assert_eq!((counts.queued, counts.sent, counts.dropped), (1, 0, 1), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_claiming_at_once_never_share_a_message() {
    for (name, store, _dir) in backends().await {
        let u = a("+33600000003");
        let items = (0..40).map(|i| outgoing(&u, &format!("m{i}"))).collect();
        store.queue_outbound(items, T2026).await.unwrap();
        let all = taken_by_four(&store, |store| async move {
            let got = store.claim_outbound(T2026, 60_000, 3).await.unwrap();
            got.into_iter().map(|i| i.id).collect()
        })
        .await;
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (40, 40), "{name}: each claimed exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_commits_its_outbound_messages_with_its_claim_once_however_many_deliveries_race() {
    for (name, store, _dir) in backends().await {
        let user = Address::parse(Channel::Meta, "33600000004").unwrap();
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (store, user) = (Arc::clone(&store), user.clone());
                tokio::spawn(async move {
                    let reply = format!("registered under {TICKET_PLACEHOLDER}");
                    let t = Turn {
                        request: Some(request()),
                        outbound: vec![outgoing(&user, &reply)],
                        ..turn(&user, "wamid.X", "{}", 0, &reply, T2026)
                    };
                    store.commit(t).await
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let claimed = store.claim_outbound(T2026, 1000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1, "{name}: one reply queued");
        let sent = crate::domain::Outgoing::from_json(&claimed[0].payload).unwrap();
        assert_eq!(sent.text, "registered under REQ-2026-000001", "{name}: the ticket filled in");
        assert_eq!(claimed[0].last_inbound_ms, Some(T2026), "{name}: the user's window recorded");
        // A conflicting turn rolls its queued messages back with everything else.
        let stale = Turn {
            outbound: vec![outgoing(&user, "lost")],
            ..turn(&user, "wamid.Y", "{}", 0, "lost", T2026)
        };
        assert!(matches!(store.commit(stale).await, Err(StoreError::Conflict)), "{name}");
        assert_eq!(store.outbound_counts().await.unwrap().queued, 1, "{name}");
    }
}

#[tokio::test]
async fn pruning_forgets_old_sent_and_dropped_messages_and_keeps_queued_ones() {
    for (name, store, _dir) in backends().await {
        let u = a("+33600000005");
        let ids = store
            .queue_outbound(
                vec![outgoing(&u, "sent"), outgoing(&u, "dropped"), outgoing(&u, "waiting")],
                T2026,
            )
            .await
            .unwrap();
        store.claim_outbound(T2026, 1000, 3).await.unwrap();
        store.outbound_sent(ids[0], None, T2026 + 1).await.unwrap();
        store.outbound_dropped(ids[1], "refused", T2026 + 1).await.unwrap();
        assert_eq!(store.prune(T2026 + 10, T2026 - 1).await.unwrap(), 2, "{name}");
        assert!(store.outbound_record(ids[0]).await.unwrap().is_none(), "{name}");
        assert!(store.outbound_record(ids[2]).await.unwrap().is_some(), "{name}: still to send");
    }
}

/// Each backend, fresh, as the console's accounts.
async fn account_backends() -> Vec<(&'static str, Arc<dyn Accounts>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("accounts.db")).unwrap();
    let mut all: Vec<(&'static str, Arc<dyn Accounts>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir)), ("memory", Arc::new(MemoryBackend::new()), None)];
    if let Some(url) = postgres_url() {
        all.push(("postgres", Arc::new(fresh_postgres(&url).await), None));
    }
    all
}

fn account(email: &str, role: AccountRole) -> Account {
    Account {
        email: email.into(),
        name: "Ann Agent".into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_ms: T2026,
    }
}

fn console_session(token: &str, email: &str, expires_ms: i64) -> ConsoleSession {
    ConsoleSession {
        token_hash: token.into(),
        email: email.into(),
        csrf: format!("csrf-{token}"),
        created_ms: T2026,
        expires_ms,
    }
}

#[tokio::test]
async fn an_account_is_added_once_listed_and_removed_with_its_sessions() {
    for (name, store, _dir) in account_backends().await {
        assert!(store.add_account(account("ann@example.com", AccountRole::Admin)).await.unwrap(), "{name}");
        assert!(!store.add_account(account("ann@example.com", AccountRole::Agent)).await.unwrap(), "{name}");
        assert!(store.add_account(account("bob@example.com", AccountRole::Agent)).await.unwrap(), "{name}");
        let all: Vec<_> = store.accounts().await.unwrap().into_iter().map(|a| (a.email, a.role)).collect();
        assert_eq!(
            all,
            [("ann@example.com".into(), AccountRole::Admin), ("bob@example.com".into(), AccountRole::Agent)],
            "{name}"
        );
        store.open_session(console_session("t1", "ann@example.com", T2026 + 1000)).await.unwrap();
        assert!(store.console_session("t1", T2026).await.unwrap().is_some(), "{name}");
        assert!(store.remove_account("ann@example.com").await.unwrap(), "{name}");
        assert!(!store.remove_account("ann@example.com").await.unwrap(), "{name}");
        assert!(
            store.console_session("t1", T2026).await.unwrap().is_none(),
            "{name}: session outlived its account"
        );
        assert!(store.account("ann@example.com").await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn a_session_is_found_by_its_token_hash_until_it_expires_or_closes() {
    for (name, store, _dir) in account_backends().await {
        store.add_account(account("ann@example.com", AccountRole::Agent)).await.unwrap();
        store.open_session(console_session("t1", "ann@example.com", T2026 + 1000)).await.unwrap();
        store.open_session(console_session("t2", "ann@example.com", T2026 + 1000)).await.unwrap();
        let (s, a) = store.console_session("t1", T2026 + 999).await.unwrap().unwrap();
        assert_eq!((s.csrf.as_str(), a.email.as_str()), ("csrf-t1", "ann@example.com"), "{name}");
        assert!(store.console_session("t1", T2026 + 1000).await.unwrap().is_none(), "{name}: expired");
        assert!(store.console_session("nope", T2026).await.unwrap().is_none(), "{name}");
        store.close_session("t2").await.unwrap();
        assert!(store.console_session("t2", T2026).await.unwrap().is_none(), "{name}: closed");
    }
}

#[tokio::test]
async fn a_new_password_closes_every_session_of_the_account() {
    for (name, store, _dir) in account_backends().await {
        store.add_account(account("ann@example.com", AccountRole::Agent)).await.unwrap();
        store.open_session(console_session("t1", "ann@example.com", T2027)).await.unwrap();
        assert!(store.set_password("ann@example.com", "new-hash").await.unwrap(), "{name}");
        assert!(!store.set_password("zed@example.com", "new-hash").await.unwrap(), "{name}");
        assert_eq!(
            store.account("ann@example.com").await.unwrap().unwrap().password_hash,
            "new-hash",
            "{name}"
        );
        assert!(store.console_session("t1", T2026).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn failed_sign_ins_are_counted_per_key_within_the_window_and_cleared() {
    for (name, store, _dir) in account_backends().await {
        for at in [100, 200, 300] {
            store.sign_in_failed("account:ann@example.com", at, 0).await.unwrap();
        }
        store.sign_in_failed("ip:127.0.0.1", 300, 0).await.unwrap();
        assert_eq!(store.sign_in_failures("account:ann@example.com", 150).await.unwrap(), 2, "{name}");
        assert_eq!(store.sign_in_failures("ip:127.0.0.1", 0).await.unwrap(), 1, "{name}");
        // A new failure forgets the old ones of its key.
        store.sign_in_failed("account:ann@example.com", 400, 250).await.unwrap();
        assert_eq!(store.sign_in_failures("account:ann@example.com", 0).await.unwrap(), 2, "{name}");
        store.clear_sign_in_failures("account:ann@example.com").await.unwrap();
        assert_eq!(store.sign_in_failures("account:ann@example.com", 0).await.unwrap(), 0, "{name}");
        assert_eq!(store.sign_in_failures("ip:127.0.0.1", 0).await.unwrap(), 1, "{name}");
    }
}

#[tokio::test]
async fn the_audit_log_gives_the_latest_changes_first() {
    for (name, store, _dir) in account_backends().await {
        for (i, action) in ["account.add", "faq.put", "faq.delete"].into_iter().enumerate() {
            let entry = AuditEntry {
                at_ms: T2026 + i as i64,
                actor: "ann@example.com".into(),
                action: action.into(),
                detail: format!("d{i}"),
            };
            store.audit(entry).await.unwrap();
        }
        let log = store.audit_log(2).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["faq.delete", "faq.put"], "{name}");
    }
}

async fn transcript_backends() -> Vec<(&'static str, Arc<dyn Transcripts>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("transcripts.db")).unwrap();
    let mut all: Vec<(&'static str, Arc<dyn Transcripts>, Option<tempfile::TempDir>)> =
        vec![("sqlite", Arc::new(sqlite), Some(dir)), ("memory", Arc::new(MemoryBackend::new()), None)];
    if let Some(url) = postgres_url() {
        all.push(("postgres", Arc::new(fresh_postgres(&url).await), None));
    }
    all
}

fn line(speaker: Speaker, text: &str, at_ms: i64) -> TranscriptLine {
    TranscriptLine { speaker, author: None, text: text.into(), at_ms }
}

#[tokio::test]
async fn handed_over_conversations_come_first_longest_waiting_first_then_the_latest() {
    for (name, store, _dir) in transcript_backends().await {
        let bot = a("+15550000000");
        store.record(&a("+331"), Some(&bot), vec![line(Speaker::Employee, "hello", 100)]).await.unwrap();
        store.record(&a("+332"), None, vec![line(Speaker::Employee, "human", 200)]).await.unwrap();
        store.record(&a("+333"), None, vec![line(Speaker::Employee, "agent", 300)]).await.unwrap();
        store.record(&a("+334"), None, vec![line(Speaker::Employee, "later", 400)]).await.unwrap();
        store.set_handed_over(&a("+333"), Some(300)).await.unwrap();
        store.set_handed_over(&a("+332"), Some(350)).await.unwrap();
        let order: Vec<_> =
            store.conversations(10).await.unwrap().into_iter().map(|c| c.user.id().to_owned()).collect();
        assert_eq!(order, ["+333", "+332", "+334", "+331"], "{name}");
        store.set_handed_over(&a("+333"), None).await.unwrap();
        let first = store.conversations(1).await.unwrap();
        assert_eq!(first[0].user, a("+332"), "{name}");
        let one = store.conversation(&a("+331")).await.unwrap().unwrap();
        assert_eq!((one.bot, one.last_text.as_str()), (Some(bot), "hello"), "{name}");
    }
}

#[tokio::test]
async fn a_transcript_keeps_its_lines_in_order_and_pruning_forgets_old_ones() {
    for (name, store, _dir) in transcript_backends().await {
        let u = a("+331");
        let lines = vec![
            line(Speaker::Employee, "<b>hi</b>", 100),
            line(Speaker::Bot, "hello", 101),
            TranscriptLine {
                speaker: Speaker::Agent,
                author: Some("ann@example.com".into()),
                text: "I'm here".into(),
                at_ms: 500,
            },
        ];
        store.record(&u, None, lines.clone()).await.unwrap();
        assert_eq!(store.transcript(&u, 10).await.unwrap(), lines, "{name}");
        assert_eq!(store.transcript(&u, 1).await.unwrap(), lines[2..], "{name}");
        store.record(&a("+332"), None, vec![line(Speaker::Employee, "old", 50)]).await.unwrap();
        assert_eq!(store.prune_transcripts(200).await.unwrap(), 4, "{name}: 3 lines and 1 idle conversation");
        assert_eq!(store.transcript(&u, 10).await.unwrap(), lines[2..], "{name}");
        assert!(store.conversation(&a("+332")).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn turns_are_counted_per_day_and_kind_with_their_topics_and_waits_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("figures.db")).unwrap();
    let mut backends: Vec<(&str, Arc<dyn Figures>)> =
        vec![("sqlite", Arc::new(sqlite)), ("memory", Arc::new(MemoryBackend::new()))];
    if let Some(url) = postgres_url() {
        backends.push(("postgres", Arc::new(fresh_postgres(&url).await)));
    }
    for (name, store) in backends {
        store.count_turn(10, "answered", Some("payslip")).await.unwrap();
        store.count_turn(10, "answered", Some("payslip")).await.unwrap();
        store.count_turn(10, "answered", Some("leave")).await.unwrap();
        store.count_turn(10, "declined", None).await.unwrap();
        store.count_turn(11, "handed_over", None).await.unwrap();
        store.count_turn(9, "answered", Some("leave")).await.unwrap();
        let days: Vec<_> =
            store.day_counts(10).await.unwrap().into_iter().map(|d| (d.day, d.kind, d.count)).collect();
        assert_eq!(
            days,
            [(10, "answered".into(), 3), (10, "declined".into(), 1), (11, "handed_over".into(), 1)],
            "{name}"
        );
        assert_eq!(
            store.top_topics(10, 5).await.unwrap(),
            [("payslip".into(), 2), ("leave".into(), 1)],
            "{name}"
        );
        store.agent_replied(1000, 60_000).await.unwrap();
        store.agent_replied(5000, 120_000).await.unwrap();
        assert_eq!(store.reply_waits(2000).await.unwrap(), [120_000], "{name}");
    }
}

/// A backend's name, the backend as a store, and as the console's `Resend` role.
type WithResend = (&'static str, Arc<dyn Store>, Arc<dyn super::roles::Resend>);

/// Each backend as a store and, beside it, as the console's `Resend` role (SQLite's file in
/// `dir`; PostgreSQL's when a test server is named).
async fn resend_backends(dir: &std::path::Path) -> Vec<WithResend> {
    let sqlite = Arc::new(SqliteStore::open(&dir.join("resend.db")).unwrap());
    let memory = Arc::new(MemoryBackend::new());
    let mut backends: Vec<WithResend> =
        vec![("sqlite", sqlite.clone(), sqlite), ("memory", memory.clone(), memory)];
    if let Some(url) = postgres_url() {
        let postgres = Arc::new(fresh_postgres(&url).await);
        backends.push(("postgres", postgres.clone(), postgres));
    }
    backends
}

#[tokio::test]
async fn a_sent_mail_resent_is_queued_again_and_due_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store, resend) in resend_backends(dir.path()).await {
        let ticket = file_request(&*store, "+33600000009", "SMresend", T2026).await;
        let due = store.due_mail(T2026, 10).await.unwrap();
        store.mark_sent(due[0].id, T2026 + 1).await.unwrap();
        assert!(store.due_mail(T2027, 10).await.unwrap().is_empty(), "{name}");
        assert!(resend.resend_mail(&ticket.to_lowercase(), "hr@example.com", T2027).await.unwrap(), "{name}");
        assert!(!resend.resend_mail("REQ-1999-000001", "hr@example.com", T2027).await.unwrap(), "{name}");
        let due = store.due_mail(T2027, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{name}");
        assert_eq!(due[0].request().unwrap().mail, MailState::Queued, "{name}");
    }
}

#[tokio::test]
async fn an_e_mails_delivery_history_records_each_attempt_and_each_resend() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store, resend) in resend_backends(dir.path()).await {
        let ticket = file_request(&*store, "+33600000009", "SMhistory", T2026).await;
        let other = file_request(&*store, "+33600000008", "SMother", T2026).await;
        assert!(store.mail_history(&ticket).await.unwrap().is_empty(), "{name}: never tried");
        let id = store.due_mail(T2026, 10).await.unwrap()[0].id;
        store.mark_failed(id, "connection refused", T2026 + 10, T2026 + 1000).await.unwrap();
        store.mark_failed(id, "421 busy", T2026 + 1000, T2026 + 3000).await.unwrap();
        store.mark_sent(id, T2026 + 3000).await.unwrap();
        // Neither a late failure of a sent e-mail nor an unknown row writes history.
        store.mark_failed(id, "late", T2026 + 3001, T2026 + 4000).await.unwrap();
        store.mark_sent(999_999, T2026 + 3002).await.unwrap();
        let events = |history: Vec<MailEvent>| {
            history
                .into_iter()
                .map(|e| (e.at_ms, e.kind, e.error, e.retry_at_ms, e.actor))
                .collect::<Vec<_>>()
        };
        let tried = vec![
            (
                T2026 + 10,
                MailEventKind::Failed,
                Some("connection refused".to_owned()),
                Some(T2026 + 1000),
                None,
            ),
            (T2026 + 1000, MailEventKind::Failed, Some("421 busy".to_owned()), Some(T2026 + 3000), None),
            (T2026 + 3000, MailEventKind::Sent, None, None, None),
        ];
        assert_eq!(events(store.mail_history(&ticket).await.unwrap()), tried, "{name}");
        assert!(resend.resend_mail(&ticket, "agent@example.com", T2027).await.unwrap(), "{name}");
        let id = store
            .due_mail(T2027, 10)
            .await
            .unwrap()
            .iter()
            .find(|d| d.request().is_some_and(|r| r.ticket == ticket))
            .unwrap()
            .id;
        store.mark_sent(id, T2027 + 5).await.unwrap();
        let mut all = tried;
        all.push((T2027, MailEventKind::Resent, None, None, Some("agent@example.com".to_owned())));
        all.push((T2027 + 5, MailEventKind::Sent, None, None, None));
        let lower = ticket.to_lowercase();
        assert_eq!(events(store.mail_history(&format!(" {lower} ")).await.unwrap()), all, "{name}");
        assert!(store.mail_history(&other).await.unwrap().is_empty(), "{name}: another e-mail's history");
        assert!(store.mail_history("REQ-1999-000001").await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn an_e_mail_that_is_not_a_request_is_queued_with_its_turn_once_and_never_listed_as_a_request() {
    for (name, store, _dir) in backends().await {
        let mail = super::roles::NewMail {
            recipient: "hr-desk@example.com".into(),
            subject: "Conversation handed over — Ann".into(),
            body: "Answer in the console: https://wabot.example.com/console/conversations/twilio/x".into(),
        };
        let t = Turn { mail: Some(mail.clone()), ..turn(&a("+33600000001"), "SMmail", "{}", 0, "ok", T2026) };
        let committed = store.commit(t.clone()).await.unwrap();
        assert_eq!(committed.ticket, None, "{name}: no ticket");
        // A redelivery of the message queues nothing more.
        assert!(store.commit(t).await.unwrap().replayed, "{name}");
        let due = store.due_mail(T2026, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{name}");
        let super::roles::OutboxMail::Other(stored) = &due[0].mail else { panic!("{name}: {:?}", due[0]) };
        assert_eq!((&stored.mail, stored.created_ms, stored.attempts), (&mail, T2026, 0), "{name}");
        assert!(store.requests(10).await.unwrap().is_empty(), "{name}");
        let all = super::RequestQuery::default();
        assert!(store.find_requests(&all, 10).await.unwrap().is_empty(), "{name}");
        assert!(store.count_requests(&all).await.unwrap().is_empty(), "{name}");
        assert!(store.request_kinds().await.unwrap().is_empty(), "{name}");
        // Retried and delivered like a request's e-mail.
        store.mark_failed(due[0].id, "421 busy", T2026, T2026 + 10).await.unwrap();
        let again = store.due_mail(T2026 + 10, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts()), (1, 1), "{name}");
        store.mark_sent(again[0].id, T2026 + 20).await.unwrap();
        assert_eq!(store.outbox_depth().await.unwrap(), 0, "{name}");
        // The next request still gets the year's first ticket.
        assert_eq!(file_request(&*store, "+33600000002", "SMnext", T2026).await, "REQ-2026-000001", "{name}");
    }
}
