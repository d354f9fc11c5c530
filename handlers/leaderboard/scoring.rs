//! The leaderboard's rules, written once for every storage engine: which events it accepts,
//! how one attempt changes the daily, weekly and all-time boards and the player's streak, and
//! how a page of a board is ranked. The stores read the state named here inside their
//! transaction, call these functions, and write what they return; they add only SQL.

use super::{BoardRow, Period, RankedRow};
use crate::kernel::events::QuizAttemptEvaluatedV1;
use crate::kernel::{DisplayName, QuizDay, Streak, UserId};

/// A scored attempt the leaderboard has accepted (every field checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredAttempt {
    pub user_id: UserId,
    pub display_name: String,
    pub day: QuizDay,
    pub score: u32,
}

impl ScoredAttempt {
    /// Checks an event against the leaderboard's own invariants: a valid player id and display
    /// name (the registration rules), a quiz day that is not in the future, and a score within
    /// the bounds the event carries. A violation is permanent: the event is poison.
    pub fn from_event(e: QuizAttemptEvaluatedV1, today: QuizDay) -> Result<Self, String> {
        let user_id = UserId::parse(&e.user_id)?;
        let display_name = DisplayName::parse(&e.display_name)?;
        let day = QuizDay::parse(&e.quiz_date)?;
        if day > today {
            return Err(format!(
                "attempt for {day} is in the future (today is {today})"
            ));
        }
        if e.correct > e.total || e.score > e.max_score || (e.total == 0 && e.score > 0) {
            return Err(format!(
                "impossible result: score {} of at most {} for {} of {} correct",
                e.score, e.max_score, e.correct, e.total
            ));
        }
        Ok(Self {
            user_id,
            display_name: display_name.as_str().to_owned(),
            day,
            score: e.score,
        })
    }
}

/// The boards one attempt counts on, in this order everywhere.
pub fn boards_of(day: QuizDay) -> [Period; 3] {
    [Period::Daily(day), Period::Weekly(day), Period::AllTime]
}

/// What a store reads (and locks) inside its transaction before applying an attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayerBefore {
    /// The player's streak; the default for a player the leaderboard has not seen yet.
    pub streak: Streak,
    /// The player's `(score, quizzes)` on each board of [`boards_of`], if present.
    pub boards: [Option<(u32, u32)>; 3],
}

/// One board row to write, and the histogram move that keeps ranks right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreWrite {
    pub period_key: String,
    pub score: u32,
    pub quizzes: u32,
    /// The bucket the player leaves (`None`: new on this board); they join `score`'s bucket.
    pub previous: Option<u32>,
}

/// Everything applying one attempt changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEffect {
    pub streak: Streak,
    /// Added to the player's lifetime total; their quiz count grows by one.
    pub points: u32,
    pub scores: [ScoreWrite; 3],
}

/// The histogram moves of many score writes, summed per bucket: what a batch of attempts does
/// to the histograms, written once per bucket at the end of the batch instead of once per
/// event (a hot bucket, e.g. today's most common score, is then locked once per batch). Keys
/// iterate in a fixed order (`period_key`, `score`), so concurrent batches lock buckets in the
/// same order. Buckets whose moves cancel out are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramDeltas(std::collections::BTreeMap<(String, u32), i64>);

impl HistogramDeltas {
    /// Adds one write's move: out of its previous bucket (if any), into its new one.
    pub fn add(&mut self, w: &ScoreWrite) {
        if let Some(old) = w.previous {
            *self.0.entry((w.period_key.clone(), old)).or_default() -= 1;
        }
        *self.0.entry((w.period_key.clone(), w.score)).or_default() += 1;
    }

    /// `(period_key, score, delta)` for every bucket that changes, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32, i64)> {
        self.0
            .iter()
            .filter(|(_, d)| **d != 0)
            .map(|((k, s), d)| (k.as_str(), *s, *d))
    }
}

/// Applies `attempt` to `before`. At most one attempt per player and quiz day counts: a
/// second one (a distinct event for a day already on the player's daily board) is refused,
/// and the caller stores it as poison.
pub fn apply_attempt(
    attempt: &ScoredAttempt,
    before: &PlayerBefore,
) -> Result<AttemptEffect, String> {
    if before.boards[0].is_some() {
        return Err(format!(
            "player {} already has an attempt for {} on the leaderboard",
            attempt.user_id, attempt.day
        ));
    }
    // An attempt older than the last one played keeps the streak as it is.
    let streak = before.streak.played(attempt.day).unwrap_or(before.streak);
    let scores = boards_of(attempt.day)
        .iter()
        .zip(before.boards)
        .map(|(period, current)| {
            let (score, quizzes) = current.unwrap_or((0, 0));
            ScoreWrite {
                period_key: period.key(),
                score: score + attempt.score,
                quizzes: quizzes + 1,
                previous: current.map(|(s, _)| s),
            }
        })
        .collect::<Vec<_>>()
        .try_into()
        .expect("three boards in, three writes out");
    Ok(AttemptEffect {
        streak,
        points: attempt.score,
        scores,
    })
}

