//! The `qotd` command line: help on every subcommand, errors that name the bad value with a
//! non-zero exit, and the idempotent `migrate` / `generate` commands.

mod common;

use common::BIN;
use std::process::Command;

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

#[tokio::test]
async fn dev_tokens_carry_the_scope_and_the_rejections_show_locally() {
    let app = common::spawn_local().await;
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
