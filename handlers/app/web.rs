//! The player page: `handlers/web/*` embedded at build time and served by three anonymous
//! HTTP functions, plus the dev issuer's sign-in flow.
//!
//! - `WebRoot` (`GET /`, route `{ignored:maxlength(0)?}`): 302 to `/play/`. The host routes the
//!   site root to a function only through such a template (see ARCHITECTURE.md, Decisions);
//!   the handler tells this forwarded request from the host's own `GET /` probe by the
//!   invocation id header the host adds to forwarded requests.
//! - `WebPage` (`GET /play/{*path}`): the files, with ETags, cache policy and security headers.
//! - `WebConfig` (`GET /api/web-config`): the page's sign-in settings.

use super::App;
use crate::embedded::WEB_FILES;
use crate::platform::auth::dev_issuer;
use crate::platform::http::static_site::StaticSite;
use crate::platform::http::{ApiRequest, ApiResponse, Problem, json_response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};

/// Where the page lives (its assets are relative to it).
pub const PAGE_PATH: &str = "/play/";
/// The client id the page uses with the dev issuer.
pub const DEV_CLIENT_ID: &str = "qotd-web";
/// The scopes the page requests from the dev issuer.
pub const DEV_SCOPE: &str = "openid quiz.play";

/// The embedded page.
pub fn site() -> StaticSite {
    StaticSite::new(WEB_FILES, "index.html")
}

/// The browser-visible origin of a request: `X-Forwarded-Host` (set by `qotd local`'s host)
/// or `Host`, over `X-Forwarded-Proto` or http. Only used for the dev issuer's URLs.
pub fn public_origin(req: &ApiRequest, fallback: &str) -> String {
    let host = req
        .header("x-forwarded-host")
        .or_else(|| req.header("host"))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        });
    let proto = match req.header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    match host {
        Some(h) => format!("{proto}://{h}"),
        None => fallback.to_owned(),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &url[..scheme.len() + 3 + end]
}

fn redirect(location: &str) -> ApiResponse {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The sign-in settings the page gets from `GET /api/web-config`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebConfig {
    pub authority: String,
    pub client_id: String,
    pub scope: String,
    pub redirect_path: String,
}

impl App {
    /// The page's sign-in settings: from `QOTD_WEB_*`, or with the dev issuer on, defaults
    /// pointing at it. `None` when this deployment has no web sign-in configured.
    pub fn web_config(&self, req: &ApiRequest) -> Option<WebConfig> {
        let w = &self.settings.web;
        let dev = self.dev_issuer.is_some();
        let authority = w.authority.clone().or_else(|| {
            dev.then(|| {
                format!(
                    "{}{}",
                    public_origin(req, self.self_url()),
                    dev_issuer::BASE_PATH
                )
            })
        })?;
        let client_id = w
            .client_id
            .clone()
            .or_else(|| dev.then(|| DEV_CLIENT_ID.to_owned()))?;
        let scope = w.scope.clone().unwrap_or_else(|| {
            if dev {
                DEV_SCOPE.to_owned()
            } else {
                "openid".to_owned()
            }
        });
        Some(WebConfig {
            authority,
            client_id,
            scope,
            redirect_path: PAGE_PATH.to_owned(),
        })
    }

    /// The headers every page response carries.
    fn page_security_headers(&self, req: &ApiRequest) -> Vec<(HeaderName, HeaderValue)> {
        let authority = self
            .web_config(req)
            .map(|c| format!(" {}", origin_of(&c.authority)))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'{authority}; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'{authority}"
        );
        let mut out = vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        if let Ok(v) = HeaderValue::from_str(&csp) {
            out.push((header::CONTENT_SECURITY_POLICY, v));
        }
        out
    }

    /// `GET /` (forwarded by the host): to the page.
    pub(super) fn web_root(&self, req: &ApiRequest) -> Result<ApiResponse, Problem> {
        let _ = req;
        Ok(redirect(PAGE_PATH))
    }

    /// `GET /play/{*path}`: one file of the page.
    pub(super) fn web_page(&self, req: &ApiRequest) -> Result<ApiResponse, Problem> {
        if !req.path.ends_with('/') && req.param("path").is_empty() {
            let mut to = PAGE_PATH.to_owned();
            if !req.query.is_empty() {
                to.push('?');
                to.push_str(&req.query);
            }
            return Ok(redirect(&to));
        }
        let name = req.param("path");
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(Problem::not_found(format!("no file {name} in the page")));
        }
        let extra = self.page_security_headers(req);
        self.web
            .serve(name, &req.query, &req.headers, &extra)
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "no file '{}' in the page",
                    name.chars().take(100).collect::<String>()
                ))
            })
    }

    /// `GET /api/web-config`.
    pub(super) fn web_config_function(&self, req: &ApiRequest) -> Result<ApiResponse, Problem> {
        req.query(&[])?;
        let config = self.web_config(req).ok_or_else(|| {
            Problem::not_found(
                "this deployment has no web sign-in configured (QOTD_WEB_CLIENT_ID, QOTD_WEB_AUTHORITY)",
            )
        })?;
        let mut res = json_response(StatusCode::OK, &config);
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_page_is_small_and_complete() {
        let s = site();
        let mut names: Vec<&str> = s.names().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "api.js",
                "app.css",
                "app.js",
                "auth.js",
                "favicon.svg",
                "index.html",
                "ui.js"
            ]
        );
        let total: usize = names.iter().map(|n| s.body(n).unwrap().len()).sum();
        assert!(total < 100 * 1024, "first load is {total} bytes");
        assert_eq!(
            origin_of("http://127.0.0.1:7071/dev/oidc"),
            "http://127.0.0.1:7071"
        );
        assert_eq!(
            origin_of("https://x.ciamlogin.com/tid/v2.0"),
            "https://x.ciamlogin.com"
        );
    }
}
