//! The Service Bus publisher against a local server (`support/servicebus.rs`) that behaves like
//! the Service Bus REST endpoint (https://learn.microsoft.com/rest/api/servicebus/send-message-batch):
//! `POST /{topic}/messages`, SAS signatures checked with the key, bearer tokens compared, 201 on
//! success, XML error bodies, throttling with `Retry-After`, duplicate detection by `MessageId`,
//! unknown entities, slow answers.

mod support;

use chrono::Utc;
use qotd::kernel::events::{EventType, UserRegisteredV1};
use qotd::kernel::{DisplayName, UserId};
use qotd::platform::clock::SystemClock;
use qotd::platform::events::NewEvent;
use qotd::platform::outbox::{Dispatcher, EventPublisher, PUBLISH_POISON, PublishError};
use qotd::platform::servicebus::{
    BATCH_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE, MAX_BATCH_BYTES, RetryPolicy, SCOPE,
    ServiceBusPublisher, ServiceBusSettings, traceparent,
};
use qotd::platform::store::{self, DatabaseUrl, PendingEvent};
use qotd::users::{Profile, Registration};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::credential::FakeCredential;
use support::servicebus::{
    ExpectedAuth, KEY, KEY_NAME, Mock, NAMESPACE, Reply, check_sas, error_reply, unquote,
};
use warp::http::Method;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn settings(vars: &[(&str, &str)]) -> ServiceBusSettings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServiceBusSettings::from_lookup(|k| map.get(k).cloned())
        .expect("valid settings")
        .expect("configured")
}

fn sas_settings(mock: &Mock) -> ServiceBusSettings {
    settings(&[
        (
            "ServiceBusConnection",
            &format!(
                "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}"
            ),
        ),
        ("QOTD_SERVICEBUS_ENDPOINT", &mock.base),
    ])
}

fn identity_settings(mock: &Mock) -> ServiceBusSettings {
    settings(&[
        ("ServiceBusConnection__fullyQualifiedNamespace", NAMESPACE),
        ("ServiceBusConnection__clientId", "cid-sb"),
        ("QOTD_SERVICEBUS_ENDPOINT", &mock.base),
    ])
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        total_budget: Duration::from_secs(5),
    }
}

fn sas_publisher(mock: &Mock) -> ServiceBusPublisher {
    ServiceBusPublisher::new(&sas_settings(mock), reqwest::Client::new())
        .unwrap()
        .with_policy(quick_policy())
        .with_request_timeout(Duration::from_secs(2))
}

fn bearer_publisher(mock: &Mock, credential: Arc<FakeCredential>) -> ServiceBusPublisher {
    ServiceBusPublisher::with_credential(
        &identity_settings(mock),
        reqwest::Client::new(),
        credential,
    )
    .with_policy(quick_policy())
    .with_request_timeout(Duration::from_secs(2))
}

fn event(topic: &str, correlation_id: Option<&str>, data_bytes: usize) -> PendingEvent {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = json!({
        "id": id,
        "source": "/qotd",
        "specversion": "1.0",
        "type": "qotd.UserRegistered.v1",
        "time": "2026-01-01T00:00:00.000Z",
        "subject": "users/u-1",
        "datacontenttype": "application/json",
        "data": { "userId": "u-1", "displayName": "Ada", "pad": "x".repeat(data_bytes) },
    })
    .to_string();
    PendingEvent {
        seq: 1,
        event_id: id,
        topic: topic.to_owned(),
        subject: "users/u-1".into(),
        event_type: "qotd.UserRegistered.v1".into(),
        correlation_id: correlation_id.map(str::to_owned),
        payload,
        attempts: 0,
    }
}

fn assert_traceparent(value: &str) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1].len(), 32);
    assert_eq!(parts[2].len(), 16);
    assert_eq!(parts[3], "01");
    assert!(
        parts[1..3].iter().all(|p| p
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())),
        "{value}"
    );
    assert!(parts[1].chars().any(|c| c != '0') && parts[2].chars().any(|c| c != '0'));
}

