//! The function app as declared in `functions/*/function.json` and `host.json`: the single
//! source of truth for triggers, routes, schedules, topics and subscriptions. The handler's
//! router, the local host and (via Terraform's own reading of the same files) the cloud
//! resources all derive from it.

use crate::embedded::{FUNCTION_JSON, HOST_JSON};
use http::Method;
use serde::Deserialize;
use std::collections::HashMap;

/// How a function is triggered, with the settings the runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Http {
        binding: String,
        methods: Vec<Method>,
        route: String,
    },
    Timer {
        binding: String,
        schedule: String,
        run_on_startup: bool,
    },
    ServiceBus {
        binding: String,
        topic: String,
        subscription: String,
        connection: String,
        /// `"cardinality": "many"`: the host delivers messages in batches of up to
        /// [`FunctionApp::max_message_batch_size`] (one invocation, arrays in `Data` and
        /// `Metadata`, see `protocol::InvocationRequest::service_bus_messages`).
        many: bool,
    },
}

/// One function folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    pub name: String,
    pub trigger: Trigger,
}

/// All functions plus the host settings that shape their URLs.
#[derive(Debug, Clone)]
pub struct FunctionApp {
    pub functions: Vec<FunctionDef>,
    /// `extensions.http.routePrefix` (default `api`; qotd sets `""` and spells `api/` in each
    /// route, because the host rejects routes that start with `admin`).
    pub route_prefix: String,
    /// `extensions.serviceBus.maxMessageBatchSize` (the extension's default: 1000): the most
    /// messages one invocation of a `"cardinality": "many"` function carries.
    pub max_message_batch_size: usize,
    routes: matchit::Router<usize>,
}

/// Where an HTTP request lands.
#[derive(Debug)]
pub enum RouteMatch<'a> {
    Found {
        function: &'a FunctionDef,
        params: HashMap<String, String>,
    },
    MethodNotAllowed {
        allowed: Vec<String>,
    },
    NotFound,
}

#[derive(Deserialize)]
struct RawFunction {
    bindings: Vec<RawBinding>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBinding {
    #[serde(rename = "type")]
    kind: String,
    direction: String,
    name: String,
    #[serde(default)]
    methods: Vec<String>,
    route: Option<String>,
    schedule: Option<String>,
    #[serde(default)]
    run_on_startup: bool,
    topic_name: Option<String>,
    subscription_name: Option<String>,
    connection: Option<String>,
    cardinality: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawHost {
    #[serde(default)]
    extensions: RawExtensions,
}
#[derive(Deserialize, Default)]
struct RawExtensions {
    #[serde(default)]
    http: RawHttp,
    #[serde(default, rename = "serviceBus")]
    service_bus: RawServiceBus,
}
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawServiceBus {
    max_message_batch_size: Option<usize>,
}
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawHttp {
    route_prefix: Option<String>,
}

impl FunctionApp {
    /// The definitions embedded in this binary at build time.
    pub fn embedded() -> anyhow::Result<Self> {
        Self::parse(FUNCTION_JSON, HOST_JSON)
    }

    /// Parses `(name, function.json)` pairs and host.json; errors name the function and field.
    pub fn parse(files: &[(&str, &str)], host_json: &str) -> anyhow::Result<Self> {
        let host: RawHost = serde_json::from_str(host_json)
            .map_err(|e| anyhow::anyhow!("host.json is not valid: {e}"))?;
        let route_prefix = host
            .extensions
            .http
            .route_prefix
            .unwrap_or_else(|| "api".into())
            .trim_matches('/')
            .to_owned();
        let max_message_batch_size = host.extensions.service_bus.max_message_batch_size.unwrap_or(1000).max(1);
        let mut functions = Vec::new();
        for (name, json) in files {
            let raw: RawFunction = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("functions/{name}/function.json is not valid: {e}"))?;
            if raw.disabled {
                continue;
            }
            functions.push(FunctionDef {
                name: (*name).to_owned(),
                trigger: trigger_of(name, raw.bindings)?,
            });
        }
        let mut routes = matchit::Router::new();
        for (i, f) in functions.iter().enumerate() {
            if let Trigger::Http { route, .. } = &f.trigger {
                routes
                    .insert(full_route(&route_prefix, route), i)
                    .map_err(|e| {
                        anyhow::anyhow!("function {}: route '{route}' conflicts: {e}", f.name)
                    })?;
            }
        }
        Ok(Self {
            functions,
            route_prefix,
            max_message_batch_size,
            routes,
        })
    }

    pub fn get(&self, name: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Resolves a request path (including the route prefix) and method to an HTTP function.
    pub fn route(&self, method: &Method, path: &str) -> RouteMatch<'_> {
        let Ok(m) = self.routes.at(path) else {
            return RouteMatch::NotFound;
        };
        let function = &self.functions[*m.value];
        let Trigger::Http { methods, .. } = &function.trigger else {
            return RouteMatch::NotFound;
        };
        if !methods.contains(method) {
            return RouteMatch::MethodNotAllowed {
                allowed: methods.iter().map(ToString::to_string).collect(),
            };
        }
        let params = m
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        RouteMatch::Found { function, params }
    }

    /// Functions subscribed to `topic`, with their subscription names.
    pub fn subscribers<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a FunctionDef> + 'a {
        self.functions.iter().filter(
            move |f| matches!(&f.trigger, Trigger::ServiceBus { topic: t, .. } if t == topic),
        )
    }
}

