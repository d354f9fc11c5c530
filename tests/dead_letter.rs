//! The local bus gives up on an event the way Service Bus does: after `MAX_DELIVERIES` refused
//! invocations it hands the event to the dead-letter store (qotd's is the poison table, so
//! `qotd poison list|replay` sees it), and when there is no store, or the store fails, the event
//! stays in the outbox instead of being reported as handled.

mod support;

use async_trait::async_trait;
use qotd::platform::clock::SystemClock;
use qotd::platform::functions::local_bus::{DeadLetterSink, LocalBus, MAX_DELIVERIES};
use qotd::platform::functions::manifest::FunctionApp;
use qotd::platform::outbox::{EventPublisher, PublishError};
use qotd::platform::retry::RetryPolicy;
use qotd::platform::store::PendingEvent;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::handler::refusing_handler;

#[derive(Default)]
struct Recorder {
    stored: Mutex<Vec<(String, String)>>,
    fail: bool,
}

#[async_trait]
impl DeadLetterSink for Recorder {
    async fn dead_letter(
        &self,
        function: &str,
        event_id: &str,
        _payload: &str,
        reason: &str,
    ) -> Result<(), String> {
        if self.fail {
            return Err("store down".into());
        }
        assert!(reason.contains("failed 10 deliveries"), "{reason}");
        self.stored
            .lock()
            .unwrap()
            .push((function.to_owned(), event_id.to_owned()));
        Ok(())
    }
}

fn event() -> PendingEvent {
    PendingEvent {
        seq: 1,
        event_id: "0190f000-0000-7000-8000-00000000dead".into(),
        topic: "user-registered".into(),
        subject: "users/u1".into(),
        event_type: "qotd.UserRegistered.v1".into(),
        correlation_id: None,
        payload: "{}".into(),
        attempts: 1,
    }
}

fn bus(url: String) -> LocalBus {
    let bus = LocalBus::new(
        FunctionApp::embedded().unwrap(),
        reqwest::Client::new(),
        Arc::new(SystemClock),
    )
    .with_redelivery(RetryPolicy::unbounded(
        Duration::from_millis(1),
        Duration::from_millis(2),
    ));
    bus.attach(url);
    bus
}

#[tokio::test]
async fn after_the_last_delivery_the_event_goes_to_the_dead_letter_store() {
    let (url, calls) = refusing_handler().await;
    let bus = bus(url);
    let sink = Arc::new(Recorder::default());
    bus.set_dead_letters(sink.clone());
    bus.publish("user-registered", &[event()]).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), MAX_DELIVERIES);
    assert_eq!(
        sink.stored.lock().unwrap().as_slice(),
        [(
            "LeaderboardOnUserRegistered".to_owned(),
            "0190f000-0000-7000-8000-00000000dead".to_owned()
        )]
    );
}

#[tokio::test]
async fn without_a_working_dead_letter_store_the_event_stays_pending() {
    let (url, _) = refusing_handler().await;
    let bus = bus(url.clone());
    let err = bus
        .publish("user-registered", &[event()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Transient(ref m) if m.contains("stay pending")),
        "{err:?}"
    );

    let bus = self::bus(url);
    bus.set_dead_letters(Arc::new(Recorder {
        fail: true,
        ..Recorder::default()
    }));
    let err = bus
        .publish("user-registered", &[event()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Transient(ref m) if m.contains("store down")),
        "{err:?}"
    );
}
