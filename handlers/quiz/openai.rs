//! Azure OpenAI (or any OpenAI-compatible chat completions endpoint) as a `QuizGenerator`, with
//! the offline bank as its safety net. This adapter owns the prompts, the strict JSON schemas,
//! the validation of what the model wrote, the blind verification pass and the retry policy;
//! it never stores anything and never sees user data.
//!
//! One generation runs like this, all inside one time budget (`QOTD_OPENAI_MAX_SECONDS`):
//!
//! 1. **Plan.** The day's five categories and difficulties come from the date alone
//!    (`day_plan`), rotating over the ten bank categories.
//! 2. **Draft.** One chat call asks for the five questions under a strict `json_schema` whose
//!    slot `question_n` only admits the planned category and difficulty. Unusable replies
//!    (invalid JSON, truncated, filtered, refused) are asked again, up to `DRAFT_ATTEMPTS`.
//! 3. **Validate** each question: shape, length limits, allowed category and difficulty, no
//!    repeat within the quiz or of the last 60 days (normalised text).
//! 4. **Verify blind.** For each valid question a separate call sees only the question and its
//!    choices (rotated, without the answer or the explanation) and picks an answer. A question
//!    that fails validation or verification is regenerated on its own, up to
//!    `REGENERATE_TRIES` times; what still fails is replaced by an unused bank question of the
//!    same category where possible. Each such question gets one line in `provenance.replaced`.
//! 5. **Fall back.** If the service is unusable, the time budget runs out before the draft, or
//!    no generated question survives, the whole day comes from the fallback generator (the
//!    bank) with `provenance.fallback_reason` set and a WARN line containing
//!    "fell back to the bank". The day always gets a quiz.
//!
//! **Invariant:** a generated question reaches a quiz only after a blind answer agreed with it.
//!
//! Recent questions are *not* sent to the model: `RecentQuestions` holds only normalised texts
//! (lower-case, no spaces), which make a poor prompt and would cost thousands of tokens per
//! call. A fresh question rarely matches one of them exactly; when it does, validation rejects
//! it and the regeneration prompt names the rejected text.
//!
//! Transport: at most two requests in flight per generation; 429 honours `retry-after-ms` or
//! `retry-after` (bounded by `RetryPolicy::max_retry_after` and the time budget); 408, 5xx,
//! timeouts and connection errors back off exponentially with jitter; 401, 403, 404 and other
//! 4xx stop using the service for this generation (they will not heal by retrying).

use super::bank::{Bank, shuffle};
use super::{
    CHOICES_PER_QUESTION, Difficulty, Generated, Provenance, QUESTIONS_PER_QUIZ, Question,
    QuizGenerator, QuizSource, RecentQuestions, normalise_text,
};
use crate::kernel::QuizDay;
use crate::platform::config::ConfigError;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The dated GA inference version used when `QOTD_OPENAI_API_VERSION` is unset; it supports
/// strict `json_schema` structured outputs.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";
/// The Entra scope for Azure OpenAI data-plane calls.
pub const TOKEN_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The categories the plan rotates over: the bank's file names, so a replacement question of
/// the same category always exists.
pub const CATEGORIES: [&str; 10] = [
    "arts",
    "geography",
    "history",
    "literature",
    "music",
    "nature",
    "science",
    "space",
    "sport",
    "technology",
];
/// Length limits for generated questions, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
pub const MAX_CHOICE_CHARS: usize = 80;
pub const MAX_EXPLANATION_CHARS: usize = 300;
/// Requests in flight at once for one generation.
pub const MAX_IN_FLIGHT: usize = 2;
/// How often the five-question draft is asked for when a reply is unusable.
pub const DRAFT_ATTEMPTS: u32 = 3;
/// How often one question is regenerated after it failed validation or the blind check.
pub const REGENERATE_TRIES: u32 = 2;

/// Schema names; they also tell the kind of call apart in logs and test servers.
pub const DRAFT_SCHEMA: &str = "daily_quiz";
pub const REGENERATE_SCHEMA: &str = "quiz_question";
pub const VERIFY_SCHEMA: &str = "blind_answer";

const DRAFT_MAX_TOKENS: u32 = 2500;
const REGENERATE_MAX_TOKENS: u32 = 800;
const VERIFY_MAX_TOKENS: u32 = 400;

const ENDPOINT: &str = "QOTD_OPENAI_ENDPOINT";
const DEPLOYMENT: &str = "QOTD_OPENAI_DEPLOYMENT";
const API_STYLE: &str = "QOTD_OPENAI_API_STYLE";
const API_VERSION: &str = "QOTD_OPENAI_API_VERSION";
const API_KEY: &str = "QOTD_OPENAI_API_KEY";
const API_KEY_HEADER: &str = "QOTD_OPENAI_API_KEY_HEADER";
const TIMEOUT_SECONDS: &str = "QOTD_OPENAI_TIMEOUT_SECONDS";
const MAX_SECONDS: &str = "QOTD_OPENAI_MAX_SECONDS";

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// An API key: the platform-wide [`Secret`](crate::platform::secret::Secret), whose `Debug`
/// prints `[redacted]` and which has no `Display`.
pub type ApiKey = crate::platform::secret::Secret;

/// Which URL shape the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStyle {
    /// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`
    Deployments,
    /// `{endpoint}/openai/v1/chat/completions` (or `{endpoint}/chat/completions` when the
    /// endpoint has a path, e.g. `https://host/v1` of an OpenAI-compatible server), with the
    /// deployment or model name as `model` in the body.
    V1,
}

/// How an API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
    /// `Authorization: Bearer <key>` (OpenAI and most OpenAI-compatible servers).
    Bearer,
}

/// Retries of one call. Not read from the environment; tests shorten the delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included, for throttling, 5xx, timeouts and network errors.
    pub max_attempts: u32,
    /// First backoff when the service names no wait; doubled per attempt, plus up to 50% jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after` honoured; a longer one ends the retries for this call.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Azure OpenAI settings; present only when `QOTD_OPENAI_ENDPOINT` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiSettings {
    /// Base URL without a trailing slash, e.g. `https://myres.openai.azure.com`.
    pub endpoint: String,
    /// The deployment name (Azure) or model name (OpenAI-compatible servers).
    pub deployment: String,
    pub api_style: ApiStyle,
    /// Sent as `api-version` with `ApiStyle::Deployments`; unused with `V1`.
    pub api_version: String,
    /// `None` means: authenticate with the Entra credential.
    pub api_key: Option<ApiKey>,
    pub key_header: KeyHeader,
    /// Limit for one HTTP request.
    pub request_timeout: Duration,
    /// Limit for a whole generation, retries and verification included.
    pub max_total: Duration,
    pub retry: RetryPolicy,
}

