//! The outbox dispatcher: moves committed events from the outbox to the `EventPublisher`.
//!
//! **Invariant:** an event is marked sent only after the publisher confirmed it, so delivery is
//! at-least-once; consumers are idempotent through their inbox. The dispatcher runs right after
//! each commit (a `Notify` nudge), on a slow background tick, and from the `DispatchOutbox`
//! timer function as a safety net; `dispatch_once` is the single step all three call.
//!
//! A failed publish leaves its events pending with a retry time: the backoff of their attempt
//! count, or the broker's `Retry-After` when that is longer ([`PublishError::Throttled`]). An
//! event the broker refuses on its own ([`PublishError::Rejected`]: too large, invalid) would
//! block its topic forever, so it is recorded in the poison table with the reason (consumer
//! [`PUBLISH_POISON`]) and taken off the outbox.

use crate::platform::clock::Clock;
use crate::platform::retry::RetryPolicy;
use crate::platform::store::{EventStore, PendingEvent};
use async_trait::async_trait;
use chrono::Duration as ChronoDuration;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Publishes events to a topic. Returning `Ok` means the broker has accepted every event.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, topic: &str, events: &[PendingEvent]) -> Result<(), PublishError>;
}

/// A publish that did not (entirely) happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Worth retrying soon (throttling, timeouts, 5xx).
    #[error("transient publish failure: {0}")]
    Transient(String),
    /// The broker asked for a wait (`Retry-After` on 429/503) longer than the publisher's
    /// request budget: the events are claimed again no earlier than `retry_after` from now.
    #[error("publish throttled for {retry_after:?}: {reason}")]
    Throttled {
        reason: String,
        retry_after: Duration,
    },
    /// A configuration problem (unknown topic, no permission): retried slowly, logged once.
    #[error("publisher configuration error: {0}")]
    Config(String),
    /// The broker refused these events one by one (each sent alone, e.g. too large or with
    /// invalid properties); every other event of the call was accepted. The dispatcher moves
    /// the refused ones to the poison table with their reason.
    #[error("{} event(s) refused by the broker", rejected.len())]
    Rejected { rejected: Vec<Rejection> },
}

/// One event the broker refused on its own, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub event_id: String,
    pub reason: String,
}

impl PublishError {
    /// The wait the broker asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The `consumer` name under which the dispatcher records events the broker refused.
pub const PUBLISH_POISON: &str = "outbox.publish";

/// What one dispatch step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOutcome {
    pub published: usize,
    pub failed: usize,
    /// Events the broker refused for good, moved to the poison table (and off the outbox).
    pub poisoned: usize,
}

/// Claims, publishes and settles outbox rows.
pub struct Dispatcher {
    store: Arc<dyn EventStore>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    owner: String,
    nudge: Notify,
    batch: usize,
    lease: Duration,
    /// Rows claimed by a step that then failed on the store (e.g. the database went away
    /// between the claim and `mark_sent`/`release`). They would stay invisible for the whole
    /// lease although this process is alive; the next step releases them first, so they are
    /// published again as soon as the store is back (a repeat of an already published one is
    /// absorbed by the consumers' inbox). Found by
    /// `tests/faults.rs::a_database_that_disappears_mid_burst_gives_503_and_recovers`.
    stranded: std::sync::Mutex<Vec<i64>>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn EventStore>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            publisher,
            clock,
            owner: format!("dispatcher-{}", uuid::Uuid::new_v4()),
            nudge: Notify::new(),
            batch: 100,
            lease: Duration::from_secs(60),
            stranded: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Uses a stable owner id (one per instance or data dir) instead of a random one, so a
    /// restarted process recognises the leases its dead predecessor held.
    pub fn with_owner(mut self, owner: String) -> Self {
        self.owner = owner;
        self
    }

    /// Asks the background loop to run now (called after a commit that wrote events).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// One step: claim a batch, publish it topic by topic, settle each row. Publishing failures
    /// are recorded on the row with a retry time that backs off with its attempt count.
    pub async fn dispatch_once(
        &self,
    ) -> Result<DispatchOutcome, crate::platform::store::StoreError> {
        self.release_stranded().await?;
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_pending(&self.owner, self.batch, self.lease, now)
            .await?;
        let outcome = self.settle(&claimed).await;
        if outcome.is_err() {
            // Rows already settled no longer carry our claim, so releasing them is a no-op.
            self.stranded_rows().extend(claimed.iter().map(|e| e.seq));
        }
        outcome
    }

