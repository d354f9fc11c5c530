//! Fake App Service / Functions managed-identity endpoints (`IDENTITY_ENDPOINT` +
//! `IDENTITY_HEADER`, api-version 2019-08-01;
//! https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference):
//! a recording one that issues tokens (with a Service Bus sink on the same server), one that
//! refuses every request, and one that refuses the first few. The process-wide endpoint the SQL
//! token tests share is in `token_endpoint.rs`.

use super::form_decode;
use chrono::Utc;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use warp::Filter;
use warp::http::Response;

/// The secret the endpoint expects in `X-IDENTITY-HEADER`.
pub const IDENTITY_HEADER: &str = "local-identity-header-value";

/// Short-lived tokens (inside azure_identity's five-minute refresh window) for this resource.
pub const SHORT_LIVED_RESOURCE: &str = "https://cognitiveservices.azure.com";

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub query: HashMap<String, String>,
    pub identity_header: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub token_requests: Vec<TokenRequest>,
    pub issued: usize,
    /// Authorization headers the Service Bus route saw.
    pub sends: Vec<String>,
}

/// The managed-identity endpoint at `/msi/token` (401 without [`IDENTITY_HEADER`], tokens
/// `mi-token-<n>` living an hour, or two minutes for [`SHORT_LIVED_RESOURCE`]) and, on the same
/// server, a Service Bus `POST /{topic}/messages` that answers 201 and records the
/// `Authorization` header. Every token request is recorded in `state`.
pub fn routes(
    state: Arc<Mutex<State>>,
) -> impl Filter<Extract = (Response<String>,), Error = warp::Rejection> + Clone {
    let s1 = state.clone();
    let token = warp::get()
        .and(warp::path!("msi" / "token"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("x-identity-header"))
        .map(move |raw: String, identity_header: Option<String>| {
            let query: HashMap<String, String> = raw
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (form_decode(k), form_decode(v)))
                .collect();
            let mut s = s1.lock().unwrap();
            s.token_requests.push(TokenRequest {
                query: query.clone(),
                identity_header: identity_header.clone(),
            });
            if identity_header.as_deref() != Some(IDENTITY_HEADER) {
                return Response::builder()
                    .status(401)
                    .header("content-type", "application/json")
                    .body(json!({"statusCode": 401, "message": "Unauthorized. Missing or invalid X-IDENTITY-HEADER."}).to_string())
                    .unwrap();
            }
            let resource = query.get("resource").cloned().unwrap_or_default();
            s.issued += 1;
            let lifetime = if resource == SHORT_LIVED_RESOURCE { 120 } else { 3600 };
            let body = json!({
                "access_token": format!("mi-token-{}", s.issued),
                "expires_on": (Utc::now().timestamp() + lifetime).to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": query.get("client_id"),
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(body.to_string())
                .unwrap()
        });
    let s2 = state;
    let servicebus = warp::post()
        .and(warp::path!(String / "messages"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::bytes())
        .map(
            move |_topic: String, auth: Option<String>, _body: bytes::Bytes| {
                s2.lock().unwrap().sends.push(auth.unwrap_or_default());
                Response::builder().status(201).body(String::new()).unwrap()
            },
        );
    token.or(servicebus).unify()
}

/// An App Service / Functions managed-identity endpoint that refuses every token request, as
/// when the app's identity has not been assigned yet. Returns its URL and the request counter.
pub async fn failing_token_endpoint() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let route = warp::any().map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        warp::reply::with_status(
            warp::reply::json(&json!({
                "statusCode": 400,
                "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
            })),
            warp::http::StatusCode::BAD_REQUEST,
        )
    });
    let url = format!("{}/msi/token", serve_on_loopback!(route));
    (url, calls)
}

/// A managed-identity endpoint that refuses the first `failures` token requests (400, as while
/// a new identity's assignment propagates), then issues tokens.
pub async fn flaky_token_endpoint(failures: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let route = warp::any().map(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n < failures {
            return warp::http::Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(json!({"statusCode": 400, "message": "Identity not found"}).to_string())
                .unwrap();
        }
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        warp::http::Response::builder()
            .header("content-type", "application/json")
            .body(
                json!({
                    "access_token": "sql-token",
                    "expires_on": expires.to_string(),
                    "resource": "https://database.windows.net",
                    "token_type": "Bearer",
                })
                .to_string(),
            )
            .unwrap()
    });
    let url = format!("{}/msi/token", serve_on_loopback!(route));
    (url, calls)
}
