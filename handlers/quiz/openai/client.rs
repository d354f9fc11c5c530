//! The transport to the chat completions endpoint: authentication (API key or Entra), one
//! call with its retries, and the classification of what came back.
//!
//! 429 honours the server's wait (`retry-after-ms`, `x-ms-retry-after-ms` or `retry-after`,
//! capped at [`MAX_RETRY_AFTER`]); 408, 5xx, timeouts and connection errors back off with the
//! platform's one policy ([`crate::platform::retry`]); all within the attempts of
//! [`OpenAiSettings::retry`] and the generation's budget. 401, 403, 404 and other 4xx stop using
//! the service for this generation (they will not heal by retrying).

use super::clip;
use super::request::{self, SAMPLING_PARAMETERS};
use super::settings::{
    API_KEY, ApiKey, KeyHeader, OpenAiSettings, Reasoning, config_err, is_reasoning_model_name,
};
use crate::platform::config::ConfigError;
use crate::platform::http_client::LazyClient;
use crate::platform::retry::{self, GiveUp, RetryPolicy};
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The Entra scope for Azure OpenAI data-plane calls.
pub const TOKEN_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The longest server-requested wait honoured; a longer one is cut to this, then the
/// generation's budget decides whether the wait still fits.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a chat call produced nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// The service cannot be used for this generation (credentials, missing deployment, a
    /// request it rejects): retrying will not help.
    Fatal(String),
    /// Throttling, 5xx, timeouts or network errors outlasted the retries.
    Unavailable(String),
    /// A reply arrived but its content is unusable: filtered, refused, truncated, invalid JSON.
    Content(String),
    /// The generation's time budget is spent.
    Deadline,
}

impl CallError {
    pub(super) fn describe(&self, budget: Duration) -> String {
        match self {
            Self::Fatal(m) | Self::Unavailable(m) | Self::Content(m) => m.clone(),
            Self::Deadline => format!(
                "the time limit of {} s per generation (QOTD_OPENAI_MAX_SECONDS) was reached",
                budget.as_secs_f32()
            ),
        }
    }
}

/// The outcome of one HTTP attempt.
enum Attempt {
    Done(Result<Reply, CallError>),
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
}

/// A usable reply: the model's JSON output and the model name the service reported.
pub(super) struct Reply {
    pub(super) output: Value,
    pub(super) model: Option<String>,
}

/// How requests are authenticated.
enum Auth {
    Key(ApiKey, KeyHeader),
    Entra(Arc<dyn TokenCredential>),
}

/// What all calls of one generation share: one time budget and the in-flight limit.
pub(super) struct CallBudget {
    started: Instant,
    deadline: Instant,
    permits: Semaphore,
}

