//! Azure Service Bus publisher: an `EventPublisher` that sends outbox events to topics over the
//! Service Bus REST API (`POST {base}/{topic}/messages`, ../shared/reference/platform-apis.md §6).
//!
//! **Settings** follow the Functions connection conventions, so the Service Bus triggers and this
//! publisher read the same app settings (functions-host.md §8):
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
//! `CorrelationId` (when the causing request had one). The W3C `traceparent` travels as an
//! application property (a header of its own for a single message, `UserProperties` in a batch).
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
//! `publish` with exponential backoff and jitter, honouring `retry-after-ms` / `Retry-After`
//! (seconds), within [`RetryPolicy`]'s attempt and time bounds; then `PublishError::Transient`.
//! Every retry resends the same `MessageId`, so a send whose answer was lost is not duplicated.
//! 400/401/403/404/410 (and other 4xx) are configuration errors: logged once per (topic, status)
//! with the entity name and returned as `PublishError::Config`; the dispatcher keeps the events
//! pending and retries them slowly. The log is armed again once the topic accepts a publish.
//! A batch split into several requests that fails half-way returns the error; the whole batch is
//! retried later and duplicate detection drops the part that was already accepted.

use crate::platform::config::ConfigError;
use crate::platform::identity::CredentialKind;
use crate::platform::outbox::{EventPublisher, PublishError};
use crate::platform::secret::Secret;
use crate::platform::store::PendingEvent;
use async_trait::async_trait;
use aws_lc_rs::{digest, hmac};
use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Entra scope for Service Bus data operations.
pub const SCOPE: &str = "https://servicebus.azure.net/.default";
/// The content type of a single message (the CloudEvents structured JSON format).
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The content type of a batch send.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// Upper bound of one batch request body; Standard namespaces accept 256 KiB per message/batch.
pub const MAX_BATCH_BYTES: usize = 200 * 1024;

const NAMESPACE_VAR: &str = "ServiceBusConnection__fullyQualifiedNamespace";
const CONNECTION_VAR: &str = "ServiceBusConnection";
const CLIENT_ID_VAR: &str = "ServiceBusConnection__clientId";
const CREDENTIAL_VAR: &str = "ServiceBusConnection__credential";
const ENDPOINT_VAR: &str = "QOTD_SERVICEBUS_ENDPOINT";

/// How long a SAS token is valid, and how close to expiry it is replaced.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);
const SAS_RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How much of an error body goes into a `PublishError::Config`.
const BODY_EXCERPT_CHARS: usize = 300;

/// How the publisher authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceBusAuth {
    /// An Entra token from the credential this kind builds.
    Identity(CredentialKind),
    /// A SAS token signed with a key from the connection string.
    SharedAccessKey { key_name: String, key: Secret },
}

/// Where and how to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusSettings {
    /// The fully qualified namespace, lower-cased, e.g. `qotd-prod.servicebus.windows.net`.
    pub namespace: String,
    /// The base URL requests go to, without a trailing slash: `https://<namespace>` unless
    /// `QOTD_SERVICEBUS_ENDPOINT` overrides it.
    pub endpoint: String,
    pub auth: ServiceBusAuth,
}

fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

