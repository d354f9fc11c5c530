//! The Azure Functions custom-handler protocol against `qotd serve`, driven with the payload
//! shapes in tests/fixtures/functions-host/ (its README names the host source each follows).

mod support;

use qotd::platform::functions::protocol::{InvocationRequest, InvocationResponse};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use support::app::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions-host")
}

fn fixture(name: &str) -> Value {
    let path = fixtures().join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn every_fixture_decodes() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).expect("tests/fixtures/functions-host") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        seen += 1;
        if name.starts_with("invocation-response") || name.starts_with("http-response") {
            let res: InvocationResponse =
                serde_json::from_value(value).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(res.logs.len() <= 2, "{name}");
        } else if name == "invocation-request-envelope.json" {
            assert_eq!(value["headers"]["Transfer-Encoding"], "chunked");
        } else {
            let req: InvocationRequest =
                serde_json::from_value(value).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!req.data.is_empty(), "{name}");
            if name.starts_with("servicebus") && name.contains("batch") {
                let msgs = req
                    .service_bus_messages("message")
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(msgs.len(), 5, "{name}");
                assert_eq!(
                    msgs[0].body, msgs[1].body,
                    "{name}: a message delivered twice"
                );
                assert_eq!((msgs[0].delivery_count, msgs[1].delivery_count), (2, 1));
                assert_eq!(
                    msgs[3].message_id.as_deref(),
                    Some("019c467f-6a11-7d02-8c44-1e5b9a7c3d20")
                );
                assert_eq!(msgs[2].correlation_id, None);
            } else if name.starts_with("servicebus") {
                let msg = req
                    .service_bus_message("message")
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    msg.body,
                    r#"{"id":"019c467f-5f30-7c3a-9e51-b04d7f2e6841","source":"/qotd","specversion":"1.0","type":"qotd.QuizAttemptEvaluated.v1","time":"2026-02-10T07:41:18.512Z","subject":"quizzes/2026-02-10/attempts/8e41d7a2-3c56-4f0b-9a17-d2c64b8e5f30","datacontenttype":"application/json","data":{"userId":"8e41d7a2-3c56-4f0b-9a17-d2c64b8e5f30","displayName":"Tomás","quizDate":"2026-02-10","isoWeek":"2026-W07","score":40,"maxScore":50,"correct":4,"total":5,"submittedAt":"2026-02-10T07:41:18.512Z"}}"#,
                    "{name}: body decoded once more"
                );
                assert_eq!(
                    msg.message_id.as_deref(),
                    Some("019c467f-5f30-7c3a-9e51-b04d7f2e6841")
                );
                assert!(msg.delivery_count >= 1);
            }
            if name.starts_with("timer") {
                assert!(!req.timer_past_due("myTimer"));
            }
        }
    }
    assert!(seen >= 9, "expected every fixture, read {seen}");
}

#[tokio::test]
async fn readiness_probe_and_unknown_functions() {
    let app = spawn_serve().await;
    let res = app
        .http
        .get(format!("{}/", app.handler))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, ct, body) = app
        .invoke("NoSuchFunction", &json!({"Data": {}, "Metadata": {}}))
        .await;
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"));
    assert!(body["detail"].as_str().unwrap().contains("NoSuchFunction"));
}

#[tokio::test]
async fn timer_invocations_get_a_json_object_reply() {
    let app = spawn_serve().await;
    for name in ["timer-invocation.json", "timer-invocation-first-run.json"] {
        let mut payload = fixture(name);
        let timer = payload["Data"]["myTimer"].take();
        payload["Data"] = json!({ "timer": timer });
        for function in ["GenerateDailyQuiz", "DispatchOutbox"] {
            let (status, ct, body) = app.invoke(function, &payload).await;
            assert_eq!(
                (status, ct.as_str()),
                (200, "application/json"),
                "{function}: {body}"
            );
            assert!(
                body.is_object() && body["Logs"].is_array(),
                "{function}: {body}"
            );
        }
    }
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM quiz_quizzes"),
        1,
        "the timer is idempotent"
    );
}

