//! `EventStore` on SQL Server: the outbox (`platform.outbox`) and poison table
//! (`platform.poison`).

use super::{DbError, Mssql, Tx, col, count, ms, opt_text, sql, text, unsigned};
use crate::platform::store::{
    EventStore, OutboxStatus, PendingEvent, PoisonMessage, StoreError, TopicBacklog,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

#[async_trait]
impl EventStore for Mssql {
    async fn claim_pending(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let (until, now) = (ms(until), ms(now));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Claiming is a write, but a failure before COMMIT leaves nothing claimed, so the
        // write loop may repeat it; a lost COMMIT answer leaves rows claimed until the lease
        // runs out, after which they are claimed again (at-least-once, as on SQLite).
        Ok(self
            .write("outbox.claim_pending", |c, _| {
                Box::pin(async move {
                    let rows = c
                        .query(sql::OUTBOX_CLAIM, &[&owner, &until, &now, &limit])
                        .await?;
                    let claimed = rows
                        .iter()
                        .map(|r| {
                            Ok(PendingEvent {
                                seq: col::<i64>(r, 0, "platform.outbox.seq")?,
                                event_id: text(r, 1, "platform.outbox.event_id")?,
                                topic: text(r, 2, "platform.outbox.topic")?,
                                subject: text(r, 3, "platform.outbox.subject")?,
                                event_type: text(r, 4, "platform.outbox.event_type")?,
                                correlation_id: opt_text(r, 5, "platform.outbox.correlation_id")?,
                                payload: text(r, 6, "platform.outbox.payload")?,
                                attempts: unsigned(
                                    col::<i32>(r, 7, "platform.outbox.attempts")?.into(),
                                    "attempts",
                                )?,
                            })
                        })
                        .collect::<Result<Vec<_>, DbError>>()?;
                    Ok(Tx::Commit(claimed))
                })
            })
            .await?)
    }

    async fn mark_sent(
        &self,
        owner: &str,
        seqs: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let list = seqs
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let (list, now) = (list.as_str(), ms(now));
        // Repeating it is harmless too: a second run changes rows still claimed by `owner`
        // into the same state.
        Ok(self
            .write("outbox.mark_sent", |c, _| {
                Box::pin(async move {
                    c.execute(sql::OUTBOX_MARK_SENT, &[&list, &owner, &now])
                        .await?;
                    Ok(Tx::Commit(()))
                })
            })
            .await?)
    }

    async fn release(
        &self,
        owner: &str,
        seq: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(2000).collect();
        let (error, retry_at) = (error.as_str(), ms(retry_at));
        Ok(self
            .write("outbox.release", |c, _| {
                Box::pin(async move {
                    c.execute(sql::OUTBOX_RELEASE, &[&seq, &owner, &error, &retry_at])
                        .await?;
                    Ok(Tx::Commit(()))
                })
            })
            .await?)
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .read("outbox.pending_count", |c, _| {
                Box::pin(
                    async move { count(c, sql::OUTBOX_PENDING_COUNT, &[], "pending count").await },
                )
            })
            .await?)
    }

    async fn record_poison(
        &self,
        consumer: &str,
        message_id: Option<&str>,
        payload: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ms(now);
        // In a transaction like every write, so a failure before COMMIT can be retried
        // without storing the message twice.
        Ok(self
            .write("poison.record", |c, _| {
                Box::pin(async move {
                    c.execute(
                        sql::POISON_INSERT,
                        &[&consumer, &message_id, &payload, &reason, &now],
                    )
                    .await?;
                    Ok(Tx::Commit(()))
                })
            })
            .await?)
    }

    async fn poison_count(&self, consumer: &str) -> Result<u64, StoreError> {
        Ok(self
            .read("poison.count", |c, _| {
                Box::pin(
                    async move { count(c, sql::POISON_COUNT, &[&consumer], "poison count").await },
                )
            })
            .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self
            .read("ping", |c, _| {
                Box::pin(async move {
                    c.query(sql::PING, &[]).await?;
                    Ok(())
                })
            })
            .await?)
    }

    async fn reclaim_leases(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(self
            .write("outbox.reclaim", |c, _| {
                Box::pin(async move {
                    let n = c.execute(sql::OUTBOX_RECLAIM, &[&owner]).await?;
                    Ok(Tx::Commit(n))
                })
            })
            .await?)
    }

    async fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
        Ok(self
            .read("outbox.status", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::OUTBOX_STATUS, &[]).await?;
                    let topics = rows
                        .iter()
                        .map(|r| {
                            Ok(TopicBacklog {
                                topic: text(r, 0, "platform.outbox.topic")?,
                                pending: unsigned(
                                    col::<i64>(r, 1, "pending count")?,
                                    "pending count",
                                )?,
                                oldest: Some(col::<DateTime<Utc>>(
                                    r,
                                    2,
                                    "platform.outbox.created_at",
                                )?),
                            })
                        })
                        .collect::<Result<Vec<_>, DbError>>()?;
                    Ok(OutboxStatus::from_topics(topics))
                })
            })
            .await?)
    }

    async fn poison_list(
        &self,
        consumer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PoisonMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .read("poison.list", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::POISON_LIST, &[&consumer, &limit]).await?;
                    rows.iter()
                        .map(poison_of)
                        .collect::<Result<Vec<_>, DbError>>()
                })
            })
            .await?)
    }

    async fn poison_get(&self, id: i64) -> Result<Option<PoisonMessage>, StoreError> {
        Ok(self
            .read("poison.get", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::POISON_GET, &[&id]).await?;
                    rows.first().map(poison_of).transpose()
                })
            })
            .await?)
    }

    async fn poison_delete(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .write("poison.delete", |c, _| {
                Box::pin(async move {
                    let n = c.execute(sql::POISON_DELETE, &[&id]).await?;
                    Ok(Tx::Commit(n > 0))
                })
            })
            .await?)
    }

    async fn poison_total(&self) -> Result<u64, StoreError> {
        Ok(self
            .read("poison.total", |c, _| {
                Box::pin(async move { count(c, sql::POISON_TOTAL, &[], "poison count").await })
            })
            .await?)
    }
}

fn poison_of(r: &tiberius::Row) -> Result<PoisonMessage, DbError> {
    Ok(PoisonMessage {
        id: col::<i64>(r, 0, "platform.poison.id")?,
        consumer: text(r, 1, "platform.poison.consumer")?,
        message_id: opt_text(r, 2, "platform.poison.message_id")?,
        payload: text(r, 3, "platform.poison.payload")?,
        reason: text(r, 4, "platform.poison.reason")?,
        received_at: col::<DateTime<Utc>>(r, 5, "platform.poison.received_at")?,
    })
}
