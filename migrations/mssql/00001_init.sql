-- qotd schema for Azure SQL / SQL Server, in goose's format (goose mssql "<conn>" up, or
-- qotd migrate --database "<conn>"). One schema per bounded context (users, quiz, leaderboard,
-- platform); a context's code touches only its own schema. The same tables, columns, keys and
-- indexes as migrations/sqlite/00001_init.sql (tests/mssql_static.rs checks the parity):
-- SQLite's TEXT timestamps are datetime2(3) in UTC here, TEXT days are date, INTEGER is
-- int / bigint / tinyint. Every string column is nvarchar: tiberius sends strings as nvarchar,
-- and an nvarchar parameter compared with a varchar column would turn index seeks into scans.
-- Lengths are in UTF-16 code units, with room for the domain limits (a user id is up to 128
-- characters, a display name up to 40).

-- +goose Up
-- Filtered indexes (platform_outbox_pending) need these options when they are created.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

CREATE SCHEMA users;
CREATE SCHEMA quiz;
CREATE SCHEMA leaderboard;
CREATE SCHEMA platform;

-- users ---------------------------------------------------------------------------------------
CREATE TABLE users.profiles (
    user_id       nvarchar(256) NOT NULL,
    display_name  nvarchar(80)  NOT NULL,
    registered_at datetime2(3)  NOT NULL,
    CONSTRAINT users_profiles_pk PRIMARY KEY (user_id)
);

-- quiz ----------------------------------------------------------------------------------------
CREATE TABLE quiz.quizzes (
    quiz_date    date         NOT NULL,   -- UTC day: one quiz per day
    source       nvarchar(16) NOT NULL,   -- bank | openai
    generated_at datetime2(3) NOT NULL,
    CONSTRAINT quiz_quizzes_pk PRIMARY KEY (quiz_date)
);

CREATE TABLE quiz.questions (
    quiz_date      date          NOT NULL,
    position       tinyint       NOT NULL,
    question_id    nvarchar(100) NOT NULL,
    text           nvarchar(max) NOT NULL,
    choices        nvarchar(max) NOT NULL,   -- JSON array of 4 strings
    correct_choice tinyint       NOT NULL CONSTRAINT quiz_questions_correct_ck CHECK (correct_choice BETWEEN 0 AND 3),
    explanation    nvarchar(max) NOT NULL,
    category       nvarchar(100) NOT NULL,
    difficulty     nvarchar(16)  NOT NULL,
    CONSTRAINT quiz_questions_pk PRIMARY KEY (quiz_date, position),
    CONSTRAINT quiz_questions_question_uq UNIQUE (quiz_date, question_id),
    CONSTRAINT quiz_questions_quiz_fk FOREIGN KEY (quiz_date) REFERENCES quiz.quizzes (quiz_date) ON DELETE CASCADE
);

CREATE TABLE quiz.attempts (
    user_id       nvarchar(256) NOT NULL,
    quiz_date     date          NOT NULL,
    answers       nvarchar(400) NOT NULL,   -- JSON array of choice indexes
    correct_count int           NOT NULL,
    total         int           NOT NULL,
    score         int           NOT NULL,
    submitted_at  datetime2(3)  NOT NULL,
    CONSTRAINT quiz_attempts_pk PRIMARY KEY (user_id, quiz_date),   -- one attempt per user per day
    CONSTRAINT quiz_attempts_quiz_fk FOREIGN KEY (quiz_date) REFERENCES quiz.quizzes (quiz_date)
);
CREATE INDEX quiz_attempts_by_day ON quiz.attempts (quiz_date);

-- leaderboard ---------------------------------------------------------------------------------
CREATE TABLE leaderboard.players (
    user_id        nvarchar(256) NOT NULL,
    display_name   nvarchar(80)  NOT NULL,
    quizzes_played int    NOT NULL CONSTRAINT leaderboard_players_quizzes_played_df DEFAULT 0,
    total_score    bigint NOT NULL CONSTRAINT leaderboard_players_total_score_df DEFAULT 0,
    current_streak int    NOT NULL CONSTRAINT leaderboard_players_current_streak_df DEFAULT 0,
    best_streak    int    NOT NULL CONSTRAINT leaderboard_players_best_streak_df DEFAULT 0,
    last_played    date   NULL,
    CONSTRAINT leaderboard_players_pk PRIMARY KEY (user_id)
);