fn trimmed(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks a host name such as `<ns>.servicebus.windows.net`; returns it lower-cased.
fn validate_namespace(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if host.contains('.') && host.len() <= 253 && labels_ok {
        Ok(host)
    } else {
        Err(err(
            variable,
            format!(
                "'{raw}' is not a fully qualified namespace (expected a host name like <namespace>.servicebus.windows.net, without scheme, port or path)"
            ),
        ))
    }
}

/// Parses `Endpoint=sb://<ns>/;SharedAccessKeyName=..;SharedAccessKey=..`. Errors never repeat
/// the value, which holds the key.
fn parse_connection_string(raw: &str) -> Result<(String, ServiceBusAuth), ConfigError> {
    if raw.starts_with("@Microsoft.KeyVault(") {
        return Err(err(
            CONNECTION_VAR,
            "is an unresolved Key Vault reference: give the app's identity 'get' access to the secret (the Functions host resolves the reference before the handler starts)",
        ));
    }
    let mut endpoint = None;
    let mut key_name = None;
    let mut key = None;
    let mut signature = false;
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(err(
                CONNECTION_VAR,
                "is not a connection string (expected Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<name>;SharedAccessKey=<key>; for identity auth set ServiceBusConnection__fullyQualifiedNamespace instead)",
            ));
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(v.trim().to_owned()),
            "sharedaccesskeyname" => key_name = Some(v.trim().to_owned()),
            "sharedaccesskey" => key = Some(v.trim().to_owned()),
            "sharedaccesssignature" => signature = true,
            // EntityPath, TransportType, UseDevelopmentEmulator, ...: not needed over REST.
            _ => {}
        }
    }
    let endpoint = endpoint.filter(|e| !e.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no Endpoint (expected Endpoint=sb://<namespace>.servicebus.windows.net/;...)",
        )
    })?;
    let host = endpoint
        .strip_prefix("sb://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| {
            err(
                CONNECTION_VAR,
                format!(
                    "Endpoint '{endpoint}' must start with sb:// (e.g. sb://<namespace>.servicebus.windows.net/)"
                ),
            )
        })?;
    let namespace = validate_namespace(CONNECTION_VAR, host).map_err(|_| {
        err(
            CONNECTION_VAR,
            format!(
                "Endpoint '{endpoint}' does not name a namespace (expected sb://<namespace>.servicebus.windows.net/)"
            ),
        )
    })?;
    if signature && key.is_none() {
        return Err(err(
            CONNECTION_VAR,
            "holds a SharedAccessSignature; qotd needs SharedAccessKeyName and SharedAccessKey to sign its own tokens (or use ServiceBusConnection__fullyQualifiedNamespace with an identity)",
        ));
    }
    let key_name = key_name.filter(|k| !k.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no SharedAccessKeyName (copy the whole connection string of a shared access policy with Send rights)",
        )
    })?;
    let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no SharedAccessKey (copy the whole connection string of a shared access policy with Send rights)",
        )
    })?;
    Ok((
        namespace,
        ServiceBusAuth::SharedAccessKey {
            key_name,
            key: Secret::new(key),
        },
    ))
}

/// `QOTD_SERVICEBUS_ENDPOINT`: `https://...`, or `http://` only on loopback.
fn parse_endpoint_override(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            url.strip_prefix(p).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
            })
        });
    let https = url.len() > "https://".len() && url.starts_with("https://");
    let clean = !url.contains(['?', '#', ' ', '\t']);
    if (loopback || https) && clean {
        Ok(url.to_owned())
    } else {
        Err(err(
            ENDPOINT_VAR,
            format!(
                "'{raw}' must be an https:// base URL, or http:// on loopback (127.0.0.1, localhost, [::1]), without query"
            ),
        ))
    }
}

/// The credential for identity auth: the shared factory's choice, with
/// `ServiceBusConnection__clientId` / `__credential` applied (the Functions convention).
fn identity_credential(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<CredentialKind, ConfigError> {
    let base = CredentialKind::from_lookup(get)?;
    let client_id = trimmed(get, CLIENT_ID_VAR);
    let forced_mi = match trimmed(get, CREDENTIAL_VAR).map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "managedidentity" => true,
        Some(other) => {
            return Err(err(
                CREDENTIAL_VAR,
                format!(
                    "'{other}' is not supported (only managedidentity; choose other credentials with QOTD_AZURE_CREDENTIAL)"
                ),
            ));
        }
    };
    match (base, client_id) {
        (CredentialKind::ManagedIdentity { client_id: global }, sb) => {
            Ok(CredentialKind::ManagedIdentity {
                client_id: sb.or(global),
            })
        }
        (_, sb) if forced_mi => Ok(CredentialKind::ManagedIdentity {
            client_id: sb.or_else(|| trimmed(get, "AZURE_CLIENT_ID")),
        }),
        (other, Some(_)) => Err(err(
            CLIENT_ID_VAR,
            format!(
                "selects a user-assigned managed identity, but QOTD_AZURE_CREDENTIAL selects {other:?}; remove one of them"
            ),
        )),
        (other, None) => Ok(other),
    }
}

