//! The Service Bus `EventPublisher`: authorizes (Entra token or SAS), sends each planned
//! request to `POST {endpoint}/{topic}/messages`, retries transient failures with the
//! platform's one policy ([`crate::platform::retry`]) and reports configuration errors once per
//! (topic, status). See the parent module's docs for the rules.

use super::message::{Outgoing, alone, plan};
use super::sas::{SasSigner, encode_path};
use super::settings::{ServiceBusAuth, ServiceBusSettings};
use crate::platform::http_client::LazyClient;
use crate::platform::outbox::{EventPublisher, PublishError, Rejection};
use crate::platform::retry::{self, GiveUp, RetryPolicy};
use crate::platform::store::PendingEvent;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Entra scope for Service Bus data operations.
pub const SCOPE: &str = "https://servicebus.azure.net/.default";
/// How much of an error body goes into a `PublishError::Config`.
const BODY_EXCERPT_CHARS: usize = 300;

/// Retry bounds of one request (one message or one batch) inside `publish`: four attempts,
/// 200 ms doubling to 4 s, all within 10 s, so a dispatcher step never stalls for long; what
/// still fails stays pending in the outbox and is retried later.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(4),
    total_budget: Duration::from_secs(10),
};
/// Time limit of one attempt (connect, send, answer) unless `with_request_timeout` sets
/// another; always cut to what is left of the retry budget.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest server-requested wait honoured; a longer one is cut to this (and the retry
/// budget then decides whether it still fits).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why one request failed.
enum SendFailure {
    /// Transient (retries spent), throttled or a configuration error: the whole call fails.
    Publish(PublishError),
    /// A 4xx about the message(s) themselves, not the topic or the credentials ([`refuses_the_message`]).
    Refused { status: u16, body: String },
}

impl From<PublishError> for SendFailure {
    fn from(e: PublishError) -> Self {
        Self::Publish(e)
    }
}

/// 4xx answers that are about the message(s) sent (too large, malformed, invalid properties),
/// so another message may well be accepted: a refused batch is resent one message at a time.
/// 401, 403, 404 and 410 are about the topic or the credentials and fail the whole call.
fn refuses_the_message(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

enum Authorizer {
    Token(Arc<dyn TokenCredential>),
    Sas(SasSigner),
}

/// Publishes outbox events to Azure Service Bus topics. See the module docs.
pub struct ServiceBusPublisher {
    namespace: String,
    endpoint: String,
    http: LazyClient,
    auth: Authorizer,
    policy: RetryPolicy,
    request_timeout: Duration,
    /// (topic, status) pairs already logged as configuration errors.
    reported: Mutex<HashSet<(String, u16)>>,
    reports: AtomicUsize,
}

impl fmt::Debug for ServiceBusPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusPublisher")
            .field("namespace", &self.namespace)
            .field("endpoint", &self.endpoint)
            .field(
                "auth",
                &match self.auth {
                    Authorizer::Token(_) => "entra",
                    Authorizer::Sas(_) => "sas",
                },
            )
            .finish_non_exhaustive()
    }
}

impl ServiceBusPublisher {
    /// The publisher the settings describe. Identity settings build their credential with the
    /// shared factory (this fails early, e.g. workload identity without its environment).
    pub fn new(settings: &ServiceBusSettings, http: impl Into<LazyClient>) -> anyhow::Result<Self> {
        let auth = match &settings.auth {
            ServiceBusAuth::Identity(kind) => Authorizer::Token(kind.build()?),
            ServiceBusAuth::SharedAccessKey { key_name, key } => {
                Authorizer::Sas(SasSigner::new(key_name, key))
            }
        };
        Ok(Self::from_parts(settings, http.into(), auth))
    }

