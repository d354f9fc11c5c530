//! Every T-SQL statement the quiz context sends to SQL Server (tables `quiz.*`), in one
//! place, so that `tests/mssql_static.rs` can parse each of them ([`all_statements`]). The
//! conventions (parameters `@P1..@Pn`, guarded inserts with `UPDLOCK, HOLDLOCK`) are the
//! engine's: see `platform::store::mssql::sql`.

pub const QUIZ_INSERT: &str = "INSERT INTO quiz.quizzes (quiz_date, source, generated_at, provenance) SELECT @P1, @P2, @P3, @P4 WHERE NOT EXISTS (SELECT 1 FROM quiz.quizzes WITH (UPDLOCK, HOLDLOCK) WHERE quiz_date = @P1)";
pub const QUESTION_INSERT: &str = "INSERT INTO quiz.questions (quiz_date, position, question_id, text, choices, correct_choice, explanation, category, difficulty) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9)";
/// Locks the day's quiz row for a replacement (no row: there is nothing to replace).
pub const QUIZ_LOCK: &str =
    "SELECT quiz_date FROM quiz.quizzes WITH (UPDLOCK, HOLDLOCK) WHERE quiz_date = @P1";
/// Whether the day has attempts; HOLDLOCK keeps the day's range locked until the replacement
/// commits, so no attempt can slip in between the check and the new questions.
pub const QUIZ_HAS_ATTEMPTS: &str =
    "SELECT TOP (1) 1 FROM quiz.attempts WITH (HOLDLOCK) WHERE quiz_date = @P1";
pub const QUESTIONS_DELETE: &str = "DELETE FROM quiz.questions WHERE quiz_date = @P1";
pub const QUIZ_UPDATE: &str = "UPDATE quiz.quizzes SET source = @P2, generated_at = @P3, provenance = @P4 WHERE quiz_date = @P1";
/// The quiz and its questions in one statement (one consistent read, one round trip).
pub const QUIZ_SELECT: &str = "SELECT q.source, q.generated_at, q.provenance, x.question_id, x.text, x.choices, x.correct_choice, x.explanation, x.category, x.difficulty FROM quiz.quizzes q LEFT JOIN quiz.questions x ON x.quiz_date = q.quiz_date WHERE q.quiz_date = @P1 ORDER BY x.position";
pub const QUESTIONS_RECENT: &str =
    "SELECT question_id, text FROM quiz.questions WHERE quiz_date >= @P1 AND quiz_date < @P2";
pub const ATTEMPT_INSERT: &str = "INSERT INTO quiz.attempts (user_id, quiz_date, answers, correct_count, total, score, submitted_at) SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7 WHERE NOT EXISTS (SELECT 1 FROM quiz.attempts WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1 AND quiz_date = @P2)";
pub const ATTEMPT_SELECT: &str = "SELECT user_id, quiz_date, answers, correct_count, total, score, submitted_at FROM quiz.attempts WHERE user_id = @P1 AND quiz_date = @P2";
pub const ATTEMPTS_BY_USER: &str = "SELECT TOP (@P2) user_id, quiz_date, answers, correct_count, total, score, submitted_at FROM quiz.attempts WHERE user_id = @P1 ORDER BY quiz_date DESC";
pub const REPORT_INSERT: &str = "INSERT INTO quiz.reports (quiz_date, question_id, user_id, reason, created_at) SELECT @P1, @P2, @P3, @P4, @P5 WHERE NOT EXISTS (SELECT 1 FROM quiz.reports WITH (UPDLOCK, HOLDLOCK) WHERE quiz_date = @P1 AND question_id = @P2 AND user_id = @P3)";
/// Newest first (index `quiz_reports_newest`). `FETCH NEXT @P1` is valid T-SQL that
/// sqlparser 0.59 does not accept; see `PARSER_GAPS`.
pub const REPORTS_PAGE: &str = "SELECT quiz_date, question_id, user_id, reason, created_at FROM quiz.reports ORDER BY created_at DESC, quiz_date, question_id, user_id OFFSET @P2 ROWS FETCH NEXT @P1 ROWS ONLY";

/// Valid T-SQL that sqlparser 0.59's `MsSqlDialect` rejects: `(statement, construct, reason,
/// (from, to))`; see `platform::store::mssql::sql::PARSER_GAPS`.
pub const PARSER_GAPS: &[(&str, &str, &str, (&str, &str))] = &[(
    "REPORTS_PAGE",
    "FETCH NEXT @P1 ROWS ONLY",
    "sqlparser 0.59 accepts only a literal row count after FETCH; T-SQL accepts a parameter",
    ("FETCH NEXT @P1", "FETCH NEXT 50"),
)];

/// `(name, statement)` for every constant above.
pub fn all_statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QUIZ_INSERT", QUIZ_INSERT),
        ("QUESTION_INSERT", QUESTION_INSERT),
        ("QUIZ_LOCK", QUIZ_LOCK),
        ("QUIZ_HAS_ATTEMPTS", QUIZ_HAS_ATTEMPTS),
        ("QUESTIONS_DELETE", QUESTIONS_DELETE),
        ("QUIZ_UPDATE", QUIZ_UPDATE),
        ("QUIZ_SELECT", QUIZ_SELECT),
        ("QUESTIONS_RECENT", QUESTIONS_RECENT),
        ("ATTEMPT_INSERT", ATTEMPT_INSERT),
        ("ATTEMPT_SELECT", ATTEMPT_SELECT),
        ("ATTEMPTS_BY_USER", ATTEMPTS_BY_USER),
        ("REPORT_INSERT", REPORT_INSERT),
        ("REPORTS_PAGE", REPORTS_PAGE),
    ]
}
