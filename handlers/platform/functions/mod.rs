//! The Azure Functions custom-handler platform: function definitions (`manifest`), the
//! invocation wire format (`protocol`), and the local stand-ins for the Functions host
//! (`local_host`: HTTP forwarding and timers) and for Service Bus (`local_bus`). The local
//! stand-ins reach the handler only through the same HTTP protocol the real host uses.
//! `stage` writes a runnable app folder for the real host (`qotd stage`).

pub mod consumer;
pub mod local_bus;
pub mod local_host;
pub mod manifest;
pub mod protocol;
pub mod stage;

use crate::platform::http::{ApiRequest, ApiResponse, json_response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use protocol::{InvocationRequest, InvocationResponse};
use serde_json::{Map, Value, json};

/// Why an invocation failed; the host retries (Service Bus redelivers) on any of these.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvocationFailure(pub String);

/// The reply to an invocation: always a JSON object with `application/json`; a non-2xx status
/// only for failures the host should retry.
pub fn invocation_reply(status: StatusCode, body: InvocationResponse) -> ApiResponse {
    json_response(status, &body)
}

/// Serves an HTTP function invoked through the JSON protocol (forwarding disabled): rebuilds
/// the request from `Data.<binding>` and wraps the answer in `Outputs.res`.
pub async fn non_forwarded_http<F, Fut>(
    functions: &manifest::FunctionApp,
    binding: &str,
    inv: &InvocationRequest,
    serve: F,
) -> ApiResponse
where
    F: FnOnce(ApiRequest) -> Fut,
    Fut: std::future::Future<Output = ApiResponse>,
{
    let req = match request_from_invocation(inv, binding) {
        Ok(r) => r,
        Err(e) => {
            return invocation_reply(StatusCode::BAD_REQUEST, InvocationResponse::logs(vec![e]));
        }
    };
    let mut req = req;
    if let manifest::RouteMatch::Found { params, .. } = functions.route(&req.method, &req.path) {
        req.params = params;
    }
    let res = serve(req).await;
    let headers: Map<String, Value> = res
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), Value::String(v.to_owned())))
        })
        .collect();
    let body = String::from_utf8_lossy(res.body()).into_owned();
    let mut outputs = Map::new();
    outputs.insert(
        "res".into(),
        json!({ "statusCode": res.status().as_u16(), "headers": headers, "body": body }),
    );
    invocation_reply(
        StatusCode::OK,
        InvocationResponse {
            outputs,
            logs: Vec::new(),
            return_value: Value::Null,
        },
    )
}

fn request_from_invocation(inv: &InvocationRequest, binding: &str) -> Result<ApiRequest, String> {
    let req = inv
        .data
        .get(binding)
        .ok_or_else(|| format!("invocation has no Data.{binding}"))?;
    let method = req.get("Method").and_then(Value::as_str).unwrap_or("GET");
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| format!("bad method '{method}'"))?;
    let url = req
        .get("Url")
        .and_then(Value::as_str)
        .ok_or("Data.req.Url is missing")?;
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path_and_query = after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/");
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = req.get("Headers") {
        for (k, v) in h {
            let value = match v {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Value::String(s) => s.clone(),
                _ => continue,
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
    }
    let body = req
        .get("Body")
        .and_then(Value::as_str)
        .map(|b| Bytes::from(b.to_owned()))
        .unwrap_or_default();
    Ok(ApiRequest {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
        params: Default::default(),
    })
}
