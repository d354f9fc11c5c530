//! The local stand-in for the Azure Functions host, used by `qotd local`. It reads the same
//! function definitions the real host reads and reaches the handler only over HTTP:
//!
//! - HTTP functions: requests on `--addr` whose path matches a function route are forwarded to
//!   the handler at the same path with the `X-Azure-Functions-*` headers added, as
//!   `enableForwardingHttpRequest` does; the response goes back unchanged. `GET /` is forwarded
//!   when a function routes the site root. Exactly the dev issuer's documents
//!   (`GET /dev/oidc/.well-known/openid-configuration`, `/dev/oidc/keys`) and its sign-in flow
//!   (`/dev/oidc/authorize`, `POST /dev/oidc/token`) are forwarded too: the dev issuer stands in for an external identity provider. Nothing
//!   else reaches the handler: paths with `.`/`..` segments (raw or `%2e`) are refused, and the
//!   forwarded URL must keep exactly the path that was routed, so the handler's internal
//!   `POST /{FunctionName}` is never reachable through this port.
//! - Timer functions: fired on their NCRONTAB schedule (UTC) with a real `TimerInfo` payload.
//! - Service Bus functions: fed by `LocalBus`, the Service Bus stand-in.

use super::local_bus::HOST_VERSION;
use super::manifest::{FunctionApp, RouteMatch, Trigger};
use crate::platform::auth::dev_issuer;
use crate::platform::clock::Clock;
use crate::platform::http::server::Handler;
use crate::platform::http::{ApiRequest, ApiResponse, Problem, json_response};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Parses a 6-field NCRONTAB expression (`{second} {minute} {hour} {day} {month} {day-of-week}`).
pub fn parse_ncrontab(expr: &str) -> Result<Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "schedule '{expr}' must have 6 fields (second minute hour day month day-of-week)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("schedule '{expr}' is not valid NCRONTAB: {e}"))
}

/// The `TimerInfo` payload the host sends (see tests/fixtures/functions-host/timer-invocation.json).
pub fn timer_invocation(
    function: &str,
    binding: &str,
    last: Option<DateTime<Utc>>,
    next: DateTime<Utc>,
    past_due: bool,
    now: DateTime<Utc>,
) -> Value {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, false);
    let last = last
        .map(fmt)
        .unwrap_or_else(|| "0001-01-01T00:00:00+00:00".into());
    json!({
        "Data": { binding: {
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": { "Last": last, "Next": fmt(next), "LastUpdated": last },
            "IsPastDue": past_due,
        }},
        "Metadata": { "sys": {
            "MethodName": function,
            "UtcNow": now.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "RandGuid": uuid::Uuid::new_v4().to_string(),
        }},
    })
}

