//! End to end over real HTTP on loopback against `qotd local`: the whole product path, its
//! durability across restarts and crashes, and its guarantees under concurrency.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::app::*;

const WAIT: Duration = Duration::from_secs(20);

async fn my_rank(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/leaderboard/me{query}"), token).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn register_play_rank_and_survive_a_restart() {
    let app = spawn_local().await;
    let token = app.register("alice").await;

    let quiz = app.today(&token).await;
    let date = quiz["date"].as_str().unwrap().to_owned();
    assert_eq!(date, today_utc());
    assert_eq!(quiz["questions"].as_array().unwrap().len(), 5);
    assert!(
        quiz["questions"][0].get("correctChoice").is_none(),
        "today's quiz must not reveal answers"
    );
    assert!(quiz["closesAt"].as_str().unwrap().ends_with("T00:00:00Z"));

    let mut answers = correct_answers(&app, &date);
    answers[4] = (answers[4] + 1) % 4;
    let (status, result) = app.submit(&token, &date, &answers).await;
    assert_eq!(status, 201, "{result}");
    assert_eq!(
        (
            result["score"].as_u64(),
            result["correct"].as_u64(),
            result["total"].as_u64()
        ),
        (Some(40), Some(4), Some(5))
    );
    assert_eq!(result["results"][4]["isCorrect"], json!(false));
    assert!(result["results"][0]["explanation"].as_str().is_some());

    let board = eventually(WAIT, || async {
        let (_, b) = app.get("/api/leaderboard?period=daily", &token).await;
        (b["entries"].as_array().map_or(0, Vec::len) == 1).then_some(b)
    })
    .await;
    assert_eq!(board["entries"][0]["userId"], "alice");
    assert_eq!(board["entries"][0]["displayName"], "alice");
    assert_eq!(board["entries"][0]["score"], 40);
    assert_eq!(board["entries"][0]["rank"], 1);
    for period in ["weekly", "alltime"] {
        let me = my_rank(&app, &token, &format!("?period={period}")).await;
        assert_eq!(
            (me["rank"].as_u64(), me["score"].as_u64()),
            (Some(1), Some(40)),
            "{period}: {me}"
        );
    }
    let (_, profile) = app.get("/api/users/me", &token).await;
    assert_eq!(
        (
            profile["quizzesPlayed"].as_u64(),
            profile["totalScore"].as_u64(),
            profile["currentStreak"].as_u64()
        ),
        (Some(1), Some(40), Some(1))
    );
    let (_, share) = app
        .get(&format!("/api/users/me/attempts/{date}/share"), &token)
        .await;
    assert_eq!(share["text"], format!("qotd {date} 4/5 ✅✅✅✅❌"));
    assert!(
        !share
            .to_string()
            .contains(&quiz["questions"][0]["text"].as_str().unwrap()[..10]),
        "share text must not leak questions"
    );

    let app = app.restart().await;
    let token = app.token("alice", &[]);
    let (_, history) = app.get("/api/users/me/attempts", &token).await;
    assert_eq!(history["attempts"][0]["date"], date);
    assert_eq!(history["attempts"][0]["score"], 40);
    assert_eq!(my_rank(&app, &token, "?period=alltime").await["score"], 40);
    assert_eq!(
        app.today(&token).await["questions"],
        quiz["questions"],
        "the same quiz after restart"
    );
    let (status, _) = app.submit(&token, &date, &answers).await;
    assert_eq!(status, 409, "still one attempt per day after restart");
}

