//! The composition root and the handler's front door. `App::build` wires settings to stores,
//! services, the verifier and the dispatcher; `App` implements `Handler`, routing each request
//! the way the Functions host sends it:
//!
//! - `GET /` — readiness/health probe of the host, answered without touching anything;
//! - `/{routePrefix}/...` — forwarded or proxied HTTP functions, routed by their function.json;
//! - `POST /{FunctionName}` — the invocation protocol (timers, Service Bus, non-forwarded HTTP);
//! - `/dev/oidc/...` — the local dev issuer, only when `QOTD_DEV_ISSUER=true`.
//!
//! HTTP adapters may call another context's *service* for a query (is the caller registered?
//! what are their stats?) but never another context's repository; state changes cross
//! contexts only as events.

use crate::leaderboard::{self, Leaderboard};
use crate::platform::auth::dev_issuer::{self, DevIssuer};
use crate::platform::auth::oidc::{OidcSettings, OidcVerifier};
use crate::platform::auth::{AuthError, Principal, bearer_token};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config::Settings;
use crate::platform::functions::local_bus::LocalBus;
use crate::platform::functions::manifest::{FunctionApp, RouteMatch, Trigger};
use crate::platform::functions::protocol::{InvocationRequest, InvocationResponse};
use crate::platform::functions::{invocation_reply, non_forwarded_http};
use crate::platform::http::server::Handler;
use crate::platform::http::{ApiRequest, ApiResponse, MAX_API_BODY, Problem, json_response};
use crate::platform::outbox::{Dispatcher, EventPublisher};
use crate::platform::servicebus::ServiceBusPublisher;
use crate::platform::store::{self, EventStore, Stores};
use crate::quiz::QuizGenerator;
use crate::quiz::bank::{Bank, BankGenerator};
use crate::quiz::openai::OpenAiGenerator;
use crate::quiz::{self, QuizService};
use crate::users::{self, Users};
use async_trait::async_trait;
use http::{Method, StatusCode};
use std::sync::{Arc, OnceLock};

/// Everything a request or invocation may need.
pub struct App {
    pub settings: Settings,
    pub functions: FunctionApp,
    pub users: Users,
    pub quiz: QuizService,
    pub leaderboard: Leaderboard,
    pub events: Arc<dyn EventStore>,
    pub dispatcher: Arc<Dispatcher>,
    pub dev_issuer: Option<DevIssuer>,
    pub clock: Arc<dyn Clock>,
    verifier: OnceLock<OidcVerifier>,
    http: reqwest::Client,
    /// The handler's own base URL, known once it is bound (`http://127.0.0.1:<port>`).
    self_url: OnceLock<String>,
}

/// Why an invocation failed; the host retries (Service Bus redelivers) on any of these.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvocationFailure(pub String);

