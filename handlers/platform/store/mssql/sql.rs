//! Every T-SQL statement the SQL Server engine itself sends (sessions, transactions, the
//! inbox/outbox/poison tables, goose's version table), so that `tests/mssql_static.rs` can
//! parse each of them ([`all_statements`]). Each context keeps its own statements in
//! `<context>/store/tsql.rs` under the same conventions.
//!
//! Conventions: parameters are `@P1..@Pn` (tiberius binds them through `sp_executesql`);
//! timestamps are `datetime2(3)` in UTC, days are `date`. Inserts guarded by a key use
//! `INSERT ... SELECT ... WHERE NOT EXISTS (SELECT ... WITH (UPDLOCK, HOLDLOCK) ...)`: the
//! UPDLOCK + HOLDLOCK (serializable) range lock makes concurrent inserts of the same key queue
//! behind the first instead of racing, so the loser sees the row and inserts nothing (and if a
//! duplicate still reaches the constraint, 2627/2601 is mapped to "already exists").

/// Run once on every new session. XACT_ABORT makes any error roll back the whole transaction;
/// the ANSI options are the ones filtered indexes (`platform_outbox_pending`) require.
pub const SESSION_SETUP: &str = "SET XACT_ABORT ON; SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF";
pub const PING: &str = "SELECT 1";
pub const BEGIN: &str = "SET XACT_ABORT ON; BEGIN TRANSACTION";
pub const COMMIT: &str = "COMMIT TRANSACTION";
pub const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

// platform: inbox, outbox, poison -------------------------------------------------------------

pub const INBOX_INSERT: &str = "INSERT INTO platform.inbox (consumer, event_id, processed_at) SELECT @P1, @P2, @P3 WHERE NOT EXISTS (SELECT 1 FROM platform.inbox WITH (UPDLOCK, HOLDLOCK) WHERE consumer = @P1 AND event_id = @P2)";
/// Forgets an inbox row written earlier in the same transaction: an event of a batch that the
/// consumer's rules refused must leave no trace (see `forget_inbox`).
pub const INBOX_DELETE: &str = "DELETE FROM platform.inbox WHERE consumer = @P1 AND event_id = @P2";
pub const OUTBOX_INSERT: &str = "INSERT INTO platform.outbox (event_id, topic, event_type, subject, correlation_id, payload, created_at, available_at) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P7)";
/// Claims up to @P4 due rows for owner @P1 until @P2 (now = @P3), oldest first, and returns
/// them. `UPDLOCK, READPAST, ROWLOCK`: each dispatcher locks the rows it picks and skips rows
/// another dispatcher has locked, so concurrent claims are disjoint without waiting; the lease
/// (`claimed_until`) hides claimed rows from later claims until it runs out, and a crashed
/// dispatcher's rows become claimable again after it.
pub const OUTBOX_CLAIM: &str = "DECLARE @claimed TABLE (seq bigint PRIMARY KEY); INSERT INTO @claimed (seq) SELECT TOP (@P4) seq FROM platform.outbox WITH (UPDLOCK, READPAST, ROWLOCK) WHERE sent_at IS NULL AND available_at <= @P3 AND (claimed_until IS NULL OR claimed_until <= @P3) ORDER BY seq; UPDATE platform.outbox SET claimed_by = @P1, claimed_until = @P2, attempts = attempts + 1 WHERE seq IN (SELECT seq FROM @claimed); SELECT o.seq, o.event_id, o.topic, o.subject, o.event_type, o.correlation_id, o.payload, o.attempts FROM platform.outbox o WHERE o.seq IN (SELECT seq FROM @claimed) ORDER BY o.seq";
/// Marks the rows listed in @P1 (comma-separated seqs) sent, if @P2 still holds them.
/// STRING_SPLIT needs database compatibility level 130 or later (SQL Server 2016+).
pub const OUTBOX_MARK_SENT: &str = "UPDATE platform.outbox SET sent_at = @P3, claimed_by = NULL, claimed_until = NULL, last_error = NULL WHERE claimed_by = @P2 AND seq IN (SELECT CAST(value AS bigint) FROM STRING_SPLIT(@P1, ','))";
pub const OUTBOX_RELEASE: &str = "UPDATE platform.outbox SET claimed_by = NULL, claimed_until = NULL, last_error = @P3, available_at = @P4 WHERE seq = @P1 AND claimed_by = @P2";
pub const OUTBOX_PENDING_COUNT: &str =
    "SELECT COUNT_BIG(*) FROM platform.outbox WHERE sent_at IS NULL";