impl ServiceBusSettings {
    /// Reads the Service Bus settings through `get`. `Ok(None)`: not configured (keep the local
    /// bus). Errors name the variable and never contain a key.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ServiceBusSettings>, ConfigError> {
        let namespace = trimmed(&get, NAMESPACE_VAR);
        let connection = trimmed(&get, CONNECTION_VAR);
        let endpoint = trimmed(&get, ENDPOINT_VAR)
            .map(|e| parse_endpoint_override(&e))
            .transpose()?;
        let (namespace, auth) = match (namespace, connection) {
            (None, None) => {
                if endpoint.is_some() {
                    return Err(err(
                        ENDPOINT_VAR,
                        "is set, but neither ServiceBusConnection__fullyQualifiedNamespace nor ServiceBusConnection is",
                    ));
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    CONNECTION_VAR,
                    "and ServiceBusConnection__fullyQualifiedNamespace are both set; set only one (the namespace for identity auth, or the connection string for SAS auth)",
                ));
            }
            (Some(ns), None) => (
                validate_namespace(NAMESPACE_VAR, &ns)?,
                ServiceBusAuth::Identity(identity_credential(&get)?),
            ),
            (None, Some(cs)) => parse_connection_string(&cs)?,
        };
        let endpoint = endpoint.unwrap_or_else(|| format!("https://{namespace}"));
        Ok(Some(ServiceBusSettings {
            namespace,
            endpoint,
            auth,
        }))
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<ServiceBusSettings>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// Retry bounds for one `publish` call (per request it makes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles after each, with jitter.
    pub base_delay: Duration,
    /// Largest backoff between attempts (a server's `Retry-After` may ask for more).
    pub max_delay: Duration,
    /// Time limit of one attempt (connect, send, answer).
    pub request_timeout: Duration,
    /// Time limit of all attempts of one request, waits included.
    pub total_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(4),
            request_timeout: Duration::from_secs(5),
            total_budget: Duration::from_secs(10),
        }
    }
}

enum Authorizer {
    Token(Arc<dyn TokenCredential>),
    Sas {
        key_name: String,
        /// Boxed: the HMAC key state is large.
        key: Box<hmac::Key>,
        /// resource URI -> (header value, expiry as unix seconds)
        cache: Mutex<HashMap<String, (String, u64)>>,
    },
}

impl Authorizer {
    fn sas(key_name: &str, key: &Secret) -> Self {
        Self::Sas {
            key_name: key_name.to_owned(),
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes())),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// Publishes outbox events to Azure Service Bus topics. See the module docs.
pub struct ServiceBusPublisher {
    namespace: String,
    endpoint: String,
    http: reqwest::Client,
    auth: Authorizer,
    policy: RetryPolicy,
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
                    Authorizer::Sas { .. } => "sas",
                },
            )
            .finish_non_exhaustive()
    }
}

impl ServiceBusPublisher {
    /// The publisher the settings describe. Identity settings build their credential with the
    /// shared factory (this fails early, e.g. workload identity without its environment).
    pub fn new(settings: &ServiceBusSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let auth = match &settings.auth {
            ServiceBusAuth::Identity(kind) => Authorizer::Token(kind.build()?),
            ServiceBusAuth::SharedAccessKey { key_name, key } => Authorizer::sas(key_name, key),
        };
        Ok(Self::from_parts(settings, http, auth))
    }

    /// Like [`new`](Self::new), but identity settings use `credential` (a credential shared with
    /// other adapters, or a test double). Connection-string settings still sign SAS tokens and
    /// ignore it.
    pub fn with_credential(
        settings: &ServiceBusSettings,
        http: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        let auth = match &settings.auth {
            ServiceBusAuth::Identity(_) => Authorizer::Token(credential),
            ServiceBusAuth::SharedAccessKey { key_name, key } => Authorizer::sas(key_name, key),
        };
        Self::from_parts(settings, http, auth)
    }

    fn from_parts(settings: &ServiceBusSettings, http: reqwest::Client, auth: Authorizer) -> Self {
        Self {
            namespace: settings.namespace.clone(),
            endpoint: settings.endpoint.clone(),
            http,
            auth,
            policy: RetryPolicy::default(),
            reported: Mutex::new(HashSet::new()),
            reports: AtomicUsize::new(0),
        }
    }

