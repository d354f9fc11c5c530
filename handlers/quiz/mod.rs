//! Quiz context: the daily quiz, its generation and players' attempts. Owns the `quiz_*`
//! tables; publishes `DailyQuizGenerated` and `QuizAttemptEvaluated`.
//!
//! **Invariant:** one quiz per UTC day and one attempt per user per day, both enforced by the
//! database's primary keys, never by a check-then-insert in code.

pub mod bank;
pub mod http;
pub mod openai;
pub mod store;
pub mod timer;

use crate::kernel::events::{DailyQuizGeneratedV1, EventType, QuizAttemptEvaluatedV1};
use crate::kernel::{QuizDay, UserId};
use crate::platform::clock::Clock;
use crate::platform::events::NewEvent;
use crate::platform::memo::Derived;
use crate::platform::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Questions per quiz.
pub const QUESTIONS_PER_QUIZ: usize = 5;
/// Choices per question.
pub const CHOICES_PER_QUESTION: usize = 4;
/// Points for each correct answer.
pub const POINTS_PER_CORRECT: u32 = 10;
/// A question is not reused within this many days.
pub const NO_REPEAT_DAYS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Medium => "medium",
            Self::Hard => "hard",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "easy" => Ok(Self::Easy),
            "medium" => Ok(Self::Medium),
            "hard" => Ok(Self::Hard),
            other => Err(format!(
                "unknown difficulty '{other}' (expected easy, medium or hard)"
            )),
        }
    }
}

/// One multiple-choice question with its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub choices: Vec<String>,
    pub correct: u8,
    pub explanation: String,
    pub category: String,
    pub difficulty: Difficulty,
}

impl Question {
    /// Checks the shape every stored question must have: 4 distinct non-empty choices, one
    /// correct index, non-empty text, explanation and category.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        if id.is_empty()
            || self.text.trim().is_empty()
            || self.explanation.trim().is_empty()
            || self.category.is_empty()
        {
            return Err(format!(
                "question '{id}' has an empty id, text, explanation or category"
            ));
        }
        if self.choices.len() != CHOICES_PER_QUESTION {
            return Err(format!(
                "question '{id}' has {} choices; exactly {CHOICES_PER_QUESTION} are required",
                self.choices.len()
            ));
        }
        let distinct: HashSet<String> = self
            .choices
            .iter()
            .map(|c| c.trim().to_lowercase())
            .collect();
        if distinct.len() != CHOICES_PER_QUESTION
            || self.choices.iter().any(|c| c.trim().is_empty())
        {
            return Err(format!("question '{id}' has empty or repeated choices"));
        }
        if usize::from(self.correct) >= CHOICES_PER_QUESTION {
            return Err(format!(
                "question '{id}' marks choice {} correct; it must be 0..=3",
                self.correct
            ));
        }
        Ok(())
    }
}

/// Questions used recently, by id and by normalised text (see `normalise_text`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentQuestions {
    pub ids: HashSet<String>,
    pub texts: HashSet<String>,
}

impl RecentQuestions {
    /// Adds one question.
    pub fn insert(&mut self, id: &str, text: &str) {
        self.ids.insert(id.to_owned());
        self.texts.insert(normalise_text(text));
    }

    /// Whether `q` repeats a recent question by id or by text.
    pub fn contains(&self, q: &Question) -> bool {
        self.ids.contains(&q.id) || self.texts.contains(&normalise_text(&q.text))
    }
}

/// The comparison form of a question text: lower-case letters and digits only, so spacing,
/// punctuation and case do not make a repeat look new.
pub fn normalise_text(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where a quiz's questions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuizSource {
    Bank,
    OpenAi,
}

impl QuizSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bank => "bank",
            Self::OpenAi => "openai",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "bank" => Ok(Self::Bank),
            "openai" => Ok(Self::OpenAi),
            other => Err(format!("unknown quiz source '{other}'")),
        }
    }
}

