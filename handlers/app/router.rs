//! The front door: routes each request the Functions host sends, in this order:
//!
//! 1. `GET /` — the host's readiness and health probe, answered without touching anything
//!    (the same path forwarded by the host, with its invocation id header, is `WebRoot`);
//! 2. `/dev/oidc/...` — the local dev issuer and its sign-in flow, only when
//!    `QOTD_DEV_ISSUER=true`;
//! 3. CORS preflights under `/api/` (answered for `QOTD_CORS_ALLOWED_ORIGINS` only);
//! 4. function routes from function.json — forwarded or proxied HTTP functions: authenticated
//!    once here, then handed to the owning context's adapter with a `RequestContext`;
//! 5. `POST /{FunctionName}` — the invocation protocol (timers, Service Bus, non-forwarded
//!    HTTP).
//!
//! After a successful write the outbox dispatcher is nudged, so events leave at once instead of
//! on the next tick.

use super::App;
use super::auth::Access;
use crate::platform::auth::dev_issuer;
use crate::platform::functions::manifest::{RouteMatch, Trigger};
use crate::platform::functions::protocol::{InvocationRequest, InvocationResponse};
use crate::platform::functions::{InvocationFailure, invocation_reply, non_forwarded_http};
use crate::platform::http::server::Handler;
use crate::platform::http::{ApiRequest, ApiResponse, MAX_API_BODY, Problem, json_response};
use crate::{leaderboard, quiz};
use async_trait::async_trait;

/// At most `max` characters of `s`.
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
use http::{Method, StatusCode};

/// Who may call each HTTP function (every function with an HTTP trigger must be listed; a test
/// checks function.json against this table).
pub fn access_of(function: &str) -> Option<Access> {
    Some(match function {
        "Health" | "OpenApi" | "WebRoot" | "WebPage" | "WebConfig" => Access::Anonymous,
        "UsersMe"
        | "QuizToday"
        | "QuizByDate"
        | "QuizAttempts"
        | "UsersMeAttempts"
        | "UsersMeAttemptShare"
        | "QuizReportQuestion"
        | "Leaderboard"
        | "LeaderboardMe" => Access::Player,
        "AdminGenerateQuiz"
        | "AdminListReports"
        | "AdminOutboxStatus"
        | "AdminPoisonList"
        | "AdminPoisonReplay"
        | "AdminPoisonReplayAll"
        | "AdminPoisonDrop" => Access::Admin,
        _ => return None,
    })
}

impl App {
    /// Runs one HTTP function by name.
    pub async fn http_function(&self, name: &str, req: ApiRequest) -> ApiResponse {
        let Some(access) = access_of(name) else {
            return Problem::internal(format!(
                "function {name} has an HTTP trigger but no handler"
            ))
            .into_response();
        };
        let is_write = req.method == Method::POST;
        let result = match access {
            Access::Anonymous => self.anonymous_function(name, req).await,
            _ => match self.request_context(&req, access).await {
                Ok(ctx) => self.player_function(name, &ctx, req).await,
                Err(p) => Err(p),
            },
        };
        let res = result.unwrap_or_else(Problem::into_response);
        if is_write
            && res.status().is_success()
            && let Some(services) = self.services()
        {
            services.dispatcher.nudge();
        }
        res
    }

    async fn anonymous_function(
        &self,
        name: &str,
        req: ApiRequest,
    ) -> Result<ApiResponse, Problem> {
        match name {
            "Health" => {
                req.query(&[])?;
                Ok(self.health().await)
            }
            "OpenApi" => {
                req.query(&[])?;
                Ok(openapi_document())
            }
            "WebRoot" => self.web_root(&req),
            "WebPage" => self.web_page(&req),
            "WebConfig" => self.web_config_function(&req),
            other => Err(Problem::internal(format!(
                "anonymous function {other} has no handler"
            ))),
        }
    }

