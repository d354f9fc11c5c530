//! The fault campaign (issue 10): crashes, duplicate deliveries, a database that disappears, and
//! property-based fuzzing of every function and route. Each test runs the real binary
//! (`qotd local` with its minute timers off, so nothing fires behind the test's back) and is
//! bounded to a few seconds. RELIABILITY.md lists which guarantee each test proves.
//!
//! Randomness is seeded and printed: rerun a kill campaign with `QOTD_FAULT_SEED=<seed>`. The
//! fuzzers use proptest with a fixed seed; a failing case is saved to
//! `tests/faults.proptest-regressions` and replayed first from then on.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
use qotd::platform::functions::manifest::{FunctionApp, Trigger};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::app::*;

/// Minute timers off: `DispatchOutbox` and `GenerateDailyQuiz` never fire on their own.
const NO_TIMERS: &[(&str, &str)] = &[("QOTD_LOCAL_TIMERS", "false")];
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a tiny seeded generator, so a campaign can be replayed from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn campaign_seed(name: &str) -> u64 {
    let seed = std::env::var("QOTD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{name}: seed {seed} (replay with QOTD_FAULT_SEED={seed})");
    seed
}

fn read_only(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        dir.join("qotd.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

fn pending_events(app: &TestApp) -> i64 {
    app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL")
}

/// The dispatcher that died with the process held its claimed rows under a 60 s lease. While no
/// process runs, the test lets that time pass: it ends every lease. This is exactly the state
/// the rows reach on their own 60 s later (the probe finding 5, which another change
/// shortens); it never makes a live dispatcher's claim visible.
fn expire_leases_of_the_dead(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("qotd.db")).unwrap();
    conn.execute(
        "UPDATE platform_outbox SET claimed_until = NULL WHERE sent_at IS NULL",
        [],
    )
    .unwrap();
}

/// Invokes the `DispatchOutbox` timer function through the invocation protocol (as the host
/// does every minute) until nothing is pending.
async fn drain_outbox(app: &TestApp) {
    let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}});
    eventually(WAIT, || async {
        if pending_events(app) == 0 {
            return Some(());
        }
        let (status, _, body) = app.invoke("DispatchOutbox", &timer).await;
        assert_eq!(status, 200, "{body}");
        None
    })
    .await;
}

/// Answers that score `right` × 10 against `key`.
fn answers_scoring(key: &[i64], right: usize) -> Vec<i64> {
    key.iter()
        .enumerate()
        .map(|(q, &c)| if q < right { c } else { (c + 1) % 4 })
        .collect()
}

/// The whole daily board through the API: user → (score, how many times listed).
async fn daily_board(app: &TestApp, token: &str) -> BTreeMap<String, (u64, usize)> {
    let mut board: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (status, page) = app
            .get(
                &format!("/api/leaderboard?period=daily&limit=100&offset={offset}"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            let slot = board
                .entry(e["userId"].as_str().unwrap().to_owned())
                .or_insert((e["score"].as_u64().unwrap(), 0));
            slot.1 += 1;
        }
        if entries.len() < 100 {
            return board;
        }
        offset += 100;
    }
}

/// A Service Bus delivery of `QuizAttemptEvaluated`, as the host would POST it (the event as a
/// string, string-encoded once more in `Data.message`).
fn attempt_invocation(event_id: &str, user: &str, date: &str, score: u32, delivery: u32) -> Value {
    let now = chrono::Utc::now();
    let week = chrono::Datelike::iso_week(&now);
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let event = json!({
        "id": event_id, "source": "/qotd", "specversion": "1.0", "type": "qotd.QuizAttemptEvaluated.v1",
        "time": at, "subject": format!("quizzes/{date}/attempts/{user}"), "datacontenttype": "application/json",
        "data": { "userId": user, "displayName": user, "quizDate": date,
                  "isoWeek": format!("{}-W{:02}", week.year(), week.week()),
                  "score": score, "maxScore": 50, "correct": score / 10, "total": 5, "submittedAt": at }
    });
    json!({
        "Data": { "message": serde_json::to_string(&event.to_string()).unwrap() },
        "Metadata": { "DeliveryCount": delivery.to_string(), "MessageId": serde_json::to_string(event_id).unwrap(),
                      "sys": { "MethodName": "LeaderboardOnAttemptEvaluated" } }
    })
}

