//! `LeaderboardRepo` on SQLite. Boards are rows of `leaderboard_scores` keyed by period; the
//! histogram `leaderboard_histogram` (score -> players) is updated in the same transaction, so
//! a rank is `1 + SUM(players above)` over a few hundred rows, whatever the number of players.

use crate::kernel::{QuizDay, Streak, UserId};
use crate::leaderboard::scoring::{
    self, HistogramDeltas, PlayerBefore, ScoreWrite, boards_of, rank_page,
};
use crate::leaderboard::{
    AttemptApplied, BoardRow, LeaderboardRepo, PlayerStats, RankedRow, ScoredAttempt, Standing,
};
use crate::platform::store::sqlite::{Sqlite, db, parse_day, record_inbox, ts};
use crate::platform::store::{Applied, InboxKey, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

fn players_above(conn: &Connection, key: &str, score: u32) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT COALESCE(SUM(players), 0) FROM leaderboard_histogram WHERE period_key = ?1 AND score > ?2")
        .map_err(db)?
        .query_row(params![key, score], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(db)
}

/// Adds `delta` players to a histogram bucket (one event's move, or a batch's summed moves); a
/// bucket that empties is deleted (the table keeps only non-empty buckets: `CHECK (players > 0)`).
fn add_to_histogram(tx: &Connection, key: &str, score: u32, delta: i64) -> Result<(), StoreError> {
    if delta > 0 {
        tx.prepare_cached(
            "INSERT INTO leaderboard_histogram (period_key, score, players) VALUES (?1, ?2, ?3)
             ON CONFLICT (period_key, score) DO UPDATE SET players = players + excluded.players",
        )
        .map_err(db)?
        .execute(params![key, score, delta])
        .map_err(db)?;
        return Ok(());
    }
    let n = tx
        .prepare_cached("UPDATE leaderboard_histogram SET players = players + ?3 WHERE period_key = ?1 AND score = ?2 AND players > -?3")
        .map_err(db)?
        .execute(params![key, score, delta])
        .map_err(db)?;
    if n == 0 {
        tx.prepare_cached("DELETE FROM leaderboard_histogram WHERE period_key = ?1 AND score = ?2")
            .map_err(db)?
            .execute(params![key, score])
            .map_err(db)?;
    }
    Ok(())
}

/// Writes the player's board row; the histogram move goes to `deltas` when the caller sums a
/// batch's moves, else straight to the histogram.
fn write_score(
    tx: &Connection,
    user: &str,
    w: &ScoreWrite,
    deltas: Option<&mut HistogramDeltas>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO leaderboard_scores (period_key, user_id, score, quizzes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (period_key, user_id) DO UPDATE SET score = excluded.score, quizzes = excluded.quizzes",
    )
    .map_err(db)?
    .execute(params![w.period_key, user, w.score, w.quizzes])
    .map_err(db)?;
    if let Some(deltas) = deltas {
        deltas.add(w);
        return Ok(());
    }
    if let Some(old) = w.previous {
        add_to_histogram(tx, &w.period_key, old, -1)?;
    }
    add_to_histogram(tx, &w.period_key, w.score, 1)
}

fn board_score(tx: &Connection, key: &str, user: &str) -> Result<Option<(u32, u32)>, StoreError> {
    tx.prepare_cached(
        "SELECT score, quizzes FROM leaderboard_scores WHERE period_key = ?1 AND user_id = ?2",
    )
    .map_err(db)?
    .query_row(params![key, user], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
    .map_err(db)
}

/// Applies one attempt event on `conn` (inside the caller's transaction or savepoint): records
/// the inbox row, reads the player's state, asks `scoring::apply_attempt`, writes its effect.
/// Commits nothing: on `Refused` or `AlreadyProcessed` the caller rolls back.
fn apply_one(
    conn: &Connection,
    inbox: &InboxKey,
    a: &ScoredAttempt,
    now: DateTime<Utc>,
    mut deltas: Option<&mut HistogramDeltas>,
) -> Result<AttemptApplied, StoreError> {
    if !record_inbox(conn, inbox, now)? {
        return Ok(AttemptApplied::Applied(Applied::AlreadyProcessed));
    }
    let user = a.user_id.as_str();
    conn.prepare_cached("INSERT INTO leaderboard_players (user_id, display_name) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .map_err(db)?
        .execute(params![user, a.display_name])
        .map_err(db)?;
    let (current, best, last): (u32, u32, Option<String>) = conn
        .prepare_cached("SELECT current_streak, best_streak, last_played FROM leaderboard_players WHERE user_id = ?1")
        .map_err(db)?
        .query_row([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db)?;
    let mut before = PlayerBefore {
        streak: Streak {
            current,
            best,
            last_played: last.as_deref().map(parse_day).transpose()?,
        },
        boards: Default::default(),
    };
    for (slot, period) in before.boards.iter_mut().zip(boards_of(a.day)) {
        *slot = board_score(conn, &period.key(), user)?;
    }
    let effect = match scoring::apply_attempt(a, &before) {
        Ok(effect) => effect,
        Err(why) => return Ok(AttemptApplied::Refused(why)),
    };
    let streak = effect.streak;
    conn.prepare_cached(
        "UPDATE leaderboard_players SET quizzes_played = quizzes_played + 1, total_score = total_score + ?2,
         current_streak = ?3, best_streak = ?4, last_played = ?5 WHERE user_id = ?1",
    )
    .map_err(db)?
    .execute(params![user, effect.points, streak.current, streak.best, streak.last_played.map(|d| d.to_string())])
    .map_err(db)?;
    for w in &effect.scores {
        write_score(conn, user, w, deltas.as_deref_mut())?;
    }
    Ok(AttemptApplied::Applied(Applied::Now))
}

#[async_trait]
impl LeaderboardRepo for Sqlite {
    async fn apply_registration(
        &self,
        inbox: &InboxKey,
        user: &UserId,
        display_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let (inbox, user, name) = (inbox.clone(), user.clone(), display_name.to_owned());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            if !record_inbox(&tx, &inbox, now)? {
                return Ok(Applied::AlreadyProcessed);
            }
            tx.execute(
                "INSERT INTO leaderboard_players (user_id, display_name) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name",
                params![user.as_str(), name],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(Applied::Now)
        })
        .await
    }

    async fn open_day(
        &self,
        inbox: &InboxKey,
        day: QuizDay,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let inbox = inbox.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            if !record_inbox(&tx, &inbox, now)? {
                return Ok(Applied::AlreadyProcessed);
            }
            tx.execute(
                "INSERT INTO leaderboard_days (quiz_date, opened_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![day.to_string(), ts(now)],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(Applied::Now)
        })
        .await
    }

    async fn apply_attempt(
        &self,
        inbox: &InboxKey,
        attempt: &ScoredAttempt,
        now: DateTime<Utc>,
    ) -> Result<AttemptApplied, StoreError> {
        let (inbox, a) = (inbox.clone(), attempt.clone());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let outcome = apply_one(&tx, &inbox, &a, now, None)?;
            // A refusal or a replay drops `tx`: the inbox row rolls back with it, so a replay
            // meets the same rule.
            if outcome == AttemptApplied::Applied(Applied::Now) {
                tx.commit().map_err(db)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn apply_attempts(
        &self,
        batch: &[(InboxKey, ScoredAttempt)],
        now: DateTime<Utc>,
    ) -> Result<Vec<AttemptApplied>, StoreError> {
        let batch = batch.to_vec();
        self.write(move |conn| {
            let mut tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut deltas = HistogramDeltas::default();
            for (inbox, a) in &batch {
                // One savepoint per event: a refused event leaves nothing behind (not even its
                // inbox row), the others in the batch keep their effects. A refusal happens
                // before any histogram move, so `deltas` holds only applied events' moves.
                let sp = tx.savepoint().map_err(db)?;
                let outcome = apply_one(&sp, inbox, a, now, Some(&mut deltas))?;
                if outcome == AttemptApplied::Applied(Applied::Now) {
                    sp.commit().map_err(db)?;
                }
                outcomes.push(outcome);
            }
            // Each touched bucket once, in key order.
            for (key, score, delta) in deltas.iter() {
                add_to_histogram(&tx, key, score, delta)?;
            }
            tx.commit().map_err(db)?;
            Ok(outcomes)
        })
        .await
    }

    async fn top(
        &self,
        period_key: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedRow>, StoreError> {
        let key = period_key.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT s.user_id, COALESCE(p.display_name, s.user_id), s.score, s.quizzes
                     FROM leaderboard_scores s LEFT JOIN leaderboard_players p ON p.user_id = s.user_id
                     WHERE s.period_key = ?1 ORDER BY s.score DESC, s.user_id LIMIT ?2 OFFSET ?3",
                )
                .map_err(db)?;
            let rows: Vec<BoardRow> = stmt
                .query_map(params![key, limit, offset as i64], |r| {
                    Ok(BoardRow { user_id: r.get(0)?, display_name: r.get(1)?, score: r.get(2)?, quizzes: r.get(3)? })
                })
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            let above_first = match rows.first() {
                Some(first) => players_above(conn, &key, first.score)?,
                None => 0,
            };
            Ok(rank_page(rows, offset, above_first))
        })
        .await
    }

    async fn standing(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        let (key, user) = (period_key.to_owned(), user.clone());
        self.read(move |conn| {
            let row: Option<(u32, u32)> = conn
                .prepare_cached("SELECT score, quizzes FROM leaderboard_scores WHERE period_key = ?1 AND user_id = ?2")
                .map_err(db)?
                .query_row(params![key, user.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db)?;
            row.map(|(score, quizzes)| Ok(Standing { rank: 1 + players_above(conn, &key, score)?, score, quizzes }))
                .transpose()
        })
        .await
    }

    async fn player_count(&self, period_key: &str) -> Result<u64, StoreError> {
        let key = period_key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT COALESCE(SUM(players), 0) FROM leaderboard_histogram WHERE period_key = ?1",
            )
            .map_err(db)?
            .query_row([key], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn player_stats(&self, user: &UserId) -> Result<Option<PlayerStats>, StoreError> {
        let user = user.clone();
        // One row by primary key: on the calling thread (`read_point`).
        self.read_point(move |conn| {
            let row: Option<(u32, i64, u32, u32, Option<String>)> = conn
                .prepare_cached(
                    "SELECT quizzes_played, total_score, current_streak, best_streak, last_played FROM leaderboard_players WHERE user_id = ?1",
                )
                .map_err(db)?
                .query_row([user.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .optional()
                .map_err(db)?;
            row.map(|(played, total, current, best, last)| {
                Ok(PlayerStats {
                    quizzes_played: played,
                    total_score: total as u64,
                    streak: Streak { current, best, last_played: last.as_deref().map(parse_day).transpose()? },
                })
            })
            .transpose()
        })
        .await
    }

    async fn day_opened(&self, day: QuizDay) -> Result<bool, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM leaderboard_days WHERE quiz_date = ?1)",
                [day.to_string()],
                |r| r.get(0),
            )
            .map_err(db)
        })
        .await
    }

    async fn histogram(&self, period_key: &str) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        let key = period_key.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT score, players FROM leaderboard_histogram WHERE period_key = ?1 ORDER BY score DESC")
                .map_err(db)?;
            let rows = stmt
                .query_map([key], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            Ok(Some(rows))
        })
        .await
    }

    async fn score(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<(u32, u32)>, StoreError> {
        let (key, user) = (period_key.to_owned(), user.clone());
        // One row by primary key: on the calling thread (`read_point`).
        self.read_point(move |conn| {
            conn.prepare_cached("SELECT score, quizzes FROM leaderboard_scores WHERE period_key = ?1 AND user_id = ?2")
                .map_err(db)?
                .query_row(params![key, user.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db)
        })
        .await
    }
}
