//! The outbound queue on SQLite: rows queued inside a turn's transaction or on their own,
//! claimed with a lease in one `UPDATE … RETURNING`, so two workers (or two processes on the
//! file) never claim one row at once.

use rusqlite::{Connection, Row, params};

use super::rows::{address, all, exec, one, sql_limit};
use super::{Blocking, Sync};
use crate::domain::Address;
use crate::store::StoreError;
use crate::store::roles::{NewOutbound, OutboundCounts, OutboundItem, OutboundRecord, OutboundState};

const ITEM_COLUMNS: &str = "o.id, o.channel, o.address, o.sender, o.payload, o.attempts, o.created_ms, \
     (SELECT i.last_ms FROM inbound i WHERE i.channel = o.channel AND i.address = o.address)";

/// Inserts `items`, due at `now_ms`, inside the caller's transaction; their ids.
pub(super) fn insert(
    tx: &Connection,
    items: impl IntoIterator<Item = NewOutbound>,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::new();
    for item in items {
        exec(
            tx,
            "INSERT INTO outbound (channel, address, sender, payload, state, next_attempt_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?5)",
            params![
                item.to.channel().as_str(),
                item.to.id(),
                item.from.as_ref().map(Address::id),
                item.payload,
                now_ms
            ],
        )?;
        ids.push(tx.last_insert_rowid());
    }
    Ok(ids)
}

/// Records that `user` wrote at `at_ms`, inside the caller's transaction.
pub(super) fn inbound(tx: &Connection, user: &Address, at_ms: i64) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO inbound (channel, address, last_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel, address) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms)",
        params![user.channel().as_str(), user.id(), at_ms],
    )?;
    Ok(())
}

fn item(row: &Row<'_>) -> rusqlite::Result<OutboundItem> {
    let to = address(row, 1, 2)?;
    let sender: Option<String> = row.get(3)?;
    let from = sender.and_then(|s| Address::parse(to.channel(), &s).ok());
    Ok(OutboundItem {
        id: row.get(0)?,
        to,
        from,
        payload: row.get(4)?,
        attempts: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
        created_ms: row.get(6)?,
        last_inbound_ms: row.get(7)?,
    })
}

impl Blocking {
    /// See [`crate::store::Outbound::queue_outbound`].
    pub fn queue_outbound(&self, items: Vec<NewOutbound>, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.write(Sync::Full, |tx| insert(tx, items, now_ms))
    }

    /// See [`crate::store::Outbound::claim_outbound`].
    pub fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboundItem>, StoreError> {
        let ids: Vec<i64> = self.write(Sync::Normal, |tx| {
            all(
                tx,
                "UPDATE outbound SET claimed_until_ms = ?2, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM outbound
                              WHERE state = 'queued' AND next_attempt_ms <= ?1 AND claimed_until_ms <= ?1
                              ORDER BY next_attempt_ms, id LIMIT ?3)
                 RETURNING id",
                params![now_ms, now_ms.saturating_add(lease_ms), sql_limit(limit)],
                |r| r.get(0),
            )
        })?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!("SELECT {ITEM_COLUMNS} FROM outbound o WHERE o.id = ?1");
            if let Some(found) = self.read(|c| one(c, &sql, [id], item))? {
                items.push(found);
            }
        }
        Ok(items)
    }

    /// See [`crate::store::Outbound::outbound_sent`].
    pub fn outbound_sent(&self, id: i64, provider: Option<&str>, at_ms: i64) -> Result<bool, StoreError> {
        // In the WAL before it returns: a process killed after this never sends the message
        // again. Not flushed to the disk at once (one fsync per message would cap the queue
        // at the disk's rate): a power cut in the next moments may send it a second time.
        let n = self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "UPDATE outbound SET state = 'sent', provider_message_id = ?2, sent_ms = ?3,
                     claimed_until_ms = 0, last_error = NULL
                 WHERE id = ?1 AND state = 'queued'",
                params![id, provider, at_ms],
            )
        })?;
        Ok(n > 0)
    }

    /// See [`crate::store::Outbound::outbound_retry`].
    pub fn outbound_retry(&self, id: i64, error: &str, retry_at_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "UPDATE outbound SET last_error = ?2, next_attempt_ms = ?3, claimed_until_ms = 0
                 WHERE id = ?1 AND state = 'queued'",
                params![id, error, retry_at_ms],
            )
        })?;
        Ok(())
    }

    /// See [`crate::store::Outbound::outbound_dropped`].
    pub fn outbound_dropped(&self, id: i64, reason: &str, at_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Full, |tx| {
            exec(
                tx,
                "UPDATE outbound SET state = 'dropped', last_error = ?2, sent_ms = NULL, claimed_until_ms = 0,
                     next_attempt_ms = ?3
                 WHERE id = ?1 AND state = 'queued'",
                params![id, reason, at_ms],
            )
        })?;
        Ok(())
    }

    /// See [`crate::store::Outbound::next_outbound_after`].
    pub fn next_outbound_after(&self, after_ms: i64) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            one(
                c,
                "SELECT min(max(next_attempt_ms, claimed_until_ms)) FROM outbound
                 WHERE state = 'queued' AND max(next_attempt_ms, claimed_until_ms) > ?1",
                [after_ms],
                |r| r.get(0),
            )
            .map(Option::flatten)
        })
    }

    /// See [`crate::store::Outbound::outbound_counts`].
    pub fn outbound_counts(&self) -> Result<OutboundCounts, StoreError> {
        let rows: Vec<(String, i64)> = self.read(|c| {
            all(c, "SELECT state, count(*) FROM outbound GROUP BY state", [], |r| Ok((r.get(0)?, r.get(1)?)))
        })?;
        let mut counts = OutboundCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => counts.queued = n,
                "sent" => counts.sent = n,
                _ => counts.dropped = n,
            }
        }
        Ok(counts)
    }

    /// See [`crate::store::Outbound::outbound_record`].
    pub fn outbound_record(&self, id: i64) -> Result<Option<OutboundRecord>, StoreError> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS}, o.state, o.provider_message_id, o.last_error, o.next_attempt_ms, o.sent_ms
             FROM outbound o WHERE o.id = ?1"
        );
        self.read(|c| {
            one(c, &sql, [id], |r| {
                let state: String = r.get(8)?;
                Ok(OutboundRecord {
                    item: item(r)?,
                    state: match state.as_str() {
                        "queued" => OutboundState::Queued,
                        "sent" => OutboundState::Sent,
                        _ => OutboundState::Dropped,
                    },
                    provider_message_id: r.get(9)?,
                    last_error: r.get(10)?,
                    next_attempt_ms: r.get(11)?,
                    sent_ms: r.get(12)?,
                })
            })
        })
    }

    /// See [`crate::store::Outbound::record_inbound`].
    pub fn record_inbound(&self, user: &Address, at_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| inbound(tx, user, at_ms))
    }
}