#[tokio::test]
async fn fifty_concurrent_attempts_by_one_user_store_exactly_one() {
    let app = spawn_local().await;
    let token = app.register("racer").await;
    let date = app.today(&token).await["date"].as_str().unwrap().to_owned();
    let attempts = (0..50).map(|i| {
        let (app, token, date) = (&app, token.clone(), date.clone());
        async move { app.submit(&token, &date, &[i % 4, 0, 1, 2, 3]).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["type"] == "urn:qotd:problem:already-attempted")
        .count();
    assert_eq!((created, conflicts), (1, 49), "{results:?}");
    assert_eq!(app.db_count("SELECT COUNT(*) FROM quiz_attempts"), 1);
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE topic = 'quiz-attempt-evaluated'"),
        1
    );
}

#[tokio::test]
async fn two_hundred_players_at_once_give_exact_leaderboard_totals() {
    let app = spawn_local().await;
    let admin = app.token("admin", &["admin"]);
    let date = app.today(&admin).await["date"].as_str().unwrap().to_owned();
    let key = correct_answers(&app, &date);
    let players = (0..200).map(|i| {
        let (app, date, key) = (&app, date.clone(), key.clone());
        async move {
            let token = app.register(&format!("p{i:03}")).await;
            let right = i % 6;
            let answers: Vec<i64> = key
                .iter()
                .enumerate()
                .map(|(q, &c)| if (q as i64) < right { c } else { (c + 1) % 4 })
                .collect();
            let (status, body) = app.submit(&token, &date, &answers).await;
            assert_eq!(status, 201, "{body}");
            body["score"].as_u64().unwrap()
        }
    });
    let scores: Vec<u64> = futures_util::future::join_all(players).await;
    let expected_total: u64 = scores.iter().sum();
    let expected_top = scores.iter().filter(|s| **s == 50).count() as u64;

    // Wait until every event has landed, then read both pages of a board that no longer moves.
    eventually(WAIT, || async {
        let (_, b) = app.get("/api/leaderboard?period=daily", &admin).await;
        (b["totalPlayers"] == 200).then_some(())
    })
    .await;
    let mut entries = Vec::new();
    for offset in [0, 100] {
        let (_, b) = app
            .get(
                &format!("/api/leaderboard?period=daily&limit=100&offset={offset}"),
                &admin,
            )
            .await;
        entries.extend(b["entries"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(entries.len(), 200);
    let total: u64 = entries.iter().map(|e| e["score"].as_u64().unwrap()).sum();
    assert_eq!(total, expected_total);
    // Competition ranking: ties share a rank, and the next rank skips.
    assert!(
        entries
            .iter()
            .take(expected_top as usize)
            .all(|e| e["rank"] == 1)
    );
    assert_eq!(entries[expected_top as usize]["rank"], expected_top + 1);
    let (_, board) = app.get("/api/leaderboard?period=alltime", &admin).await;
    assert_eq!(board["totalPlayers"], 200);
}

/// A Service Bus delivery of `QuizAttemptEvaluated`, as the host would POST it.
fn attempt_invocation(event_id: &str, user: &str, date: &str, score: u32) -> Value {
    let event = json!({
        "id": event_id, "source": "/qotd", "specversion": "1.0", "type": "qotd.QuizAttemptEvaluated.v1",
        "time": "2026-11-27T10:00:00.000Z", "subject": format!("quizzes/{date}/attempts/{user}"), "datacontenttype": "application/json",
        "data": { "userId": user, "displayName": user, "quizDate": date, "isoWeek": "2026-W48", "score": score, "maxScore": 50, "correct": score / 10, "total": 5, "submittedAt": "2026-11-27T10:00:00.000Z" }
    });
    let body = event.to_string();
    json!({
        "Data": { "message": serde_json::to_string(&body).unwrap() },
        "Metadata": { "DeliveryCount": "1", "MessageId": serde_json::to_string(event_id).unwrap(), "sys": { "MethodName": "LeaderboardOnAttemptEvaluated" } }
    })
}

#[tokio::test]
async fn the_same_service_bus_delivery_three_times_counts_once() {
    let app = spawn_local().await;
    let token = app.token("replayed", &[]);
    let date = today_utc();
    let invocation = attempt_invocation(
        "0190f000-0000-7000-8000-000000000001",
        "replayed",
        &date,
        30,
    );
    for _ in 0..3 {
        let (status, ct, body) = app
            .invoke("LeaderboardOnAttemptEvaluated", &invocation)
            .await;
        assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
        assert!(body.is_object());
    }
    for period in ["daily", "weekly", "alltime"] {
        let me = my_rank(&app, &token, &format!("?period={period}")).await;
        assert_eq!(
            (me["score"].as_u64(), me["quizzes"].as_u64()),
            (Some(30), Some(1)),
            "{period}: {me}"
        );
    }
    assert_eq!(app.db_count("SELECT COUNT(*) FROM platform_inbox WHERE consumer = 'leaderboard.quiz-attempt-evaluated'"), 1);
}

#[tokio::test]
async fn events_committed_before_a_crash_are_dispatched_after_restart() {
    // The harness turns the local timers off (QOTD_LOCAL_TIMERS=false), so the DispatchOutbox
    // timer cannot publish behind the test's back: the events stay pending until the kill.
    let app = spawn_local_with(&[("QOTD_DISPATCH_IN_PROCESS", "false")]).await;
    let token = app.register("crashy").await;
    let date = app.today(&token).await["date"].as_str().unwrap().to_owned();
    let (status, _) = app.submit(&token, &date, &[0, 0, 0, 0, 0]).await;
    assert_eq!(status, 201);
    let mut app = app;
    app.kill();
    assert!(
        app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL") >= 2,
        "events were pending at the crash"
    );

    let mut restarted = app.restart_with(&[]).await;
    let me = eventually(WAIT, || async {
        let me = my_rank(&restarted, &token, "?period=alltime").await;
        (me["quizzes"] == 1).then_some(me)
    })
    .await;
    assert_eq!(me["rank"], 1);
    let (_, board) = restarted
        .get("/api/leaderboard?period=alltime", &token)
        .await;
    assert_eq!(board["entries"][0]["displayName"], "crashy");
    eventually(WAIT, || async {
        (restarted.db_count("SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL") == 0)
            .then_some(())
    })
    .await;
    restarted.kill();
}

#[tokio::test]
async fn admin_generation_is_idempotent_and_force_respects_attempts() {
    let app = spawn_local().await;
    let admin = app.token("boss", &["admin"]);
    let player = app.register("pat").await;
    let past = "2026-01-15";
    let (s1, quiz) = app
        .call(
            Method::POST,
            &format!("/api/admin/quizzes/{past}/generate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s1, 201, "{quiz}");
    assert!(
        quiz["questions"][0]["correctChoice"].is_number(),
        "admins see the answers"
    );
    let (s2, conflict) = app
        .call(
            Method::POST,
            &format!("/api/admin/quizzes/{past}/generate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s2, conflict["type"].as_str()),
        (409, Some("urn:qotd:problem:quiz-exists"))
    );
    let (s3, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/quizzes/{past}/generate?force=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s3, 201, "no attempts yet, so force replaces");
    let (status, revealed) = app.get(&format!("/api/quizzes/{past}"), &player).await;
    assert_eq!(
        (status, revealed["answersRevealed"].as_bool()),
        (200, Some(true))
    );
    assert!(revealed["questions"][0]["explanation"].is_string());

    let date = app.today(&player).await["date"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.submit(&player, &date, &[0, 1, 2, 3, 0]).await.0, 201);
    let (s4, body) = app
        .call(
            Method::POST,
            &format!("/api/admin/quizzes/{date}/generate?force=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s4, body["type"].as_str()),
        (409, Some("urn:qotd:problem:quiz-has-attempts"))
    );
    let (s5, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/quizzes/{date}/generate"),
            Some(&player),
            None,
        )
        .await;
    assert_eq!(s5, 403, "players are not admins");
    assert_eq!(app.db_count("SELECT COUNT(*) FROM quiz_quizzes"), 2);
}

#[tokio::test]
async fn players_report_questions_once_and_admins_list_them() {
    let app = spawn_local().await;
    let player = app.register("reporter").await;
    let admin = app.token("boss", &["admin"]);
    let quiz = app.today(&player).await;
    let date = quiz["date"].as_str().unwrap().to_owned();
    let qid = quiz["questions"][2]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/quizzes/{date}/questions/{qid}/reports");
    let body = json!({ "reason": "  The answer looks wrong to me.  " });
    let (s1, report) = app
        .call(Method::POST, &path, Some(&player), Some(body.clone()))
        .await;
    assert_eq!(s1, 201, "{report}");
    assert_eq!(report["reason"], "The answer looks wrong to me.");
    let (s2, dup) = app
        .call(Method::POST, &path, Some(&player), Some(body.clone()))
        .await;
    assert_eq!(
        (s2, dup["type"].as_str()),
        (409, Some("urn:qotd:problem:already-reported"))
    );
    let bad = format!("/api/quizzes/{date}/questions/not-in-this-quiz/reports");
    assert_eq!(
        app.call(Method::POST, &bad, Some(&player), Some(body.clone()))
            .await
            .0,
        404
    );
    let empty = app
        .call(
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({ "reason": " " })),
        )
        .await;
    assert_eq!(empty.0, 422, "{}", empty.1);
    let (s3, list) = app.get("/api/admin/reports", &admin).await;
    assert_eq!(s3, 200, "{list}");
    assert_eq!(list["reports"].as_array().unwrap().len(), 1);
    assert_eq!(list["reports"][0]["questionId"], qid);
    assert_eq!(list["reports"][0]["userId"], "reporter");
    assert_eq!(app.get("/api/admin/reports", &player).await.0, 403);
}

#[tokio::test]
async fn answers_written_as_integral_numbers_count_as_whole_numbers() {
    // JSON Schema's `integer` (what openapi.yaml promises) admits 3.0 and 2e0.
    let app = spawn_local().await;
    let token = app.register("decimal").await;
    let date = app.today(&token).await["date"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/quizzes/{date}/attempts"),
            Some(&token),
            Some(serde_json::json!({ "answers": [0.0, 1.0, 2e0, 3, -0.0] })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let chosen: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["chosenChoice"].as_u64().unwrap())
        .collect();
    assert_eq!(chosen, [0, 1, 2, 3, 0]);
}

#[tokio::test]
async fn a_restarted_instance_reclaims_its_dead_predecessors_leases_at_once() {
    let app = spawn_local_with(&[("QOTD_LOCAL_TIMERS", "false")]).await;
    let token = app.register("leased").await;
    eventually(WAIT, || async {
        (app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL") == 0)
            .then_some(())
    })
    .await;
    let mut app = app;
    app.kill();
    // Make the registration event look exactly like a row the killed dispatcher had claimed
    // and not yet published: leased to it for ten more minutes.
    let owner = std::fs::read_to_string(app.data_dir.join("dispatcher-id"))
        .expect("a stable dispatcher id");
    let conn = rusqlite::Connection::open(app.data_dir.join("qotd.db")).unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let n = conn
        .execute(
            "UPDATE platform_outbox SET sent_at = NULL, claimed_by = ?1, claimed_until = ?2",
            rusqlite::params![format!("dispatcher-{}", owner.trim()), until],
        )
        .unwrap();
    assert!(n >= 1);
    drop(conn);
    let restarted = app.restart_with(&[("QOTD_LOCAL_TIMERS", "false")]).await;
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(10), || async {
        (restarted.db_count("SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL") == 0)
            .then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // Redelivered, applied once.
    let _ = token;
    assert_eq!(
        restarted.db_count("SELECT COUNT(*) FROM leaderboard_players"),
        1
    );
}

#[tokio::test]
async fn operators_list_replay_and_drop_poison_messages_over_http_and_the_cli() {
    let app = spawn_local_with(&[("QOTD_LOCAL_TIMERS", "false")]).await;
    let admin = app.token("operator", &["admin"]);
    let player = app.register("plain").await;
    // Two poison rows as a bug would have left them: one valid event (the bug is fixed now),
    // one that can never be processed.
    let ghost = json!({
        "id": "019c467f-5f30-7c3a-9e51-b04d7f2e0001", "source": "/qotd", "specversion": "1.0",
        "type": "qotd.UserRegistered.v1", "time": "2026-02-10T07:41:18.512Z", "subject": "users/ghost",
        "datacontenttype": "application/json",
        "data": {"userId": "ghost", "displayName": "Ghost", "registeredAt": "2026-02-10T07:41:18.512Z"}
    })
    .to_string();
    {
        let conn = rusqlite::Connection::open(app.data_dir.join("qotd.db")).unwrap();
        for (payload, reason) in [(ghost.as_str(), "bug 42"), ("not json", "unparsable")] {
            conn.execute(
                "INSERT INTO platform_poison (consumer, message_id, payload, reason, received_at) VALUES ('leaderboard.user-registered', NULL, ?1, ?2, '2026-02-10T07:41:19.000Z')",
                rusqlite::params![payload, reason],
            )
            .unwrap();
        }
    }
    let (status, _) = app.get("/api/admin/poison", &player).await;
    assert_eq!(status, 403, "admin only");
    let (status, list) = app
        .get(
            "/api/admin/poison?consumer=LeaderboardOnUserRegistered",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<i64> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert_eq!(
        list["messages"][0]["function"],
        "LeaderboardOnUserRegistered"
    );
    let (status, body) = app.get("/api/admin/poison?consumer=nobody", &admin).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("urn:qotd:problem:bad-request"))
    );
    let (status, outbox) = app.get("/api/admin/outbox", &admin).await;
    assert_eq!(status, 200, "{outbox}");
    assert_eq!(outbox["poison"], 2, "{outbox}");
    assert!(
        outbox["pending"].is_u64() && outbox["topics"].is_array(),
        "{outbox}"
    );

    let replay = |id: i64| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.call(
                Method::POST,
                &format!("/api/admin/poison/{id}/replay"),
                Some(&admin),
                None,
            )
            .await
        }
    };
    let (status, r) = replay(ids[0]).await;
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("replayed")),
        "{r}"
    );
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM leaderboard_players WHERE user_id = 'ghost'"),
        1
    );
    let (status, _) = replay(ids[0]).await;
    assert_eq!(status, 404, "a replayed message is gone");
    let (status, r) = replay(ids[1]).await;
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("still-poison")),
        "{r}"
    );
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_poison"),
        1,
        "kept, and no new row"
    );
    let (status, _) = app
        .call(Method::DELETE, "/api/admin/poison/abc", Some(&admin), None)
        .await;
    assert_eq!(status, 400);

    // The same through the command line.
    let d = app.data_dir.to_str().unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .args(["--data-dir", d])
            .env("QOTD_LOG", "error")
            .env_remove("QOTD_DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = cli(&["poison", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("unparsable") && !out.contains("bug 42"),
        "{out}"
    );
    let (code, out) = cli(&[
        "poison",
        "replay",
        "--all",
        "--consumer",
        "leaderboard.user-registered",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("still poison 1"), "{out}");
    let (code, out) = cli(&["outbox", "status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("pending:") && out.contains("poison:  1"),
        "{out}"
    );
    let (code, _) = cli(&["poison", "drop", &ids[1].to_string()]);
    assert_eq!(code, Some(0));
    let (code, _) = cli(&["poison", "drop", &ids[1].to_string()]);
    assert_eq!(code, Some(1), "dropping twice names the missing id");
    assert_eq!(app.db_count("SELECT COUNT(*) FROM platform_poison"), 0);
}
