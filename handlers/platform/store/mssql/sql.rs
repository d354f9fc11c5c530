//! Every T-SQL statement the SQL Server backend sends, in one place, so that
//! `tests/mssql_static.rs` can parse each of them ([`all_statements`]).
//!
//! Conventions: parameters are `@P1..@Pn` (tiberius binds them through `sp_executesql`);
//! timestamps are `datetime2(3)` in UTC, days are `date`. Inserts guarded by a key use
//! `INSERT ... SELECT ... WHERE NOT EXISTS (SELECT ... WITH (UPDLOCK, HOLDLOCK) ...)`: the
//! UPDLOCK + HOLDLOCK (serializable) range lock makes concurrent inserts of the same key queue
//! behind the first instead of racing, so the loser sees the row and inserts nothing (and if a
//! duplicate still reaches the constraint, 2627/2601 is mapped to "already exists").

/// Run once on every new session. XACT_ABORT makes any error roll back the whole transaction;
/// the ANSI options are the ones filtered indexes (`platform_outbox_pending`) require.
pub const SESSION_SETUP: &str = "SET XACT_ABORT ON; SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF";
pub const PING: &str = "SELECT 1";
pub const BEGIN: &str = "SET XACT_ABORT ON; BEGIN TRANSACTION";
pub const COMMIT: &str = "COMMIT TRANSACTION";
pub const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

// users ---------------------------------------------------------------------------------------

pub const PROFILE_INSERT: &str = "INSERT INTO users.profiles (user_id, display_name, registered_at) SELECT @P1, @P2, @P3 WHERE NOT EXISTS (SELECT 1 FROM users.profiles WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1)";
pub const PROFILE_SELECT: &str =
    "SELECT user_id, display_name, registered_at FROM users.profiles WHERE user_id = @P1";

// quiz ----------------------------------------------------------------------------------------

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

// leaderboard ---------------------------------------------------------------------------------

pub const PLAYER_INSERT: &str = "INSERT INTO leaderboard.players (user_id, display_name) SELECT @P1, @P2 WHERE NOT EXISTS (SELECT 1 FROM leaderboard.players WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1)";
pub const PLAYER_RENAME: &str =
    "UPDATE leaderboard.players SET display_name = @P2 WHERE user_id = @P1";
pub const PLAYER_STREAK_FOR_UPDATE: &str = "SELECT current_streak, best_streak, last_played FROM leaderboard.players WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1";
pub const PLAYER_APPLY_ATTEMPT: &str = "UPDATE leaderboard.players SET quizzes_played = quizzes_played + 1, total_score = total_score + @P2, current_streak = @P3, best_streak = @P4, last_played = @P5 WHERE user_id = @P1";
pub const PLAYER_STATS: &str = "SELECT quizzes_played, total_score, current_streak, best_streak, last_played FROM leaderboard.players WHERE user_id = @P1";
pub const SCORE_FOR_UPDATE: &str = "SELECT score FROM leaderboard.scores WITH (UPDLOCK, HOLDLOCK) WHERE period_key = @P1 AND user_id = @P2";
pub const SCORE_INSERT: &str = "INSERT INTO leaderboard.scores (period_key, user_id, score, quizzes) VALUES (@P1, @P2, @P3, 1)";
pub const SCORE_UPDATE: &str = "UPDATE leaderboard.scores SET score = @P3, quizzes = quizzes + 1 WHERE period_key = @P1 AND user_id = @P2";
/// One more player with this score; HOLDLOCK holds the key range when the row is missing, so
/// a concurrent first insert of the same score waits instead of colliding.
pub const HISTOGRAM_INCREMENT: &str = "UPDATE leaderboard.histogram WITH (HOLDLOCK) SET players = players + 1 WHERE period_key = @P1 AND score = @P2";
pub const HISTOGRAM_INSERT: &str =
    "INSERT INTO leaderboard.histogram (period_key, score, players) VALUES (@P1, @P2, 1)";
pub const HISTOGRAM_DECREMENT: &str = "UPDATE leaderboard.histogram SET players = players - 1 WHERE period_key = @P1 AND score = @P2 AND players > 1";
pub const HISTOGRAM_DELETE: &str =
    "DELETE FROM leaderboard.histogram WHERE period_key = @P1 AND score = @P2";
