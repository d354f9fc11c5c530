//! `QuizRepo` on SQL Server (`quiz.quizzes`, `quiz.questions`, `quiz.attempts`, `quiz.reports`).

use super::tsql as sql;
use crate::kernel::{QuizDay, UserId};
use crate::platform::events::NewEvent;
use crate::platform::store::StoreError;
use crate::platform::store::mssql::{
    Conn, DbError, Mssql, Tx, col, day, insert_event, ms, opt_text, parse_day, text, unsigned,
};
use crate::quiz::{
    Attempt, Difficulty, Inserted, Provenance, Question, QuestionReport, Quiz, QuizRepo,
    QuizSource, RecentQuestions, Replaced,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tiberius::Row;

/// Constraints whose violation means "already exists" (a safety net behind the lock hints).
const QUIZZES_PK: &str = "quiz_quizzes_pk";
const ATTEMPTS_PK: &str = "quiz_attempts_pk";
const REPORTS_PK: &str = "quiz_reports_pk";

fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> DbError {
    move |e| DbError::corrupt(format!("{what}: {e}"))
}

fn provenance_json(quiz: &Quiz) -> String {
    serde_json::to_string(&quiz.provenance).expect("provenance serialises")
}

async fn insert_questions(c: &mut Conn, quiz: &Quiz) -> Result<(), DbError> {
    let d = day(quiz.day);
    for (pos, q) in quiz.questions.iter().enumerate() {
        let choices = serde_json::to_string(&q.choices).expect("strings serialise");
        let position = u8::try_from(pos).map_err(|_| DbError::corrupt("too many questions"))?;
        c.execute(
            sql::QUESTION_INSERT,
            &[
                &d,
                &position,
                &q.id.as_str(),
                &q.text.as_str(),
                &choices.as_str(),
                &q.correct,
                &q.explanation.as_str(),
                &q.category.as_str(),
                &q.difficulty.as_str(),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn load_quiz(c: &mut Conn, d: QuizDay) -> Result<Option<Quiz>, DbError> {
    let rows = c.query(sql::QUIZ_SELECT, &[&day(d)]).await?;
    let Some(head) = rows.first() else {
        return Ok(None);
    };
    let source =
        QuizSource::parse(&text(head, 0, "quiz.quizzes.source")?).map_err(DbError::corrupt)?;
    let generated_at = col::<DateTime<Utc>>(head, 1, "quiz.quizzes.generated_at")?;
    let provenance = serde_json::from_str::<Provenance>(&text(head, 2, "quiz.quizzes.provenance")?)
        .map_err(corrupt("quiz provenance"))?;
    let mut questions = Vec::with_capacity(rows.len());
    for r in &rows {
        // LEFT JOIN: a quiz without questions yields one row of NULL question columns.
        let Some(id) = opt_text(r, 3, "quiz.questions.question_id")? else {
            continue;
        };
        questions.push(Question {
            id,
            text: text(r, 4, "quiz.questions.text")?,
            choices: serde_json::from_str(&text(r, 5, "quiz.questions.choices")?)
                .map_err(corrupt("question choices"))?,
            correct: col::<u8>(r, 6, "quiz.questions.correct_choice")?,
            explanation: text(r, 7, "quiz.questions.explanation")?,
            category: text(r, 8, "quiz.questions.category")?,
            difficulty: Difficulty::parse(&text(r, 9, "quiz.questions.difficulty")?)
                .map_err(DbError::corrupt)?,
        });
    }
    Ok(Some(Quiz {
        day: d,
        questions,
        source,
        generated_at,
        provenance,
    }))
}

fn to_attempt(r: &Row) -> Result<Attempt, DbError> {
    Ok(Attempt {
        user_id: UserId::parse(&text(r, 0, "quiz.attempts.user_id")?).map_err(DbError::corrupt)?,
        day: parse_day(col::<NaiveDate>(r, 1, "quiz.attempts.quiz_date")?)?,
        answers: serde_json::from_str(&text(r, 2, "quiz.attempts.answers")?)
            .map_err(corrupt("attempt answers"))?,
        correct: unsigned(
            col::<i32>(r, 3, "quiz.attempts.correct_count")?.into(),
            "correct_count",
        )?,
        total: unsigned(col::<i32>(r, 4, "quiz.attempts.total")?.into(), "total")?,
        score: unsigned(col::<i32>(r, 5, "quiz.attempts.score")?.into(), "score")?,
        submitted_at: col::<DateTime<Utc>>(r, 6, "quiz.attempts.submitted_at")?,
    })
}

fn int(v: u32, what: &str) -> Result<i32, DbError> {
    i32::try_from(v).map_err(|_| DbError::corrupt(format!("{what} {v} does not fit an int column")))
}

fn unique_as_exists<T>(
    result: Result<T, DbError>,
    constraint: &str,
    exists: T,
) -> Result<T, StoreError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) if e.is_unique_violation_of(constraint) => Ok(exists),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl QuizRepo for Mssql {
    async fn insert_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Inserted, StoreError> {
        let provenance = provenance_json(quiz);
        let provenance = provenance.as_str();
        let result = self
            .write("quiz.insert_quiz", |c, _| {
                Box::pin(async move {
                    let n = c
                        .execute(
                            sql::QUIZ_INSERT,
                            &[
                                &day(quiz.day),
                                &quiz.source.as_str(),
                                &ms(quiz.generated_at),
                                &provenance,
                            ],
                        )
                        .await?;
                    if n == 0 {
                        return Ok(Tx::Rollback(Inserted::AlreadyExists));
                    }
                    insert_questions(c, quiz).await?;
                    insert_event(c, event).await?;
                    Ok(Tx::Commit(Inserted::Yes))
                })
            })
            .await;
        unique_as_exists(result, QUIZZES_PK, Inserted::AlreadyExists)
    }

    async fn replace_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Replaced, StoreError> {
        let provenance = provenance_json(quiz);
        let provenance = provenance.as_str();
        Ok(self
            .write("quiz.replace_quiz", |c, _| {
                Box::pin(async move {
                    let d = day(quiz.day);
                    if c.query(sql::QUIZ_LOCK, &[&d]).await?.is_empty() {
                        return Ok(Tx::Rollback(Replaced::Missing));
                    }
                    if !c.query(sql::QUIZ_HAS_ATTEMPTS, &[&d]).await?.is_empty() {
                        return Ok(Tx::Rollback(Replaced::HasAttempts));
                    }
                    c.execute(sql::QUESTIONS_DELETE, &[&d]).await?;
                    c.execute(
                        sql::QUIZ_UPDATE,
                        &[
                            &d,
                            &quiz.source.as_str(),
                            &ms(quiz.generated_at),
                            &provenance,
                        ],
                    )
                    .await?;
                    insert_questions(c, quiz).await?;
                    insert_event(c, event).await?;
                    Ok(Tx::Commit(Replaced::Yes))
                })
            })
            .await?)
    }

    async fn quiz(&self, d: QuizDay) -> Result<Option<Quiz>, StoreError> {
        Ok(self
            .read("quiz.quiz", |c, _| Box::pin(load_quiz(c, d)))
            .await?)
    }

    async fn recent_questions(
        &self,
        from: QuizDay,
        until: QuizDay,
    ) -> Result<RecentQuestions, StoreError> {
        Ok(self
            .read("quiz.recent_questions", |c, _| {
                Box::pin(async move {
                    let rows = c
                        .query(sql::QUESTIONS_RECENT, &[&day(from), &day(until)])
                        .await?;
                    let mut recent = RecentQuestions::default();
                    for r in &rows {
                        recent.insert(
                            col::<&str>(r, 0, "quiz.questions.question_id")?,
                            col::<&str>(r, 1, "quiz.questions.text")?,
                        );
                    }
                    Ok(recent)
                })
            })
            .await?)
    }

    async fn insert_attempt(
        &self,
        attempt: &Attempt,
        event: &NewEvent,
    ) -> Result<Inserted, StoreError> {
        let a = attempt;
        let answers = serde_json::to_string(&a.answers).expect("numbers serialise");
        let answers = answers.as_str();
        let result = self
            .write("quiz.insert_attempt", |c, _| {
                Box::pin(async move {
                    let n = c
                        .execute(
                            sql::ATTEMPT_INSERT,
                            &[
                                &a.user_id.as_str(),
                                &day(a.day),
                                &answers,
                                &int(a.correct, "correct")?,
                                &int(a.total, "total")?,
                                &int(a.score, "score")?,
                                &ms(a.submitted_at),
                            ],
                        )
                        .await?;
                    if n == 0 {
                        return Ok(Tx::Rollback(Inserted::AlreadyExists));
                    }
                    insert_event(c, event).await?;
                    Ok(Tx::Commit(Inserted::Yes))
                })
            })
            .await;
        unique_as_exists(result, ATTEMPTS_PK, Inserted::AlreadyExists)
    }

    async fn attempt(&self, user: &UserId, d: QuizDay) -> Result<Option<Attempt>, StoreError> {
        let user = user.as_str();
        Ok(self
            .read("quiz.attempt", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::ATTEMPT_SELECT, &[&user, &day(d)]).await?;
                    rows.first().map(to_attempt).transpose()
                })
            })
            .await?)
    }

    async fn attempts(&self, user: &UserId, limit: u32) -> Result<Vec<Attempt>, StoreError> {
        let user = user.as_str();
        let limit = i64::from(limit);
        Ok(self
            .read("quiz.attempts", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::ATTEMPTS_BY_USER, &[&user, &limit]).await?;
                    rows.iter().map(to_attempt).collect()
                })
            })
            .await?)
    }

    async fn insert_report(&self, report: &QuestionReport) -> Result<Inserted, StoreError> {
        let r = report;
        let result = self
            .write("quiz.insert_report", |c, _| {
                Box::pin(async move {
                    let n = c
                        .execute(
                            sql::REPORT_INSERT,
                            &[
                                &day(r.day),
                                &r.question_id.as_str(),
                                &r.user_id.as_str(),
                                &r.reason.as_str(),
                                &ms(r.created_at),
                            ],
                        )
                        .await?;
                    Ok(if n == 1 {
                        Tx::Commit(Inserted::Yes)
                    } else {
                        Tx::Rollback(Inserted::AlreadyExists)
                    })
                })
            })
            .await;
        unique_as_exists(result, REPORTS_PK, Inserted::AlreadyExists)
    }

    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<QuestionReport>, StoreError> {
        let limit = i64::from(limit);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        Ok(self
            .read("quiz.reports", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::REPORTS_PAGE, &[&limit, &offset]).await?;
                    rows.iter()
                        .map(|r| {
                            Ok(QuestionReport {
                                day: parse_day(col::<NaiveDate>(r, 0, "quiz.reports.quiz_date")?)?,
                                question_id: text(r, 1, "quiz.reports.question_id")?,
                                user_id: UserId::parse(&text(r, 2, "quiz.reports.user_id")?)
                                    .map_err(DbError::corrupt)?,
                                reason: text(r, 3, "quiz.reports.reason")?,
                                created_at: col::<DateTime<Utc>>(r, 4, "quiz.reports.created_at")?,
                            })
                        })
                        .collect()
                })
            })
            .await?)
    }
}
