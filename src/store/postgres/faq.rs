//! The FAQ's journal of live changes in the database, for replicas: a change made through
//! any replica's admin API is appended to `faq_journal` and announced with
//! `NOTIFY wabot_faq`; every replica replays the table over its corpus at start and then
//! follows it ([`follow_forever`]): at once on a notification, and every [`POLL`] whatever
//! happens, so a lost notification or a dropped listening connection delays a change by a
//! few seconds at most.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::{ADVISORY_FAQ, PostgresStore, connect, pg};
use crate::knowledge::corpus::journal::Op;
use crate::knowledge::faq::{Faq, SharedJournal, SharedLog};
use crate::store::StoreError;

/// How often the journal is read even without a notification.
pub const POLL: Duration = Duration::from_secs(5);

/// The notification channel.
const CHANNEL: &str = "wabot_faq";

/// The journal on a PostgreSQL database.
pub struct PgFaqJournal {
    store: PostgresStore,
    /// The runtime [`SharedJournal::append`] (called on a blocking thread) runs its query on.
    runtime: tokio::runtime::Handle,
}

impl PgFaqJournal {
    /// The journal of `store`'s database; its calls run on the current runtime.
    pub fn new(store: PostgresStore) -> PgFaqJournal {
        PgFaqJournal { store, runtime: tokio::runtime::Handle::current() }
    }

    /// The changes after `after`, in order.
    pub async fn since(&self, after: i64) -> Result<Vec<(i64, Op)>, StoreError> {
        let client = self.store.client().await?;
        let rows = client
            .query("SELECT seq, op FROM faq_journal WHERE seq > $1 ORDER BY seq", &[&after])
            .await
            .map_err(pg("reading the FAQ journal"))?;
        rows.iter()
            .map(|r| {
                let op: &str = r.get(1);
                let op = serde_json::from_str(op)
                    .map_err(|e| StoreError::backend(format!("faq_journal {}: {e}", r.get::<_, i64>(0))))?;
                Ok((r.get(0), op))
            })
            .collect()
    }

    /// The journal and everything it holds: what [`Faq::open`] replays.
    pub async fn shared_log(self: &Arc<Self>) -> Result<SharedLog, StoreError> {
        let ops = self.since(0).await?;
        Ok(SharedLog { journal: Arc::clone(self) as Arc<dyn SharedJournal>, ops })
    }

    async fn append_async(&self, op: &Op) -> Result<i64, StoreError> {
        let text = serde_json::to_string(op).map_err(StoreError::backend)?;
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(pg("journaling a FAQ change"))?;
        // One writer at a time, to the commit: sequence numbers then follow commit order,
        // and a follower that has read up to n never misses a change numbered below n.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_FAQ])
            .await
            .map_err(pg("journaling a FAQ change"))?;
        let seq: i64 = tx
            .query_one(
                "INSERT INTO faq_journal (op, at_ms)
                 VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) RETURNING seq",
                &[&text],
            )
            .await
            .map_err(pg("journaling a FAQ change"))?
            .get(0);
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
            .await
            .map_err(pg("announcing a FAQ change"))?;
        tx.commit().await.map_err(pg("journaling a FAQ change"))?;
        Ok(seq)
    }
}

impl SharedJournal for PgFaqJournal {
    fn append(&self, op: &Op) -> Result<i64, String> {
        self.runtime.block_on(self.append_async(op)).map_err(|e| e.to_string())
    }
}

/// Applies the journal's new changes to `faq`; how many.
async fn catch_up(faq: &Arc<Faq>, journal: &PgFaqJournal) -> Result<usize, String> {
    let ops = journal.since(faq.followed()).await.map_err(|e| e.to_string())?;
    if ops.is_empty() {
        return Ok(0);
    }
    let faq = Arc::clone(faq);
    // Applying embeds the changed entries: off the async threads.
    tokio::task::spawn_blocking(move || faq.follow(ops))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Follows the journal forever: listens for `NOTIFY wabot_faq` on a connection of its own
/// (reopened when it drops) and reads the journal on each notification and every [`POLL`].
pub async fn follow_forever(
    faq: Arc<Faq>,
    journal: Arc<PgFaqJournal>,
    url: String,
    password: Option<String>,
) {
    let wake = Arc::new(Notify::new());
    let listening = tokio::spawn(listen_forever(url, password, Arc::clone(&wake)));
    let _stop_listening = AbortOnDrop(listening);
    loop {
        match catch_up(&faq, &journal).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                changes = n,
                seq = faq.followed(),
                "applied FAQ changes made on another replica"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot read the shared FAQ journal; trying again"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Holds a `LISTEN wabot_faq` connection, waking `wake` on each notification.
async fn listen_forever(url: String, password: Option<String>, wake: Arc<Notify>) {
    loop {
        if let Err(e) = listen(&url, password.as_deref(), &wake).await {
            tracing::debug!(error = %e, "the FAQ journal's listening connection ended; polling meanwhile");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn listen(url: &str, password: Option<&str>, wake: &Notify) -> Result<(), StoreError> {
    let target = connect::target(url, password)?;
    let (client, mut connection) = target.config.connect(target.tls).await.map_err(pg("listening"))?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen = client.batch_execute("LISTEN wabot_faq");
    tokio::pin!(listen);
    // The connection is driven by reading its messages, the LISTEN's answer included.
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                done.map_err(pg("listening"))?;
                listening = true;
                // Changes made before the LISTEN took effect are read now.
                wake.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg("listening")(e)),
                None => return Ok(()),
            },
        }
    }
}