#[tokio::test]
async fn service_bus_fixtures_are_acknowledged_and_unreadable_messages_are_poisoned() {
    let app = spawn_serve().await;
    // The fixtures carry a QuizAttemptEvaluated event: delivered to the UserRegistered consumer
    // it is of the wrong kind. It must be acknowledged (2xx, so no endless redelivery) and kept
    // as poison.
    for name in [
        "servicebus-topic-invocation.json",
        "servicebus-topic-invocation-binary.json",
    ] {
        let (status, ct, body) = app
            .invoke("LeaderboardOnUserRegistered", &fixture(name))
            .await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/json"),
            "{name}: {body}"
        );
        assert!(
            body["Logs"][0].as_str().unwrap().contains("poison"),
            "{body}"
        );
    }
    assert_eq!(
        app.db_count(
            "SELECT COUNT(*) FROM platform_poison WHERE consumer = 'leaderboard.user-registered'"
        ),
        2
    );

    // A real event, double-encoded exactly like the fixture's body.
    let event = json!({"id": "01900000-0000-7000-8000-0000000000aa", "source": "/qotd", "specversion": "1.0",
        "type": "qotd.UserRegistered.v1", "time": "2026-11-27T00:00:00.000Z", "subject": "users/zoe", "datacontenttype": "application/json",
        "data": {"userId": "zoe", "displayName": "Zoë", "registeredAt": "2026-11-27T00:00:00.000Z"}});
    let mut payload = fixture("servicebus-topic-invocation.json");
    payload["Data"]["message"] = json!(serde_json::to_string(&event.to_string()).unwrap());
    let (status, _, body) = app.invoke("LeaderboardOnUserRegistered", &payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM leaderboard_players WHERE display_name = 'Zoë'"),
        1
    );
}

/// `"cardinality": "many"`: one host-shaped invocation carries five messages (the same event
/// twice, an unreadable one, another player's, and a second attempt by the first player for
/// the same day). Each is handled on its own: two count, the duplicate counts once, the
/// unreadable one and the second attempt are poison, and the batch as a whole is acknowledged.
/// A redelivery of the whole batch changes no score.
#[tokio::test]
async fn a_host_shaped_batch_applies_each_event_once_and_poisons_only_the_bad_ones() {
    let app = spawn_serve().await;
    let payload = fixture("servicebus-topic-invocation-batch.json");
    let scores = |app: &TestApp| {
        (
            app.db_count("SELECT COALESCE(SUM(score), 0) FROM leaderboard_scores WHERE period_key = 'day:2026-02-10'"),
            app.db_count("SELECT COUNT(*) FROM leaderboard_scores WHERE period_key = 'day:2026-02-10'"),
            app.db_count("SELECT COALESCE(SUM(players), 0) FROM leaderboard_histogram WHERE period_key = 'day:2026-02-10'"),
            app.db_count("SELECT total_score FROM leaderboard_players WHERE user_id = '8e41d7a2-3c56-4f0b-9a17-d2c64b8e5f30'"),
        )
    };
    for delivery in 1..=2 {
        let (status, ct, body) = app.invoke("LeaderboardOnAttemptEvaluated", &payload).await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/json"),
            "delivery {delivery}: {body}"
        );
        assert_eq!(scores(&app), (70, 2, 2, 40), "delivery {delivery}: {body}");
        assert_eq!(
            app.db_count("SELECT COUNT(*) FROM platform_inbox WHERE consumer = 'leaderboard.quiz-attempt-evaluated'"),
            2,
            "one inbox row per applied event, none for the refused one"
        );
        assert_eq!(
            app.db_count("SELECT COUNT(*) FROM platform_poison WHERE consumer = 'leaderboard.quiz-attempt-evaluated'"),
            2 * delivery,
            "delivery {delivery}: the unreadable message and the second attempt, each on its own"
        );
    }
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_poison WHERE message_id = '019c467f-7b02-7e19-a3d5-6f2c8e4b1a97' AND reason LIKE '%already has an attempt%'"),
        2
    );
}

