-- qotd schema for the embedded SQLite store. One table prefix per bounded context
-- (users_, quiz_, leaderboard_, platform_); a context's code touches only its own prefix.

-- users ---------------------------------------------------------------------------------------
CREATE TABLE users_profiles (
    user_id       TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    registered_at TEXT NOT NULL
) STRICT;

-- quiz ----------------------------------------------------------------------------------------
CREATE TABLE quiz_quizzes (
    quiz_date    TEXT PRIMARY KEY,            -- YYYY-MM-DD (UTC): one quiz per day
    source       TEXT NOT NULL,               -- bank | openai
    generated_at TEXT NOT NULL
) STRICT;

CREATE TABLE quiz_questions (
    quiz_date      TEXT NOT NULL REFERENCES quiz_quizzes(quiz_date) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    question_id    TEXT NOT NULL,
    text           TEXT NOT NULL,
    choices        TEXT NOT NULL,             -- JSON array of 4 strings
    correct_choice INTEGER NOT NULL CHECK (correct_choice BETWEEN 0 AND 3),
    explanation    TEXT NOT NULL,
    category       TEXT NOT NULL,
    difficulty     TEXT NOT NULL,
    PRIMARY KEY (quiz_date, position),
    UNIQUE (quiz_date, question_id)
) STRICT;

CREATE TABLE quiz_attempts (
    user_id       TEXT NOT NULL,
    quiz_date     TEXT NOT NULL REFERENCES quiz_quizzes(quiz_date),
    answers       TEXT NOT NULL,              -- JSON array of choice indexes
    correct_count INTEGER NOT NULL,
    total         INTEGER NOT NULL,
    score         INTEGER NOT NULL,
    submitted_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, quiz_date)          -- one attempt per user per day
) STRICT;
CREATE INDEX quiz_attempts_by_day ON quiz_attempts (quiz_date);

-- leaderboard ---------------------------------------------------------------------------------
CREATE TABLE leaderboard_players (
    user_id        TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    quizzes_played INTEGER NOT NULL DEFAULT 0,
    total_score    INTEGER NOT NULL DEFAULT 0,
    current_streak INTEGER NOT NULL DEFAULT 0,
    best_streak    INTEGER NOT NULL DEFAULT 0,
    last_played    TEXT
) STRICT;

CREATE TABLE leaderboard_days (
    quiz_date TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL
) STRICT;

-- period_key: day:YYYY-MM-DD | week:YYYY-Www | all
CREATE TABLE leaderboard_scores (
    period_key TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    score      INTEGER NOT NULL,
    quizzes    INTEGER NOT NULL,
    PRIMARY KEY (period_key, user_id)
) STRICT;
CREATE INDEX leaderboard_scores_top ON leaderboard_scores (period_key, score DESC, user_id);

-- score -> number of players with that score, per board: rank = 1 + players above.
CREATE TABLE leaderboard_histogram (
    period_key TEXT NOT NULL,
    score      INTEGER NOT NULL,
    players    INTEGER NOT NULL CHECK (players > 0),
    PRIMARY KEY (period_key, score)
) STRICT;

-- platform ------------------------------------------------------------------------------------
CREATE TABLE platform_outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    topic          TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    correlation_id TEXT,
    payload        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    available_at   TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    claimed_until  TEXT,
    last_error     TEXT,
    sent_at        TEXT
) STRICT;
CREATE INDEX platform_outbox_pending ON platform_outbox (seq) WHERE sent_at IS NULL;

CREATE TABLE platform_inbox (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) STRICT;

CREATE TABLE platform_poison (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer    TEXT NOT NULL,
    message_id  TEXT,
    payload     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    received_at TEXT NOT NULL
) STRICT;
