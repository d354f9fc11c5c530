//! Outbox events as Service Bus message requests: one event is one message with its
//! `BrokerProperties` and `traceparent`; several go as batches kept under [`MAX_BATCH_BYTES`].
//! See the parent module's docs for the properties and how `traceparent` is derived.

use crate::platform::store::PendingEvent;
use aws_lc_rs::digest;
use serde_json::{Map, Value, json};

/// The content type of a single message (the CloudEvents structured JSON format).
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The content type of a batch send.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// Upper bound of one batch request body; Standard namespaces accept 256 KiB per message/batch.
pub const MAX_BATCH_BYTES: usize = 200 * 1024;

/// One HTTP request to make.
pub(super) struct Outgoing {
    pub(super) content_type: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: bytes::Bytes,
    /// The events it carries: `events[members]` of the planned slice (groups are contiguous).
    pub(super) members: std::ops::Range<usize>,
}

/// Splits events into requests: single messages alone, the rest in batches under the budget.
pub(super) fn plan(events: &[PendingEvent]) -> Vec<Outgoing> {
    let mut requests = Vec::new();
    let mut group: Vec<(&PendingEvent, String)> = Vec::new();
    let mut group_bytes = 2; // "[" and "]"
    let mut start = 0;
    let mut flush = |group: &mut Vec<(&PendingEvent, String)>, requests: &mut Vec<Outgoing>| {
        let members = start..start + group.len();
        start = members.end;
        match group.len() {
            0 => {}
            1 => requests.push(Outgoing {
                members,
                ..alone(group[0].0)
            }),
            _ => {
                let body = format!(
                    "[{}]",
                    group
                        .iter()
                        .map(|(_, j)| j.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                requests.push(Outgoing {
                    content_type: BATCH_CONTENT_TYPE,
                    headers: Vec::new(),
                    body: body.into(),
                    members,
                });
            }
        }
        group.clear();
    };
    for ev in events {
        let item = batch_item(ev).to_string();
        let cost = item.len() + 1;
        if !group.is_empty() && group_bytes + cost > MAX_BATCH_BYTES {
            flush(&mut group, &mut requests);
            group_bytes = 2;
        }
        group_bytes += cost;
        group.push((ev, item));
    }
    flush(&mut group, &mut requests);
    requests
}

fn broker_properties(ev: &PendingEvent) -> Value {
    let mut props = Map::new();
    props.insert("MessageId".into(), Value::String(ev.event_id.clone()));
    props.insert("Label".into(), Value::String(ev.event_type.clone()));
    if let Some(c) = ev.correlation_id.as_deref().filter(|c| !c.is_empty()) {
        props.insert("CorrelationId".into(), Value::String(c.to_owned()));
    }
    Value::Object(props)
}

/// The trace context application properties: W3C `traceparent`, and the same value as
/// `Diagnostic-Id`, the name the Service Bus SDKs (and so the Functions trigger) read.
pub const TRACE_PROPERTIES: [&str; 2] = ["traceparent", "Diagnostic-Id"];

fn batch_item(ev: &PendingEvent) -> Value {
    let tp = traceparent(ev.correlation_id.as_deref(), &ev.event_id);
    let user: Map<String, Value> = TRACE_PROPERTIES
        .iter()
        .map(|name| (name.to_string(), Value::String(tp.clone())))
        .collect();
    json!({
        "Body": ev.payload,
        "BrokerProperties": broker_properties(ev),
        "UserProperties": user,
    })
}

/// A custom property header value holding a string: the REST API reads an unquoted value as a
/// number, date or boolean when it looks like one, so strings are sent as quoted strings.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace(['"', '\\'], ""))
}

/// The request that sends `ev` alone (also after its batch was refused).
pub(super) fn alone(ev: &PendingEvent) -> Outgoing {
    let tp = quoted(&traceparent(ev.correlation_id.as_deref(), &ev.event_id));
    let mut headers = vec![("BrokerProperties", ascii_json(&broker_properties(ev)))];
    headers.extend(TRACE_PROPERTIES.iter().map(|name| (*name, tp.clone())));
    Outgoing {
        content_type: CLOUDEVENTS_CONTENT_TYPE,
        headers,
        body: bytes::Bytes::from(ev.payload.clone()),
        members: 0..1,
    }
}

/// JSON with every non-ASCII character escaped, so it is a valid header value.
fn ascii_json(v: &Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The W3C `traceparent` for an event (see the module docs for how it is derived).
pub fn traceparent(correlation_id: Option<&str>, event_id: &str) -> String {
    let trace_id = correlation_id
        .and_then(hex128)
        .or_else(|| hex128(event_id))
        .unwrap_or_else(|| hex(&sha256(event_id.as_bytes())[..16]));
    let mut span = sha256(event_id.as_bytes())[..8].to_vec();
    if span.iter().all(|b| *b == 0) {
        span[7] = 1;
    }
    format!("00-{trace_id}-{}-01", hex(&span))
}

/// A UUID or 32 hex digits as 32 lower-case hex digits; never the invalid all-zero id.
fn hex128(s: &str) -> Option<String> {
    let s = s.trim();
    let digits: String = if s.len() == 36 {
        let dashes_ok = s
            .char_indices()
            .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
        if !dashes_ok {
            return None;
        }
        s.chars().filter(|c| *c != '-').collect()
    } else if s.len() == 32 {
        s.to_owned()
    } else {
        return None;
    };
    (digits.chars().all(|c| c.is_ascii_hexdigit()) && digits.chars().any(|c| c != '0'))
        .then(|| digits.to_ascii_lowercase())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_stable_and_valid() {
        let ev = "0190f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        let a = traceparent(Some("6F9619FF-8B86-D011-B42D-00CF4FC964FF"), ev);
        assert!(a.starts_with("00-6f9619ff8b86d011b42d00cf4fc964ff-"), "{a}");
        assert!(a.ends_with("-01"));
        assert_eq!(a, traceparent(Some("6f9619ff8b86d011b42d00cf4fc964ff"), ev));
        let b = traceparent(Some("corr-1"), ev);
        assert!(b.starts_with("00-0190f1a23b4c7d5e8f60718293a4b5c6-"), "{b}");
        assert_eq!(&a[36..], &b[36..], "span id comes from the event id");
        let c = traceparent(None, "not-a-uuid");
        let parts: Vec<&str> = c.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16));
        assert!(traceparent(Some("00000000-0000-0000-0000-000000000000"), ev).contains("0190f1a2"));
    }

    #[test]
    fn broker_properties_header_is_ascii() {
        let v = json!({"CorrelationId": "café ☕ 😀"});
        let s = ascii_json(&v);
        assert!(s.is_ascii(), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
