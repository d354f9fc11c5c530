//! The database engines and what every store shares. Each context defines its repository
//! trait next to its domain and implements it for both engines in its own `store/` folder; this
//! module holds the engines (`sqlite`, `mssql`: connections, transactions, migrations, the
//! outbox/inbox/poison tables), the error type, the inbox key consumers record with their
//! effect, the outbox/poison port and `open`, which turns `QOTD_DATABASE_URL` into one engine.

pub mod mssql;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Why a storage call failed. Callers treat every variant as "not done": nothing was written.
/// Only `Unavailable` is worth retrying; the others are bugs or bad data that a retry repeats.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Transient: the database could not be reached, timed out, deadlocked or throttled;
    /// retrying later may succeed (HTTP 503 + `Retry-After`; consumers fail for redelivery).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Permanent: the database refused the statement (constraint, type, syntax): a bug or bad
    /// input that a retry would repeat (HTTP 500; consumers store the message as poison).
    #[error("database refused the operation: {0}")]
    Refused(String),
    /// Permanent: stored data broke an invariant the code relies on (a bug or manual edit).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Idempotency key of one consumer's handling of one event: recorded in the same transaction as
/// the consumer's effect, so a redelivered event finds it and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxKey {
    pub consumer: &'static str,
    pub event_id: String,
}

/// Whether a consumer's effect was applied now or had been applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    AlreadyProcessed,
}

/// One committed event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub seq: i64,
    pub event_id: String,
    pub topic: String,
    pub subject: String,
    pub event_type: String,
    pub correlation_id: Option<String>,
    pub payload: String,
    pub attempts: u32,
}

/// Unsent events of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicBacklog {
    pub topic: String,
    pub pending: u64,
    /// When the oldest unsent event of the topic was committed.
    pub oldest: Option<DateTime<Utc>>,
}

/// How far the outbox is behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    pub pending: u64,
    /// When the oldest unsent event was committed.
    pub oldest: Option<DateTime<Utc>>,
    /// Per topic, by topic name.
    pub topics: Vec<TopicBacklog>,
}

impl OutboxStatus {
    /// The totals of per-topic backlogs (both engines read the topics, this adds them up).
    pub fn from_topics(topics: Vec<TopicBacklog>) -> Self {
        Self {
            pending: topics.iter().map(|t| t.pending).sum(),
            oldest: topics.iter().filter_map(|t| t.oldest).min(),
            topics,
        }
    }
}

/// A stored poison message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonMessage {
    pub id: i64,
    pub consumer: String,
    pub message_id: Option<String>,
    pub payload: String,
    pub reason: String,
    pub received_at: DateTime<Utc>,
}

/// The outbox and poison-message port. Claims are leases: a claimed row is invisible to other
/// dispatchers until `lease` runs out, so several instances never publish the same row at once
/// in normal operation, and a crashed dispatcher's rows come back after the lease.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Claims up to `limit` unsent events due at `now`, oldest first, for `lease`.
    async fn claim_pending(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingEvent>, StoreError>;
    /// Marks events published; only rows still claimed by `owner` are changed.
    async fn mark_sent(
        &self,
        owner: &str,
        seqs: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Gives a claimed event back with the failure reason, not to be retried before `retry_at`.
    async fn release(
        &self,
        owner: &str,
        seq: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Events committed but not yet published.
    async fn pending_count(&self) -> Result<u64, StoreError>;
    /// Stores a message a consumer can never process, with the reason, so it can be acknowledged.
    async fn record_poison(
        &self,
        consumer: &str,
        message_id: Option<&str>,
        payload: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Number of poison messages stored for `consumer`.
    async fn poison_count(&self, consumer: &str) -> Result<u64, StoreError>;
    /// A cheap round trip proving the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Gives back every unsent row still leased to `owner` (a restarted dispatcher with a
    /// stable owner id reclaims its dead predecessor's leases at once). Returns how many.
    async fn reclaim_leases(&self, owner: &str) -> Result<u64, StoreError>;
    /// Unsent events: count, oldest, and the same per topic.
    async fn outbox_status(&self) -> Result<OutboxStatus, StoreError>;
    /// Poison messages, oldest first, optionally of one consumer, at most `limit`.
    async fn poison_list(
        &self,
        consumer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PoisonMessage>, StoreError>;
    /// One poison message by id.
    async fn poison_get(&self, id: i64) -> Result<Option<PoisonMessage>, StoreError>;
    /// Deletes one poison message; false when there was none with that id.
    async fn poison_delete(&self, id: i64) -> Result<bool, StoreError>;
    /// Number of poison messages of every consumer.
    async fn poison_total(&self) -> Result<u64, StoreError>;
}

/// One opened engine. Each context turns it into its own repository (`<context>::store::repo`).
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<sqlite::Sqlite>),
    Mssql(Arc<mssql::Mssql>),
}

impl Database {
    /// The outbox/poison port of this engine.
    pub fn events(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Sqlite(db) => db.clone(),
            Self::Mssql(db) => db.clone(),
        }
    }
}

/// Where the data lives, parsed from `QOTD_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    /// Azure SQL or SQL Server, from an ADO.NET connection string (its password, if any, is
    /// never shown by `Debug` or errors).
    Mssql(mssql::ConnectionString),
}

