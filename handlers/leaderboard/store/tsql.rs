//! Every T-SQL statement the leaderboard context sends to SQL Server (tables `leaderboard.*`), in one
//! place, so that `tests/mssql_static.rs` can parse each of them ([`all_statements`]). The
//! conventions (parameters `@P1..@Pn`, guarded inserts with `UPDLOCK, HOLDLOCK`) are the
//! engine's: see `platform::store::mssql::sql`.

pub const PLAYER_INSERT: &str = "INSERT INTO leaderboard.players (user_id, display_name) SELECT @P1, @P2 WHERE NOT EXISTS (SELECT 1 FROM leaderboard.players WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1)";
pub const PLAYER_RENAME: &str =
    "UPDATE leaderboard.players SET display_name = @P2 WHERE user_id = @P1";
pub const PLAYER_STREAK_FOR_UPDATE: &str = "SELECT current_streak, best_streak, last_played FROM leaderboard.players WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1";
pub const PLAYER_APPLY_ATTEMPT: &str = "UPDATE leaderboard.players SET quizzes_played = quizzes_played + 1, total_score = total_score + @P2, current_streak = @P3, best_streak = @P4, last_played = @P5 WHERE user_id = @P1";
pub const PLAYER_STATS: &str = "SELECT quizzes_played, total_score, current_streak, best_streak, last_played FROM leaderboard.players WHERE user_id = @P1";
pub const SCORE_FOR_UPDATE: &str = "SELECT score, quizzes FROM leaderboard.scores WITH (UPDLOCK, HOLDLOCK) WHERE period_key = @P1 AND user_id = @P2";
pub const SCORE_INSERT: &str = "INSERT INTO leaderboard.scores (period_key, user_id, score, quizzes) VALUES (@P1, @P2, @P3, @P4)";
pub const SCORE_UPDATE: &str = "UPDATE leaderboard.scores SET score = @P3, quizzes = @P4 WHERE period_key = @P1 AND user_id = @P2";
/// One more player with this score; HOLDLOCK holds the key range when the row is missing, so
/// a concurrent first insert of the same score waits instead of colliding.
pub const HISTOGRAM_INCREMENT: &str = "UPDATE leaderboard.histogram WITH (HOLDLOCK) SET players = players + 1 WHERE period_key = @P1 AND score = @P2";
pub const HISTOGRAM_INSERT: &str =
    "INSERT INTO leaderboard.histogram (period_key, score, players) VALUES (@P1, @P2, 1)";
pub const HISTOGRAM_DECREMENT: &str = "UPDATE leaderboard.histogram SET players = players - 1 WHERE period_key = @P1 AND score = @P2 AND players > 1";
pub const HISTOGRAM_DELETE: &str =
    "DELETE FROM leaderboard.histogram WHERE period_key = @P1 AND score = @P2";
/// A batch's summed moves (`@P3` players, positive or negative) on one bucket, once per batch
/// (see `scoring::HistogramDeltas`); HOLDLOCK as for the increment.
pub const HISTOGRAM_ADD: &str = "UPDATE leaderboard.histogram WITH (HOLDLOCK) SET players = players + @P3 WHERE period_key = @P1 AND score = @P2 AND players + @P3 > 0";
pub const HISTOGRAM_INSERT_MANY: &str =
    "INSERT INTO leaderboard.histogram (period_key, score, players) VALUES (@P1, @P2, @P3)";
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

/// Valid T-SQL that sqlparser 0.59's `MsSqlDialect` rejects: `(statement, construct, reason,
/// (from, to))`; see `platform::store::mssql::sql::PARSER_GAPS`.
pub const PARSER_GAPS: &[(&str, &str, &str, (&str, &str))] = &[(
    "BOARD_PAGE",
    "FETCH NEXT @P2 ROWS ONLY",
    "sqlparser 0.59 accepts only a literal row count after FETCH; T-SQL accepts a parameter",
    ("FETCH NEXT @P2", "FETCH NEXT 50"),
)];

/// `(name, statement)` for every constant above.
pub fn all_statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PLAYER_INSERT", PLAYER_INSERT),
        ("PLAYER_RENAME", PLAYER_RENAME),
        ("PLAYER_STREAK_FOR_UPDATE", PLAYER_STREAK_FOR_UPDATE),
        ("PLAYER_APPLY_ATTEMPT", PLAYER_APPLY_ATTEMPT),
        ("PLAYER_STATS", PLAYER_STATS),
        ("SCORE_FOR_UPDATE", SCORE_FOR_UPDATE),
        ("SCORE_INSERT", SCORE_INSERT),
        ("SCORE_UPDATE", SCORE_UPDATE),
        ("HISTOGRAM_INCREMENT", HISTOGRAM_INCREMENT),
        ("HISTOGRAM_INSERT", HISTOGRAM_INSERT),
        ("HISTOGRAM_DECREMENT", HISTOGRAM_DECREMENT),
        ("HISTOGRAM_DELETE", HISTOGRAM_DELETE),
        ("HISTOGRAM_ADD", HISTOGRAM_ADD),
        ("HISTOGRAM_INSERT_MANY", HISTOGRAM_INSERT_MANY),
        ("DAY_OPEN", DAY_OPEN),
        ("DAY_OPENED", DAY_OPENED),
        ("BOARD_PAGE", BOARD_PAGE),
        ("PLAYERS_ABOVE", PLAYERS_ABOVE),
        ("STANDING", STANDING),
        ("HISTOGRAM_SELECT", HISTOGRAM_SELECT),
        ("SCORE_SELECT", SCORE_SELECT),
        ("PLAYER_COUNT", PLAYER_COUNT),
    ]
}
