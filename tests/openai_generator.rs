//! The Azure OpenAI quiz generator against a local warp server that behaves like Azure OpenAI
//! chat completions: the documented paths, `api-version`, `api-key` or bearer auth, the reply
//! envelope, `finish_reason` values, `refusal`, error bodies and 429 with `retry-after` /
//! `retry-after-ms`. The server tells the kinds of call apart by the schema name in
//! `response_format`; by default it plays an honest model that writes valid questions and
//! answers the blind check correctly, and each test overrides the replies it cares about.

mod common;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use bytes::Bytes;
use common::FakeCredential;
use qotd::kernel::QuizDay;
use qotd::quiz::bank::{Bank, BankGenerator};
use qotd::quiz::openai::{
    DRAFT_ATTEMPTS, DRAFT_SCHEMA, OpenAiGenerator, OpenAiSettings, REGENERATE_SCHEMA,
    REGENERATE_TRIES, TOKEN_SCOPE, VERIFY_SCHEMA, day_plan,
};
use qotd::quiz::{Generated, QUESTIONS_PER_QUIZ, Quiz, QuizGenerator, QuizSource, RecentQuestions};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use warp::Filter;

const DEPLOYMENT: &str = "quiz-gpt4o";
const MODEL: &str = "gpt-4o-2024-08-06";
const KEY: &str = "test-key-0123456789abcdef";

fn day() -> QuizDay {
    QuizDay::parse("2026-03-01").unwrap()
}

// ---------------------------------------------------------------------------------------------
// The fake Azure OpenAI
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Draft,
    Regenerate,
    Verify,
    Unknown,
}

/// One request the server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: warp::http::HeaderMap,
    body: Value,
    kind: Kind,
    at: Instant,
    /// For a blind check: the question asked and the category it was written for.
    question: Option<String>,
    category: Option<String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn user_message(&self) -> &str {
        self.body["messages"][1]["content"].as_str().unwrap_or("")
    }
}

/// A reply the server sends.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A chat completion in Azure's shape.
fn completion(content: Option<&str>, finish_reason: &str, refusal: Option<&str>) -> Reply {
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

fn answer(output: &Value) -> Reply {
    completion(Some(&output.to_string()), "stop", None)
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

fn throttled() -> Reply {
    error(
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier. Please retry after 1 second.",
    )
    .with_header("x-ratelimit-remaining-requests", "0")
    .with_header("x-ratelimit-remaining-tokens", "0")
}

fn prompt_filtered() -> Reply {
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
type Script = Box<dyn Fn(&Seen, usize, &mut Model) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Model {
    drafts: usize,
    regenerations: usize,
    /// Question text -> (category, correct choice text), for the blind check.
    written: HashMap<String, (String, String)>,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn of(&self, kind: Kind) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.kind == kind).collect()
    }
}

/// The text of question `n` (1-based) of the `k`-th draft (1-based) the honest model writes.
fn draft_text(k: usize, n: usize, category: &str) -> String {
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

fn honest_reply(model: &mut Model, seen: &Seen) -> Reply {
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
fn wrong_answer(model: &Model, seen: &Seen) -> Reply {
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

async fn start(script: Script) -> Server {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Server {
        base,
        seen,
        max_in_flight,
    }
}

fn honest() -> Script {
    Box::new(|_, _, _| None)
}

// ---------------------------------------------------------------------------------------------
// The generator under test
// ---------------------------------------------------------------------------------------------

fn settings(server: &Server, style: &str, key: Option<&str>) -> OpenAiSettings {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("QOTD_OPENAI_ENDPOINT", server.base.clone()),
        ("QOTD_OPENAI_DEPLOYMENT", DEPLOYMENT.to_owned()),
        ("QOTD_OPENAI_API_STYLE", style.to_owned()),
        ("QOTD_OPENAI_TIMEOUT_SECONDS", "10".to_owned()),
        ("QOTD_OPENAI_MAX_SECONDS", "30".to_owned()),
    ]);
    if let Some(key) = key {
        vars.insert("QOTD_OPENAI_API_KEY", key.to_owned());
    }
    let mut s = OpenAiSettings::from_lookup(|k| vars.get(k).cloned())
        .unwrap()
        .expect("the endpoint is set");
    // Keep backoff short so the tests stay fast; the waits the server asks for are honoured.
    s.retry.base_delay = Duration::from_millis(20);
    s.retry.max_delay = Duration::from_millis(100);
    s
}

fn generator(s: OpenAiSettings, credential: Option<Arc<dyn TokenCredential>>) -> OpenAiGenerator {
    OpenAiGenerator::new(
        s,
        reqwest::Client::new(),
        credential,
        Arc::new(BankGenerator::new(Bank::embedded())),
    )
    .unwrap()
}

/// Captured log output, so a test can check what an alert query would match.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs one generation with logs captured (the test runtime is single-threaded, so the
/// thread-local subscriber sees everything the generator logs).
async fn generate(g: &OpenAiGenerator, recent: &RecentQuestions) -> (Generated, String, Duration) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let started = Instant::now();
    let generated = g.generate(day(), recent).await.expect("a quiz, always");
    let elapsed = started.elapsed();
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("{}", logs.text());
    }
    let quiz = Quiz {
        day: day(),
        questions: generated.questions.clone(),
        source: generated.source,
        generated_at: chrono::Utc::now(),
        provenance: generated.provenance.clone(),
    };
    quiz.validate().expect("the generated quiz is valid");
    for q in &generated.questions {
        assert!(!recent.contains(q), "{} repeats a recent question", q.id);
    }
    (generated, logs.text(), elapsed)
}

