//! HTTP adapter of the quiz context: today's and past quizzes, attempts, history, share text
//! and admin generation. Answers are revealed only for past days, or to a caller for the
//! questions of their own attempt.

use super::{Attempt, Generation, Question, Quiz, QuizError, QuizService};
use crate::kernel::{DisplayName, QuizDay};
use crate::platform::http::{
    ApiRequest, ApiResponse, Problem, RequestContext, bytes_response, json_body, json_response,
};
use chrono::SecondsFormat;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Maps quiz errors to problems (the one place for this context).
pub fn problem(e: QuizError) -> Problem {
    match e {
        QuizError::NotFound(day) => Problem::not_found(format!("there is no quiz for {day}")),
        e @ QuizError::NotOpen { .. } => Problem::conflict("quiz-closed", e.to_string()),
        e @ QuizError::AlreadyExists(_) => Problem::conflict(
            "quiz-exists",
            format!("{e}; use ?force=true to replace it while nobody has attempted it"),
        ),
        e @ QuizError::AlreadyAttempted(_) => Problem::conflict(
            "already-attempted",
            format!("{e}; only one attempt per day is allowed"),
        ),
        e @ QuizError::HasAttempts(_) => Problem::conflict("quiz-has-attempts", e.to_string()),
        QuizError::InvalidAnswers(detail) | QuizError::InvalidReport(detail) => {
            Problem::invalid(detail)
        }
        e @ QuizError::UnknownQuestion { .. } => Problem::not_found(e.to_string()),
        e @ QuizError::AlreadyReported { .. } => {
            Problem::conflict("already-reported", e.to_string())
        }
        QuizError::Generation(e) => Problem::internal(format!("quiz generation failed: {e}")),
        QuizError::Store(e) => Problem::storage(e),
    }
}

fn path_day(req: &ApiRequest) -> Result<QuizDay, Problem> {
    QuizDay::parse(req.param("date"))
        .map_err(|e| Problem::bad_request(format!("path segment 'date': {e}")))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuestionView<'a> {
    id: &'a str,
    text: &'a str,
    choices: &'a [String],
    category: &'a str,
    difficulty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correct_choice: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuizView<'a> {
    date: String,
    closes_at: String,
    source: &'static str,
    answers_revealed: bool,
    questions: Vec<QuestionView<'a>>,
}

fn question_view(q: &Question, reveal: bool) -> QuestionView<'_> {
    QuestionView {
        id: &q.id,
        text: &q.text,
        choices: &q.choices,
        category: &q.category,
        difficulty: q.difficulty.as_str(),
        correct_choice: reveal.then_some(q.correct),
        explanation: reveal.then_some(q.explanation.as_str()),
    }
}

fn quiz_body(quiz: &Quiz, reveal: bool) -> bytes::Bytes {
    bytes::Bytes::from(json_body(&QuizView {
        date: quiz.day.to_string(),
        closes_at: quiz
            .day
            .closes_at()
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        source: quiz.source.as_str(),
        answers_revealed: reveal,
        questions: quiz
            .questions
            .iter()
            .map(|q| question_view(q, reveal))
            .collect(),
    }))
}

/// The quiz as JSON, rendered once per cached quiz (`QuizService::rendered`).
fn quiz_response(service: &QuizService, quiz: &Arc<Quiz>, reveal: bool) -> ApiResponse {
    let body = service
        .rendered
        .get_or_derive((quiz.day, reveal), quiz, |q| quiz_body(q, reveal));
    bytes_response(StatusCode::OK, body)
}

/// `GET /api/quizzes/today`: today's quiz without answers (generated on demand if the timer
/// has not run yet).
pub async fn today(
    service: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    req.query(&[])?;
    let day = ctx.today;
    let quiz = service
        .quiz_or_today(day, ctx.correlation_id.clone())
        .await
        .map_err(problem)?;
    Ok(quiz_response(service, &quiz, false))
}

/// `GET /api/quizzes/{date}`: past days with answers, today without, future days 404.
pub async fn by_date(
    service: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    req.query(&[])?;
    let day = path_day(&req)?;
    let today = ctx.today;
    if day > today {
        return Err(Problem::not_found(format!(
            "there is no quiz for {day} yet; today is {today}"
        )));
    }
    let quiz = service
        .quiz_or_today(day, ctx.correlation_id.clone())
        .await
        .map_err(problem)?;
    Ok(quiz_response(service, &quiz, day < today))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttemptBody {
    /// Any JSON number with an integral value (`2`, `2.0`, `2e0`): JSON Schema's `integer`,
    /// which openapi.yaml promises, admits all of them.
    answers: Vec<serde_json::Number>,
}

/// The answers as whole numbers, or a 422 naming the first one that is not.
fn whole_answers(answers: &[serde_json::Number]) -> Result<Vec<i64>, Problem> {
    answers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() <= 1e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    Problem::invalid(format!(
                        "answers[{i}] is {n}; each answer must be a whole number (a choice index from 0 to 3)"
                    ))
                })
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultView<'a> {
    question_id: &'a str,
    chosen_choice: u8,
    correct_choice: u8,
    is_correct: bool,
    explanation: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptView<'a> {
    date: String,
    score: u32,
    correct: u32,
    total: u32,
    submitted_at: String,
    results: Vec<ResultView<'a>>,
}