/// The URL path of a route template: `/{prefix}/{route}`, or `/{route}` with an empty prefix.
fn full_route(prefix: &str, route: &str) -> String {
    let route = route.trim_start_matches('/');
    if prefix.is_empty() {
        format!("/{route}")
    } else {
        format!("/{prefix}/{route}")
    }
}

fn trigger_of(name: &str, bindings: Vec<RawBinding>) -> anyhow::Result<Trigger> {
    let mut triggers = bindings
        .into_iter()
        .filter(|b| b.direction == "in" && b.kind.ends_with("Trigger"));
    let b = triggers
        .next()
        .ok_or_else(|| anyhow::anyhow!("function {name} has no trigger binding"))?;
    if triggers.next().is_some() {
        anyhow::bail!("function {name} has more than one trigger binding");
    }
    let need = |v: Option<String>, field: &str| {
        v.ok_or_else(|| anyhow::anyhow!("function {name}: {} binding needs '{field}'", b.kind))
    };
    Ok(match b.kind.as_str() {
        "httpTrigger" => {
            let methods = if b.methods.is_empty() {
                vec!["get".to_owned(), "post".to_owned()]
            } else {
                b.methods.clone()
            };
            let methods = methods
                .iter()
                .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("function {name}: bad method: {e}"))?;
            Trigger::Http {
                binding: b.name.clone(),
                methods,
                route: b.route.clone().unwrap_or_else(|| name.to_owned()),
            }
        }
        "timerTrigger" => Trigger::Timer {
            binding: b.name.clone(),
            schedule: need(b.schedule.clone(), "schedule")?,
            run_on_startup: b.run_on_startup,
        },
        "serviceBusTrigger" => Trigger::ServiceBus {
            binding: b.name.clone(),
            topic: need(b.topic_name.clone(), "topicName")?,
            subscription: need(b.subscription_name.clone(), "subscriptionName")?,
            connection: need(b.connection.clone(), "connection")?,
            many: match b.cardinality.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("one") => false,
                Some("many") => true,
                Some(other) => anyhow::bail!("function {name}: cardinality '{other}' is neither 'one' nor 'many'"),
            },
        },
        other => anyhow::bail!("function {name}: trigger type '{other}' is not supported by qotd"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_app_of_the_host_fixtures_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/functions-host/app");
        let read = |n: &str| std::fs::read_to_string(dir.join(n).join("function.json")).unwrap();
        let (a, b, c) = (
            read("QuizReportQuestion"),
            read("LeaderboardOnAttemptEvaluated"),
            read("GenerateDailyQuiz"),
        );
        let host = std::fs::read_to_string(dir.join("host.json")).unwrap();
        let app = FunctionApp::parse(
            &[
                ("QuizReportQuestion", &a),
                ("LeaderboardOnAttemptEvaluated", &b),
                ("GenerateDailyQuiz", &c),
            ],
            &host,
        )
        .unwrap();
        let path = "/api/quizzes/2026-02-10/questions/ai-2026-02-10-3/reports";
        match app.route(&Method::POST, path) {
            RouteMatch::Found { function, params } => {
                assert_eq!(function.name, "QuizReportQuestion");
                assert_eq!(params["date"], "2026-02-10");
                assert_eq!(params["questionId"], "ai-2026-02-10-3");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            app.route(&Method::GET, path),
            RouteMatch::MethodNotAllowed { .. }
        ));
        assert_eq!(app.subscribers("quiz-attempt-evaluated").count(), 1);
        assert!(
            matches!(app.get("GenerateDailyQuiz").unwrap().trigger, Trigger::Timer { ref schedule, .. } if schedule == "0 0 0 * * *")
        );
    }

    #[test]
    fn literal_routes_win_over_parameters_and_bad_files_name_the_function() {
        let app = FunctionApp::embedded().unwrap();
        assert!(
            matches!(app.route(&Method::GET, "/api/quizzes/today"), RouteMatch::Found { function, .. } if function.name == "QuizToday")
        );
        assert!(
            matches!(app.route(&Method::GET, "/api/quizzes/2026-11-27"), RouteMatch::Found { function, .. } if function.name == "QuizByDate")
        );
        assert!(matches!(
            app.route(&Method::GET, "/api/nope"),
            RouteMatch::NotFound
        ));
        assert!(matches!(
            app.route(&Method::GET, "/quizzes/today"),
            RouteMatch::NotFound
        ));
        let err = FunctionApp::parse(
            &[(
                "Broken",
                r#"{"bindings":[{"type":"timerTrigger","direction":"in","name":"t"}]}"#,
            )],
            "{}",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("Broken") && err.to_string().contains("schedule"),
            "{err}"
        );
    }
}
