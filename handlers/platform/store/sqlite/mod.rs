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
mod group;
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
    /// When reads last confirmed `file` (see [`Sqlite::check_for_read`]).
    read_checked: Arc<ReadCheck>,
    writer: Arc<Mutex<Connection>>,
    /// Small independent writes committed together (see `group.rs`).
    group: Arc<group::GroupCommit>,
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
            // 1 MiB of page cache per reader instead of SQLite's 2 MiB default: readers
            // re-read cold pages from the OS page cache cheaply, while four full default
            // caches alone could hold 8 MiB of the process's memory (see BENCHMARKS.md).
            .with_init(|c| {
                c.execute_batch(
                    "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA cache_size = -1024;",
                )
            });
        let readers = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            // r2d2's default runs a statement on every checkout to see if the connection is
            // alive; a local file connection does not go stale, and that check was a third of
            // a point read's cost (profiled).
            .test_on_check_out(false)
            .build_unchecked(manager);
        let read_checked = Arc::<ReadCheck>::default();
        let path: Arc<Path> = Arc::from(path);
        Ok(Self {
            path: path.clone(),
            file,
            read_checked: read_checked.clone(),
            writer: Arc::new(Mutex::new(writer)),
            group: Arc::new(group::GroupCommit::new({
                // Each group checks the file, as every exclusive write does.
                let read_checked = read_checked.clone();
                move || check_for_write(file, &path, &read_checked)
            })),
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
        let (path, file, read_checked) = (self.path.clone(), self.file, self.read_checked.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            check_for_write(file, &path, &read_checked)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f` inside a savepoint of a transaction shared with other writes queued at the
    /// same time (group commit, see `group.rs`); returns once that transaction has committed.
    /// For small independent writes on hot paths; `f` must not begin or commit transactions.
    pub async fn write_grouped<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.group.write(&self.writer, f).await
    }

    /// Runs `f` with a pooled read-only connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_for_read()?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs a point read (one row found through a primary key or unique index) on the calling
    /// thread when a pooled connection is idle, else like [`Sqlite::read`]. Such a read costs a
    /// few microseconds from SQLite's page cache; handing it to a blocking thread and waking
    /// the task again cost more than that (about 15 µs per read, profiled with `perf` on the
    /// `GET /api/leaderboard/me` path, see BENCHMARKS.md). A page not yet cached costs one disk
    /// read on the async worker. Never for scans or anything whose cost grows with the data.
    pub async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // `try_get` never waits: with every connection busy, wait on a blocking thread instead.
        match self.readers.try_get() {
            Some(conn) => {
                self.check_for_read()?;
                f(&conn)
            }
            None => self.read(f).await,
        }
    }
}

/// Reads check the file identity at most once per [`READ_CHECK_INTERVAL`]; writes and health
/// pings every time. A read a few milliseconds after the file vanished answers from the old
/// file, which is harmless (nothing is acknowledged); a write must never be acknowledged into a
/// file that no longer has a name, and once a write has found the file gone, reads check every
/// time again until one succeeds. The `stat` was 5 % of a point read's cost (profiled).
const READ_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// When reads last confirmed the file: microseconds since `epoch`, 0 for never.
struct ReadCheck {
    epoch: std::time::Instant,
    last_ok_us: std::sync::atomic::AtomicU64,
}

impl Default for ReadCheck {
    fn default() -> Self {
        Self {
            epoch: std::time::Instant::now(),
            last_ok_us: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// `FileId::check` before a write; a failure makes reads check every time again too, until
/// the file is back.
fn check_for_write(file: FileId, path: &Path, read_checked: &ReadCheck) -> Result<(), StoreError> {
    file.check(path).inspect_err(|_| read_checked.forget())
}

impl ReadCheck {
    fn forget(&self) {
        self.last_ok_us
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Sqlite {
    /// `FileId::check` for a read, skipped when one passed within `READ_CHECK_INTERVAL`.
    fn check_for_read(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.read_checked.epoch.elapsed().as_micros() as u64 + 1;
        let last = self.read_checked.last_ok_us.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < READ_CHECK_INTERVAL.as_micros() as u64 {
            return Ok(());
        }
        if let Err(e) = self.file.check(&self.path) {
            self.read_checked.forget();
            return Err(e);
        }
        self.read_checked.last_ok_us.store(now, Relaxed);
        Ok(())
    }

    /// Whether the path still names the opened file, checked now (for health pings).
    pub fn check_file(&self) -> Result<(), StoreError> {
        self.read_checked.forget();
        self.check_for_read()
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
    tx: &Connection,
    ev: &crate::platform::events::NewEvent,
) -> Result<(), StoreError> {
    let now = ts(ev.created_at);
    tx.prepare_cached(
        "INSERT INTO platform_outbox (event_id, topic, event_type, subject, correlation_id, payload, created_at, available_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )
    .and_then(|mut st| {
        st.execute(rusqlite::params![ev.id, ev.topic, ev.cloud_type, ev.subject, ev.correlation_id, ev.payload, now])
    })
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
