//! CORS for the API, answered only for configured origins: a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) from an allowed origin gets a 204 naming the allowed
//! methods and headers; a preflight from any other origin a 403 without CORS headers; an
//! ordinary request from an allowed origin gets `Access-Control-Allow-Origin` added. With no
//! origins configured (the default) nothing is added, and browsers keep the API same-origin.

use super::{ApiRequest, ApiResponse, Problem};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};

const ALLOW_METHODS: &str = "GET, POST";
const ALLOW_HEADERS: &str = "authorization, content-type, x-correlation-id";
const EXPOSE_HEADERS: &str = "date, location, etag, retry-after";

/// The origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    /// Origins such as `https://play.example.com` (scheme, host and optional port; no path).
    pub fn new(origins: Vec<String>) -> Self {
        Self {
            origins: origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn allowed<'a>(&self, req: &'a ApiRequest) -> Option<&'a str> {
        self.allowed_origin(req.header("origin"))
    }

    fn allowed_origin<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        let origin = origin?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then_some(origin)
    }

    /// The answer to a preflight request, or `None` when `req` is not one.
    pub fn preflight(&self, req: &ApiRequest) -> Option<ApiResponse> {
        if req.method != Method::OPTIONS
            || req.header("origin").is_none()
            || req.header("access-control-request-method").is_none()
        {
            return None;
        }
        let Some(origin) = self.allowed(req) else {
            return Some(
                Problem::forbidden("this origin may not call the API from a browser")
                    .into_response(),
            );
        };
        let mut res = http::Response::new(Bytes::new());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        Some(res)
    }

    /// Adds the CORS headers to an ordinary answer when the request's origin is allowed.
    /// `origin` is the request's `Origin` header (the request itself is gone by now: it was
    /// moved into the handler).
    pub fn decorate(&self, origin: Option<&str>, res: &mut ApiResponse) {
        let h = res.headers_mut();
        if !self.origins.is_empty() {
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        let Some(origin) = self.allowed_origin(origin) else {
            return;
        };
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn req(method: Method, origin: &str, preflight: bool) -> ApiRequest {
        let mut headers = HeaderMap::new();
        headers.insert("origin", origin.parse().unwrap());
        if preflight {
            headers.insert("access-control-request-method", "POST".parse().unwrap());
        }
        ApiRequest {
            method,
            path: "/api/users/me".into(),
            query: String::new(),
            headers,
            body: Bytes::new(),
            params: Default::default(),
        }
    }

    #[test]
    fn only_configured_origins_get_cors_headers() {
        let p = CorsPolicy::new(vec!["https://play.example.com/".into()]);
        let ok = p
            .preflight(&req(Method::OPTIONS, "https://play.example.com", true))
            .unwrap();
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://play.example.com"
        );
        let bad = p
            .preflight(&req(Method::OPTIONS, "https://evil.example", true))
            .unwrap();
        assert_eq!(bad.status(), StatusCode::FORBIDDEN);
        assert!(
            !bad.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        assert!(
            p.preflight(&req(Method::GET, "https://play.example.com", false))
                .is_none()
        );
        let mut res = http::Response::new(Bytes::new());
        p.decorate(
            req(Method::GET, "https://evil.example", false).header("origin"),
            &mut res,
        );
        assert!(
            !res.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        let none = CorsPolicy::default();
        assert_eq!(
            none.preflight(&req(Method::OPTIONS, "https://play.example.com", true))
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
