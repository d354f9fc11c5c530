//! The local stand-in for Service Bus topics: an `EventPublisher` that delivers each event to
//! every function whose function.json subscribes to the event's topic, by POSTing a real
//! Service Bus trigger invocation (the shape the host builds in its custom-handler invocation
//! code, see tests/fixtures/functions-host/servicebus-topic-invocation.json: body
//! double-encoded, `MessageId`, `DeliveryCount`, ...) to the handler. Like Service Bus with the Functions trigger, a failed invocation is redelivered
//! with `DeliveryCount + 1` up to `MAX_DELIVERIES`, then dead-lettered into the
//! [`DeadLetterSink`] the application supplies (qotd's is the poison table, so `qotd poison
//! list|replay` sees and replays them like any poison message).
//!
//! `publish` returns only after every subscriber has acknowledged or dead-lettered, so an event
//! is marked sent only once it was handled; if the handler cannot be reached at all the event
//! stays in the outbox.

use super::manifest::{FunctionApp, Trigger};
use crate::platform::clock::Clock;
use crate::platform::http_client::LazyClient;
use crate::platform::outbox::{EventPublisher, PublishError};
use crate::platform::retry::RetryPolicy;
use crate::platform::store::PendingEvent;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Service Bus's default max delivery count.
pub const MAX_DELIVERIES: u32 = 10;

/// Wait before redelivering a failed invocation: 50 ms doubling to 5 s (no jitter: one local
/// consumer, nobody to collide with).
const REDELIVERY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_millis(50), Duration::from_secs(5));

/// Where the local bus puts an event a function refused `MAX_DELIVERIES` times, as Service Bus
/// moves it to the subscription's dead-letter queue.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Stores the event for `function`; an error keeps it in the outbox (nothing is lost).
    async fn dead_letter(
        &self,
        function: &str,
        event_id: &str,
        payload: &str,
        reason: &str,
    ) -> Result<(), String>;
}

/// Delivers outbox events to subscribed functions over the invocation protocol.
pub struct LocalBus {
    functions: FunctionApp,
    http: LazyClient,
    dead_letters: OnceLock<Arc<dyn DeadLetterSink>>,
    redelivery: RetryPolicy,
    clock: Arc<dyn Clock>,
    /// The handler's base URL, known once it has bound its listener.
    target: OnceLock<String>,
}

impl LocalBus {
    pub fn new(functions: FunctionApp, http: impl Into<LazyClient>, clock: Arc<dyn Clock>) -> Self {
        Self {
            functions,
            http: http.into(),
            dead_letters: OnceLock::new(),
            redelivery: REDELIVERY,
            clock,
            target: OnceLock::new(),
        }
    }

    /// Redelivers on another curve (tests shorten the waits).
    pub fn with_redelivery(mut self, policy: RetryPolicy) -> Self {
        self.redelivery = policy;
        self
    }

    /// Gives the bus the place for events it gives up on (set once, at wiring time).
    pub fn set_dead_letters(&self, sink: Arc<dyn DeadLetterSink>) {
        let _ = self.dead_letters.set(sink);
    }

    /// Points the bus at the handler it delivers to (`http://127.0.0.1:<port>`).
    pub fn attach(&self, handler_url: String) {
        let _ = self.target.set(handler_url);
    }

    fn handler_url(&self) -> Option<String> {
        self.target.get().cloned()
    }

