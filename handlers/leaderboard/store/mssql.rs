//! `LeaderboardRepo` on SQL Server. As on SQLite, boards are rows of `leaderboard.scores` keyed
//! by period, and `leaderboard.histogram` (period, score -> players) is kept in the same
//! transaction, so a rank is `1 + SUM(players above)`: an index seek over at most a few hundred
//! histogram rows, whatever the number of players. Top-N is an ordered range seek on
//! `leaderboard_scores_top` (period_key, score DESC, user_id).
//!
//! Concurrency: every read-modify-write takes its row with `UPDLOCK, HOLDLOCK` first (the
//! player's streak row, the player's score row), so two events for the same player are applied
//! one after the other, never both on the same old value. Histogram rows are changed with
//! atomic `players = players +/- 1` updates.

use super::tsql as sql;
use crate::kernel::{QuizDay, Streak, UserId};
use crate::leaderboard::scoring::{
    self, HistogramDeltas, PlayerBefore, ScoreWrite, boards_of, rank_page,
};
use crate::leaderboard::{
    AttemptApplied, BoardRow, LeaderboardRepo, PlayerStats, RankedRow, ScoredAttempt, Standing,
};
use crate::platform::store::mssql::{
    Conn, DbError, Mssql, Tx, col, count, day, forget_inbox, ms, opt_col, parse_day, record_inbox,
    text, unsigned,
};
use crate::platform::store::{Applied, InboxKey, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// The inbox key whose violation means "processed before".
const INBOX_PK: &str = "platform_inbox_pk";

fn int(v: u32, what: &str) -> Result<i32, DbError> {
    i32::try_from(v).map_err(|_| DbError::corrupt(format!("{what} {v} does not fit an int column")))
}

async fn players_above(c: &mut Conn, key: &str, score: u32) -> Result<u64, DbError> {
    count(
        c,
        sql::PLAYERS_ABOVE,
        &[&key, &int(score, "score")?],
        "players above",
    )
    .await
}

async fn bump_histogram(c: &mut Conn, key: &str, score: u32, up: bool) -> Result<(), DbError> {
    let score = int(score, "score")?;
    if up {
        if c.execute(sql::HISTOGRAM_INCREMENT, &[&key, &score]).await? == 0 {
            // HOLDLOCK on the increment holds the missing key's range until commit, so no
            // other transaction can insert this score in between.
            c.execute(sql::HISTOGRAM_INSERT, &[&key, &score]).await?;
        }
    } else if c.execute(sql::HISTOGRAM_DECREMENT, &[&key, &score]).await? == 0 {
        c.execute(sql::HISTOGRAM_DELETE, &[&key, &score]).await?;
    }
    Ok(())
}

/// Reads (and locks) the player's row on one board.
async fn board_score(c: &mut Conn, key: &str, user: &str) -> Result<Option<(u32, u32)>, DbError> {
    let rows = c.query(sql::SCORE_FOR_UPDATE, &[&key, &user]).await?;
    rows.first()
        .map(|r| {
            Ok((
                unsigned(
                    col::<i32>(r, 0, "leaderboard.scores.score")?.into(),
                    "score",
                )?,
                unsigned(
                    col::<i32>(r, 1, "leaderboard.scores.quizzes")?.into(),
                    "quizzes",
                )?,
            ))
        })
        .transpose()
}

/// Adds a batch's summed moves to one bucket: a positive delta updates or creates it, a
/// negative one updates it or, when it empties, deletes it.
async fn add_to_histogram(c: &mut Conn, key: &str, score: u32, delta: i64) -> Result<(), DbError> {
    let (score, n) = (
        int(score, "score")?,
        i32::try_from(delta).map_err(|_| {
            DbError::corrupt(format!("histogram delta {delta} does not fit an int"))
        })?,
    );
    if c.execute(sql::HISTOGRAM_ADD, &[&key, &score, &n]).await? == 0 {
        if n > 0 {
            c.execute(sql::HISTOGRAM_INSERT_MANY, &[&key, &score, &n])
                .await?;
        } else {
            c.execute(sql::HISTOGRAM_DELETE, &[&key, &score]).await?;
        }
    }
    Ok(())
}

/// Writes the player's board row; the histogram move goes to `deltas` when the caller sums a
/// batch's moves, else straight to the histogram.
async fn write_score(
    c: &mut Conn,
    user: &str,
    w: &ScoreWrite,
    deltas: Option<&mut HistogramDeltas>,
) -> Result<(), DbError> {
    let key = w.period_key.as_str();
    let (score, quizzes) = (int(w.score, "score")?, int(w.quizzes, "quizzes")?);
    match w.previous {
        Some(_) => {
            c.execute(sql::SCORE_UPDATE, &[&key, &user, &score, &quizzes])
                .await?
        }
        None => {
            c.execute(sql::SCORE_INSERT, &[&key, &user, &score, &quizzes])
                .await?
        }
    };
    if let Some(deltas) = deltas {
        deltas.add(w);
        return Ok(());
    }
    if let Some(old) = w.previous {
        bump_histogram(c, key, old, false).await?;
    }
    bump_histogram(c, key, w.score, true).await
}

/// Records the inbox key; false (nothing to do) when the event was handled before.
async fn first_delivery(
    c: &mut Conn,
    inbox: &InboxKey,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    record_inbox(c, inbox, now).await
}

fn applied<T: From<Applied>>(result: Result<T, DbError>) -> Result<T, StoreError> {
    match result {
        Ok(a) => Ok(a),
        // A concurrent delivery of the same event won the inbox key.
        Err(e) if e.is_unique_violation_of(INBOX_PK) => Ok(Applied::AlreadyProcessed.into()),
        Err(e) => Err(e.into()),
    }
}

/// Applies one attempt event inside the caller's transaction: records the inbox row, reads
/// and locks the player's state, asks `scoring::apply_attempt`, writes its effect. Commits
/// nothing: on `Refused` or `AlreadyProcessed` the caller rolls back (to its savepoint).
async fn apply_one(
    c: &mut Conn,
    inbox: &InboxKey,
    a: &ScoredAttempt,
    now: DateTime<Utc>,
    mut deltas: Option<&mut HistogramDeltas>,
) -> Result<AttemptApplied, DbError> {
    if !first_delivery(c, inbox, now).await? {
        return Ok(AttemptApplied::Applied(Applied::AlreadyProcessed));
    }
    let user = a.user_id.as_str();
    c.execute(sql::PLAYER_INSERT, &[&user, &a.display_name.as_str()])
        .await?;
    let rows = c.query(sql::PLAYER_STREAK_FOR_UPDATE, &[&user]).await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::corrupt("player vanished inside a transaction"))?;
    let mut before = PlayerBefore {
        streak: Streak {
            current: unsigned(
                col::<i32>(row, 0, "current_streak")?.into(),
                "current_streak",
            )?,
            best: unsigned(col::<i32>(row, 1, "best_streak")?.into(), "best_streak")?,
            last_played: opt_col::<NaiveDate>(row, 2, "last_played")?
                .map(parse_day)
                .transpose()?,
        },
        boards: Default::default(),
    };
    for (slot, period) in before.boards.iter_mut().zip(boards_of(a.day)) {
        *slot = board_score(c, &period.key(), user).await?;
    }
    let effect = match scoring::apply_attempt(a, &before) {
        Ok(effect) => effect,
        Err(why) => return Ok(AttemptApplied::Refused(why)),
    };
    let streak = effect.streak;
    c.execute(
        sql::PLAYER_APPLY_ATTEMPT,
        &[
            &user,
            &i64::from(effect.points),
            &int(streak.current, "current_streak")?,
            &int(streak.best, "best_streak")?,
            &streak.last_played.map(day),
        ],
    )
    .await?;
    for w in &effect.scores {
        write_score(c, user, w, deltas.as_deref_mut()).await?;
    }
    Ok(AttemptApplied::Applied(Applied::Now))
}

