//! The player page over plain HTTP (no browser): routes, cache headers, security headers,
//! `/api/web-config`, CORS, and the dev issuer's sign-in endpoints being there only while the
//! dev issuer is on.

mod support;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::redirect::Policy;
use serde_json::Value;
use support::app::spawn_local_with;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn the_page_is_served_with_cache_and_security_headers() {
    let app = spawn_local_with(&[("QOTD_LOCAL_TIMERS", "false")]).await;
    let http = client();

    let root = http.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(h(root.headers(), "location"), "/play/");
    let bare = http.get(app.url("/play")).send().await.unwrap();
    assert_eq!(h(bare.headers(), "location"), "/play/");
    // The handler's own probe at `GET /` stays a constant `{}`.
    let probe = http.get(format!("{}/", app.handler)).send().await.unwrap();
    assert_eq!(probe.status(), 200);
    assert_eq!(probe.text().await.unwrap(), "{}");

    let page = http.get(app.url("/play/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(h(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(h(&headers, "cache-control"), "no-cache");
    assert_eq!(h(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(h(&headers, "referrer-policy"), "no-referrer");
    let csp = h(&headers, "content-security-policy");
    let origin = app.base.clone();
    assert_eq!(
        csp,
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' {origin}; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self' {origin}"
        )
    );
    let etag = h(&headers, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let html = page.text().await.unwrap();
    let mut total = html.len();

    let again = http
        .get(app.url("/play/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // Every file the page names, under its hash: cacheable for a year, right content type.
    let mut named = 0;
    for part in html.split('"') {
        let Some((file, v)) = part.split_once("?v=") else {
            continue;
        };
        named += 1;
        let res = http
            .get(app.url(&format!("/play/{file}?v={v}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(
            h(res.headers(), "cache-control"),
            "public, max-age=31536000, immutable"
        );
        if file.ends_with(".js") {
            assert_eq!(
                h(res.headers(), "content-type"),
                "text/javascript; charset=utf-8"
            );
        }
        assert_eq!(h(res.headers(), "x-content-type-options"), "nosniff");
        total += res.bytes().await.unwrap().len();
    }
    assert!(named >= 5, "the page names its files with hashes");
    assert!(total < 100 * 1024, "first load is {total} bytes");
    eprintln!("first load: {total} bytes uncompressed");
    // A module import (no hash) revalidates instead.
    let import = http.get(app.url("/play/ui.js")).send().await.unwrap();
    assert_eq!(h(import.headers(), "cache-control"), "no-cache");
    for missing in ["/play/nope.js", "/play/..%2Fbuild.rs", "/play/a/b.js"] {
        let res = http.get(app.url(missing)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{missing}");
    }

    let config: Value = http
        .get(app.url("/api/web-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["authority"], format!("{origin}/dev/oidc"));
    assert_eq!(config["clientId"], "qotd-web");
    assert_eq!(config["scope"], "openid quiz.play");
    assert_eq!(config["redirectPath"], "/play/");
    let discovery: Value = http
        .get(app.url("/dev/oidc/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["authorization_endpoint"],
        format!("{origin}/dev/oidc/authorize")
    );
    assert_eq!(
        discovery["token_endpoint"],
        format!("{origin}/dev/oidc/token")
    );
}

#[tokio::test]
async fn cors_only_for_configured_origins_and_no_dev_sign_in_without_the_dev_issuer() {
    let app = spawn_local_with(&[
        ("QOTD_LOCAL_TIMERS", "false"),
        ("QOTD_DEV_ISSUER", "false"),
        (
            "QOTD_AUTH_METADATA_URL",
            "http://127.0.0.1:9/.well-known/openid-configuration",
        ),
        ("QOTD_AUTH_AUDIENCE", "api://qotd"),
        ("QOTD_CORS_ALLOWED_ORIGINS", "https://play.example.com"),
    ])
    .await;
    let http = client();
    for path in [
        "/dev/oidc/authorize?response_type=code",
        "/dev/oidc/.well-known/openid-configuration",
    ] {
        let res = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = http.post(app.url("/dev/oidc/token")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = http.get(app.url("/api/web-config")).send().await.unwrap();
    assert_eq!(res.status(), 404, "no web sign-in configured");

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, app.url("/api/quizzes/today"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://play.example.com").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        h(ok.headers(), "access-control-allow-origin"),
        "https://play.example.com"
    );
    assert!(h(ok.headers(), "access-control-allow-headers").contains("authorization"));
    let bad = preflight("https://evil.example").await.unwrap();
    assert_eq!(bad.status(), 403);
    assert!(bad.headers().get("access-control-allow-origin").is_none());

    let get = |origin: &'static str| {
        http.get(app.url("/api/health"))
            .header("origin", HeaderValue::from_static(origin))
            .send()
    };
    let ok = get("https://play.example.com").await.unwrap();
    assert_eq!(
        h(ok.headers(), "access-control-allow-origin"),
        "https://play.example.com"
    );
    let other = get("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn configured_web_sign_in_is_served_and_allowed_by_the_csp() {
    let app = spawn_local_with(&[
        ("QOTD_LOCAL_TIMERS", "false"),
        ("QOTD_WEB_CLIENT_ID", "11111111-1111-1111-1111-111111111111"),
        (
            "QOTD_WEB_AUTHORITY",
            "https://qotd.ciamlogin.com/00000000-0000-0000-0000-000000000000/v2.0/",
        ),
        ("QOTD_WEB_API_SCOPE", "openid api://qotd/quiz.play"),
    ])
    .await;
    let http = client();
    let config: Value = http
        .get(app.url("/api/web-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["authority"],
        "https://qotd.ciamlogin.com/00000000-0000-0000-0000-000000000000/v2.0"
    );
    assert_eq!(config["scope"], "openid api://qotd/quiz.play");
    let page = http.get(app.url("/play/")).send().await.unwrap();
    let csp = h(page.headers(), "content-security-policy");
    assert!(
        csp.contains("connect-src 'self' https://qotd.ciamlogin.com;")
            && csp.ends_with("form-action 'self' https://qotd.ciamlogin.com"),
        "{csp}"
    );
    let res = http
        .get(app.url("/api/web-config?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