async fn bank_quiz(recent: &RecentQuestions) -> Generated {
    BankGenerator::new(Bank::embedded())
        .generate(day(), recent)
        .await
        .unwrap()
}

fn assert_fell_back(generated: &Generated, logs: &str, reason_contains: &str) {
    assert_eq!(generated.source, QuizSource::Bank);
    let reason = generated
        .provenance
        .fallback_reason
        .as_deref()
        .expect("fallback_reason is recorded");
    assert!(
        reason.contains(reason_contains),
        "reason '{reason}' should mention '{reason_contains}'"
    );
    assert_eq!(generated.provenance.model, None);
    assert!(
        logs.lines().any(|l| l.contains("WARN")
            && l.contains("fell back to the bank")
            && l.contains(reason_contains)),
        "no WARN 'fell back to the bank' line with the reason in:\n{logs}"
    );
    assert!(!logs.contains(KEY), "the key leaked into the logs");
}

/// Every object in a schema lists all its properties as required and forbids others.
fn assert_strict_schema(schema: &Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&json!(false)),
                    "{schema}"
                );
                let props: HashSet<&String> =
                    map["properties"].as_object().unwrap().keys().collect();
                let required: HashSet<&String> = map["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => panic!("required entry {other}"),
                    })
                    .collect();
                assert_eq!(props, required, "{schema}");
            }
            map.values().for_each(assert_strict_schema);
        }
        Value::Array(items) => items.iter().for_each(assert_strict_schema),
        _ => {}
    }
}