/// How a quiz came to be: which model wrote it and which questions were replaced and why.
/// Stored with the quiz for audit; never shown to players.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Provenance {
    /// The model (deployment) that wrote the questions, if any.
    pub model: Option<String>,
    /// One line per replaced question: position, id and reason.
    pub replaced: Vec<String>,
    /// Why the whole quiz fell back to the offline bank, if it did.
    pub fallback_reason: Option<String>,
}

/// The quiz of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiz {
    pub day: QuizDay,
    pub questions: Vec<Question>,
    pub source: QuizSource,
    pub generated_at: DateTime<Utc>,
    pub provenance: Provenance,
}

/// What a generator produced for a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub questions: Vec<Question>,
    pub source: QuizSource,
    pub provenance: Provenance,
}

/// A player's report that a question is wrong or unclear (one per user per question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionReport {
    pub day: QuizDay,
    pub question_id: String,
    pub user_id: UserId,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl QuestionReport {
    pub const MAX_REASON_CHARS: usize = 500;

    /// Checks the reason: trimmed, 1..=500 characters, no control characters but line breaks.
    pub fn parse_reason(raw: &str) -> Result<String, String> {
        let reason = raw.trim();
        let len = reason.chars().count();
        if len == 0 {
            return Err("reason must not be empty".into());
        }
        if len > Self::MAX_REASON_CHARS {
            return Err(format!(
                "reason is {len} characters long; the limit is {}",
                Self::MAX_REASON_CHARS
            ));
        }
        if reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err("reason must not contain control characters other than line breaks".into());
        }
        Ok(reason.to_owned())
    }
}

impl Quiz {
    /// Checks the quiz invariants: 5 valid questions with distinct ids.
    pub fn validate(&self) -> Result<(), String> {
        if self.questions.len() != QUESTIONS_PER_QUIZ {
            return Err(format!(
                "quiz {} has {} questions; exactly {QUESTIONS_PER_QUIZ} are required",
                self.day,
                self.questions.len()
            ));
        }
        let ids: HashSet<&str> = self.questions.iter().map(|q| q.id.as_str()).collect();
        if ids.len() != self.questions.len() {
            return Err(format!("quiz {} repeats a question", self.day));
        }
        self.questions.iter().try_for_each(Question::validate)
    }

    /// Scores answers (one choice index per question, in order). Errors name the bad value.
    pub fn evaluate(&self, answers: &[i64]) -> Result<Evaluation, String> {
        if answers.len() != self.questions.len() {
            return Err(format!(
                "answers has {} entries; this quiz has {} questions",
                answers.len(),
                self.questions.len()
            ));
        }
        let mut choices = Vec::with_capacity(answers.len());
        for (i, &a) in answers.iter().enumerate() {
            match u8::try_from(a) {
                Ok(c) if usize::from(c) < CHOICES_PER_QUESTION => choices.push(c),
                _ => {
                    return Err(format!(
                        "answers[{i}] is {a}; each answer must be a choice index from 0 to {}",
                        CHOICES_PER_QUESTION - 1
                    ));
                }
            }
        }
        let correct = self
            .questions
            .iter()
            .zip(&choices)
            .filter(|(q, c)| q.correct == **c)
            .count() as u32;
        Ok(Evaluation {
            choices,
            correct,
            score: correct * POINTS_PER_CORRECT,
        })
    }
}

/// The scored form of a set of answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub choices: Vec<u8>,
    pub correct: u32,
    pub score: u32,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub user_id: UserId,
    pub day: QuizDay,
    pub answers: Vec<u8>,
    pub correct: u32,
    pub total: u32,
    pub score: u32,
    pub submitted_at: DateTime<Utc>,
}

/// Outcome of an insert guarded by a unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    AlreadyExists,
}

/// Outcome of replacing a quiz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Yes,
    /// Somebody attempted it already; nothing changed.
    HasAttempts,
    /// There was no quiz to replace; nothing changed.
    Missing,
}

