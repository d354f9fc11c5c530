//! The Azure OpenAI quiz generator against a local warp server (`support/openai.rs`) that behaves
//! like Azure OpenAI chat completions: the documented paths, `api-version`, `api-key` or bearer
//! auth, the reply envelope, `finish_reason` values, `refusal`, error bodies and 429 with
//! `retry-after` / `retry-after-ms`. The server tells the kinds of call apart by the schema name
//! in `response_format`; by default it plays an honest model that writes valid questions and
//! answers the blind check correctly, and each test overrides the replies it cares about.

mod support;

use azure_core::credentials::TokenCredential;
use qotd::kernel::QuizDay;
use qotd::quiz::bank::{Bank, BankGenerator};
use qotd::quiz::openai::{
    DRAFT_ATTEMPTS, OpenAiGenerator, OpenAiSettings, REGENERATE_TRIES, TOKEN_SCOPE, day_plan,
};
use qotd::quiz::{Generated, QUESTIONS_PER_QUIZ, Quiz, QuizGenerator, QuizSource, RecentQuestions};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::credential::{FakeCredential, FlakyCredential};
use support::openai::{
    Kind, MODEL, Reply, Script, Seen, Server, completion, draft_text, error, honest, honest_reply,
    prompt_filtered, start, throttled, wrong_answer,
};
use tokio::time::Instant;

const DEPLOYMENT: &str = "quiz-gpt4o";
const KEY: &str = "test-key-0123456789abcdef";

fn day() -> QuizDay {
    QuizDay::parse("2026-03-01").unwrap()
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
        Arc::new(BankGenerator::embedded()),
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
    BankGenerator::embedded()
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