    async fn player_function(
        &self,
        name: &str,
        ctx: &crate::platform::http::RequestContext,
        req: ApiRequest,
    ) -> Result<ApiResponse, Problem> {
        let services = self.require()?;
        let q = &services.quiz;
        let board = &services.leaderboard;
        match name {
            "UsersMe" => self.users_me(ctx, req).await,
            "QuizToday" => quiz::http::today(q, ctx, req).await,
            "QuizByDate" => quiz::http::by_date(q, ctx, req).await,
            "QuizAttempts" => quiz::http::submit(q, ctx, req, self.registered_name(ctx)).await,
            "UsersMeAttempts" => quiz::http::history(q, ctx, req).await,
            "UsersMeAttemptShare" => quiz::http::share(q, ctx, req).await,
            "AdminGenerateQuiz" => quiz::http::admin_generate(q, ctx, req).await,
            "QuizReportQuestion" => quiz::http::report(q, ctx, req).await,
            "AdminListReports" => quiz::http::admin_reports(q, ctx, req).await,
            "Leaderboard" => leaderboard::http::board(board, ctx, req).await,
            "LeaderboardMe" => leaderboard::http::me(board, ctx, req).await,
            "AdminOutboxStatus" => self.http_outbox_status(req).await,
            "AdminPoisonList" => self.http_poison_list(req).await,
            "AdminPoisonReplay" => self.http_poison_replay(req).await,
            "AdminPoisonReplayAll" => self.http_poison_replay_all(req).await,
            "AdminPoisonDrop" => self.http_poison_drop(req).await,
            other => Err(Problem::internal(format!(
                "function {other} has an HTTP trigger but no handler"
            ))),
        }
    }

    /// Runs one non-HTTP function by name with its invocation payload.
    pub async fn invoke(
        &self,
        name: &str,
        inv: &InvocationRequest,
    ) -> Result<InvocationResponse, InvocationFailure> {
        let services = self.invocation_services()?;
        self.invoke_with(name, inv, &services.poison).await
    }

    /// `invoke` with the poison table consumers report to (a replay passes its own).
    pub(super) async fn invoke_with(
        &self,
        name: &str,
        inv: &InvocationRequest,
        poison: &crate::platform::functions::consumer::PoisonTable,
    ) -> Result<InvocationResponse, InvocationFailure> {
        let binding = match self.functions.get(name).map(|f| &f.trigger) {
            Some(Trigger::Timer { binding, .. } | Trigger::ServiceBus { binding, .. }) => {
                binding.clone()
            }
            _ => {
                return Err(InvocationFailure(format!(
                    "{name} is not a timer or Service Bus function"
                )));
            }
        };
        let services = self.invocation_services()?;
        let board = &services.leaderboard;
        match name {
            "GenerateDailyQuiz" => {
                let res = quiz::timer::generate_daily_quiz(&services.quiz, inv, &binding).await;
                services.dispatcher.nudge();
                res
            }
            "DispatchOutbox" => self.dispatch_outbox().await,
            "LeaderboardOnUserRegistered" => {
                leaderboard::consumers::on_user_registered(board, poison, inv, &binding).await
            }
            "LeaderboardOnQuizGenerated" => {
                leaderboard::consumers::on_quiz_generated(board, poison, inv, &binding).await
            }
            "LeaderboardOnAttemptEvaluated" => {
                leaderboard::consumers::on_attempt_evaluated(board, poison, inv, &binding).await
            }
            other => Err(InvocationFailure(format!(
                "function {other} has no handler"
            ))),
        }
    }

    /// `GET /api/health`: 200 when the database answers; otherwise 503 problem+json whose
    /// detail names what is down and why (e.g. `database: cannot get an Entra token for Azure
    /// SQL: …` while the background connection is still failing).
    async fn health(&self) -> ApiResponse {
        let down = match self.services() {
            None => Some(format!(
                "database: {}",
                self.database_down().unwrap_or_default()
            )),
            Some(s) => s
                .events
                .ping()
                .await
                .err()
                .map(|e| format!("database: {e}")),
        };
        match down {
            None => json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "version": env!("CARGO_PKG_VERSION"),
                    "checks": { "database": "ok" },
                }),
            ),
            Some(detail) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                clip(&detail, 600),
            )
            .with_header(
                http::header::RETRY_AFTER,
                super::DATABASE_RETRY_AFTER_SECONDS.to_string(),
            )
            .into_response(),
        }
    }

    fn dev_oidc(&self, req: &ApiRequest) -> ApiResponse {
        let path = req.path.as_str();
        let Some(issuer) = &self.dev_issuer else {
            return Problem::not_found(format!("no route for {path}")).into_response();
        };
        if let Some(res) = self.dev_login.handle(issuer, req) {
            return res;
        }
        if req.method != Method::GET {
            return Problem::method_not_allowed(req.method.as_str(), &["GET".into()])
                .into_response();
        }
        match path.strip_prefix(dev_issuer::BASE_PATH) {
            Some("/.well-known/openid-configuration") => json_response(
                StatusCode::OK,
                &issuer.discovery(&super::web::public_origin(req, self.self_url())),
            ),
            Some("/keys") => json_response(StatusCode::OK, &issuer.jwks()),
            _ => Problem::not_found(format!("no dev issuer document at {path}")).into_response(),
        }
    }
}

