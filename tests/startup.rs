//! Start-up that survives a sick dependency: `qotd serve` with an Azure SQL connection string
//! whose server port is closed and whose managed-identity token endpoint fails. The handler
//! must answer the host's readiness probe (`GET /`) at once, report the database as down with
//! the reason on `/api/health`, answer 503 + `Retry-After` to requests that need the database,
//! and fail trigger invocations (so the host redelivers) while it keeps connecting in the
//! background.

mod support;

use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::closed_port;
use support::managed_identity::{failing_token_endpoint, flaky_token_endpoint};

/// The `detail` of `/api/health` once it contains `wanted` (or the last one after 20 s).
async fn health_detail_containing(app: &support::app::TestApp, wanted: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.http.get(app.url("/api/health")).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        if detail.contains(wanted) || Instant::now() > deadline {
            return (status, detail);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_answers_at_once_and_reports_an_unreachable_database() {
    let (token_url, token_calls) = failing_token_endpoint().await;
    let database = format!(
        "Server=tcp:127.0.0.1,{};Database=qotd;Authentication=Active Directory Managed Identity",
        closed_port()
    );
    let app = support::app::spawn_serve_with(&[
        ("QOTD_DATABASE_URL", database.as_str()),
        ("IDENTITY_ENDPOINT", token_url.as_str()),
        ("IDENTITY_HEADER", "local-identity-header"),
        ("QOTD_CATCH_UP_ON_START", "true"),
    ])
    .await;
    let ready_after = app.ready_in;
    assert!(
        ready_after < Duration::from_secs(1),
        "GET / answered only after {ready_after:?}"
    );

    // /api/health: 503 problem+json naming the database and the token failure.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, content_type, retry_after, body) = loop {
        let res = app.http.get(app.url("/api/health")).send().await.unwrap();
        let status = res.status().as_u16();
        let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let (ct, ra) = (header("content-type"), header("retry-after"));
        let body: Value = res.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        if detail.contains("Entra token") || Instant::now() > deadline {
            break (status, ct, ra, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(retry_after.is_some());
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("database: ")
            && detail.contains("cannot get an Entra token for Azure SQL"),
        "{detail}"
    );
    assert!(token_calls.load(Ordering::SeqCst) >= 1);

    // A request that needs the database: 503 with Retry-After.
    let token = app.token("alice", &[]);
    let res = app
        .http
        .get(app.url("/api/quizzes/today"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.headers().get("retry-after").is_some());

    // A trigger invocation fails, so the host redelivers instead of acknowledging.
    let (status, _, body) = app
        .invoke(
            "LeaderboardOnUserRegistered",
            &json!({ "Data": { "message": "{}" }, "Metadata": {} }),
        )
        .await;
    assert!(!(200..300).contains(&status), "{status} {body}");
    let (status, _, _) = app
        .invoke(
            "DispatchOutbox",
            &json!({ "Data": { "timer": {} }, "Metadata": {} }),
        )
        .await;
    assert!(!(200..300).contains(&status));

    // Still serving the probe while the background connection keeps failing.
    let res = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn the_background_connection_retries_a_token_endpoint_that_fails_twice() {
    let (token_url, token_calls) = flaky_token_endpoint(2).await;
    let port = closed_port();
    let database = format!(
        "Server=tcp:127.0.0.1,{port};Database=qotd;Authentication=Active Directory Managed Identity"
    );
    let app = support::app::spawn_serve_with(&[
        ("QOTD_DATABASE_URL", database.as_str()),
        ("IDENTITY_ENDPOINT", token_url.as_str()),
        ("IDENTITY_HEADER", "local-identity-header"),
    ])
    .await;
    assert!(app.ready_in < Duration::from_secs(1), "{:?}", app.ready_in);
    // First the token failures are reported, then, with a token, the closed port.
    let (status, detail) = health_detail_containing(&app, "cannot connect to").await;
    assert_eq!(status, 503);
    assert!(
        detail.starts_with("database: cannot connect to 127.0.0.1:"),
        "{detail}"
    );
    assert!(
        token_calls.load(Ordering::SeqCst) >= 3,
        "two refused token requests, then a token"
    );
}