// ---------------------------------------------------------------------------------------------
// Request shape
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn single_message_with_sas_has_the_documented_shape() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let publisher = sas_publisher(&mock);
    let corr = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
    let ev = event("user-registered", Some(corr), 10);
    publisher
        .publish("user-registered", std::slice::from_ref(&ev))
        .await
        .expect("published");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/user-registered/messages");
    assert_eq!(r.header("content-type"), CLOUDEVENTS_CONTENT_TYPE);
    assert_eq!(r.body, ev.payload.as_bytes());
    let props: Value = serde_json::from_str(r.header("brokerproperties")).unwrap();
    assert_eq!(
        props,
        json!({ "MessageId": ev.event_id, "Label": "qotd.UserRegistered.v1", "CorrelationId": corr })
    );
    let tp = unquote(r.header("traceparent"));
    assert_traceparent(tp);
    assert_eq!(
        unquote(r.header("diagnostic-id")),
        tp,
        "Diagnostic-Id carries the same trace context"
    );
    assert!(
        tp.starts_with("00-6f9619ff8b86d011b42d00cf4fc964ff-"),
        "trace id from the correlation id: {tp}"
    );
    assert_eq!(tp, traceparent(Some(corr), &ev.event_id));
    let auth = r.header("authorization");
    assert!(auth.starts_with("SharedAccessSignature sr="), "{auth}");
    assert!(
        auth.contains("sr=https%3A%2F%2Fqotd-test.servicebus.windows.net%2Fuser-registered&"),
        "{auth}"
    );
    assert!(auth.contains(&format!("&skn={KEY_NAME}")), "{auth}");
    check_sas(auth, "user-registered").expect("the mock accepted the signature");
    assert_eq!(
        mock.enqueued(),
        vec![("user-registered".to_owned(), ev.event_id.clone())]
    );

    // The SAS token is cached: the next publish to the topic reuses it.
    let ev2 = event("user-registered", None, 10);
    publisher
        .publish("user-registered", std::slice::from_ref(&ev2))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs[1].header("authorization"), auth);
    let props: Value = serde_json::from_str(reqs[1].header("brokerproperties")).unwrap();
    assert_eq!(
        props,
        json!({ "MessageId": ev2.event_id, "Label": "qotd.UserRegistered.v1" }),
        "no CorrelationId when the event has none"
    );
    // Without a UUID correlation id the trace id comes from the event id.
    let tp2 = unquote(reqs[1].header("traceparent"));
    assert!(
        tp2.starts_with(&format!("00-{}-", ev2.event_id.replace('-', ""))),
        "{tp2}"
    );
}

#[tokio::test]
async fn batch_with_bearer_token_has_the_documented_shape() {
    let mock = Mock::start(ExpectedAuth::Bearer("entra-token-1".into())).await;
    let credential = FakeCredential::new("entra-token-1");
    let publisher = bearer_publisher(&mock, credential.clone());
    let events = vec![
        event("daily-quiz-generated", Some("corr-not-a-uuid"), 10),
        event("daily-quiz-generated", None, 10),
        event(
            "daily-quiz-generated",
            Some("0123456789ABCDEF0123456789abcdef"),
            10,
        ),
    ];
    publisher
        .publish("daily-quiz-generated", &events)
        .await
        .expect("published");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1, "three events, one batch request");
    let r = &reqs[0];
    assert_eq!(r.path, "/daily-quiz-generated/messages");
    assert_eq!(r.header("authorization"), "Bearer entra-token-1");
    assert_eq!(r.header("content-type"), BATCH_CONTENT_TYPE);
    assert!(r.headers.get("brokerproperties").is_none());
    let items: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(items.len(), 3);
    for (item, ev) in items.iter().zip(&events) {
        let keys: HashSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["Body", "BrokerProperties", "UserProperties"])
        );
        assert_eq!(item["Body"], Value::String(ev.payload.clone()));
        assert_eq!(
            item["BrokerProperties"]["MessageId"],
            Value::String(ev.event_id.clone())
        );
        assert_eq!(item["BrokerProperties"]["Label"], "qotd.UserRegistered.v1");
        match &ev.correlation_id {
            Some(c) => assert_eq!(
                item["BrokerProperties"]["CorrelationId"],
                Value::String(c.clone())
            ),
            None => assert!(item["BrokerProperties"].get("CorrelationId").is_none()),
        }
        let tp = item["UserProperties"]["traceparent"].as_str().unwrap();
        assert_traceparent(tp);
        assert_eq!(item["UserProperties"]["Diagnostic-Id"], tp);
        assert_eq!(tp, traceparent(ev.correlation_id.as_deref(), &ev.event_id));
    }
    assert!(
        items[2]["UserProperties"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-0123456789abcdef0123456789abcdef-")
    );
    assert_eq!(
        credential.requests().as_slice(),
        &[vec![SCOPE.to_owned()]],
        "one token request with the Service Bus scope"
    );
    assert_eq!(mock.enqueued().len(), 3);
}

