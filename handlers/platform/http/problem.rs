//! RFC 9457 problem details: the one shape every HTTP error takes. Contexts return their own
//! error enums; the HTTP adapters map them here, and this is the only place that logs the cause
//! of a 5xx (the client sees a generic detail, never internals).

use super::{ApiResponse, json_body};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// An HTTP error answer. `detail` says precisely what was wrong with the request.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub detail: String,
    extra_headers: Vec<(header::HeaderName, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            extra_headers: Vec::new(),
        }
    }
    /// Malformed request syntax: unparsable JSON, bad query string, bad path value.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    /// Well-formed request whose values break a rule (wrong answer count, bad name).
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 401 with the RFC 6750 challenge naming why the token was refused.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let challenge = format!(
            "Bearer realm=\"qotd\", error=\"invalid_token\", error_description=\"{}\"",
            detail.replace(['"', '\\'], "'")
        );
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, challenge)
    }
    pub fn method_not_allowed(method: &str, allowed: &[String]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!(
                "method {method} is not allowed here; allowed: {}",
                allowed.join(", ")
            ),
        )
        .with_header(header::ALLOW, allowed.join(", "))
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }
    /// A server-side failure: logs `cause` with the slug and answers a generic detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error occurred; it has been logged",
        )
    }
    /// The database or another dependency is down; the client may retry.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is unavailable; retry shortly",
        )
        .with_header(header::RETRY_AFTER, "1".to_owned())
    }

    /// A storage failure keeps its meaning: transient → 503 with `Retry-After` (try again),
    /// permanent → 500 (a bug or bad data that a retry would repeat).
    pub fn storage(e: crate::platform::store::StoreError) -> Self {
        if e.is_transient() {
            Self::unavailable(e)
        } else {
            Self::internal(e)
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.extra_headers.push((name, value));
        self
    }

    pub fn into_response(self) -> ApiResponse {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = json_body(&Body {
            type_uri: format!("urn:qotd:problem:{}", self.slug),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
        });
        let mut res = http::Response::new(Bytes::from(body));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.extra_headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        res
    }
}