fn config_err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl OpenAiSettings {
    /// Reads the `QOTD_OPENAI_*` settings through `get`. `Ok(None)` when
    /// `QOTD_OPENAI_ENDPOINT` is unset (the bank alone generates quizzes). Errors name the
    /// variable and never contain the API key.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(raw_endpoint) = var(ENDPOINT) else {
            return Ok(None);
        };
        let endpoint = parse_endpoint(&raw_endpoint)?;
        let api_style = match var(API_STYLE).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("deployments") => ApiStyle::Deployments,
            Some("v1") => ApiStyle::V1,
            Some(other) => {
                return Err(config_err(
                    API_STYLE,
                    format!(
                        "'{}' is not an API style (expected deployments or v1)",
                        clip(other, 40)
                    ),
                ));
            }
        };
        let deployment = var(DEPLOYMENT).ok_or_else(|| {
            config_err(
                DEPLOYMENT,
                "is required when QOTD_OPENAI_ENDPOINT is set: the deployment name (Azure) or model name (OpenAI-compatible server)",
            )
        })?;
        check_deployment(&deployment, api_style)?;
        let api_version = var(API_VERSION).unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if !valid_api_version(&api_version) {
            return Err(config_err(
                API_VERSION,
                format!(
                    "'{}' is not an API version (expected YYYY-MM-DD or YYYY-MM-DD-preview, e.g. {DEFAULT_API_VERSION})",
                    clip(&api_version, 40)
                ),
            ));
        }
        let api_key = match var(API_KEY) {
            None => None,
            Some(k) if k.starts_with("@Microsoft.KeyVault(") => {
                return Err(config_err(
                    API_KEY,
                    "is an unresolved Key Vault reference: give the app's identity read access to the secret and check the reference (the value is not shown)",
                ));
            }
            Some(k) if !k.chars().all(|c| c.is_ascii_graphic()) => {
                return Err(config_err(
                    API_KEY,
                    "contains characters that cannot be sent in an HTTP header (the value is not shown)",
                ));
            }
            Some(k) => Some(ApiKey::new(k)),
        };
        let key_header = match var(API_KEY_HEADER)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("api-key") => KeyHeader::ApiKey,
            Some("authorization") | Some("bearer") => KeyHeader::Bearer,
            Some(other) => {
                return Err(config_err(
                    API_KEY_HEADER,
                    format!(
                        "'{}' is not a key header (expected api-key or authorization)",
                        clip(other, 40)
                    ),
                ));
            }
        };
        let request_timeout = seconds(&var, TIMEOUT_SECONDS, 30, 600)?;
        let max_total = seconds(&var, MAX_SECONDS, 120, 3600)?;
        Ok(Some(Self {
            endpoint,
            deployment,
            api_style,
            api_version,
            api_key,
            key_header,
            request_timeout,
            max_total,
            retry: RetryPolicy::default(),
        }))
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Whether calls need an Entra credential (no API key is configured).
    pub fn uses_entra(&self) -> bool {
        self.api_key.is_none()
    }

    /// The chat completions URL these settings call.
    pub fn chat_url(&self) -> Result<String, ConfigError> {
        let base = parse_endpoint(&self.endpoint)?;
        check_deployment(&self.deployment, self.api_style)?;
        Ok(match self.api_style {
            ApiStyle::Deployments => format!(
                "{base}/openai/deployments/{}/chat/completions?api-version={}",
                self.deployment, self.api_version
            ),
            ApiStyle::V1 => {
                let has_path = reqwest::Url::parse(&base).is_ok_and(|u| u.path() != "/");
                if has_path {
                    format!("{base}/chat/completions")
                } else {
                    format!("{base}/openai/v1/chat/completions")
                }
            }
        })
    }
}

fn seconds(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    match var(name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=max).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                config_err(
                    name,
                    format!(
                        "'{}' is not a whole number of seconds from 1 to {max}",
                        clip(&v, 40)
                    ),
                )
            }),
    }
}

/// Checks the endpoint and returns it without a trailing slash. Never echoes the value, which
/// could carry credentials in its user-info part.
fn parse_endpoint(raw: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        config_err(
            ENDPOINT,
            format!(
                "is not an absolute URL ({e}); expected e.g. https://<resource>.openai.azure.com"
            ),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_err(
            ENDPOINT,
            "must not contain a user name or password; set the key in QOTD_OPENAI_API_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_err(
            ENDPOINT,
            "must not have a query or fragment; the api-version is set with QOTD_OPENAI_API_VERSION",
        ));
    }
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some() => {}
        "http" if loopback => {}
        _ => {
            return Err(config_err(
                ENDPOINT,
                "must be an https:// URL with a host (plain http only on loopback), e.g. https://<resource>.openai.azure.com",
            ));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn check_deployment(name: &str, style: ApiStyle) -> Result<(), ConfigError> {
    let ok = match style {
        // It becomes a path segment: Azure deployment names are letters, digits, '-', '_', '.'.
        ApiStyle::Deployments => {
            name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }
        // It only travels in the JSON body: model names such as `org/model:tag` are fine.
        ApiStyle::V1 => {
            name.chars().count() <= 256
                && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
        }
    };
    if name.is_empty() || !ok {
        return Err(config_err(
            DEPLOYMENT,
            format!(
                "'{}' is not a deployment name (letters, digits, '-', '_', '.'; at most 64 characters)",
                clip(name, 80)
            ),
        ));
    }
    Ok(())
}

fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
        && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
}

// ---------------------------------------------------------------------------------------------
// The day's plan
// ---------------------------------------------------------------------------------------------

/// One position of the day's quiz: the category and difficulty asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub category: &'static str,
    pub difficulty: Difficulty,
}

/// The categories and difficulties of `day`, easy first. Derived from the date only: each pair
/// of consecutive days covers all ten categories (in an order reshuffled every pair), and the
/// difficulty mix cycles through three patterns.
pub fn day_plan(day: QuizDay) -> [Slot; QUESTIONS_PER_QUIZ] {
    use Difficulty::{Easy, Hard, Medium};
    const MIXES: [[Difficulty; QUESTIONS_PER_QUIZ]; 3] = [
        [Easy, Easy, Medium, Medium, Hard],
        [Easy, Medium, Medium, Hard, Hard],
        [Easy, Medium, Medium, Medium, Hard],
    ];
    let d = day.ordinal();
    let mut categories = CATEGORIES;
    shuffle(
        &mut categories,
        0x71f2_d00d_5eed_0001 ^ (d.div_euclid(2) as u64),
    );
    let half = d.rem_euclid(2) as usize * QUESTIONS_PER_QUIZ;
    let mix = MIXES[d.rem_euclid(3) as usize];
    std::array::from_fn(|i| Slot {
        category: categories[half + i],
        difficulty: mix[i],
    })
}

/// The stable id of the generated question at `position` (0-based) of `day`.
pub fn question_id(day: QuizDay, position: usize) -> String {
    format!("ai-{day}-{}", position + 1)
}

// ---------------------------------------------------------------------------------------------
// Prompts and schemas
// ---------------------------------------------------------------------------------------------

const WRITER_PROMPT: &str = "You write the questions of Quiz of the Day, a five-question \
general-knowledge quiz that adults play once a day. Every question must follow these rules.\n\
- It tests one well-established fact that reference works agree on and that will not change: \
no current events, no opinions, no records or rankings that may change, nothing about \
private individuals.\n\
- The question is one clear sentence of at most 200 characters that makes sense before the \
choices are read.\n\
- There are exactly four choices of at most 80 characters each, all different and all \
plausible. Exactly one is correct; `correct` is its position counting from 0.\n\
- Never use 'all of the above', 'none of the above' or negated questions such as 'Which is \
NOT ...'.\n\
- The explanation (at most 300 characters) says why the correct choice is right.\n\
- Keep to the category and difficulty given for each question. Easy: most adults know it. \
Medium: a keen quiz player knows it. Hard: needs specialist knowledge, yet is still a fact.\n\
Write in English and reply only with JSON that matches the schema.";