#[tokio::test]
async fn batches_are_split_under_the_size_budget() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let publisher = sas_publisher(&mock);
    let mut events: Vec<PendingEvent> = (0..24)
        .map(|_| event("quiz-attempt-evaluated", None, 20_000))
        .collect();
    // One event too large to share a batch goes on its own, as a single message.
    events.insert(10, event("quiz-attempt-evaluated", None, MAX_BATCH_BYTES));
    publisher
        .publish("quiz-attempt-evaluated", &events)
        .await
        .expect("published");

    let reqs = mock.requests();
    assert!(reqs.len() >= 4, "{} requests", reqs.len());
    let mut sent_ids = Vec::new();
    for r in &reqs {
        let ct = r.header("content-type");
        if ct == BATCH_CONTENT_TYPE {
            assert!(
                r.body.len() <= MAX_BATCH_BYTES,
                "batch of {} bytes",
                r.body.len()
            );
        } else {
            // A group of one (the oversized event, or a remainder) is sent as a single message.
            assert_eq!(ct, CLOUDEVENTS_CONTENT_TYPE);
        }
        sent_ids.extend(r.messages().into_iter().map(|(id, _)| id));
    }
    let oversized = reqs
        .iter()
        .find(|r| r.messages()[0].0 == events[10].event_id)
        .unwrap();
    assert_eq!(oversized.header("content-type"), CLOUDEVENTS_CONTENT_TYPE);
    assert_eq!(oversized.body, events[10].payload.as_bytes());
    let expected: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(sent_ids, expected, "every event once, in outbox order");
}

// ---------------------------------------------------------------------------------------------
// Throttling, server errors, timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn throttled_then_accepted_honours_retry_after() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let publisher = sas_publisher(&mock);
    mock.script([error_reply(
        429,
        vec![("retry-after", "1".into())],
        "The request was terminated because the entity is being throttled. Please wait 1 seconds and try again.",
    )]);
    let ev = event("user-registered", Some("corr-1"), 10);
    let started = Instant::now();
    publisher
        .publish("user-registered", std::slice::from_ref(&ev))
        .await
        .expect("published after the throttle");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at - reqs[0].at;
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let ids: Vec<String> = reqs.iter().map(|r| r.messages()[0].0.clone()).collect();
    assert_eq!(
        ids,
        vec![ev.event_id.clone(), ev.event_id.clone()],
        "same MessageId on retry"
    );

    // `retry-after-ms` (as some Azure services send) is honoured too, for 503 ServerBusy.
    mock.script([error_reply(
        503,
        vec![("retry-after-ms", "300".into())],
        "ServerBusy: The server is busy.",
    )]);
    publisher
        .publish("user-registered", &[event("user-registered", None, 10)])
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs[3].at - reqs[2].at >= Duration::from_millis(300));
}