    fn stranded_rows(&self) -> std::sync::MutexGuard<'_, Vec<i64>> {
        self.stranded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Releases the rows a failed step left claimed (see `stranded`), due at once.
    async fn release_stranded(&self) -> Result<(), crate::platform::store::StoreError> {
        let rows = std::mem::take(&mut *self.stranded_rows());
        for (i, seq) in rows.iter().enumerate() {
            let released = self
                .store
                .release(
                    &self.owner,
                    *seq,
                    "a dispatch step failed on the store",
                    self.clock.now(),
                )
                .await;
            if let Err(e) = released {
                self.stranded_rows().extend(&rows[i..]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Publishes claimed rows topic by topic and settles each one.
    async fn settle(
        &self,
        claimed: &[PendingEvent],
    ) -> Result<DispatchOutcome, crate::platform::store::StoreError> {
        let mut by_topic: BTreeMap<&str, Vec<&PendingEvent>> = BTreeMap::new();
        for ev in claimed {
            by_topic.entry(ev.topic.as_str()).or_default().push(ev);
        }
        let mut outcome = DispatchOutcome::default();
        for (topic, events) in by_topic {
            let batch: Vec<PendingEvent> = events.iter().map(|e| (*e).clone()).collect();
            match self.publisher.publish(topic, &batch).await {
                Ok(()) => {
                    let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
                    self.store
                        .mark_sent(&self.owner, &seqs, self.clock.now())
                        .await?;
                    outcome.published += batch.len();
                }
                Err(PublishError::Rejected { rejected }) => {
                    let refused: BTreeMap<&str, &str> = rejected
                        .iter()
                        .map(|r| (r.event_id.as_str(), r.reason.as_str()))
                        .collect();
                    let now = self.clock.now();
                    let mut done = Vec::with_capacity(batch.len());
                    for ev in &batch {
                        if let Some(reason) = refused.get(ev.event_id.as_str()) {
                            tracing::error!(topic, event_id = %ev.event_id, seq = ev.seq, reason, "the broker refused an event; moved to the poison table");
                            self.store
                                .record_poison(
                                    PUBLISH_POISON,
                                    Some(&ev.event_id),
                                    &ev.payload,
                                    &format!("topic {topic}: {reason}"),
                                    now,
                                )
                                .await?;
                            outcome.poisoned += 1;
                        } else {
                            outcome.published += 1;
                        }
                        // Published, or dead in the poison table: either way off the outbox.
                        done.push(ev.seq);
                    }
                    self.store.mark_sent(&self.owner, &done, now).await?;
                }
                Err(err) => {
                    // Configuration errors are logged once by the publisher; transient ones here.
                    if matches!(
                        err,
                        PublishError::Transient(_) | PublishError::Throttled { .. }
                    ) {
                        tracing::warn!(topic, error = %err, count = batch.len(), "publish failed; events stay pending");
                    }
                    for ev in &batch {
                        let retry_at = self.clock.now() + backoff(ev.attempts, &err);
                        self.store
                            .release(&self.owner, ev.seq, &err.to_string(), retry_at)
                            .await?;
                    }
                    outcome.failed += batch.len();
                }
            }
        }
        Ok(outcome)
    }

    /// Drains the outbox until a step settles nothing new (publishes or poisons nothing).
    pub async fn drain(&self) -> Result<DispatchOutcome, crate::platform::store::StoreError> {
        let mut total = DispatchOutcome::default();
        loop {
            let step = self.dispatch_once().await?;
            total.published += step.published;
            total.failed += step.failed;
            total.poisoned += step.poisoned;
            if step.published == 0 && step.poisoned == 0 {
                return Ok(total);
            }
        }
    }

    /// Background loop: drains on every nudge and at least every `tick`, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        tick: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // A previous process with the same owner id died holding leases: nobody else will
        // publish those rows before the lease runs out, so take them back now.
        match self.store.reclaim_leases(&self.owner).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(owner = %self.owner, reclaimed = n, "reclaimed outbox leases of a previous run")
            }
            Err(e) => {
                tracing::warn!(owner = %self.owner, error = %e, "could not reclaim outbox leases; they return when the lease runs out")
            }
        }
        loop {
            if let Err(e) = self.drain().await {
                tracing::error!(error = %e, "outbox dispatch failed; will retry");
            }
            tokio::select! {
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A dispatcher owner id that survives restarts: the platform's instance id when there is one
/// (`Settings::instance_id`), else one stored in `data_dir/dispatcher-id` (created on first
/// use), else random.
pub fn stable_owner(instance_id: Option<&str>, data_dir: &std::path::Path) -> String {
    if let Some(id) = instance_id {
        return format!("dispatcher-{}", id.chars().take(150).collect::<String>());
    }
    let path = data_dir.join("dispatcher-id");
    let read = || {
        std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| uuid::Uuid::parse_str(s).is_ok())
    };
    if let Some(id) = read() {
        return format!("dispatcher-{id}");
    }
    let fresh = uuid::Uuid::new_v4().to_string();
    let tmp = data_dir.join(format!("dispatcher-id.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::write(&tmp, &fresh))
        .and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match (written, read()) {
        // Whoever linked first wins; everyone reads the winner's id.
        (_, Some(id)) => format!("dispatcher-{id}"),
        (Err(e), None) => {
            tracing::warn!(error = %e, "cannot store a dispatcher id; using a random one");
            format!("dispatcher-{fresh}")
        }
        (Ok(()), None) => format!("dispatcher-{fresh}"),
    }
}

/// When a transient failure may be retried: 1 s after the first failed attempt, doubling to
/// 32 s (the step curve from 500 ms; `attempts` already counts the failed one).
const TRANSIENT_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(500), Duration::from_secs(32));
/// When a configuration error may be retried: slowly, 60 s doubling to 5 min, since it heals
/// only when someone fixes the topic or the permissions.
const CONFIG_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_secs(30), Duration::from_secs(300));

/// How long a released event waits before it is claimed again. The un-jittered step: the
/// time is stored on the row, and the rows of one batch are meant to come back together.
/// A wait the broker asked for (`Retry-After`) is kept when it is longer than the step.
fn backoff(attempts: u32, err: &PublishError) -> ChronoDuration {
    let policy = match err {
        PublishError::Config(_) => CONFIG_RETRY,
        _ => TRANSIENT_RETRY,
    };
    let step = policy
        .step(attempts.saturating_add(1))
        .max(err.retry_after().unwrap_or_default());
    ChronoDuration::from_std(step).unwrap_or(ChronoDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_wait_longer_than_the_step_is_kept() {
        let throttled = PublishError::Throttled {
            reason: "429".into(),
            retry_after: Duration::from_secs(30),
        };
        assert_eq!(backoff(0, &throttled), ChronoDuration::seconds(30));
        // A shorter wait than the step: the step.
        let short = PublishError::Throttled {
            reason: "429".into(),
            retry_after: Duration::from_millis(100),
        };
        assert_eq!(backoff(3, &short), ChronoDuration::seconds(4));
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_its_cap() {
        let transient = PublishError::Transient("503".into());
        let config = PublishError::Config("404".into());
        // (attempts so far, transient wait, configuration wait), in seconds
        let cases = [
            (0, 0.5, 30),
            (1, 1.0, 60),
            (2, 2.0, 120),
            (3, 4.0, 240),
            (4, 8.0, 300),
            (6, 32.0, 300),
            (7, 32.0, 300),
            (u32::MAX, 32.0, 300),
        ];
        for (attempts, transient_secs, config_secs) in cases {
            assert_eq!(
                backoff(attempts, &transient),
                ChronoDuration::milliseconds((transient_secs * 1000.0) as i64),
                "transient, attempts {attempts}"
            );
            assert_eq!(
                backoff(attempts, &config),
                ChronoDuration::seconds(config_secs),
                "config, attempts {attempts}"
            );
        }
    }
}