#[async_trait]
impl LeaderboardRepo for Mssql {
    async fn apply_registration(
        &self,
        inbox: &InboxKey,
        user: &UserId,
        display_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let user = user.as_str();
        applied(
            self.write("leaderboard.apply_registration", |c, _| {
                Box::pin(async move {
                    if !first_delivery(c, inbox, now).await? {
                        return Ok(Tx::Rollback(Applied::AlreadyProcessed));
                    }
                    // Insert, or (the row exists and is now U-locked) rename.
                    if c.execute(sql::PLAYER_INSERT, &[&user, &display_name])
                        .await?
                        == 0
                    {
                        c.execute(sql::PLAYER_RENAME, &[&user, &display_name])
                            .await?;
                    }
                    Ok(Tx::Commit(Applied::Now))
                })
            })
            .await,
        )
    }

    async fn open_day(
        &self,
        inbox: &InboxKey,
        d: QuizDay,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        applied(
            self.write("leaderboard.open_day", |c, _| {
                Box::pin(async move {
                    if !first_delivery(c, inbox, now).await? {
                        return Ok(Tx::Rollback(Applied::AlreadyProcessed));
                    }
                    c.execute(sql::DAY_OPEN, &[&day(d), &ms(now)]).await?;
                    Ok(Tx::Commit(Applied::Now))
                })
            })
            .await,
        )
    }