impl CallBudget {
    pub(super) fn new(budget: Duration, in_flight: usize) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + budget,
            permits: Semaphore::new(in_flight),
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn remaining(&self) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

/// Calls one chat completions endpoint.
pub(super) struct ChatClient {
    url: String,
    http: LazyClient,
    auth: Auth,
    request_timeout: Duration,
    /// The settings' retry numbers with the generation's budget as `total_budget`.
    retry: RetryPolicy,
    /// Whether the deployment is treated as a reasoning model now. With
    /// `QOTD_OPENAI_REASONING=auto` it starts from the deployment name and turns on for good
    /// when a reply names a reasoning model or the service rejects a sampling parameter.
    reasoning: AtomicBool,
    learns: bool,
    /// `QOTD_OPENAI_MAX_COMPLETION_TOKENS`.
    token_cap: u32,
}

impl ChatClient {
    /// `credential` is used only when `settings.api_key` is `None`, and is then required.
    pub(super) fn new(
        settings: &OpenAiSettings,
        http: LazyClient,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Self, ConfigError> {
        let url = settings.chat_url()?;
        let auth = match (&settings.api_key, credential) {
            (Some(key), _) => Auth::Key(key.clone(), settings.key_header),
            (None, Some(cred)) => Auth::Entra(cred),
            (None, None) => {
                return Err(config_err(
                    API_KEY,
                    "is not set and no Entra credential was supplied: set the key, or give the app an identity (QOTD_AZURE_CREDENTIAL) with the 'Cognitive Services OpenAI User' role",
                ));
            }
        };
        Ok(Self {
            url,
            http,
            auth,
            request_timeout: settings.request_timeout,
            // One budget for the whole generation: no wait may end past `max_total` since
            // the generation began (`CallBudget` measures from there).
            retry: RetryPolicy {
                total_budget: settings.max_total,
                ..settings.retry
            },
            reasoning: AtomicBool::new(settings.reasoning_model()),
            learns: settings.reasoning == Reasoning::Auto,
            token_cap: settings.max_completion_tokens,
        })
    }

    /// Whether calls are currently shaped for a reasoning model.
    pub(super) fn reasoning(&self) -> bool {
        self.reasoning.load(Ordering::Relaxed)
    }

    /// Switches to the reasoning shape (auto mode only); true if it was not on before.
    fn learn_reasoning(&self, why: &str) -> bool {
        if !self.learns || self.reasoning.swap(true, Ordering::Relaxed) {
            return false;
        }
        tracing::info!(
            why,
            "treating the Azure OpenAI deployment as a reasoning model (QOTD_OPENAI_REASONING=auto)"
        );
        true
    }

    /// The chat completions URL.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// How requests are authenticated, for `Debug` output.
    pub(super) fn auth_kind(&self) -> &'static str {
        match self.auth {
            Auth::Key(..) => "api key",
            Auth::Entra(_) => "entra",
        }
    }