const CHECKER_PROMPT: &str = "You check quiz questions by answering them yourself. You get a \
question and four choices. First think briefly in `reasoning` (at most two sentences), then \
copy into `answer` the one choice that is correct, exactly as written. Set `unambiguous` to \
false when no choice is correct, when more than one is, or when the question cannot be \
answered as written. Reply only with JSON that matches the schema.";

fn question_schema(slot: Slot) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["category", "difficulty", "text", "choices", "correct", "explanation"],
        "properties": {
            "category": { "type": "string", "enum": [slot.category] },
            "difficulty": { "type": "string", "enum": [slot.difficulty.as_str()] },
            "text": { "type": "string", "description": "The question, at most 200 characters." },
            "choices": {
                "type": "array",
                "description": "Exactly four different choices, at most 80 characters each.",
                "items": { "type": "string" }
            },
            "correct": {
                "type": "integer",
                "enum": [0, 1, 2, 3],
                "description": "Position of the correct choice, counting from 0."
            },
            "explanation": {
                "type": "string",
                "description": "Why the correct choice is right, at most 300 characters."
            }
        }
    })
}

fn draft_schema(plan: &[Slot; QUESTIONS_PER_QUIZ]) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for (i, slot) in plan.iter().enumerate() {
        let key = format!("question_{}", i + 1);
        properties.insert(key.clone(), question_schema(*slot));
        required.push(Value::String(key));
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties
    })
}

fn regenerate_schema(slot: Slot) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["question"],
        "properties": { "question": question_schema(slot) }
    })
}

fn verify_schema(presented: &[String]) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["reasoning", "answer", "unambiguous"],
        "properties": {
            "reasoning": { "type": "string" },
            "answer": { "type": "string", "enum": presented },
            "unambiguous": { "type": "boolean" }
        }
    })
}

fn describe_slot(n: usize, slot: Slot) -> String {
    format!(
        "Question {n}: category {}, difficulty {}.",
        slot.category,
        slot.difficulty.as_str()
    )
}

/// The choices in the order the checker sees them: rotated by 1 to 3 places, so the position
/// the writer chose tells the checker nothing.
fn presented_choices(q: &Question, day: QuizDay, position: usize) -> Vec<String> {
    let shift = 1 + (day.ordinal().rem_euclid(3) as usize + position) % 3;
    let mut choices = q.choices.clone();
    choices.rotate_left(shift % CHOICES_PER_QUESTION);
    choices
}

// ---------------------------------------------------------------------------------------------
// Validation of what the model wrote
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawQuestion {
    category: String,
    difficulty: String,
    text: String,
    choices: Vec<String>,
    correct: i64,
    explanation: String,
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 {
        return Err(format!("its {what} is empty"));
    }
    if n > max {
        return Err(format!("its {what} has {n} characters (limit {max})"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("its {what} contains control characters"));
    }
    Ok(())
}

/// Turns one generated question into a `Question` for `slot`, or says why it cannot be used.
fn to_question(raw: &Value, id: String, slot: Slot) -> Result<Question, String> {
    let raw: RawQuestion = serde_json::from_value(raw.clone())
        .map_err(|e| format!("it does not match the schema ({e})"))?;
    if !CATEGORIES.contains(&raw.category.as_str()) || raw.category != slot.category {
        return Err(format!(
            "its category '{}' is not the requested '{}'",
            clip(&raw.category, 40),
            slot.category
        ));
    }
    let difficulty = Difficulty::parse(&raw.difficulty).map_err(|e| clip(&e, 120))?;
    if difficulty != slot.difficulty {
        return Err(format!(
            "its difficulty '{}' is not the requested '{}'",
            difficulty.as_str(),
            slot.difficulty.as_str()
        ));
    }
    let text = raw.text.trim().to_owned();
    check_len("text", &text, MAX_TEXT_CHARS)?;
    if raw.choices.len() != CHOICES_PER_QUESTION {
        return Err(format!(
            "it has {} choices instead of {CHOICES_PER_QUESTION}",
            raw.choices.len()
        ));
    }
    let choices: Vec<String> = raw.choices.iter().map(|c| c.trim().to_owned()).collect();
    for c in &choices {
        check_len("choice", c, MAX_CHOICE_CHARS)?;
    }
    let explanation = raw.explanation.trim().to_owned();
    check_len("explanation", &explanation, MAX_EXPLANATION_CHARS)?;
    let correct = u8::try_from(raw.correct)
        .ok()
        .filter(|c| usize::from(*c) < CHOICES_PER_QUESTION)
        .ok_or_else(|| format!("its correct index {} is not 0 to 3", raw.correct))?;
    let q = Question {
        id,
        text,
        choices,
        correct,
        explanation,
        category: slot.category.to_owned(),
        difficulty,
    };
    q.validate()
        .map_err(|e| e.replace(&format!("question '{}' ", q.id), "it "))?;
    Ok(q)
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// Why a chat call produced nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallError {
    /// The service cannot be used for this generation (credentials, missing deployment, a
    /// request it rejects): retrying will not help.
    Fatal(String),
    /// Throttling, 5xx, timeouts or network errors outlasted the retries.
    Unavailable(String),
    /// A reply arrived but its content is unusable: filtered, refused, truncated, invalid JSON.
    Content(String),
    /// The generation's time budget is spent.
    Deadline,
}

impl CallError {
    fn describe(&self, budget: Duration) -> String {
        match self {
            Self::Fatal(m) | Self::Unavailable(m) | Self::Content(m) => m.clone(),
            Self::Deadline => format!(
                "the time limit of {} s per generation (QOTD_OPENAI_MAX_SECONDS) was reached",
                budget.as_secs_f32()
            ),
        }
    }
}

/// The outcome of one HTTP attempt.
enum Attempt {
    Done(Result<Reply, CallError>),
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
}

/// A usable reply: the model's JSON output and the model name the service reported.
struct Reply {
    output: Value,
    model: Option<String>,
}

/// How requests are authenticated.
enum Auth {
    Key(ApiKey, KeyHeader),
    Entra(Arc<dyn TokenCredential>),
}

/// The state one generation shares between its calls.
struct Run<'a> {
    day: QuizDay,
    plan: [Slot; QUESTIONS_PER_QUIZ],
    recent: &'a RecentQuestions,
    deadline: Instant,
    permits: Semaphore,
    /// The model name the service reported, from the first usable reply.
    model: Mutex<Option<String>>,
}

impl Run<'_> {
    fn remaining(&self) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

/// Parses `retry-after-ms` (preferred, finer) or `retry-after` (seconds or an HTTP date).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = header("retry-after")?;
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = azure_core::time::parse_rfc7231(raw).ok()?;
    let wait = at - azure_core::time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with up to 50% random jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.max_delay);
    let jitter_ms = (exp.as_millis() as u64) / 2;
    let jitter = if jitter_ms == 0 {
        0
    } else {
        (uuid::Uuid::new_v4().as_u128() as u64) % (jitter_ms + 1)
    };
    exp + Duration::from_millis(jitter)
}

