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
        let max_message_batch_size = host
            .extensions
            .service_bus
            .max_message_batch_size
            .unwrap_or(1000)
            .max(1);
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
                for path in matcher_paths(&full_route(&route_prefix, route)) {
                    routes.insert(path, i).map_err(|e| {
                        anyhow::anyhow!("function {}: route '{route}' conflicts: {e}", f.name)
                    })?;
                }
            }
        }
        Ok(Self {
            functions,
            route_prefix,
            max_message_batch_size,
            routes,
        })
    }

    /// The app with `%NAME%` app-setting references resolved the way the Functions host does
    /// (timer schedules; Service Bus topic, subscription and connection names), reading each
    /// NAME through `get`. An unresolved reference is an error naming the function and the
    /// setting, as the host refuses to index such a function. Only the local host needs this:
    /// in Azure the host resolves them itself.
    pub fn resolve_app_settings(
        &self,
        get: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut app = self.clone();
        for f in &mut app.functions {
            let resolve = |text: &mut String| -> anyhow::Result<()> {
                *text = resolve_references(text, &get)
                    .map_err(|e| anyhow::anyhow!("function {}: {e}", f.name))?;
                Ok(())
            };
            match &mut f.trigger {
                Trigger::Timer { schedule, .. } => resolve(schedule)?,
                Trigger::ServiceBus {
                    topic,
                    subscription,
                    connection,
                    ..
                } => {
                    resolve(topic)?;
                    resolve(subscription)?;
                    resolve(connection)?;
                }
                Trigger::Http { .. } => {}
            }
        }
        Ok(app)
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

/// The router paths that match what the host's ASP.NET route template matches:
/// `{name:constraint}` becomes `{name}`; an optional last parameter (`{name?}`) also matches
/// without its segment, and never with it when constrained to `maxlength(0)` (the documented
/// way to route the site root, `{ignored:maxlength(0)?}`); a catch-all (`{*name}`) also
/// matches nothing at all, with or without the slash before it.
fn matcher_paths(path: &str) -> Vec<String> {
    let (head, last) = path.rsplit_once('/').unwrap_or(("", path));
    let param = |seg: &str| -> String {
        let inner = seg.trim_start_matches('{').trim_end_matches('}');
        let name = inner.split(':').next().unwrap_or("").trim_end_matches('?');
        format!("{{{name}}}")
    };
    let strip = |p: &str| -> String {
        p.split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') && !seg.starts_with("{*") {
                    param(seg)
                } else {
                    seg.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let head = strip(head);
    let bare = if head.is_empty() {
        "/".to_owned()
    } else {
        head.clone()
    };
    if let Some(inner) = last.strip_prefix("{*").and_then(|l| l.strip_suffix('}')) {
        let name = inner.split(':').next().unwrap_or("");
        let mut out = vec![format!("{head}/{{*{name}}}"), format!("{head}/")];
        if !head.is_empty() {
            out.push(head);
        }
        return out;
    }
    if last.starts_with('{') && last.ends_with("?}") {
        if last.contains(":maxlength(0)") {
            return vec![bare];
        }
        return vec![format!("{head}/{}", param(last)), bare];
    }
    vec![strip(path)]
}

/// Replaces every `%NAME%` in `text` with `get(NAME)`; `%%` is not special. Errors name the
/// first setting that `get` does not know (or knows as empty).
pub fn resolve_references(
    text: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('%') else {
            break;
        };
        let name = &after[..len];
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'));
        if !valid {
            out.push_str(&rest[..start + 1]);
            rest = after;
            continue;
        }
        let value = get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!("'{text}' refers to the app setting {name}, which is not set")
            })?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
            many: match b
                .cardinality
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("one") => false,
                Some("many") => true,
                Some(other) => anyhow::bail!(
                    "function {name}: cardinality '{other}' is neither 'one' nor 'many'"
                ),
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
    fn root_optional_and_catch_all_templates_match_like_the_host() {
        assert_eq!(matcher_paths("/{ignored:maxlength(0)?}"), vec!["/"]);
        assert_eq!(
            matcher_paths("/play/{*path}"),
            vec!["/play/{*path}", "/play/", "/play"]
        );
        assert_eq!(matcher_paths("/api/{date:datetime}"), vec!["/api/{date}"]);
        assert_eq!(matcher_paths("/a/{page?}"), vec!["/a/{page}", "/a"]);
        let app = FunctionApp::embedded().unwrap();
        for (path, name) in [
            ("/", "WebRoot"),
            ("/play/", "WebPage"),
            ("/play", "WebPage"),
            ("/play/app.js", "WebPage"),
            ("/api/web-config", "WebConfig"),
        ] {
            assert!(
                matches!(app.route(&Method::GET, path), RouteMatch::Found { function, .. } if function.name == name),
                "{path}"
            );
        }
        assert!(matches!(
            app.route(&Method::GET, "/favicon.ico"),
            RouteMatch::NotFound
        ));
    }

    #[test]
    fn app_setting_references_resolve_like_the_host() {
        let get = |k: &str| (k == "QOTD_DISPATCH_SCHEDULE").then(|| "0 0 */2 * * *".to_owned());
        assert_eq!(
            resolve_references("%QOTD_DISPATCH_SCHEDULE%", &get).unwrap(),
            "0 0 */2 * * *"
        );
        assert_eq!(
            resolve_references("0 */5 * * * *", &get).unwrap(),
            "0 */5 * * * *"
        );
        let err = resolve_references("%NOPE%", &get).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        let app = FunctionApp::embedded().unwrap();
        let schedule = |app: &FunctionApp| match &app.get("DispatchOutbox").unwrap().trigger {
            Trigger::Timer { schedule, .. } => schedule.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(schedule(&app), "%QOTD_DISPATCH_SCHEDULE%");
        let resolved = app.resolve_app_settings(get).unwrap();
        assert_eq!(schedule(&resolved), "0 0 */2 * * *");
        let err = app.resolve_app_settings(|_| None).unwrap_err().to_string();
        assert!(
            err.contains("DispatchOutbox") && err.contains("QOTD_DISPATCH_SCHEDULE"),
            "{err}"
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