CREATE TABLE leaderboard.days (
    quiz_date date         NOT NULL,
    opened_at datetime2(3) NOT NULL,
    CONSTRAINT leaderboard_days_pk PRIMARY KEY (quiz_date)
);

-- period_key: day:YYYY-MM-DD | week:YYYY-Www | all
CREATE TABLE leaderboard.scores (
    period_key nvarchar(32)  NOT NULL,
    user_id    nvarchar(256) NOT NULL,
    score      int           NOT NULL,
    quizzes    int           NOT NULL,
    CONSTRAINT leaderboard_scores_pk PRIMARY KEY (period_key, user_id)
);
-- Top-N of a board: an ordered range seek.
CREATE INDEX leaderboard_scores_top ON leaderboard.scores (period_key, score DESC, user_id);

-- score -> number of players with that score, per board: rank = 1 + players above.
CREATE TABLE leaderboard.histogram (
    period_key nvarchar(32) NOT NULL,
    score      int          NOT NULL,
    players    int          NOT NULL CONSTRAINT leaderboard_histogram_players_ck CHECK (players > 0),
    CONSTRAINT leaderboard_histogram_pk PRIMARY KEY (period_key, score)
);

-- platform ------------------------------------------------------------------------------------
CREATE TABLE platform.outbox (
    seq            bigint IDENTITY(1,1) NOT NULL,
    event_id       nvarchar(64)   NOT NULL,
    topic          nvarchar(128)  NOT NULL,
    event_type     nvarchar(128)  NOT NULL,
    subject        nvarchar(400)  NOT NULL,
    correlation_id nvarchar(400)  NULL,
    payload        nvarchar(max)  NOT NULL,
    created_at     datetime2(3)   NOT NULL,
    available_at   datetime2(3)   NOT NULL,
    attempts       int            NOT NULL CONSTRAINT platform_outbox_attempts_df DEFAULT 0,
    claimed_by     nvarchar(200)  NULL,
    claimed_until  datetime2(3)   NULL,
    last_error     nvarchar(4000) NULL,
    sent_at        datetime2(3)   NULL,
    CONSTRAINT platform_outbox_pk PRIMARY KEY (seq),
    CONSTRAINT platform_outbox_event_id_uq UNIQUE (event_id)
);
-- Unsent rows in order; the included columns let a claim check due time and lease without
-- touching the table.
CREATE INDEX platform_outbox_pending ON platform.outbox (seq) INCLUDE (available_at, claimed_until) WHERE sent_at IS NULL;

CREATE TABLE platform.inbox (
    consumer     nvarchar(200) NOT NULL,
    event_id     nvarchar(200) NOT NULL,
    processed_at datetime2(3)  NOT NULL,
    CONSTRAINT platform_inbox_pk PRIMARY KEY (consumer, event_id)
);

CREATE TABLE platform.poison (
    id          bigint IDENTITY(1,1) NOT NULL,
    consumer    nvarchar(200) NOT NULL,
    message_id  nvarchar(400) NULL,
    payload     nvarchar(max) NOT NULL,
    reason      nvarchar(max) NOT NULL,
    received_at datetime2(3)  NOT NULL,
    CONSTRAINT platform_poison_pk PRIMARY KEY (id)
);

-- +goose Down
DROP TABLE platform.poison;
DROP TABLE platform.inbox;
DROP TABLE platform.outbox;
DROP TABLE leaderboard.histogram;
DROP TABLE leaderboard.scores;
DROP TABLE leaderboard.days;
DROP TABLE leaderboard.players;
DROP TABLE quiz.attempts;
DROP TABLE quiz.questions;
DROP TABLE quiz.quizzes;
DROP TABLE users.profiles;
DROP SCHEMA platform;
DROP SCHEMA leaderboard;
DROP SCHEMA quiz;
DROP SCHEMA users;
