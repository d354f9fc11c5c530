//! With Azure settings present, `qotd serve` uses the Azure adapters instead of the embedded
//! defaults: here Service Bus (a local mock speaking the REST shape), reached through the real
//! outbox dispatcher.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp::Filter;

#[derive(Default, Clone)]
struct Received {
    paths: Vec<String>,
    broker_properties: Vec<String>,
    authorization: Vec<String>,
}

#[tokio::test]
async fn events_go_to_service_bus_when_it_is_configured() {
    let received = Arc::new(Mutex::new(Received::default()));
    let r = received.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath,
                  headers: warp::http::HeaderMap,
                  _body: bytes::Bytes| {
                let mut r = r.lock().unwrap();
                r.paths.push(path.as_str().to_owned());
                let h = |n: &str| {
                    headers
                        .get(n)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                r.broker_properties.push(h("brokerproperties"));
                r.authorization.push(h("authorization"));
                warp::reply::with_status("", warp::http::StatusCode::CREATED)
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());

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
    let calls = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let c = calls.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("api-key"))
        .map(move |path: warp::path::FullPath, query: String, key: Option<String>| {
            c.lock().unwrap().push((format!("{}?{query}", path.as_str()), key.unwrap_or_default()));
            warp::reply::with_status(
                warp::reply::json(&json!({"error": {"code": "InternalServerError", "message": "The server had an error"}})),
                warp::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());

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
