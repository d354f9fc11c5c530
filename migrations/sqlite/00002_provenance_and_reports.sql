-- Quiz provenance (model, replaced questions, fallback reason) and player reports on questions.

ALTER TABLE quiz_quizzes ADD COLUMN provenance TEXT NOT NULL DEFAULT '{}';  -- JSON

CREATE TABLE quiz_reports (
    quiz_date   TEXT NOT NULL REFERENCES quiz_quizzes(quiz_date),
    question_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (quiz_date, question_id, user_id)   -- one report per user per question
) STRICT;
CREATE INDEX quiz_reports_newest ON quiz_reports (created_at DESC);