pub const POISON_INSERT: &str = "INSERT INTO platform.poison (consumer, message_id, payload, reason, received_at) VALUES (@P1, @P2, @P3, @P4, @P5)";
pub const POISON_COUNT: &str = "SELECT COUNT_BIG(*) FROM platform.poison WHERE consumer = @P1";
/// Gives back the unsent rows still leased to one owner (a restarted dispatcher).
pub const OUTBOX_RECLAIM: &str = "UPDATE platform.outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = @P1 AND sent_at IS NULL";
/// Unsent rows per topic: count and oldest commit time.
pub const OUTBOX_STATUS: &str = "SELECT topic, COUNT_BIG(*), MIN(created_at) FROM platform.outbox WHERE sent_at IS NULL GROUP BY topic ORDER BY topic";
/// Poison messages oldest first, of one consumer or (`@P1` NULL) all, at most `@P2`.
pub const POISON_LIST: &str = "SELECT TOP (@P2) id, consumer, message_id, payload, reason, received_at FROM platform.poison WHERE (@P1 IS NULL OR consumer = @P1) ORDER BY id";
pub const POISON_GET: &str = "SELECT id, consumer, message_id, payload, reason, received_at FROM platform.poison WHERE id = @P1";
pub const POISON_DELETE: &str = "DELETE FROM platform.poison WHERE id = @P1";
pub const POISON_TOTAL: &str = "SELECT COUNT_BIG(*) FROM platform.poison";

// migrations: goose's version table -----------------------------------------------------------

/// goose's own table (`goose mssql ... up` creates the same one in the caller's default schema,
/// dbo for Entra users); version 0 is inserted with it, as goose does.
pub const GOOSE_TABLE_EXISTS: &str =
    "SELECT CASE WHEN OBJECT_ID(N'dbo.goose_db_version', N'U') IS NULL THEN 0 ELSE 1 END";
pub const GOOSE_CREATE_TABLE: &str = "CREATE TABLE dbo.goose_db_version (id int NOT NULL IDENTITY(1,1) PRIMARY KEY, version_id bigint NOT NULL, is_applied bit NOT NULL, tstamp datetime NULL DEFAULT (getdate()))";
pub const GOOSE_INSERT_VERSION: &str =
    "INSERT INTO dbo.goose_db_version (version_id, is_applied) VALUES (@P1, @P2)";
pub const GOOSE_DELETE_VERSION: &str = "DELETE FROM dbo.goose_db_version WHERE version_id = @P1";
pub const GOOSE_LIST: &str =
    "SELECT version_id, is_applied, tstamp FROM dbo.goose_db_version ORDER BY id DESC";
/// Serialises migration runs (several instances starting at once, or `qotd migrate` beside
/// the pipeline's job): an exclusive application lock owned by the migration's transaction,
/// then a check that it is held (sp_getapplock reports a timeout by return code, not error).
pub const MIGRATION_LOCK: &str = "EXEC sp_getapplock @Resource = N'qotd.migrations', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 120000; SELECT APPLOCK_MODE(N'public', N'qotd.migrations', N'Transaction')";

pub const PARSER_GAPS: &[(&str, &str, &str, (&str, &str))] = &[];

/// `(name, statement)` for every constant above.
pub fn all_statements() -> Vec<(&'static str, &'static str)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => { vec![$((stringify!($name), $name)),*] };
    }
    list![
        SESSION_SETUP,
        PING,
        BEGIN,
        COMMIT,
        ROLLBACK,
        INBOX_DELETE,
        INBOX_INSERT,
        OUTBOX_INSERT,
        OUTBOX_CLAIM,
        OUTBOX_MARK_SENT,
        OUTBOX_RELEASE,
        OUTBOX_PENDING_COUNT,
        POISON_INSERT,
        POISON_COUNT,
        OUTBOX_RECLAIM,
        OUTBOX_STATUS,
        POISON_LIST,
        POISON_GET,
        POISON_DELETE,
        POISON_TOTAL,
        GOOSE_TABLE_EXISTS,
        GOOSE_CREATE_TABLE,
        GOOSE_INSERT_VERSION,
        GOOSE_DELETE_VERSION,
        GOOSE_LIST,
        MIGRATION_LOCK,
    ]
}
