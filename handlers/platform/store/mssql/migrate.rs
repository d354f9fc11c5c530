//! goose-compatible migrations for SQL Server: `migrations/mssql/NNNNN_name.sql` in goose's SQL
//! format, recorded in goose's own version table (`dbo.goose_db_version`), so `goose mssql
//! "<conn>" status|up|down` and `qotd migrate` see and leave the same state.
//!
//! What is the same as goose: statements are split by goose's rules (a statement ends at a
//! line whose last word before any `--` comment ends in `;`; `-- +goose StatementBegin` ...
//! `-- +goose StatementEnd` keeps a block whole; annotations start at column 0); each statement
//! is sent as its own batch; each migration runs in one transaction together with its version
//! row; the version table is created with a version-0 row; `down` deletes the version row; the
//! status listing has goose's layout.
//!
//! What qotd adds: an exclusive application lock (`sp_getapplock`, owned by the migration's
//! transaction) so two runners (several instances starting, or a laptop beside the pipeline)
//! never apply the same migration twice; the applied set is re-read under that lock.
//! Not supported: `-- +goose NO TRANSACTION` and `ENVSUBST` (the files here use neither; a
//! test checks).

use super::{DbError, Mssql, col, sql};
use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `(version, file name, text)` of every migration, in order.
pub static MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "00001_init.sql",
        include_str!("../../../../migrations/mssql/00001_init.sql"),
    ),
    (
        2,
        "00002_provenance_and_reports.sql",
        include_str!("../../../../migrations/mssql/00002_provenance_and_reports.sql"),
    ),
];

/// One migration statement may run this long (index builds on big tables are slow).
pub const MIGRATION_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A migration file split the way goose splits it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GooseFile {
    pub up: Vec<String>,
    pub down: Vec<String>,
    /// False when the file says `-- +goose NO TRANSACTION`.
    pub use_tx: bool,
}

/// True when the last word of `line` before a `--` comment ends with `;`.
fn ends_statement(line: &str) -> bool {
    let mut last = "";
    for word in line.split_whitespace() {
        if word.starts_with("--") {
            break;
        }
        last = word;
    }
    last.ends_with(';')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Start,
    Up,
    UpBlock,
    Down,
    DownBlock,
}

/// Splits a goose SQL migration into its Up and Down statements.
pub fn parse_goose(text: &str) -> Result<GooseFile, String> {
    let mut file = GooseFile {
        use_tx: true,
        ..GooseFile::default()
    };
    let mut section = Section::Start;
    let mut buf = String::new();
    let flush = |buf: &mut String, section: Section, file: &mut GooseFile| {
        let stmt = buf.trim().to_owned();
        buf.clear();
        if stmt.is_empty() {
            return;
        }
        match section {
            Section::Up | Section::UpBlock => file.up.push(stmt),
            _ => file.down.push(stmt),
        }
    };
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        if section == Section::Start && line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("--") {
            match rest.trim() {
                "+goose Up" => {
                    if section != Section::Start {
                        return Err(format!("line {lineno}: a second '-- +goose Up'"));
                    }
                    section = Section::Up;
                    continue;
                }
                "+goose Down" => {
                    if section != Section::Up {
                        return Err(format!(
                            "line {lineno}: '-- +goose Down' must follow the Up section"
                        ));
                    }
                    if !buf.trim().is_empty() {
                        return Err(format!(
                            "line {lineno}: the Up section ends with an unfinished statement (missing ';')"
                        ));
                    }
                    buf.clear();
                    section = Section::Down;
                    continue;
                }
                "+goose StatementBegin" => {
                    section = match section {
                        Section::Up => Section::UpBlock,
                        Section::Down => Section::DownBlock,
                        _ => {
                            return Err(format!(
                                "line {lineno}: '-- +goose StatementBegin' outside an Up or Down section, or nested"
                            ));
                        }
                    };
                    continue;
                }
                "+goose StatementEnd" => {
                    let back = match section {
                        Section::UpBlock => Section::Up,
                        Section::DownBlock => Section::Down,
                        _ => {
                            return Err(format!(
                                "line {lineno}: '-- +goose StatementEnd' without StatementBegin"
                            ));
                        }
                    };
                    flush(&mut buf, section, &mut file);
                    section = back;
                    continue;
                }
                "+goose NO TRANSACTION" => {
                    file.use_tx = false;
                    continue;
                }
                cmd if cmd.starts_with("+goose") => {
                    return Err(format!("line {lineno}: unsupported annotation '{cmd}'"));
                }
                _ => {}
            }
        }
        if buf.is_empty() && (line.trim().starts_with("--") || line.trim().is_empty()) {
            continue;
        }
        if section == Section::Start {
            return Err(format!(
                "line {lineno}: a migration must start with '-- +goose Up'"
            ));
        }
        buf.push_str(line);
        buf.push('\n');
        if matches!(section, Section::Up | Section::Down) && ends_statement(line) {
            flush(&mut buf, section, &mut file);
        }
    }
    match section {
        Section::Start => return Err("no '-- +goose Up' annotation".into()),
        Section::UpBlock | Section::DownBlock => {
            return Err("'-- +goose StatementBegin' without StatementEnd".into());
        }
        _ => {}
    }
    if !buf.trim().is_empty() {
        return Err("the file ends with an unfinished statement (missing ';')".into());
    }
    Ok(file)
}