impl DatabaseUrl {
    /// Accepts `sqlite://<path>` or `sqlite:<path>`, or an ADO.NET connection string
    /// (`Server=tcp:<name>.database.windows.net,1433;Database=<db>;Authentication=...`);
    /// anything else names the problem.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"));
        match path {
            Some("") => Err("sqlite URL has no file path (expected sqlite://<path>)".into()),
            Some(p) => Ok(Self::Sqlite(p.into())),
            // ADO.NET: the text starts with a key such as `Server=` or `Data Source=`.
            None if raw.split_once('=').is_some_and(|(key, _)| {
                !key.trim().is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '_')
            }) =>
            {
                mssql::ConnectionString::parse(raw)
                    .map(Self::Mssql)
                    .map_err(|e| e.to_string())
            }
            None => Err(format!(
                "unsupported database URL '{}' (expected sqlite://<path> or an ADO.NET connection string such as Server=tcp:<name>.database.windows.net,1433;Database=<db>;Authentication=Active Directory Managed Identity)",
                redact_url(raw)
            )),
        }
    }

    /// A description safe to print (no password).
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Mssql(cs) => cs.redacted(),
        }
    }
}

/// Hides anything that looks like a credential before a URL is echoed in an error.
fn redact_url(raw: &str) -> String {
    if raw.to_ascii_lowercase().contains("password") || raw.contains('@') {
        "[redacted]".into()
    } else {
        raw.chars().take(80).collect()
    }
}

/// Opens the backend, applying pending migrations first; SQL Server pool settings come from
/// the environment (`QOTD_SQL_*`).
pub async fn open(url: &DatabaseUrl) -> anyhow::Result<Database> {
    let sql = mssql::SqlSettings::from_lookup(|k| std::env::var(k).ok())?;
    open_with(url, &sql).await
}

/// One connection attempt without migrations or retries (SQL Server: token, TCP, TLS and
/// login), so a caller that retries on its own schedule learns at once why the database is not
/// reachable. SQLite always succeeds here (`open_with` reports its errors).
pub async fn probe(url: &DatabaseUrl, sql: &mssql::SqlSettings) -> anyhow::Result<()> {
    match url {
        DatabaseUrl::Sqlite(_) => Ok(()),
        DatabaseUrl::Mssql(cs) => {
            let db = mssql::Mssql::connect_lazily(cs, sql)?;
            db.dedicated().await.map(drop).map_err(anyhow::Error::new)
        }
    }
}

/// Opens the backend with already validated SQL Server pool settings.
pub async fn open_with(url: &DatabaseUrl, sql: &mssql::SqlSettings) -> anyhow::Result<Database> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Database::Sqlite(Arc::new(sqlite::Sqlite::open(path)?)),
        DatabaseUrl::Mssql(cs) => Database::Mssql(Arc::new(mssql::Mssql::open(cs, sql).await?)),
    })
}
