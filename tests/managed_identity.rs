//! The shared credential factory's managed identity against a local endpoint that speaks the
//! App Service / Functions managed identity protocol (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`,
//! api-version 2019-08-01; https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference), and the Service Bus
//! publisher using the token it returns.
//!
//! This binary holds a single test: it sets the two environment variables before any thread or
//! credential exists, which is what makes `set_var` sound here.

use chrono::Utc;
use qotd::platform::identity::CredentialKind;
use qotd::platform::outbox::EventPublisher;
use qotd::platform::servicebus::{ServiceBusPublisher, ServiceBusSettings};
use qotd::platform::store::PendingEvent;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use warp::Filter;
use warp::http::Response;

const IDENTITY_HEADER: &str = "local-identity-header-value";

/// Short-lived tokens (inside azure_identity's five-minute refresh window) for this resource.
const SHORT_LIVED_RESOURCE: &str = "https://cognitiveservices.azure.com";

#[derive(Debug, Clone)]
struct TokenRequest {
    query: HashMap<String, String>,
    identity_header: Option<String>,
}

#[derive(Default)]
struct State {
    token_requests: Vec<TokenRequest>,
    issued: usize,
    /// Authorization headers the Service Bus route saw.
    sends: Vec<String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn routes(
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
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
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

#[test]
fn managed_identity_sends_the_documented_request_and_caches_until_near_expiry() {
    // Before any thread, runtime or credential exists.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // SAFETY: this test binary has exactly one test, and nothing else runs yet: no other thread
    // reads or writes the environment while these are set.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", format!("{base}/msi/token"));
        std::env::set_var("IDENTITY_HEADER", IDENTITY_HEADER);
    }
    listener.set_nonblocking(true).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(warp::serve(routes(state.clone())).incoming(listener).run());

        let credential = CredentialKind::ManagedIdentity {
            client_id: Some("cid-123".into()),
        }
        .build()
        .expect("managed identity credential");

        // The documented request.
        let first = credential
            .get_token(&["https://servicebus.azure.net/.default"], None)
            .await
            .expect("token");
        assert_eq!(first.token.secret(), "mi-token-1");
        {
            let s = state.lock().unwrap();
            assert_eq!(s.token_requests.len(), 1);
            let r = &s.token_requests[0];
            assert_eq!(
                r.query.get("api-version").map(String::as_str),
                Some("2019-08-01")
            );
            assert_eq!(
                r.query.get("resource").map(String::as_str),
                Some("https://servicebus.azure.net"),
                "the scope becomes a v1 resource"
            );
            assert_eq!(
                r.query.get("client_id").map(String::as_str),
                Some("cid-123")
            );
            assert_eq!(r.identity_header.as_deref(), Some(IDENTITY_HEADER));
        }

        // Reused: several calls, sequential and concurrent, one endpoint hit.
        for _ in 0..3 {
            let t = credential
                .get_token(&["https://servicebus.azure.net/.default"], None)
                .await
                .unwrap();
            assert_eq!(t.token.secret(), "mi-token-1");
        }
        let concurrent = futures_util::future::join_all(
            (0..8).map(|_| credential.get_token(&["https://servicebus.azure.net/.default"], None)),
        )
        .await;
        assert!(
            concurrent
                .iter()
                .all(|t| t.as_ref().unwrap().token.secret() == "mi-token-1")
        );
        assert_eq!(
            state.lock().unwrap().token_requests.len(),
            1,
            "served from the cache"
        );

        // A token expiring within five minutes is replaced on the next call.
        let short = credential
            .get_token(&[&format!("{SHORT_LIVED_RESOURCE}/.default")], None)
            .await
            .unwrap();
        assert_eq!(short.token.secret(), "mi-token-2");
        let again = credential
            .get_token(&[&format!("{SHORT_LIVED_RESOURCE}/.default")], None)
            .await
            .unwrap();
        assert_eq!(
            again.token.secret(),
            "mi-token-3",
            "refreshed: it expires within 5 minutes"
        );
        {
            let s = state.lock().unwrap();
            assert_eq!(s.token_requests.len(), 3);
            assert_eq!(
                s.token_requests[2]
                    .query
                    .get("resource")
                    .map(String::as_str),
                Some(SHORT_LIVED_RESOURCE)
            );
        }
        // The long-lived Service Bus token is still cached.
        let sb = credential
            .get_token(&["https://servicebus.azure.net/.default"], None)
            .await
            .unwrap();
        assert_eq!(sb.token.secret(), "mi-token-1");
        assert_eq!(state.lock().unwrap().token_requests.len(), 3);

        // The Service Bus publisher built from identity settings gets its token the same way
        // (ServiceBusConnection__clientId selects the user-assigned identity).
        let vars: HashMap<&str, String> = HashMap::from([
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "qotd-test.servicebus.windows.net".to_owned(),
            ),
            ("ServiceBusConnection__clientId", "cid-sb".to_owned()),
            ("QOTD_SERVICEBUS_ENDPOINT", base.clone()),
        ]);
        let settings = ServiceBusSettings::from_lookup(|k| vars.get(k).cloned())
            .unwrap()
            .unwrap();
        let publisher = ServiceBusPublisher::new(&settings, reqwest::Client::new()).unwrap();
        let event = |id: &str| PendingEvent {
            seq: 1,
            event_id: id.to_owned(),
            topic: "user-registered".into(),
            subject: "users/u-1".into(),
            event_type: "qotd.UserRegistered.v1".into(),
            correlation_id: None,
            payload: json!({"id": id}).to_string(),
            attempts: 0,
        };
        publisher
            .publish(
                "user-registered",
                &[event("0190f1a2-3b4c-7d5e-8f60-718293a4b5c6")],
            )
            .await
            .expect("published with the managed identity token");
        publisher
            .publish(
                "user-registered",
                &[event("0190f1a2-3b4c-7d5e-8f60-718293a4b5c7")],
            )
            .await
            .unwrap();
        let s = state.lock().unwrap();
        assert_eq!(s.sends, vec!["Bearer mi-token-4", "Bearer mi-token-4"]);
        assert_eq!(
            s.token_requests.len(),
            4,
            "one more token request for the new credential"
        );
        let r = &s.token_requests[3];
        assert_eq!(r.query.get("client_id").map(String::as_str), Some("cid-sb"));
        assert_eq!(
            r.query.get("resource").map(String::as_str),
            Some("https://servicebus.azure.net")
        );
    });
}