/// A fingerprint of every table's content. `platform_poison` (and the AUTOINCREMENT counter it
/// moves) is left out: storing a message that can never be processed is the designed answer to
/// garbage on a Service Bus function, checked on its own in the fuzzers.
fn state_fingerprint(dir: &Path) -> BTreeMap<String, (usize, u64)> {
    let conn = read_only(dir);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|t: &String| t != "platform_poison" && t != "sqlite_sequence")
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let mut row = String::new();
                    for i in 0..columns {
                        let v: rusqlite::types::Value = r.get(i)?;
                        row.push_str(&format!("{v:?}|"));
                    }
                    Ok(row)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            rows.hash(&mut h);
            (t, (rows.len(), h.finish()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) kill -9 at random points during attempt bursts
// ---------------------------------------------------------------------------------------------

const ROUNDS: usize = 5;
const PLAYERS_PER_ROUND: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_during_attempt_bursts_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut rng = Rng(campaign_seed("kill -9 campaign"));
    let mut app = spawn_local_with(NO_TIMERS).await;
    let admin = app.token("admin", &["admin"]);
    let date = app.today(&admin).await["date"].as_str().unwrap().to_owned();
    let key = correct_answers(&app, &date);
    // user → the score its 201 acknowledged.
    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..ROUNDS {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        // Tokens first (signing is slow in a debug build), so the burst starts at once.
        let players: Vec<(String, String)> = (0..PLAYERS_PER_ROUND)
            .map(|i| {
                let user = format!("r{round}p{i:02}");
                let token = app.token(&user, &[]);
                (user, token)
            })
            .collect();
        // Progress: registrations and attempts answered so far (2 per player).
        let progress = std::sync::Arc::new(AtomicUsize::new(0));
        let burst: Vec<_> = players
            .into_iter()
            .enumerate()
            .map(|(i, (user, token))| {
                let (client, base, date) = (client.clone(), app.base.clone(), date.clone());
                let progress = progress.clone();
                let answers = answers_scoring(&key, i % 6);
                tokio::spawn(async move {
                    let registered = client
                        .post(format!("{base}/api/users/me"))
                        .bearer_auth(&token)
                        .json(&json!({ "displayName": user }))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !registered {
                        return (user, None);
                    }
                    progress.fetch_add(1, Ordering::SeqCst);
                    let res = client
                        .post(format!("{base}/api/quizzes/{date}/attempts"))
                        .bearer_auth(&token)
                        .json(&json!({ "answers": answers }))
                        .send()
                        .await;
                    let Ok(res) = res else { return (user, None) };
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    progress.fetch_add(1, Ordering::SeqCst);
                    (user, Some((status, body["score"].as_u64())))
                })
            })
            .collect();
        // The kill point: after a random number of the burst's 2 × 40 answers, plus a random
        // 0-4 ms, so it lands anywhere in registration, attempt, commit or dispatch, however
        // fast this machine is. Odd rounds kill in the attempt phase (after ≥ 10 attempts were
        // answered), so every campaign has acknowledged attempts to check.
        let answers = 2 * PLAYERS_PER_ROUND as u64;
        let point = if round % 2 == 1 {
            answers - 30 + rng.below(30)
        } else {
            rng.below(answers)
        } as usize;
        let jitter = rng.below(5);
        let deadline = Instant::now() + Duration::from_secs(10);
        while progress.load(Ordering::SeqCst) < point && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        app.kill();
        let mut created = 0;
        let mut unanswered = 0;
        for task in burst {
            let (user, outcome) = task.await.unwrap();
            match outcome {
                Some((201, Some(score))) => {
                    created += 1;
                    assert!(
                        acknowledged.insert(user.clone(), score).is_none(),
                        "{user} acknowledged twice"
                    );
                }
                Some((status, _)) => panic!("{user}: unexpected {status} before the crash"),
                None => unanswered += 1,
            }
        }
        let pending = pending_events(&app);
        expire_leases_of_the_dead(&app.data_dir);
        app = app.restart().await;
        eprintln!(
            "round {round}: kill -9 after {point} answers + {jitter} ms: {created} attempts acknowledged, {unanswered} cut off, {pending} events pending; restarted at {:?}",
            started.elapsed()
        );
    }

    drain_outbox(&app).await;
    let stored: BTreeMap<String, i64> = {
        let conn = read_only(&app.data_dir);
        let mut stmt = conn
            .prepare("SELECT user_id, score FROM quiz_attempts WHERE quiz_date = ?1")
            .unwrap();
        stmt.query_map([&date], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let board = daily_board(&app, &admin).await;
    for (user, score) in &acknowledged {
        assert_eq!(
            board.get(user),
            Some(&(*score, 1)),
            "acknowledged attempt of {user} ({score} points) must be on the daily board exactly once"
        );
    }
    // Attempts that committed but whose answer the crash cut off are published too (the
    // outbox), and nothing else is on the board.
    let listed: BTreeMap<String, i64> = board
        .iter()
        .map(|(u, (s, n))| {
            assert_eq!(*n, 1, "{u} listed {n} times");
            (u.clone(), *s as i64)
        })
        .collect();
    assert_eq!(
        listed, stored,
        "the daily board is exactly the stored attempts"
    );
    let (doubled, players): (i64, i64) = read_only(&app.data_dir)
        .query_row(
            "SELECT COUNT(*) FILTER (WHERE quizzes <> 1), COUNT(*) FROM leaderboard_scores WHERE period_key IN ('all', ?1)",
            [format!("day:{date}")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(doubled, 0, "an attempt counted twice");
    assert_eq!(players, 2 * stored.len() as i64);
    assert!(
        acknowledged.len() >= 20,
        "the campaign acknowledged too few attempts to prove anything: {}",
        acknowledged.len()
    );
    eprintln!(
        "kill -9 campaign: {ROUNDS} rounds, {} acknowledged, {} stored, all on the board once, in {:?}",
        acknowledged.len(),
        stored.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (b) the same Service Bus message delivered 20 times at once
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_service_bus_message_delivered_twenty_times_concurrently_applies_once() {
    let app = spawn_local_with(NO_TIMERS).await;
    let token = app.token("twenty", &[]);
    let date = app.today(&token).await["date"].as_str().unwrap().to_owned();
    let event_id = "0190f000-0000-7000-8000-000000000020";
    let deliveries = (1..=20).map(|n| {
        let (app, invocation) = (&app, attempt_invocation(event_id, "twenty", &date, 40, n));
        async move {
            app.invoke("LeaderboardOnAttemptEvaluated", &invocation)
                .await
        }
    });
    for (status, ct, body) in futures_util::future::join_all(deliveries).await {
        assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
        assert!(body.is_object(), "{body}");
    }
    for period in ["daily", "weekly", "alltime"] {
        let (status, me) = app
            .get(&format!("/api/leaderboard/me?period={period}"), &token)
            .await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (me["score"].as_u64(), me["quizzes"].as_u64()),
            (Some(40), Some(1)),
            "{period}: {me}"
        );
    }
    assert_eq!(
        app.db_count(&format!(
            "SELECT COUNT(*) FROM platform_inbox WHERE consumer = 'leaderboard.quiz-attempt-evaluated' AND event_id = '{event_id}'"
        )),
        1
    );
    assert_eq!(
        app.db_count("SELECT quizzes_played * 1000 + total_score FROM leaderboard_players WHERE user_id = 'twenty'"),
        1040
    );
    assert_eq!(
        app.db_count(&format!(
            "SELECT SUM(players) FROM leaderboard_histogram WHERE period_key = 'day:{date}'"
        )),
        1,
        "the rank histogram counts the player once"
    );
    assert_eq!(app.db_count("SELECT COUNT(*) FROM platform_poison"), 0);
}

// ---------------------------------------------------------------------------------------------
// (c) the database disappears in the middle of a burst
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_disappears_mid_burst_gives_503_and_recovers() {
    let app = spawn_local_with(NO_TIMERS).await;
    let admin = app.token("admin", &["admin"]);
    let date = app.today(&admin).await["date"].as_str().unwrap().to_owned();
    let players: Vec<(String, String)> = futures_util::future::join_all((0..30).map(|i| {
        let app = &app;
        async move {
            let user = format!("d{i:02}");
            let token = app.register(&user).await;
            (user, token)
        }
    }))
    .await;
    drain_outbox(&app).await;

    // The burst: one attempt every 5 ms; once 8 have been acknowledged, the data directory
    // vanishes (is moved away, as when a volume is unmounted) while the rest are in flight.
    let away = app.data_dir.with_extension("away");
    let late = app.token("late", &[]);
    let created = AtomicUsize::new(0);
    let burst = players.iter().enumerate().map(|(i, (user, token))| {
        let (app, date, created) = (&app, &date, &created);
        async move {
            tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
            let res = app
                .http
                .post(app.url(&format!("/api/quizzes/{date}/attempts")))
                .bearer_auth(token)
                .json(&json!({ "answers": [0, 1, 2, 3, 0] }))
                .send()
                .await
                .expect("an answer, never a dropped connection");
            let status = res.status().as_u16();
            if status == 201 {
                created.fetch_add(1, Ordering::SeqCst);
            }
            let retry_after = res.headers().get("retry-after").is_some();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (user.clone(), status, retry_after, body)
        }
    });
    let vanish = async {
        while created.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        std::fs::rename(&app.data_dir, &away).unwrap();
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(burst), vanish);

    // While it is gone: health says so, and reads and writes are 503 with Retry-After.
    // Health answers 503 problem+json naming what is down (issue 9's contract).
    let (status, health) = app.call(Method::GET, "/api/health", None, None).await;
    assert_eq!(status, 503, "{health}");
    assert!(
        health["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("database")),
        "{health}"
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/api/users/me".to_owned(),
            Some(json!({"displayName": "late"})),
        ),
        (Method::GET, "/api/users/me".to_owned(), None),
        (
            Method::POST,
            format!("/api/quizzes/{date}/attempts"),
            Some(json!({"answers": [0, 0, 0, 0, 0]})),
        ),
    ] {
        let mut req = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&late);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.status().as_u16(),
            503,
            "{method} {path} while the database is gone"
        );
        assert!(
            res.headers().get("retry-after").is_some(),
            "{method} {path}: Retry-After"
        );
    }

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for (user, status, retry_after, body) in &results {
        match *status {
            201 => acknowledged.push(user.clone()),
            503 => {
                assert!(*retry_after, "503 without Retry-After: {body}");
                assert_eq!(body["status"], 503, "{body}");
                refused.push(user.clone());
            }
            other => panic!("{user}: {other} {body}"),
        }
    }
    eprintln!(
        "database vanished mid-burst: {} attempts acknowledged before, {} refused with 503",
        acknowledged.len(),
        refused.len()
    );
    assert!(!refused.is_empty(), "the outage must be seen by the burst");

    // The same file comes back: service resumes without a restart.
    std::fs::rename(&away, &app.data_dir).unwrap();
    eventually(WAIT, || async {
        (app.call(Method::GET, "/api/health", None, None).await.0 == 200).then_some(())
    })
    .await;

    // Nothing half-written: exactly the acknowledged attempts are stored, each with its event.
    let stored_users: Vec<String> = {
        let conn = read_only(&app.data_dir);
        let mut stmt = conn
            .prepare("SELECT user_id FROM quiz_attempts ORDER BY user_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut expected = acknowledged.clone();
    expected.sort();
    assert_eq!(
        stored_users, expected,
        "stored attempts = acknowledged attempts"
    );
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE topic = 'quiz-attempt-evaluated'"),
        acknowledged.len() as i64,
        "one event per stored attempt"
    );
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM users_profiles WHERE user_id = 'late'"),
        0
    );

    // Every refused player can now play, and every attempt reaches the board once.
    for user in &refused {
        let token = &players.iter().find(|(u, _)| u == user).unwrap().1;
        let (status, body) = app.submit(token, &date, &[0, 1, 2, 3, 0]).await;
        assert_eq!(status, 201, "{user} after recovery: {body}");
    }
    drain_outbox(&app).await;
    let board = daily_board(&app, &admin).await;
    assert_eq!(board.len(), players.len(), "{board:?}");
    assert!(board.values().all(|(_, n)| *n == 1), "{board:?}");
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_poison"),
        0,
        "an outage is not poison"
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: garbage to every function name and every route
// ---------------------------------------------------------------------------------------------

/// Cases per target (function or route); with the fixed seed the run is the same each time.
const CASES: u32 = 64;
const FUZZ_SEED: u64 = 0x0071_0d10_fa17_5eed;

fn fuzz_config() -> Config {
    Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(FUZZ_SEED),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        max_shrink_iters: 200,
        ..Config::default()
    }
}

/// Keys the handler knows somewhere, mixed with random ones, so garbage gets past the first
/// "unknown field" more often.
const KEYS: &[&str] = &[
    "answers",
    "displayName",
    "reason",
    "Data",
    "Metadata",
    "message",
    "req",
    "timer",
    "Method",
    "Url",
    "Headers",
    "Body",
    "Query",
    "Params",
    "Identities",
    "DeliveryCount",
    "MessageId",
    "id",
    "type",
    "specversion",
    "data",
    "userId",
    "score",
    "maxScore",
    "quizDate",
    "IsPastDue",
    "ScheduleStatus",
    "sys",
    "Authorization",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[A-Za-z_]{0,10}",
        1 => ".{0,6}",
    ]
}

fn garbage_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        (0u64..200).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "(GET|POST|[A-Z]{1,8}) [ -~]{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Bodies: raw bytes, JSON of the wrong shape, JSON with trailing bytes, empty, oversized.
fn garbage_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..300),
        4 => garbage_json().prop_map(|v| v.to_string().into_bytes()),
        1 => (garbage_json(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(v, tail)| {
            let mut b = v.to_string().into_bytes();
            b.extend(tail);
            b
        }),
        1 => Just(Vec::new()),
        1 => (60_000usize..70_000).prop_map(|n| {
            let mut b = b"{\"answers\":\"".to_vec();
            b.resize(n, b'9');
            b
        }),
    ]
    .boxed()
}