    /// Like [`new`](Self::new), but identity settings use `credential` (a credential shared with
    /// other adapters, or a test double). Connection-string settings still sign SAS tokens and
    /// ignore it.
    pub fn with_credential(
        settings: &ServiceBusSettings,
        http: impl Into<LazyClient>,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        let auth = match &settings.auth {
            ServiceBusAuth::Identity(_) => Authorizer::Token(credential),
            ServiceBusAuth::SharedAccessKey { key_name, key } => {
                Authorizer::Sas(SasSigner::new(key_name, key))
            }
        };
        Self::from_parts(settings, http.into(), auth)
    }

    fn from_parts(settings: &ServiceBusSettings, http: LazyClient, auth: Authorizer) -> Self {
        Self {
            namespace: settings.namespace.clone(),
            endpoint: settings.endpoint.clone(),
            http,
            auth,
            policy: DEFAULT_RETRY,
            request_timeout: REQUEST_TIMEOUT,
            reported: Mutex::new(HashSet::new()),
            reports: AtomicUsize::new(0),
        }
    }

    /// Replaces the retry bounds (tests use short ones).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the time limit of one attempt.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many configuration-error log lines this publisher has written (one per topic and
    /// status until the topic works again).
    pub fn config_errors_reported(&self) -> usize {
        self.reports.load(Ordering::Relaxed)
    }

    async fn authorization(&self, topic: &str) -> Result<String, PublishError> {
        match &self.auth {
            Authorizer::Token(credential) => {
                let token = credential.get_token(&[SCOPE], None).await.map_err(|e| {
                    PublishError::Transient(format!(
                        "cannot get an Entra token for Service Bus ({SCOPE}): {e}"
                    ))
                })?;
                Ok(format!("Bearer {}", token.token.secret()))
            }
            Authorizer::Sas(signer) => Ok(signer.token(&self.namespace, topic)),
        }
    }

    /// Sends one request (one message or one batch), retrying transient failures.
    async fn send(&self, topic: &str, request: &Outgoing) -> Result<(), SendFailure> {
        let url = format!("{}/{}/messages", self.endpoint, encode_path(topic));
        let http = self.http.get().map_err(PublishError::Transient)?;
        let started = Instant::now();
        let mut last_failure = String::new();
        // The last wait the broker asked for: carried into the outbox when it outlasts us.
        let mut asked: Option<Duration> = None;
        for attempt in 1u32.. {
            let Some(remaining) = self.policy.total_budget.checked_sub(started.elapsed()) else {
                break;
            };
            let mut builder = http
                .post(&url)
                .timeout(self.request_timeout.min(remaining))
                .header(reqwest::header::CONTENT_TYPE, request.content_type)
                .header(
                    reqwest::header::AUTHORIZATION,
                    self.authorization(topic).await?,
                )
                .body(request.body.clone());
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            let hint = match builder.send().await {
                Ok(resp) if resp.status().is_success() => {
                    self.rearm(topic);
                    return Ok(());
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if !is_retryable(status) {
                        let body = excerpt(&resp.text().await.unwrap_or_default());
                        if refuses_the_message(status) {
                            return Err(SendFailure::Refused { status, body });
                        }
                        return Err(self.config_error(topic, status, &body).into());
                    }
                    let hint = retry::retry_after(resp.headers(), MAX_RETRY_AFTER);
                    asked = hint;
                    last_failure = format!(
                        "HTTP {status} {}",
                        excerpt(&resp.text().await.unwrap_or_default())
                    );
                    hint
                }
                Err(e) if e.is_builder() => {
                    return Err(PublishError::Config(format!(
                        "cannot build the Service Bus request for topic '{topic}': {e}"
                    ))
                    .into());
                }
                Err(e) => {
                    last_failure = if e.is_timeout() {
                        format!("timed out after {:?}", self.request_timeout.min(remaining))
                    } else {
                        format!("request failed: {e}")
                    };
                    None
                }
            };
            let delay = match self.policy.next(attempt, started.elapsed(), hint) {
                Ok(delay) => delay,
                Err(GiveUp::Attempts) => break,
                Err(GiveUp::Budget(delay)) => {
                    last_failure.push_str(&format!(
                        " (next retry in {delay:?} would exceed the time budget)"
                    ));
                    if hint.is_some() {
                        return Err(PublishError::Throttled {
                            reason: format!(
                                "Service Bus topic '{topic}' on {}: {last_failure}",
                                self.namespace
                            ),
                            retry_after: delay,
                        }
                        .into());
                    }
                    break;
                }
            };
            tracing::debug!(topic, attempt, ?delay, failure = %last_failure, "Service Bus send failed; retrying");
            tokio::time::sleep(delay).await;
        }
        let reason = format!(
            "Service Bus topic '{topic}' on {}: {last_failure} after {:.1?}",
            self.namespace,
            started.elapsed()
        );
        Err(match asked {
            Some(retry_after) => PublishError::Throttled {
                reason,
                retry_after,
            },
            None => PublishError::Transient(reason),
        }
        .into())
    }