/// A known migration, parsed.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub file: &'static str,
    pub parsed: GooseFile,
}

/// Every embedded migration, parsed (a parse error names the file).
pub fn migrations() -> anyhow::Result<Vec<Migration>> {
    MIGRATIONS
        .iter()
        .map(|(version, file, text)| {
            let parsed = parse_goose(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            if !parsed.use_tx {
                bail!("{file}: '-- +goose NO TRANSACTION' is not supported by qotd migrate");
            }
            Ok(Migration {
                version: *version,
                file,
                parsed,
            })
        })
        .collect()
}

/// The latest version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// goose's view of the version table: a version is applied when its newest row says so.
fn applied_from_rows(
    rows: &[(i64, bool, Option<NaiveDateTime>)],
) -> BTreeMap<i64, Option<NaiveDateTime>> {
    let mut seen = BTreeSet::new();
    let mut applied = BTreeMap::new();
    // `rows` is newest first (ORDER BY id DESC).
    for (version, is_applied, at) in rows {
        if seen.insert(*version) && *is_applied && *version > 0 {
            applied.insert(*version, *at);
        }
    }
    applied
}

async fn version_table_exists(conn: &mut super::Conn) -> Result<bool, DbError> {
    let rows = conn.query(sql::GOOSE_TABLE_EXISTS, &[]).await?;
    Ok(rows
        .first()
        .map(|r| col::<i32>(r, 0, "goose table check"))
        .transpose()?
        == Some(1))
}

async fn read_applied(
    conn: &mut super::Conn,
) -> Result<BTreeMap<i64, Option<NaiveDateTime>>, DbError> {
    if !version_table_exists(conn).await? {
        return Ok(BTreeMap::new());
    }
    let rows = conn.query(sql::GOOSE_LIST, &[]).await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok((
                col::<i64>(r, 0, "goose_db_version.version_id")?,
                col::<bool>(r, 1, "goose_db_version.is_applied")?,
                super::opt_col::<NaiveDateTime>(r, 2, "goose_db_version.tstamp")?,
            ))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(applied_from_rows(&rows))
}

async fn lock(conn: &mut super::Conn) -> Result<(), DbError> {
    let rows = conn.query(sql::MIGRATION_LOCK, &[]).await?;
    let mode = rows
        .first()
        .map(|r| super::text(r, 0, "applock mode"))
        .transpose()?;
    if mode.as_deref() != Some("Exclusive") {
        return Err(DbError::corrupt(
            "another migration run holds the migration lock (waited 120 s); try again later",
        ));
    }
    Ok(())
}

fn context(e: DbError) -> anyhow::Error {
    anyhow::anyhow!(e.message)
}

/// A migration that `up` applied.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    pub version: i64,
    pub file: &'static str,
    pub elapsed: Duration,
}

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpOutcome {
    pub before: i64,
    pub after: i64,
    pub applied: Vec<AppliedMigration>,
}

