//! Leaderboard context: daily, ISO-weekly and all-time scores, ranks and streaks, built only
//! from events (`UserRegistered`, `DailyQuizGenerated`, `QuizAttemptEvaluated`). Owns the
//! `leaderboard_*` tables. Ranks use competition ranking (1, 2, 2, 4) and are answered from a
//! score histogram, so "my rank" costs one small indexed sum, never a scan of all players.

pub mod consumers;
pub mod http;

use crate::kernel::{QuizDay, Streak, UserId};
use crate::platform::store::{Applied, InboxKey, StoreError};
use async_trait::async_trait;
use std::sync::Arc;

/// Which board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    Daily(QuizDay),
    Weekly(QuizDay),
    AllTime,
}

impl Period {
    /// The storage key of the board this period names: `day:2026-11-27`, `week:2026-W48`, `all`.
    pub fn key(&self) -> String {
        match self {
            Period::Daily(d) => format!("day:{d}"),
            Period::Weekly(d) => format!("week:{}", d.iso_week()),
            Period::AllTime => "all".to_owned(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Period::Daily(_) => "daily",
            Period::Weekly(_) => "weekly",
            Period::AllTime => "alltime",
        }
    }
}

/// A scored attempt as the leaderboard records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredAttempt {
    pub user_id: UserId,
    pub display_name: String,
    pub day: QuizDay,
    pub score: u32,
}

/// One row of a board, before ranks are assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRow {
    pub user_id: String,
    pub display_name: String,
    pub score: u32,
    pub quizzes: u32,
}

/// A ranked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedRow {
    pub rank: u64,
    pub row: BoardRow,
}

/// A player's standing on one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub rank: u64,
    pub score: u32,
    pub quizzes: u32,
}

/// A player's lifetime numbers, as the leaderboard knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayerStats {
    pub quizzes_played: u32,
    pub total_score: u64,
    pub streak: Streak,
}

/// Persistence of the leaderboard context. Every `apply_*` records `inbox` in the same
/// transaction as its effect and returns `AlreadyProcessed` (changing nothing) on a replay.
#[async_trait]
pub trait LeaderboardRepo: Send + Sync {
    async fn apply_registration(
        &self,
        inbox: &InboxKey,
        user: &UserId,
        display_name: &str,
    ) -> Result<Applied, StoreError>;
    async fn open_day(&self, inbox: &InboxKey, day: QuizDay) -> Result<Applied, StoreError>;
    /// Adds the attempt to the daily, weekly and all-time boards and advances the streak.
    async fn apply_attempt(
        &self,
        inbox: &InboxKey,
        attempt: &ScoredAttempt,
    ) -> Result<Applied, StoreError>;
    /// Rows ordered by score (desc) then user id, with competition ranks.
    async fn top(
        &self,
        period_key: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<RankedRow>, StoreError>;
    /// The player's rank and score on a board, if they have played in that period.
    async fn standing(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError>;
    /// Number of players on a board.
    async fn player_count(&self, period_key: &str) -> Result<u64, StoreError>;
    async fn player_stats(&self, user: &UserId) -> Result<Option<PlayerStats>, StoreError>;
    async fn day_opened(&self, day: QuizDay) -> Result<bool, StoreError>;
}

/// A board page.
#[derive(Debug, Clone)]
pub struct Board {
    pub period: Period,
    pub total_players: u64,
    pub rows: Vec<RankedRow>,
}

/// The leaderboard service (queries; the writes come in through `consumers`).
pub struct Leaderboard {
    repo: Arc<dyn LeaderboardRepo>,
}

impl Leaderboard {
    pub fn new(repo: Arc<dyn LeaderboardRepo>) -> Self {
        Self { repo }
    }

    pub fn repo(&self) -> &Arc<dyn LeaderboardRepo> {
        &self.repo
    }

    pub async fn board(
        &self,
        period: Period,
        limit: u32,
        offset: u64,
    ) -> Result<Board, StoreError> {
        let key = period.key();
        let (rows, total_players) = tokio::try_join!(
            self.repo.top(&key, limit, offset),
            self.repo.player_count(&key)
        )?;
        Ok(Board {
            period,
            total_players,
            rows,
        })
    }

    pub async fn standing(
        &self,
        period: &Period,
        user: &UserId,
    ) -> Result<(Option<Standing>, u64), StoreError> {
        let key = period.key();
        tokio::try_join!(self.repo.standing(&key, user), self.repo.player_count(&key))
    }

    pub async fn player_stats(&self, user: &UserId) -> Result<PlayerStats, StoreError> {
        Ok(self.repo.player_stats(user).await?.unwrap_or_default())
    }
}
