//! The Azure SQL / SQL Server engine: tiberius 0.12 pooled with bb8, with the outbox/inbox
//! port and the same semantics as the SQLite engine. Each context implements its repository
//! on it in `<context>/store/mssql.rs`, with its statements in `<context>/store/tsql.rs`.
//!
//! - Connection settings: an ADO.NET connection string in `QOTD_DATABASE_URL`, parsed strictly
//!   by [`connstr`]; pool size and timeouts from [`settings`].
//! - Connections: [`pool::Manager`] gets a fresh Entra token for every new connection and
//!   follows Azure SQL's routing redirect; broken connections are never reused.
//! - Every statement is in [`sql`]; the schema is `migrations/mssql` (goose format), applied by
//!   [`migrate`].
//! - Failures: transient ones are retried with backoff and jitter where that is safe (reads
//!   always, writes only before `COMMIT` was sent; see [`retry`]); each statement has a
//!   timeout. A duplicate key is "already exists", never an error.
//!
//! Nothing here has run against a real SQL Server in this repository's CI: the contract suite
//! (`tests/store_contract.rs`) runs against one only when `QOTD_TEST_MSSQL_URL` is set.

pub mod connstr;
mod events;
pub mod migrate;
pub mod pool;
pub mod retry;
pub mod settings;
pub mod sql;

pub use connstr::ConnectionString;
pub use settings::SqlSettings;

use super::StoreError;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
pub use pool::Conn;
use pool::{LogSink, Manager};
use retry::{Failure, SqlRetry};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tiberius::Row;

/// One failed database step.
#[derive(Debug, Clone)]
pub struct DbError {
    pub failure: Failure,
    /// The server's error number, if the server reported the error.
    pub code: Option<u32>,
    pub message: String,
    /// Stored data broke an invariant (maps to `StoreError::Corrupt`).
    pub corrupt: bool,
}

impl DbError {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self {
            failure,
            code: None,
            message: message.into(),
            corrupt: false,
        }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new(
            Failure::Transient,
            format!(
                "the statement did not finish within {after:?} (QOTD_SQL_STATEMENT_TIMEOUT_SECONDS)"
            ),
        )
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self {
            corrupt: true,
            ..Self::new(Failure::Permanent, message)
        }
    }

    /// A duplicate key in the named constraint or unique index (2627 / 2601).
    pub fn is_unique_violation_of(&self, constraint: &str) -> bool {
        self.code.is_some_and(retry::is_unique_violation)
            && self.message.contains(&format!("'{constraint}'"))
    }
}

impl From<tiberius::error::Error> for DbError {
    fn from(e: tiberius::error::Error) -> Self {
        use tiberius::error::Error as E;
        let (failure, code) = match &e {
            E::Server(t) if retry::is_transient_number(t.code()) => {
                (Failure::Transient, Some(t.code()))
            }
            E::Server(t) => (Failure::Permanent, Some(t.code())),
            // The connection dropped or was reset: nothing sent since BEGIN can have committed.
            E::Io { .. } => (Failure::Transient, None),
            _ => (Failure::Permanent, None),
        };
        Self {
            failure,
            code,
            message: e.to_string(),
            corrupt: false,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match (e.corrupt, e.failure) {
            (true, _) => StoreError::Corrupt(e.message),
            (false, Failure::Permanent) => StoreError::Refused(e.message),
            // Transient, no connection, or a COMMIT whose outcome is unknown: not known to be
            // wrong, so the caller may try again later (idempotent writes make that safe).
            (false, _) => StoreError::Unavailable(e.message),
        }
    }
}

/// What a transaction body wants done with its transaction.
pub(crate) enum Tx<T> {
    Commit(T),
    /// Nothing to keep (e.g. "already exists"): roll back, release the locks, return `T`.
    Rollback(T),
}

pub(crate) type BoxFut<'c, T> = Pin<Box<dyn Future<Output = Result<T, DbError>> + Send + 'c>>;
/// Ties the borrowed connection's lifetime `'c` to the caller's borrows `'a` (`'a: 'c`), so a
/// body may capture references to its arguments.
pub(crate) type Scope<'c, 'a> = PhantomData<&'c &'a ()>;

/// The SQL Server store.
pub struct Mssql {
    pool: bb8::Pool<Manager>,
    sink: LogSink,
    retry: SqlRetry,
    connect_timeout: Duration,
    target: String,
}

impl Mssql {
    /// Builds the pool (connecting lazily) and brings the schema up to date, as SQLite's
    /// `open` does: pending migrations are applied (an identity without db_ddladmin gets a
    /// clear error telling it to run `qotd migrate` or the migration job first).
    pub async fn open(cs: &ConnectionString, settings: &SqlSettings) -> anyhow::Result<Self> {
        let db = Self::connect_lazily(cs, settings)?;
        let outcome = migrate::up(&db).await?;
        for m in &outcome.applied {
            tracing::info!(version = m.version, file = %m.file, "applied migration");
        }
        Ok(db)
    }