/// Competition ranks (1, 2, 2, 4) for one page of a board ordered by score (desc) then user
/// id, starting at `offset`, given how many players score above the page's first row.
pub fn rank_page(rows: Vec<BoardRow>, offset: u64, above_first: u64) -> Vec<RankedRow> {
    let Some(first_score) = rows.first().map(|r| r.score) else {
        return Vec::new();
    };
    // After the first row, the rank changes only when the score does, and then equals the
    // row's position on the whole board.
    let mut rank = 1 + above_first;
    let mut previous = first_score;
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            if row.score != previous {
                rank = offset + i as u64 + 1;
                previous = row.score;
            }
            RankedRow { rank, row }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> QuizDay {
        QuizDay::parse(s).unwrap()
    }

    fn attempt(d: &str, score: u32) -> ScoredAttempt {
        ScoredAttempt {
            user_id: UserId::parse("u1").unwrap(),
            display_name: "Ada".into(),
            day: day(d),
            score,
        }
    }

    fn event(d: &str, score: u32, max: u32, correct: u32) -> QuizAttemptEvaluatedV1 {
        QuizAttemptEvaluatedV1 {
            user_id: "u1".into(),
            display_name: "Ada".into(),
            quiz_date: d.into(),
            iso_week: "2026-W48".into(),
            score,
            max_score: max,
            correct,
            total: 5,
            submitted_at: "2026-11-27T08:00:00.000Z".into(),
        }
    }

    #[test]
    fn first_attempt_opens_every_board_and_the_streak() {
        let e = apply_attempt(&attempt("2026-11-27", 30), &PlayerBefore::default()).unwrap();
        assert_eq!(e.points, 30);
        assert_eq!(e.streak.current, 1);
        let keys: Vec<&str> = e.scores.iter().map(|s| s.period_key.as_str()).collect();
        assert_eq!(keys, ["day:2026-11-27", "week:2026-W48", "all"]);
        assert!(
            e.scores
                .iter()
                .all(|s| s.score == 30 && s.quizzes == 1 && s.previous.is_none())
        );
    }

    #[test]
    fn later_attempts_add_to_week_and_all_time_and_move_histogram_buckets() {
        let before = PlayerBefore {
            streak: Streak {
                current: 2,
                best: 4,
                last_played: Some(day("2026-11-26")),
            },
            boards: [None, Some((20, 1)), Some((90, 5))],
        };
        let e = apply_attempt(&attempt("2026-11-27", 40), &before).unwrap();
        assert_eq!((e.streak.current, e.streak.best), (3, 4));
        assert_eq!(
            (e.scores[1].score, e.scores[1].quizzes, e.scores[1].previous),
            (60, 2, Some(20))
        );
        assert_eq!(
            (e.scores[2].score, e.scores[2].quizzes, e.scores[2].previous),
            (130, 6, Some(90))
        );
    }

    #[test]
    fn a_second_attempt_for_the_same_day_is_refused() {
        let before = PlayerBefore {
            boards: [Some((50, 1)), Some((50, 1)), Some((50, 1))],
            ..Default::default()
        };
        let why = apply_attempt(&attempt("2026-11-27", 50), &before).unwrap_err();
        assert!(
            why.contains("already has an attempt for 2026-11-27"),
            "{why}"
        );
    }

    #[test]
    fn events_that_break_the_leaderboards_invariants_are_refused() {
        let today = day("2026-11-27");
        let cases = [
            (event("2026-11-27", 50, 50, 5), None),
            (event("2026-11-28", 10, 50, 1), Some("in the future")),
            (event("2026-11-27", 200, 50, 5), Some("impossible result")),
            (event("2026-11-27", 10, 50, 6), Some("impossible result")),
            (
                QuizAttemptEvaluatedV1 {
                    display_name: "a\u{7}b".into(),
                    ..event("2026-11-27", 0, 50, 0)
                },
                Some("control"),
            ),
            (
                QuizAttemptEvaluatedV1 {
                    display_name: "x".repeat(10_000),
                    ..event("2026-11-27", 0, 50, 0)
                },
                Some("limit"),
            ),
            (
                QuizAttemptEvaluatedV1 {
                    user_id: String::new(),
                    ..event("2026-11-27", 0, 50, 0)
                },
                Some("user id"),
            ),
        ];
        for (e, expected) in cases {
            let got = ScoredAttempt::from_event(e.clone(), today);
            match expected {
                None => assert!(got.is_ok(), "{e:?}: {got:?}"),
                Some(text) => assert!(
                    got.as_ref().is_err_and(|w| w.contains(text)),
                    "{e:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn histogram_deltas_sum_moves_per_bucket_and_drop_the_ones_that_cancel() {
        let w = |key: &str, score, previous| ScoreWrite {
            period_key: key.into(),
            score,
            quizzes: 1,
            previous,
        };
        let mut d = HistogramDeltas::default();
        d.add(&w("day:x", 30, None));
        d.add(&w("day:x", 30, None));
        d.add(&w("all", 50, Some(20)));
        d.add(&w("all", 20, Some(0)));
        let got: Vec<_> = d.iter().collect();
        assert_eq!(got, vec![("all", 0, -1), ("all", 50, 1), ("day:x", 30, 2)]);
    }

    #[test]
    fn pages_get_competition_ranks() {
        let row = |u: &str, score| BoardRow {
            user_id: u.into(),
            display_name: u.into(),
            score,
            quizzes: 1,
        };
        let page = rank_page(
            vec![row("a", 30), row("b", 30), row("c", 20), row("d", 10)],
            10,
            9,
        );
        let ranks: Vec<u64> = page.iter().map(|r| r.rank).collect();
        assert_eq!(ranks, [10, 10, 13, 14]);
        assert!(rank_page(Vec::new(), 0, 0).is_empty());
    }
}
