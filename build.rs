//! Embeds the two data sets the binary must carry without repeating them in code:
//! `functions/*/function.json` (the single source of truth for triggers, routes, schedules and
//! topics) plus `host.json`, the offline question bank `handlers/quiz/bank/*.json`, and the
//! player page's static files `handlers/web/*` (all but its README).

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn sorted_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    entries
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = String::new();

    let functions = root.join("functions");
    println!("cargo:rerun-if-changed={}", functions.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host.json").display()
    );
    out.push_str(
        "/// `(function name, function.json text)` for every folder under `functions/`.\n",
    );
    out.push_str("pub static FUNCTION_JSON: &[(&str, &str)] = &[\n");
    for dir in sorted_entries(&functions) {
        let file = dir.join("function.json");
        if !file.is_file() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", file.display());
        let name = dir
            .file_name()
            .unwrap()
            .to_str()
            .expect("utf-8 function name");
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// The text of `host.json`.\npub static HOST_JSON: &str = include_str!({:?});",
        root.join("host.json").display().to_string()
    )
    .unwrap();

    let example = root.join("local.settings.json.example");
    println!("cargo:rerun-if-changed={}", example.display());
    writeln!(
        out,
        "/// The text of `local.settings.json.example` (the runnable local profile `qotd stage` writes).\npub static LOCAL_SETTINGS_EXAMPLE: &str = include_str!({:?});",
        example.display().to_string()
    )
    .unwrap();

    let bank = root.join("handlers/quiz/bank");
    println!("cargo:rerun-if-changed={}", bank.display());
    out.push_str("/// `(category, questions JSON)` for every file of the offline question bank.\n");
    out.push_str("pub static BANK_JSON: &[(&str, &str)] = &[\n");
    for file in sorted_entries(&bank) {
        if file.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", file.display());
        let category = file.file_stem().unwrap().to_str().expect("utf-8 category");
        writeln!(
            out,
            "    ({category:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");

    let web = root.join("handlers/web");
    println!("cargo:rerun-if-changed={}", web.display());
    out.push_str("/// `(file name, bytes)` for every static file of the player page.\n");
    out.push_str("pub static WEB_FILES: &[(&str, &[u8])] = &[\n");
    for file in sorted_entries(&web) {
        let name = file.file_name().unwrap().to_str().expect("utf-8 file name");
        if !file.is_file() || name == "README.md" || name.starts_with('.') {
            continue;
        }
        println!("cargo:rerun-if-changed={}", file.display());
        writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");

    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded.rs");
    fs::write(dest, out).expect("write embedded.rs");
}