pub const DAY_OPEN: &str = "INSERT INTO leaderboard.days (quiz_date, opened_at) SELECT @P1, @P2 WHERE NOT EXISTS (SELECT 1 FROM leaderboard.days WITH (UPDLOCK, HOLDLOCK) WHERE quiz_date = @P1)";
pub const DAY_OPENED: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM leaderboard.days WHERE quiz_date = @P1) THEN CAST(1 AS bit) ELSE CAST(0 AS bit) END";
/// A page of a board: an ordered range seek on `leaderboard_scores_top`
/// (period_key, score DESC, user_id). `FETCH NEXT @P2`: see `PARSER_GAPS`.
pub const BOARD_PAGE: &str = "SELECT s.user_id, COALESCE(p.display_name, s.user_id), s.score, s.quizzes FROM leaderboard.scores s LEFT JOIN leaderboard.players p ON p.user_id = s.user_id WHERE s.period_key = @P1 ORDER BY s.score DESC, s.user_id OFFSET @P3 ROWS FETCH NEXT @P2 ROWS ONLY";
/// Players with a higher score: a seek on the histogram's primary key, summing a few hundred
/// rows at most, however many players the board has.
pub const PLAYERS_ABOVE: &str = "SELECT COALESCE(SUM(CAST(players AS bigint)), 0) FROM leaderboard.histogram WHERE period_key = @P1 AND score > @P2";
/// A player's score and the number of players above it, in one statement.
pub const STANDING: &str = "SELECT s.score, s.quizzes, (SELECT COALESCE(SUM(CAST(h.players AS bigint)), 0) FROM leaderboard.histogram h WHERE h.period_key = s.period_key AND h.score > s.score) FROM leaderboard.scores s WHERE s.period_key = @P1 AND s.user_id = @P2";
/// A board's whole histogram, highest score first (a backward range seek on its primary key).
pub const HISTOGRAM_SELECT: &str =
    "SELECT score, players FROM leaderboard.histogram WHERE period_key = @P1 ORDER BY score DESC";
pub const SCORE_SELECT: &str =
    "SELECT score, quizzes FROM leaderboard.scores WHERE period_key = @P1 AND user_id = @P2";
pub const PLAYER_COUNT: &str = "SELECT COALESCE(SUM(CAST(players AS bigint)), 0) FROM leaderboard.histogram WHERE period_key = @P1";

// platform: inbox, outbox, poison -------------------------------------------------------------

pub const INBOX_INSERT: &str = "INSERT INTO platform.inbox (consumer, event_id, processed_at) SELECT @P1, @P2, @P3 WHERE NOT EXISTS (SELECT 1 FROM platform.inbox WITH (UPDLOCK, HOLDLOCK) WHERE consumer = @P1 AND event_id = @P2)";
pub const OUTBOX_INSERT: &str = "INSERT INTO platform.outbox (event_id, topic, event_type, subject, correlation_id, payload, created_at, available_at) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P7)";
/// Claims up to @P4 due rows for owner @P1 until @P2 (now = @P3), oldest first, and returns
/// them. `UPDLOCK, READPAST, ROWLOCK`: each dispatcher locks the rows it picks and skips rows
/// another dispatcher has locked, so concurrent claims are disjoint without waiting; the lease
/// (`claimed_until`) hides claimed rows from later claims until it runs out, and a crashed
/// dispatcher's rows become claimable again after it.
pub const OUTBOX_CLAIM: &str = "DECLARE @claimed TABLE (seq bigint PRIMARY KEY); INSERT INTO @claimed (seq) SELECT TOP (@P4) seq FROM platform.outbox WITH (UPDLOCK, READPAST, ROWLOCK) WHERE sent_at IS NULL AND available_at <= @P3 AND (claimed_until IS NULL OR claimed_until <= @P3) ORDER BY seq; UPDATE platform.outbox SET claimed_by = @P1, claimed_until = @P2, attempts = attempts + 1 WHERE seq IN (SELECT seq FROM @claimed); SELECT o.seq, o.event_id, o.topic, o.subject, o.event_type, o.correlation_id, o.payload, o.attempts FROM platform.outbox o WHERE o.seq IN (SELECT seq FROM @claimed) ORDER BY o.seq";
/// Marks the rows listed in @P1 (comma-separated seqs) sent, if @P2 still holds them.
/// STRING_SPLIT needs database compatibility level 130 or later (SQL Server 2016+).
pub const OUTBOX_MARK_SENT: &str = "UPDATE platform.outbox SET sent_at = @P3, claimed_by = NULL, claimed_until = NULL, last_error = NULL WHERE claimed_by = @P2 AND seq IN (SELECT CAST(value AS bigint) FROM STRING_SPLIT(@P1, ','))";
pub const OUTBOX_RELEASE: &str = "UPDATE platform.outbox SET claimed_by = NULL, claimed_until = NULL, last_error = @P3, available_at = @P4 WHERE seq = @P1 AND claimed_by = @P2";
pub const OUTBOX_PENDING_COUNT: &str =
    "SELECT COUNT_BIG(*) FROM platform.outbox WHERE sent_at IS NULL";
pub const POISON_INSERT: &str = "INSERT INTO platform.poison (consumer, message_id, payload, reason, received_at) VALUES (@P1, @P2, @P3, @P4, @P5)";
pub const POISON_COUNT: &str = "SELECT COUNT_BIG(*) FROM platform.poison WHERE consumer = @P1";