    /// Delivers `evs` to one subscriber: one invocation per event, or one per batch when the
    /// function's trigger is `"cardinality": "many"` (`batch`), redelivering the whole
    /// invocation with `DeliveryCount + 1` on failure, then dead-lettering its events.
    async fn deliver(
        &self,
        base: &str,
        sub: &Subscriber,
        evs: &[PendingEvent],
    ) -> Result<(), PublishError> {
        let (function, subscription) = (sub.function.as_str(), sub.subscription.as_str());
        let url = format!("{base}/{function}");
        let http = self.http.get().map_err(PublishError::Transient)?;
        for delivery in 1..=MAX_DELIVERIES {
            let now = self.clock.now();
            let body = if sub.many {
                batch_invocation_body(function, &sub.binding, evs, delivery, now)
            } else {
                invocation_body(function, &sub.binding, &evs[0], delivery, now)
            };
            let sent = http
                .post(&url)
                .header(
                    "X-Azure-Functions-InvocationId",
                    uuid::Uuid::new_v4().to_string(),
                )
                .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                .header(
                    "User-Agent",
                    format!("Azure-Functions-Host/{HOST_VERSION} (qotd local)"),
                )
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body.to_string())
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            match sent {
                Ok(res) if res.status().is_success() => return Ok(()),
                Ok(res) => {
                    tracing::warn!(function, subscription, delivery, status = %res.status(), first_event_id = %evs[0].event_id, events = evs.len(), "delivery failed; redelivering")
                }
                Err(e) if e.is_connect() => {
                    return Err(PublishError::Transient(format!(
                        "handler unreachable at {url}: {e}"
                    )));
                }
                Err(e) => {
                    tracing::warn!(function, subscription, delivery, error = %e, "delivery failed; redelivering")
                }
            }
            if delivery < MAX_DELIVERIES {
                tokio::time::sleep(self.redelivery.step(delivery)).await;
            }
        }
        let sink = self.dead_letters.get().ok_or_else(|| {
            PublishError::Transient(format!(
                "{function} refused the events {MAX_DELIVERIES} times and no dead-letter store is set; they stay pending"
            ))
        })?;
        let reason =
            format!("{function} failed {MAX_DELIVERIES} deliveries (subscription {subscription})");
        for ev in evs {
            tracing::error!(function, subscription, event_id = %ev.event_id, "max delivery count reached; dead-lettering");
            // Not stored: the event stays in the outbox and is tried again later.
            sink.dead_letter(function, &ev.event_id, &ev.payload, &reason)
                .await
                .map_err(|e| {
                    PublishError::Transient(format!("cannot dead-letter {}: {e}", ev.event_id))
                })?;
        }
        Ok(())
    }
}

/// The host version the local stand-ins announce in `X-Azure-Functions-HostVersion`.
pub const HOST_VERSION: &str = "4.1037.0.0";

#[async_trait]
impl EventPublisher for LocalBus {
    async fn publish(&self, topic: &str, events: &[PendingEvent]) -> Result<(), PublishError> {
        let base = self
            .handler_url()
            .ok_or_else(|| PublishError::Transient("the handler is not running".into()))?;
        let subscribers: Vec<Subscriber> = self
            .functions
            .subscribers(topic)
            .filter_map(|f| match &f.trigger {
                Trigger::ServiceBus {
                    binding,
                    subscription,
                    many,
                    ..
                } => Some(Subscriber {
                    function: f.name.clone(),
                    binding: binding.clone(),
                    subscription: subscription.clone(),
                    many: *many,
                }),
                _ => None,
            })
            .collect();
        if subscribers.is_empty() {
            return Err(PublishError::Config(format!(
                "topic '{topic}' has no subscriber in functions/*/function.json"
            )));
        }
        // Subscriptions are independent (as on Service Bus); within one, events go in order,
        // in batches of at most maxMessageBatchSize for a `"cardinality": "many"` function.
        let batch = self.functions.max_message_batch_size;
        let base = base.as_str();
        let deliveries = subscribers.iter().map(|sub| async move {
            let size = if sub.many { batch } else { 1 };
            for chunk in events.chunks(size) {
                self.deliver(base, sub, chunk).await?;
            }
            Ok::<_, PublishError>(())
        });
        for r in futures_util::future::join_all(deliveries).await {
            r?;
        }
        Ok(())
    }
}

/// A function subscribed to a topic.
struct Subscriber {
    function: String,
    binding: String,
    subscription: String,
    many: bool,
}

