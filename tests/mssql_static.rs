//! Static checks of the SQL Server backend that need no server:
//!
//! 1. Every T-SQL statement the code sends (the engine's `mssql::sql::all_statements` and each
//!    context's `store::tsql::all_statements`) and every statement of `migrations/mssql` (split
//!    the way goose splits them) parses with sqlparser's `MsSqlDialect`. Valid T-SQL that
//!    sqlparser 0.59 cannot parse is listed in the file's `PARSER_GAPS` with the reason; those statements must still fail as-is (so the list
//!    shrinks when sqlparser catches up) and must parse with the listed substitution.
//! 2. Schema parity: the final schema of `migrations/sqlite` (SQLite dialect) and of
//!    `migrations/mssql` (all Up sections, MsSql dialect) have the same tables
//!    (`schema.table` <-> `schema_table`), the same columns with compatible types and the same
//!    nullability, the same primary keys, unique constraints, foreign keys and indexes.
//!
//! What this does not prove: that SQL Server accepts every statement (sqlparser is more
//! lenient in places and knows nothing of the catalog), that the locking hints behave as
//! intended, or any runtime behaviour. Those need `QOTD_TEST_MSSQL_URL` and the contract suite.

use qotd::platform::store::mssql::{migrate, sql};
use qotd::{leaderboard, quiz, users};

type Gap = (
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
);

/// A file of T-SQL statements: (path, its statements, its parser gaps).
type StatementFile = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static [Gap],
);

