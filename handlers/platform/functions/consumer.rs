//! The one way a Service Bus function consumes an event: decode the message the host sent,
//! parse the CloudEvents envelope of the expected kind, apply the effect with its inbox key,
//! and decide what the host should do with the message.
//!
//! - applied now, or applied before (a redelivery): acknowledged;
//! - can never succeed (unparsable, wrong kind, a rule the event breaks, a permanent storage
//!   error such as a constraint): stored in the poison table with the reason and acknowledged,
//!   so one bad message never blocks the subscription;
//! - may succeed later (a transient storage error): the invocation fails and the host
//!   redelivers it.

use super::InvocationFailure;
use super::protocol::{InvocationRequest, InvocationResponse, ServiceBusMessage};
use crate::kernel::events::EventKind;
use crate::platform::clock::Clock;
use crate::platform::events::CloudEvent;
use crate::platform::store::{Applied, EventStore, InboxKey, StoreError};
use std::sync::Arc;

/// What a consumer's effect came to.
pub enum Handled {
    Applied(Applied),
    /// The event breaks a rule of the consumer; the reason is stored with the message.
    Poison(String),
}

/// Where consumers put messages they can never process.
#[derive(Clone)]
pub struct PoisonTable {
    events: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    /// In replay mode, the reason a replayed message is still poison lands here instead of a
    /// new poison row (the operator keeps the original row).
    replay: Option<Arc<std::sync::Mutex<Option<String>>>>,
}

