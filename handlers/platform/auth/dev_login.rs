//! Sign-in through the local dev issuer: the OpenID Connect authorization-code flow with PKCE,
//! so a browser signs in locally along the same code path it uses with Entra External ID.
//!
//! - `GET <base>/authorize?response_type=code&client_id&redirect_uri&state&code_challenge&code_challenge_method=S256[&nonce][&scope]`
//!   answers a one-field "sign in as" form (no script, no style);
//! - `POST <base>/authorize` (that form) redirects (302) to
//!   `redirect_uri?code=<one-time code>&state=<state>`;
//! - `POST <base>/token` (`grant_type=authorization_code&code&redirect_uri&client_id&code_verifier`)
//!   answers `{access_token, token_type, expires_in, id_token, scope}`, or a 400
//!   `{error, error_description}`.
//!
//! A code is single-use, lives 60 seconds and is bound to its client id, redirect URI and
//! PKCE challenge (`base64url(SHA-256(code_verifier))` must equal it). Redirect URIs must be
//! on loopback: this flow exists only for local development and only while the dev issuer is
//! on (the caller decides that).

use super::dev_issuer::{AUDIENCE, BASE_PATH, DevIssuer, ISSUER};
use crate::platform::http::{ApiRequest, ApiResponse, json_response};
use crate::platform::servicebus::url_encode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an authorization code may wait for its exchange.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long an access token from this flow lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The `scp` of every access token from this flow.
pub const ACCESS_SCOPE: &str = "quiz.play";

struct Pending {
    user: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    issued: Instant,
}

/// The outstanding authorization codes.
#[derive(Default)]
pub struct DevLogin {
    codes: Mutex<HashMap<String, Pending>>,
}

