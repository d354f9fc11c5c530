//! `EventStore` on SQLite: the outbox (`platform_outbox`) and poison table (`platform_poison`).

use super::{Sqlite, db, parse_ts, ts};
use crate::platform::store::{
    EventStore, OutboxStatus, PendingEvent, PoisonMessage, StoreError, TopicBacklog,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use std::time::Duration;

#[async_trait]
impl EventStore for Sqlite {
    async fn claim_pending(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let owner = owner.to_owned();
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
            let mut claimed = {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE platform_outbox SET claimed_by = ?1, claimed_until = ?2, attempts = attempts + 1
                         WHERE seq IN (SELECT seq FROM platform_outbox
                                       WHERE sent_at IS NULL AND available_at <= ?3 AND (claimed_until IS NULL OR claimed_until <= ?3)
                                       ORDER BY seq LIMIT ?4)
                         RETURNING seq, event_id, topic, subject, event_type, correlation_id, payload, attempts",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![owner, ts(until), ts(now), limit as i64], |r| {
                        Ok(PendingEvent {
                            seq: r.get(0)?,
                            event_id: r.get(1)?,
                            topic: r.get(2)?,
                            subject: r.get(3)?,
                            event_type: r.get(4)?,
                            correlation_id: r.get(5)?,
                            payload: r.get(6)?,
                            attempts: r.get(7)?,
                        })
                    })
                    .map_err(db)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db)?
            };
            tx.commit().map_err(db)?;
            claimed.sort_by_key(|e| e.seq);
            Ok(claimed)
        })
        .await
    }

    async fn mark_sent(
        &self,
        owner: &str,
        seqs: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (owner, seqs) = (owner.to_owned(), seqs.to_vec());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE platform_outbox SET sent_at = ?3, claimed_by = NULL, claimed_until = NULL, last_error = NULL
                         WHERE seq = ?1 AND claimed_by = ?2",
                    )
                    .map_err(db)?;
                for seq in seqs {
                    stmt.execute(params![seq, owner, ts(now)]).map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn release(
        &self,
        owner: &str,
        seq: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (owner, error) = (
            owner.to_owned(),
            error.chars().take(2000).collect::<String>(),
        );
        self.write(move |conn| {
            conn.execute(
                "UPDATE platform_outbox SET claimed_by = NULL, claimed_until = NULL, last_error = ?3, available_at = ?4
                 WHERE seq = ?1 AND claimed_by = ?2",
                params![seq, owner, error, ts(retry_at)],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn record_poison(
        &self,
        consumer: &str,
        message_id: Option<&str>,
        payload: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (consumer, message_id, payload, reason) = (
            consumer.to_owned(),
            message_id.map(str::to_owned),
            payload.to_owned(),
            reason.to_owned(),
        );
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO platform_poison (consumer, message_id, payload, reason, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![consumer, message_id, payload, reason, ts(now)],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn poison_count(&self, consumer: &str) -> Result<u64, StoreError> {
        let consumer = consumer.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM platform_poison WHERE consumer = ?1",
                [consumer],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Health must tell the truth now, not within the read-check interval.
        self.check_file()?;
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(db)
        })
        .await
    }

    async fn reclaim_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE platform_outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?1 AND sent_at IS NULL",
                [owner],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT topic, COUNT(*), MIN(created_at) FROM platform_outbox WHERE sent_at IS NULL GROUP BY topic ORDER BY topic",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| r.try_into())
                .map_err(db)?;
            let topics = rows
                .map(|row| {
                    let (topic, n, oldest): (String, i64, String) = row.map_err(db)?;
                    Ok(TopicBacklog {
                        topic,
                        pending: n as u64,
                        oldest: Some(parse_ts(&oldest)?),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(OutboxStatus::from_topics(topics))
        })
        .await
    }

    async fn poison_list(
        &self,
        consumer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PoisonMessage>, StoreError> {
        let consumer = consumer.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, consumer, message_id, payload, reason, received_at FROM platform_poison WHERE (?1 IS NULL OR consumer = ?1) ORDER BY id LIMIT ?2",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![consumer, limit], poison_row)
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            rows.into_iter().map(poison_of).collect()
        })
        .await
    }

    async fn poison_get(&self, id: i64) -> Result<Option<PoisonMessage>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, consumer, message_id, payload, reason, received_at FROM platform_poison WHERE id = ?1",
                    [id],
                    poison_row,
                )
                .optional()
                .map_err(db)?;
            row.map(poison_of).transpose()
        })
        .await
    }

    async fn poison_delete(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute("DELETE FROM platform_poison WHERE id = ?1", [id])
                .map(|n| n > 0)
                .map_err(db)
        })
        .await
    }

    async fn poison_total(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM platform_poison", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }
}

type PoisonRow = (i64, String, Option<String>, String, String, String);

fn poison_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PoisonRow> {
    r.try_into()
}

fn poison_of(
    (id, consumer, message_id, payload, reason, received_at): PoisonRow,
) -> Result<PoisonMessage, StoreError> {
    Ok(PoisonMessage {
        id,
        consumer,
        message_id,
        payload,
        reason,
        received_at: parse_ts(&received_at)?,
    })
}