/// A CloudEvent that is broken on purpose in a way no consumer may accept (wrong specversion,
/// wrong type, non-object data or a non-string id), with the rest of it random.
fn broken_event(expected_type: &'static str) -> impl Strategy<Value = Value> {
    let types = prop_oneof![
        Just("qotd.UserRegistered.v1".to_owned()),
        Just("qotd.DailyQuizGenerated.v1".to_owned()),
        Just("qotd.QuizAttemptEvaluated.v1".to_owned()),
        Just("qotd.QuizAttemptEvaluated.v2".to_owned()),
        ".{0,20}",
    ]
    .prop_filter("not the expected type", move |t: &String| {
        t.as_str() != expected_type
    });
    let data = prop::collection::btree_map(json_key(), garbage_json(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    (0u8..4, types, data, garbage_json(), ".{0,6}")
        .prop_map(move |(how, other_type, data, junk, version)| {
            let mut ev = json!({
                "id": "0190f000-0000-7000-8000-0000000000ff", "source": "/qotd", "specversion": "1.0",
                "type": expected_type, "time": "2026-11-27T10:00:00.000Z", "subject": "x",
                "datacontenttype": "application/json", "data": data,
            });
            match how {
                0 => ev["type"] = Value::String(other_type),
                1 => {
                    ev["specversion"] = Value::String(if version == "1.0" {
                        "1.1".into()
                    } else {
                        version
                    })
                }
                2 => {
                    ev["data"] = match junk {
                        Value::Object(_) | Value::Array(_) => Value::from(7),
                        scalar => scalar,
                    }
                }
                _ => {
                    ev["id"] = match junk {
                        Value::String(_) => json!({"not": "a string"}),
                        other => other,
                    }
                }
            }
            ev
        })
}

/// Invocation payloads: plain garbage, a host-shaped envelope around garbage, or a broken
/// CloudEvent encoded the three ways a message can arrive (string, twice-encoded string, base64).
fn garbage_invocation(binding: String, event_type: Option<&'static str>) -> BoxedStrategy<Vec<u8>> {
    let envelope = (garbage_json(), garbage_json()).prop_map({
        let binding = binding.clone();
        move |(data, meta)| {
            json!({"Data": {(binding.clone()): data}, "Metadata": meta})
                .to_string()
                .into_bytes()
        }
    });
    match event_type {
        None => prop_oneof![2 => garbage_body(), 3 => envelope].boxed(),
        Some(t) => {
            // Metadata as the host sends it (an object), so the broken event reaches the consumer.
            let metadata = prop::collection::btree_map(json_key(), garbage_json(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()));
            let message =
                (broken_event(t), 0u8..3, metadata).prop_map(move |(ev, encoding, meta)| {
                    let raw = ev.to_string();
                    let message = match encoding {
                        0 => Value::String(raw),
                        1 => Value::String(serde_json::to_string(&raw).unwrap()),
                        _ => Value::String(base64_encode(raw.as_bytes())),
                    };
                    json!({"Data": {(binding.clone()): message}, "Metadata": meta})
                        .to_string()
                        .into_bytes()
                });
            prop_oneof![1 => garbage_body(), 2 => envelope, 3 => message].boxed()
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn event_type_of(function: &str) -> Option<&'static str> {
    match function {
        "LeaderboardOnUserRegistered" => Some("qotd.UserRegistered.v1"),
        "LeaderboardOnQuizGenerated" => Some("qotd.DailyQuizGenerated.v1"),
        "LeaderboardOnAttemptEvaluated" => Some("qotd.QuizAttemptEvaluated.v1"),
        _ => None,
    }
}

/// A fuzz target's world: one player who has registered and played today (so no random request
/// can be a first registration or attempt), every event delivered, and the state fingerprinted.
struct FuzzWorld {
    rt: tokio::runtime::Runtime,
    /// How often each status was answered (printed, to show what the garbage reached).
    statuses: std::sync::Mutex<BTreeMap<u16, usize>>,
    app: TestApp,
    /// A client that gives up after 5 s, so a hang fails the case instead of the suite.
    client: reqwest::Client,
    player: String,
    admin: String,
    today: String,
    baseline: BTreeMap<String, (usize, u64)>,
}

fn fuzz_world() -> FuzzWorld {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, player, admin, today) = rt.block_on(async {
        let app = spawn_local_with(NO_TIMERS).await;
        let player = app.register("fuzzer").await;
        let admin = app.token("fuzz-admin", &["admin"]);
        let today = app.today(&player).await["date"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = app.submit(&player, &today, &[0, 1, 2, 3, 0]).await;
        assert_eq!(status, 201, "{body}");
        drain_outbox(&app).await;
        (app, player, admin, today)
    });
    let baseline = state_fingerprint(&app.data_dir);
    FuzzWorld {
        rt,
        statuses: Default::default(),
        app,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        player,
        admin,
        today,
        baseline,
    }
}

impl FuzzWorld {
    /// The properties every answer must have: an answer (no dropped connection, i.e. no panic),
    /// below 500, and no state changed.
    fn check(&self, what: &str, status: Result<u16, String>) -> Result<(), TestCaseError> {
        let status = status.map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e}")))?;
        *self.statuses.lock().unwrap().entry(status).or_default() += 1;
        prop_assert!(status < 500, "{what}: {status}");
        let now = state_fingerprint(&self.app.data_dir);
        prop_assert_eq!(&now, &self.baseline, "{}: state changed", what);
        Ok(())
    }

    fn still_healthy(&self) {
        self.rt.block_on(async {
            let (status, body) = self.app.call(Method::GET, "/api/health", None, None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(pending_events(&self.app), 0, "garbage produced events");
        });
    }
}

#[test]
fn fuzz_every_function_name_with_garbage_invocations() {
    let world = fuzz_world();
    let started = Instant::now();
    let functions = FunctionApp::embedded().unwrap().functions;
    let cases = AtomicUsize::new(0);
    for f in &functions {
        let binding = match &f.trigger {
            Trigger::Http { binding, .. }
            | Trigger::Timer { binding, .. }
            | Trigger::ServiceBus { binding, .. } => binding.clone(),
        };
        let is_service_bus = matches!(f.trigger, Trigger::ServiceBus { .. });
        let strategy = garbage_invocation(binding, event_type_of(&f.name));
        let mut runner = TestRunner::new(fuzz_config());
        let url = format!("{}/{}", world.app.handler, f.name);
        let poison_before = world.app.db_count("SELECT COUNT(*) FROM platform_poison");
        runner
            .run(&strategy, |body| {
                cases.fetch_add(1, Ordering::Relaxed);
                let answer = world.rt.block_on(async {
                    let res = world
                        .client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = res.status().as_u16();
                    let reply: Value = res.json().await.unwrap_or(Value::Null);
                    Ok::<_, String>((status, reply))
                });
                let status = answer.as_ref().map(|(s, _)| *s).map_err(Clone::clone);
                if let Ok((_, reply)) = &answer {
                    // A non-forwarded HTTP function answers inside Outputs.res.
                    if let Some(inner) = reply["Outputs"]["res"]["statusCode"].as_u64() {
                        prop_assert!(inner < 500, "{}: Outputs.res {inner}: {reply}", f.name);
                    }
                }
                world.check(&f.name, status)
            })
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let poison_after = world.app.db_count("SELECT COUNT(*) FROM platform_poison");
        assert!(
            is_service_bus || poison_after == poison_before,
            "{} stored poison",
            f.name
        );
    }
    world.still_healthy();
    eprintln!(
        "fuzzed {} functions with {} garbage invocations in {:?}; statuses {:?}; {} stored as poison",
        functions.len(),
        cases.into_inner(),
        started.elapsed(),
        world.statuses.lock().unwrap(),
        world.app.db_count("SELECT COUNT(*) FROM platform_poison"),
    );
}

#[derive(Debug, Clone)]
struct HttpCase {
    method: Method,
    path: String,
    query: String,
    token: u8,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A path segment: random text percent-encoded, random printable bytes, or a real value.
fn segment(real: String) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ".{0,24}".prop_map(|s| percent_encode(&s)),
        2 => "[!$&'()*+,;=:@A-Za-z0-9._~%-]{0,24}",
        1 => Just(real),
    ]
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn http_case(
    route: String,
    methods: Vec<Method>,
    today: String,
) -> impl Strategy<Value = HttpCase> {
    let params = route.matches('{').count();
    let segments = prop::collection::vec(segment(today), params..=params);
    let method = prop_oneof![
        4 => prop::sample::select(methods),
        1 => prop::sample::select(vec![
            Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS, Method::HEAD,
        ]),
    ];
    let query = prop_oneof![
        2 => Just(String::new()),
        3 => prop::collection::vec(
            (
                prop::sample::select(vec!["period", "limit", "offset", "force", "date", "x", ""]),
                prop_oneof!["-?[0-9]{1,20}", "daily|weekly|alltime|true|false", "[ -~]{0,12}"],
            ),
            1..4,
        )
        .prop_map(|kv| {
            kv.into_iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(&v)))
                .collect::<Vec<_>>()
                .join("&")
        }),
    ];
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,30}",
    ]);
    (
        segments,
        method,
        query,
        0u8..4,
        content_type,
        garbage_body(),
    )
        .prop_map(
            move |(segments, method, query, token, content_type, body)| {
                let mut path = String::new();
                let mut values = segments.into_iter();
                for part in route.split('/') {
                    path.push('/');
                    if part.starts_with('{') {
                        path.push_str(&values.next().unwrap());
                    } else {
                        path.push_str(part);
                    }
                }
                HttpCase {
                    method,
                    path,
                    query,
                    token,
                    content_type,
                    body,
                }
            },
        )
}