/// Every file of T-SQL statements.
fn statement_files() -> Vec<StatementFile> {
    vec![
        (
            "handlers/platform/store/mssql/sql.rs",
            sql::all_statements(),
            sql::PARSER_GAPS,
        ),
        (
            "handlers/users/store/tsql.rs",
            users::store::tsql::all_statements(),
            users::store::tsql::PARSER_GAPS,
        ),
        (
            "handlers/quiz/store/tsql.rs",
            quiz::store::tsql::all_statements(),
            quiz::store::tsql::PARSER_GAPS,
        ),
        (
            "handlers/leaderboard/store/tsql.rs",
            leaderboard::store::tsql::all_statements(),
            leaderboard::store::tsql::PARSER_GAPS,
        ),
    ]
}
use qotd::platform::store::sqlite;
use sqlparser::ast::{
    AlterTableOperation, ColumnOption, CreateIndex, CreateTable, ObjectName, Statement,
    TableConstraint,
};
use sqlparser::dialect::{Dialect, MsSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn parse(dialect: &dyn Dialect, text: &str) -> Result<Vec<Statement>, String> {
    Parser::parse_sql(dialect, text).map_err(|e| e.to_string())
}

#[test]
fn every_statement_in_the_code_parses_as_tsql() {
    let all_gaps: Vec<Gap> = statement_files()
        .iter()
        .flat_map(|f| f.2.iter().copied())
        .collect();
    let gaps: BTreeMap<&str, _> = all_gaps
        .iter()
        .map(|(name, construct, reason, sub)| (*name, (*construct, *reason, *sub)))
        .collect();
    assert!(gaps.len() <= 3, "keep the list of parser gaps tiny");
    let mut failures = Vec::new();
    let statements: Vec<(&str, &str)> = statement_files().into_iter().flat_map(|f| f.1).collect();
    for (name, text) in &statements {
        match gaps.get(name) {
            None => {
                if let Err(e) = parse(&MsSqlDialect {}, text) {
                    failures.push(format!("{name}: {e}\n    {text}"));
                }
            }
            Some((construct, reason, (from, to))) => {
                assert!(
                    text.contains(construct),
                    "{name} no longer uses {construct}"
                );
                assert!(
                    parse(&MsSqlDialect {}, text).is_err(),
                    "{name} now parses as-is: remove it from PARSER_GAPS ({reason})"
                );
                let substituted = text.replace(from, to);
                assert_ne!(
                    &substituted, text,
                    "{name}: substitution {from:?} not found"
                );
                if let Err(e) = parse(&MsSqlDialect {}, &substituted) {
                    failures.push(format!("{name} (with {from:?} -> {to:?}): {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for name in gaps.keys() {
        assert!(
            statements.iter().any(|(n, _)| n == name),
            "PARSER_GAPS names unknown statement {name}"
        );
    }
    println!(
        "{} statements parsed ({} with a listed parser gap)",
        statements.len(),
        gaps.len()
    );
}

/// Source of a file below the repository root, without its `#[cfg(test)]` module.
fn source(rel: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[test]
fn all_statements_lists_every_constant_and_no_sql_lives_elsewhere() {
    for (file, statements, _) in statement_files() {
        let listed: BTreeSet<&str> = statements.iter().map(|(n, _)| *n).collect();
        let declared: BTreeSet<String> = source(file)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| {
                l.split_once(": &str")
                    .map(|(name, _)| name.trim().to_owned())
            })
            .collect();
        let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
        assert_eq!(
            listed, declared,
            "{file}: all_statements() must list every statement constant"
        );
    }

    // The engine's other files and each context's SQL Server adapter hold no SQL text.
    let mut code_files: Vec<String> = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers/platform/store/mssql"),
    )
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .filter(|f| f != "sql.rs")
    .map(|f| format!("handlers/platform/store/mssql/{f}"))
    .collect();
    for ctx in ["users", "quiz", "leaderboard"] {
        code_files.push(format!("handlers/{ctx}/store/mssql.rs"));
    }
    for file in code_files {
        let text = source(&file);
        for keyword in [
            "SELECT ",
            "INSERT ",
            "UPDATE ",
            "DELETE ",
            "MERGE ",
            "EXEC ",
            "CREATE ",
            "DROP ",
            "BEGIN TRAN",
            "COMMIT",
        ] {
            assert!(
                !text.contains(&format!("\"{keyword}")),
                "{file} has a SQL string literal starting with {keyword:?}: keep every statement in sql.rs / tsql.rs"
            );
        }
    }
}

#[test]
fn migration_files_are_embedded_and_every_statement_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/mssql");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".sql"))
        .collect();
    on_disk.sort();
    let embedded: Vec<&str> = migrate::MIGRATIONS.iter().map(|m| m.1).collect();
    assert_eq!(
        on_disk, embedded,
        "every migrations/mssql file is embedded, in order"
    );
    for (version, file, text) in migrate::MIGRATIONS {
        assert_eq!(
            std::fs::read_to_string(dir.join(file)).unwrap(),
            *text,
            "{file} is embedded as it is on disk"
        );
        assert!(file.starts_with(&format!("{version:05}_")));
    }
    let sqlite_files: Vec<String> = sqlite::MIGRATIONS
        .iter()
        .map(|(v, name, _)| format!("{v:05}_{name}.sql"))
        .collect();
    assert_eq!(
        sqlite_files, embedded,
        "both backends have the same numbered migrations, so a schema version means the same"
    );

    let mut failures = Vec::new();
    let mut count = 0;
    for m in migrate::migrations().unwrap() {
        assert!(m.parsed.use_tx, "{}: runs in a transaction", m.file);
        for (section, stmts) in [("Up", &m.parsed.up), ("Down", &m.parsed.down)] {
            assert!(
                !stmts.is_empty(),
                "{} has an empty {section} section",
                m.file
            );
            for (i, stmt) in stmts.iter().enumerate() {
                count += 1;
                match parse(&MsSqlDialect {}, stmt) {
                    Ok(parsed) if parsed.len() == 1 => {}
                    Ok(parsed) => failures.push(format!(
                        "{} {section} #{}: {} statements in one goose statement",
                        m.file,
                        i + 1,
                        parsed.len()
                    )),
                    Err(e) => {
                        failures.push(format!("{} {section} #{}: {e}\n    {stmt}", m.file, i + 1))
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{count} migration statements parsed");
}

// ---- schema parity -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// Base type, lower case, without length or precision: `nvarchar`, `datetime2`, `integer`.
    ty: String,
    nullable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    pk: Vec<String>,
    uniques: BTreeSet<Vec<String>>,
    /// (columns, referenced table, referenced columns, on delete)
    fks: BTreeSet<(Vec<String>, String, Vec<String>, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    table: String,
    /// (column, descending)
    columns: Vec<(String, bool)>,
    unique: bool,
    predicate: Option<String>,
}

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
}

/// `users.profiles` and `users_profiles` both become `users_profiles`.
fn table_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| p.to_string().trim_matches(['[', ']', '"']).to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

fn base_type(ty: &sqlparser::ast::DataType) -> String {
    let s = ty.to_string().to_lowercase();
    s.split('(').next().unwrap().trim().to_owned()
}

fn ident(s: impl ToString) -> String {
    s.to_string().to_lowercase()
}

impl Schema {
    fn apply(&mut self, stmt: &Statement, origin: &str) {
        match stmt {
            Statement::CreateTable(ct) => self.create_table(ct, origin),
            Statement::AlterTable {
                name, operations, ..
            } => {
                let t = self
                    .tables
                    .get_mut(&table_name(name))
                    .unwrap_or_else(|| panic!("{origin}: ALTER of unknown table {name}"));
                for op in operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            let (col, _, _) = column(column_def);
                            t.columns.insert(ident(&column_def.name), col);
                        }
                        other => panic!("{origin}: unsupported ALTER in an Up migration: {other}"),
                    }
                }
            }
            Statement::CreateIndex(ci) => self.create_index(ci),
            // CREATE SCHEMA, SET options: no table shape.
            Statement::CreateSchema { .. } | Statement::Set(_) => {}
            other => panic!("{origin}: unexpected statement in an Up migration: {other}"),
        }
    }

    fn create_table(&mut self, ct: &CreateTable, origin: &str) {
        let name = table_name(&ct.name);
        let mut t = Table::default();
        for def in &ct.columns {
            let (col, pk, unique) = column(def);
            let c = ident(&def.name);
            if pk {
                t.pk = vec![c.clone()];
            }
            if unique {
                t.uniques.insert(vec![c.clone()]);
            }
            for o in &def.options {
                if let ColumnOption::ForeignKey {
                    foreign_table,
                    referred_columns,
                    on_delete,
                    ..
                } = &o.option
                {
                    t.fks.insert((
                        vec![c.clone()],
                        table_name(foreign_table),
                        referred_columns.iter().map(ident).collect(),
                        on_delete.map(|a| a.to_string()).unwrap_or_default(),
                    ));
                }
            }
            t.columns.insert(c, col);
        }
        for constraint in &ct.constraints {
            match constraint {
                TableConstraint::PrimaryKey { columns, .. } => {
                    t.pk = columns.iter().map(|c| ident(&c.column.expr)).collect();
                }
                TableConstraint::Unique { columns, .. } => {
                    t.uniques
                        .insert(columns.iter().map(|c| ident(&c.column.expr)).collect());
                }
                TableConstraint::ForeignKey {
                    columns,
                    foreign_table,
                    referred_columns,
                    on_delete,
                    ..
                } => {
                    t.fks.insert((
                        columns.iter().map(ident).collect(),
                        table_name(foreign_table),
                        referred_columns.iter().map(ident).collect(),
                        on_delete.map(|a| a.to_string()).unwrap_or_default(),
                    ));
                }
                TableConstraint::Check { .. } => {}
                other => panic!("{origin}: unexpected constraint {other}"),
            }
        }
        // A primary key column is never NULL, whatever the column definition says.
        for c in &t.pk {
            t.columns.get_mut(c).expect("pk column exists").nullable = false;
        }
        assert!(
            self.tables.insert(name.clone(), t).is_none(),
            "{origin}: table {name} created twice"
        );
    }

    fn create_index(&mut self, ci: &CreateIndex) {
        let name = ident(ci.name.as_ref().expect("indexes are named"));
        let index = Index {
            table: table_name(&ci.table_name),
            columns: ci
                .columns
                .iter()
                .map(|c| (ident(&c.column.expr), c.column.options.asc == Some(false)))
                .collect(),
            unique: ci.unique,
            predicate: ci.predicate.as_ref().map(|p| p.to_string().to_lowercase()),
        };
        assert!(
            self.indexes.insert(name.clone(), index).is_none(),
            "index {name} twice"
        );
    }
}

/// The column, whether it is an inline primary key, whether it is inline unique.
fn column(def: &sqlparser::ast::ColumnDef) -> (Column, bool, bool) {
    let mut nullable = true;
    let (mut pk, mut unique) = (false, false);
    for o in &def.options {
        match &o.option {
            ColumnOption::NotNull => nullable = false,
            ColumnOption::Null => nullable = true,
            ColumnOption::Unique { is_primary, .. } => {
                if *is_primary {
                    pk = true;
                    nullable = false;
                } else {
                    unique = true;
                }
            }
            _ => {}
        }
    }
    (
        Column {
            ty: base_type(&def.data_type),
            nullable,
        },
        pk,
        unique,
    )
}

fn sqlite_schema() -> Schema {
    let mut schema = Schema::default();
    for (version, name, text) in sqlite::MIGRATIONS {
        for stmt in parse(&SQLiteDialect {}, text).unwrap_or_else(|e| panic!("sqlite {name}: {e}"))
        {
            schema.apply(&stmt, &format!("sqlite {version:05}_{name}"));
        }
    }
    schema
}

fn mssql_schema() -> Schema {
    let mut schema = Schema::default();
    for m in migrate::migrations().unwrap() {
        for stmt in &m.parsed.up {
            for s in parse(&MsSqlDialect {}, stmt).unwrap() {
                schema.apply(&s, &format!("mssql {}", m.file));
            }
        }
    }
    schema
}

/// SQLite's storage class -> the SQL Server types that hold the same values.
fn compatible(sqlite: &str, mssql: &str) -> bool {
    match sqlite {
        "text" => matches!(mssql, "nvarchar" | "date" | "datetime2"),
        "integer" => matches!(mssql, "tinyint" | "smallint" | "int" | "bigint" | "bit"),
        _ => false,
    }
}

/// Columns whose SQL Server type the code relies on (it reads them with a matching Rust type).
const EXACT_TYPES: &[(&str, &str, &str)] = &[
    ("quiz_questions", "position", "tinyint"),
    ("quiz_questions", "correct_choice", "tinyint"),
    ("leaderboard_players", "total_score", "bigint"),
    ("platform_outbox", "seq", "bigint"),
    ("platform_poison", "id", "bigint"),
];

#[test]
fn sqlite_and_mssql_migrations_define_the_same_schema() {
    let lite = sqlite_schema();
    let ms = mssql_schema();
    assert_eq!(
        lite.tables.keys().collect::<Vec<_>>(),
        ms.tables.keys().collect::<Vec<_>>(),
        "same tables"
    );
    let mut problems = Vec::new();
    for (name, lt) in &lite.tables {
        let mt = &ms.tables[name];
        let lcols: Vec<&String> = lt.columns.keys().collect();
        let mcols: Vec<&String> = mt.columns.keys().collect();
        if lcols != mcols {
            problems.push(format!("{name}: columns {lcols:?} vs {mcols:?}"));
            continue;
        }
        for (col, lc) in &lt.columns {
            let mc = &mt.columns[col];
            if !compatible(&lc.ty, &mc.ty) {
                problems.push(format!(
                    "{name}.{col}: {} is not compatible with {}",
                    lc.ty, mc.ty
                ));
            }
            if lc.nullable != mc.nullable {
                problems.push(format!(
                    "{name}.{col}: nullable {} on SQLite, {} on SQL Server",
                    lc.nullable, mc.nullable
                ));
            }
            // Timestamps and days: the code reads DateTime<Utc> and NaiveDate.
            let expected = if col.ends_with("_at") || col.ends_with("_until") {
                Some("datetime2")
            } else if col == "quiz_date" || col == "last_played" {
                Some("date")
            } else if lc.ty == "text" {
                Some("nvarchar")
            } else {
                EXACT_TYPES
                    .iter()
                    .find(|(t, c, _)| t == name && c == col)
                    .map(|(_, _, ty)| *ty)
                    .or(Some("int"))
            };
            if let Some(expected) = expected
                && mc.ty != expected
            {
                problems.push(format!(
                    "{name}.{col}: SQL Server type {} (the code expects {expected})",
                    mc.ty
                ));
            }
        }
        if lt.pk != mt.pk {
            problems.push(format!("{name}: primary key {:?} vs {:?}", lt.pk, mt.pk));
        }
        if lt.uniques != mt.uniques {
            problems.push(format!(
                "{name}: unique constraints {:?} vs {:?}",
                lt.uniques, mt.uniques
            ));
        }
        if lt.fks != mt.fks {
            problems.push(format!("{name}: foreign keys {:?} vs {:?}", lt.fks, mt.fks));
        }
    }
    assert_eq!(
        lite.indexes.keys().collect::<Vec<_>>(),
        ms.indexes.keys().collect::<Vec<_>>(),
        "same indexes"
    );
    for (name, li) in &lite.indexes {
        if li != &ms.indexes[name] {
            problems.push(format!("index {name}: {li:?} vs {:?}", ms.indexes[name]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The indexes the queries rely on, spelled out.
    let top = &ms.indexes["leaderboard_scores_top"];
    assert_eq!(
        top.columns,
        vec![
            ("period_key".to_owned(), false),
            ("score".to_owned(), true),
            ("user_id".to_owned(), false)
        ],
        "top-N is an ordered seek on (period_key, score DESC, user_id)"
    );
    assert_eq!(
        ms.tables["leaderboard_histogram"].pk,
        vec!["period_key", "score"],
        "rank sums a histogram range seek"
    );
    assert_eq!(
        ms.indexes["platform_outbox_pending"].predicate.as_deref(),
        Some("sent_at is null")
    );
    assert_eq!(
        ms.tables["quiz_attempts"].pk,
        vec!["user_id", "quiz_date"],
        "one attempt per user per day"
    );
    assert_eq!(
        ms.tables["platform_inbox"].pk,
        vec!["consumer", "event_id"],
        "inbox uniqueness"
    );
    assert!(
        ms.tables["platform_outbox"]
            .uniques
            .contains(&vec!["event_id".to_owned()])
    );
    println!(
        "{} tables and {} indexes match between SQLite and SQL Server",
        lite.tables.len(),
        lite.indexes.len()
    );
}

#[test]
fn primary_keys_fit_sql_servers_key_size_limit() {
    // A clustered key may be at most 900 bytes; nvarchar(n) takes 2n bytes.
    let mut sizes = BTreeMap::new();
    for m in migrate::migrations().unwrap() {
        for stmt in &m.parsed.up {
            for s in parse(&MsSqlDialect {}, stmt).unwrap() {
                if let Statement::CreateTable(ct) = s {
                    let width = |col: &str| -> usize {
                        let def = ct.columns.iter().find(|c| ident(&c.name) == col).unwrap();
                        let ty = def.data_type.to_string().to_lowercase();
                        if let Some(n) = ty
                            .strip_prefix("nvarchar(")
                            .and_then(|r| r.strip_suffix(')'))
                        {
                            2 * n
                                .parse::<usize>()
                                .unwrap_or_else(|_| panic!("{col}: nvarchar(max) in a key"))
                        } else {
                            match base_type(&def.data_type).as_str() {
                                "tinyint" => 1,
                                "date" => 3,
                                "int" => 4,
                                "datetime2" | "bigint" => 8,
                                other => panic!("{other} in a key"),
                            }
                        }
                    };
                    for constraint in &ct.constraints {
                        let cols: Vec<String> = match constraint {
                            TableConstraint::PrimaryKey { columns, .. }
                            | TableConstraint::Unique { columns, .. } => {
                                columns.iter().map(|c| ident(&c.column.expr)).collect()
                            }
                            _ => continue,
                        };
                        let bytes: usize = cols.iter().map(|c| width(c)).sum();
                        sizes.insert(format!("{}{cols:?}", table_name(&ct.name)), bytes);
                    }
                }
            }
        }
    }
    assert!(!sizes.is_empty());
    for (key, bytes) in &sizes {
        assert!(
            *bytes <= 900,
            "{key} is {bytes} bytes; SQL Server allows 900"
        );
    }
}

#[test]
fn database_urls_select_the_backend_and_never_echo_passwords() {
    use qotd::platform::store::DatabaseUrl;
    use qotd::platform::store::mssql::connstr::Authentication;
    // The form terraform writes into QOTD_DATABASE_URL.
    let url = DatabaseUrl::parse(
        "Server=tcp:qotd-dev-sql.database.windows.net,1433;Database=qotd;Encrypt=true;Authentication=Active Directory Managed Identity;User Id=0b7c5f0e-1111-2222-3333-444455556666",
    )
    .unwrap();
    match &url {
        DatabaseUrl::Mssql(cs) => assert_eq!(
            cs.auth,
            Authentication::ManagedIdentity {
                client_id: Some("0b7c5f0e-1111-2222-3333-444455556666".into())
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(url.redacted().contains("qotd-dev-sql.database.windows.net"));
    assert_eq!(
        DatabaseUrl::parse("sqlite://x/q.db").unwrap(),
        DatabaseUrl::Sqlite("x/q.db".into())
    );
    let with_password =
        "Data Source=localhost,1433;Initial Catalog=qotd;User Id=sa;Password=Hunter2-Secret";
    let url = DatabaseUrl::parse(with_password).unwrap();
    assert!(!format!("{url:?}").contains("Hunter2"));
    assert!(!url.redacted().contains("Hunter2"));
    for bad in [
        "Server=h;Database=d;User Id=sa;Password=Hunter2-Secret;Bogus=1",
        "postgres://u:Hunter2-Secret@h/db",
        "mssql://sa:Hunter2-Secret@h/db",
    ] {
        let e = DatabaseUrl::parse(bad).unwrap_err();
        assert!(!e.contains("Hunter2"), "{e}");
    }
    // Settings name the variable when the string is bad.
    let e = qotd::app::Settings::from_lookup(|k| match k {
        "QOTD_DATABASE_URL" => Some("Server=h;Database=d;Authentication=Magic".into()),
        "QOTD_DEV_ISSUER" => Some("true".into()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(e.variable, "QOTD_DATABASE_URL");
    assert!(e.problem.contains("Authentication=Magic"), "{e}");
}