/// Persistence of the quiz context.
#[async_trait]
pub trait QuizRepo: Send + Sync {
    /// Inserts quiz and event in one transaction; `AlreadyExists` if the day has a quiz.
    async fn insert_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Inserted, StoreError>;
    /// Replaces the day's quiz and writes `event`, in one transaction, only while it has no attempts.
    async fn replace_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Replaced, StoreError>;
    async fn quiz(&self, day: QuizDay) -> Result<Option<Quiz>, StoreError>;
    /// The questions used on days in `from..until` (until excluded).
    async fn recent_questions(
        &self,
        from: QuizDay,
        until: QuizDay,
    ) -> Result<RecentQuestions, StoreError>;
    /// Inserts attempt and event in one transaction; `AlreadyExists` if the user attempted that day.
    async fn insert_attempt(
        &self,
        attempt: &Attempt,
        event: &NewEvent,
    ) -> Result<Inserted, StoreError>;
    async fn attempt(&self, user: &UserId, day: QuizDay) -> Result<Option<Attempt>, StoreError>;
    /// The user's attempts, newest day first.
    async fn attempts(&self, user: &UserId, limit: u32) -> Result<Vec<Attempt>, StoreError>;
    /// Stores a report; `AlreadyExists` if this user reported this question of this day before.
    async fn insert_report(&self, report: &QuestionReport) -> Result<Inserted, StoreError>;
    /// Reports, newest first.
    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<QuestionReport>, StoreError>;
}

/// Produces the questions of a day. Implementations: the offline bank (`bank`, the default)
/// and Azure OpenAI with the bank as fallback (`openai`).
#[async_trait]
pub trait QuizGenerator: Send + Sync {
    /// Five valid questions for `day` that repeat none of `recent` (the questions of the
    /// previous 60 days, by id and by normalised text), with their source and provenance.
    async fn generate(&self, day: QuizDay, recent: &RecentQuestions) -> Result<Generated, String>;
}

/// Errors callers act on.
#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    #[error("there is no quiz for {0}")]
    NotFound(QuizDay),
    #[error("the quiz for {day} is not open for attempts; only today's quiz ({today}) is")]
    NotOpen { day: QuizDay, today: QuizDay },
    #[error("the quiz for {0} already exists")]
    AlreadyExists(QuizDay),
    #[error("you have already attempted the quiz for {0}")]
    AlreadyAttempted(QuizDay),
    #[error("the quiz for {0} has attempts and can no longer be replaced")]
    HasAttempts(QuizDay),
    #[error("{0}")]
    InvalidAnswers(String),
    #[error("{0}")]
    InvalidReport(String),
    #[error("question '{question_id}' is not part of the quiz for {day}")]
    UnknownQuestion { day: QuizDay, question_id: String },
    #[error("you have already reported question '{question_id}' of {day}")]
    AlreadyReported { day: QuizDay, question_id: String },
    #[error("quiz generation failed: {0}")]
    Generation(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly stored attempt plus the quiz it was scored against (for the per-question reveal).
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    pub quiz: Arc<Quiz>,
}

/// Whether `ensure_generated` created the quiz.
#[derive(Debug, Clone)]
pub enum Generation {
    Created(Arc<Quiz>),
    Existed(Arc<Quiz>),
}

/// The quiz service. Keeps recently read quizzes in memory for `CACHE_TTL`: a quiz only changes
/// through `regenerate`, which refreshes this instance's copy at once; other instances see the
/// change within the TTL (and no attempt can exist on a replaced quiz).
pub struct QuizService {
    repo: Arc<dyn QuizRepo>,
    generator: Arc<dyn QuizGenerator>,
    clock: Arc<dyn Clock>,
    cache: RwLock<HashMap<QuizDay, (Arc<Quiz>, Instant)>>,
    /// Held while a quiz is being generated, so concurrent requests for a missing quiz wait
    /// for one generation instead of each starting their own (an LLM call is slow and costly).
    /// Across instances the primary key still guarantees a single stored quiz.
    generating: tokio::sync::Mutex<()>,
    /// The HTTP adapter's rendered quiz bodies, by (day, answers revealed): kept here because
    /// they live exactly as long as the cached `Arc<Quiz>` they were rendered from.
    pub(crate) rendered: Derived<(QuizDay, bool), Quiz, bytes::Bytes>,
}