/// The local host's HTTP front: forwards function routes to the handler.
pub struct LocalHost {
    functions: FunctionApp,
    handler_url: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl LocalHost {
    pub fn new(
        functions: FunctionApp,
        handler_url: String,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // The host hands responses back as they are: a redirect is the browser's to follow.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            functions,
            handler_url,
            http,
            clock,
        })
    }

    /// Starts one task per timer function; each fires its schedule until `shutdown`.
    pub fn start_timers(&self, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
        for f in &self.functions.functions {
            let Trigger::Timer {
                binding,
                schedule,
                run_on_startup,
            } = &f.trigger
            else {
                continue;
            };
            let cron = parse_ncrontab(schedule)
                .map_err(|e| anyhow::anyhow!("function {}: {e}", f.name))?;
            let (name, binding, run_now) = (f.name.clone(), binding.clone(), *run_on_startup);
            let (url, http, clock, mut shutdown) = (
                format!("{}/{}", self.handler_url, f.name),
                self.http.clone(),
                self.clock.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                let mut last: Option<DateTime<Utc>> = None;
                let mut fire_now = run_now;
                loop {
                    let now = clock.now();
                    let Ok(next) = cron.find_next_occurrence(&now, false) else {
                        tracing::error!(function = %name, "schedule has no next occurrence; timer stopped");
                        return;
                    };
                    if !fire_now {
                        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                    fire_now = false;
                    let body = timer_invocation(&name, &binding, last, next, false, clock.now());
                    let res = http
                        .post(&url)
                        .header(
                            "X-Azure-Functions-InvocationId",
                            uuid::Uuid::new_v4().to_string(),
                        )
                        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                        .header("Content-Type", "application/json; charset=utf-8")
                        .body(body.to_string())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            tracing::debug!(function = %name, "timer invocation succeeded")
                        }
                        Ok(r) => {
                            tracing::error!(function = %name, status = %r.status(), "timer invocation failed; next try at the next occurrence")
                        }
                        Err(e) => {
                            tracing::error!(function = %name, error = %e, "timer invocation failed; next try at the next occurrence")
                        }
                    }
                    last = Some(next);
                }
            });
        }
        Ok(())
    }

    async fn forward(&self, req: ApiRequest) -> Result<ApiResponse, Problem> {
        let mut url = format!("{}{}", self.handler_url, req.path);
        if !req.query.is_empty() {
            url.push('?');
            url.push_str(&req.query);
        }
        // The URL parser normalises dot segments (`%2e%2e` included): forward only when the
        // path it will send is byte for byte the one that was routed.
        let parsed = reqwest::Url::parse(&url)
            .map_err(|_| Problem::bad_request("request path cannot be forwarded"))?;
        if parsed.path() != req.path {
            return Err(Problem::bad_request(
                "request path is not in normal form (dot segments or similar); refused",
            ));
        }
        let mut headers = req.headers.clone();
        // The handler sees its own address in `Host`; the browser-visible one goes along as
        // `X-Forwarded-Host` (the dev issuer builds its sign-in URLs from it).
        if let Some(host) = headers.remove(http::header::HOST) {
            headers.insert("x-forwarded-host", host);
        }
        headers.insert(
            "x-azure-functions-invocationid",
            uuid::Uuid::new_v4()
                .to_string()
                .parse()
                .expect("uuid header"),
        );
        headers.insert(
            "x-azure-functions-hostversion",
            http::HeaderValue::from_static(HOST_VERSION),
        );
        let res = self
            .http
            .request(req.method.clone(), parsed)
            .headers(headers)
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "handler-unreachable",
                    format!("the handler did not answer: {e}"),
                )
            })?;
        let mut out = http::Response::builder().status(res.status());
        for (k, v) in res.headers() {
            out = out.header(k, v);
        }
        let body = res.bytes().await.map_err(|e| {
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "handler-unreachable",
                format!("the handler's answer broke off: {e}"),
            )
        })?;
        out.body(body).map_err(Problem::internal)
    }
}

#[async_trait]
impl Handler for LocalHost {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        // Whether a function routes the site root at all (for any method): then `/` is that
        // function's, with its 405 + Allow for other methods.
        if req.path == "/"
            && matches!(
                self.functions.route(&http::Method::GET, "/"),
                RouteMatch::NotFound
            )
        {
            let names: Vec<&str> = self
                .functions
                .functions
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            return json_response(
                StatusCode::OK,
                &json!({ "host": "qotd local", "functions": names }),
            );
        }
        // Dot segments never get here: the server refuses them before any handler runs.
        let routed = dev_issuer::is_endpoint(&req.method, &req.path)
            || match self.functions.route(&req.method, &req.path) {
                RouteMatch::Found { .. } => true,
                // CORS preflights go to the handler, which answers them.
                RouteMatch::MethodNotAllowed { .. } if req.method == http::Method::OPTIONS => true,
                RouteMatch::MethodNotAllowed { allowed } => {
                    return Problem::method_not_allowed(req.method.as_str(), &allowed)
                        .into_response();
                }
                RouteMatch::NotFound => false,
            };
        if !routed {
            return Problem::not_found(format!("no function route matches {}", req.path))
                .into_response();
        }
        self.forward(req)
            .await
            .unwrap_or_else(Problem::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ncrontab_schedules_parse_and_fire_in_utc() {
        let daily = parse_ncrontab("0 0 0 * * *").unwrap();
        let from = DateTime::parse_from_rfc3339("2026-11-27T13:45:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            daily
                .find_next_occurrence(&from, false)
                .unwrap()
                .to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        let every_30s = parse_ncrontab("*/30 * * * * *").unwrap();
        assert_eq!(
            every_30s
                .find_next_occurrence(&from, false)
                .unwrap()
                .to_rfc3339(),
            "2026-11-27T13:45:30+00:00"
        );
        assert!(
            parse_ncrontab("0 0 * * *").is_err(),
            "5 fields is not NCRONTAB"
        );
        assert!(parse_ncrontab("0 0 25 * * *").is_err());
    }
}