impl PoisonTable {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            events,
            clock,
            replay: None,
        }
    }

    /// A table for replaying one stored message: nothing is written; `still_poison` tells
    /// whether the consumer refused the message again, and why.
    pub fn for_replay(&self) -> Self {
        Self {
            replay: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// In replay mode: the reason the replayed message was refused again, if it was.
    pub fn still_poison(&self) -> Option<String> {
        self.replay.as_ref().and_then(|slot| {
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    /// Stores the message and answers the host "done" (so it is not redelivered).
    pub async fn store(
        &self,
        consumer: &str,
        message_id: Option<&str>,
        payload: &str,
        reason: &str,
    ) -> Result<InvocationResponse, InvocationFailure> {
        if let Some(slot) = &self.replay {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_owned());
            return Ok(InvocationResponse::logs(vec![format!(
                "{consumer}: replayed message is still poison: {reason}"
            )]));
        }
        tracing::error!(
            consumer,
            message_id,
            reason,
            "poison message stored and acknowledged"
        );
        self.events
            .record_poison(consumer, message_id, payload, reason, self.clock.now())
            .await
            .map_err(|e| {
                InvocationFailure(format!("{consumer}: cannot store poison message: {e}"))
            })?;
        Ok(InvocationResponse::logs(vec![format!(
            "{consumer}: poison message stored: {reason}"
        )]))
    }
}

/// Consumes one Service Bus invocation of `consumer` (see the module documentation).
pub async fn consume<K, T, F, Fut>(
    poison: &PoisonTable,
    consumer: &'static str,
    inv: &InvocationRequest,
    binding: &str,
    expected: K,
    apply: F,
) -> Result<InvocationResponse, InvocationFailure>
where
    K: EventKind,
    T: for<'de> serde::Deserialize<'de>,
    F: FnOnce(InboxKey, T) -> Fut,
    Fut: std::future::Future<Output = Result<Handled, StoreError>>,
{
    let message: ServiceBusMessage = match inv.service_bus_message(binding) {
        Ok(m) => m,
        Err(reason) => return poison.store(consumer, None, "", &reason).await,
    };
    let (envelope, data) = match CloudEvent::parse_as::<T>(&message.body, expected) {
        Ok(parsed) => parsed,
        Err(reason) => {
            let id = message.message_id.as_deref();
            return poison.store(consumer, id, &message.body, &reason).await;
        }
    };
    let inbox = InboxKey {
        consumer,
        event_id: envelope.id.clone(),
    };
    let correlation = message.correlation_id.as_deref().unwrap_or("");
    match verdict(consumer, apply(inbox, data).await)? {
        Ok(Applied::Now) => {
            tracing::info!(consumer, event_id = %envelope.id, correlation_id = correlation, "event applied");
            Ok(InvocationResponse::logs(vec![format!(
                "{consumer}: applied {}",
                envelope.id
            )]))
        }
        Ok(Applied::AlreadyProcessed) => Ok(InvocationResponse::logs(vec![format!(
            "{consumer}: {} was already processed (delivery {})",
            envelope.id, message.delivery_count
        )])),
        Err(reason) => {
            poison
                .store(consumer, Some(&envelope.id), &message.body, &reason)
                .await
        }
    }
}

/// What one event's outcome means for the invocation (the rule both consumers share): applied
/// now or before; `Err(reason)` for what can never succeed (refused by the effect, or a
/// permanent storage error), stored as poison; a transient storage error fails the invocation
/// so the host redelivers.
fn verdict(
    consumer: &str,
    outcome: Result<Handled, StoreError>,
) -> Result<Result<Applied, String>, InvocationFailure> {
    match outcome {
        Ok(Handled::Applied(applied)) => Ok(Ok(applied)),
        Ok(Handled::Poison(reason)) => Ok(Err(reason)),
        Err(e) if !e.is_transient() => Ok(Err(format!("permanent storage error: {e}"))),
        Err(e) => Err(InvocationFailure(format!("{consumer}: {e}"))),
    }
}

/// One event of a batch, parsed and ready for the effect.
struct Parsed<T> {
    inbox: InboxKey,
    data: T,
    body: String,
    delivery_count: u32,
}

/// Consumes a Service Bus invocation that may carry many messages (`"cardinality": "many"`;
/// a single message is a batch of one). Each message is decoded and parsed on its own, and one
/// that can never succeed is stored as poison by itself; the others go to `apply` together, in
/// delivery order, so the consumer can apply them in one transaction (each with its own inbox
/// key). `apply` returns one [`Handled`] per item, in order.
///
/// - a transient storage error fails the invocation: the host redelivers the whole batch, and
///   the inbox keys make the events already applied count once;
/// - a permanent storage error of the batch is retried one event at a time, so only the event
///   that causes it becomes poison.
pub async fn consume_batch<K, T, F, Fut>(
    poison: &PoisonTable,
    consumer: &'static str,
    inv: &InvocationRequest,
    binding: &str,
    expected: K,
    apply: F,
) -> Result<InvocationResponse, InvocationFailure>
where
    K: EventKind + Copy,
    T: for<'de> serde::Deserialize<'de> + Clone,
    F: Fn(Vec<(InboxKey, T)>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Handled>, StoreError>>,
{
    let messages = match inv.service_bus_messages(binding) {
        Ok(m) => m,
        Err(reason) => return poison.store(consumer, None, "", &reason).await,
    };
    let mut logs = Vec::new();
    let mut parsed = Vec::with_capacity(messages.len());
    for message in messages {
        match CloudEvent::parse_as::<T>(&message.body, expected) {
            Ok((envelope, data)) => parsed.push(Parsed {
                inbox: InboxKey {
                    consumer,
                    event_id: envelope.id,
                },
                data,
                body: message.body,
                delivery_count: message.delivery_count,
            }),
            Err(reason) => {
                let id = message.message_id.as_deref();
                logs.extend(
                    poison
                        .store(consumer, id, &message.body, &reason)
                        .await?
                        .logs,
                );
            }
        }
    }
    if parsed.is_empty() {
        return Ok(InvocationResponse::logs(logs));
    }
    let items = parsed
        .iter()
        .map(|p| (p.inbox.clone(), p.data.clone()))
        .collect();
    let outcomes: Vec<Result<Handled, StoreError>> = match apply(items).await {
        Ok(handled) if handled.len() == parsed.len() => handled.into_iter().map(Ok).collect(),
        Ok(handled) => {
            return Err(InvocationFailure(format!(
                "{consumer}: the batch effect answered {} outcomes for {} events",
                handled.len(),
                parsed.len()
            )));
        }
        Err(e) if e.is_transient() => return Err(InvocationFailure(format!("{consumer}: {e}"))),
        Err(e) => {
            tracing::warn!(consumer, error = %e, events = parsed.len(), "batch refused by storage; applying its events one by one");
            let mut one_by_one = Vec::with_capacity(parsed.len());
            for p in &parsed {
                one_by_one.push(
                    apply(vec![(p.inbox.clone(), p.data.clone())])
                        .await
                        .and_then(|mut h| {
                            h.pop()
                                .ok_or_else(|| StoreError::Corrupt("no outcome".into()))
                        }),
                );
            }
            one_by_one
        }
    };
    let (mut now, mut before) = (0usize, 0usize);
    for (p, outcome) in parsed.iter().zip(outcomes) {
        let id = p.inbox.event_id.as_str();
        match verdict(consumer, outcome)? {
            Ok(Applied::Now) => now += 1,
            Ok(Applied::AlreadyProcessed) => {
                before += 1;
                logs.push(format!(
                    "{consumer}: {id} was already processed (delivery {})",
                    p.delivery_count
                ));
            }
            Err(reason) => logs.extend(
                poison
                    .store(consumer, Some(id), &p.body, &reason)
                    .await?
                    .logs,
            ),
        }
    }
    tracing::info!(
        consumer,
        applied = now,
        already = before,
        batch = parsed.len(),
        "events applied"
    );
    logs.insert(
        0,
        format!(
            "{consumer}: applied {now} of {} (already processed: {before})",
            parsed.len()
        ),
    );
    Ok(InvocationResponse::logs(logs))
}
