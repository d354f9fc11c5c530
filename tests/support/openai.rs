//! A fake Azure OpenAI speaking chat completions: any `POST` path, `api-version` in the query,
//! `api-key` or bearer auth (recorded, not checked), Azure's reply envelope, `finish_reason`
//! values, `refusal`, error bodies and 429 with `retry-after` / `retry-after-ms`. It tells the
//! kinds of call apart by the schema name in `response_format`; by default it plays an honest
//! model that writes valid questions and answers the blind check correctly, and a test's
//! [`Script`] overrides the replies it cares about. Every request is recorded as a [`Seen`].
//! Also the always-failing endpoint the wiring tests point `qotd serve` at.

use bytes::Bytes;
use qotd::quiz::QUESTIONS_PER_QUIZ;
use qotd::quiz::openai::{DRAFT_SCHEMA, REGENERATE_SCHEMA, VERIFY_SCHEMA};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use warp::Filter;

/// The model name the fake reports in every completion.
pub const MODEL: &str = "gpt-4o-2024-08-06";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Draft,
    Regenerate,
    Verify,
    Unknown,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub headers: warp::http::HeaderMap,
    pub body: Value,
    pub kind: Kind,
    pub at: Instant,
    /// For a blind check: the question asked and the category it was written for.
    pub question: Option<String>,
    pub category: Option<String>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn user_message(&self) -> &str {
        self.body["messages"][1]["content"].as_str().unwrap_or("")
    }
}

/// A reply the server sends.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A chat completion in Azure's shape.
pub fn completion(content: Option<&str>, finish_reason: &str, refusal: Option<&str>) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_772_323_200,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "finish_reason": finish_reason,
                "message": { "role": "assistant", "content": content, "refusal": refusal }
            }],
            "usage": { "prompt_tokens": 412, "completion_tokens": 380, "total_tokens": 792 }
        }),
    )
}

pub fn answer(output: &Value) -> Reply {
    completion(Some(&output.to_string()), "stop", None)
}

pub fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

pub fn throttled() -> Reply {
    error(
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier. Please retry after 1 second.",
    )
    .with_header("x-ratelimit-remaining-requests", "0")
    .with_header("x-ratelimit-remaining-tokens", "0")
}

pub fn prompt_filtered() -> Reply {
    Reply::json(
        400,
        json!({ "error": {
            "code": "content_filter",
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "param": "prompt",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": { "filtered": true, "severity": "medium" },
                    "self_harm": { "filtered": false, "severity": "safe" },
                    "sexual": { "filtered": false, "severity": "safe" },
                    "violence": { "filtered": false, "severity": "safe" }
                }
            }
        }}),
    )
}

/// A test's override: `(request, n, model)` where `n` counts earlier requests of the same kind;
/// `None` lets the honest model reply.
pub type Script = Box<dyn Fn(&Seen, usize, &mut Model) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
pub struct Model {
    drafts: usize,
    regenerations: usize,
    /// Question text -> (category, correct choice text), for the blind check.
    written: HashMap<String, (String, String)>,
}

pub struct Server {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl Server {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn of(&self, kind: Kind) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.kind == kind).collect()
    }
}

/// The text of question `n` (1-based) of the `k`-th draft (1-based) the honest model writes.
pub fn draft_text(k: usize, n: usize, category: &str) -> String {
    format!("Draft {k} question {n}: which {category} fact is this?")
}

