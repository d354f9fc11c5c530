//! Every T-SQL statement the users context sends to SQL Server (tables `users.*`), in one
//! place, so that `tests/mssql_static.rs` can parse each of them ([`all_statements`]). The
//! conventions (parameters `@P1..@Pn`, guarded inserts with `UPDLOCK, HOLDLOCK`) are the
//! engine's: see `platform::store::mssql::sql`.

pub const PROFILE_INSERT: &str = "INSERT INTO users.profiles (user_id, display_name, registered_at) SELECT @P1, @P2, @P3 WHERE NOT EXISTS (SELECT 1 FROM users.profiles WITH (UPDLOCK, HOLDLOCK) WHERE user_id = @P1)";
pub const PROFILE_SELECT: &str =
    "SELECT user_id, display_name, registered_at FROM users.profiles WHERE user_id = @P1";

/// Valid T-SQL that sqlparser 0.59's `MsSqlDialect` rejects: `(statement, construct, reason,
/// (from, to))`; see `platform::store::mssql::sql::PARSER_GAPS`.
pub const PARSER_GAPS: &[(&str, &str, &str, (&str, &str))] = &[];

/// `(name, statement)` for every constant above.
pub fn all_statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PROFILE_INSERT", PROFILE_INSERT),
        ("PROFILE_SELECT", PROFILE_SELECT),
    ]
}