    fn config_error(&self, topic: &str, status: u16, body: &str) -> PublishError {
        let hint = match status {
            401 => {
                "unauthorized: check the identity has the 'Azure Service Bus Data Sender' role on the topic or namespace, or the SAS key and its Send right"
            }
            403 => {
                "forbidden: missing 'Azure Service Bus Data Sender' role or Send right, quota exceeded, or message too large"
            }
            404 | 410 => "the topic does not exist in this namespace",
            400 => "bad request (e.g. message too large or invalid properties)",
            _ => "rejected",
        };
        let newly = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((topic.to_owned(), status));
        if newly {
            self.reports.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                entity = topic,
                namespace = %self.namespace,
                status,
                detail = body,
                "Service Bus rejected a publish: {hint}; events stay pending and are retried (logged once until the topic works)"
            );
        }
        PublishError::Config(format!(
            "Service Bus topic '{topic}' on {}: HTTP {status}: {hint}; {body}",
            self.namespace
        ))
    }

    fn rearm(&self, topic: &str) {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if !reported.is_empty() {
            reported.retain(|(t, _)| t != topic);
        }
    }
}

#[async_trait]
impl EventPublisher for ServiceBusPublisher {
    /// Sends the planned requests in order. A request the broker refuses for its content is
    /// resent one message at a time, so one bad message cannot block its topic; the messages
    /// refused alone come back as [`PublishError::Rejected`] (all others were accepted).
    async fn publish(&self, topic: &str, events: &[PendingEvent]) -> Result<(), PublishError> {
        let mut rejected = Vec::new();
        let refusal = |ev: &PendingEvent, status: u16, body: &str| Rejection {
            event_id: ev.event_id.clone(),
            reason: format!("HTTP {status} from Service Bus: {body}"),
        };
        for request in plan(events) {
            let members = &events[request.members.clone()];
            match self.send(topic, &request).await {
                Ok(()) => {}
                Err(SendFailure::Publish(e)) => return Err(e),
                Err(SendFailure::Refused { status, body }) if members.len() == 1 => {
                    rejected.push(refusal(&members[0], status, &body));
                }
                Err(SendFailure::Refused { status, body }) => {
                    tracing::warn!(topic, status, count = members.len(), detail = %body, "Service Bus refused a batch; resending its messages one at a time");
                    for ev in members {
                        match self.send(topic, &alone(ev)).await {
                            Ok(()) => {}
                            Err(SendFailure::Publish(e)) => return Err(e),
                            Err(SendFailure::Refused { status, body }) => {
                                rejected.push(refusal(ev, status, &body));
                            }
                        }
                    }
                }
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(PublishError::Rejected { rejected })
        }
    }
}

fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

/// The start of an error body on one line.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_CHARS)
        .collect();
    let trimmed = one_line.trim().to_owned();
    if body.chars().count() > BODY_EXCERPT_CHARS {
        format!("{trimmed}…")
    } else {
        trimmed
    }
}
