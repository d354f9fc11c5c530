//! Leaderboard context: daily, ISO-weekly and all-time scores, ranks and streaks, built only
//! from events (`UserRegistered`, `DailyQuizGenerated`, `QuizAttemptEvaluated`). Owns the
//! `leaderboard_*` tables. Ranks use competition ranking (1, 2, 2, 4) and are answered from a
//! score histogram, so "my rank" costs one small indexed sum, never a scan of all players.

pub mod consumers;
pub mod http;
pub mod scoring;
pub mod store;

pub use scoring::ScoredAttempt;

use crate::kernel::{QuizDay, Streak, UserId};
use crate::platform::clock::Clock;
use crate::platform::memo::Derived;
use crate::platform::store::{Applied, InboxKey, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// What applying an attempt event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptApplied {
    Applied(Applied),
    /// The event breaks a leaderboard rule (see `scoring::apply_attempt`); nothing changed.
    Refused(String),
}

impl From<Applied> for AttemptApplied {
    fn from(a: Applied) -> Self {
        Self::Applied(a)
    }
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
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;
    async fn open_day(
        &self,
        inbox: &InboxKey,
        day: QuizDay,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;
    /// Reads the player's state, applies `scoring::apply_attempt` and writes its effect (the
    /// daily, weekly and all-time boards, the histograms and the streak) in one transaction.
    async fn apply_attempt(
        &self,
        inbox: &InboxKey,
        attempt: &ScoredAttempt,
        now: DateTime<Utc>,
    ) -> Result<AttemptApplied, StoreError>;
    /// Applies many attempt events in one transaction, in order, each with its own inbox row
    /// and its own `scoring::apply_attempt` decision: the outcome at index `i` is the one
    /// `apply_attempt` would have given event `i` applied after events `0..i`. A refused event
    /// leaves nothing behind (not even its inbox row) and does not fail the batch; a storage
    /// error fails the whole batch (nothing of it is kept). The default applies one by one.
    async fn apply_attempts(
        &self,
        batch: &[(InboxKey, ScoredAttempt)],
        now: DateTime<Utc>,
    ) -> Result<Vec<AttemptApplied>, StoreError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for (inbox, attempt) in batch {
            outcomes.push(self.apply_attempt(inbox, attempt, now).await?);
        }
        Ok(outcomes)
    }
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
    /// The board's score histogram, `(score, players)` with the highest score first, or `None`
    /// if the backend does not offer it (callers then use `standing` and `player_count`).
    async fn histogram(&self, _period_key: &str) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        Ok(None)
    }
    /// The player's `(score, quizzes)` on a board, without computing the rank.
    async fn score(
        &self,
        period_key: &str,
        user: &UserId,
    ) -> Result<Option<(u32, u32)>, StoreError> {
        Ok(self
            .standing(period_key, user)
            .await?
            .map(|s| (s.score, s.quizzes)))
    }
}

/// A board's score histogram with running totals: rank and player count in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// `(score, players with a higher score)`, highest score first.
    above: Vec<(u32, u64)>,
    total: u64,
}

impl Histogram {
    /// Builds from `(score, players)` rows in any order.
    pub fn new(mut rows: Vec<(u32, u64)>) -> Self {
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut above = Vec::with_capacity(rows.len());
        let mut running = 0;
        for (score, players) in rows {
            above.push((score, running));
            running += players;
        }
        Self {
            above,
            total: running,
        }
    }

    /// Competition rank of `score`: 1 + the players with a higher score.
    pub fn rank(&self, score: u32) -> u64 {
        let i = self.above.partition_point(|(s, _)| *s > score);
        1 + match self.above.get(i) {
            Some((_, above)) => *above,
            None => self.total,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }
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
    clock: Arc<dyn Clock>,
    /// Bumped by every effect applied in this process; cached reads older than it are dropped.
    generation: AtomicU64,
    histograms: CacheMap<String, Arc<Histogram>>,
    pages: CacheMap<(String, u32, u64), Arc<Board>>,
    /// The HTTP adapter's rendered pages: they live exactly as long as the cached `Arc<Board>`
    /// they were rendered from.
    pub(crate) rendered: Derived<(String, u32, u64), Board, bytes::Bytes>,
}

/// A small read cache: key → value with the generation and time it was read at.
type CacheMap<K, T> = Mutex<HashMap<K, Cached<T>>>;

struct Cached<T> {
    value: T,
    generation: u64,
    at: Instant,
}

/// How long a cached board page or histogram may be served. Writes in this process invalidate
/// at once; writes by other instances show within this time (boards are eventually consistent
/// anyway: they are built from events).
pub const READ_CACHE_TTL: Duration = Duration::from_secs(2);
const READ_CACHE_MAX: usize = 1024;

impl Leaderboard {
    pub fn new(repo: Arc<dyn LeaderboardRepo>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repo,
            clock,
            generation: AtomicU64::new(0),
            histograms: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            rendered: Derived::default(),
        }
    }