/// `GET /api/openapi.yaml`: the contract this very binary was built with.
fn openapi_document() -> ApiResponse {
    static SPEC: &str = include_str!("../../openapi.yaml");
    let mut res = http::Response::new(bytes::Bytes::from_static(SPEC.as_bytes()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/yaml"),
    );
    res
}

#[async_trait]
impl Handler for App {
    /// Function routes take API bodies (64 KiB); `POST /{FunctionName}` invocations, sent by
    /// the host on loopback, up to the server's 4 MiB.
    fn body_limit(&self, method: &Method, path: &str) -> usize {
        // Runs on every request: the route table is consulted only for a POST that names a
        // function (`route` matches the request again anyway).
        let invocation = *method == Method::POST
            && self.functions.get(path.trim_start_matches('/')).is_some()
            && matches!(self.functions.route(method, path), RouteMatch::NotFound);
        if invocation {
            crate::platform::http::server::MAX_BODY
        } else {
            MAX_API_BODY
        }
    }

    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        if req.path == "/" && req.header("x-azure-functions-invocationid").is_none() {
            return json_response(StatusCode::OK, &serde_json::json!({}));
        }
        if req.path.starts_with(dev_issuer::BASE_PATH) {
            return self.dev_oidc(&req);
        }
        if !req.path.starts_with("/api/") {
            return self.route(req).await;
        }
        if let Some(preflight) = self.cors.preflight(&req) {
            return preflight;
        }
        // Only the Origin header is needed afterwards: no copy of the request on the hot path.
        let origin = req.header("origin").map(str::to_owned);
        let mut res = self.route(req).await;
        self.cors.decorate(origin.as_deref(), &mut res);
        res
    }
}

impl App {
    async fn route(&self, mut req: ApiRequest) -> ApiResponse {
        match self.functions.route(&req.method, &req.path) {
            RouteMatch::Found { function, params } => {
                if req.body.len() > MAX_API_BODY {
                    return Problem::payload_too_large(MAX_API_BODY).into_response();
                }
                req.params = params;
                let name = function.name.clone();
                return self.http_function(&name, req).await;
            }
            RouteMatch::MethodNotAllowed { allowed } => {
                return Problem::method_not_allowed(req.method.as_str(), &allowed).into_response();
            }
            RouteMatch::NotFound => {}
        }
        let name = req.path.trim_start_matches('/');
        let Some(function) = self.functions.get(name) else {
            return Problem::not_found(format!(
                "no function or route named '{}'",
                name.chars().take(100).collect::<String>()
            ))
            .into_response();
        };
        if req.method != Method::POST {
            return Problem::method_not_allowed(req.method.as_str(), &["POST".into()])
                .into_response();
        }
        let inv: InvocationRequest = match serde_json::from_slice(&req.body) {
            Ok(inv) => inv,
            Err(e) => {
                return invocation_reply(
                    StatusCode::BAD_REQUEST,
                    InvocationResponse::logs(vec![format!(
                        "invocation body is not valid JSON: {e}"
                    )]),
                );
            }
        };
        let name = function.name.clone();
        if let Trigger::Http { binding, .. } = &function.trigger {
            return non_forwarded_http(&self.functions, binding, &inv, |req| {
                self.http_function(&name, req)
            })
            .await;
        }
        match self.invoke(&name, &inv).await {
            Ok(res) => invocation_reply(StatusCode::OK, res),
            Err(failure) => {
                tracing::error!(function = %name, error = %failure, "invocation failed; the host will retry");
                invocation_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    InvocationResponse::logs(vec![failure.0]),
                )
            }
        }
    }
}
