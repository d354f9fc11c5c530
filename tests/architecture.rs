//! The architecture's dependency rules, checked by reading the source so they stay true. Each
//! failure names the file and the offending path.
//!
//! Layers, bottom up: `kernel` (shared values and the published event language) ← `platform`
//! (generic infrastructure) ← the contexts `users`, `quiz`, `leaderboard` ← `app` (the
//! composition root) ← `cli`. A module may name only modules below it, and a context never
//! names another context.

use std::path::{Path, PathBuf};

const CONTEXTS: [&str; 3] = ["users", "quiz", "leaderboard"];

fn handlers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers")
}

/// Every `.rs` file under `handlers/<dir>` (or the file `handlers/<dir>.rs`).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_owned());
        }
    }
    let mut out = Vec::new();
    walk(&handlers().join(dir), &mut out);
    let file = handlers().join(format!("{dir}.rs"));
    if file.exists() {
        out.push(file);
    }
    out.sort();
    out
}

/// The production part of a file: everything before its unit tests, without comments.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a source names through `crate::…` paths, including grouped imports
/// such as `use crate::{quiz, users::Users};`.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            found.push(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

/// Checks that every file under `dir` names only `allowed` top-level modules.
fn only_depends_on(dir: &str, allowed: &[&str]) -> Vec<String> {
    let mut violations = Vec::new();
    let files = rust_files(dir);
    assert!(!files.is_empty(), "no source under handlers/{dir}");
    for file in files {
        for module in crate_modules(&production_code(&file)) {
            if !allowed.contains(&module.as_str()) {
                violations.push(format!(
                    "{} names crate::{module} (allowed: {allowed:?})",
                    file.strip_prefix(handlers()).unwrap().display()
                ));
            }
        }
    }
    violations
}

#[test]
fn the_kernel_depends_on_nothing() {
    let v = only_depends_on("kernel", &["kernel"]);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_platform_knows_no_context_and_no_composition_root() {
    let v = only_depends_on("platform", &["kernel", "platform", "embedded"]);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn a_context_knows_no_other_context_and_not_the_composition_root() {
    let mut all = Vec::new();
    for ctx in CONTEXTS {
        all.extend(only_depends_on(
            ctx,
            &["kernel", "platform", "embedded", ctx],
        ));
    }
    assert!(all.is_empty(), "{all:#?}");
}

#[test]
fn only_the_entry_points_know_the_composition_root() {
    let v = only_depends_on(
        "app",
        &["kernel", "platform", "app", "users", "quiz", "leaderboard"],
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_dependency_scanner_sees_every_form() {
    let code = "use crate::app::App;\nuse crate::{quiz, users::{Users, http}};\nlet x = crate::leaderboard::Period::AllTime;";
    assert_eq!(crate_modules(code), ["app", "quiz", "users", "leaderboard"]);
}

#[test]
fn time_comes_only_from_the_clock() {
    let mut offenders = Vec::new();
    for dir in [
        "kernel",
        "platform",
        "users",
        "quiz",
        "leaderboard",
        "app",
        "cli",
    ] {
        for file in rust_files(dir) {
            if file.ends_with("platform/clock.rs") {
                continue;
            }
            let code = production_code(&file);
            for banned in ["Utc::now()", "SystemTime::now()", "Local::now()"] {
                if code.contains(banned) {
                    offenders.push(format!("{} calls {banned}", file.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use the injected Clock: {offenders:#?}"
    );
}

#[test]
fn no_lock_poisoning_panics_on_request_paths() {
    let mut offenders = Vec::new();
    for dir in ["platform", "users", "quiz", "leaderboard", "app"] {
        for file in rust_files(dir) {
            let code = production_code(&file).replace([' ', '\n'], "");
            for banned in [
                ".lock().expect(",
                ".read().expect(",
                ".write().expect(",
                ".lock().unwrap()",
                ".read().unwrap()",
                ".write().unwrap()",
            ] {
                if code.contains(banned) {
                    offenders.push(format!("{}: {banned}", file.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a poisoned lock must not turn every later request into a panic: {offenders:#?}"
    );
}

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
        for ctx in CONTEXTS.iter().chain(&["platform"]) {
            if table.starts_with(&format!("{ctx}_")) || table.starts_with(&format!("{ctx}.")) {
                found.push(ctx.to_string());
            }
        }
    }
    found
}

#[test]
fn each_context_store_names_only_its_own_tables() {
    let mut checked = 0;
    for ctx in CONTEXTS {
        // SQLite adapter, SQL Server adapter and its T-SQL statements.
        for file in ["sqlite.rs", "mssql.rs", "tsql.rs"] {
            let path = handlers().join(ctx).join("store").join(file);
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
            let foreign: Vec<String> = table_prefixes_in(&source)
                .into_iter()
                .filter(|p| p != ctx)
                .collect();
            assert!(
                foreign.is_empty(),
                "{} touches tables of {foreign:?}",
                path.display()
            );
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn context_domain_modules_import_no_adapter_crates() {
    for ctx in CONTEXTS {
        let mut domain = vec![handlers().join(ctx).join("mod.rs")];
        if ctx == "leaderboard" {
            domain.push(handlers().join(ctx).join("scoring.rs"));
        }
        for path in domain {
            let source = production_code(&path);
            for banned in [
                "warp",
                "rusqlite",
                "tiberius",
                "reqwest",
                "crate::platform::http",
                "crate::platform::store::sqlite",
                "crate::platform::store::mssql",
            ] {
                assert!(
                    !source
                        .lines()
                        .any(|l| l.trim_start().starts_with("use ") && l.contains(banned)),
                    "{} imports {banned}",
                    path.display()
                );
            }
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
    assert_eq!(
        table_prefixes_in("INSERT INTO platform.outbox (seq) VALUES (1)"),
        vec!["platform"]
    );
    assert!(
        table_prefixes_in("SELECT quiz_date FROM leaderboard_days")
            .iter()
            .all(|p| p == "leaderboard")
    );
}