#[tokio::test]
async fn server_busy_storm_gives_up_as_transient_in_bounded_time() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    mock.set_default(error_reply(503, vec![], "ServerBusy: The server is busy."));
    let publisher = sas_publisher(&mock)
        .with_policy(RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            total_budget: Duration::from_secs(3),
        })
        .with_request_timeout(Duration::from_secs(1));
    let events = vec![
        event("user-registered", None, 10),
        event("user-registered", None, 10),
    ];
    let started = Instant::now();
    let e = publisher
        .publish("user-registered", &events)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(e, PublishError::Transient(_)), "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    assert!(elapsed < Duration::from_millis(3500), "took {elapsed:?}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4, "bounded attempts");
    // Backoff grows between attempts (50/100/200 ms with jitter of up to half).
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(25));
    assert!(reqs[3].at - reqs[2].at >= Duration::from_millis(100));
    for r in &reqs {
        let ids: Vec<String> = r.messages().into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids,
            vec![events[0].event_id.clone(), events[1].event_id.clone()]
        );
    }
    assert!(mock.enqueued().is_empty());
    assert_eq!(
        publisher.config_errors_reported(),
        0,
        "transient is not a config error"
    );

    // A Retry-After longer than the remaining budget ends the attempts at once.
    let mock = Mock::start(ExpectedAuth::Sas).await;
    mock.set_default(error_reply(
        429,
        vec![("retry-after", "30".into())],
        "Throttled.",
    ));
    let started = Instant::now();
    let e = sas_publisher(&mock)
        .publish("user-registered", &events)
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Throttled { .. }), "{e}");
    assert_eq!(
        e.retry_after(),
        Some(Duration::from_secs(30)),
        "the broker's wait is carried out"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn timeout_is_transient_and_the_retry_is_deduplicated() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    mock.set_default(Reply::Slow(Duration::from_secs(5)));
    let publisher = sas_publisher(&mock)
        .with_policy(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
            total_budget: Duration::from_secs(2),
        })
        .with_request_timeout(Duration::from_millis(300));
    let ev = event("user-registered", None, 10);
    let started = Instant::now();
    let e = publisher
        .publish("user-registered", std::slice::from_ref(&ev))
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Transient(_)), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.requests().len(), 3);

    // The broker had accepted the message although the answer never came; every resend carried
    // the same MessageId, so duplicate detection kept one copy.
    assert_eq!(
        mock.enqueued(),
        vec![("user-registered".to_owned(), ev.event_id.clone())]
    );
    assert_eq!(mock.duplicates_dropped(), 2);

    // One slow answer, then a quick one: the publish succeeds and still only one copy exists.
    let mock = Mock::start(ExpectedAuth::Sas).await;
    mock.script([Reply::Slow(Duration::from_secs(5))]);
    let publisher = sas_publisher(&mock).with_request_timeout(Duration::from_millis(300));
    let ev = event("user-registered", None, 10);
    publisher
        .publish("user-registered", std::slice::from_ref(&ev))
        .await
        .expect("second attempt answered");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].messages()[0].0, reqs[1].messages()[0].0);
    assert_eq!(mock.enqueued().len(), 1);
    assert_eq!(mock.duplicates_dropped(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let base = format!("http://127.0.0.1:{}", support::closed_port());
    let s = settings(&[
        ("ServiceBusConnection__fullyQualifiedNamespace", NAMESPACE),
        ("QOTD_SERVICEBUS_ENDPOINT", &base),
    ]);
    let publisher =
        ServiceBusPublisher::with_credential(&s, reqwest::Client::new(), FakeCredential::new("t"))
            .with_policy(RetryPolicy {
                max_attempts: 2,
                ..quick_policy()
            });
    let e = publisher
        .publish("user-registered", &[event("user-registered", None, 10)])
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Transient(_)), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unauthorized_is_a_config_error_logged_once_per_topic_and_status() {
    let mock = Mock::start(ExpectedAuth::Bearer("the-right-token".into())).await;
    let publisher = bearer_publisher(&mock, FakeCredential::new("a-wrong-token"));
    let events = vec![event("user-registered", None, 10)];

    let e = publisher
        .publish("user-registered", &events)
        .await
        .unwrap_err();
    match &e {
        PublishError::Config(m) => {
            assert!(m.contains("401"), "{m}");
            assert!(m.contains("'user-registered'"), "names the entity: {m}");
            assert!(m.contains("ExpiredToken"), "carries the body excerpt: {m}");
            assert!(!m.contains("a-wrong-token"), "never the token: {m}");
        }
        other => panic!("expected Config, got {other}"),
    }
    assert_eq!(publisher.config_errors_reported(), 1);
    assert_eq!(mock.requests().len(), 1, "no retries for 401");

    // The dispatcher retries later: the same failure is not logged again.
    let e = publisher
        .publish("user-registered", &events)
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Config(_)));
    assert_eq!(publisher.config_errors_reported(), 1, "logged once");
    assert_eq!(mock.requests().len(), 2);

    // Another topic is its own entity: one more line.
    let e = publisher
        .publish(
            "daily-quiz-generated",
            &[event("daily-quiz-generated", None, 10)],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Config(_)));
    assert_eq!(publisher.config_errors_reported(), 2);
    assert!(mock.enqueued().is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn unknown_topic_and_bad_request_are_config_errors() {
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let publisher = sas_publisher(&mock);
    let e = publisher
        .publish("no-such-topic", &[event("no-such-topic", None, 10)])
        .await
        .unwrap_err();
    match &e {
        PublishError::Config(m) => {
            assert!(m.contains("404") && m.contains("no-such-topic"), "{m}");
            assert!(m.contains("does not exist"), "{m}");
        }
        other => panic!("expected Config, got {other}"),
    }
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(publisher.config_errors_reported(), 1);

    mock.script([
        error_reply(
            400,
            vec![],
            "The received message (delivery-id:0, size:300000 bytes) exceeds the limit (262144 bytes) currently allowed on the link.",
        ),
        error_reply(410, vec![], "The messaging entity has been deleted."),
        error_reply(410, vec![], "The messaging entity has been deleted."),
        error_reply(403, vec![], "Unauthorized access. 'Send' claim(s) are required to perform this operation."),
    ]);
    let ev = [event("user-registered", None, 10)];
    // A 400 refuses the message itself, not the topic: it comes back as rejected.
    let e = publisher.publish("user-registered", &ev).await.unwrap_err();
    match &e {
        PublishError::Rejected { rejected } => {
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].event_id, ev[0].event_id);
            let m = &rejected[0].reason;
            assert!(m.contains("400") && m.contains("exceeds the limit"), "{m}");
        }
        other => panic!("expected Rejected, got {other}"),
    }
    for status in ["410", "410", "403"] {
        let e = publisher.publish("user-registered", &ev).await.unwrap_err();
        assert!(
            matches!(&e, PublishError::Config(m) if m.contains(status)),
            "{e}"
        );
    }
    assert_eq!(
        publisher.config_errors_reported(),
        3,
        "one line each for 404 (other topic), 410 and 403"
    );
    // Once the topic accepts again, a new failure is reported again.
    publisher.publish("user-registered", &ev).await.unwrap();
    mock.script([error_reply(403, vec![], "Quota exceeded.")]);
    publisher.publish("user-registered", &ev).await.unwrap_err();
    assert_eq!(publisher.config_errors_reported(), 4);
}

