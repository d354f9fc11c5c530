//! The custom-handler invocation protocol (the shapes the host builds in its custom-handler invocation code,
//! github.com/Azure/azure-functions-host `src/WebJobs.Script/Workers/Http`; examples in
//! tests/fixtures/functions-host):
//! what the host POSTs to `/{FunctionName}` for non-HTTP triggers and what it accepts back.
//!
//! Decoding rules that are easy to get wrong and are therefore centralised here:
//! - string values in `Data`/`Metadata` arrive JSON-encoded a second time (`"\"abc\""`);
//! - a `dataType: binary` trigger delivers base64 instead;
//! - the reply is always a JSON object (never empty or `null`), with `application/json`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of an invocation request.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    #[serde(default)]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The body of an invocation response.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

impl InvocationResponse {
    /// An empty success carrying log lines (the host writes them to the function's log).
    pub fn logs(lines: Vec<String>) -> Self {
        Self {
            outputs: Map::new(),
            logs: lines,
            return_value: Value::Null,
        }
    }
}

/// Undoes the host's second JSON encoding of a string value: `"\"abc\""` → `abc`. A value that
/// is not double-encoded (a plain JSON string as the docs show) is returned as it is.
pub fn decode_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(serde_json::from_str::<String>(s).unwrap_or_else(|_| s.clone())),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A Service Bus message as the trigger delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusMessage {
    pub body: String,
    pub message_id: Option<String>,
    pub delivery_count: u32,
    pub correlation_id: Option<String>,
}

impl InvocationRequest {
    /// Reads a Service Bus trigger payload from binding `binding`: the double-encoded string
    /// body (or base64 with `dataType: binary`) plus the metadata qotd uses.
    pub fn service_bus_message(&self, binding: &str) -> Result<ServiceBusMessage, String> {
        let raw = self
            .data
            .get(binding)
            .ok_or_else(|| format!("invocation has no Data.{binding}"))?;
        let Value::String(s) = raw else {
            return Err(format!("Data.{binding} is not a string"));
        };
        let body = match serde_json::from_str::<String>(s) {
            Ok(text) => text,
            Err(_) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| {
                        format!("Data.{binding} is neither a JSON-encoded string nor base64")
                    })?;
                String::from_utf8(bytes)
                    .map_err(|_| format!("Data.{binding} is base64 of non-UTF-8 bytes"))?
            }
        };
        let meta = |k: &str| self.metadata.get(k).and_then(decode_string);
        Ok(ServiceBusMessage {
            body,
            message_id: meta("MessageId"),
            delivery_count: meta("DeliveryCount")
                .and_then(|d| d.parse().ok())
                .unwrap_or(1),
            correlation_id: meta("CorrelationId"),
        })
    }

    /// Whether a timer invocation says it is running late (`IsPastDue`).
    pub fn timer_past_due(&self, binding: &str) -> bool {
        self.data
            .get(binding)
            .and_then(|t| t.get("IsPastDue"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_correlation_id_of_the_causing_request_reaches_the_consumer() {
        // The Service Bus trigger's metadata as the host sends it: strings JSON-encoded once
        // more. The publisher set `CorrelationId` from the outbox row, which holds the id of
        // the HTTP request that caused the event; `consumer::consume` logs it.
        let inv: InvocationRequest = serde_json::from_value(serde_json::json!({
            "Data": { "message": "\"{}\"" },
            "Metadata": {
                "MessageId": "\"ev-1\"",
                "DeliveryCount": "2",
                "CorrelationId": "\"6f9619ff-8b86-d011-b42d-00cf4fc964ff\""
            }
        }))
        .unwrap();
        let m = inv.service_bus_message("message").unwrap();
        assert_eq!(
            m.correlation_id.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        );
        assert_eq!(m.message_id.as_deref(), Some("ev-1"));
        assert_eq!(m.delivery_count, 2);
    }

    #[test]
    fn strings_are_decoded_once_more() {
        assert_eq!(
            decode_string(&Value::String("\"abc\"".into())).as_deref(),
            Some("abc")
        );
        assert_eq!(
            decode_string(&Value::String("4".into())).as_deref(),
            Some("4")
        );
        assert_eq!(
            decode_string(&Value::String("plain".into())).as_deref(),
            Some("plain")
        );
    }
}
