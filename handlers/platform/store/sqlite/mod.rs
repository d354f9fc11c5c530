//! The embedded SQLite engine: the local default. It owns the connections, the migrations and
//! the shared tables (outbox, inbox, poison); each context implements its repository on it in
//! `<context>/store/sqlite.rs` with the helpers below.
//!
//! Concurrency model: one writer connection (SQLite allows one writer at a time anyway), used
//! from blocking threads behind a mutex, so write transactions queue in memory instead of
//! spinning on SQLITE_BUSY; a small pool of read-only connections serves queries in parallel
//! under WAL. Pragmas: WAL, `synchronous=NORMAL` (a committed transaction survives a process
//! crash; the last few may be lost on power failure), foreign keys on, 5 s busy timeout for
//! other processes (e.g. `qotd generate` beside a running `qotd local`).

mod events;
mod migrate;

pub use migrate::{MIGRATIONS, current_version};

use super::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{Arc, Mutex};

const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// A SQLite database file with one writer and a reader pool.
pub struct Sqlite {
    /// Shared, not copied: every read and write checks it (see `FileId`).
    path: Arc<Path>,
    /// Which file `path` named when it was opened (see [`FileId`]).
    file: FileId,
    writer: Arc<Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create data directory {}: {e}", dir.display())
            })?;
        }
        let mut writer = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
        writer.execute_batch(PRAGMAS)?;
        migrate::apply(&mut writer)?;
        let file = FileId::of(path)
            .map_err(|e| anyhow::anyhow!("cannot stat SQLite database {}: {e}", path.display()))?;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(|c| c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;"));
        let readers = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .build_unchecked(manager);
        Ok(Self {
            path: Arc::from(path),
            file,
            writer: Arc::new(Mutex::new(writer)),
            readers,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer connection on a blocking thread.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        let (path, file) = (self.path.clone(), self.file);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            file.check(&path)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f` with a pooled read-only connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let (path, file) = (self.path.clone(), self.file);
        tokio::task::spawn_blocking(move || {
            file.check(&path)?;
            let conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }
}

/// The identity of the database file (device and inode on Unix). The open connections keep
/// working on a file that is deleted, renamed or replaced while the process runs: writes would
/// be acknowledged into a file that no longer has a name and vanish at the next start, and a
/// fresh empty database would be created there. So every read and write first checks that the
/// path still names the file that was opened, and answers `Unavailable` otherwise (HTTP 503 with
/// `Retry-After`; consumers fail and are redelivered). When the file is back, service resumes
/// without a restart. Found by `tests/faults.rs::a_database_that_disappears_mid_burst_gives_503_and_recovers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Self(m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn of(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|_| Self(0, 0))
    }

    fn check(self, path: &Path) -> Result<(), StoreError> {
        match Self::of(path) {
            Ok(now) if now == self => Ok(()),
            Ok(_) => Err(StoreError::Unavailable(format!(
                "database file {} was replaced while open",
                path.display()
            ))),
            Err(e) => Err(StoreError::Unavailable(format!(
                "database file {} is gone: {e}",
                path.display()
            ))),
        }
    }
}

/// Maps a driver error, keeping its meaning: busy, locked, I/O, full disk or a file that cannot
/// be opened may work later (transient); anything else (a constraint, a type mismatch, a bad
/// statement) is a bug or bad data that a retry repeats (permanent).
pub fn db(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::DiskFull
            | C::CannotOpen
            | C::OutOfMemory
            | C::ReadOnly,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Refused(e.to_string()),
    }
}

/// The one timestamp format stored: RFC 3339, UTC, milliseconds (sorts as text).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp '{s}': {e}")))
}

pub fn parse_day(s: &str) -> Result<crate::kernel::QuizDay, StoreError> {
    crate::kernel::QuizDay::parse(s).map_err(StoreError::Corrupt)
}

/// Records `inbox` inside `tx`; false when it was recorded before (a redelivery).
/// (A `Transaction` or a `Savepoint` inside one: both deref to the connection.)
pub fn record_inbox(
    tx: &Connection,
    inbox: &super::InboxKey,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO platform_inbox (consumer, event_id, processed_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| st.execute(rusqlite::params![inbox.consumer, inbox.event_id, ts(now)]))
        .map_err(db)?;
    Ok(n == 1)
}

/// Writes an outbox row inside the caller's transaction (the outbox invariant).
pub fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    ev: &crate::platform::events::NewEvent,
) -> Result<(), StoreError> {
    let now = ts(ev.created_at);
    tx.execute(
        "INSERT INTO platform_outbox (event_id, topic, event_type, subject, correlation_id, payload, created_at, available_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        rusqlite::params![ev.id, ev.topic, ev.cloud_type, ev.subject, ev.correlation_id, ev.payload, now],
    )
    .map_err(db)?;
    Ok(())
}

/// Applies pending migrations to the database at `path`; returns the versions before and after.
pub fn migrate_file(path: &Path) -> anyhow::Result<(i64, i64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
    }
    let mut conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
    conn.execute_batch(PRAGMAS)?;
    migrate::apply(&mut conn)
}
