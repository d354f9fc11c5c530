//! Domain events as they travel between contexts: CloudEvents 1.0 JSON envelopes, one topic
//! per event type. The payload structs are the published language: producers build them,
//! consumers parse them; a context never learns another's tables through them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The CloudEvents `source` attribute of everything qotd emits.
pub const SOURCE: &str = "/qotd";

/// Every event type qotd publishes. Adding one means adding its topic to a consumer's
/// function.json (a test checks each published topic has a subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserRegistered,
    DailyQuizGenerated,
    QuizAttemptEvaluated,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        EventType::UserRegistered,
        EventType::DailyQuizGenerated,
        EventType::QuizAttemptEvaluated,
    ];

    /// The CloudEvents `type`, versioned.
    pub fn cloud_type(self) -> &'static str {
        match self {
            Self::UserRegistered => "qotd.UserRegistered.v1",
            Self::DailyQuizGenerated => "qotd.DailyQuizGenerated.v1",
            Self::QuizAttemptEvaluated => "qotd.QuizAttemptEvaluated.v1",
        }
    }

    /// The Service Bus topic the event is published to.
    pub fn topic(self) -> &'static str {
        match self {
            Self::UserRegistered => "user-registered",
            Self::DailyQuizGenerated => "daily-quiz-generated",
            Self::QuizAttemptEvaluated => "quiz-attempt-evaluated",
        }
    }
}

/// An event about to be written to the outbox in the same transaction as its domain change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: EventType,
    pub subject: String,
    pub correlation_id: Option<String>,
    /// The complete CloudEvents JSON, exactly what will be published.
    pub payload: String,
}

impl NewEvent {
    /// Builds the envelope; the id is a time-ordered UUID so outbox order follows creation.
    pub fn new<T: Serialize>(
        event_type: EventType,
        subject: String,
        data: &T,
        time: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Self {
        let id = uuid::Uuid::now_v7().to_string();
        let envelope = CloudEvent {
            id: id.clone(),
            source: SOURCE.to_owned(),
            specversion: "1.0".to_owned(),
            event_type: event_type.cloud_type().to_owned(),
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            subject: subject.clone(),
            datacontenttype: "application/json".to_owned(),
            data: serde_json::to_value(data).expect("event payloads are plain data"),
        };
        let payload = serde_json::to_string(&envelope).expect("envelope serialises");
        Self {
            id,
            event_type,
            subject,
            correlation_id,
            payload,
        }
    }
}

/// CloudEvents 1.0 structured-mode JSON envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub specversion: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: String,
    pub subject: String,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// Parses an envelope and checks it carries the expected type; errors are permanent
    /// (a redelivery cannot fix them), so callers send such messages to the poison table.
    pub fn parse_as<T: for<'de> Deserialize<'de>>(
        raw: &str,
        expected: EventType,
    ) -> Result<(Self, T), String> {
        let env: CloudEvent = serde_json::from_str(raw)
            .map_err(|e| format!("message is not a CloudEvents JSON envelope: {e}"))?;
        if env.specversion != "1.0" {
            return Err(format!(
                "unsupported CloudEvents specversion '{}'",
                env.specversion
            ));
        }
        if env.event_type != expected.cloud_type() {
            return Err(format!(
                "expected event type {} but got '{}'",
                expected.cloud_type(),
                env.event_type
            ));
        }
        let data = T::deserialize(&env.data)
            .map_err(|e| format!("event data is not a valid {}: {e}", expected.cloud_type()))?;
        Ok((env, data))
    }
}

/// `qotd.UserRegistered.v1`: a player registered for the first time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRegisteredV1 {
    pub user_id: String,
    pub display_name: String,
    pub registered_at: String,
}

/// `qotd.DailyQuizGenerated.v1`: the quiz for a day exists (or was replaced before any attempt).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DailyQuizGeneratedV1 {
    pub quiz_date: String,
    pub question_count: u32,
    pub source: String,
    pub generated_at: String,
}

/// `qotd.QuizAttemptEvaluated.v1`: everything the leaderboard needs about one scored attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuizAttemptEvaluatedV1 {
    pub user_id: String,
    pub display_name: String,
    pub quiz_date: String,
    pub iso_week: String,
    pub score: u32,
    pub correct: u32,
    pub total: u32,
    pub submitted_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_wrong_types() {
        let data = UserRegisteredV1 {
            user_id: "u1".into(),
            display_name: "Ada".into(),
            registered_at: "2026-11-27T00:00:00Z".into(),
        };
        let ev = NewEvent::new(
            EventType::UserRegistered,
            "users/u1".into(),
            &data,
            Utc::now(),
            None,
        );
        let (env, parsed) =
            CloudEvent::parse_as::<UserRegisteredV1>(&ev.payload, EventType::UserRegistered)
                .unwrap();
        assert_eq!(env.id, ev.id);
        assert_eq!(env.source, SOURCE);
        assert_eq!(parsed, data);
        assert!(
            CloudEvent::parse_as::<UserRegisteredV1>(&ev.payload, EventType::DailyQuizGenerated)
                .is_err()
        );
        assert!(
            CloudEvent::parse_as::<UserRegisteredV1>("{not json", EventType::UserRegistered)
                .is_err()
        );
    }

    #[test]
    fn every_published_topic_has_a_subscriber_and_every_subscription_a_publisher() {
        use crate::platform::functions::manifest::{FunctionApp, Trigger};
        let app = FunctionApp::embedded().unwrap();
        for t in EventType::ALL {
            assert!(
                app.subscribers(t.topic()).count() >= 1,
                "nobody subscribes to {}",
                t.topic()
            );
        }
        for f in &app.functions {
            if let Trigger::ServiceBus { topic, .. } = &f.trigger {
                assert!(
                    EventType::ALL.iter().any(|t| t.topic() == topic),
                    "{} subscribes to unknown topic {topic}",
                    f.name
                );
            }
        }
    }
}