/// At most `max` characters of `s`.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Parses a 200 reply: the model's message must have finished normally and hold JSON.
fn parse_completion(body: &str) -> Result<Reply, CallError> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| CallError::Content(format!("the service's reply is not JSON ({e})")))?;
    let choice = &envelope["choices"][0];
    if choice.is_null() {
        return Err(CallError::Content("the reply has no choices".into()));
    }
    let message = &choice["message"];
    match choice["finish_reason"].as_str() {
        Some("content_filter") => {
            return Err(CallError::Content(
                "the output was blocked by the content filter (finish_reason content_filter)"
                    .into(),
            ));
        }
        Some("length") => {
            return Err(CallError::Content(
                "the output was truncated at the token limit (finish_reason length)".into(),
            ));
        }
        Some("stop") | None => {}
        Some(other) => {
            return Err(CallError::Content(format!(
                "the output ended with an unexpected finish_reason '{}'",
                clip(other, 40)
            )));
        }
    }
    if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.trim().is_empty()) {
        return Err(CallError::Content(format!(
            "the model refused: {}",
            clip(refusal.trim(), 160)
        )));
    }
    let content = message["content"]
        .as_str()
        .ok_or_else(|| CallError::Content("the reply has no message content".into()))?;
    let output: Value = serde_json::from_str(content)
        .map_err(|e| CallError::Content(format!("the model's output is not valid JSON ({e})")))?;
    if !output.is_object() {
        return Err(CallError::Content(
            "the model's output is not a JSON object".into(),
        ));
    }
    Ok(Reply {
        output,
        model: envelope["model"].as_str().map(|m| clip(m, 100)),
    })
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// The outcome of one position after validation, verification and regeneration.
struct Settled {
    question: Option<Question>,
    /// Why earlier candidates (or the last one) were rejected, in order.
    rejections: Vec<String>,
    regenerations: u32,
}

/// Generates quizzes with Azure OpenAI and verifies them; see the module documentation.
pub struct OpenAiGenerator {
    settings: OpenAiSettings,
    chat_url: String,
    http: reqwest::Client,
    auth: Auth,
    fallback: Arc<dyn QuizGenerator>,
    bank: &'static Bank,
}

impl OpenAiGenerator {
    /// `credential` is used only when `settings.api_key` is `None`, and is then required.
    /// `fallback` (the bank) supplies the whole quiz when generation fails; single rejected
    /// questions are replaced from the embedded bank.
    pub fn new(
        settings: OpenAiSettings,
        http: reqwest::Client,
        credential: Option<Arc<dyn TokenCredential>>,
        fallback: Arc<dyn QuizGenerator>,
    ) -> Result<Self, ConfigError> {
        let chat_url = settings.chat_url()?;
        let auth = match (&settings.api_key, credential) {
            (Some(key), _) => Auth::Key(key.clone(), settings.key_header),
            (None, Some(cred)) => Auth::Entra(cred),
            (None, None) => {
                return Err(config_err(
                    API_KEY,
                    "is not set and no Entra credential was supplied: set the key, or give the app an identity (QOTD_AZURE_CREDENTIAL) with the 'Cognitive Services OpenAI User' role",
                ));
            }
        };
        Ok(Self {
            settings,
            chat_url,
            http,
            auth,
            fallback,
            bank: Bank::embedded(),
        })
    }