const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX_DAYS: usize = 16;

impl QuizService {
    pub fn new(
        repo: Arc<dyn QuizRepo>,
        generator: Arc<dyn QuizGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repo,
            generator,
            clock,
            cache: RwLock::new(HashMap::new()),
            generating: tokio::sync::Mutex::new(()),
            rendered: Derived::default(),
        }
    }

    /// Today's quiz day (UTC), owned by the server.
    pub fn today(&self) -> QuizDay {
        QuizDay::of(self.clock.now())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The quiz of `day`; today's is generated on demand if the timer has not made it yet, so
    /// "today" never 404s while a quiz can be made.
    pub async fn quiz_or_today(
        &self,
        day: QuizDay,
        correlation_id: Option<String>,
    ) -> Result<Arc<Quiz>, QuizError> {
        match self.quiz(day).await {
            Err(QuizError::NotFound(_)) if day == self.today() => {
                match self.ensure_generated(day, correlation_id).await? {
                    Generation::Created(q) | Generation::Existed(q) => Ok(q),
                }
            }
            other => other,
        }
    }

    /// The quiz of `day`, from the cache when fresh.
    pub async fn quiz(&self, day: QuizDay) -> Result<Arc<Quiz>, QuizError> {
        if let Some((quiz, at)) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&day)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(quiz.clone());
        }
        let quiz = Arc::new(self.repo.quiz(day).await?.ok_or(QuizError::NotFound(day))?);
        self.remember(quiz.clone());
        Ok(quiz)
    }

    fn remember(&self, quiz: Arc<Quiz>) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_MAX_DAYS
            && !cache.contains_key(&quiz.day)
            && let Some(oldest) = cache.keys().min().copied()
        {
            cache.remove(&oldest);
        }
        cache.insert(quiz.day, (quiz, Instant::now()));
    }

    async fn build(&self, day: QuizDay) -> Result<Quiz, QuizError> {
        let recent = self
            .repo
            .recent_questions(day.minus_days(NO_REPEAT_DAYS), day)
            .await?;
        let generated = self
            .generator
            .generate(day, &recent)
            .await
            .map_err(QuizError::Generation)?;
        let quiz = Quiz {
            day,
            questions: generated.questions,
            source: generated.source,
            generated_at: self.clock.now(),
            provenance: generated.provenance,
        };
        quiz.validate().map_err(QuizError::Generation)?;
        Ok(quiz)
    }

    fn generated_event(quiz: &Quiz, correlation_id: Option<String>) -> NewEvent {
        NewEvent::new(
            EventType::DailyQuizGenerated,
            format!("quizzes/{}", quiz.day),
            &DailyQuizGeneratedV1 {
                quiz_date: quiz.day.to_string(),
                question_count: quiz.questions.len() as u32,
                source: quiz.source.as_str().to_owned(),
                generated_at: quiz
                    .generated_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            quiz.generated_at,
            correlation_id,
        )
    }

    /// Creates the quiz of `day` unless it exists. Safe to call from many instances at once:
    /// the insert is guarded by the primary key, so exactly one quiz is ever stored.
    pub async fn ensure_generated(
        &self,
        day: QuizDay,
        correlation_id: Option<String>,
    ) -> Result<Generation, QuizError> {
        if let Ok(existing) = self.quiz(day).await {
            return Ok(Generation::Existed(existing));
        }
        let _single_flight = self.generating.lock().await;
        if let Ok(existing) = self.quiz(day).await {
            return Ok(Generation::Existed(existing));
        }
        let quiz = self.build(day).await?;
        let event = Self::generated_event(&quiz, correlation_id);
        match self.repo.insert_quiz(&quiz, &event).await? {
            Inserted::Yes => {
                tracing::info!(day = %day, source = quiz.source.as_str(), "quiz generated");
                let quiz = Arc::new(quiz);
                self.remember(quiz.clone());
                Ok(Generation::Created(quiz))
            }
            Inserted::AlreadyExists => Ok(Generation::Existed(self.quiz(day).await?)),
        }
    }

    /// Replaces the quiz of `day` while nobody has attempted it.
    pub async fn regenerate(
        &self,
        day: QuizDay,
        correlation_id: Option<String>,
    ) -> Result<Arc<Quiz>, QuizError> {
        let _single_flight = self.generating.lock().await;
        let quiz = self.build(day).await?;
        let event = Self::generated_event(&quiz, correlation_id);
        match self.repo.replace_quiz(&quiz, &event).await? {
            Replaced::Yes => {
                let quiz = Arc::new(quiz);
                self.remember(quiz.clone());
                Ok(quiz)
            }
            Replaced::HasAttempts => Err(QuizError::HasAttempts(day)),
            Replaced::Missing => Err(QuizError::NotFound(day)),
        }
    }

    /// Scores and stores the caller's only attempt at today's quiz, with its event.
    pub async fn submit(
        &self,
        user: UserId,
        display_name: &str,
        day: QuizDay,
        answers: &[i64],
        correlation_id: Option<String>,
    ) -> Result<AttemptOutcome, QuizError> {
        let now = self.clock.now();
        let today = QuizDay::of(now);
        if day != today {
            return Err(QuizError::NotOpen { day, today });
        }
        let quiz = self.quiz_or_today(day, correlation_id.clone()).await?;
        let eval = quiz.evaluate(answers).map_err(QuizError::InvalidAnswers)?;
        let attempt = Attempt {
            user_id: user,
            day,
            answers: eval.choices,
            correct: eval.correct,
            total: quiz.questions.len() as u32,
            score: eval.score,
            submitted_at: now,
        };
        let event = NewEvent::new(
            EventType::QuizAttemptEvaluated,
            format!("quizzes/{day}/attempts/{}", attempt.user_id),
            &QuizAttemptEvaluatedV1 {
                user_id: attempt.user_id.to_string(),
                display_name: display_name.to_owned(),
                quiz_date: day.to_string(),
                iso_week: day.iso_week(),
                score: attempt.score,
                max_score: attempt.total * POINTS_PER_CORRECT,
                correct: attempt.correct,
                total: attempt.total,
                submitted_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            now,
            correlation_id,
        );
        match self.repo.insert_attempt(&attempt, &event).await? {
            Inserted::Yes => Ok(AttemptOutcome { attempt, quiz }),
            Inserted::AlreadyExists => Err(QuizError::AlreadyAttempted(day)),
        }
    }

    pub async fn attempt(&self, user: &UserId, day: QuizDay) -> Result<Option<Attempt>, QuizError> {
        Ok(self.repo.attempt(user, day).await?)
    }

    pub async fn history(&self, user: &UserId, limit: u32) -> Result<Vec<Attempt>, QuizError> {
        Ok(self.repo.attempts(user, limit).await?)
    }

    /// Records the caller's report on a question of a quiz that is open or past.
    pub async fn report(
        &self,
        user: UserId,
        day: QuizDay,
        question_id: &str,
        reason: &str,
    ) -> Result<QuestionReport, QuizError> {
        let reason = QuestionReport::parse_reason(reason).map_err(QuizError::InvalidReport)?;
        if day > self.today() {
            return Err(QuizError::NotFound(day));
        }
        let quiz = self.quiz(day).await?;
        if !quiz.questions.iter().any(|q| q.id == question_id) {
            return Err(QuizError::UnknownQuestion {
                day,
                question_id: question_id.to_owned(),
            });
        }
        let report = QuestionReport {
            day,
            question_id: question_id.to_owned(),
            user_id: user,
            reason,
            created_at: self.clock.now(),
        };
        match self.repo.insert_report(&report).await? {
            Inserted::Yes => Ok(report),
            Inserted::AlreadyExists => Err(QuizError::AlreadyReported {
                day,
                question_id: question_id.to_owned(),
            }),
        }
    }

    /// Reports for admins, newest first.
    pub async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<QuestionReport>, QuizError> {
        Ok(self.repo.reports(limit, offset).await?)
    }
}