    fn cached<K: std::hash::Hash + Eq, T: Clone>(
        &self,
        map: &Mutex<HashMap<K, Cached<T>>>,
        key: &K,
    ) -> Option<T> {
        let generation = self.generation.load(Ordering::Acquire);
        // A panic elsewhere while holding the lock leaves a usable map: keep serving.
        let map = map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|c| c.generation == generation && c.at.elapsed() < READ_CACHE_TTL)
            .map(|c| c.value.clone())
    }

    fn remember<K: std::hash::Hash + Eq, T>(
        &self,
        map: &Mutex<HashMap<K, Cached<T>>>,
        key: K,
        value: T,
        generation: u64,
    ) {
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= READ_CACHE_MAX {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                value,
                generation,
                at: Instant::now(),
            },
        );
    }

    fn applied(&self, applied: Applied) -> Applied {
        if applied == Applied::Now {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        applied
    }

    /// Today in UTC, by the injected clock.
    pub fn today(&self) -> QuizDay {
        QuizDay::of(self.clock.now())
    }

    /// Consumer entry points: apply an effect with its inbox row, then invalidate cached reads.
    pub async fn apply_registration(
        &self,
        inbox: &InboxKey,
        user: &UserId,
        display_name: &str,
    ) -> Result<Applied, StoreError> {
        let now = self.clock.now();
        Ok(self.applied(
            self.repo
                .apply_registration(inbox, user, display_name, now)
                .await?,
        ))
    }

    pub async fn open_day(&self, inbox: &InboxKey, day: QuizDay) -> Result<Applied, StoreError> {
        let now = self.clock.now();
        Ok(self.applied(self.repo.open_day(inbox, day, now).await?))
    }

    pub async fn apply_attempt(
        &self,
        inbox: &InboxKey,
        attempt: &ScoredAttempt,
    ) -> Result<AttemptApplied, StoreError> {
        let now = self.clock.now();
        let outcome = self.repo.apply_attempt(inbox, attempt, now).await?;
        if let AttemptApplied::Applied(a) = outcome {
            self.applied(a);
        }
        Ok(outcome)
    }

    /// A batch of attempt events in one transaction (see `LeaderboardRepo::apply_attempts`).
    pub async fn apply_attempts(
        &self,
        batch: &[(InboxKey, ScoredAttempt)],
    ) -> Result<Vec<AttemptApplied>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let outcomes = self.repo.apply_attempts(batch, now).await?;
        if outcomes.contains(&AttemptApplied::Applied(Applied::Now)) {
            self.applied(Applied::Now);
        }
        Ok(outcomes)
    }

    /// The board's histogram (cached), or `None` if the backend has none.
    async fn histogram(&self, key: &str) -> Result<Option<Arc<Histogram>>, StoreError> {
        if let Some(h) = self.cached(&self.histograms, &key.to_owned()) {
            return Ok(Some(h));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(rows) = self.repo.histogram(key).await? else {
            return Ok(None);
        };
        let h = Arc::new(Histogram::new(rows));
        self.remember(&self.histograms, key.to_owned(), h.clone(), generation);
        Ok(Some(h))
    }

    /// One page of a board (cached).
    pub async fn board(
        &self,
        period: Period,
        limit: u32,
        offset: u64,
    ) -> Result<Arc<Board>, StoreError> {
        let key = (period.key(), limit, offset);
        if let Some(b) = self.cached(&self.pages, &key) {
            return Ok(b);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let (rows, total_players) = match self.histogram(&key.0).await? {
            Some(h) => (self.repo.top(&key.0, limit, offset).await?, h.total()),
            None => tokio::try_join!(
                self.repo.top(&key.0, limit, offset),
                self.repo.player_count(&key.0)
            )?,
        };
        let board = Arc::new(Board {
            period,
            total_players,
            rows,
        });
        self.remember(&self.pages, key, board.clone(), generation);
        Ok(board)
    }

    /// The player's standing and the board's player count: one small read for the player's
    /// score, the rank from the cached histogram.
    pub async fn standing(
        &self,
        period: &Period,
        user: &UserId,
    ) -> Result<(Option<Standing>, u64), StoreError> {
        let key = period.key();
        match self.histogram(&key).await? {
            Some(h) => {
                let standing =
                    self.repo
                        .score(&key, user)
                        .await?
                        .map(|(score, quizzes)| Standing {
                            rank: h.rank(score),
                            score,
                            quizzes,
                        });
                Ok((standing, h.total()))
            }
            None => tokio::try_join!(self.repo.standing(&key, user), self.repo.player_count(&key)),
        }
    }

    pub async fn player_stats(&self, user: &UserId) -> Result<PlayerStats, StoreError> {
        Ok(self.repo.player_stats(user).await?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_ranks_are_competition_ranks() {
        let h = Histogram::new(vec![(30, 2), (50, 1), (10, 1), (0, 1)]);
        let ranks: Vec<u64> = [50, 30, 10, 0].iter().map(|s| h.rank(*s)).collect();
        assert_eq!(ranks, vec![1, 2, 4, 5]);
        assert_eq!(h.rank(60), 1, "a score above everyone ranks first");
        assert_eq!(
            h.rank(20),
            4,
            "a score between buckets ranks after the higher ones"
        );
        assert_eq!(h.total(), 5);
        assert_eq!(Histogram::new(vec![]).rank(10), 1);
    }
}
