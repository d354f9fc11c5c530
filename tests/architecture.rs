//! Architecture rules a grep can check, kept as a test so they stay true:
//! a context's storage code names only its own tables, and context domain modules import no
//! adapter crates (HTTP server, SQL drivers).

use std::path::Path;

const CONTEXTS: [&str; 3] = ["users", "quiz", "leaderboard"];

/// Context prefixes of the tables named after FROM / JOIN / INTO / UPDATE / TABLE in `source`.
fn table_prefixes_in(source: &str) -> Vec<String> {
    let unbracketed = source.replace(['[', ']', '"'], "");
    let words: Vec<&str> = unbracketed
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut found = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].to_ascii_uppercase();
        if !["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].contains(&keyword.as_str()) {
            continue;
        }
        // SQLite spells tables `<context>_<table>`, SQL Server `<context>.<table>`.
        let table = pair[1].to_ascii_lowercase();
        for ctx in CONTEXTS {
            if table.starts_with(&format!("{ctx}_")) || table.starts_with(&format!("{ctx}.")) {
                found.push(ctx.to_owned());
            }
        }
    }
    found
}

#[test]
fn each_context_store_names_only_its_own_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers/platform/store");
    let mut checked = 0;
    for backend in ["sqlite", "mssql"] {
        for ctx in CONTEXTS {
            let file = root.join(backend).join(format!("{ctx}.rs"));
            let Ok(source) = std::fs::read_to_string(&file) else {
                continue;
            };
            checked += 1;
            let foreign: Vec<String> = table_prefixes_in(&source)
                .into_iter()
                .filter(|p| p != ctx)
                .collect();
            assert!(
                foreign.is_empty(),
                "{} touches tables of {foreign:?}",
                file.display()
            );
        }
    }
    assert!(checked >= 3, "no context store files found");
}

#[test]
fn context_domain_modules_import_no_adapter_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers");
    for ctx in CONTEXTS {
        let source = std::fs::read_to_string(root.join(ctx).join("mod.rs")).unwrap();
        for banned in [
            "warp",
            "rusqlite",
            "tiberius",
            "reqwest",
            "crate::platform::http",
        ] {
            assert!(
                !source
                    .lines()
                    .any(|l| l.trim_start().starts_with("use ") && l.contains(banned)),
                "{ctx}/mod.rs imports {banned}"
            );
        }
    }
}

#[test]
fn the_table_scanner_sees_foreign_tables() {
    assert_eq!(
        table_prefixes_in("SELECT * FROM users_profiles JOIN quiz.attempts"),
        vec!["users", "quiz"]
    );
    assert_eq!(
        table_prefixes_in("UPDATE [leaderboard].[scores] SET x = 1"),
        vec!["leaderboard"]
    );
    assert!(
        table_prefixes_in("SELECT quiz_date FROM leaderboard_days")
            .iter()
            .all(|p| p == "leaderboard")
    );
}
