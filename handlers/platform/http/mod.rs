//! The HTTP edge shared by the handler server and the local host: the request type handlers
//! see, response helpers, problem details and body/query parsing with precise errors.

mod context;
pub mod cors;
mod problem;
pub mod server;
pub mod static_site;

pub use context::RequestContext;
pub use problem::Problem;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// What every HTTP response is: status, headers and a fully buffered body.
pub type ApiResponse = http::Response<Bytes>;

/// Largest accepted body of an API request (the 64 KiB limit).
pub const MAX_API_BODY: usize = 64 * 1024;

/// A request as an HTTP function sees it, whichever way it arrived (forwarded by the host,
/// proxied, or rebuilt from a non-forwarded invocation payload).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path without the query string, e.g. `/api/quizzes/2026-11-27`.
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Route parameters captured from the function's route template.
    pub params: HashMap<String, String>,
}

impl ApiRequest {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Parses the query string into key/value pairs; a repeated key is an error.
    pub fn query_map(&self) -> Result<HashMap<String, String>, Problem> {
        let mut map = HashMap::new();
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| {
                Problem::bad_request(format!(
                    "query parameter name '{k}' is not valid percent-encoded UTF-8"
                ))
            })?;
            let v = percent_decode(v).ok_or_else(|| {
                Problem::bad_request(format!(
                    "query parameter '{k}' is not valid percent-encoded UTF-8"
                ))
            })?;
            if map.insert(k.clone(), v).is_some() {
                return Err(Problem::bad_request(format!(
                    "query parameter '{k}' is given more than once"
                )));
            }
        }
        Ok(map)
    }

    /// Parses an `application/x-www-form-urlencoded` body like a query string.
    pub fn form_map(&self) -> Result<HashMap<String, String>, Problem> {
        let body = std::str::from_utf8(&self.body)
            .map_err(|_| Problem::bad_request("form body is not UTF-8"))?;
        ApiRequest {
            query: body.to_owned(),
            body: Bytes::new(),
            ..self.clone()
        }
        .query_map()
    }

    /// The query parameters, checked against the names this endpoint accepts: a name it does
    /// not know is a 400 (a typo would otherwise be ignored), as is a repeated one.
    pub fn query(&self, allowed: &[&str]) -> Result<Query, Problem> {
        let map = self.query_map()?;
        match map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) if allowed.is_empty() => Err(Problem::bad_request(format!(
                "unknown query parameter '{k}'; this endpoint takes none"
            ))),
            Some(k) => Err(Problem::bad_request(format!(
                "unknown query parameter '{k}'; allowed: {}",
                allowed.join(", ")
            ))),
            None => Ok(Query(map)),
        }
    }

    /// Decodes a JSON body into `T`, naming the field and position of the first error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        if self.body.len() > MAX_API_BODY {
            return Err(Problem::payload_too_large(MAX_API_BODY));
        }
        if let Some(ct) = self.header("content-type") {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime != "application/json" && !mime.ends_with("+json") {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    format!("content-type '{ct}' is not supported; send application/json"),
                ));
            }
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::bad_request(
                "request body is empty; a JSON object is required",
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Problem::bad_request(format!("request body is not valid JSON: {inner}"));
            }
            match path.as_str() {
                "." | "" | "?" => Problem::invalid(format!("request body is not valid: {inner}")),
                _ => Problem::invalid(format!("request body field '{path}' is not valid: {inner}")),
            }
        })?;
        // Only whitespace may follow the JSON value: `{...}\0garbage` is not a JSON body.
        de.end().map_err(|e| {
            Problem::bad_request(format!(
                "request body is not valid JSON: {e} (only whitespace may follow the JSON value)"
            ))
        })?;
        Ok(value)
    }
}

/// Query parameters that passed `ApiRequest::query`.
#[derive(Debug, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An optional whole-number parameter within `range`, naming it in errors.
    pub fn int(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, Problem> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        // Decimal digits only: Rust's parser would also take a leading '+'.
        let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
        let value: u64 = raw.parse().ok().filter(|_| digits).ok_or_else(|| {
            Problem::bad_request(format!(
                "query parameter '{name}' is '{}'; expected a whole number from {} to {}",
                raw.chars().take(40).collect::<String>(),
                range.start(),
                range.end()
            ))
        })?;
        if !range.contains(&value) {
            return Err(Problem::bad_request(format!(
                "query parameter '{name}' is {value}; expected {} to {}",
                range.start(),
                range.end()
            )));
        }
        Ok(value)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Serialises a value that cannot fail to serialise (plain data types).
pub fn json_body<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain data serialises")
}

/// A JSON response with the given status.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> ApiResponse {
    bytes_response(status, Bytes::from(json_body(value)))
}

/// A pre-serialised JSON body (used by caches that keep the rendered bytes).
pub fn bytes_response(status: StatusCode, body: Bytes) -> ApiResponse {
    let mut res = http::Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_reject_repeats() {
        let req = |q: &str| ApiRequest {
            method: Method::GET,
            path: "/".into(),
            query: q.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            params: HashMap::new(),
        };
        let m = req("period=daily&name=a%20b+c").query_map().unwrap();
        assert_eq!(m["name"], "a b c");
        assert!(req("limit=1&limit=2").query_map().is_err());
        assert!(req("x=%ZZ").query_map().is_err());
        assert!(req("x=%FF").query_map().is_err());
    }
}
