//! The composition root. `App::build` turns `Settings` into engines, adapters and the three
//! context services; `router` routes every request and invocation the Functions host sends;
//! `auth` authenticates each request once into a `RequestContext`; `views` owns the reads
//! that span contexts. Nothing outside this folder knows more than one context.

mod auth;
mod ops;
mod router;
pub mod settings;
mod views;
mod web;

pub use settings::Settings;
pub use web::{PAGE_PATH, WebConfig};

use crate::leaderboard::{self, Leaderboard};
use crate::platform::auth::dev_issuer::DevIssuer;
use crate::platform::auth::dev_login::DevLogin;
use crate::platform::auth::oidc::OidcVerifier;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::functions::InvocationFailure;
use crate::platform::functions::consumer::PoisonTable;
use crate::platform::functions::local_bus::LocalBus;
use crate::platform::functions::manifest::FunctionApp;
use crate::platform::functions::protocol::InvocationResponse;
use crate::platform::http::Problem;
use crate::platform::http::cors::CorsPolicy;
use crate::platform::http::static_site::StaticSite;
use crate::platform::http_client::LazyClient;
use crate::platform::outbox::{Dispatcher, EventPublisher};
use crate::platform::retry::RetryPolicy;
use crate::platform::servicebus::ServiceBusPublisher;
use crate::platform::store::{self, Database, EventStore};
use crate::quiz::bank::BankGenerator;
use crate::quiz::openai::OpenAiGenerator;
use crate::quiz::{self, QuizGenerator, QuizService};
use crate::users::{self, Users};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The parts that need the database: the three context services, the outbox/poison port and
/// the dispatcher. They exist once the database is connected (see [`App::services`]).
pub struct Services {
    pub users: Users,
    pub quiz: QuizService,
    pub leaderboard: Leaderboard,
    pub events: Arc<dyn EventStore>,
    pub dispatcher: Arc<Dispatcher>,
    poison: PoisonTable,
}

/// Everything a request or invocation may need.
pub struct App {
    pub settings: Settings,
    pub functions: FunctionApp,
    pub dev_issuer: Option<DevIssuer>,
    pub clock: Arc<dyn Clock>,
    /// The dev issuer's sign-in flow (only used while `dev_issuer` is on).
    dev_login: DevLogin,
    /// The player page.
    web: StaticSite,
    cors: CorsPolicy,
    /// Filled once the database is connected (at once for SQLite; in the background for SQL
    /// Server, which may need a token and a network that are not there yet).
    services: OnceLock<Arc<Services>>,
    /// Why the database is not connected yet, for `/api/health` and 503 details.
    db_down: Mutex<String>,
    ready: tokio::sync::watch::Sender<bool>,
    generator: Arc<dyn QuizGenerator>,
    publisher: Arc<dyn EventPublisher>,
    bus: Arc<LocalBus>,
    verifier: OnceLock<OidcVerifier>,
    http: LazyClient,
    /// The handler's own base URL, known once it is bound (`http://127.0.0.1:<port>`).
    self_url: OnceLock<String>,
}

/// How long a client is asked to wait (`Retry-After`, seconds) while the database connects.
pub const DATABASE_RETRY_AFTER_SECONDS: u64 = 5;

/// Backoff of the background database connection: 1 s doubling to 60 s, for as long as it
/// takes (the host keeps the process; each failure is logged with its reason).
const CONNECT_RETRY: RetryPolicy =
    RetryPolicy::unbounded(Duration::from_secs(1), Duration::from_secs(60));

/// When the database is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Before `build` returns; a failure is `build`'s error (the CLI commands).
    Now,
    /// SQLite before `build` returns; SQL Server in the background with backoff (`serve`):
    /// the handler answers the host at once and reports the database as down until then.
    Background,
}