// migrations: goose's version table -----------------------------------------------------------

/// goose's own table (`goose mssql ... up` creates the same one in the caller's default schema,
/// dbo for Entra users); version 0 is inserted with it, as goose does.
pub const GOOSE_TABLE_EXISTS: &str =
    "SELECT CASE WHEN OBJECT_ID(N'dbo.goose_db_version', N'U') IS NULL THEN 0 ELSE 1 END";
pub const GOOSE_CREATE_TABLE: &str = "CREATE TABLE dbo.goose_db_version (id int NOT NULL IDENTITY(1,1) PRIMARY KEY, version_id bigint NOT NULL, is_applied bit NOT NULL, tstamp datetime NULL DEFAULT (getdate()))";
pub const GOOSE_INSERT_VERSION: &str =
    "INSERT INTO dbo.goose_db_version (version_id, is_applied) VALUES (@P1, @P2)";
pub const GOOSE_DELETE_VERSION: &str = "DELETE FROM dbo.goose_db_version WHERE version_id = @P1";
pub const GOOSE_LIST: &str =
    "SELECT version_id, is_applied, tstamp FROM dbo.goose_db_version ORDER BY id DESC";
/// Serialises migration runs (several instances starting at once, or `qotd migrate` beside
/// the pipeline's job): an exclusive application lock owned by the migration's transaction,
/// then a check that it is held (sp_getapplock reports a timeout by return code, not error).
pub const MIGRATION_LOCK: &str = "EXEC sp_getapplock @Resource = N'qotd.migrations', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 120000; SELECT APPLOCK_MODE(N'public', N'qotd.migrations', N'Transaction')";

/// Valid T-SQL that sqlparser 0.59's `MsSqlDialect` rejects: `(statement, construct, reason,
/// (from, to))`. The static test checks the rest of each statement by parsing it with `from`
/// replaced by `to`.
pub const PARSER_GAPS: &[(&str, &str, &str, (&str, &str))] = &[
    (
        "REPORTS_PAGE",
        "FETCH NEXT @P1 ROWS ONLY",
        "sqlparser 0.59 accepts only a literal row count after FETCH; T-SQL accepts a parameter",
        ("FETCH NEXT @P1", "FETCH NEXT 50"),
    ),
    (
        "BOARD_PAGE",
        "FETCH NEXT @P2 ROWS ONLY",
        "sqlparser 0.59 accepts only a literal row count after FETCH; T-SQL accepts a parameter",
        ("FETCH NEXT @P2", "FETCH NEXT 50"),
    ),
];

/// `(name, statement)` for every constant above.
pub fn all_statements() -> Vec<(&'static str, &'static str)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => { vec![$((stringify!($name), $name)),*] };
    }
    list![
        SESSION_SETUP,
        PING,
        BEGIN,
        COMMIT,
        ROLLBACK,
        PROFILE_INSERT,
        PROFILE_SELECT,
        QUIZ_INSERT,
        QUESTION_INSERT,
        QUIZ_LOCK,
        QUIZ_HAS_ATTEMPTS,
        QUESTIONS_DELETE,
        QUIZ_UPDATE,
        QUIZ_SELECT,
        QUESTIONS_RECENT,
        ATTEMPT_INSERT,
        ATTEMPT_SELECT,
        ATTEMPTS_BY_USER,
        REPORT_INSERT,
        REPORTS_PAGE,
        PLAYER_INSERT,
        PLAYER_RENAME,
        PLAYER_STREAK_FOR_UPDATE,
        PLAYER_APPLY_ATTEMPT,
        PLAYER_STATS,
        SCORE_FOR_UPDATE,
        SCORE_INSERT,
        SCORE_UPDATE,
        HISTOGRAM_INCREMENT,
        HISTOGRAM_INSERT,
        HISTOGRAM_DECREMENT,
        HISTOGRAM_DELETE,
        DAY_OPEN,
        DAY_OPENED,
        BOARD_PAGE,
        PLAYERS_ABOVE,
        STANDING,
        HISTOGRAM_SELECT,
        SCORE_SELECT,
        PLAYER_COUNT,
        INBOX_INSERT,
        OUTBOX_INSERT,
        OUTBOX_CLAIM,
        OUTBOX_MARK_SENT,
        OUTBOX_RELEASE,
        OUTBOX_PENDING_COUNT,
        POISON_INSERT,
        POISON_COUNT,
        GOOSE_TABLE_EXISTS,
        GOOSE_CREATE_TABLE,
        GOOSE_INSERT_VERSION,
        GOOSE_DELETE_VERSION,
        GOOSE_LIST,
        MIGRATION_LOCK,
    ]
}