/// The request shape every call must have, whatever the auth and URL style.
fn assert_request_shape(s: &Seen) {
    let keys: HashSet<&str> = s
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let allowed: HashSet<&str> = [
        "messages",
        "response_format",
        "max_completion_tokens",
        "temperature",
        "model",
    ]
    .into();
    assert!(keys.is_subset(&allowed), "unexpected body fields {keys:?}");
    assert!(
        s.body.get("max_tokens").is_none(),
        "max_tokens is never sent (reasoning models reject it)"
    );
    assert!(s.body["max_completion_tokens"].as_u64().is_some());
    assert!(s.body.get("user").is_none(), "no end-user id is ever sent");
    let roles: Vec<&str> = s.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user"]);
    let format = &s.body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_strict_schema(&format["json_schema"]["schema"]);
    assert_eq!(
        s.header("content-type"),
        Some("application/json"),
        "JSON body"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_quiz_from_the_deployments_endpoint_with_an_api_key() {
    // The honest model, with blind checks slow enough that concurrent calls overlap.
    let server = start(Box::new(|s, _, model| {
        (s.kind == Kind::Verify).then(|| honest_reply(model, s).delayed(Duration::from_millis(100)))
    }))
    .await;
    let mut recent = RecentQuestions::default();
    recent.insert("history-001", "An old question that is not asked again?");
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &recent).await;

    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(
        generated.provenance.model.as_deref(),
        Some(format!("{DEPLOYMENT} ({MODEL})").as_str())
    );
    assert!(
        generated.provenance.replaced.is_empty(),
        "{:?}",
        generated.provenance
    );
    assert_eq!(generated.provenance.fallback_reason, None);
    let plan = day_plan(day());
    for (i, q) in generated.questions.iter().enumerate() {
        assert_eq!(q.id, format!("ai-2026-03-01-{}", i + 1));
        assert_eq!(q.category, plan[i].category);
        assert_eq!(q.difficulty, plan[i].difficulty);
        assert!(q.text.starts_with("Draft 1 question"), "{}", q.text);
    }

    let seen = server.seen();
    assert_eq!(server.of(Kind::Draft).len(), 1);
    assert_eq!(server.of(Kind::Verify).len(), QUESTIONS_PER_QUIZ);
    assert_eq!(server.of(Kind::Regenerate).len(), 0);
    for s in &seen {
        assert_eq!(
            s.path,
            format!("/openai/deployments/{DEPLOYMENT}/chat/completions")
        );
        assert_eq!(s.query, "api-version=2024-10-21");
        assert_eq!(s.header("api-key"), Some(KEY));
        assert_eq!(s.header("authorization"), None);
        assert!(
            s.body.get("model").is_none(),
            "the dated API names the deployment in the path"
        );
        assert_request_shape(s);
    }
    // The draft asks for the day's plan, slot by slot.
    let draft = &server.of(Kind::Draft)[0];
    let schema = &draft.body["response_format"]["json_schema"]["schema"];
    for (i, slot) in plan.iter().enumerate() {
        let q = &schema["properties"][format!("question_{}", i + 1)]["properties"];
        assert_eq!(q["category"]["enum"], json!([slot.category]));
        assert_eq!(q["difficulty"]["enum"], json!([slot.difficulty.as_str()]));
    }
    assert!(draft.user_message().contains("2026-03-01"));
    // The blind check sees only the question and its choices, never the answer.
    for v in server.of(Kind::Verify) {
        let content: Value = serde_json::from_str(v.user_message()).unwrap();
        let keys: HashSet<&str> = content
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, HashSet::from(["question", "choices"]));
        assert!(
            !v.body.to_string().contains("Because "),
            "the explanation leaked"
        );
    }
    // Five blind checks run concurrently, two at a time.
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 2);
    assert!(!logs.contains(KEY));
}