    /// Builds the pool without touching the database.
    pub fn connect_lazily(cs: &ConnectionString, settings: &SqlSettings) -> anyhow::Result<Self> {
        let connect_timeout = settings.connect_timeout_for(cs.connect_timeout);
        let manager = Manager::new(cs, connect_timeout, settings.statement_timeout)?;
        let sink = LogSink::default();
        Ok(Self {
            pool: pool::build_pool(manager, settings.pool_size, sink.clone()),
            sink,
            retry: SqlRetry::with_budget(settings.statement_timeout),
            connect_timeout,
            target: cs.redacted(),
        })
    }

    /// Where this store points, without secrets.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A pooled connection. bb8 keeps trying to connect until its timeout; the real error
    /// comes from the sink.
    async fn conn(&self) -> Result<bb8::PooledConnection<'_, Manager>, DbError> {
        self.pool.get().await.map_err(|e| {
            let why = match e {
                bb8::RunError::User(e) => e.to_string(),
                bb8::RunError::TimedOut => {
                    let waited = pool::pool_wait(self.connect_timeout);
                    // Only an error from this wait explains it; an old one would mislead.
                    match self.sink.recent_error(waited + Duration::from_secs(1)) {
                        Some(last) => format!(
                            "no database connection within {waited:?}; last connect error: {last}"
                        ),
                        None => format!(
                            "no database connection within {waited:?} (all {} pooled connections busy)",
                            self.pool.state().connections
                        ),
                    }
                }
            };
            DbError::new(Failure::NoConnection, why)
        })
    }

    /// A connection outside the pool (migrations): a connect error comes back directly
    /// instead of as a pool timeout.
    pub async fn dedicated(&self) -> Result<Conn, pool::ConnectError> {
        self.pool.dedicated_connection().await
    }

    fn log_retry(&self, op: &'static str, attempt: u32, delay: Duration, e: &DbError) {
        tracing::warn!(op, attempt, delay_ms = delay.as_millis() as u64, error = %e.message, "transient database error; retrying");
    }