    async fn apply_attempt(
        &self,
        inbox: &InboxKey,
        attempt: &ScoredAttempt,
        now: DateTime<Utc>,
    ) -> Result<AttemptApplied, StoreError> {
        applied(
            self.write("leaderboard.apply_attempt", |c, _| {
                Box::pin(async move {
                    Ok(match apply_one(c, inbox, attempt, now, None).await? {
                        // A refusal or a replay rolls back: the inbox row goes with it.
                        outcome @ AttemptApplied::Applied(Applied::Now) => Tx::Commit(outcome),
                        outcome => Tx::Rollback(outcome),
                    })
                })
            })
            .await,
        )
    }

    async fn apply_attempts(
        &self,
        batch: &[(InboxKey, ScoredAttempt)],
        now: DateTime<Utc>,
    ) -> Result<Vec<AttemptApplied>, StoreError> {
        let result = self
            .write("leaderboard.apply_attempts", |c, _| {
                Box::pin(async move {
                    let mut outcomes = Vec::with_capacity(batch.len());
                    // The histogram moves of the whole batch, written once per bucket at the
                    // end in key order: a hot bucket is locked once per batch, for one
                    // statement, and concurrent batches take buckets in the same order.
                    let mut deltas = HistogramDeltas::default();
                    for (inbox, attempt) in batch {
                        let outcome = apply_one(c, inbox, attempt, now, Some(&mut deltas)).await?;
                        // A refused event must leave nothing behind. `apply_one` decides before
                        // it writes anything but the inbox row (its player insert is a no-op
                        // then: a refusal means the player already has today's board row), so
                        // forgetting that row undoes it; a replay wrote nothing.
                        if matches!(outcome, AttemptApplied::Refused(_)) {
                            forget_inbox(c, inbox).await?;
                        }
                        outcomes.push(outcome);
                    }
                    for (key, score, delta) in deltas.iter() {
                        add_to_histogram(c, key, score, delta).await?;
                    }
                    Ok(Tx::Commit(outcomes))
                })
            })
            .await;
        match result {
            Ok(outcomes) => Ok(outcomes),
            // A concurrent delivery of one of the events won its inbox key and XACT_ABORT rolled
            // the whole batch back: nothing of it is stored, so redelivering it is safe, and on
            // redelivery that event reads as already processed.
            Err(e) if e.is_unique_violation_of(INBOX_PK) => Err(StoreError::Unavailable(format!(
                "a concurrent delivery raced this batch; redeliver it: {}",
                e.message
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn top(
        &self,
        period_key: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedRow>, StoreError> {
        let key = period_key;
        let (limit_sql, offset_sql) = (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX));
        Ok(self
            .read("leaderboard.top", |c, _| {
                Box::pin(async move {
                    let rows = c
                        .query(sql::BOARD_PAGE, &[&key, &limit_sql, &offset_sql])
                        .await?;
                    let rows: Vec<BoardRow> = rows
                        .iter()
                        .map(|r| {
                            Ok(BoardRow {
                                user_id: text(r, 0, "leaderboard.scores.user_id")?,
                                display_name: text(r, 1, "display name")?,
                                score: unsigned(col::<i32>(r, 2, "score")?.into(), "score")?,
                                quizzes: unsigned(col::<i32>(r, 3, "quizzes")?.into(), "quizzes")?,
                            })
                        })
                        .collect::<Result<_, DbError>>()?;
                    let above_first = match rows.first() {
                        Some(first) => players_above(c, key, first.score).await?,
                        None => 0,
                    };
                    Ok(rank_page(rows, offset, above_first))
                })
            })
            .await?)
    }

    async fn standing(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        let (key, user) = (period_key, user.as_str());
        Ok(self
            .read("leaderboard.standing", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::STANDING, &[&key, &user]).await?;
                    rows.first()
                        .map(|r| {
                            let above: u64 =
                                unsigned(col::<i64>(r, 2, "players above")?, "players above")?;
                            Ok(Standing {
                                rank: 1 + above,
                                score: unsigned(col::<i32>(r, 0, "score")?.into(), "score")?,
                                quizzes: unsigned(col::<i32>(r, 1, "quizzes")?.into(), "quizzes")?,
                            })
                        })
                        .transpose()
                })
            })
            .await?)
    }

    async fn player_count(&self, period_key: &str) -> Result<u64, StoreError> {
        let key = period_key;
        Ok(self
            .read("leaderboard.player_count", |c, _| {
                Box::pin(async move { count(c, sql::PLAYER_COUNT, &[&key], "player count").await })
            })
            .await?)
    }

    async fn player_stats(&self, user: &UserId) -> Result<Option<PlayerStats>, StoreError> {
        let user = user.as_str();
        Ok(self
            .read("leaderboard.player_stats", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::PLAYER_STATS, &[&user]).await?;
                    rows.first()
                        .map(|r| {
                            Ok(PlayerStats {
                                quizzes_played: unsigned(
                                    col::<i32>(r, 0, "quizzes_played")?.into(),
                                    "quizzes_played",
                                )?,
                                total_score: unsigned(
                                    col::<i64>(r, 1, "total_score")?,
                                    "total_score",
                                )?,
                                streak: Streak {
                                    current: unsigned(
                                        col::<i32>(r, 2, "current_streak")?.into(),
                                        "current_streak",
                                    )?,
                                    best: unsigned(
                                        col::<i32>(r, 3, "best_streak")?.into(),
                                        "best_streak",
                                    )?,
                                    last_played: opt_col::<NaiveDate>(r, 4, "last_played")?
                                        .map(parse_day)
                                        .transpose()?,
                                },
                            })
                        })
                        .transpose()
                })
            })
            .await?)
    }

    async fn histogram(&self, period_key: &str) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        let key = period_key;
        Ok(self
            .read("leaderboard.histogram", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::HISTOGRAM_SELECT, &[&key]).await?;
                    let histogram = rows
                        .iter()
                        .map(|r| {
                            Ok((
                                unsigned(col::<i32>(r, 0, "histogram score")?.into(), "score")?,
                                unsigned(col::<i32>(r, 1, "histogram players")?.into(), "players")?,
                            ))
                        })
                        .collect::<Result<Vec<_>, DbError>>()?;
                    Ok(Some(histogram))
                })
            })
            .await?)
    }

    async fn score(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<(u32, u32)>, StoreError> {
        let (key, user) = (period_key, user.as_str());
        Ok(self
            .read("leaderboard.score", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::SCORE_SELECT, &[&key, &user]).await?;
                    rows.first()
                        .map(|r| {
                            Ok((
                                unsigned(col::<i32>(r, 0, "score")?.into(), "score")?,
                                unsigned(col::<i32>(r, 1, "quizzes")?.into(), "quizzes")?,
                            ))
                        })
                        .transpose()
                })
            })
            .await?)
    }

    async fn day_opened(&self, d: QuizDay) -> Result<bool, StoreError> {
        Ok(self
            .read("leaderboard.day_opened", |c, _| {
                Box::pin(async move {
                    let rows = c.query(sql::DAY_OPENED, &[&day(d)]).await?;
                    rows.first()
                        .map(|r| col::<bool>(r, 0, "day opened"))
                        .transpose()
                        .map(|b| b.unwrap_or(false))
                })
            })
            .await?)
    }
}
