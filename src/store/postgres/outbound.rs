//! The outbound queue on PostgreSQL: rows queued inside a turn's transaction or on their
//! own, claimed with a lease in one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED) RETURNING`, so that the senders of several replicas claiming at once never take
//! one message twice: a row another claim holds is skipped, not waited for, and a row
//! whose lease runs is not due.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PostgresStore, address, pg, sql_limit};
use crate::domain::Address;
use crate::store::StoreError;
use crate::store::roles::{
    NewOutbound, Outbound, OutboundCounts, OutboundItem, OutboundRecord, OutboundState,
};

const ITEM_COLUMNS: &str = "o.id, o.channel, o.address, o.sender, o.payload, o.attempts, o.created_ms, \
     (SELECT i.last_ms FROM inbound i WHERE i.channel = o.channel AND i.address = o.address)";

/// Inserts `items`, due at `now_ms`, inside the caller's transaction; their ids.
pub(super) async fn insert<C: GenericClient>(
    tx: &C,
    items: Vec<NewOutbound>,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::new();
    for item in items {
        let row = tx
            .query_one(
                "INSERT INTO outbound (channel, address, sender, payload, state, next_attempt_ms, created_ms)
                 VALUES ($1, $2, $3, $4, 'queued', $5, $5) RETURNING id",
                &[
                    &item.to.channel().as_str(),
                    &item.to.id(),
                    &item.from.as_ref().map(Address::id),
                    &item.payload,
                    &now_ms,
                ],
            )
            .await
            .map_err(pg("queueing a message"))?;
        ids.push(row.get(0));
    }
    Ok(ids)
}

/// Records that `user` wrote at `at_ms`, inside the caller's transaction.
pub(super) async fn inbound<C: GenericClient>(tx: &C, user: &Address, at_ms: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO inbound (channel, address, last_ms) VALUES ($1, $2, $3)
         ON CONFLICT (channel, address) DO UPDATE SET last_ms = greatest(inbound.last_ms, excluded.last_ms)",
        &[&user.channel().as_str(), &user.id(), &at_ms],
    )
    .await
    .map_err(pg("recording the user's message time"))?;
    Ok(())
}

fn item(row: &Row) -> Result<OutboundItem, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::backend(format!("postgres: an outbound row: {e}"));
    let channel: String = row.try_get(1).map_err(get)?;
    let id: String = row.try_get(2).map_err(get)?;
    let to = address(&channel, &id)?;
    let sender: Option<String> = row.try_get(3).map_err(get)?;
    let from = sender.and_then(|s| Address::parse(to.channel(), &s).ok());
    let attempts: i32 = row.try_get(5).map_err(get)?;
    Ok(OutboundItem {
        id: row.try_get(0).map_err(get)?,
        to,
        from,
        payload: row.try_get(4).map_err(get)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        created_ms: row.try_get(6).map_err(get)?,
        last_inbound_ms: row.try_get(7).map_err(get)?,
    })
}

#[async_trait]
impl Outbound for PostgresStore {
    async fn queue_outbound(&self, items: Vec<NewOutbound>, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("starting to queue"))?;
        let ids = insert(&tx, items, now_ms).await?;
        tx.commit().await.map_err(pg("committing the queued messages"))?;
        Ok(ids)
    }

    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboundItem>, StoreError> {
        let client = self.client().await?;
        // SKIP LOCKED: rows another replica is claiming at this moment are left to it; the
        // lease (`claimed_until_ms`) keeps them from everyone until it ends.
        let sql = format!(
            "WITH claimed AS (
                 UPDATE outbound SET claimed_until_ms = $2, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM outbound
                              WHERE state = 'queued' AND next_attempt_ms <= $1 AND claimed_until_ms <= $1
                              ORDER BY next_attempt_ms, id LIMIT $3
                              FOR UPDATE SKIP LOCKED)
                 RETURNING *)
             SELECT {ITEM_COLUMNS} FROM claimed o ORDER BY o.next_attempt_ms, o.id"
        );
        let rows = client
            .query(&sql, &[&now_ms, &now_ms.saturating_add(lease_ms), &sql_limit(limit)])
            .await
            .map_err(pg("claiming queued messages"))?;
        rows.iter().map(item).collect()
    }

    async fn outbound_sent(
        &self,
        id: i64,
        provider_message_id: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE outbound SET state = 'sent', provider_message_id = $2, sent_ms = $3,
                     claimed_until_ms = 0, last_error = NULL
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &provider_message_id, &at_ms],
            )
            .await
            .map_err(pg("recording a sent message"))?;
        Ok(n > 0)
    }

    async fn outbound_retry(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbound SET last_error = $2, next_attempt_ms = $3, claimed_until_ms = 0
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &error, &retry_at_ms],
            )
            .await
            .map_err(pg("recording a failed send"))?;
        Ok(())
    }

    async fn outbound_dropped(&self, id: i64, reason: &str, at_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbound SET state = 'dropped', last_error = $2, sent_ms = NULL, claimed_until_ms = 0,
                     next_attempt_ms = $3
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &reason, &at_ms],
            )
            .await
            .map_err(pg("dropping a message"))?;
        Ok(())
    }

    async fn next_outbound_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(greatest(next_attempt_ms, claimed_until_ms)) FROM outbound
                 WHERE state = 'queued' AND greatest(next_attempt_ms, claimed_until_ms) > $1",
                &[&after_ms],
            )
            .await
            .map_err(pg("reading the outbound queue"))?;
        Ok(row.get(0))
    }

    async fn outbound_counts(&self) -> Result<OutboundCounts, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT state, count(*) FROM outbound GROUP BY state", &[])
            .await
            .map_err(pg("counting the outbound queue"))?;
        let mut counts = OutboundCounts::default();
        for row in rows {
            let state: String = row.get(0);
            let n = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            match state.as_str() {
                "queued" => counts.queued = n,
                "sent" => counts.sent = n,
                _ => counts.dropped = n,
            }
        }
        Ok(counts)
    }

    async fn outbound_record(&self, id: i64) -> Result<Option<OutboundRecord>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, o.state, o.provider_message_id, o.last_error, o.next_attempt_ms, o.sent_ms
             FROM outbound o WHERE o.id = $1"
        );
        let row = client.query_opt(&sql, &[&id]).await.map_err(pg("reading a queued message"))?;
        let Some(r) = row else { return Ok(None) };
        let get = |e: tokio_postgres::Error| StoreError::backend(format!("postgres: an outbound row: {e}"));
        let state: String = r.try_get(8).map_err(get)?;
        Ok(Some(OutboundRecord {
            item: item(&r)?,
            state: match state.as_str() {
                "queued" => OutboundState::Queued,
                "sent" => OutboundState::Sent,
                _ => OutboundState::Dropped,
            },
            provider_message_id: r.try_get(9).map_err(get)?,
            last_error: r.try_get(10).map_err(get)?,
            next_attempt_ms: r.try_get(11).map_err(get)?,
            sent_ms: r.try_get(12).map_err(get)?,
        }))
    }

    async fn record_inbound(&self, user: &Address, at_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        inbound(&client, user, at_ms).await
    }
}
