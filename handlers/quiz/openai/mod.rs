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
//! Transport: at most two requests in flight per generation; 429 honours `retry-after-ms`,
//! `x-ms-retry-after-ms` or `retry-after` (capped at [`MAX_RETRY_AFTER`], and within the time
//! budget); 408, 5xx, timeouts and connection errors back off with the platform's one policy
//! ([`crate::platform::retry`], numbers in [`DEFAULT_RETRY`]), and so does a failed Entra token
//! request; 401, 403, 404 and other 4xx stop using the service for this generation (they will
//! not heal by retrying).
//!
//! Reasoning models (o-series, GPT-5 family; `QOTD_OPENAI_REASONING`): every call sends
//! `max_completion_tokens`, never `max_tokens`; a reasoning model gets no sampling parameters
//! (`temperature`, `top_p`, ...) and token budgets sized for its hidden reasoning
//! (`QOTD_OPENAI_MAX_COMPLETION_TOKENS`). In `auto` mode the deployment name decides, and a
//! reply naming a reasoning model or a 400 rejecting a sampling parameter switches the client
//! to the reasoning shape for good (the rejected call is sent again at once).
//!
//! Layout: `settings` (the `QOTD_OPENAI_*` variables), `plan` (the day's slots), `request`
//! (prompts, schemas, bodies), `client` (HTTP, auth, retries, reply classification),
//! `validate` (what the model wrote), `generator` (the steps above). The per-question bank
//! replacement is the bank's own ([`Bank::replacement`](super::bank::Bank::replacement)).

mod client;
mod generator;
mod plan;
mod request;
mod settings;
mod validate;

pub use crate::platform::retry::RetryPolicy;
pub use client::{MAX_RETRY_AFTER, TOKEN_SCOPE};
pub use generator::{DRAFT_ATTEMPTS, MAX_IN_FLIGHT, OpenAiGenerator, REGENERATE_TRIES};
pub use plan::{CATEGORIES, Slot, day_plan, question_id};
pub use request::{DRAFT_SCHEMA, REGENERATE_SCHEMA, VERIFY_SCHEMA};
pub use settings::{
    ApiKey, ApiStyle, DEFAULT_API_VERSION, DEFAULT_RETRY, KeyHeader, OpenAiSettings,
};
pub use validate::{MAX_CHOICE_CHARS, MAX_EXPLANATION_CHARS, MAX_TEXT_CHARS};

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