#[test]
fn fuzz_every_http_route_with_garbage_requests() {
    let world = fuzz_world();
    let started = Instant::now();
    let cases = AtomicUsize::new(0);
    let routes: Vec<(String, String, Vec<Method>)> = FunctionApp::embedded()
        .unwrap()
        .functions
        .into_iter()
        .filter_map(|f| match f.trigger {
            Trigger::Http { route, methods, .. } => Some((f.name, route, methods)),
            _ => None,
        })
        .collect();
    for (name, route, methods) in &routes {
        let strategy = http_case(route.clone(), methods.clone(), world.today.clone());
        let mut runner = TestRunner::new(fuzz_config());
        runner
            .run(&strategy, |case| {
                cases.fetch_add(1, Ordering::Relaxed);
                let what = format!("{name} {} {}?{}", case.method, case.path, case.query);
                let status = world.rt.block_on(async {
                    let mut url = world.app.url(&case.path);
                    if !case.query.is_empty() {
                        url = format!("{url}?{}", case.query);
                    }
                    let mut req = world.client.request(case.method.clone(), url);
                    req = match case.token {
                        0 => req,
                        1 => req.header("authorization", "Bearer not.a.jwt"),
                        2 => req.bearer_auth(&world.player),
                        _ => req.bearer_auth(&world.admin),
                    };
                    if let Some(ct) = &case.content_type {
                        req = req.header("content-type", ct);
                    }
                    let res = req
                        .body(case.body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = res.status().as_u16();
                    let _ = res.bytes().await;
                    Ok::<_, String>(status)
                });
                world.check(&what, status)
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    world.still_healthy();
    assert_eq!(
        world.app.db_count("SELECT COUNT(*) FROM platform_poison"),
        0,
        "HTTP garbage never reaches a consumer"
    );
    eprintln!(
        "fuzzed {} routes with {} garbage requests in {:?}; statuses {:?}",
        routes.len(),
        cases.into_inner(),
        started.elapsed(),
        world.statuses.lock().unwrap(),
    );
}

// ---------------------------------------------------------------------------------------------
// The dispatcher after a store failure between claim and settle
// ---------------------------------------------------------------------------------------------

/// The database vanishes after the dispatcher claimed a row and published it, so `mark_sent`
/// fails. The row must not wait for the 60 s lease of a process that is still alive: the next
/// step (once the database is back) publishes it again, and the consumers' inbox absorbs the
/// repeat.
#[tokio::test]
async fn a_dispatch_step_that_fails_on_the_store_retries_as_soon_as_it_is_back() {
    use async_trait::async_trait;
    use qotd::kernel::events::EventType;
    use qotd::kernel::{DisplayName, UserId};
    use qotd::platform::clock::SystemClock;
    use qotd::platform::events::NewEvent;
    use qotd::platform::outbox::{Dispatcher, EventPublisher, PublishError};
    use qotd::platform::store::{self, DatabaseUrl, PendingEvent};
    use std::sync::Mutex;

    /// Publishes, and on the first call makes the database file vanish behind the dispatcher.
    struct VanishingPublisher {
        db: std::path::PathBuf,
        published: Mutex<Vec<String>>,
    }
    #[async_trait]
    impl EventPublisher for VanishingPublisher {
        async fn publish(&self, _topic: &str, events: &[PendingEvent]) -> Result<(), PublishError> {
            let mut published = self.published.lock().unwrap();
            if published.is_empty() {
                std::fs::rename(&self.db, self.db.with_extension("away")).unwrap();
            }
            published.extend(events.iter().map(|e| e.event_id.clone()));
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qotd.db");
    let db = store::open(&DatabaseUrl::Sqlite(path.clone()))
        .await
        .unwrap();
    let profile = qotd::users::Profile {
        user_id: UserId::parse("stranded").unwrap(),
        display_name: DisplayName::parse("Stranded").unwrap(),
        registered_at: chrono::Utc::now(),
    };
    let event = NewEvent::new(
        EventType::UserRegistered,
        "users/stranded".to_owned(),
        &json!({"userId": "stranded"}),
        chrono::Utc::now(),
        None,
    );
    qotd::users::store::repo(&db)
        .register(&profile, &event)
        .await
        .unwrap();
    let events = db.events();
    let publisher = std::sync::Arc::new(VanishingPublisher {
        db: path.clone(),
        published: Mutex::new(Vec::new()),
    });
    let dispatcher = Dispatcher::new(
        events.clone(),
        publisher.clone(),
        std::sync::Arc::new(SystemClock),
    );
    assert!(
        dispatcher.dispatch_once().await.is_err(),
        "mark_sent fails while the database is gone"
    );
    std::fs::rename(path.with_extension("away"), &path).unwrap();
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!(
        outcome.published, 1,
        "published again at once, not after the lease"
    );
    assert_eq!(events.pending_count().await.unwrap(), 0);
    assert_eq!(publisher.published.lock().unwrap().len(), 2);
}
