//! `QuizRepo` on SQLite (`quiz_quizzes`, `quiz_questions`, `quiz_attempts`).

use crate::kernel::{QuizDay, UserId};
use crate::platform::events::NewEvent;
use crate::platform::store::StoreError;
use crate::platform::store::sqlite::{Sqlite, db, insert_event, parse_day, parse_ts, ts};
use crate::quiz::{
    Attempt, Difficulty, Inserted, Provenance, Question, QuestionReport, Quiz, QuizRepo,
    QuizSource, RecentQuestions, Replaced,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn insert_questions(tx: &Transaction<'_>, quiz: &Quiz) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO quiz_questions (quiz_date, position, question_id, text, choices, correct_choice, explanation, category, difficulty)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(db)?;
    for (pos, q) in quiz.questions.iter().enumerate() {
        let choices = serde_json::to_string(&q.choices).expect("strings serialise");
        stmt.execute(params![
            quiz.day.to_string(),
            pos as i64,
            q.id,
            q.text,
            choices,
            q.correct,
            q.explanation,
            q.category,
            q.difficulty.as_str()
        ])
        .map_err(db)?;
    }
    Ok(())
}

fn load_quiz(conn: &Connection, day: QuizDay) -> Result<Option<Quiz>, StoreError> {
    let head = conn
        .query_row(
            "SELECT source, generated_at, provenance FROM quiz_quizzes WHERE quiz_date = ?1",
            [day.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()
        .map_err(db)?;
    let Some((source, generated_at, provenance)) = head else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT question_id, text, choices, correct_choice, explanation, category, difficulty
             FROM quiz_questions WHERE quiz_date = ?1 ORDER BY position",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map([day.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u8>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(db)?;
    let mut questions = Vec::new();
    for row in rows {
        let (id, text, choices, correct, explanation, category, difficulty) = row.map_err(db)?;
        questions.push(Question {
            id,
            text,
            choices: serde_json::from_str(&choices).map_err(corrupt("question choices"))?,
            correct,
            explanation,
            category,
            difficulty: Difficulty::parse(&difficulty).map_err(StoreError::Corrupt)?,
        });
    }
    Ok(Some(Quiz {
        day,
        questions,
        source: QuizSource::parse(&source).map_err(StoreError::Corrupt)?,
        generated_at: parse_ts(&generated_at)?,
        provenance: serde_json::from_str::<Provenance>(&provenance)
            .map_err(corrupt("quiz provenance"))?,
    }))
}

fn attempt_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, u32, u32, u32, String)> {
    r.try_into()
}

fn to_attempt(row: (String, String, String, u32, u32, u32, String)) -> Result<Attempt, StoreError> {
    let (user, day, answers, correct, total, score, at) = row;
    Ok(Attempt {
        user_id: UserId::parse(&user).map_err(StoreError::Corrupt)?,
        day: parse_day(&day)?,
        answers: serde_json::from_str(&answers).map_err(corrupt("attempt answers"))?,
        correct,
        total,
        score,
        submitted_at: parse_ts(&at)?,
    })
}

fn provenance_json(quiz: &Quiz) -> String {
    serde_json::to_string(&quiz.provenance).expect("provenance serialises")
}

const ATTEMPT_COLUMNS: &str =
    "user_id, quiz_date, answers, correct_count, total, score, submitted_at";

#[async_trait]
impl QuizRepo for Sqlite {
    async fn insert_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Inserted, StoreError> {
        let (quiz, event) = (quiz.clone(), event.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let n = tx
                .execute(
                    "INSERT INTO quiz_quizzes (quiz_date, source, generated_at, provenance) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![quiz.day.to_string(), quiz.source.as_str(), ts(quiz.generated_at), provenance_json(&quiz)],
                )
                .map_err(db)?;
            if n == 0 {
                return Ok(Inserted::AlreadyExists);
            }
            insert_questions(&tx, &quiz)?;
            insert_event(&tx, &event)?;
            tx.commit().map_err(db)?;
            Ok(Inserted::Yes)
        })
        .await
    }

    async fn replace_quiz(&self, quiz: &Quiz, event: &NewEvent) -> Result<Replaced, StoreError> {
        let (quiz, event) = (quiz.clone(), event.clone());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let day = quiz.day.to_string();
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM quiz_quizzes WHERE quiz_date = ?1)",
                    [&day],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if !exists {
                return Ok(Replaced::Missing);
            }
            let attempted: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM quiz_attempts WHERE quiz_date = ?1)",
                    [&day],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if attempted {
                return Ok(Replaced::HasAttempts);
            }
            tx.execute("DELETE FROM quiz_questions WHERE quiz_date = ?1", [&day])
                .map_err(db)?;
            tx.execute(
                "UPDATE quiz_quizzes SET source = ?2, generated_at = ?3, provenance = ?4 WHERE quiz_date = ?1",
                params![day, quiz.source.as_str(), ts(quiz.generated_at), provenance_json(&quiz)],
            )
            .map_err(db)?;
            insert_questions(&tx, &quiz)?;
            insert_event(&tx, &event)?;
            tx.commit().map_err(db)?;
            Ok(Replaced::Yes)
        })
        .await
    }

    async fn quiz(&self, day: QuizDay) -> Result<Option<Quiz>, StoreError> {
        self.read(move |conn| load_quiz(conn, day)).await
    }

    async fn recent_questions(
        &self,
        from: QuizDay,
        until: QuizDay,
    ) -> Result<RecentQuestions, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT question_id, text FROM quiz_questions WHERE quiz_date >= ?1 AND quiz_date < ?2")
                .map_err(db)?;
            let rows = stmt
                .query_map([from.to_string(), until.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db)?;
            let mut recent = RecentQuestions::default();
            for row in rows {
                let (id, text) = row.map_err(db)?;
                recent.insert(&id, &text);
            }
            Ok(recent)
        })
        .await
    }

    async fn insert_attempt(
        &self,
        attempt: &Attempt,
        event: &NewEvent,
    ) -> Result<Inserted, StoreError> {
        let (a, event) = (attempt.clone(), event.clone());
        // Many players answer at once: committed in groups (`write_grouped`), each attempt
        // with its event in one savepoint, acknowledged only after the group's commit.
        self.write_grouped(move |tx| {
            let answers = serde_json::to_string(&a.answers).expect("numbers serialise");
            let n = tx
                .prepare_cached(&format!(
                    "INSERT INTO quiz_attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"
                ))
                .map_err(db)?
                .execute(params![a.user_id.as_str(), a.day.to_string(), answers, a.correct, a.total, a.score, ts(a.submitted_at)])
                .map_err(db)?;
            if n == 0 {
                return Ok(Inserted::AlreadyExists);
            }
            insert_event(tx, &event)?;
            Ok(Inserted::Yes)
        })
        .await
    }

    async fn attempt(&self, user: &UserId, day: QuizDay) -> Result<Option<Attempt>, StoreError> {
        let user = user.clone();
        // One row by primary key: on the calling thread (`read_point`).
        self.read_point(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE user_id = ?1 AND quiz_date = ?2"
            ))
            .and_then(|mut st| {
                st.query_row(params![user.as_str(), day.to_string()], attempt_from_row)
                    .optional()
            })
            .map_err(db)?
            .map(to_attempt)
            .transpose()
        })
        .await
    }

    async fn attempts(&self, user: &UserId, limit: u32) -> Result<Vec<Attempt>, StoreError> {
        let user = user.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE user_id = ?1 ORDER BY quiz_date DESC LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt.query_map(params![user.as_str(), limit], attempt_from_row).map_err(db)?;
            rows.map(|r| r.map_err(db).and_then(to_attempt)).collect()
        })
        .await
    }

    async fn insert_report(&self, report: &QuestionReport) -> Result<Inserted, StoreError> {
        let r = report.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "INSERT INTO quiz_reports (quiz_date, question_id, user_id, reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    params![r.day.to_string(), r.question_id, r.user_id.as_str(), r.reason, ts(r.created_at)],
                )
                .map_err(db)?;
            Ok(if n == 1 { Inserted::Yes } else { Inserted::AlreadyExists })
        })
        .await
    }

    async fn reports(&self, limit: u32, offset: u64) -> Result<Vec<QuestionReport>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT quiz_date, question_id, user_id, reason, created_at FROM quiz_reports
                     ORDER BY created_at DESC, quiz_date, question_id, user_id LIMIT ?1 OFFSET ?2",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![limit, offset as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(db)?;
            rows.map(|row| {
                let (day, question_id, user, reason, at) = row.map_err(db)?;
                Ok(QuestionReport {
                    day: parse_day(&day)?,
                    question_id,
                    user_id: UserId::parse(&user).map_err(StoreError::Corrupt)?,
                    reason,
                    created_at: parse_ts(&at)?,
                })
            })
            .collect()
        })
        .await
    }
}