    /// One chat call with retries for throttling, 5xx, timeouts and network errors.
    async fn chat(&self, run: &Run<'_>, kind: &str, body: &Value) -> Result<Reply, CallError> {
        let policy = &self.settings.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = run.remaining().ok_or(CallError::Deadline)?;
            let outcome = {
                // Waiting for a permit counts against the budget like everything else.
                let _permit = tokio::time::timeout(remaining, run.permits.acquire())
                    .await
                    .map_err(|_| CallError::Deadline)?
                    .expect("the semaphore is never closed");
                self.send_once(run, kind, body).await
            };
            let (reason, wait) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry { reason, wait } => (reason, wait),
            };
            if attempt >= policy.max_attempts.max(1) {
                return Err(CallError::Unavailable(format!(
                    "{reason} (gave up after {attempt} attempts)"
                )));
            }
            let wait = match wait {
                Some(w) if w > policy.max_retry_after => {
                    return Err(CallError::Unavailable(format!(
                        "{reason}; the service asked to wait {} s, longer than the {} s allowed",
                        w.as_secs_f32(),
                        policy.max_retry_after.as_secs_f32()
                    )));
                }
                Some(w) => w,
                None => backoff(policy, attempt),
            };
            if Instant::now() + wait >= run.deadline {
                return Err(CallError::Unavailable(format!(
                    "{reason}; no time left in the generation's budget to wait {} s and retry",
                    wait.as_secs_f32()
                )));
            }
            tracing::info!(call = kind, attempt, wait_ms = wait.as_millis() as u64, reason = %reason, "retrying an Azure OpenAI call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, run: &Run<'_>, kind: &str, body: &Value) -> Attempt {
        let Some(remaining) = run.remaining() else {
            return Attempt::Done(Err(CallError::Deadline));
        };
        let timeout = remaining.min(self.settings.request_timeout);
        // When the budget, not the per-request limit, set the timeout, a timeout means the
        // budget is spent.
        let budget_bound = remaining < self.settings.request_timeout;
        let mut request = self.http.post(&self.chat_url).timeout(timeout).json(body);
        request = match &self.auth {
            Auth::Key(key, KeyHeader::ApiKey) => request.header("api-key", key.expose()),
            Auth::Key(key, KeyHeader::Bearer) => request.bearer_auth(key.expose()),
            Auth::Entra(cred) => {
                match tokio::time::timeout(timeout, cred.get_token(&[TOKEN_SCOPE], None)).await {
                    Ok(Ok(token)) => request.bearer_auth(token.token.secret()),
                    // Display, not Debug: azure_core's Debug prints a whole backtrace.
                    Ok(Err(e)) => {
                        return Attempt::Done(Err(CallError::Fatal(format!(
                            "could not get an Entra token for {TOKEN_SCOPE}: {}",
                            clip(&e.to_string(), 300)
                        ))));
                    }
                    Err(_) if budget_bound || run.remaining().is_none() => {
                        return Attempt::Done(Err(CallError::Deadline));
                    }
                    Err(_) => {
                        return Attempt::Retry {
                            reason: format!("no Entra token within {} s", timeout.as_secs_f32()),
                            wait: None,
                        };
                    }
                }
            }
        };
        let started = Instant::now();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() && (budget_bound || run.remaining().is_none()) {
                Attempt::Done(Err(CallError::Deadline))
            } else if e.is_timeout() {
                Attempt::Retry {
                    reason: format!("no complete reply within {} s", timeout.as_secs_f32()),
                    wait: None,
                }
            } else {
                Attempt::Retry {
                    reason: format!("the request failed: {}", clip(&error_chain(&e), 300)),
                    wait: None,
                }
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return transport(e),
        };
        tracing::debug!(
            call = kind,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Azure OpenAI call"
        );
        if status.is_success() {
            return Attempt::Done(parse_completion(&text));
        }
        let (code, message) = self.error_body(&text);
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!(" ({c}: {m})"),
            (Some(c), None) => format!(" ({c})"),
            (None, Some(m)) => format!(" ({m})"),
            (None, None) => String::new(),
        };
        match status.as_u16() {
            429 => Attempt::Retry {
                reason: format!("throttled: HTTP 429{detail}"),
                wait,
            },
            408 => Attempt::Retry {
                reason: format!("HTTP 408{detail}"),
                wait,
            },
            s if status.is_server_error() => Attempt::Retry {
                reason: format!("HTTP {s}{detail}"),
                wait,
            },
            400 if code.as_deref() == Some("content_filter") => {
                Attempt::Done(Err(CallError::Content(format!(
                    "the prompt was blocked by the content filter (HTTP 400{detail})"
                ))))
            }
            s @ (401 | 403) => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP {s}{detail}: the service refused the credentials; check QOTD_OPENAI_API_KEY, or the identity's 'Cognitive Services OpenAI User' role"
            )))),
            404 => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP 404{detail}: no such deployment or path; check QOTD_OPENAI_ENDPOINT, QOTD_OPENAI_DEPLOYMENT and QOTD_OPENAI_API_STYLE"
            )))),
            s => Attempt::Done(Err(CallError::Fatal(format!(
                "HTTP {s}{detail}: the service rejected the request"
            )))),
        }
    }

    /// `error.code` and `error.message` of an error reply, clipped and with the key masked.
    fn error_body(&self, text: &str) -> (Option<String>, Option<String>) {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let error = &v["error"];
        let code = match &error["code"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let mask = |s: String| match &self.settings.api_key {
            Some(k) if !k.expose().is_empty() => s.replace(k.expose(), "[redacted]"),
            _ => s,
        };
        (
            code.map(|c| mask(clip(&c, 60))),
            error["message"].as_str().map(|m| mask(clip(m, 200))),
        )
    }

    fn request_body(
        &self,
        system: &str,
        user: String,
        schema_name: &str,
        schema: Value,
        max_tokens: u32,
    ) -> Value {
        let mut body = json!({
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": user }
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": schema_name, "strict": true, "schema": schema }
            },
            "max_tokens": max_tokens
        });
        if self.settings.api_style == ApiStyle::V1 {
            body["model"] = Value::String(self.settings.deployment.clone());
        }
        body
    }

    fn remember_model(run: &Run<'_>, reply: &Reply) {
        let mut model = run.model.lock().expect("model lock");
        if model.is_none() {
            model.clone_from(&reply.model);
        }
    }

    /// Step 2 and 3: the five-question draft, each position validated on its own.
    async fn draft(&self, run: &Run<'_>) -> Result<Vec<Result<Question, String>>, CallError> {
        let mut user = format!(
            "Write the quiz for {}. Five questions, each about a different fact:\n",
            run.day
        );
        for (i, slot) in run.plan.iter().enumerate() {
            user.push_str(&describe_slot(i + 1, *slot));
            user.push('\n');
        }
        let body = self.request_body(
            WRITER_PROMPT,
            user,
            DRAFT_SCHEMA,
            draft_schema(&run.plan),
            DRAFT_MAX_TOKENS,
        );
        let mut last = CallError::Content("no draft was requested".into());
        for attempt in 1..=DRAFT_ATTEMPTS {
            match self.chat(run, DRAFT_SCHEMA, &body).await {
                Ok(reply) => {
                    Self::remember_model(run, &reply);
                    let mut texts: Vec<String> = Vec::new();
                    let drafted = (0..QUESTIONS_PER_QUIZ)
                        .map(|i| {
                            let raw = &reply.output[format!("question_{}", i + 1)];
                            if raw.is_null() {
                                return Err(format!("the draft has no question_{}", i + 1));
                            }
                            let q = to_question(raw, question_id(run.day, i), run.plan[i])?;
                            let norm = normalise_text(&q.text);
                            if let Some(j) = texts.iter().position(|t| *t == norm) {
                                return Err(format!("it repeats question {} of this quiz", j + 1));
                            }
                            texts.push(norm);
                            if run.recent.contains(&q) {
                                return Err("it repeats a question of the last 60 days".into());
                            }
                            Ok(q)
                        })
                        .collect();
                    return Ok(drafted);
                }
                Err(CallError::Content(why)) => {
                    tracing::info!(day = %run.day, attempt, reason = %why, "unusable quiz draft from Azure OpenAI");
                    last = CallError::Content(format!(
                        "the draft was unusable {attempt} times; last: {why}"
                    ));
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// Step 4: asks for a new question for `position` after the last one was rejected for `why`,
    /// naming the texts it must not repeat. The outer `Result` is the call, the inner one the
    /// validation of what came back.
    async fn regenerate(
        &self,
        run: &Run<'_>,
        position: usize,
        avoid: &[String],
        why: &str,
    ) -> Result<Result<Question, String>, CallError> {
        let slot = run.plan[position];
        let mut user = format!(
            "Write one question for the quiz of {}. {}\nAn earlier question for this place was rejected because {why}. Write a question about a different fact.",
            run.day,
            describe_slot(position + 1, slot)
        );
        if !avoid.is_empty() {
            user.push_str("\nDo not repeat or rephrase any of these questions:\n");
            for text in avoid {
                user.push_str("- ");
                user.push_str(text);
                user.push('\n');
            }
        }
        let body = self.request_body(
            WRITER_PROMPT,
            user,
            REGENERATE_SCHEMA,
            regenerate_schema(slot),
            REGENERATE_MAX_TOKENS,
        );
        let reply = self.chat(run, REGENERATE_SCHEMA, &body).await?;
        Self::remember_model(run, &reply);
        let candidate = to_question(
            &reply.output["question"],
            question_id(run.day, position),
            slot,
        )
        .and_then(|q| {
            let norm = normalise_text(&q.text);
            if avoid.iter().any(|t| normalise_text(t) == norm) {
                Err("it repeats another question of this quiz or a rejected one".into())
            } else if run.recent.contains(&q) {
                Err("it repeats a question of the last 60 days".into())
            } else {
                Ok(q)
            }
        });
        Ok(candidate)
    }

    /// Step 4: a blind answer. `Ok(Ok(()))` when it agrees, `Ok(Err(why))` when it does not or
    /// the checker's reply was unusable, `Err` when the service could not be asked.
    async fn verify(
        &self,
        run: &Run<'_>,
        position: usize,
        q: &Question,
    ) -> Result<Result<(), String>, CallError> {
        let presented = presented_choices(q, run.day, position);
        let user = json!({ "question": q.text, "choices": presented }).to_string();
        let body = self.request_body(
            CHECKER_PROMPT,
            user,
            VERIFY_SCHEMA,
            verify_schema(&presented),
            VERIFY_MAX_TOKENS,
        );
        let reply = match self.chat(run, VERIFY_SCHEMA, &body).await {
            Ok(r) => r,
            Err(CallError::Content(why)) => {
                return Ok(Err(format!("the blind check gave no usable answer: {why}")));
            }
            Err(other) => return Err(other),
        };
        let marked = &q.choices[usize::from(q.correct)];
        let Some(answer) = reply.output["answer"].as_str() else {
            return Ok(Err("the blind check gave no answer".into()));
        };
        let same = |a: &str, b: &str| a.trim().to_lowercase() == b.trim().to_lowercase();
        if !presented.iter().any(|c| same(c, answer)) {
            return Ok(Err(format!(
                "the blind check answered '{}', which is not one of the choices",
                clip(answer, 80)
            )));
        }
        if reply.output["unambiguous"] == Value::Bool(false) {
            return Ok(Err(
                "the blind check found no single correct choice (ambiguous question)".into(),
            ));
        }
        if !same(answer, marked) {
            return Ok(Err(format!(
                "the blind check chose '{}' but '{}' was marked correct",
                clip(answer, 80),
                clip(marked, 80)
            )));
        }
        Ok(Ok(()))
    }

    /// Validation, verification and bounded regeneration of one position.
    async fn settle(
        &self,
        run: &Run<'_>,
        position: usize,
        first: Result<Question, String>,
        others: Vec<String>,
    ) -> Settled {
        let mut rejections = Vec::new();
        let mut avoid = others;
        let mut candidate = first;
        let mut regenerations = 0;
        loop {
            let why = match candidate {
                Ok(q) => match self.verify(run, position, &q).await {
                    Ok(Ok(())) => {
                        return Settled {
                            question: Some(q),
                            rejections,
                            regenerations,
                        };
                    }
                    Ok(Err(why)) => {
                        avoid.push(q.text.clone());
                        why
                    }
                    Err(e) => {
                        rejections.push(format!(
                            "it could not be verified: {}",
                            e.describe(self.settings.max_total)
                        ));
                        break;
                    }
                },
                Err(why) => why,
            };
            rejections.push(why.clone());
            if regenerations == REGENERATE_TRIES {
                break;
            }
            regenerations += 1;
            candidate = match self.regenerate(run, position, &avoid, &why).await {
                Ok(c) => c,
                Err(CallError::Content(why)) => {
                    Err(format!("the regeneration was unusable: {why}"))
                }
                Err(e) => {
                    rejections.push(format!(
                        "it could not be regenerated: {}",
                        e.describe(self.settings.max_total)
                    ));
                    break;
                }
            };
        }
        Settled {
            question: None,
            rejections,
            regenerations,
        }
    }

    /// An unused bank question for `slot`: same category and difficulty if possible, then same
    /// category, then any; never one of `recent` or already taken. Deterministic per day.
    fn bank_question(
        &self,
        day: QuizDay,
        position: usize,
        slot: Slot,
        recent: &RecentQuestions,
        taken_ids: &HashSet<String>,
        taken_texts: &HashSet<String>,
    ) -> Option<Question> {
        let all = self.bank.questions();
        if all.is_empty() {
            return None;
        }
        let start =
            (day.ordinal().rem_euclid(all.len() as i64) as usize + position * 7) % all.len();
        let usable = |q: &Question| {
            !recent.contains(q)
                && !taken_ids.contains(&q.id)
                && !taken_texts.contains(&normalise_text(&q.text))
        };
        let passes: [&dyn Fn(&Question) -> bool; 3] = [
            &|q| q.category == slot.category && q.difficulty == slot.difficulty,
            &|q| q.category == slot.category,
            &|_| true,
        ];
        passes.iter().find_map(|fits| {
            (0..all.len())
                .map(|i| &all[(start + i) % all.len()])
                .find(|q| fits(q) && usable(q))
                .cloned()
        })
    }

    /// Steps 2 to 4. `Err` carries the reason for a full fallback.
    async fn generate_with_ai(&self, run: &Run<'_>) -> Result<Generated, String> {
        let budget = self.settings.max_total;
        let drafted = self.draft(run).await.map_err(|e| {
            format!(
                "Azure OpenAI deployment '{}' gave no usable draft: {}",
                self.settings.deployment,
                e.describe(budget)
            )
        })?;
        let texts: Vec<Option<String>> = drafted
            .iter()
            .map(|d| d.as_ref().ok().map(|q| q.text.clone()))
            .collect();
        let settled =
            futures_util::future::join_all(drafted.into_iter().enumerate().map(|(i, first)| {
                let others: Vec<String> = texts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .filter_map(|(_, t)| t.clone())
                    .collect();
                self.settle(run, i, first, others)
            }))
            .await;

        // Keep the surviving generated questions (the first of any two that ended up alike),
        // then fill the gaps from the bank with questions none of them repeat.
        let mut slots: Vec<Option<Question>> = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        let mut rejections: Vec<Vec<String>> = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        let mut taken_texts = HashSet::new();
        let mut taken_ids = HashSet::new();
        for s in &settled {
            let mut q = s.question.clone();
            let mut reasons = s.rejections.clone();
            if let Some(kept) = &q
                && !taken_texts.insert(normalise_text(&kept.text))
            {
                reasons.push("it repeats another question of this quiz".into());
                q = None;
            }
            if let Some(kept) = &q {
                taken_ids.insert(kept.id.clone());
            }
            slots.push(q);
            rejections.push(reasons);
        }
        let survivors = slots.iter().filter(|q| q.is_some()).count();
        if survivors == 0 {
            let summary: Vec<String> = rejections
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    format!(
                        "question {}: {}",
                        i + 1,
                        r.last().map_or("rejected", String::as_str)
                    )
                })
                .collect();
            return Err(format!(
                "no generated question passed validation and the blind check ({})",
                summary.join("; ")
            ));
        }
        let mut replaced = Vec::new();
        let mut questions = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        for (i, q) in slots.into_iter().enumerate() {
            let id = question_id(run.day, i);
            let reasons = rejections[i].join("; ");
            match q {
                Some(q) => {
                    if settled[i].regenerations > 0 {
                        replaced.push(format!(
                            "question {} ({id}): regenerated {} time(s) because {reasons}",
                            i + 1,
                            settled[i].regenerations
                        ));
                    }
                    questions.push(q);
                }
                None => {
                    let Some(b) = self.bank_question(
                        run.day,
                        i,
                        run.plan[i],
                        run.recent,
                        &taken_ids,
                        &taken_texts,
                    ) else {
                        return Err(format!(
                            "question {} failed ({reasons}) and the bank has no unused question to replace it",
                            i + 1
                        ));
                    };
                    tracing::warn!(day = %run.day, position = i + 1, bank_question = %b.id, reason = %reasons, "generated question replaced from the bank");
                    replaced.push(format!(
                        "question {} ({id}): replaced by bank question {} because {reasons}",
                        i + 1,
                        b.id
                    ));
                    taken_ids.insert(b.id.clone());
                    taken_texts.insert(normalise_text(&b.text));
                    questions.push(b);
                }
            }
        }
        if let Some(bad) = questions.iter().find_map(|q| q.validate().err()) {
            return Err(format!("the assembled quiz is invalid: {bad}"));
        }
        let model = match run.model.lock().expect("model lock").clone() {
            Some(m) if m != self.settings.deployment => {
                format!("{} ({m})", self.settings.deployment)
            }
            _ => self.settings.deployment.clone(),
        };
        tracing::info!(day = %run.day, model = %model, generated = survivors, replaced = replaced.len(), "quiz generated with Azure OpenAI");
        Ok(Generated {
            questions,
            source: QuizSource::OpenAi,
            provenance: Provenance {
                model: Some(model),
                replaced,
                fallback_reason: None,
            },
        })
    }

    /// Step 5: the whole quiz from the fallback generator, with the reason recorded and logged.
    async fn fall_back(
        &self,
        day: QuizDay,
        recent: &RecentQuestions,
        reason: String,
    ) -> Result<Generated, String> {
        // The message itself carries the reason: the alert query matches "fell back to the bank".
        tracing::warn!(day = %day, deployment = %self.settings.deployment, "quiz generation fell back to the bank: {reason}");
        let mut generated = self.fallback.generate(day, recent).await?;
        generated.source = QuizSource::Bank;
        generated.provenance.model = None;
        generated.provenance.fallback_reason = Some(reason);
        Ok(generated)
    }
}

impl fmt::Debug for OpenAiGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiGenerator")
            .field("chat_url", &self.chat_url)
            .field("deployment", &self.settings.deployment)
            .field(
                "auth",
                &match self.auth {
                    Auth::Key(..) => "api key",
                    Auth::Entra(_) => "entra",
                },
            )
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl QuizGenerator for OpenAiGenerator {
    async fn generate(&self, day: QuizDay, recent: &RecentQuestions) -> Result<Generated, String> {
        let budget = self.settings.max_total;
        let run = Run {
            day,
            plan: day_plan(day),
            recent,
            deadline: Instant::now() + budget,
            permits: Semaphore::new(MAX_IN_FLIGHT),
            model: Mutex::new(None),
        };
        // Every call already stops at the deadline; the outer timeout is a backstop against
        // anything that does not (a credential stuck outside its own timeout, say).
        let outcome = tokio::time::timeout_at(
            run.deadline + Duration::from_secs(1),
            self.generate_with_ai(&run),
        )
        .await
        .unwrap_or_else(|_| Err(CallError::Deadline.describe(budget)));
        match outcome {
            Ok(generated) => Ok(generated),
            Err(reason) => self.fall_back(day, recent, reason).await,
        }
    }
}

/// An error with its sources, for messages about network failures.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;

    const BASE: (&str, &str) = (ENDPOINT, "https://res.openai.azure.com/");

    #[test]
    fn settings_absent_without_an_endpoint_and_defaults_are_complete() {
        assert_eq!(OpenAiSettings::from_lookup(lookup(&[])).unwrap(), None);
        let s = OpenAiSettings::from_lookup(lookup(&[BASE, (DEPLOYMENT, "gpt-4o")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint, "https://res.openai.azure.com");
        assert_eq!(s.api_style, ApiStyle::Deployments);
        assert_eq!(s.api_version, DEFAULT_API_VERSION);
        assert_eq!(s.api_key, None);
        assert!(s.uses_entra());
        assert_eq!(s.key_header, KeyHeader::ApiKey);
        assert_eq!(s.request_timeout, Duration::from_secs(30));
        assert_eq!(s.max_total, Duration::from_secs(120));
        assert_eq!(
            s.chat_url().unwrap(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn v1_urls_for_azure_and_for_compatible_servers() {
        let s = |endpoint: &str| {
            OpenAiSettings::from_lookup(lookup(&[
                (ENDPOINT, endpoint),
                (DEPLOYMENT, "org/model:7b"),
                (API_STYLE, "V1"),
                (API_KEY, "k"),
                (API_KEY_HEADER, "authorization"),
            ]))
            .unwrap()
            .unwrap()
        };
        assert_eq!(
            s("https://res.openai.azure.com").chat_url().unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            s("https://res.openai.azure.com/openai/v1/")
                .chat_url()
                .unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        let local = s("http://127.0.0.1:8000/v1");
        assert_eq!(
            local.chat_url().unwrap(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(local.key_header, KeyHeader::Bearer);
    }

    #[test]
    fn setting_errors_name_the_variable_and_never_echo_the_key() {
        let secret = "sk-THIS-IS-SECRET-0123456789";
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ENDPOINT, "http://res.openai.azure.com")], ENDPOINT),
            (&[(ENDPOINT, "not a url")], ENDPOINT),
            (
                &[(ENDPOINT, "https://user:pw@res.openai.azure.com")],
                ENDPOINT,
            ),
            (
                &[(ENDPOINT, "https://res.openai.azure.com?api-version=1")],
                ENDPOINT,
            ),
            (&[BASE], DEPLOYMENT),
            (&[BASE, (DEPLOYMENT, "a/b")], DEPLOYMENT),
            (&[BASE, (DEPLOYMENT, "d"), (API_STYLE, "legacy")], API_STYLE),
            (
                &[BASE, (DEPLOYMENT, "d"), (API_VERSION, "2024-13-01")],
                API_VERSION,
            ),
            (&[BASE, (DEPLOYMENT, "d"), (API_VERSION, "v1")], API_VERSION),
            (
                &[
                    BASE,
                    (DEPLOYMENT, "d"),
                    (
                        API_KEY,
                        "@Microsoft.KeyVault(SecretUri=https://kv/secrets/k)",
                    ),
                ],
                API_KEY,
            ),
            (
                &[
                    BASE,
                    (DEPLOYMENT, "d"),
                    (API_KEY, "sk-THIS-IS-SECRET-0123456789\u{7}"),
                ],
                API_KEY,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (API_KEY_HEADER, "x-key")],
                API_KEY_HEADER,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (TIMEOUT_SECONDS, "0")],
                TIMEOUT_SECONDS,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (MAX_SECONDS, "soon")],
                MAX_SECONDS,
            ),
        ];
        for (vars, variable) in cases {
            let e = OpenAiSettings::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?} -> {e}");
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        for ok in ["2024-10-21", "2025-04-01-preview"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for loopback in [
            "http://localhost:1234",
            "http://[::1]:80",
            "http://127.0.0.2",
        ] {
            assert!(parse_endpoint(loopback).is_ok(), "{loopback}");
        }
    }

    #[test]
    fn the_key_is_redacted_in_debug_output() {
        let s = OpenAiSettings::from_lookup(lookup(&[
            BASE,
            (DEPLOYMENT, "d"),
            (API_KEY, "sk-THIS-IS-SECRET"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "sk-THIS-IS-SECRET");
        let debug = format!("{s:?} {:?}", s.api_key);
        assert!(!debug.contains("sk-THIS-IS-SECRET"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        let generator = OpenAiGenerator::new(
            s,
            reqwest::Client::new(),
            None,
            Arc::new(super::super::bank::BankGenerator::new(Bank::embedded())),
        )
        .unwrap();
        assert!(!format!("{generator:?}").contains("sk-THIS-IS-SECRET"));
    }

    #[test]
    fn entra_needs_a_credential() {
        let s = OpenAiSettings::from_lookup(lookup(&[BASE, (DEPLOYMENT, "d")]))
            .unwrap()
            .unwrap();
        let e = OpenAiGenerator::new(
            s,
            reqwest::Client::new(),
            None,
            Arc::new(super::super::bank::BankGenerator::new(Bank::embedded())),
        )
        .unwrap_err();
        assert_eq!(e.variable, API_KEY);
    }

    #[test]
    fn categories_are_the_bank_categories() {
        let bank: HashSet<&str> = Bank::embedded()
            .questions()
            .iter()
            .map(|q| q.category.as_str())
            .collect();
        assert_eq!(bank, CATEGORIES.into_iter().collect::<HashSet<_>>());
    }

    #[test]
    fn the_plan_is_deterministic_and_rotates() {
        let first = QuizDay::parse("2026-01-01").unwrap();
        let mut seen_mixes = HashSet::new();
        for offset in 0..60u64 {
            let day = QuizDay::from_date(first.date() + chrono::Days::new(offset)).unwrap();
            let plan = day_plan(day);
            assert_eq!(plan, day_plan(day));
            let cats: HashSet<&str> = plan.iter().map(|s| s.category).collect();
            assert_eq!(cats.len(), QUESTIONS_PER_QUIZ, "{day}: categories repeat");
            assert!(
                plan.windows(2)
                    .all(|w| w[0].difficulty as u8 <= w[1].difficulty as u8)
            );
            seen_mixes.insert(plan.map(|s| s.difficulty));
            // Each even/odd pair of days covers all ten categories.
            if day.ordinal() % 2 == 0 {
                let next = QuizDay::from_date(day.date() + chrono::Days::new(1)).unwrap();
                let both: HashSet<&str> = plan
                    .iter()
                    .chain(day_plan(next).iter())
                    .map(|s| s.category)
                    .collect();
                assert_eq!(both.len(), CATEGORIES.len(), "{day}");
            }
        }
        assert_eq!(seen_mixes.len(), 3);
    }

    /// Every object in a schema lists all its properties as required and forbids others.
    fn assert_strict(schema: &Value) {
        match schema {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("object")) {
                    assert_eq!(
                        map.get("additionalProperties"),
                        Some(&json!(false)),
                        "{schema}"
                    );
                    let props: HashSet<&str> = map["properties"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let required: HashSet<&str> = map["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(props, required, "{schema}");
                }
                map.values().for_each(assert_strict);
            }
            Value::Array(items) => items.iter().for_each(assert_strict),
            _ => {}
        }
    }

    #[test]
    fn schemas_are_strict() {
        let plan = day_plan(QuizDay::parse("2026-03-01").unwrap());
        assert_strict(&draft_schema(&plan));
        assert_strict(&regenerate_schema(plan[0]));
        assert_strict(&verify_schema(&[
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
        ]));
    }

    fn raw(text: &str, choices: &[&str], correct: i64, explanation: &str) -> Value {
        json!({
            "category": "science", "difficulty": "easy", "text": text,
            "choices": choices, "correct": correct, "explanation": explanation
        })
    }

    #[test]
    fn generated_questions_are_validated() {
        let slot = Slot {
            category: "science",
            difficulty: Difficulty::Easy,
        };
        let ok = raw(
            "  What is H2O?  ",
            &["Water", "Salt", "Sand", "Air"],
            0,
            "Two hydrogens and one oxygen.",
        );
        let q = to_question(&ok, "ai-x-1".into(), slot).unwrap();
        assert_eq!(q.text, "What is H2O?");
        let long = "x".repeat(201);
        let long_choice = "y".repeat(81);
        let long_expl = "z".repeat(301);
        let bad = [
            (raw(&long, &["a", "b", "c", "d"], 0, "e"), "text"),
            (raw("Q?", &["a", "b", "c", &long_choice], 0, "e"), "choice"),
            (
                raw("Q?", &["a", "b", "c", "d"], 0, &long_expl),
                "explanation",
            ),
            (raw("Q?", &["a", "b", "c"], 0, "e"), "3 choices"),
            (raw("Q?", &["a", "b", "c", "A"], 0, "e"), "repeated"),
            (raw("Q?", &["a", "b", "c", " "], 0, "e"), "empty"),
            (raw("Q?", &["a", "b", "c", "d"], 4, "e"), "correct index"),
            (raw("", &["a", "b", "c", "d"], 0, "e"), "empty"),
            (raw("Q?", &["a", "b", "c", "d"], 0, ""), "empty"),
            (
                json!({"category": "cooking", "difficulty": "easy", "text": "Q?", "choices": ["a","b","c","d"], "correct": 0, "explanation": "e"}),
                "category",
            ),
            (
                json!({"category": "science", "difficulty": "hard", "text": "Q?", "choices": ["a","b","c","d"], "correct": 0, "explanation": "e"}),
                "difficulty",
            ),
            (json!({"text": "Q?"}), "schema"),
        ];
        for (value, expected) in bad {
            let e = to_question(&value, "ai-x-1".into(), slot).unwrap_err();
            assert!(e.contains(expected), "{value} -> {e}");
        }
    }

    #[test]
    fn completions_are_classified() {
        let reply = |finish: &str, content: &str, refusal: Value| {
            json!({"choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "refusal": refusal}}],
                "model": "gpt-4o-2024-08-06"})
            .to_string()
        };
        let ok = parse_completion(&reply("stop", r#"{"a":1}"#, Value::Null)).unwrap();
        assert_eq!(ok.output, json!({"a": 1}));
        assert_eq!(ok.model.as_deref(), Some("gpt-4o-2024-08-06"));
        let content_err = |body: String| match parse_completion(&body) {
            Err(CallError::Content(m)) => m,
            other => panic!(
                "expected a content error, got {:?}",
                other.map(|r| r.output)
            ),
        };
        assert!(content_err(reply("length", r#"{"a":"#, Value::Null)).contains("truncated"));
        assert!(content_err(reply("content_filter", "", Value::Null)).contains("content filter"));
        assert!(
            content_err(reply("stop", "", json!("I can't help with that."))).contains("refused")
        );
        assert!(content_err(reply("stop", "{not json", Value::Null)).contains("not valid JSON"));
        assert!(content_err("<html>".into()).contains("not JSON"));
        assert!(content_err(r#"{"choices": []}"#.into()).contains("no choices"));
    }

    #[test]
    fn retry_after_headers_are_read() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut date = reqwest::header::HeaderMap::new();
        date.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&date), Some(Duration::ZERO));
        let policy = RetryPolicy::default();
        let b1 = backoff(&policy, 1);
        assert!(
            b1 >= Duration::from_millis(500) && b1 <= Duration::from_millis(750),
            "{b1:?}"
        );
        assert!(backoff(&policy, 30) <= Duration::from_secs(12));
    }

    #[test]
    fn the_checker_sees_rotated_choices() {
        let q = Question {
            id: "ai-x-1".into(),
            text: "Q?".into(),
            choices: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            correct: 0,
            explanation: "e".into(),
            category: "science".into(),
            difficulty: Difficulty::Easy,
        };
        let day = QuizDay::parse("2026-03-01").unwrap();
        for pos in 0..QUESTIONS_PER_QUIZ {
            let shown = presented_choices(&q, day, pos);
            assert_ne!(
                shown[0], "a",
                "the correct choice moved away from its position"
            );
            let set: HashSet<&String> = shown.iter().collect();
            assert_eq!(set.len(), 4);
        }
    }
}