/// A batch Service Bus trigger invocation (`"cardinality": "many"`) as the host builds it:
/// `Data.<binding>` is a string holding the JSON array of message bodies, and each piece of
/// per-message metadata is a `…Array` string holding a JSON array (see
/// `protocol::InvocationRequest::service_bus_messages` for the sources).
pub fn batch_invocation_body(
    function: &str,
    binding: &str,
    evs: &[PendingEvent],
    delivery: u32,
    now: DateTime<Utc>,
) -> Value {
    let array = |items: Vec<Value>| Value::String(Value::Array(items).to_string());
    let strings = |f: &dyn Fn(&PendingEvent) -> Value| array(evs.iter().map(f).collect());
    let mut meta = Map::new();
    meta.insert("DeliveryCountArray".into(), strings(&|_| json!(delivery)));
    meta.insert(
        "LockTokenArray".into(),
        strings(&|_| json!(uuid::Uuid::new_v4().to_string())),
    );
    let enqueued = now.format("%Y-%m-%dT%H:%M:%S").to_string();
    meta.insert("EnqueuedTimeUtcArray".into(), strings(&|_| json!(enqueued)));
    meta.insert("MessageIdArray".into(), strings(&|e| json!(e.event_id)));
    meta.insert(
        "ContentTypeArray".into(),
        strings(&|_| json!("application/cloudevents+json; charset=utf-8")),
    );
    meta.insert("SubjectArray".into(), strings(&|e| json!(e.event_type)));
    meta.insert("LabelArray".into(), strings(&|e| json!(e.event_type)));
    meta.insert(
        "CorrelationIdArray".into(),
        strings(&|e| json!(e.correlation_id)),
    );
    meta.insert(
        "sys".into(),
        json!({ "MethodName": function, "UtcNow": now.to_rfc3339_opts(SecondsFormat::Nanos, true), "RandGuid": uuid::Uuid::new_v4().to_string() }),
    );
    json!({ "Data": { binding: strings(&|e| json!(e.payload)) }, "Metadata": meta })
}

/// A Service Bus trigger invocation body as the host builds it (see
/// tests/fixtures/functions-host/servicebus-topic-invocation.json and its README).
pub fn invocation_body(
    function: &str,
    binding: &str,
    ev: &PendingEvent,
    delivery: u32,
    now: DateTime<Utc>,
) -> Value {
    let enc = |s: &str| Value::String(serde_json::to_string(s).expect("string"));
    let mut meta = Map::new();
    meta.insert("DeliveryCount".into(), Value::String(delivery.to_string()));
    meta.insert("LockToken".into(), enc(&uuid::Uuid::new_v4().to_string()));
    meta.insert(
        "EnqueuedTimeUtc".into(),
        Value::String(now.format("%Y-%m-%dT%H:%M:%S").to_string()),
    );
    meta.insert(
        "EnqueuedTime".into(),
        Value::String(now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
    );
    meta.insert("MessageId".into(), enc(&ev.event_id));
    meta.insert(
        "ContentType".into(),
        enc("application/cloudevents+json; charset=utf-8"),
    );
    meta.insert("Subject".into(), enc(&ev.event_type));
    meta.insert("Label".into(), enc(&ev.event_type));
    if let Some(c) = &ev.correlation_id {
        meta.insert("CorrelationId".into(), enc(c));
    }
    meta.insert("ApplicationProperties".into(), json!({}));
    meta.insert("UserProperties".into(), json!({}));
    meta.insert(
        "sys".into(),
        json!({ "MethodName": function, "UtcNow": now.to_rfc3339_opts(SecondsFormat::Nanos, true), "RandGuid": uuid::Uuid::new_v4().to_string() }),
    );
    // The host also copies the top-level fields of a JSON body into Metadata (strings encoded
    // again, objects as they are), overwriting keys case-insensitively.
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&ev.payload) {
        for (k, v) in fields {
            if v.is_array() {
                continue;
            }
            meta.retain(|existing, _| !existing.eq_ignore_ascii_case(&k));
            let v = match v {
                Value::String(s) => enc(&s),
                Value::Object(_) => v,
                other => enc(&other.to_string()),
            };
            meta.insert(k, v);
        }
    }
    json!({ "Data": { binding: enc(&ev.payload) }, "Metadata": meta })
}
