//! Azure Service Bus publisher: an `EventPublisher` that sends outbox events to topics over the
//! Service Bus REST API (`POST {base}/{topic}/messages`,
//! https://learn.microsoft.com/rest/api/servicebus/send-message-batch).
//!
//! **Settings** follow the Functions connection conventions, so the Service Bus triggers and this
//! publisher read the same app settings
//! (https://learn.microsoft.com/azure/azure-functions/functions-reference#common-properties-for-identity-based-connections):
//!
//! | setting | meaning |
//! | --- | --- |
//! | `ServiceBusConnection__fullyQualifiedNamespace` | `<ns>.servicebus.windows.net`: Entra (identity) auth |
//! | `ServiceBusConnection__clientId` | user-assigned managed identity for Service Bus (overrides `AZURE_CLIENT_ID`) |
//! | `ServiceBusConnection__credential` | optional; only `managedidentity` is accepted (the Functions convention) |
//! | `ServiceBusConnection` | connection string `Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..`: SAS auth |
//! | `QOTD_SERVICEBUS_ENDPOINT` | optional base URL override for tests and emulators (`https://..`, or `http://` on loopback) |
//!
//! Neither the namespace nor the connection string set means "not configured": the app keeps its
//! local bus. Identity auth builds its credential with the shared factory
//! ([`crate::platform::identity`], `QOTD_AZURE_CREDENTIAL`) and asks for the scope
//! `https://servicebus.azure.net/.default` on every request (azure_identity caches the token).
//! SAS auth signs `https://<ns>/<topic>` with HMAC-SHA256 and caches each token until five minutes
//! before it expires (tokens live one hour).
//!
//! **Messages.** One event is one message: the body is the CloudEvents JSON with `Content-Type:
//! application/cloudevents+json; charset=utf-8`; `BrokerProperties` carries `MessageId` (the
//! CloudEvent id, so duplicate detection on the topic drops resends), `Label` (the event type) and
//! `CorrelationId` (the correlation id of the HTTP request that caused the event, stored with
//! it in the outbox; the Functions trigger hands it to the consumer as `CorrelationId` metadata,
//! which [`crate::platform::functions::consumer`] logs). The W3C `traceparent` travels as an
//! application property, and again as `Diagnostic-Id` (the name the Service Bus SDKs, and so the
//! Functions trigger, read to link the traces): a quoted-string header of its own for a single
//! message (the REST API reads an unquoted custom property as a number or date when it can),
//! `UserProperties` in a batch.
//! Several events to one topic go as batches (`application/vnd.microsoft.servicebus.json`), split
//! so that each request body stays under [`MAX_BATCH_BYTES`]. The batch format has no
//! per-message content type, so batched messages carry none.
//!
//! **traceparent.** qotd has no OpenTelemetry, so no span exists for the publish. The header is
//! *derived*, not recorded: the trace id is the correlation id when it is a UUID or 32 hex digits
//! (so every event caused by one request shares a trace), otherwise the event id (a UUID); the
//! parent span id is the first 8 bytes of SHA-256 over the event id. The same event always gets
//! the same `traceparent`, retries included. Flags are `01` (sampled) so consumers that follow
//! the parent's sampling decision record their side.
//!
//! **Failures.** 408, 429 and 5xx answers, timeouts and connection errors are retried inside
//! `publish` with the platform's one backoff ([`crate::platform::retry`]), honouring the
//! server's wait (`retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After`, capped at
//! [`MAX_RETRY_AFTER`]), within [`DEFAULT_RETRY`]'s attempt and time bounds (or those given
//! with `with_policy`); then `PublishError::Transient`, or `PublishError::Throttled` with the
//! server's wait when it asked for one the budget could not hold: the dispatcher then leaves the
//! events alone for that long (the row's `available_at`), so the wait is not lost.
//! Every retry resends the same `MessageId`, so a send whose answer was lost is not duplicated.
//! 400, 413, 415 and 422 refuse the message(s) themselves: a refused batch is resent one message
//! at a time, and the messages refused alone come back in `PublishError::Rejected`, which the
//! dispatcher moves to the poison table with their reason (everything else was accepted), so one
//! oversized or invalid message cannot block its topic. 401/403/404/410 (and other 4xx) are
//! configuration errors: logged once per (topic, status) with the entity name and returned as
//! `PublishError::Config`; the dispatcher keeps the events pending and retries them slowly. The
//! log is armed again once the topic accepts a publish.
//! A batch split into several requests that fails half-way returns the error; the whole batch is
//! retried later and duplicate detection drops the part that was already accepted.
//!
//! **Layout.** `settings` reads the app settings, `sas` signs SAS tokens (and URL-encodes),
//! `message` turns outbox events into message requests (properties, batches, `traceparent`),
//! `publisher` sends them and retries.

mod message;
mod publisher;
mod sas;
mod settings;

pub use crate::platform::retry::RetryPolicy;
pub use message::{BATCH_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE, MAX_BATCH_BYTES, traceparent};
pub use publisher::{DEFAULT_RETRY, MAX_RETRY_AFTER, REQUEST_TIMEOUT, SCOPE, ServiceBusPublisher};
pub use sas::{shared_access_signature, url_encode};
pub use settings::{ServiceBusAuth, ServiceBusSettings};