    /// Replaces the retry bounds (tests use short ones).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
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
            Authorizer::Sas {
                key_name,
                key,
                cache,
            } => {
                let resource = format!("https://{}/{}", self.namespace, topic);
                let now = unix_now();
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((token, expiry)) = cache.get(&resource)
                    && *expiry > now + SAS_RENEW_BEFORE.as_secs()
                {
                    return Ok(token.clone());
                }
                let expiry = now + SAS_LIFETIME.as_secs();
                let token = sign_sas(&resource, key_name, key, expiry);
                cache.insert(resource, (token.clone(), expiry));
                Ok(token)
            }
        }
    }

    /// Sends one request (one message or one batch), retrying transient failures.
    async fn send(&self, topic: &str, request: &Outgoing) -> Result<(), PublishError> {
        let url = format!("{}/{}/messages", self.endpoint, encode_path(topic));
        let started = Instant::now();
        let mut last_failure = String::new();
        for attempt in 1..=self.policy.max_attempts.max(1) {
            let Some(remaining) = self.policy.total_budget.checked_sub(started.elapsed()) else {
                break;
            };
            let mut builder = self
                .http
                .post(&url)
                .timeout(self.policy.request_timeout.min(remaining))
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
                        return Err(self.config_error(topic, status, &body));
                    }
                    let hint = retry_after(resp.headers());
                    last_failure = format!(
                        "HTTP {status} {}",
                        excerpt(&resp.text().await.unwrap_or_default())
                    );
                    hint
                }
                Err(e) if e.is_builder() => {
                    return Err(PublishError::Config(format!(
                        "cannot build the Service Bus request for topic '{topic}': {e}"
                    )));
                }
                Err(e) => {
                    last_failure = if e.is_timeout() {
                        format!(
                            "timed out after {:?}",
                            self.policy.request_timeout.min(remaining)
                        )
                    } else {
                        format!("request failed: {e}")
                    };
                    None
                }
            };
            if attempt == self.policy.max_attempts {
                break;
            }
            let delay = hint.unwrap_or_else(|| self.backoff(attempt));
            if started.elapsed() + delay >= self.policy.total_budget {
                last_failure.push_str(&format!(
                    " (next retry in {delay:?} would exceed the time budget)"
                ));
                break;
            }
            tracing::debug!(topic, attempt, ?delay, failure = %last_failure, "Service Bus send failed; retrying");
            tokio::time::sleep(delay).await;
        }
        Err(PublishError::Transient(format!(
            "Service Bus topic '{topic}' on {}: {last_failure} after {:.1?}",
            self.namespace,
            started.elapsed()
        )))
    }

    /// Exponential backoff with equal jitter: half fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.policy.max_delay);
        let half = exp / 2;
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as u32;
        half + half.mul_f64(f64::from(random) / 1_000_000.0)
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
    async fn publish(&self, topic: &str, events: &[PendingEvent]) -> Result<(), PublishError> {
        for request in plan(events) {
            self.send(topic, &request).await?;
        }
        Ok(())
    }
}

/// One HTTP request to make.
struct Outgoing {
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: bytes::Bytes,
}