#[tokio::test]
async fn a_chunked_invocation_without_content_length_is_accepted() {
    let app = spawn_serve().await;
    let body = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let (first, rest) = (first.to_owned(), rest.to_owned());
    let addr = app.handler.trim_start_matches("http://").to_owned();
    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /DispatchOutbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
            first.len(),
            rest.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response}"
    );
    assert!(response.contains("\"Logs\""), "{response}");
}

#[tokio::test]
async fn http_functions_also_work_through_the_non_forwarded_json_protocol() {
    let app = spawn_serve().await;
    let token = app.token("nf-user", &[]);
    let mut payload = fixture("http-invocation-nonforwarded.json");
    payload["Data"]["req"]["Url"] = json!("https://qotd.example/api/users/me");
    payload["Data"]["req"]["Method"] = json!("POST");
    payload["Data"]["req"]["Headers"]["Authorization"] = json!([format!("Bearer {token}")]);
    payload["Data"]["req"]["Body"] = json!(r#"{"displayName":"Nia"}"#);
    let (status, ct, body) = app.invoke("UsersMe", &payload).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 201, "{body}");
    assert_eq!(res["headers"]["content-type"], "application/json");
    let profile: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(profile["displayName"], "Nia");
}

#[tokio::test]
async fn an_unparsable_invocation_body_gets_a_json_object_error() {
    let app = spawn_serve().await;
    let res = app
        .http
        .post(format!("{}/DispatchOutbox", app.handler))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["Logs"][0].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn a_database_outage_fails_the_invocation_so_the_host_redelivers() {
    let app = spawn_serve().await;
    let event = json!({"id": "01900000-0000-7000-8000-0000000000bb", "source": "/qotd", "specversion": "1.0",
        "type": "qotd.UserRegistered.v1", "time": "2026-11-27T00:00:00.000Z", "subject": "users/ola", "datacontenttype": "application/json",
        "data": {"userId": "ola", "displayName": "Ola", "registeredAt": "2026-11-27T00:00:00.000Z"}});
    let payload = json!({"Data": {"message": serde_json::to_string(&event.to_string()).unwrap()}, "Metadata": {"DeliveryCount": "1"}});
    // Another process holds the write lock longer than the handler's 5 s busy timeout.
    let db = app.data_dir.join("qotd.db");
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, ct, body) = app.invoke("LeaderboardOnUserRegistered", &payload).await;
    assert_eq!((status, ct.as_str()), (500, "application/json"), "{body}");
    assert!(body.is_object());
    locker.execute_batch("ROLLBACK").unwrap();
    let (status, _, body) = app.invoke("LeaderboardOnUserRegistered", &payload).await;
    assert_eq!(status, 200, "the redelivery succeeds: {body}");
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM leaderboard_players WHERE user_id = 'ola'"),
        1
    );
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_poison"),
        0,
        "an outage is not poison"
    );
}

#[tokio::test]
async fn every_function_in_function_json_has_a_handler() {
    use qotd::platform::functions::manifest::{FunctionApp, Trigger};
    let app = spawn_serve().await;
    let admin = app.token("root", &["admin"]);
    for f in FunctionApp::embedded().unwrap().functions {
        match &f.trigger {
            Trigger::Http { methods, route, .. } => {
                let path = format!("/{}", route.replace("{date}", "2026-01-01"));
                let method = reqwest::Method::from_bytes(methods[0].as_str().as_bytes()).unwrap();
                let (status, body) = app.call(method, &path, Some(&admin), None).await;
                assert!(status < 500, "{}: {status} {body}", f.name);
            }
            Trigger::Timer { binding, .. } | Trigger::ServiceBus { binding, .. } => {
                let payload =
                    json!({"Data": {binding.as_str(): {"IsPastDue": false}}, "Metadata": {}});
                let (status, _, body) = app.invoke(&f.name, &payload).await;
                assert!(
                    !body.to_string().contains("has no handler"),
                    "{}: {body}",
                    f.name
                );
                assert_eq!(status, 200, "{}: {body}", f.name);
            }
        }
    }
}