impl App {
    /// Opens the store and wires every component, choosing each adapter from the settings:
    /// SQLite or Azure SQL; Service Bus or the local bus (which delivers events to this
    /// handler's own functions); Azure OpenAI (bank as fallback) or the bank.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let functions = FunctionApp::embedded()?;
        let stores: Stores = store::open_with(&settings.database, &settings.sql).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let bus = Arc::new(LocalBus::new(
            functions.clone(),
            http.clone(),
            settings.data_dir.join("dead-letter.jsonl"),
        ));
        let publisher: Arc<dyn EventPublisher> = match &settings.servicebus {
            Some(sb) => {
                tracing::info!(namespace = %sb.namespace, "publishing events to Azure Service Bus");
                Arc::new(ServiceBusPublisher::new(sb, http.clone())?)
            }
            None => bus.clone(),
        };
        let dispatcher = Arc::new(Dispatcher::new(
            stores.events.clone(),
            publisher,
            clock.clone(),
        ));
        let bank: Arc<dyn QuizGenerator> = Arc::new(BankGenerator::new(Bank::embedded()));
        let generator: Arc<dyn QuizGenerator> = match &settings.openai {
            Some(ai) => {
                let credential = if ai.uses_entra() {
                    Some(settings.credential.build()?)
                } else {
                    None
                };
                tracing::info!(deployment = %ai.deployment, "generating quizzes with Azure OpenAI (bank as fallback)");
                Arc::new(OpenAiGenerator::new(
                    ai.clone(),
                    http.clone(),
                    credential,
                    bank,
                )?)
            }
            None => bank,
        };
        let dev_issuer = if settings.auth.dev_issuer {
            Some(DevIssuer::load_or_create(&settings.data_dir)?)
        } else {
            None
        };
        let app = Arc::new(Self {
            users: Users::new(stores.users.clone(), clock.clone()),
            quiz: QuizService::new(stores.quiz.clone(), generator, clock.clone()),
            leaderboard: Leaderboard::new(stores.leaderboard.clone()),
            events: stores.events.clone(),
            dispatcher,
            dev_issuer,
            clock,
            verifier: OnceLock::new(),
            http,
            self_url: OnceLock::new(),
            functions,
            settings,
        });
        bus.attach(Arc::downgrade(&app));
        Ok(app)
    }

    /// Records the bound address; called once by whoever bound the listener.
    pub fn set_self_url(&self, url: String) {
        let _ = self.self_url.set(url);
    }

    pub fn self_url(&self) -> &str {
        self.self_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1")
    }

    fn verifier(&self) -> &OidcVerifier {
        self.verifier.get_or_init(|| {
            let a = &self.settings.auth;
            let metadata_url = a
                .metadata_url
                .clone()
                .unwrap_or_else(|| dev_issuer::metadata_url(self.self_url()));
            OidcVerifier::new(
                OidcSettings {
                    metadata_url,
                    audiences: a.audiences.clone(),
                    subject_claim: a.subject_claim.clone(),
                    roles_claim: a.roles_claim.clone(),
                    leeway: std::time::Duration::from_secs(30),
                    min_refresh: a.min_jwks_refresh,
                },
                self.http.clone(),
            )
        })
    }

    /// The caller behind the request's bearer token, or a 401 problem saying why not.
    pub async fn authenticate(&self, req: &ApiRequest) -> Result<Principal, Problem> {
        let token = bearer_token(req.header("authorization"))
            .map_err(|e| Problem::unauthorized(e.to_string()))?;
        self.verifier().verify(token).await.map_err(|e| match e {
            AuthError::Rejected(why) => Problem::unauthorized(why),
            AuthError::IssuerUnavailable(why) => Problem::unavailable(why),
        })
    }

    /// Like `authenticate`, and the caller must hold `role` (403 otherwise).
    pub async fn authorize(&self, req: &ApiRequest, role: &str) -> Result<Principal, Problem> {
        let p = self.authenticate(req).await?;
        if p.has_role(role) {
            Ok(p)
        } else {
            Err(Problem::forbidden(format!(
                "this operation requires the '{role}' role"
            )))
        }
    }

    /// The id tying events to the request that caused them.
    pub fn correlation_id(req: &ApiRequest) -> Option<String> {
        [
            "x-correlation-id",
            "x-ms-invocation-id",
            "x-azure-functions-invocationid",
        ]
        .iter()
        .find_map(|h| req.header(h))
        .map(|v| v.chars().take(128).collect())
    }

    /// Runs one HTTP function by name.
    pub async fn http_function(&self, name: &str, req: ApiRequest) -> ApiResponse {
        let result = match name {
            "Health" => match req.query(&[]) {
                Ok(_) => return self.health().await,
                Err(p) => Err(p),
            },
            "UsersMe" => users::http::me(self, req).await,
            "QuizToday" => quiz::http::today(self, req).await,
            "QuizByDate" => quiz::http::by_date(self, req).await,
            "QuizAttempts" => quiz::http::submit(self, req).await,
            "UsersMeAttempts" => quiz::http::history(self, req).await,
            "UsersMeAttemptShare" => quiz::http::share(self, req).await,
            "AdminGenerateQuiz" => quiz::http::admin_generate(self, req).await,
            "QuizReportQuestion" => quiz::http::report(self, req).await,
            "AdminListReports" => quiz::http::admin_reports(self, req).await,
            "Leaderboard" => leaderboard::http::board(self, req).await,
            "LeaderboardMe" => leaderboard::http::me(self, req).await,
            other => Err(Problem::internal(format!(
                "function {other} has an HTTP trigger but no handler"
            ))),
        };
        result.unwrap_or_else(Problem::into_response)
    }

    /// Runs one non-HTTP function by name with its invocation payload.
    pub async fn invoke(
        &self,
        name: &str,
        inv: &InvocationRequest,
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
        match name {
            "GenerateDailyQuiz" => quiz::timer::generate_daily_quiz(self, inv, &binding).await,
            "DispatchOutbox" => self.dispatch_outbox().await,
            "LeaderboardOnUserRegistered" => {
                leaderboard::consumers::on_user_registered(self, inv, &binding).await
            }
            "LeaderboardOnQuizGenerated" => {
                leaderboard::consumers::on_quiz_generated(self, inv, &binding).await
            }
            "LeaderboardOnAttemptEvaluated" => {
                leaderboard::consumers::on_attempt_evaluated(self, inv, &binding).await
            }
            other => Err(InvocationFailure(format!(
                "function {other} has no handler"
            ))),
        }
    }

    async fn dispatch_outbox(&self) -> Result<InvocationResponse, InvocationFailure> {
        let outcome = self
            .dispatcher
            .drain()
            .await
            .map_err(|e| InvocationFailure(e.to_string()))?;
        Ok(InvocationResponse::logs(vec![format!(
            "published {} events; {} failed and stay pending",
            outcome.published, outcome.failed
        )]))
    }

    async fn health(&self) -> ApiResponse {
        let db_ok = self.events.ping().await.is_ok();
        let status = if db_ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(
            status,
            &serde_json::json!({
                "status": if db_ok { "ok" } else { "unavailable" },
                "version": env!("CARGO_PKG_VERSION"),
                "checks": { "database": if db_ok { "ok" } else { "unavailable" } },
            }),
        )
    }

    fn dev_oidc(&self, path: &str) -> ApiResponse {
        let Some(issuer) = &self.dev_issuer else {
            return Problem::not_found(format!("no route for {path}")).into_response();
        };
        match path.strip_prefix(dev_issuer::BASE_PATH) {
            Some("/.well-known/openid-configuration") => {
                json_response(StatusCode::OK, &issuer.discovery(self.self_url()))
            }
            Some("/keys") => json_response(StatusCode::OK, &issuer.jwks()),
            _ => Problem::not_found(format!("no dev issuer document at {path}")).into_response(),
        }
    }

    /// Generates today's quiz if missing and publishes anything left in the outbox (crash
    /// recovery). Run in the background at start-up.
    pub async fn catch_up(&self) {
        let today = self.quiz.today();
        match self.quiz.ensure_generated(today, None).await {
            Ok(quiz::Generation::Created(_)) => {
                tracing::info!(day = %today, "generated missing quiz at start-up")
            }
            Ok(quiz::Generation::Existed(_)) => {}
            Err(e) => {
                tracing::error!(day = %today, error = %e, "could not generate today's quiz at start-up")
            }
        }
        self.dispatcher.nudge();
    }
}

#[async_trait]
impl Handler for App {
    async fn handle(&self, mut req: ApiRequest) -> ApiResponse {
        if req.path == "/" {
            return json_response(StatusCode::OK, &serde_json::json!({}));
        }
        if req.path.starts_with(dev_issuer::BASE_PATH) && req.method == Method::GET {
            return self.dev_oidc(&req.path);
        }
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
        if let Trigger::Http { binding, .. } = &function.trigger {
            return non_forwarded_http(self, &function.name.clone(), binding, &inv).await;
        }
        match self.invoke(&function.name.clone(), &inv).await {
            Ok(res) => invocation_reply(StatusCode::OK, res),
            Err(failure) => {
                tracing::error!(function = %function.name, error = %failure, "invocation failed; the host will retry");
                invocation_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    InvocationResponse::logs(vec![failure.0]),
                )
            }
        }
    }
}