/// Splits events into requests: single messages alone, the rest in batches under the budget.
fn plan(events: &[PendingEvent]) -> Vec<Outgoing> {
    let mut requests = Vec::new();
    let mut group: Vec<(&PendingEvent, String)> = Vec::new();
    let mut group_bytes = 2; // "[" and "]"
    let flush = |group: &mut Vec<(&PendingEvent, String)>, requests: &mut Vec<Outgoing>| {
        match group.len() {
            0 => {}
            1 => requests.push(single(group[0].0)),
            _ => {
                let body = format!(
                    "[{}]",
                    group
                        .iter()
                        .map(|(_, j)| j.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                requests.push(Outgoing {
                    content_type: BATCH_CONTENT_TYPE,
                    headers: Vec::new(),
                    body: body.into(),
                });
            }
        }
        group.clear();
    };
    for ev in events {
        let item = batch_item(ev).to_string();
        let cost = item.len() + 1;
        if !group.is_empty() && group_bytes + cost > MAX_BATCH_BYTES {
            flush(&mut group, &mut requests);
            group_bytes = 2;
        }
        group_bytes += cost;
        group.push((ev, item));
    }
    flush(&mut group, &mut requests);
    requests
}

fn broker_properties(ev: &PendingEvent) -> Value {
    let mut props = Map::new();
    props.insert("MessageId".into(), Value::String(ev.event_id.clone()));
    props.insert("Label".into(), Value::String(ev.event_type.clone()));
    if let Some(c) = ev.correlation_id.as_deref().filter(|c| !c.is_empty()) {
        props.insert("CorrelationId".into(), Value::String(c.to_owned()));
    }
    Value::Object(props)
}

fn batch_item(ev: &PendingEvent) -> Value {
    json!({
        "Body": ev.payload,
        "BrokerProperties": broker_properties(ev),
        "UserProperties": { "traceparent": traceparent(ev.correlation_id.as_deref(), &ev.event_id) },
    })
}

fn single(ev: &PendingEvent) -> Outgoing {
    Outgoing {
        content_type: CLOUDEVENTS_CONTENT_TYPE,
        headers: vec![
            ("BrokerProperties", ascii_json(&broker_properties(ev))),
            (
                "traceparent",
                traceparent(ev.correlation_id.as_deref(), &ev.event_id),
            ),
        ],
        body: bytes::Bytes::from(ev.payload.clone()),
    }
}

/// JSON with every non-ASCII character escaped, so it is a valid header value.
fn ascii_json(v: &Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The W3C `traceparent` for an event (see the module docs for how it is derived).
pub fn traceparent(correlation_id: Option<&str>, event_id: &str) -> String {
    let trace_id = correlation_id
        .and_then(hex128)
        .or_else(|| hex128(event_id))
        .unwrap_or_else(|| hex(&sha256(event_id.as_bytes())[..16]));
    let mut span = sha256(event_id.as_bytes())[..8].to_vec();
    if span.iter().all(|b| *b == 0) {
        span[7] = 1;
    }
    format!("00-{trace_id}-{}-01", hex(&span))
}

/// A UUID or 32 hex digits as 32 lower-case hex digits; never the invalid all-zero id.
fn hex128(s: &str) -> Option<String> {
    let s = s.trim();
    let digits: String = if s.len() == 36 {
        let dashes_ok = s
            .char_indices()
            .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
        if !dashes_ok {
            return None;
        }
        s.chars().filter(|c| *c != '-').collect()
    } else if s.len() == 32 {
        s.to_owned()
    } else {
        return None;
    };
    (digits.chars().all(|c| c.is_ascii_hexdigit()) && digits.chars().any(|c| c != '0'))
        .then(|| digits.to_ascii_lowercase())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (what `encodeURIComponent`
/// and .NET's `WebUtility.UrlEncode` agree on for SAS tokens).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a topic for the URL path (keeping `/` for hierarchical entity names).
fn encode_path(topic: &str) -> String {
    topic
        .split('/')
        .map(url_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// `SharedAccessSignature sr=<enc resource>&sig=<enc base64 HMAC-SHA256("<enc resource>\n<expiry>")>&se=<expiry>&skn=<key name>`.
fn sign_sas(resource: &str, key_name: &str, key: &hmac::Key, expiry: u64) -> String {
    let sr = url_encode(resource);
    let tag = hmac::sign(key, format!("{sr}\n{expiry}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        url_encode(&sig),
        url_encode(key_name)
    )
}

/// A SAS token for `resource` signed with `key`, valid until `expiry` (unix seconds).
pub fn shared_access_signature(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    sign_sas(
        resource,
        key_name,
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        expiry,
    )
}

fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

/// `retry-after-ms` (milliseconds) or `Retry-After` (whole seconds), capped at one minute.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<u64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v.ceil() as u64)
    };
    number("retry-after-ms")
        .map(Duration::from_millis)
        .or_else(|| number("retry-after").map(Duration::from_secs))
        .map(|d| d.min(Duration::from_secs(60)))
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;

    const KEY: &str = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ=";

    #[test]
    fn redacted_debug_hides_the_secret() {
        let r = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{r:?}"), "[redacted]");
        let s = ServiceBusSettings::from_lookup(lookup(&[(
            "ServiceBusConnection",
            &format!("Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
        )]))
        .unwrap()
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(KEY), "{dbg}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
    }

    #[test]
    fn settings_identity_and_connection_string() {
        assert_eq!(ServiceBusSettings::from_lookup(lookup(&[])).unwrap(), None);
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                " QOTD.servicebus.windows.net ",
            ),
            ("AZURE_CLIENT_ID", "global"),
            ("ServiceBusConnection__clientId", "sb-cid"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.namespace, "qotd.servicebus.windows.net");
        assert_eq!(s.endpoint, "https://qotd.servicebus.windows.net");
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::ManagedIdentity {
                client_id: Some("sb-cid".into())
            })
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "qotd.servicebus.windows.net",
            ),
            ("AZURE_CLIENT_ID", "global"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::ManagedIdentity {
                client_id: Some("global".into())
            })
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "qotd.servicebus.windows.net",
            ),
            ("QOTD_AZURE_CREDENTIAL", "developertools"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::DeveloperTools)
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection",
                &format!("Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=t"),
            ),
            ("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1:8123/"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.namespace, "ns1.servicebus.windows.net");
        assert_eq!(s.endpoint, "http://127.0.0.1:8123");
        match s.auth {
            ServiceBusAuth::SharedAccessKey { key_name, key } => {
                assert_eq!(key_name, "send");
                assert_eq!(key.expose(), KEY);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_errors_name_the_variable_and_hide_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(
                    "ServiceBusConnection__fullyQualifiedNamespace",
                    "https://ns.servicebus.windows.net/",
                )],
                NAMESPACE_VAR,
            ),
            (
                &[("ServiceBusConnection__fullyQualifiedNamespace", "ns")],
                NAMESPACE_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=http://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (&[("ServiceBusConnection", "SECRETKEY")], CONNECTION_VAR),
            (
                &[(
                    "ServiceBusConnection",
                    "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/SECRETKEY)",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection",
                        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                    ),
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                ],
                CONNECTION_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_SERVICEBUS_ENDPOINT", "http://example.com"),
                ],
                ENDPOINT_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1.evil.example"),
                ],
                ENDPOINT_VAR,
            ),
            (
                &[("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1:1")],
                ENDPOINT_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("ServiceBusConnection__credential", "clientsecret"),
                ],
                CREDENTIAL_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("ServiceBusConnection__clientId", "x"),
                    ("QOTD_AZURE_CREDENTIAL", "developertools"),
                ],
                CLIENT_ID_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_AZURE_CREDENTIAL", "password"),
                ],
                "QOTD_AZURE_CREDENTIAL",
            ),
        ];
        for (vars, variable) in cases {
            let e = ServiceBusSettings::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?} -> {e}");
            assert!(!e.to_string().contains("SECRETKEY"), "{e}");
        }
    }

    #[test]
    fn sas_token_shape() {
        let t = shared_access_signature(
            "https://ns.servicebus.windows.net/topic-a",
            "send key",
            KEY,
            1_700_000_000,
        );
        let rest = t.strip_prefix("SharedAccessSignature ").unwrap();
        let parts: HashMap<&str, &str> =
            rest.split('&').filter_map(|p| p.split_once('=')).collect();
        assert_eq!(
            parts["sr"],
            "https%3A%2F%2Fns.servicebus.windows.net%2Ftopic-a"
        );
        assert_eq!(parts["se"], "1700000000");
        assert_eq!(parts["skn"], "send%20key");
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, KEY.as_bytes()),
            b"https%3A%2F%2Fns.servicebus.windows.net%2Ftopic-a\n1700000000",
        );
        assert_eq!(
            parts["sig"],
            url_encode(&base64::engine::general_purpose::STANDARD.encode(expected.as_ref()))
        );
    }

    #[test]
    fn traceparent_is_stable_and_valid() {
        let ev = "0190f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        let a = traceparent(Some("6F9619FF-8B86-D011-B42D-00CF4FC964FF"), ev);
        assert!(a.starts_with("00-6f9619ff8b86d011b42d00cf4fc964ff-"), "{a}");
        assert!(a.ends_with("-01"));
        assert_eq!(a, traceparent(Some("6f9619ff8b86d011b42d00cf4fc964ff"), ev));
        let b = traceparent(Some("corr-1"), ev);
        assert!(b.starts_with("00-0190f1a23b4c7d5e8f60718293a4b5c6-"), "{b}");
        assert_eq!(&a[36..], &b[36..], "span id comes from the event id");
        let c = traceparent(None, "not-a-uuid");
        let parts: Vec<&str> = c.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16));
        assert!(traceparent(Some("00000000-0000-0000-0000-000000000000"), ev).contains("0190f1a2"));
    }

    #[test]
    fn retry_after_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            "Fri, 31 Dec 1999 23:59:59 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn broker_properties_header_is_ascii() {
        let v = json!({"CorrelationId": "café ☕ 😀"});
        let s = ascii_json(&v);
        assert!(s.is_ascii(), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