/// A connection of its own for the migration run. Transient connect failures (a serverless
/// database resuming answers 40613 for a while, a container starting before its network) are
/// retried a few times, 1 s, 2 s, 4 s apart; anything else fails at once.
async fn open_conn(db: &Mssql) -> anyhow::Result<super::Conn> {
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    let mut conn = loop {
        match db.dedicated().await {
            Ok(conn) => break conn,
            Err(e) if e.is_transient() && attempt < 4 => {
                tracing::warn!(attempt, error = %e, "cannot connect for migrations; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("cannot connect to {}", db.target()));
            }
        }
    };
    conn.set_statement_timeout(MIGRATION_STATEMENT_TIMEOUT);
    Ok(conn)
}

/// Applies every pending migration, each in its own transaction under the migration lock.
pub async fn up(db: &Mssql) -> anyhow::Result<UpOutcome> {
    let known = migrations()?;
    let mut conn = open_conn(db).await?;

    // goose creates its table with a version-0 row; do the same, once, under the lock.
    conn.begin().await.map_err(context)?;
    lock(&mut conn).await.map_err(context)?;
    if !version_table_exists(&mut conn).await.map_err(context)? {
        conn.batch(sql::GOOSE_CREATE_TABLE, MIGRATION_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| permission_hint(e, "create goose_db_version"))?;
        conn.execute(sql::GOOSE_INSERT_VERSION, &[&0i64, &true])
            .await
            .map_err(context)?;
    }
    let applied = read_applied(&mut conn).await.map_err(context)?;
    conn.commit().await.map_err(context)?;

    let before = applied.keys().next_back().copied().unwrap_or(0);
    let known_versions: BTreeSet<i64> = known.iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.keys().find(|v| !known_versions.contains(v)) {
        tracing::warn!(
            version = unknown,
            latest_known = latest_version(),
            "the database has a migration this binary does not know; continuing (migrations are additive), but upgrade qotd"
        );
    }
    if let Some(missing) = known
        .iter()
        .find(|m| !applied.contains_key(&m.version) && m.version < before)
    {
        bail!(
            "migration {} is not applied but the later version {before} is; goose calls this a missing migration: apply it with `goose mssql \"<conn>\" up --allow-missing` after checking it is safe",
            missing.file
        );
    }

    let mut done = Vec::new();
    for m in known.iter().filter(|m| !applied.contains_key(&m.version)) {
        let started = Instant::now();
        conn.begin().await.map_err(context)?;
        lock(&mut conn).await.map_err(context)?;
        // Another runner may have applied it while we waited for the lock.
        if read_applied(&mut conn)
            .await
            .map_err(context)?
            .contains_key(&m.version)
        {
            conn.rollback().await;
            continue;
        }
        for (i, stmt) in m.parsed.up.iter().enumerate() {
            if let Err(e) = conn.batch(stmt, MIGRATION_STATEMENT_TIMEOUT).await {
                conn.rollback().await;
                return Err(permission_hint(
                    e,
                    &format!("{} statement {}", m.file, i + 1),
                ));
            }
        }
        conn.execute(sql::GOOSE_INSERT_VERSION, &[&m.version, &true])
            .await
            .map_err(context)?;
        conn.commit().await.map_err(context)?;
        done.push(AppliedMigration {
            version: m.version,
            file: m.file,
            elapsed: started.elapsed(),
        });
    }
    let after = done.last().map(|m| m.version).unwrap_or(before).max(before);
    Ok(UpOutcome {
        before,
        after,
        applied: done,
    })
}

/// Rolls back the latest applied migration (goose `down`): its Down statements and the removal
/// of its version row, in one transaction. `None` when nothing is applied.
pub async fn down(db: &Mssql) -> anyhow::Result<Option<AppliedMigration>> {
    let known = migrations()?;
    let mut conn = open_conn(db).await?;
    let started = Instant::now();
    conn.begin().await.map_err(context)?;
    lock(&mut conn).await.map_err(context)?;
    let applied = read_applied(&mut conn).await.map_err(context)?;
    let Some(&latest) = applied.keys().next_back() else {
        conn.rollback().await;
        return Ok(None);
    };
    let Some(m) = known.iter().find(|m| m.version == latest) else {
        conn.rollback().await;
        bail!(
            "the latest applied migration, version {latest}, is not known to this binary (it knows up to {}); roll it back with the qotd version that added it",
            latest_version()
        );
    };
    for (i, stmt) in m.parsed.down.iter().enumerate() {
        if let Err(e) = conn.batch(stmt, MIGRATION_STATEMENT_TIMEOUT).await {
            conn.rollback().await;
            return Err(permission_hint(
                e,
                &format!("{} down statement {}", m.file, i + 1),
            ));
        }
    }
    conn.execute(sql::GOOSE_DELETE_VERSION, &[&m.version])
        .await
        .map_err(context)?;
    conn.commit().await.map_err(context)?;
    Ok(Some(AppliedMigration {
        version: m.version,
        file: m.file,
        elapsed: started.elapsed(),
    }))
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub file: String,
    pub applied: bool,
    /// When it was applied (goose's `tstamp`, server time), if known.
    pub applied_at: Option<NaiveDateTime>,
}

/// Every known migration with its state, plus applied versions this binary does not know.
pub async fn status(db: &Mssql) -> anyhow::Result<Vec<StatusLine>> {
    let mut conn = open_conn(db).await?;
    let applied = read_applied(&mut conn).await.map_err(context)?;
    let mut lines: Vec<StatusLine> = MIGRATIONS
        .iter()
        .map(|(v, file, _)| StatusLine {
            file: (*file).to_owned(),
            applied: applied.contains_key(v),
            applied_at: applied.get(v).copied().flatten(),
        })
        .collect();
    for (v, at) in &applied {
        if !MIGRATIONS.iter().any(|m| m.0 == *v) {
            lines.push(StatusLine {
                file: format!("{v:05} (unknown to this qotd version)"),
                applied: true,
                applied_at: *at,
            });
        }
    }
    Ok(lines)
}

/// goose's status layout: a header, then `Applied At` (ANSI C time) or `Pending`, ` -- `, file.
pub fn format_status(lines: &[StatusLine]) -> String {
    let mut out = String::from(
        "    Applied At                  Migration\n    =======================================\n",
    );
    for l in lines {
        let at = match (l.applied, l.applied_at) {
            (true, Some(t)) => t.format("%a %b %e %H:%M:%S %Y").to_string(),
            (true, None) => "Applied".to_owned(),
            (false, _) => "Pending".to_owned(),
        };
        out.push_str(&format!("    {at:<24} -- {}\n", l.file));
    }
    out
}

/// Adds the likely cause to a permission error (the runtime identity has no db_ddladmin).
fn permission_hint(e: DbError, what: &str) -> anyhow::Error {
    // 262: CREATE/ALTER permission denied; 229/230: object/column permission denied;
    // 2760: the schema does not exist or you do not have permission; 15247: no permission.
    let denied = matches!(e.code, Some(262 | 229 | 230 | 2760 | 15247));
    if denied {
        anyhow::anyhow!(
            "{what}: {}. This identity may not change the schema: run `qotd migrate --database \"<conn>\"` (or the migration job) as an identity with db_ddladmin, then start qotd again",
            e.message
        )
    } else {
        anyhow::anyhow!("{what}: {}", e.message)
    }
}

/// The latest applied version as a number goose would print.
pub fn current(lines: &[StatusLine]) -> i64 {
    lines
        .iter()
        .filter(|l| l.applied)
        .filter_map(|l| l.file.get(..5).and_then(|v| v.parse::<i64>().ok()))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_splitting_rules() {
        let text = "\
-- a leading comment
-- +goose Up
CREATE SCHEMA a;
CREATE TABLE a.t (
    id int NOT NULL, -- a comment; not an end
    name nvarchar(10) NOT NULL
); -- trailing comment
-- +goose StatementBegin
CREATE PROCEDURE a.p AS
BEGIN
    SELECT 1;
    SELECT 2;
END
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE a.p;
DROP TABLE a.t;
DROP SCHEMA a;
";
        let f = parse_goose(text).unwrap();
        assert_eq!(f.up.len(), 3, "{:#?}", f.up);
        assert_eq!(f.up[0], "CREATE SCHEMA a;");
        assert!(
            f.up[1].starts_with("CREATE TABLE a.t (") && f.up[1].ends_with("-- trailing comment")
        );
        assert!(f.up[2].contains("SELECT 1;\n    SELECT 2;\nEND"));
        assert_eq!(
            f.down,
            vec!["DROP PROCEDURE a.p;", "DROP TABLE a.t;", "DROP SCHEMA a;"]
        );
        assert!(f.use_tx);
    }

    #[test]
    fn goose_errors() {
        assert!(
            parse_goose("CREATE TABLE t (a int);")
                .unwrap_err()
                .contains("+goose Up")
        );
        assert!(
            parse_goose("-- +goose Up\nCREATE TABLE t (a int)\n")
                .unwrap_err()
                .contains("missing ';'")
        );
        assert!(
            parse_goose("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")
                .unwrap_err()
                .contains("StatementEnd")
        );
        assert!(
            parse_goose("-- +goose Down\nSELECT 1;\n")
                .unwrap_err()
                .contains("must follow")
        );
        assert!(
            parse_goose("-- +goose Up\n-- +goose ENVSUBST ON\nSELECT 1;\n")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            !parse_goose("-- +goose Up\n-- +goose NO TRANSACTION\nSELECT 1;\n")
                .unwrap()
                .use_tx
        );
    }

    #[test]
    fn embedded_migrations_parse_and_are_numbered() {
        let all = migrations().unwrap();
        for (i, m) in all.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(m.file.starts_with(&format!("{:05}_", m.version)));
            assert!(
                !m.parsed.up.is_empty() && !m.parsed.down.is_empty(),
                "{}",
                m.file
            );
        }
    }

    #[test]
    fn applied_set_follows_goose() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_opt(15, 4, 5)
            .unwrap();
        // Newest first: 2 applied then rolled back the old way (is_applied = 0), 1 applied.
        let rows = vec![
            (2, false, Some(t)),
            (2, true, Some(t)),
            (1, true, Some(t)),
            (0, true, None),
        ];
        let applied = applied_from_rows(&rows);
        assert_eq!(applied.keys().copied().collect::<Vec<_>>(), vec![1]);
        let lines = vec![
            StatusLine {
                file: "00001_init.sql".into(),
                applied: true,
                applied_at: Some(t),
            },
            StatusLine {
                file: "00002_provenance_and_reports.sql".into(),
                applied: false,
                applied_at: None,
            },
        ];
        assert_eq!(
            format_status(&lines),
            "    Applied At                  Migration\n    =======================================\n    Fri Jan  2 15:04:05 2026 -- 00001_init.sql\n    Pending                  -- 00002_provenance_and_reports.sql\n"
        );
        assert_eq!(current(&lines), 1);
    }
}
