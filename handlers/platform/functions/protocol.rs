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

    /// Reads a Service Bus trigger payload that may be a batch (`"cardinality": "many"`) or a
    /// single message, in the host's encodings:
    ///
    /// - single: `Data.<binding>` is the body JSON-encoded once more (or base64), metadata
    ///   `MessageId`, `DeliveryCount`, `CorrelationId` (see [`Self::service_bus_message`]);
    /// - batch: the trigger value is an array (`string[]`, or `byte[][]` with `dataType:
    ///   binary`) and the host serialises values that are neither `byte[]` nor a JSON object with
    ///   `JsonConvert.SerializeObject`, so `Data.<binding>` is a *string holding a JSON array*
    ///   (`"[\"{...}\",\"{...}\"]"`, binary bodies as base64 items), and the Service Bus
    ///   extension's batch binding data (`MessageIdArray`, `DeliveryCountArray`,
    ///   `CorrelationIdArray`, ...) arrive in `Metadata` the same way (`"[\"id-1\",\"id-2\"]"`,
    ///   `"[1,2]"`). Sources: github.com/Azure/azure-functions-host
    ///   `src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs`
    ///   (`ToHttpScriptInvocationContext`, `GetHttpScriptInvocationContextValue`: `byte[]` →
    ///   base64, else `JObject.FromObject`, else `JsonConvert.SerializeObject`) and
    ///   github.com/Azure/azure-sdk-for-net
    ///   `sdk/servicebus/Microsoft.Azure.WebJobs.Extensions.ServiceBus/src/Triggers/ServiceBusTriggerBindingStrategy.cs`
    ///   (`AddBindingData(bindingData, ServiceBusReceivedMessage[])`: the `…Array` names).
    ///   An already-parsed JSON array (no second encoding) is accepted too.
    ///
    /// `Err` when the invocation as a whole is unreadable; each message otherwise.
    pub fn service_bus_messages(&self, binding: &str) -> Result<Vec<ServiceBusMessage>, String> {
        let raw = self
            .data
            .get(binding)
            .ok_or_else(|| format!("invocation has no Data.{binding}"))?;
        let items = match raw {
            Value::Array(items) => items.clone(),
            Value::String(s) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(Value::Array(items)) => items,
                    _ => {
                        return Err(format!(
                            "Data.{binding} is neither a message nor a JSON array of messages"
                        ));
                    }
                }
            }
            Value::String(_) => return self.service_bus_message(binding).map(|m| vec![m]),
            _ => return Err(format!("Data.{binding} is neither a string nor an array")),
        };
        let ids = self.metadata_array("MessageIdArray");
        let counts = self.metadata_array("DeliveryCountArray");
        let correlations = self.metadata_array("CorrelationIdArray");
        let at = |list: &Option<Vec<Value>>, i: usize| {
            list.as_ref().and_then(|l| l.get(i)).and_then(decode_string)
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| ServiceBusMessage {
                body: batch_item_body(item),
                message_id: at(&ids, i),
                delivery_count: at(&counts, i).and_then(|d| d.parse().ok()).unwrap_or(1),
                correlation_id: at(&correlations, i),
            })
            .collect())
    }

    /// A batch metadata array: a JSON array, or a string holding one.
    fn metadata_array(&self, key: &str) -> Option<Vec<Value>> {
        match self.metadata.get(key)? {
            Value::Array(items) => Some(items.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s).ok()? {
                Value::Array(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
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

/// One message of a batch: a JSON string is the body (base64 of it with `dataType: binary`,
/// recognised by not being JSON text); a JSON object is a body the host parsed.
fn batch_item_body(item: &Value) -> String {
    match item {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') {
                return s.clone();
            }
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| s.clone())
        }
        other => other.to_string(),
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

    #[test]
    fn batches_are_read_in_every_encoding_the_host_uses() {
        let bodies = [r#"{"id":"a"}"#, r#"{"id":"b"}"#];
        let as_string = serde_json::to_string(&bodies).unwrap();
        let inv: InvocationRequest = serde_json::from_value(serde_json::json!({
            "Data": { "message": as_string },
            "Metadata": {
                "MessageIdArray": "[\"a\",\"b\"]",
                "DeliveryCountArray": "[1,3]",
                "CorrelationIdArray": ["c1", null],
            }
        }))
        .unwrap();
        let got = inv.service_bus_messages("message").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, bodies[0]);
        assert_eq!(
            (got[1].message_id.as_deref(), got[1].delivery_count),
            (Some("b"), 3)
        );
        assert_eq!(
            (
                got[0].correlation_id.as_deref(),
                got[1].correlation_id.as_deref()
            ),
            (Some("c1"), None)
        );

        let b64 = base64::engine::general_purpose::STANDARD.encode(bodies[1]);
        let inv: InvocationRequest = serde_json::from_value(serde_json::json!({
            "Data": { "message": [bodies[0], b64] }, "Metadata": {}
        }))
        .unwrap();
        let got = inv.service_bus_messages("message").unwrap();
        assert_eq!(
            (got[0].body.as_str(), got[1].body.as_str()),
            (bodies[0], bodies[1])
        );
        assert_eq!(got[1].delivery_count, 1);

        let single: InvocationRequest = serde_json::from_value(serde_json::json!({
            "Data": { "message": serde_json::to_string(bodies[0]).unwrap() },
            "Metadata": { "MessageId": "\"a\"", "DeliveryCount": "2" }
        }))
        .unwrap();
        let got = single.service_bus_messages("message").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].body.as_str(),
                got[0].message_id.as_deref(),
                got[0].delivery_count
            ),
            (bodies[0], Some("a"), 2)
        );
    }
}