    /// One chat call with retries for throttling, 5xx, timeouts and network errors.
    pub(super) async fn chat(
        &self,
        calls: &CallBudget,
        kind: &str,
        body: &Value,
    ) -> Result<Reply, CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = calls.remaining().ok_or(CallError::Deadline)?;
            let outcome = {
                // Waiting for a permit counts against the budget like everything else.
                let _permit = tokio::time::timeout(remaining, calls.permits.acquire())
                    .await
                    .map_err(|_| CallError::Deadline)?
                    .expect("the semaphore is never closed");
                self.send_once(calls, kind, body).await
            };
            let (reason, wait) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry { reason, wait } => (reason, wait),
            };
            let wait = match self.retry.next(attempt, calls.started.elapsed(), wait) {
                Ok(wait) => wait,
                Err(GiveUp::Attempts) => {
                    return Err(CallError::Unavailable(format!(
                        "{reason} (gave up after {attempt} attempts)"
                    )));
                }
                Err(GiveUp::Budget(wait)) => {
                    return Err(CallError::Unavailable(format!(
                        "{reason}; no time left in the generation's budget to wait {} s and retry",
                        wait.as_secs_f32()
                    )));
                }
            };
            tracing::info!(call = kind, attempt, wait_ms = wait.as_millis() as u64, reason = %reason, "retrying an Azure OpenAI call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, calls: &CallBudget, kind: &str, body: &Value) -> Attempt {
        let Some(remaining) = calls.remaining() else {
            return Attempt::Done(Err(CallError::Deadline));
        };
        let timeout = remaining.min(self.request_timeout);
        // When the budget, not the per-request limit, set the timeout, a timeout means the
        // budget is spent.
        let budget_bound = remaining < self.request_timeout;
        let body = request::for_model(body, self.reasoning(), self.token_cap);
        let http = match self.http.get() {
            Ok(http) => http,
            Err(e) => return Attempt::Done(Err(CallError::Unavailable(e))),
        };
        let mut request = http.post(&self.url).timeout(timeout).json(&body);
        request = match &self.auth {
            Auth::Key(key, KeyHeader::ApiKey) => request.header("api-key", key.expose()),
            Auth::Key(key, KeyHeader::Bearer) => request.bearer_auth(key.expose()),
            Auth::Entra(cred) => {
                match tokio::time::timeout(timeout, cred.get_token(&[TOKEN_SCOPE], None)).await {
                    Ok(Ok(token)) => request.bearer_auth(token.token.secret()),
                    // Display, not Debug: azure_core's Debug prints a whole backtrace. A failed
                    // token request (the identity endpoint down, throttled or restarting) is
                    // transient: retried like a 5xx, within the attempts and the budget.
                    Ok(Err(e)) => {
                        return Attempt::Retry {
                            reason: format!(
                                "could not get an Entra token for {TOKEN_SCOPE}: {}",
                                clip(&error_chain(&e), 300)
                            ),
                            wait: None,
                        };
                    }
                    Err(_) if budget_bound || calls.remaining().is_none() => {
                        return Attempt::Done(Err(CallError::Deadline));
                    }
                    Err(_) => {
                        return Attempt::Retry {
                            reason: format!("no Entra token within {} s", timeout.as_secs_f32()),
                            wait: None,
                        };
                    }
                }
            }
        };
        let started = Instant::now();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() && (budget_bound || calls.remaining().is_none()) {
                Attempt::Done(Err(CallError::Deadline))
            } else if e.is_timeout() {
                Attempt::Retry {
                    reason: format!("no complete reply within {} s", timeout.as_secs_f32()),
                    wait: None,
                }
            } else {
                Attempt::Retry {
                    reason: format!("the request failed: {}", clip(&error_chain(&e), 300)),
                    wait: None,
                }
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = response.status();
        let wait = retry::retry_after(response.headers(), MAX_RETRY_AFTER);
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return transport(e),
        };
        tracing::debug!(
            call = kind,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Azure OpenAI call"
        );
        if status.is_success() {
            let reply = parse_completion(&text);
            if let Ok(Reply { model: Some(m), .. }) = &reply
                && is_reasoning_model_name(m)
            {
                self.learn_reasoning(&format!("the service reports model {m}"));
            }
            return Attempt::Done(reply);
        }
        let (code, message) = self.error_body(&text);
        let param = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["param"].as_str().map(str::to_owned));
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!(" ({c}: {m})"),
            (Some(c), None) => format!(" ({c})"),
            (None, Some(m)) => format!(" ({m})"),
            (None, None) => String::new(),
        };
        match status.as_u16() {
            429 => Attempt::Retry {
                reason: format!("throttled: HTTP 429{detail}"),
                wait,
            },
            408 => Attempt::Retry {
                reason: format!("HTTP 408{detail}"),
                wait,
            },
            s if status.is_server_error() => Attempt::Retry {
                reason: format!("HTTP {s}{detail}"),
                wait,
            },
            // A reasoning model rejecting a sampling parameter: in auto mode, switch shape and
            // send again at once.
            400 if rejects_sampling(param.as_deref(), message.as_deref())
                && self.learn_reasoning(&format!("HTTP 400{detail}")) =>
            {
                Attempt::Retry {
                    reason: format!("HTTP 400{detail}: resending in the reasoning-model shape"),
                    wait: Some(Duration::ZERO),
                }
            }
            400 if code.as_deref() == Some("content_filter") => {
                Attempt::Done(Err(CallError::Content(format!(
                    "the prompt was blocked by the content filter (HTTP 400{detail})"
                ))))
            }
            s @ (401 | 403) => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP {s}{detail}: the service refused the credentials; check QOTD_OPENAI_API_KEY, or the identity's 'Cognitive Services OpenAI User' role"
            )))),
            404 => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP 404{detail}: no such deployment or path; check QOTD_OPENAI_ENDPOINT, QOTD_OPENAI_DEPLOYMENT and QOTD_OPENAI_API_STYLE"
            )))),
            s => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP {s}{detail}: the service rejected the request"
            )))),
        }
    }

    /// `error.code` and `error.message` of an error reply, clipped and with the key masked.
    fn error_body(&self, text: &str) -> (Option<String>, Option<String>) {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let error = &v["error"];
        let code = match &error["code"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let mask = |s: String| match &self.auth {
            Auth::Key(k, _) if !k.expose().is_empty() => s.replace(k.expose(), "[redacted]"),
            _ => s,
        };
        (
            code.map(|c| mask(clip(&c, 60))),
            error["message"].as_str().map(|m| mask(clip(m, 200))),
        )
    }
}