/// `POST /api/quizzes/{date}/attempts`: the caller's one attempt at today's quiz, under the
/// display name `registered` resolves once the request itself is valid (registration belongs
/// to the users context; the composition root supplies the lookup).
pub async fn submit(
    quiz: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
    registered: impl Future<Output = Result<DisplayName, Problem>>,
) -> Result<ApiResponse, Problem> {
    let caller = &ctx.principal;
    req.query(&[])?;
    let day = path_day(&req)?;
    let body: AttemptBody = req.json()?;
    let answers = whole_answers(&body.answers)?;
    let display_name = registered.await?;
    let outcome = quiz
        .submit(
            caller.user_id.clone(),
            display_name.as_str(),
            day,
            &answers,
            ctx.correlation_id.clone(),
        )
        .await
        .map_err(problem)?;
    let a = &outcome.attempt;
    let results = outcome
        .quiz
        .questions
        .iter()
        .zip(&a.answers)
        .map(|(q, &chosen)| ResultView {
            question_id: &q.id,
            chosen_choice: chosen,
            correct_choice: q.correct,
            is_correct: chosen == q.correct,
            explanation: &q.explanation,
        })
        .collect();
    Ok(json_response(
        StatusCode::CREATED,
        &AttemptView {
            date: day.to_string(),
            score: a.score,
            correct: a.correct,
            total: a.total,
            submitted_at: a.submitted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            results,
        },
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry {
    date: String,
    score: u32,
    correct: u32,
    total: u32,
    submitted_at: String,
}

/// `GET /api/users/me/attempts?limit=`: the caller's attempts, newest first.
pub async fn history(
    quiz: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let caller = &ctx.principal;
    let query = req.query(&["limit"])?;
    let limit = query.int("limit", 30, 1..=100)? as u32;
    let attempts = quiz
        .history(&caller.user_id, limit)
        .await
        .map_err(problem)?;
    let entries: Vec<HistoryEntry> = attempts
        .iter()
        .map(|a: &Attempt| HistoryEntry {
            date: a.day.to_string(),
            score: a.score,
            correct: a.correct,
            total: a.total,
            submitted_at: a.submitted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "attempts": entries }),
    ))
}

/// `GET /api/users/me/attempts/{date}/share`: a spoiler-free result line and a plain-text
/// variant for screen readers; neither contains questions or answers.
pub async fn share(
    quiz: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let caller = &ctx.principal;
    req.query(&[])?;
    let day = path_day(&req)?;
    let attempt = quiz
        .attempt(&caller.user_id, day)
        .await
        .map_err(problem)?
        .ok_or_else(|| Problem::not_found(format!("you have no attempt for {day}")))?;
    let quiz = quiz.quiz(day).await.map_err(problem)?;
    let marks: Vec<bool> = quiz
        .questions
        .iter()
        .zip(&attempt.answers)
        .map(|(q, a)| q.correct == *a)
        .collect();
    let emoji: String = marks
        .iter()
        .map(|ok| if *ok { '✅' } else { '❌' })
        .collect();
    let words: Vec<String> = marks
        .iter()
        .enumerate()
        .map(|(i, ok)| format!("question {} {}", i + 1, if *ok { "right" } else { "wrong" }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "date": day.to_string(),
            "score": attempt.score,
            "correct": attempt.correct,
            "total": attempt.total,
            "text": format!("qotd {day} {}/{} {emoji}", attempt.correct, attempt.total),
            "plainText": format!("qotd {day}: {} of {} correct ({}).", attempt.correct, attempt.total, words.join(", ")),
        }),
    ))
}

/// `POST /api/admin/quizzes/{date}/generate[?force=true]` (role `admin`): 201 with the new
/// quiz (answers included, for review); 409 if it exists, or with `force` if it has attempts.
pub async fn admin_generate(
    quiz: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let query = req.query(&["force"])?;
    let force = match query.get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "query parameter 'force' is '{}'; expected true or false",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let day = path_day(&req)?;
    let correlation = ctx.correlation_id.clone();
    let quiz = match quiz
        .ensure_generated(day, correlation.clone())
        .await
        .map_err(problem)?
    {
        Generation::Created(q) => q,
        Generation::Existed(_) if force => {
            quiz.regenerate(day, correlation).await.map_err(problem)?
        }
        Generation::Existed(_) => return Err(problem(QuizError::AlreadyExists(day))),
    };
    // A fresh generation: rendered directly, not kept (admin-only, rare).
    Ok(bytes_response(StatusCode::CREATED, quiz_body(&quiz, true)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportView<'a> {
    date: String,
    question_id: &'a str,
    user_id: &'a str,
    reason: &'a str,
    created_at: String,
}

fn report_view(r: &super::QuestionReport) -> ReportView<'_> {
    ReportView {
        date: r.day.to_string(),
        question_id: &r.question_id,
        user_id: r.user_id.as_str(),
        reason: &r.reason,
        created_at: r.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// `POST /api/quizzes/{date}/questions/{questionId}/reports {"reason"}`: a player reports a
/// question of today's or a past quiz; one report per player per question (409 on repeat).
pub async fn report(
    quiz: &QuizService,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let caller = &ctx.principal;
    req.query(&[])?;
    let day = path_day(&req)?;
    let body: ReportBody = req.json()?;
    let question_id = req.param("questionId").to_owned();
    let report = quiz
        .report(caller.user_id.clone(), day, &question_id, &body.reason)
        .await
        .map_err(problem)?;
    Ok(json_response(StatusCode::CREATED, &report_view(&report)))
}

/// `GET /api/admin/reports?limit=&offset=` (role `admin`): reports, newest first.
pub async fn admin_reports(
    quiz: &QuizService,
    _ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let query = req.query(&["limit", "offset"])?;
    let limit = query.int("limit", 50, 1..=200)? as u32;
    let offset = query.int("offset", 0, 0..=1_000_000)?;
    let reports = quiz.reports(limit, offset).await.map_err(problem)?;
    let views: Vec<ReportView<'_>> = reports.iter().map(report_view).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "limit": limit, "offset": offset, "reports": views }),
    ))
}