impl App {
    /// Wires every component on the system clock, connecting the database in the background
    /// (see [`Connect::Background`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        Self::build_with(settings, Arc::new(SystemClock), Connect::Background).await
    }

    /// Builds the outbound HTTP client in the background, shortly after the server started
    /// listening: the readiness probe is answered first, and the first outbound call
    /// (a JWKS fetch, an event delivery) rarely has to wait for the TLS roots.
    pub fn warm_up_http(&self) {
        let http = self.http.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            http.warm_up();
        });
    }

    /// Wires every component on the system clock with the database connected before it
    /// returns (CLI commands that need the database for one job).
    pub async fn build_connected(settings: Settings) -> anyhow::Result<Arc<Self>> {
        Self::build_with(settings, Arc::new(SystemClock), Connect::Now).await
    }

    /// Wires every component, choosing each adapter from the settings: SQLite or Azure SQL;
    /// Service Bus or the local bus (which delivers events to this handler's own functions);
    /// Azure OpenAI (bank as fallback) or the bank. Every "now" comes from `clock`.
    pub async fn build_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        connect: Connect,
    ) -> anyhow::Result<Arc<Self>> {
        let functions = FunctionApp::embedded()?;
        // Built on first use (or by `warm_up` once the server listens): loading the TLS
        // trust roots was the largest piece of start-up (`platform/http_client.rs`).
        let http = LazyClient::new(|| reqwest::Client::builder().pool_max_idle_per_host(64));
        let bus = Arc::new(LocalBus::new(
            functions.clone(),
            http.clone(),
            clock.clone(),
        ));
        let publisher: Arc<dyn EventPublisher> = match &settings.servicebus {
            Some(sb) => {
                tracing::info!(namespace = %sb.namespace, "publishing events to Azure Service Bus");
                Arc::new(ServiceBusPublisher::new(sb, http.clone())?)
            }
            None => bus.clone(),
        };
        let bank: Arc<dyn QuizGenerator> = Arc::new(BankGenerator::embedded());
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
        let background = connect == Connect::Background
            && matches!(settings.database, store::DatabaseUrl::Mssql(_));
        let app = Arc::new(Self {
            services: OnceLock::new(),
            db_down: Mutex::new("connecting".into()),
            ready: tokio::sync::watch::channel(false).0,
            generator,
            publisher,
            dev_issuer,
            clock,
            dev_login: DevLogin::new(),
            web: web::site(),
            cors: CorsPolicy::new(settings.web.cors_origins.clone()),
            bus,
            verifier: OnceLock::new(),
            http,
            self_url: OnceLock::new(),
            functions,
            settings,
        });
        app.bus
            .set_dead_letters(Arc::new(ops::PoisonDeadLetters(Arc::downgrade(&app))));
        if background {
            tokio::spawn(app.clone().connect_in_background());
        } else {
            let db = store::open_with(&app.settings.database, &app.settings.sql).await?;
            app.install(&db);
        }
        Ok(app)
    }

    /// Builds the services on an opened database and wakes everyone waiting for them.
    fn install(&self, db: &Database) {
        let events = db.events();
        let clock = &self.clock;
        let services = Arc::new(Services {
            users: Users::new(users::store::repo(db), clock.clone()),
            quiz: QuizService::new(quiz::store::repo(db), self.generator.clone(), clock.clone()),
            leaderboard: Leaderboard::new(leaderboard::store::repo(db), clock.clone()),
            poison: PoisonTable::new(events.clone(), clock.clone()),
            // A stable owner per instance, so a restarted instance reclaims its own leases.
            dispatcher: Arc::new(
                Dispatcher::new(events.clone(), self.publisher.clone(), clock.clone()).with_owner(
                    crate::platform::outbox::stable_owner(
                        self.settings.instance_id.as_deref(),
                        &self.settings.data_dir,
                    ),
                ),
            ),
            events,
        });
        if self.services.set(services).is_ok() {
            self.ready.send_replace(true);
        }
    }

    /// Opens the database (token, connection, migrations) until it works, with backoff; until
    /// then `/api/health` names the failure and requests that need the database get 503.
    async fn connect_in_background(self: Arc<Self>) {
        let target = self.settings.database.redacted();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A bare connection first: its error is the reason to report at once (opening runs
            // migrations, whose own connect retries would hide it for several seconds).
            let opened = match store::probe(&self.settings.database, &self.settings.sql).await {
                Ok(()) => store::open_with(&self.settings.database, &self.settings.sql).await,
                Err(e) => Err(e),
            };
            match opened {
                Ok(db) => {
                    tracing::info!(attempt, database = %target, "database connected");
                    self.install(&db);
                    return;
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    let wait = CONNECT_RETRY.delay(attempt);
                    tracing::error!(attempt, retry_in_ms = wait.as_millis() as u64, database = %target, error = %reason, "database unavailable; retrying in the background");
                    *self.db_down.lock().unwrap_or_else(|p| p.into_inner()) = reason;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The database-backed services, once connected.
    pub fn services(&self) -> Option<&Arc<Services>> {
        self.services.get()
    }

    /// Waits until the database is connected (forever if it never is).
    pub async fn ready(&self) -> Arc<Services> {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
        self.services
            .get()
            .cloned()
            .expect("ready is sent after the services are set")
    }

    /// Why the database is not connected (`None` once it is).
    pub fn database_down(&self) -> Option<String> {
        if self.services.get().is_some() {
            return None;
        }
        Some(
            self.db_down
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// The services, or the 503 a request gets while the database is still connecting.
    pub(crate) fn require(&self) -> Result<&Arc<Services>, Problem> {
        self.services.get().ok_or_else(|| {
            Problem::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not connected yet; retry shortly",
            )
            .with_header(
                http::header::RETRY_AFTER,
                DATABASE_RETRY_AFTER_SECONDS.to_string(),
            )
        })
    }

    /// Records the bound address; called once by whoever bound the listener. The local bus
    /// delivers events there.
    pub fn set_self_url(&self, url: String) {
        self.bus.attach(url.clone());
        let _ = self.self_url.set(url);
    }

    pub fn self_url(&self) -> &str {
        self.self_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1")
    }

    async fn dispatch_outbox(&self) -> Result<InvocationResponse, InvocationFailure> {
        let outcome = self
            .invocation_services()?
            .dispatcher
            .drain()
            .await
            .map_err(|e| InvocationFailure(e.to_string()))?;
        Ok(InvocationResponse::logs(vec![format!(
            "published {} events; {} failed and stay pending; {} refused by the broker and moved to the poison table",
            outcome.published, outcome.failed, outcome.poisoned
        )]))
    }

    /// Generates today's quiz if missing and publishes anything left in the outbox (crash
    /// recovery). Run in the background at start-up.
    pub async fn catch_up(&self) {
        let services = self.ready().await;
        let today = services.quiz.today();
        match services.quiz.ensure_generated(today, None).await {
            Ok(quiz::Generation::Created(_)) => {
                tracing::info!(day = %today, "generated missing quiz at start-up")
            }
            Ok(quiz::Generation::Existed(_)) => {}
            Err(e) => {
                tracing::error!(day = %today, error = %e, "could not generate today's quiz at start-up")
            }
        }
        services.dispatcher.nudge();
    }

    /// The services for a timer or Service Bus invocation; while the database is down the
    /// invocation fails (non-2xx), so the host retries or redelivers instead of acknowledging.
    pub(crate) fn invocation_services(&self) -> Result<&Arc<Services>, InvocationFailure> {
        self.services.get().ok_or_else(|| {
            InvocationFailure(format!(
                "the database is not connected yet ({}); failing so the host retries",
                self.database_down().unwrap_or_default()
            ))
        })
    }
}
