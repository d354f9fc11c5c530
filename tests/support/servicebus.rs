//! A fake Service Bus namespace speaking the REST send API
//! (https://learn.microsoft.com/rest/api/servicebus/send-message-batch): `POST /{topic}/messages`,
//! SAS signatures checked with the key, bearer tokens compared, 201 on success, XML error
//! bodies, scripted replies (throttling with `Retry-After`, slow answers), duplicate detection
//! by `MessageId`, unknown entities. Every request is recorded. Also the bare recording sink
//! the wiring tests point `qotd serve` at.

use super::percent_decode;
use aws_lc_rs::hmac;
use base64::Engine as _;
use chrono::Utc;
use qotd::platform::servicebus::BATCH_CONTENT_TYPE;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::Filter;
use warp::http::{HeaderMap, Method, Response};

/// The namespace the SAS connection string names, and its send key.
pub const NAMESPACE: &str = "qotd-test.servicebus.windows.net";
pub const KEY_NAME: &str = "qotd-send";
pub const KEY: &str = "bG9jYWwtdGVzdC1rZXktbm90LWEtcmVhbC1vbmU=";

#[derive(Clone)]
pub enum Reply {
    /// Answer with this status, headers and body (nothing is enqueued unless the status is 201).
    Status(u16, Vec<(&'static str, String)>, String),
    /// Accept (enqueue) the message, then answer 201 only after this long.
    Slow(Duration),
}

pub fn created() -> Reply {
    Reply::Status(201, vec![], String::new())
}

pub fn error_reply(status: u16, headers: Vec<(&'static str, String)>, detail: &str) -> Reply {
    Reply::Status(
        status,
        headers,
        format!(
            "<Error><Code>{status}</Code><Detail>{detail} TrackingId:7d3c5b1e-0000-4000-8000-000000000000_G1, SystemTracker:{NAMESPACE}, Timestamp:2026-01-01T00:00:00</Detail></Error>"
        ),
    )
}

pub enum ExpectedAuth {
    Sas,
    Bearer(String),
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing"))
            .to_str()
            .unwrap()
    }

    /// (MessageId, whole message) of every message in the request.
    pub fn messages(&self) -> Vec<(String, Value)> {
        if self.header("content-type") == BATCH_CONTENT_TYPE {
            let items: Vec<Value> = serde_json::from_slice(&self.body).unwrap();
            items
                .into_iter()
                .map(|m| {
                    (
                        m["BrokerProperties"]["MessageId"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                        m,
                    )
                })
                .collect()
        } else {
            let props: Value = serde_json::from_str(self.header("brokerproperties")).unwrap();
            vec![(
                props["MessageId"].as_str().unwrap().to_owned(),
                json!({ "Body": String::from_utf8(self.body.to_vec()).unwrap(), "BrokerProperties": props, "UserProperties": { "traceparent": unquote(self.header("traceparent")), "Diagnostic-Id": unquote(self.header("diagnostic-id")) } }),
            )]
        }
    }
}

/// A custom property header's string value: sent as a quoted string.
pub fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("custom property {v} is not a quoted string"))
}

struct MockState {
    auth: ExpectedAuth,
    /// MessageIds the namespace refuses (400, as for a message over the size limit): any
    /// request carrying one is refused whole, as Service Bus refuses a batch.
    refuse: HashSet<String>,
    topics: HashSet<String>,
    script: VecDeque<Reply>,
    default: Reply,
    requests: Vec<Recorded>,
    /// (topic, MessageId) of every enqueued message, in order; duplicates are not enqueued.
    enqueued: Vec<(String, String)>,
    duplicates_dropped: usize,
}

pub struct Mock {
    pub base: String,
    state: Arc<Mutex<MockState>>,
}

impl Mock {
    pub async fn start(auth: ExpectedAuth) -> Mock {
        let state = Arc::new(Mutex::new(MockState {
            auth,
            topics: [
                "user-registered",
                "daily-quiz-generated",
                "quiz-attempt-evaluated",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            refuse: HashSet::new(),
            script: VecDeque::new(),
            default: created(),
            requests: Vec::new(),
            enqueued: Vec::new(),
            duplicates_dropped: 0,
        }));
        let s = state.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and_then(move |method, path: warp::path::FullPath, headers, body| {
                handle(s.clone(), method, path.as_str().to_owned(), headers, body)
            });
        let base = serve_on_loopback!(route);
        Mock { base, state }
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn refuse(&self, message_id: &str) {
        self.state
            .lock()
            .unwrap()
            .refuse
            .insert(message_id.to_owned());
    }

    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = reply;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn enqueued(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().enqueued.clone()
    }

    pub fn duplicates_dropped(&self) -> usize {
        self.state.lock().unwrap().duplicates_dropped
    }
}

/// Checks a SAS header the way Service Bus does: the signature over "<sr as sent>\n<se>" with
/// the named key, the resource covering the entity, and the expiry in the future.
pub fn check_sas(header: &str, topic: &str) -> Result<(), String> {
    let rest = header
        .strip_prefix("SharedAccessSignature ")
        .ok_or("not a SharedAccessSignature")?;
    let fields: HashMap<&str, &str> = rest.split('&').filter_map(|p| p.split_once('=')).collect();
    let (sr, sig, se, skn) = match (
        fields.get("sr"),
        fields.get("sig"),
        fields.get("se"),
        fields.get("skn"),
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => (*a, *b, *c, *d),
        _ => return Err("missing sr, sig, se or skn".into()),
    };
    if percent_decode(skn) != KEY_NAME {
        return Err("unknown key name".into());
    }
    let resource = percent_decode(sr);
    let expected_resource = format!("https://{NAMESPACE}/{topic}");
    if !expected_resource.starts_with(resource.trim_end_matches('/')) {
        return Err(format!(
            "token for {resource} does not cover {expected_resource}"
        ));
    }
    let expiry: i64 = se.parse().map_err(|_| "bad se")?;
    let now = Utc::now().timestamp();
    if expiry <= now {
        return Err("expired token".into());
    }
    if expiry > now + 24 * 3600 {
        return Err(format!("expiry {expiry} unreasonably far in the future"));
    }
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, KEY.as_bytes()),
        format!("{sr}\n{se}").as_bytes(),
    );
    let expected_sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    if percent_decode(sig) != expected_sig {
        return Err("InvalidSignature: The token has an invalid signature.".into());
    }
    Ok(())
}

async fn handle(
    state: Arc<Mutex<MockState>>,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response<String>, Infallible> {
    let recorded = Recorded {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
        at: Instant::now(),
    };
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(recorded.clone());
        let topic = path
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix("/messages"))
            .map(str::to_owned);
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let auth_result = match (&s.auth, &topic) {
            (_, None) => Ok(()),
            (ExpectedAuth::Sas, Some(t)) => check_sas(auth, t),
            (ExpectedAuth::Bearer(tok), _) if auth == format!("Bearer {tok}") => Ok(()),
            (ExpectedAuth::Bearer(_), _) => {
                Err("ExpiredToken: The token is expired or invalid.".to_owned())
            }
        };
        match (topic, auth_result) {
            _ if method != Method::POST => error_reply(405, vec![], "Method not allowed."),
            (None, _) => error_reply(404, vec![], "No such endpoint."),
            (Some(_), Err(why)) => error_reply(401, vec![], &why),
            (Some(t), Ok(())) if !s.topics.contains(&t) => error_reply(
                404,
                vec![],
                &format!("The messaging entity 'sb://{NAMESPACE}/{t}' could not be found."),
            ),
            (Some(_), Ok(()))
                if recorded
                    .messages()
                    .iter()
                    .any(|(id, _)| s.refuse.contains(id)) =>
            {
                error_reply(
                    400,
                    vec![],
                    "The received message (delivery-id:0, size:300000 bytes) exceeds the limit (262144 bytes) currently allowed on the link.",
                )
            }
            (Some(t), Ok(())) => {
                let reply = s.script.pop_front().unwrap_or_else(|| s.default.clone());
                let accepted = matches!(reply, Reply::Slow(_) | Reply::Status(201, ..));
                if accepted {
                    for (id, _) in recorded.messages() {
                        if s.enqueued.iter().any(|(et, eid)| *et == t && *eid == id) {
                            s.duplicates_dropped += 1;
                        } else {
                            s.enqueued.push((t.clone(), id));
                        }
                    }
                }
                reply
            }
        }
    };
    let (status, headers, body) = match reply {
        Reply::Slow(d) => {
            tokio::time::sleep(d).await;
            (201, vec![], String::new())
        }
        Reply::Status(status, headers, body) => (status, headers, body),
    };
    let mut builder = Response::builder().status(status);
    if !body.is_empty() {
        builder = builder.header("content-type", "application/xml; charset=utf-8");
    }
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    Ok(builder.body(body).unwrap())
}

/// What [`recording_sink`] saw, one entry per request, in order.
#[derive(Default, Clone)]
pub struct Received {
    pub paths: Vec<String>,
    pub broker_properties: Vec<String>,
    pub authorization: Vec<String>,
}

/// A namespace that accepts every `POST` with 201 and records its path and its
/// `BrokerProperties` and `Authorization` headers. Returns its base URL and the record.
pub async fn recording_sink() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let r = received.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath,
                  headers: warp::http::HeaderMap,
                  _body: bytes::Bytes| {
                let mut r = r.lock().unwrap();
                r.paths.push(path.as_str().to_owned());
                let h = |n: &str| {
                    headers
                        .get(n)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                r.broker_properties.push(h("brokerproperties"));
                r.authorization.push(h("authorization"));
                warp::reply::with_status("", warp::http::StatusCode::CREATED)
            },
        );
    (serve_on_loopback!(route), received)
}