/// The authorization request's parameters, from the query (GET) or the form (POST).
struct AuthorizeParams {
    client_id: String,
    redirect_uri: String,
    state: String,
    challenge: String,
    nonce: Option<String>,
    scope: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> ApiResponse {
    let mut res = http::Response::new(Bytes::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn bad_request(detail: &str) -> ApiResponse {
    text(
        StatusCode::BAD_REQUEST,
        format!("dev issuer: {detail}\n"),
        "text/plain; charset=utf-8",
    )
}

fn token_error(error: &str, description: &str) -> ApiResponse {
    let mut res = json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The origin (`scheme://host[:port]`) of a loopback `http` URL, or `None` for anything else.
fn loopback_origin(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = match authority.strip_prefix('[') {
        Some(v6) => &v6[..v6.find(']')?],
        None => authority.split(':').next()?,
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1").then(|| &uri[.."http://".len() + end])
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn random_code() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.chars().count())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl AuthorizeParams {
    fn parse(p: &HashMap<String, String>) -> Result<Self, String> {
        let need = |k: &str| -> Result<String, String> {
            p.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("missing parameter '{k}'"))
        };
        if need("response_type")? != "code" {
            return Err("response_type must be 'code'".into());
        }
        if need("code_challenge_method")? != "S256" {
            return Err("code_challenge_method must be 'S256'".into());
        }
        let redirect_uri = need("redirect_uri")?;
        if loopback_origin(&redirect_uri).is_none() {
            return Err(
                "redirect_uri must be an http:// URL on loopback (127.0.0.1, localhost or [::1])"
                    .into(),
            );
        }
        let challenge = need("code_challenge")?;
        if !(43..=128).contains(&challenge.len()) {
            return Err("code_challenge must be 43 to 128 characters (base64url SHA-256)".into());
        }
        Ok(Self {
            client_id: need("client_id")?,
            redirect_uri,
            state: need("state")?,
            challenge,
            nonce: p.get("nonce").filter(|v| !v.is_empty()).cloned(),
            scope: p.get("scope").filter(|v| !v.is_empty()).cloned(),
        })
    }

    fn hidden_fields(&self) -> String {
        let mut fields = vec![
            ("response_type", "code"),
            ("code_challenge_method", "S256"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("state", self.state.as_str()),
            ("code_challenge", self.challenge.as_str()),
        ];
        if let Some(n) = &self.nonce {
            fields.push(("nonce", n));
        }
        if let Some(s) = &self.scope {
            fields.push(("scope", s));
        }
        fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">\n",
                    html_escape(v)
                )
            })
            .collect()
    }
}

impl DevLogin {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `<base>/authorize` and `<base>/token`; `None` for any other path.
    pub fn handle(&self, issuer: &DevIssuer, req: &ApiRequest) -> Option<ApiResponse> {
        let rest = req.path.strip_prefix(BASE_PATH)?;
        Some(match (rest, &req.method) {
            ("/authorize", &Method::GET) => match req.query_map() {
                Ok(q) => self.form(&q),
                Err(p) => bad_request(&p.detail),
            },
            ("/authorize", &Method::POST) => match req.form_map() {
                Ok(f) => self.authorize(&f),
                Err(p) => bad_request(&p.detail),
            },
            ("/token", &Method::POST) => match req.form_map() {
                Ok(f) => self.token(issuer, &f),
                Err(p) => token_error("invalid_request", &p.detail),
            },
            ("/authorize", _) | ("/token", _) => {
                let mut res = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed\n".into(),
                    "text/plain; charset=utf-8",
                );
                let allow = if rest == "/token" {
                    "POST"
                } else {
                    "GET, POST"
                };
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                res
            }
            _ => return None,
        })
    }

    fn form(&self, q: &HashMap<String, String>) -> ApiResponse {
        let params = match AuthorizeParams::parse(q) {
            Ok(p) => p,
            Err(e) => return bad_request(&e),
        };
        let origin = loopback_origin(&params.redirect_uri).unwrap_or("");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Sign in (local dev issuer)</title>\n</head>\n<body>\n<main>\n\
             <h1>Sign in (local dev issuer)</h1>\n\
             <p>Local development only: any name signs you in as that user.</p>\n\
             <form method=\"post\" action=\"{BASE_PATH}/authorize\">\n{}\
             <label for=\"user\">Sign in as</label>\n\
             <input id=\"user\" data-testid=\"dev-user\" name=\"user\" required maxlength=\"64\" \
             pattern=\"[A-Za-z0-9._@\\-]+\" autocomplete=\"username\" autofocus>\n\
             <button id=\"dev-sign-in\" data-testid=\"dev-sign-in\" type=\"submit\">Sign in</button>\n\
             </form>\n</main>\n</body>\n</html>\n",
            params.hidden_fields()
        );
        let mut res = text(StatusCode::OK, page, "text/html; charset=utf-8");
        let csp = format!(
            "default-src 'none'; form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        res
    }

    fn authorize(&self, f: &HashMap<String, String>) -> ApiResponse {
        let params = match AuthorizeParams::parse(f) {
            Ok(p) => p,
            Err(e) => return bad_request(&e),
        };
        let user = f.get("user").map(|u| u.trim()).unwrap_or("");
        if !valid_user(user) {
            return bad_request("'user' must be 1 to 64 letters, digits, '.', '_', '-' or '@'");
        }
        let code = random_code();
        {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            codes.retain(|_, p| p.issued.elapsed() < CODE_TTL);
            codes.insert(
                code.clone(),
                Pending {
                    user: user.to_owned(),
                    client_id: params.client_id,
                    redirect_uri: params.redirect_uri.clone(),
                    challenge: params.challenge,
                    nonce: params.nonce,
                    issued: Instant::now(),
                },
            );
        }
        let sep = if params.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!(
            "{}{sep}code={}&state={}",
            params.redirect_uri,
            url_encode(&code),
            url_encode(&params.state)
        );
        let mut res = text(
            StatusCode::FOUND,
            String::new(),
            "text/plain; charset=utf-8",
        );
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                res.headers_mut().insert(header::LOCATION, v);
                res
            }
            Err(_) => bad_request("redirect_uri is not a valid header value"),
        }
    }

    fn token(&self, issuer: &DevIssuer, f: &HashMap<String, String>) -> ApiResponse {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            return token_error(
                "unsupported_grant_type",
                "grant_type must be authorization_code",
            );
        }
        let pending = {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            codes.remove(get("code"))
        };
        let Some(p) = pending else {
            return token_error("invalid_grant", "unknown or already used code");
        };
        if p.issued.elapsed() >= CODE_TTL {
            return token_error("invalid_grant", "the code has expired");
        }
        if p.client_id != get("client_id") {
            return token_error("invalid_grant", "client_id does not match the code");
        }
        if p.redirect_uri != get("redirect_uri") {
            return token_error("invalid_grant", "redirect_uri does not match the code");
        }
        let verifier = get("code_verifier");
        if !(43..=128).contains(&verifier.len()) || s256(verifier) != p.challenge {
            return token_error(
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            );
        }
        let now = jsonwebtoken::get_current_timestamp();
        let exp = now + TOKEN_TTL.as_secs();
        let access = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": p.user, "name": p.user,
            "iat": now, "nbf": now, "exp": exp, "roles": [], "scp": ACCESS_SCOPE,
        });
        let mut id = json!({
            "iss": ISSUER, "aud": p.client_id, "sub": p.user, "name": p.user,
            "iat": now, "exp": exp,
        });
        if let Some(n) = &p.nonce {
            id["nonce"] = json!(n);
        }
        let (Ok(access_token), Ok(id_token)) = (issuer.sign(&access), issuer.sign(&id)) else {
            return token_error("server_error", "the dev issuer could not sign the token");
        };
        let mut res = json_response(
            StatusCode::OK,
            &json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL.as_secs(),
                "id_token": id_token,
                "scope": format!("openid {ACCESS_SCOPE}"),
            }),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn req(method: Method, path: &str, query: &str, body: &str) -> ApiRequest {
        ApiRequest {
            method,
            path: format!("{BASE_PATH}{path}"),
            query: query.into(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            params: Default::default(),
        }
    }

    #[test]
    fn code_flow_checks_pkce_and_codes_are_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(dir.path()).unwrap();
        let login = DevLogin::new();
        let verifier = "v".repeat(43);
        let challenge = s256(&verifier);
        let params = format!(
            "response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fplay%2F\
             &state=s%201&nonce=n1&code_challenge={challenge}&code_challenge_method=S256"
        );
        let form = login
            .handle(&issuer, &req(Method::GET, "/authorize", &params, ""))
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK);
        let html = String::from_utf8(form.body().to_vec()).unwrap();
        assert!(html.contains("name=\"user\"") && !html.contains("<script"));
        let evil = params.replace("127.0.0.1", "evil.example");
        let res = login
            .handle(&issuer, &req(Method::GET, "/authorize", &evil, ""))
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);

        let res = login
            .handle(
                &issuer,
                &req(
                    Method::POST,
                    "/authorize",
                    "",
                    &format!("{params}&user=alice"),
                ),
            )
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
        assert!(location.starts_with("http://127.0.0.1:9/play/?code="));
        assert!(location.ends_with("&state=s%201"), "{location}");
        let code = location
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let exchange = |verifier: &str| {
            login
                .handle(
                    &issuer,
                    &req(
                        Method::POST,
                        "/token",
                        "",
                        &format!(
                            "grant_type=authorization_code&code={code}&client_id=web\
                             &redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fplay%2F&code_verifier={verifier}"
                        ),
                    ),
                )
                .unwrap()
        };
        let ok = exchange(&verifier);
        assert_eq!(ok.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_slice(ok.body()).unwrap();
        assert_eq!(body["token_type"], "Bearer");
        let id_payload = body["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        let id: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_payload).unwrap()).unwrap();
        assert_eq!(
            (id["nonce"].as_str(), id["aud"].as_str()),
            (Some("n1"), Some("web"))
        );
        let again = exchange(&verifier);
        assert_eq!(
            again.status(),
            StatusCode::BAD_REQUEST,
            "a code is single-use"
        );
    }

    #[test]
    fn a_wrong_verifier_burns_the_code() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = DevIssuer::load_or_create(dir.path()).unwrap();
        let login = DevLogin::new();
        login.codes.lock().unwrap().insert(
            "c".into(),
            Pending {
                user: "bob".into(),
                client_id: "web".into(),
                redirect_uri: "http://localhost/".into(),
                challenge: s256(&"a".repeat(43)),
                nonce: None,
                issued: Instant::now(),
            },
        );
        let body = format!(
            "grant_type=authorization_code&code=c&client_id=web&redirect_uri=http%3A%2F%2Flocalhost%2F&code_verifier={}",
            "b".repeat(43)
        );
        let res = login
            .handle(&issuer, &req(Method::POST, "/token", "", &body))
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(login.codes.lock().unwrap().is_empty());
        login.codes.lock().unwrap().insert(
            "old".into(),
            Pending {
                user: "bob".into(),
                client_id: "web".into(),
                redirect_uri: "http://localhost/".into(),
                challenge: s256(&"a".repeat(43)),
                nonce: None,
                issued: Instant::now() - CODE_TTL - Duration::from_secs(1),
            },
        );
        let body = body
            .replace("code=c&", "code=old&")
            .replace(&"b".repeat(43), &"a".repeat(43));
        let res = login
            .handle(&issuer, &req(Method::POST, "/token", "", &body))
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "codes expire after 60 s"
        );
        assert!(String::from_utf8_lossy(res.body()).contains("expired"));
        assert_eq!(
            loopback_origin("http://[::1]:80/x"),
            Some("http://[::1]:80")
        );
        assert_eq!(loopback_origin("https://127.0.0.1/"), None);
        assert_eq!(loopback_origin("http://127.0.0.1.evil.example/"), None);
    }
}