#[tokio::test]
async fn a_valid_quiz_from_the_v1_endpoint_with_an_entra_token() {
    let server = start(honest()).await;
    let credential = FakeCredential::new("fake-entra-token");
    let g = generator(
        settings(&server, "v1", None),
        Some(credential.clone() as Arc<dyn TokenCredential>),
    );
    let (generated, _, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(generated.questions.len(), QUESTIONS_PER_QUIZ);
    let seen = server.seen();
    assert_eq!(seen.len(), 1 + QUESTIONS_PER_QUIZ);
    for s in &seen {
        assert_eq!(s.path, "/openai/v1/chat/completions");
        assert_eq!(s.query, "", "the v1 API takes no api-version");
        assert_eq!(s.header("authorization"), Some("Bearer fake-entra-token"));
        assert_eq!(s.header("api-key"), None);
        assert_eq!(s.body["model"], DEPLOYMENT);
        assert_request_shape(s);
    }
    let scopes = credential.scopes();
    assert_eq!(
        scopes.len(),
        seen.len(),
        "one token per request (the credential caches)"
    );
    assert!(scopes.iter().all(|s| s == TOKEN_SCOPE), "{scopes:?}");
}

#[tokio::test]
async fn invalid_json_is_asked_for_again() {
    let server = start(Box::new(|s, n, _| {
        (s.kind == Kind::Draft && n == 0).then(|| {
            completion(
                Some(r#"{"question_1": {"category": "arts", "text": "Wh"#),
                "stop",
                None,
            )
        })
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(generated.provenance.fallback_reason, None);
    assert_eq!(server.of(Kind::Draft).len(), 2);
    assert!(
        generated.questions[0].text.starts_with("Draft 1 "),
        "the second draft is the honest model's first"
    );
    assert!(logs.contains("not valid JSON"), "{logs}");
}

#[tokio::test]
async fn invalid_json_every_time_falls_back_to_the_bank() {
    let server = start(Box::new(|s, _, _| {
        (s.kind == Kind::Draft).then(|| completion(Some("Here is your quiz: {"), "stop", None))
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let recent = RecentQuestions::default();
    let (generated, logs, _) = generate(&g, &recent).await;
    assert_fell_back(&generated, &logs, "not valid JSON");
    assert_eq!(generated.questions, bank_quiz(&recent).await.questions);
    assert_eq!(server.of(Kind::Draft).len(), DRAFT_ATTEMPTS as usize);
    assert_eq!(server.of(Kind::Verify).len(), 0);
}

#[tokio::test]
async fn truncated_output_is_asked_for_again() {
    let server = start(Box::new(|s, n, _| {
        (s.kind == Kind::Draft && n == 0).then(|| {
            completion(
                Some(r#"{"question_1": {"category": "arts", "difficulty": "ea"#),
                "length",
                None,
            )
        })
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(server.of(Kind::Draft).len(), 2);
    assert!(logs.contains("truncated"), "{logs}");
}

#[tokio::test]
async fn truncated_or_refused_every_time_falls_back_to_the_bank() {
    let server = start(Box::new(|s, n, _| {
        (s.kind == Kind::Draft).then(|| {
            if n + 1 < DRAFT_ATTEMPTS as usize {
                completion(Some(r#"{"question_1": {"#), "length", None)
            } else {
                completion(None, "stop", Some("I'm sorry, I can't help with that."))
            }
        })
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_fell_back(&generated, &logs, "the model refused");
    assert!(logs.contains("truncated"), "{logs}");
    assert_eq!(server.of(Kind::Draft).len(), DRAFT_ATTEMPTS as usize);
}

#[tokio::test]
async fn content_filter_results_are_handled() {
    // The prompt is filtered once (HTTP 400, code content_filter), then the output once
    // (finish_reason content_filter); the third draft passes. The blind check of question 2
    // is filtered too, so that question is written again.
    let server = start(Box::new(|s, n, _| match s.kind {
        Kind::Draft if n == 0 => Some(prompt_filtered()),
        Kind::Draft if n == 1 => Some(completion(None, "content_filter", None)),
        Kind::Verify
            if s.question
                .as_deref()
                .is_some_and(|q| q.contains(" question 2:")) =>
        {
            Some(completion(None, "content_filter", None))
        }
        _ => None,
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, _, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(server.of(Kind::Draft).len(), 3);
    assert_eq!(server.of(Kind::Regenerate).len(), 1);
    assert!(
        generated.questions[1].text.starts_with("Replacement 1:"),
        "{}",
        generated.questions[1].text
    );
    assert_eq!(generated.questions[1].id, "ai-2026-03-01-2");
    let replaced = &generated.provenance.replaced;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(
        replaced[0].starts_with("question 2 (ai-2026-03-01-2): regenerated 1 time(s)"),
        "{replaced:?}"
    );
    assert!(replaced[0].contains("content filter"), "{replaced:?}");
}

#[tokio::test]
async fn a_prompt_filtered_every_time_falls_back_to_the_bank() {
    let server = start(Box::new(|_, _, _| Some(prompt_filtered()))).await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_fell_back(&generated, &logs, "content filter");
    assert_eq!(server.of(Kind::Draft).len(), DRAFT_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_wrong_answer_caught_by_the_blind_check_is_regenerated() {
    let server = start(Box::new(|s, _, model| {
        (s.kind == Kind::Verify
            && s.question
                .as_deref()
                .is_some_and(|q| q.contains(" question 3:")))
        .then(|| wrong_answer(model, s))
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, _, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    let q3 = &generated.questions[2];
    assert_eq!(q3.id, "ai-2026-03-01-3");
    assert!(q3.text.starts_with("Replacement 1:"), "{}", q3.text);
    assert_eq!(q3.category, day_plan(day())[2].category);
    let replaced = &generated.provenance.replaced;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(
        replaced[0].starts_with(
            "question 3 (ai-2026-03-01-3): regenerated 1 time(s) because the blind check chose"
        ),
        "{replaced:?}"
    );
    // The regeneration says why and names the texts it must not repeat; the new question is
    // checked blind as well.
    let regen = &server.of(Kind::Regenerate)[0];
    assert!(
        regen.user_message().contains("blind check chose"),
        "{}",
        regen.user_message()
    );
    assert!(
        regen
            .user_message()
            .contains(&draft_text(1, 3, day_plan(day())[2].category))
    );
    assert!(
        regen
            .user_message()
            .contains(&draft_text(1, 1, day_plan(day())[0].category))
    );
    assert_request_shape(regen);
    assert!(
        server
            .of(Kind::Verify)
            .iter()
            .any(|v| v.question.as_deref() == Some(q3.text.as_str()))
    );
}

#[tokio::test]
async fn a_question_that_keeps_failing_the_blind_check_is_replaced_from_the_bank() {
    let plan = day_plan(day());
    let category = plan[3].category;
    let server = start(Box::new(move |s, _, model| {
        (s.kind == Kind::Verify && s.category.as_deref() == Some(category))
            .then(|| wrong_answer(model, s))
    }))
    .await;
    // Half of the bank's questions of that category were used recently.
    let mut recent = RecentQuestions::default();
    let same_category: Vec<_> = Bank::embedded()
        .questions()
        .iter()
        .filter(|q| q.category == category)
        .collect();
    for q in same_category.iter().step_by(2) {
        recent.insert(&q.id, &q.text);
    }
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &recent).await;
    assert_eq!(
        generated.source,
        QuizSource::OpenAi,
        "four generated questions survived"
    );
    assert_eq!(server.of(Kind::Regenerate).len(), REGENERATE_TRIES as usize);
    let q4 = &generated.questions[3];
    assert!(
        !q4.id.starts_with("ai-"),
        "question 4 comes from the bank: {}",
        q4.id
    );
    assert_eq!(
        q4.category, category,
        "a bank question of the same category"
    );
    assert!(!recent.contains(q4));
    for (i, q) in generated.questions.iter().enumerate() {
        if i != 3 {
            assert_eq!(q.id, format!("ai-2026-03-01-{}", i + 1));
        }
    }
    let replaced = &generated.provenance.replaced;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(
        replaced[0].starts_with(&format!("question 4 (ai-2026-03-01-4): replaced by bank question {} because the blind check chose", q4.id)),
        "{replaced:?}"
    );
    assert_eq!(
        replaced[0].matches("the blind check chose").count(),
        1 + REGENERATE_TRIES as usize
    );
    assert!(generated.provenance.model.is_some());
    assert!(logs.contains("replaced from the bank"), "{logs}");
}

#[tokio::test]
async fn a_repeat_of_a_recent_question_is_written_again() {
    let plan = day_plan(day());
    let mut recent = RecentQuestions::default();
    // Same words, other case and punctuation: still a repeat.
    let repeat = draft_text(1, 1, plan[0].category)
        .to_uppercase()
        .replace(':', " -");
    recent.insert("2026-02-10-q1", &repeat);
    let server = start(honest()).await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, _, _) = generate(&g, &recent).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert!(generated.questions[0].text.starts_with("Replacement 1:"));
    let replaced = &generated.provenance.replaced;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(replaced[0].contains("last 60 days"), "{replaced:?}");
    // Recent questions are not sent to the model; validation catches repeats.
    assert!(
        !server.of(Kind::Draft)[0]
            .body
            .to_string()
            .to_lowercase()
            .contains("2026-02-10")
    );
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let server = start(Box::new(|s, n, _| {
        (s.kind == Kind::Draft && n == 0).then(|| throttled().with_header("retry-after", "1"))
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    let drafts = server.of(Kind::Draft);
    assert_eq!(drafts.len(), 2);
    let waited = drafts[1].at - drafts[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "waited only {waited:?}"
    );
    assert!(logs.contains("429"), "{logs}");
}

#[tokio::test]
async fn throttling_prefers_retry_after_ms() {
    // retry-after-ms is the finer header; the 20 s in retry-after must not be waited for.
    let server = start(Box::new(|s, n, _| {
        (s.kind == Kind::Draft && n == 0).then(|| {
            throttled()
                .with_header("retry-after-ms", "400")
                .with_header("retry-after", "20")
        })
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, _, elapsed) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    let drafts = server.of(Kind::Draft);
    let waited = drafts[1].at - drafts[0].at;
    assert!(
        waited >= Duration::from_millis(390),
        "waited only {waited:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn total_failure_falls_back_to_the_bank() {
    let server = start(Box::new(|_, _, _| {
        Some(error(
            500,
            "InternalServerError",
            "The server had an error while processing your request. Sorry about that!",
        ))
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let recent = RecentQuestions::default();
    let (generated, logs, _) = generate(&g, &recent).await;
    assert_fell_back(&generated, &logs, "HTTP 500");
    assert!(
        generated
            .provenance
            .fallback_reason
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{:?}",
        generated.provenance
    );
    assert_eq!(generated.questions, bank_quiz(&recent).await.questions);
    assert!(generated.provenance.replaced.is_empty());
    // Retries are bounded: three attempts at the draft, nothing else.
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn rejected_credentials_fall_back_at_once() {
    let server = start(Box::new(|_, _, _| {
        Some(error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."))
    }))
    .await;
    let g = generator(settings(&server, "deployments", Some(KEY)), None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_fell_back(&generated, &logs, "HTTP 401");
    assert_eq!(server.seen().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn the_time_limit_per_generation_is_respected() {
    let server = start(Box::new(|s, n, model| {
        Some(honest_reply(model, s).delayed(if n == 0 {
            Duration::from_secs(20)
        } else {
            Duration::ZERO
        }))
    }))
    .await;
    let mut s = settings(&server, "deployments", Some(KEY));
    s.max_total = Duration::from_millis(1500);
    let g = generator(s, None);
    let recent = RecentQuestions::default();
    let (generated, logs, elapsed) = generate(&g, &recent).await;
    assert_fell_back(&generated, &logs, "time limit");
    assert_eq!(generated.questions, bank_quiz(&recent).await.questions);
    assert!(
        elapsed >= Duration::from_millis(1400),
        "gave up early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "overran the limit: {elapsed:?}"
    );
}

#[tokio::test]
async fn an_openai_compatible_server_with_a_bearer_key() {
    let server = start(honest()).await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("QOTD_OPENAI_ENDPOINT", format!("{}/v1/", server.base)),
        ("QOTD_OPENAI_DEPLOYMENT", "local/llama-3.1-8b:q4".to_owned()),
        ("QOTD_OPENAI_API_STYLE", "v1".to_owned()),
        ("QOTD_OPENAI_API_KEY", KEY.to_owned()),
        ("QOTD_OPENAI_API_KEY_HEADER", "authorization".to_owned()),
    ]);
    let s = OpenAiSettings::from_lookup(|k| vars.get(k).cloned())
        .unwrap()
        .unwrap();
    let g = generator(s, None);
    let (generated, _, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    assert_eq!(
        generated.provenance.model.as_deref(),
        Some(format!("local/llama-3.1-8b:q4 ({MODEL})").as_str())
    );
    for s in server.seen() {
        assert_eq!(s.path, "/v1/chat/completions");
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(s.header("api-key"), None);
        assert_eq!(s.body["model"], "local/llama-3.1-8b:q4");
        assert_request_shape(&s);
    }
}

// ---------------------------------------------------------------------------------------------
// Reasoning models (o-series, GPT-5 family) and Entra token failures
// ---------------------------------------------------------------------------------------------

/// What Azure OpenAI answers a reasoning deployment for a parameter it does not support.
fn unsupported(param: &str) -> Reply {
    Reply::json(
        400,
        json!({ "error": {
            "code": "unsupported_parameter",
            "type": "invalid_request_error",
            "param": param,
            "message": format!("Unsupported parameter: '{param}' is not supported with this model. Use 'max_completion_tokens' instead."),
        }}),
    )
}

/// The fake behaves like a reasoning deployment: 400 for `max_tokens` or a sampling parameter.
fn reasoning_deployment() -> Script {
    Box::new(|s, _, model| {
        for p in ["max_tokens", "temperature", "top_p"] {
            if s.body.get(p).is_some() {
                return Some(unsupported(p));
            }
        }
        let mut reply = honest_reply(model, s);
        let mut body: Value = serde_json::from_str(&reply.body).unwrap();
        body["model"] = json!("gpt-5-mini-2025-08-07");
        reply.body = body.to_string();
        Some(reply)
    })
}

fn settings_from(server: &Server, vars: &[(&str, &str)]) -> OpenAiSettings {
    let mut all: HashMap<&str, String> = HashMap::from([
        ("QOTD_OPENAI_ENDPOINT", server.base.clone()),
        ("QOTD_OPENAI_API_KEY", KEY.to_owned()),
    ]);
    for (k, v) in vars {
        all.insert(k, v.to_string());
    }
    let mut s = OpenAiSettings::from_lookup(|k| all.get(k).cloned())
        .unwrap()
        .unwrap();
    s.retry.base_delay = Duration::from_millis(20);
    s.retry.max_delay = Duration::from_millis(100);
    s
}

#[tokio::test]
async fn a_reasoning_deployment_gets_max_completion_tokens_and_no_sampling_parameters() {
    let server = start(reasoning_deployment()).await;
    // No API style and no api-version: the v1 API by default.
    let s = settings_from(&server, &[("QOTD_OPENAI_DEPLOYMENT", "gpt-5-mini")]);
    let g = generator(s, None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi, "{logs}");
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        1 + QUESTIONS_PER_QUIZ,
        "no request was rejected"
    );
    for s in &seen {
        assert_eq!(s.path, "/openai/v1/chat/completions");
        assert_eq!(s.query, "");
        assert!(s.body.get("temperature").is_none());
        assert_request_shape(s);
    }
    // Budgets sized for reasoning tokens (QOTD_OPENAI_MAX_COMPLETION_TOKENS, default 16000).
    assert_eq!(
        server.of(Kind::Draft)[0].body["max_completion_tokens"],
        16_000
    );
    assert_eq!(
        server.of(Kind::Verify)[0].body["max_completion_tokens"],
        4_000
    );
}

#[tokio::test]
async fn auto_mode_learns_a_reasoning_model_behind_an_opaque_deployment_name() {
    let server = start(reasoning_deployment()).await;
    let s = settings_from(
        &server,
        &[
            ("QOTD_OPENAI_DEPLOYMENT", "quiz-generator"),
            ("QOTD_OPENAI_MAX_COMPLETION_TOKENS", "8000"),
        ],
    );
    let g = generator(s, None);
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi, "{logs}");
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        2 + QUESTIONS_PER_QUIZ,
        "one rejected draft, then the reasoning shape"
    );
    assert!(seen[0].body.get("temperature").is_some());
    for s in &seen[1..] {
        assert!(s.body.get("temperature").is_none());
    }
    assert_eq!(seen[1].body["max_completion_tokens"], 8_000);
    assert!(logs.contains("reasoning model"), "{logs}");
}

#[tokio::test]
async fn reasoning_false_keeps_the_sampling_parameters() {
    let server = start(honest()).await;
    let s = settings_from(
        &server,
        &[
            ("QOTD_OPENAI_DEPLOYMENT", "gpt-5-mini"),
            ("QOTD_OPENAI_REASONING", "false"),
        ],
    );
    let g = generator(s, None);
    let (generated, _, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi);
    let draft = &server.of(Kind::Draft)[0];
    assert_eq!(draft.body["temperature"], 0.7);
    assert_eq!(draft.body["max_completion_tokens"], 2_500);
}

/// A credential whose token endpoint fails the first `failures` requests, then succeeds.
#[derive(Debug)]
struct FlakyCredential {
    failures: usize,
    calls: AtomicUsize,
}

#[async_trait]
impl TokenCredential for FlakyCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                "connection refused by the identity endpoint (HTTP 503)",
            ));
        }
        Ok(AccessToken::new(
            "fake-entra-token",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn a_token_endpoint_failing_twice_then_succeeding_is_retried() {
    let server = start(honest()).await;
    let credential = Arc::new(FlakyCredential {
        failures: 2,
        calls: AtomicUsize::new(0),
    });
    let g = generator(
        settings(&server, "v1", None),
        Some(credential.clone() as Arc<dyn TokenCredential>),
    );
    let (generated, logs, _) = generate(&g, &RecentQuestions::default()).await;
    assert_eq!(generated.source, QuizSource::OpenAi, "{logs}");
    assert_eq!(generated.provenance.fallback_reason, None);
    assert!(
        logs.contains("could not get an Entra token"),
        "the retries are logged: {logs}"
    );
    assert!(credential.calls.load(Ordering::SeqCst) >= 2 + 1 + QUESTIONS_PER_QUIZ);
    for s in server.seen() {
        assert_eq!(s.header("authorization"), Some("Bearer fake-entra-token"));
    }
}
