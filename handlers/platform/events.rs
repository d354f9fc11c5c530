//! Events as they travel: CloudEvents 1.0 JSON envelopes, one topic per event kind, written to
//! the outbox as `NewEvent`s and parsed back by consumers. Which kinds exist and what their
//! payloads hold is the application's published language (`kernel::events`), not the
//! platform's.

pub use crate::kernel::events::EventKind;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The CloudEvents `source` attribute of everything qotd emits.
pub const SOURCE: &str = "/qotd";

/// An event about to be written to the outbox in the same transaction as its domain change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub topic: &'static str,
    pub cloud_type: &'static str,
    pub subject: String,
    pub correlation_id: Option<String>,
    /// The complete CloudEvents JSON, exactly what will be published.
    pub payload: String,
    /// When the event happened (the envelope's `time`; the outbox row's creation time).
    pub created_at: DateTime<Utc>,
}

impl NewEvent {
    /// Builds the envelope; the id is a time-ordered UUID so outbox order follows creation.
    pub fn new<K: EventKind, T: Serialize>(
        kind: K,
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
            event_type: kind.cloud_type().to_owned(),
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            subject: subject.clone(),
            datacontenttype: "application/json".to_owned(),
            data: serde_json::to_value(data).expect("event payloads are plain data"),
        };
        let payload = serde_json::to_string(&envelope).expect("envelope serialises");
        Self {
            id,
            topic: kind.topic(),
            cloud_type: kind.cloud_type(),
            subject,
            correlation_id,
            payload,
            created_at: time,
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
        expected: impl EventKind,
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