// ---------------------------------------------------------------------------------------------
// Through the real dispatcher
// ---------------------------------------------------------------------------------------------

async fn register_one(db: &store::Database, correlation: &str) -> NewEvent {
    register_user(db, "u-sb-1", correlation).await
}

async fn register_user(db: &store::Database, user: &str, correlation: &str) -> NewEvent {
    let now = Utc::now();
    let profile = Profile {
        user_id: UserId::parse(user).unwrap(),
        display_name: DisplayName::parse("Ada").unwrap(),
        registered_at: now,
    };
    let event = NewEvent::new(
        EventType::UserRegistered,
        format!("users/{user}"),
        &UserRegisteredV1 {
            user_id: user.into(),
            display_name: "Ada".into(),
            registered_at: now.to_rfc3339(),
        },
        now,
        Some(correlation.to_owned()),
    );
    let reg = qotd::users::store::repo(db)
        .register(&profile, &event)
        .await
        .unwrap();
    assert!(matches!(reg, Registration::Created(_)));
    event
}

#[tokio::test]
async fn dispatcher_publishes_through_service_bus_and_keeps_rejected_events_pending() {
    let dir = tempfile::tempdir().unwrap();

    // Accepted: the event reaches the broker and is marked sent.
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let stores = store::open(&DatabaseUrl::Sqlite(dir.path().join("ok.db")))
        .await
        .unwrap();
    let corr = uuid::Uuid::new_v4().to_string();
    let ev = register_one(&stores, &corr).await;
    assert_eq!(stores.events().pending_count().await.unwrap(), 1);
    let dispatcher = Dispatcher::new(
        stores.events().clone(),
        Arc::new(sas_publisher(&mock)),
        Arc::new(SystemClock),
    );
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (1, 0));
    assert_eq!(
        stores.events().pending_count().await.unwrap(),
        0,
        "marked sent"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/user-registered/messages");
    assert_eq!(reqs[0].body, ev.payload.as_bytes());
    let props: Value = serde_json::from_str(reqs[0].header("brokerproperties")).unwrap();
    assert_eq!(props["MessageId"], Value::String(ev.id.clone()));
    assert_eq!(props["Label"], "qotd.UserRegistered.v1");
    assert_eq!(props["CorrelationId"], Value::String(corr.clone()));
    assert!(
        reqs[0]
            .header("traceparent")
            .contains(&corr.replace('-', ""))
    );
    assert_eq!(
        mock.enqueued(),
        vec![("user-registered".to_owned(), ev.id.clone())]
    );

    // Rejected (401): the event stays pending, nothing is dropped.
    let mock = Mock::start(ExpectedAuth::Bearer("the-right-token".into())).await;
    let stores = store::open(&DatabaseUrl::Sqlite(dir.path().join("denied.db")))
        .await
        .unwrap();
    register_one(&stores, "corr-denied").await;
    let publisher = Arc::new(bearer_publisher(&mock, FakeCredential::new("wrong")));
    let dispatcher = Dispatcher::new(
        stores.events().clone(),
        publisher.clone(),
        Arc::new(SystemClock),
    );
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (0, 1));
    assert_eq!(
        stores.events().pending_count().await.unwrap(),
        1,
        "left pending"
    );
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(publisher.config_errors_reported(), 1);
    assert!(mock.enqueued().is_empty());
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_is_carried_into_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(ExpectedAuth::Sas).await;
    mock.set_default(error_reply(
        429,
        vec![("retry-after", "30".into())],
        "The request was terminated because the entity is being throttled.",
    ));
    let stores = store::open(&DatabaseUrl::Sqlite(dir.path().join("throttled.db")))
        .await
        .unwrap();
    register_one(&stores, "corr-throttled").await;
    let dispatcher = Dispatcher::new(
        stores.events().clone(),
        Arc::new(sas_publisher(&mock)),
        Arc::new(SystemClock),
    );
    let before = Utc::now();
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (0, 1));
    assert_eq!(mock.requests().len(), 1, "no retry inside the 5 s budget");
    let events = stores.events();
    let lease = Duration::from_secs(1);
    let early = events
        .claim_pending("probe", 10, lease, before + chrono::Duration::seconds(29))
        .await
        .unwrap();
    assert!(early.is_empty(), "not claimable before the broker's 30 s");
    let due = events
        .claim_pending("probe", 10, lease, before + chrono::Duration::seconds(32))
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "claimable once the 30 s have passed");
}

