//! The `qotd` command line: help on every subcommand, errors that name the bad value with a
//! non-zero exit, and the idempotent `migrate` / `generate` commands.

mod support;

use std::process::Command;
use support::app::BIN;

fn qotd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .env_remove("QOTD_AUTH_METADATA_URL")
        .env("QOTD_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run qotd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["serve", "--help"],
        &["local", "--help"],
        &["token", "--help"],
        &["migrate", "--help"],
        &["generate", "--help"],
        &["stage", "--help"],
    ] {
        let (code, out, _) = qotd(sub, &[]);
        assert_eq!(code, 0, "{sub:?}");
        assert!(out.contains("Usage"), "{sub:?}: {out}");
    }
}

/// Arguments, extra environment, and the text stderr must contain.
type CliCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_values_are_named_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: &[CliCase] = &[
        (&["serve"], &[], "FUNCTIONS_CUSTOMHANDLER_PORT"),
        (
            &["serve"],
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", "70000")],
            "'70000' is not a TCP port",
        ),
        (
            &["serve"],
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", "8080")],
            "QOTD_AUTH_METADATA_URL",
        ),
        (
            &["serve"],
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "8080"),
                ("QOTD_DEV_ISSUER", "sure"),
            ],
            "QOTD_DEV_ISSUER",
        ),
        (
            &["generate", "--date", "2026-02-30", "--data-dir", d],
            &[],
            "--date",
        ),
        (
            &["generate", "--date", "tomorrow", "--data-dir", d],
            &[],
            "tomorrow",
        ),
        (&["token", "--user", "", "--data-dir", d], &[], "--user"),
        (
            &["token", "--user", "a", "--role", "ro ot", "--data-dir", d],
            &[],
            "ro ot",
        ),
        (
            &[
                "token",
                "--user",
                "a",
                "--scope",
                "x",
                "--no-scope",
                "--data-dir",
                d,
            ],
            &[],
            "--no-scope",
        ),
        (
            &[
                "token",
                "--user",
                "a",
                "--ttl-minutes",
                "0",
                "--data-dir",
                d,
            ],
            &[],
            "0",
        ),
        (
            &["migrate", "--database", "postgres://db/x", "--data-dir", d],
            &[],
            "--database",
        ),
        (
            &["local", "--addr", "not-an-address"],
            &[],
            "not-an-address",
        ),
    ];
    for (args, env, needle) in cases {
        let (code, _, err) = qotd(args, env);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} should mention {needle:?}"
        );
    }
}

#[test]
fn migrate_and_generate_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = qotd(&["migrate", "--data-dir", d], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("before: 0") && out.contains("after:  2"),
        "{out}"
    );
    let (_, out, _) = qotd(&["migrate", "--data-dir", d], &[]);
    assert!(
        out.contains("before: 2") && out.contains("after:  2"),
        "{out}"
    );
    let (code, out, err) = qotd(&["generate", "--date", "2026-03-01", "--data-dir", d], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("generated the quiz for 2026-03-01"), "{out}");
    let (code, out, _) = qotd(&["generate", "--date", "2026-03-01", "--data-dir", d], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("already exists"), "{out}");
    let (code, token, _) = qotd(
        &["token", "--user", "ada", "--role", "admin", "--data-dir", d],
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT");
}

/// Every file under `dir`, relative, with `/` separators.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy();
                out.insert(rel.replace('\\', "/"));
            }
        }
    }
    out
}

#[test]
fn stage_writes_exactly_what_the_functions_host_needs() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    let (code, stdout, stderr) = qotd(&["stage", dir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("func start"), "{stdout}");

    // Exactly: host.json, <Function>/function.json for every functions/<Function>/, the
    // executable host.json names, and local.settings.json.
    let host_json = std::fs::read_to_string(repo.join("host.json")).unwrap();
    let host: serde_json::Value = serde_json::from_str(&host_json).unwrap();
    let exe = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap();
    assert_eq!(exe, "qotd");
    let mut expected: std::collections::BTreeSet<String> =
        ["host.json", "local.settings.json", exe]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for entry in std::fs::read_dir(repo.join("functions")).unwrap() {
        let path = entry.unwrap().path();
        if path.join("function.json").is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let staged = std::fs::read_to_string(dir.join(&name).join("function.json"))
                .unwrap_or_else(|e| panic!("{name}/function.json not staged: {e}"));
            assert_eq!(
                staged,
                std::fs::read_to_string(path.join("function.json")).unwrap(),
                "{name}"
            );
            expected.insert(format!("{name}/function.json"));
        }
    }
    assert!(expected.len() > 10);
    assert_eq!(files_under(&dir), expected);
    assert_eq!(
        std::fs::read_to_string(dir.join("host.json")).unwrap(),
        host_json
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("local.settings.json")).unwrap(),
        std::fs::read_to_string(repo.join("local.settings.json.example")).unwrap(),
        "local.settings.json is the runnable local profile"
    );
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("local.settings.json")).unwrap()).unwrap();
    assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "custom");
    // The handler is this very binary, executable.
    assert_eq!(
        std::fs::read(dir.join(exe)).unwrap(),
        std::fs::read(BIN).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(exe))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable: {mode:o}");
    }

    // A non-empty folder is refused unless --force, which replaces its contents.
    std::fs::write(dir.join("stray.txt"), "x").unwrap();
    let (code, _, stderr) = qotd(&["stage", dir.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--force"), "{stderr}");
    let (code, _, stderr) = qotd(&["stage", "--force", dir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(files_under(&dir), expected);
}

#[tokio::test]
async fn dev_tokens_carry_the_scope_and_the_rejections_show_locally() {
    let app = support::app::spawn_local().await;
    let d = app.data_dir.to_str().unwrap().to_owned();
    let token = |extra: &[&str]| {
        let mut args = vec!["token", "--user", "cli-user", "--data-dir", d.as_str()];
        args.extend_from_slice(extra);
        let (code, out, err) = qotd(&args, &[]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    let cases: Vec<(&str, Vec<&str>, u16, &str)> = vec![
        ("default scope", vec![], 200, ""),
        (
            "explicit scopes",
            vec!["--scope", "openid", "--scope", "quiz.play"],
            200,
            "",
        ),
        (
            "another scope",
            vec!["--scope", "User.Read"],
            403,
            "quiz.play",
        ),
        ("no scope, no role", vec!["--no-scope"], 403, "quiz.service"),
        (
            "app-only service",
            vec!["--no-scope", "--role", "quiz.service"],
            200,
            "",
        ),
    ];
    for (name, extra, status, needle) in cases {
        let t = token(&extra);
        let (got, body) = app.get("/api/users/me", &t).await;
        let got_status = if got == 404 { 200 } else { got };
        assert_eq!(got_status, status, "{name}: {body}");
        if !needle.is_empty() {
            assert!(
                body["detail"].as_str().unwrap_or_default().contains(needle),
                "{name}: {body}"
            );
            assert_eq!(
                body["type"].as_str().map(|t| t.is_empty()),
                Some(false),
                "{name}: {body}"
            );
        }
    }
}
