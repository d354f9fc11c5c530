//! The published language between contexts: every event kind qotd publishes and its versioned
//! payload. Producers build these structs, consumers parse them; a context never learns
//! another's tables through them. Scoring limits travel inside the payload
//! (`QuizAttemptEvaluatedV1::max_score`), so a consumer checks them without importing the
//! producer's rules.

use serde::{Deserialize, Serialize};

/// What names an event kind on the wire: its versioned CloudEvents `type` and the Service Bus
/// topic it travels on. The platform moves any kind; only this module says which exist.
pub trait EventKind: Copy {
    fn cloud_type(self) -> &'static str;
    fn topic(self) -> &'static str;
}

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
}

impl EventKind for EventType {
    /// The CloudEvents `type`, versioned.
    fn cloud_type(self) -> &'static str {
        match self {
            Self::UserRegistered => "qotd.UserRegistered.v1",
            Self::DailyQuizGenerated => "qotd.DailyQuizGenerated.v1",
            Self::QuizAttemptEvaluated => "qotd.QuizAttemptEvaluated.v1",
        }
    }

    /// The Service Bus topic the event is published to.
    fn topic(self) -> &'static str {
        match self {
            Self::UserRegistered => "user-registered",
            Self::DailyQuizGenerated => "daily-quiz-generated",
            Self::QuizAttemptEvaluated => "quiz-attempt-evaluated",
        }
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
    /// The most points this quiz could give (the producer's scoring rule, carried along).
    pub max_score: u32,
    pub correct: u32,
    pub total: u32,
    pub submitted_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::events::{CloudEvent, NewEvent, SOURCE};
    use chrono::Utc;

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