#[tokio::test]
async fn one_refused_message_in_a_batch_goes_to_the_poison_table_and_the_rest_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(ExpectedAuth::Sas).await;
    let stores = store::open(&DatabaseUrl::Sqlite(dir.path().join("poison.db")))
        .await
        .unwrap();
    let corr = uuid::Uuid::new_v4().to_string();
    let mut evs = Vec::new();
    for user in ["u-sb-a", "u-sb-b", "u-sb-c"] {
        evs.push(register_user(&stores, user, &corr).await);
    }
    mock.refuse(&evs[1].id);
    let dispatcher = Dispatcher::new(
        stores.events().clone(),
        Arc::new(sas_publisher(&mock)),
        Arc::new(SystemClock),
    );
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!(
        (outcome.published, outcome.failed, outcome.poisoned),
        (2, 0, 1)
    );
    // The batch was refused whole, then each message went alone.
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4, "one batch, then three single messages");
    assert_eq!(reqs[0].header("content-type"), BATCH_CONTENT_TYPE);
    assert_eq!(reqs[0].messages().len(), 3);
    for r in &reqs[1..] {
        assert_eq!(r.header("content-type"), CLOUDEVENTS_CONTENT_TYPE);
        // The request's correlation id travels with each message.
        let props: Value = serde_json::from_str(r.header("brokerproperties")).unwrap();
        assert_eq!(props["CorrelationId"], Value::String(corr.clone()));
    }
    assert_eq!(
        mock.enqueued(),
        vec![
            ("user-registered".to_owned(), evs[0].id.clone()),
            ("user-registered".to_owned(), evs[2].id.clone()),
        ]
    );
    // Off the outbox: the refused one is in the poison table with its reason.
    assert_eq!(stores.events().pending_count().await.unwrap(), 0);
    assert_eq!(
        stores.events().poison_count(PUBLISH_POISON).await.unwrap(),
        1
    );
    let conn = rusqlite::Connection::open(dir.path().join("poison.db")).unwrap();
    let (message_id, reason): (String, String) = conn
        .query_row(
            "SELECT message_id, reason FROM platform_poison WHERE consumer = ?1",
            [PUBLISH_POISON],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(message_id, evs[1].id);
    assert!(
        reason.contains("400") && reason.contains("exceeds the limit"),
        "{reason}"
    );
    // The next step has nothing left to send: the topic is not blocked.
    let outcome = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (0, 0));
}
