//! Operations, shared by `qotd outbox|poison` and the admin HTTP endpoints: how far the outbox
//! is behind, the poison messages (list, replay through the same consumer, drop), and the
//! periodic metrics log line operators alert on.
//!
//! A replay re-runs the stored message through the very consumer that refused it, in process,
//! as the Service Bus invocation the host would send (same decoding, same inbox key). The
//! consumer is idempotent, so a message whose effect was applied meanwhile changes nothing. On
//! success the poison row is deleted; a message refused again keeps its row (no new one is
//! written) and the new reason is reported.

use super::App;
use crate::leaderboard::consumers;
use crate::platform::functions::manifest::Trigger;
use crate::platform::functions::protocol::InvocationRequest;
use crate::platform::http::{ApiRequest, ApiResponse, Problem, json_response};
use crate::platform::store::{PoisonMessage, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Each consumer name (as stored in inbox and poison rows) and its Service Bus function.
pub const CONSUMERS: [(&str, &str); 3] = [
    (consumers::USER_REGISTERED, "LeaderboardOnUserRegistered"),
    (consumers::QUIZ_GENERATED, "LeaderboardOnQuizGenerated"),
    (
        consumers::ATTEMPT_EVALUATED,
        "LeaderboardOnAttemptEvaluated",
    ),
];

/// Most poison messages one list or replay-all call handles.
pub const MAX_BATCH: usize = 1000;

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown consumer '{0}'; known: {known}", known = known_consumers())]
    UnknownConsumer(String),
    #[error("no poison message with id {0}")]
    NotFound(i64),
}

fn known_consumers() -> String {
    CONSUMERS
        .iter()
        .map(|(c, f)| format!("{c} ({f})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<OpsError> for Problem {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Store(e) => Problem::storage(e),
            OpsError::UnknownConsumer(_) => Problem::bad_request(e.to_string()),
            OpsError::NotFound(_) => Problem::not_found(e.to_string()),
        }
    }
}

/// Accepts a consumer name or its function name; returns the consumer name.
pub fn consumer_name(raw: &str) -> Result<&'static str, OpsError> {
    CONSUMERS
        .iter()
        .find(|(c, f)| *c == raw || f.eq_ignore_ascii_case(raw))
        .map(|(c, _)| *c)
        .ok_or_else(|| OpsError::UnknownConsumer(raw.chars().take(100).collect()))
}

/// Unsent events of one topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopicReport {
    pub topic: String,
    pub pending: u64,
    pub oldest_age_seconds: Option<u64>,
}

/// How far the outbox is behind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxReport {
    pub pending: u64,
    pub oldest_age_seconds: Option<u64>,
    pub oldest_created_at: Option<String>,
    pub topics: Vec<TopicReport>,
    pub poison: u64,
}

/// A poison message as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoisonView {
    pub id: i64,
    pub consumer: String,
    pub function: Option<String>,
    pub message_id: Option<String>,
    pub reason: String,
    pub received_at: String,
    pub payload: String,
}

impl From<PoisonMessage> for PoisonView {
    fn from(m: PoisonMessage) -> Self {
        Self {
            function: CONSUMERS
                .iter()
                .find(|(c, _)| *c == m.consumer)
                .map(|(_, f)| (*f).to_owned()),
            id: m.id,
            consumer: m.consumer,
            message_id: m.message_id,
            reason: m.reason,
            received_at: rfc3339(m.received_at),
            payload: m.payload,
        }
    }
}

/// What replaying one poison message came to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    pub id: i64,
    /// `replayed` (applied or found applied before; row deleted), `still-poison` (refused
    /// again; row kept) or `failed` (a transient error; row kept, try again later).
    pub outcome: &'static str,
    pub detail: String,
}