/// Whether a 400 names one of the parameters reasoning models reject.
fn rejects_sampling(param: Option<&str>, message: Option<&str>) -> bool {
    let named =
        |p: &str| param == Some(p) || message.is_some_and(|m| m.contains(&format!("'{p}'")));
    SAMPLING_PARAMETERS.iter().any(|p| named(p)) || named("max_tokens")
}

/// Parses a 200 reply: the model's message must have finished normally and hold JSON.
fn parse_completion(body: &str) -> Result<Reply, CallError> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| CallError::Content(format!("the service's reply is not JSON ({e})")))?;
    let choice = &envelope["choices"][0];
    if choice.is_null() {
        return Err(CallError::Content("the reply has no choices".into()));
    }
    let message = &choice["message"];
    match choice["finish_reason"].as_str() {
        Some("content_filter") => {
            return Err(CallError::Content(
                "the output was blocked by the content filter (finish_reason content_filter)"
                    .into(),
            ));
        }
        Some("length") => {
            return Err(CallError::Content(
                "the output was truncated at the token limit (finish_reason length)".into(),
            ));
        }
        Some("stop") | None => {}
        Some(other) => {
            return Err(CallError::Content(format!(
                "the output ended with an unexpected finish_reason '{}'",
                clip(other, 40)
            )));
        }
    }
    if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.trim().is_empty()) {
        return Err(CallError::Content(format!(
            "the model refused: {}",
            clip(refusal.trim(), 160)
        )));
    }
    let content = message["content"]
        .as_str()
        .ok_or_else(|| CallError::Content("the reply has no message content".into()))?;
    let output: Value = serde_json::from_str(content)
        .map_err(|e| CallError::Content(format!("the model's output is not valid JSON ({e})")))?;
    if !output.is_object() {
        return Err(CallError::Content(
            "the model's output is not a JSON object".into(),
        ));
    }
    Ok(Reply {
        output,
        model: envelope["model"].as_str().map(|m| clip(m, 100)),
    })
}

/// An error with its sources, for messages about network failures.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn completions_are_classified() {
        let reply = |finish: &str, content: &str, refusal: Value| {
            json!({"choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "refusal": refusal}}],
                "model": "gpt-4o-2024-08-06"})
            .to_string()
        };
        let ok = parse_completion(&reply("stop", r#"{"a":1}"#, Value::Null)).unwrap();
        assert_eq!(ok.output, json!({"a": 1}));
        assert_eq!(ok.model.as_deref(), Some("gpt-4o-2024-08-06"));
        let content_err = |body: String| match parse_completion(&body) {
            Err(CallError::Content(m)) => m,
            other => panic!(
                "expected a content error, got {:?}",
                other.map(|r| r.output)
            ),
        };
        assert!(content_err(reply("length", r#"{"a":"#, Value::Null)).contains("truncated"));
        assert!(content_err(reply("content_filter", "", Value::Null)).contains("content filter"));
        assert!(
            content_err(reply("stop", "", json!("I can't help with that."))).contains("refused")
        );
        assert!(content_err(reply("stop", "{not json", Value::Null)).contains("not valid JSON"));
        assert!(content_err("<html>".into()).contains("not JSON"));
        assert!(content_err(r#"{"choices": []}"#.into()).contains("no choices"));
    }
}