    /// Runs a read, retrying transient failures (a read is always safe to repeat).
    pub(crate) async fn read<'a, T, F>(
        &'a self,
        op: &'static str,
        mut body: F,
    ) -> Result<T, DbError>
    where
        T: Send,
        F: for<'c> FnMut(&'c mut Conn, Scope<'c, 'a>) -> BoxFut<'c, T> + Send,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let result = async {
                let mut conn = self.conn().await?;
                body(&mut conn, PhantomData).await
            }
            .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => match self.retry.next_delay(
                    e.failure,
                    attempt,
                    started.elapsed(),
                    retry::jitter_unit(),
                ) {
                    Some(delay) => {
                        self.log_retry(op, attempt, delay, &e);
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// Runs `body` in a transaction and commits it. A transient failure *before* `COMMIT` was
    /// sent is retried from the start (nothing was committed: the server rolled the
    /// transaction back). A failure of the `COMMIT` itself is [`Failure::OutcomeUnknown`] and
    /// is never repeated: the transaction may have committed.
    pub(crate) async fn write<'a, T, F>(
        &'a self,
        op: &'static str,
        mut body: F,
    ) -> Result<T, DbError>
    where
        T: Send,
        F: for<'c> FnMut(&'c mut Conn, Scope<'c, 'a>) -> BoxFut<'c, Tx<T>> + Send,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let result = async {
                let mut conn = self.conn().await?;
                conn.begin().await?;
                match body(&mut conn, PhantomData).await {
                    Ok(Tx::Commit(v)) => match conn.commit().await {
                        Ok(()) => Ok(v),
                        Err(e) => Err(DbError {
                            failure: Failure::OutcomeUnknown,
                            message: format!(
                                "the COMMIT failed, so the outcome is unknown (the change may or may not be stored): {}",
                                e.message
                            ),
                            ..e
                        }),
                    },
                    Ok(Tx::Rollback(v)) => {
                        conn.rollback().await;
                        Ok(v)
                    }
                    Err(e) => {
                        conn.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => match self.retry.next_delay(
                    e.failure,
                    attempt,
                    started.elapsed(),
                    retry::jitter_unit(),
                ) {
                    Some(delay) => {
                        self.log_retry(op, attempt, delay, &e);
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// The one timestamp precision stored: milliseconds (as SQLite's RFC 3339 text), truncated
/// before sending so the server never rounds up.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

pub(crate) fn day(d: crate::kernel::QuizDay) -> NaiveDate {
    d.date()
}

pub(crate) fn parse_day(d: NaiveDate) -> Result<crate::kernel::QuizDay, DbError> {
    crate::kernel::QuizDay::from_date(d).map_err(DbError::corrupt)
}

/// Typed column access that reports a missing or mistyped value as corrupt data (tiberius'
/// `get` would panic).
pub(crate) fn col<'r, T>(row: &'r Row, idx: usize, what: &str) -> Result<T, DbError>
where
    T: tiberius::FromSql<'r>,
{
    row.try_get::<T, usize>(idx)
        .map_err(|e| DbError::corrupt(format!("{what}: {e}")))?
        .ok_or_else(|| DbError::corrupt(format!("{what} is NULL")))
}

pub(crate) fn opt_col<'r, T>(row: &'r Row, idx: usize, what: &str) -> Result<Option<T>, DbError>
where
    T: tiberius::FromSql<'r>,
{
    row.try_get::<T, usize>(idx)
        .map_err(|e| DbError::corrupt(format!("{what}: {e}")))
}

pub(crate) fn text(row: &Row, idx: usize, what: &str) -> Result<String, DbError> {
    col::<&str>(row, idx, what).map(str::to_owned)
}

pub(crate) fn opt_text(row: &Row, idx: usize, what: &str) -> Result<Option<String>, DbError> {
    opt_col::<&str>(row, idx, what).map(|v| v.map(str::to_owned))
}

/// The one non-negative `bigint` a counting statement returns (0 when it returns no row).
pub(crate) async fn count(
    c: &mut Conn,
    statement: &str,
    params: &[&dyn tiberius::ToSql],
    what: &str,
) -> Result<u64, DbError> {
    let rows = c.query(statement, params).await?;
    let n = rows
        .first()
        .map(|r| col::<i64>(r, 0, what))
        .transpose()?
        .unwrap_or(0);
    unsigned(n, what)
}

/// Converts a stored non-negative integer.
pub(crate) fn unsigned<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, DbError> {
    T::try_from(v).map_err(|_| DbError::corrupt(format!("{what} is {v}, out of range")))
}

/// Records `inbox` inside the caller's transaction; false when it was recorded before.
pub(crate) async fn record_inbox(
    conn: &mut Conn,
    inbox: &super::InboxKey,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = conn
        .execute(
            sql::INBOX_INSERT,
            &[&inbox.consumer, &inbox.event_id.as_str(), &ms(now)],
        )
        .await?;
    Ok(n == 1)
}

/// Undoes [`record_inbox`] inside the same transaction, for an event of a batch that the
/// consumer refused after recording it (one transaction holds the whole batch, so rolling
/// back is not an option; T-SQL savepoints would do, but `SAVE TRANSACTION` is one more
/// statement the static parser test cannot read).
pub(crate) async fn forget_inbox(conn: &mut Conn, inbox: &super::InboxKey) -> Result<(), DbError> {
    conn.execute(
        sql::INBOX_DELETE,
        &[&inbox.consumer, &inbox.event_id.as_str()],
    )
    .await?;
    Ok(())
}

/// Writes an outbox row inside the caller's transaction (the outbox invariant).
pub(crate) async fn insert_event(
    conn: &mut Conn,
    ev: &crate::platform::events::NewEvent,
) -> Result<(), DbError> {
    let now = ms(ev.created_at);
    conn.execute(
        sql::OUTBOX_INSERT,
        &[
            &ev.id.as_str(),
            &ev.topic,
            &ev.cloud_type,
            &ev.subject.as_str(),
            &ev.correlation_id.as_deref(),
            &ev.payload.as_str(),
            &now,
        ],
    )
    .await?;
    Ok(())
}