/// What replaying several poison messages came to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySummary {
    pub replayed: u64,
    pub still_poison: u64,
    pub failed: u64,
    pub results: Vec<ReplayResult>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn age(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> Option<u64> {
    t.map(|t| (now - t).num_seconds().max(0) as u64)
}

impl App {
    /// Outbox backlog and poison count.
    /// The database-backed services, or "unavailable" while the database is still connecting.
    fn svc(&self) -> Result<&std::sync::Arc<super::Services>, StoreError> {
        self.services()
            .ok_or_else(|| StoreError::Unavailable("the database is not connected yet".into()))
    }

    pub async fn outbox_report(&self) -> Result<OutboxReport, StoreError> {
        let status = self.svc()?.events.outbox_status().await?;
        let poison = self.svc()?.events.poison_total().await?;
        let now = self.clock.now();
        Ok(OutboxReport {
            pending: status.pending,
            oldest_age_seconds: age(now, status.oldest),
            oldest_created_at: status.oldest.map(rfc3339),
            topics: status
                .topics
                .into_iter()
                .map(|t| TopicReport {
                    oldest_age_seconds: age(now, t.oldest),
                    topic: t.topic,
                    pending: t.pending,
                })
                .collect(),
            poison,
        })
    }

    /// Poison messages, oldest first, optionally of one consumer (name or function name).
    pub async fn poison_list(
        &self,
        consumer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PoisonView>, OpsError> {
        let consumer = consumer.map(consumer_name).transpose()?;
        Ok(self
            .svc()?
            .events
            .poison_list(consumer, limit.min(MAX_BATCH))
            .await?
            .into_iter()
            .map(PoisonView::from)
            .collect())
    }

    /// Replays one poison message through its consumer (module documentation).
    pub async fn poison_replay(&self, id: i64) -> Result<ReplayResult, OpsError> {
        let row = self
            .svc()?
            .events
            .poison_get(id)
            .await?
            .ok_or(OpsError::NotFound(id))?;
        let result = |outcome, detail: String| ReplayResult {
            id,
            outcome,
            detail,
        };
        let Some((_, function)) = CONSUMERS.iter().find(|(c, _)| *c == row.consumer) else {
            return Ok(result(
                "failed",
                format!("no consumer named '{}' exists any more", row.consumer),
            ));
        };
        let binding = match self.functions.get(function).map(|f| &f.trigger) {
            Some(Trigger::ServiceBus { binding, .. }) => binding.clone(),
            _ => {
                return Ok(result(
                    "failed",
                    format!("{function} is not a Service Bus function"),
                ));
            }
        };
        let encode = |s: &str| Value::String(serde_json::to_string(s).expect("strings encode"));
        let mut data = Map::new();
        data.insert(binding, encode(&row.payload));
        let mut metadata = Map::new();
        if let Some(message_id) = &row.message_id {
            metadata.insert("MessageId".into(), encode(message_id));
        }
        metadata.insert("DeliveryCount".into(), Value::String("1".into()));
        let inv = InvocationRequest { data, metadata };
        let poison = self.svc()?.poison.for_replay();
        match self.invoke_with(function, &inv, &poison).await {
            Ok(_) => match poison.still_poison() {
                Some(reason) => Ok(result("still-poison", reason)),
                None => {
                    self.svc()?.events.poison_delete(id).await?;
                    tracing::info!(id, consumer = %row.consumer, "poison message replayed and removed");
                    self.svc()?.dispatcher.nudge();
                    Ok(result(
                        "replayed",
                        format!("{function} applied the message"),
                    ))
                }
            },
            Err(failure) => Ok(result("failed", failure.0)),
        }
    }

    /// Replays every poison message (of one consumer), oldest first, up to `MAX_BATCH`.
    pub async fn poison_replay_all(
        &self,
        consumer: Option<&str>,
    ) -> Result<ReplaySummary, OpsError> {
        let consumer = consumer.map(consumer_name).transpose()?;
        let rows = self.svc()?.events.poison_list(consumer, MAX_BATCH).await?;
        let mut summary = ReplaySummary::default();
        for row in rows {
            let r = match self.poison_replay(row.id).await {
                Ok(r) => r,
                // Dropped by someone else meanwhile.
                Err(OpsError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            match r.outcome {
                "replayed" => summary.replayed += 1,
                "still-poison" => summary.still_poison += 1,
                _ => summary.failed += 1,
            }
            summary.results.push(r);
        }
        Ok(summary)
    }

    /// Deletes one poison message without replaying it.
    pub async fn poison_drop(&self, id: i64) -> Result<(), OpsError> {
        if self.svc()?.events.poison_delete(id).await? {
            tracing::info!(id, "poison message dropped");
            Ok(())
        } else {
            Err(OpsError::NotFound(id))
        }
    }

    /// Logs the operations metrics once, as structured fields (target `qotd::metrics`).
    pub async fn log_metrics(&self) {
        match self.outbox_report().await {
            Ok(r) => {
                let per_topic = serde_json::to_string(&r.topics).unwrap_or_default();
                tracing::info!(
                    target: "qotd::metrics",
                    outbox_pending = r.pending,
                    outbox_oldest_age_seconds = r.oldest_age_seconds.unwrap_or(0),
                    poison_count = r.poison,
                    outbox_topics = %per_topic,
                    "qotd.metrics"
                );
            }
            Err(e) => tracing::warn!(target: "qotd::metrics", error = %e, "metrics unavailable"),
        }
    }

    /// Logs the metrics every `interval` until `shutdown` (nothing when `interval` is zero).
    pub async fn run_metrics(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.log_metrics().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// `GET /api/admin/outbox`.
    pub(super) async fn http_outbox_status(&self, req: ApiRequest) -> Result<ApiResponse, Problem> {
        req.query(&[])?;
        let report = self.outbox_report().await.map_err(Problem::storage)?;
        Ok(json_response(StatusCode::OK, &report))
    }

    /// `GET /api/admin/poison?consumer=&limit=`.
    pub(super) async fn http_poison_list(&self, req: ApiRequest) -> Result<ApiResponse, Problem> {
        let q = req.query(&["consumer", "limit"])?;
        let limit = q.int("limit", 100, 1..=MAX_BATCH as u64)? as usize;
        let messages = self.poison_list(q.get("consumer"), limit).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "limit": limit, "messages": messages }),
        ))
    }

    /// `POST /api/admin/poison/{id}/replay`.
    pub(super) async fn http_poison_replay(&self, req: ApiRequest) -> Result<ApiResponse, Problem> {
        req.query(&[])?;
        let id = poison_id(&req)?;
        Ok(json_response(
            StatusCode::OK,
            &self.poison_replay(id).await?,
        ))
    }

    /// `POST /api/admin/poison/replay?consumer=`.
    pub(super) async fn http_poison_replay_all(
        &self,
        req: ApiRequest,
    ) -> Result<ApiResponse, Problem> {
        let q = req.query(&["consumer"])?;
        Ok(json_response(
            StatusCode::OK,
            &self.poison_replay_all(q.get("consumer")).await?,
        ))
    }

    /// `DELETE /api/admin/poison/{id}`.
    pub(super) async fn http_poison_drop(&self, req: ApiRequest) -> Result<ApiResponse, Problem> {
        req.query(&[])?;
        let id = poison_id(&req)?;
        self.poison_drop(id).await?;
        let mut res = http::Response::new(bytes::Bytes::new());
        *res.status_mut() = StatusCode::NO_CONTENT;
        Ok(res)
    }
}

fn poison_id(req: &ApiRequest) -> Result<i64, Problem> {
    let raw = req.param("id");
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Problem::bad_request(format!(
            "poison message id '{}' is not a positive whole number",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// The local bus's dead-letter store: the poison table, under the consumer of the function
/// that refused the event, so `qotd poison list|replay` and the admin endpoints handle it like
/// any poison message.
pub(super) struct PoisonDeadLetters(pub(super) std::sync::Weak<super::App>);

#[async_trait::async_trait]
impl crate::platform::functions::local_bus::DeadLetterSink for PoisonDeadLetters {
    async fn dead_letter(
        &self,
        function: &str,
        event_id: &str,
        payload: &str,
        reason: &str,
    ) -> Result<(), String> {
        let app = self.0.upgrade().ok_or("the application is shutting down")?;
        let services = app.services().ok_or("the database is not connected")?;
        let consumer = CONSUMERS
            .iter()
            .find(|(_, f)| *f == function)
            .map_or(function, |(c, _)| *c);
        services
            .events
            .record_poison(consumer, Some(event_id), payload, reason, app.clock.now())
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_named_by_consumer_or_function() {
        assert_eq!(
            consumer_name("LeaderboardOnAttemptEvaluated").unwrap(),
            consumers::ATTEMPT_EVALUATED
        );
        assert_eq!(
            consumer_name(consumers::USER_REGISTERED).unwrap(),
            consumers::USER_REGISTERED
        );
        let e = consumer_name("nope").unwrap_err().to_string();
        assert!(e.contains("LeaderboardOnQuizGenerated"), "{e}");
    }
}
