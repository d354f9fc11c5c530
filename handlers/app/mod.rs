//! The composition root. `App::build` turns `Settings` into engines, adapters and the three
//! context services; `router` routes every request and invocation the Functions host sends;
//! `auth` authenticates each request once into a `RequestContext`; `views` owns the reads
//! that span contexts. Nothing outside this folder knows more than one context.

mod auth;
mod ops;
mod router;
pub mod settings;
mod views;

pub use settings::Settings;

use crate::leaderboard::{self, Leaderboard};
use crate::platform::auth::dev_issuer::DevIssuer;
use crate::platform::auth::oidc::OidcVerifier;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::functions::InvocationFailure;
use crate::platform::functions::consumer::PoisonTable;
use crate::platform::functions::local_bus::LocalBus;
use crate::platform::functions::manifest::FunctionApp;
use crate::platform::functions::protocol::InvocationResponse;
use crate::platform::outbox::{Dispatcher, EventPublisher};
use crate::platform::servicebus::ServiceBusPublisher;
use crate::platform::store::{self, EventStore};
use crate::quiz::bank::{Bank, BankGenerator};
use crate::quiz::openai::OpenAiGenerator;
use crate::quiz::{self, QuizGenerator, QuizService};
use crate::users::{self, Users};
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
    poison: PoisonTable,
    bus: Arc<LocalBus>,
    verifier: OnceLock<OidcVerifier>,
    http: reqwest::Client,
    /// The handler's own base URL, known once it is bound (`http://127.0.0.1:<port>`).
    self_url: OnceLock<String>,
}

impl App {
    /// Opens the store and wires every component on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Opens the store and wires every component, choosing each adapter from the settings:
    /// SQLite or Azure SQL; Service Bus or the local bus (which delivers events to this
    /// handler's own functions); Azure OpenAI (bank as fallback) or the bank. Every "now"
    /// comes from `clock`.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        let functions = FunctionApp::embedded()?;
        let db = store::open_with(&settings.database, &settings.sql).await?;
        let events = db.events();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let bus = Arc::new(LocalBus::new(
            functions.clone(),
            http.clone(),
            settings.data_dir.join("dead-letter.jsonl"),
            clock.clone(),
        ));
        let publisher: Arc<dyn EventPublisher> = match &settings.servicebus {
            Some(sb) => {
                tracing::info!(namespace = %sb.namespace, "publishing events to Azure Service Bus");
                Arc::new(ServiceBusPublisher::new(sb, http.clone())?)
            }
            None => bus.clone(),
        };
        let dispatcher = Arc::new(
            Dispatcher::new(events.clone(), publisher, clock.clone()).with_owner(
                crate::platform::outbox::stable_owner(
                    settings.instance_id.as_deref(),
                    &settings.data_dir,
                ),
            ),
        );
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
        Ok(Arc::new(Self {
            users: Users::new(users::store::repo(&db), clock.clone()),
            quiz: QuizService::new(quiz::store::repo(&db), generator, clock.clone()),
            leaderboard: Leaderboard::new(leaderboard::store::repo(&db), clock.clone()),
            poison: PoisonTable::new(events.clone(), clock.clone()),
            events,
            dispatcher,
            dev_issuer,
            clock,
            bus,
            verifier: OnceLock::new(),
            http,
            self_url: OnceLock::new(),
            functions,
            settings,
        }))
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
            .dispatcher
            .drain()
            .await
            .map_err(|e| InvocationFailure(e.to_string()))?;
        Ok(InvocationResponse::logs(vec![format!(
            "published {} events; {} failed and stay pending",
            outcome.published, outcome.failed
        )]))
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
