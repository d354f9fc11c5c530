//! Embedded, numbered SQLite migrations (`migrations/sqlite/NNNNN_name.sql`), applied in order
//! inside one transaction each and recorded in `platform_schema_migrations`.

use crate::platform::clock::Clock;
use rusqlite::Connection;

/// `(version, name, sql)` of every migration, in order.
pub static MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../../migrations/sqlite/00001_init.sql"),
    ),
    (
        2,
        "provenance_and_reports",
        include_str!("../../../../migrations/sqlite/00002_provenance_and_reports.sql"),
    ),
];

/// The highest applied version (0 for an empty database).
pub fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS platform_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM platform_schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Applies every migration newer than the current version. Fails, naming the version, if the
/// database is newer than this binary knows (never downgrades silently).
pub fn apply(conn: &mut Connection) -> anyhow::Result<(i64, i64)> {
    let before = current_version(conn)?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if before > latest {
        anyhow::bail!(
            "database schema version {before} is newer than this binary supports ({latest}); upgrade qotd"
        );
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > before) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| anyhow::anyhow!("migration {version:05}_{name} failed: {e}"))?;
        tx.execute(
            "INSERT INTO platform_schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, super::ts(crate::platform::clock::SystemClock.now())],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied migration");
    }
    Ok((before, current_version(conn)?))
}
