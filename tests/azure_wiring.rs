//! With Azure settings present, `qotd serve` uses the Azure adapters instead of the embedded
//! defaults: here Service Bus (a local mock speaking the REST shape), reached through the real
//! outbox dispatcher, and Azure OpenAI (a local endpoint that always fails). The fakes are in
//! `support/servicebus.rs` and `support/openai.rs`.

mod support;

use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use support::app::*;
use support::{openai, servicebus};

#[tokio::test]
async fn events_go_to_service_bus_when_it_is_configured() {
    let (mock, received) = servicebus::recording_sink().await;

    let app = spawn_serve_with(&[
        ("ServiceBusConnection", "Endpoint=sb://qotd-test.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleQ=="),
        ("QOTD_SERVICEBUS_ENDPOINT", &mock),
    ])
    .await;
    let token = app.token("sb-user", &[]);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users/me",
            Some(&token),
            Some(json!({ "displayName": "Sam" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let got = eventually(Duration::from_secs(15), || async {
        let r = received.lock().unwrap().clone();
        r.paths
            .iter()
            .any(|p| p == "/user-registered/messages")
            .then_some(r)
    })
    .await;
    let i = got
        .paths
        .iter()
        .position(|p| p == "/user-registered/messages")
        .unwrap();
    assert!(
        got.broker_properties[i].contains("\"MessageId\""),
        "{:?}",
        got.broker_properties[i]
    );
    assert!(
        got.authorization[i].starts_with("SharedAccessSignature sr="),
        "{:?}",
        got.authorization[i]
    );
    // The broker's 201 reaches the dispatcher just after the mock saw the request.
    eventually(Duration::from_secs(10), || async {
        let pending = app.db_count("SELECT COUNT(*) FROM platform_outbox WHERE topic = 'user-registered' AND sent_at IS NULL");
        (pending == 0).then_some(())
    })
    .await;
    // The local bus is not used: the leaderboard consumer was not invoked in-process.
    assert_eq!(app.db_count("SELECT COUNT(*) FROM platform_inbox"), 0);
}

#[tokio::test]
async fn quizzes_come_from_azure_openai_when_configured_and_fall_back_to_the_bank() {
    let (mock, calls) = openai::always_failing().await;

    let app = spawn_serve_with(&[
        ("QOTD_OPENAI_ENDPOINT", &mock),
        ("QOTD_OPENAI_DEPLOYMENT", "quiz-gpt"),
        ("QOTD_OPENAI_API_KEY", "test-key-123"),
        ("QOTD_OPENAI_MAX_SECONDS", "5"),
    ])
    .await;
    let token = app.token("ai-user", &[]);
    let quiz = eventually(Duration::from_secs(30), || async {
        let (status, body) = app.get("/api/quizzes/today", &token).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(
        quiz["source"], "bank",
        "every call failed, so the bank served the day"
    );
    let calls = calls.lock().unwrap().clone();
    assert!(!calls.is_empty(), "the OpenAI endpoint was called");
    // No api-version set: the v1 API, with no query string.
    assert_eq!(calls[0].0, "/openai/v1/chat/completions?", "{calls:?}");
    assert_eq!(calls[0].1, "test-key-123");
    assert_eq!(
        app.db_count(
            "SELECT COUNT(*) FROM quiz_quizzes WHERE provenance LIKE '%\"fallbackReason\":\"%'"
        ),
        1,
        "the fallback reason is recorded with the quiz"
    );
}
