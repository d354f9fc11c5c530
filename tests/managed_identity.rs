//! The shared credential factory's managed identity against a local endpoint
//! (`support/managed_identity.rs`) that speaks the App Service / Functions managed identity
//! protocol (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, api-version 2019-08-01;
//! https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference),
//! and the Service Bus publisher using the token it returns.
//!
//! This binary holds a single test: it sets the two environment variables before any thread or
//! credential exists, which is what makes `set_var` sound here.

mod support;

use qotd::platform::identity::CredentialKind;
use qotd::platform::outbox::EventPublisher;
use qotd::platform::servicebus::{ServiceBusPublisher, ServiceBusSettings};
use qotd::platform::store::PendingEvent;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::managed_identity::{IDENTITY_HEADER, SHORT_LIVED_RESOURCE, State, routes};

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