/// What the honest model writes for one question.
fn honest_question(model: &mut Model, text: String, slot: &Value, tag: &str, n: usize) -> Value {
    let category = slot["properties"]["category"]["enum"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let difficulty = slot["properties"]["difficulty"]["enum"][0]
        .as_str()
        .unwrap();
    let choices: Vec<String> = (0..4)
        .map(|j| format!("{category} answer {tag}.{j}"))
        .collect();
    let correct = n % 4;
    model
        .written
        .insert(text.clone(), (category.clone(), choices[correct].clone()));
    json!({
        "category": category,
        "difficulty": difficulty,
        "text": text,
        "choices": choices,
        "correct": correct,
        "explanation": format!("Because {} is the documented {category} fact.", choices[correct]),
    })
}

pub fn honest_reply(model: &mut Model, seen: &Seen) -> Reply {
    let schema = &seen.body["response_format"]["json_schema"]["schema"];
    match seen.kind {
        Kind::Draft => {
            model.drafts += 1;
            let k = model.drafts;
            let mut out = serde_json::Map::new();
            for n in 1..=QUESTIONS_PER_QUIZ {
                let key = format!("question_{n}");
                let slot = &schema["properties"][&key];
                let category = slot["properties"]["category"]["enum"][0].as_str().unwrap();
                let text = draft_text(k, n, category);
                let q = honest_question(model, text, slot, &format!("{k}-{n}"), n);
                out.insert(key, q);
            }
            answer(&Value::Object(out))
        }
        Kind::Regenerate => {
            model.regenerations += 1;
            let r = model.regenerations;
            let slot = &schema["properties"]["question"];
            let category = slot["properties"]["category"]["enum"][0].as_str().unwrap();
            let text = format!("Replacement {r}: which {category} fact is this?");
            let q = honest_question(model, text, slot, &format!("r{r}"), r);
            answer(&json!({ "question": q }))
        }
        Kind::Verify => {
            let question = seen.question.clone().unwrap_or_default();
            match model.written.get(&question) {
                Some((_, correct)) => answer(&json!({
                    "reasoning": "I know this one.",
                    "answer": correct,
                    "unambiguous": true
                })),
                None => error(400, "invalid_request", "unknown question"),
            }
        }
        Kind::Unknown => error(400, "invalid_request", "unexpected request"),
    }
}

/// A blind answer that picks a choice other than the one marked correct.
pub fn wrong_answer(model: &Model, seen: &Seen) -> Reply {
    let content: Value = serde_json::from_str(seen.user_message()).unwrap();
    let question = seen.question.as_deref().unwrap();
    let (_, correct) = &model.written[question];
    let wrong = content["choices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|c| c != correct)
        .unwrap();
    answer(&json!({
        "reasoning": "I am confidently wrong.",
        "answer": wrong,
        "unambiguous": true
    }))
}

pub async fn start(script: Script) -> Server {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let model: Arc<Mutex<Model>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let state = (
        seen.clone(),
        model,
        in_flight,
        max_in_flight.clone(),
        script,
    );
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |path: warp::path::FullPath,
                  query: String,
                  headers: warp::http::HeaderMap,
                  body: Bytes| {
                let (seen, model, in_flight, max_in_flight, script) = state.clone();
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let kind = match body["response_format"]["json_schema"]["name"].as_str() {
                        Some(DRAFT_SCHEMA) => Kind::Draft,
                        Some(REGENERATE_SCHEMA) => Kind::Regenerate,
                        Some(VERIFY_SCHEMA) => Kind::Verify,
                        _ => Kind::Unknown,
                    };
                    let question = (kind == Kind::Verify)
                        .then(|| {
                            serde_json::from_str::<Value>(
                                body["messages"][1]["content"].as_str().unwrap_or(""),
                            )
                            .ok()
                            .and_then(|c| c["question"].as_str().map(str::to_owned))
                        })
                        .flatten();
                    let category = question
                        .as_ref()
                        .and_then(|q| model.lock().unwrap().written.get(q).map(|(c, _)| c.clone()));
                    let request = Seen {
                        path: path.as_str().to_owned(),
                        query,
                        headers,
                        body,
                        kind,
                        at: Instant::now(),
                        question,
                        category,
                    };
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.iter().filter(|s| s.kind == kind).count();
                        seen.push(request.clone());
                        n
                    };
                    let reply = {
                        let mut model = model.lock().unwrap();
                        script(&request, n, &mut model)
                            .unwrap_or_else(|| honest_reply(&mut model, &request))
                    };
                    tokio::time::sleep(reply.delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let mut response = warp::http::Response::builder()
                        .status(reply.status)
                        .header("content-type", "application/json")
                        .header("apim-request-id", "00000000-0000-0000-0000-000000000000");
                    for (name, value) in &reply.headers {
                        response = response.header(*name, value);
                    }
                    response.body(reply.body).unwrap()
                }
            },
        );
    let base = serve_on_loopback!(route);
    Server {
        base,
        seen,
        max_in_flight,
    }
}

pub fn honest() -> Script {
    Box::new(|_, _, _| None)
}

/// An endpoint that answers every `POST` with 500 and records `(path?query, api-key)`.
/// Returns its base URL and the record.
pub async fn always_failing() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let calls = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let c = calls.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("api-key"))
        .map(move |path: warp::path::FullPath, query: String, key: Option<String>| {
            c.lock().unwrap().push((format!("{}?{query}", path.as_str()), key.unwrap_or_default()));
            warp::reply::with_status(
                warp::reply::json(&json!({"error": {"code": "InternalServerError", "message": "The server had an error"}})),
                warp::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        });
    (serve_on_loopback!(route), calls)
}
