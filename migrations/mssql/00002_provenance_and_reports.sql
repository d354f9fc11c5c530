-- Quiz provenance (model, replaced questions, fallback reason) and player reports on questions.
-- Mirrors migrations/sqlite/00002_provenance_and_reports.sql.

-- +goose Up
ALTER TABLE quiz.quizzes ADD provenance nvarchar(max) NOT NULL CONSTRAINT quiz_quizzes_provenance_df DEFAULT N'{}';   -- JSON

CREATE TABLE quiz.reports (
    quiz_date   date           NOT NULL,
    question_id nvarchar(100)  NOT NULL,
    user_id     nvarchar(256)  NOT NULL,
    reason      nvarchar(1000) NOT NULL,
    created_at  datetime2(3)   NOT NULL,
    CONSTRAINT quiz_reports_pk PRIMARY KEY (quiz_date, question_id, user_id),   -- one report per user per question
    CONSTRAINT quiz_reports_quiz_fk FOREIGN KEY (quiz_date) REFERENCES quiz.quizzes (quiz_date)
);
CREATE INDEX quiz_reports_newest ON quiz.reports (created_at DESC);

-- +goose Down
DROP TABLE quiz.reports;
ALTER TABLE quiz.quizzes DROP CONSTRAINT quiz_quizzes_provenance_df;
ALTER TABLE quiz.quizzes DROP COLUMN provenance;
