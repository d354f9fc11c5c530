//! Bad input, table-driven: every case must get a 4xx `application/problem+json` whose `detail`
//! names the problem, never a 5xx, and nothing may be stored.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};
use support::app::*;

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Body,
    status: u16,
    detail: &'static str,
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Tokens signed in every wrong way that matters.
struct Forger {
    key: EncodingKey,
    kid: String,
}

impl Forger {
    fn sign(&self, claims: Value) -> String {
        encode(
            &Header {
                kid: Some(self.kid.clone()),
                ..Header::new(Algorithm::RS256)
            },
            &claims,
            &self.key,
        )
        .unwrap()
    }
    fn claims(&self, user: &str) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({"iss": "urn:qotd:local-dev-issuer", "aud": "qotd-local", "sub": user, "scp": "quiz.play", "iat": now, "nbf": now, "exp": now + 600})
    }
    fn with(&self, user: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut c = self.claims(user);
        change(&mut c);
        self.sign(c)
    }
}

fn other_rsa_key() -> EncodingKey {
    use aws_lc_rs::encoding::AsDer;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap();
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn bad_input_gets_precise_4xx_problems_and_changes_nothing() {
    let app = spawn_local().await;
    let player = app.register("player").await;
    let today = app.today(&player).await["date"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = app.token("stranger", &[]);
    let (_, jwks) = app.get("/dev/oidc/keys", &player).await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let real = Forger {
        key: EncodingKey::from_rsa_pem(
            &std::fs::read(app.data_dir.join("dev-issuer-key.pem")).unwrap(),
        )
        .unwrap(),
        kid: kid.clone(),
    };
    let forged = Forger {
        key: other_rsa_key(),
        kid: kid.clone(),
    };
    let now = jsonwebtoken::get_current_timestamp();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&real.claims("player"))
    );
    let hs256 = encode(
        &Header {
            kid: Some(kid.clone()),
            ..Header::new(Algorithm::HS256)
        },
        &real.claims("player"),
        &EncodingKey::from_secret(jwks.to_string().as_bytes()),
    )
    .unwrap();

    let register = |name: &'static str, body: Body, status: u16, detail: &'static str| Case {
        name,
        method: Method::POST,
        path: "/api/users/me".into(),
        token: Some(stranger.clone()),
        body,
        status,
        detail,
    };
    let get =
        |name: &'static str, path: String, token: &str, status: u16, detail: &'static str| Case {
            name,
            method: Method::GET,
            path,
            token: Some(token.to_owned()),
            body: Body::None,
            status,
            detail,
        };
    let attempt =
        |name: &'static str, date: &str, body: Body, status: u16, detail: &'static str| Case {
            name,
            method: Method::POST,
            path: format!("/api/quizzes/{date}/attempts"),
            token: Some(player.clone()),
            body,
            status,
            detail,
        };
    let auth = |name: &'static str, token: String, detail: &'static str| Case {
        name,
        method: Method::GET,
        path: "/api/quizzes/today".into(),
        token: Some(token),
        body: Body::None,
        status: 401,
        detail,
    };
    let raw = |ct: &'static str, s: &str| Body::Raw(ct, s.to_owned());

    let cases = vec![
        register(
            "malformed JSON",
            raw("application/json", "{"),
            400,
            "not valid",
        ),
        register("empty body", raw("application/json", ""), 400, "empty"),
        register(
            "name of wrong type",
            Body::Json(json!({"displayName": 5})),
            422,
            "displayName",
        ),
        register("missing name", Body::Json(json!({})), 422, "displayName"),
        register(
            "unknown field",
            Body::Json(json!({"displayName": "x", "admin": true})),
            422,
            "admin",
        ),
        register("array body", Body::Json(json!([])), 422, "not valid"),
        register("null body", Body::Json(Value::Null), 422, "not valid"),
        register(
            "blank name",
            Body::Json(json!({"displayName": "   "})),
            422,
            "non-space",
        ),
        register(
            "overlong name",
            Body::Json(json!({"displayName": "n".repeat(41)})),
            422,
            "41 characters",
        ),
        register(
            "control character",
            Body::Json(json!({"displayName": "bad\u{7}name"})),
            422,
            "control",
        ),
        register(
            "zero-width space",
            Body::Json(json!({"displayName": "\u{200B}"})),
            422,
            "U+200B",
        ),
        register(
            "blank Braille pattern",
            Body::Json(json!({"displayName": "\u{2800}\u{2800}"})),
            422,
            "visible",
        ),
        register(
            "Hangul filler",
            Body::Json(json!({"displayName": "\u{3164}"})),
            422,
            "U+3164",
        ),
        register(
            "byte order mark",
            Body::Json(json!({"displayName": "Ada\u{FEFF}"})),
            422,
            "U+FEFF",
        ),
        register(
            "right-to-left override",
            Body::Json(json!({"displayName": "evil\u{202E}gnp.exe"})),
            422,
            "U+202E",
        ),
        register(
            "body over 64 KiB",
            Body::Json(json!({"displayName": "x".repeat(70 * 1024)})),
            413,
            "65536 bytes",
        ),
        register(
            "wrong content type",
            raw("text/plain", r#"{"displayName":"x"}"#),
            415,
            "application/json",
        ),
        get(
            "month 13",
            "/api/quizzes/2026-13-01".into(),
            &player,
            400,
            "not a valid calendar date",
        ),
        get(
            "word for a date",
            "/api/quizzes/yesterday".into(),
            &player,
            400,
            "YYYY-MM-DD",
        ),
        get(
            "30 February",
            "/api/quizzes/2026-02-30".into(),
            &player,
            400,
            "not a valid calendar date",
        ),
        get(
            "SQL in a date",
            "/api/quizzes/2026-11-27'%20OR%20'1'='1".into(),
            &player,
            400,
            "YYYY-MM-DD",
        ),
        get(
            "future quiz",
            "/api/quizzes/2099-01-01".into(),
            &player,
            404,
            "no quiz for 2099-01-01",
        ),
        attempt(
            "too few answers",
            &today,
            Body::Json(json!({"answers": [0, 1]})),
            422,
            "2 entries",
        ),
        attempt(
            "choice out of range",
            &today,
            Body::Json(json!({"answers": [0, 1, 2, 3, 4]})),
            422,
            "answers[4] is 4",
        ),
        attempt(
            "negative choice",
            &today,
            Body::Json(json!({"answers": [-1, 0, 0, 0, 0]})),
            422,
            "answers[0] is -1",
        ),
        attempt(
            "choice as string",
            &today,
            Body::Json(json!({"answers": ["0", 1, 2, 3, 0]})),
            422,
            "answers[0]",
        ),
        attempt(
            "fractional choice",
            &today,
            Body::Json(json!({"answers": [0.5, 1, 2, 3, 0]})),
            422,
            "answers[0]",
        ),
        attempt(
            "answers not a list",
            &today,
            Body::Json(json!({"answers": "01230"})),
            422,
            "answers",
        ),
        attempt("no answers", &today, Body::Json(json!({})), 422, "answers"),
        attempt(
            "trailing bytes after the JSON body",
            &today,
            raw("application/json", "{\"answers\":[1,1,1,1,1]}\u{0}garbage"),
            400,
            "only whitespace may follow",
        ),
        attempt(
            "another day",
            "2026-01-01",
            Body::Json(json!({"answers": [0, 1, 2, 3, 0]})),
            409,
            "only today's quiz",
        ),
        Case {
            token: Some(stranger.clone()),
            ..attempt(
                "unregistered player",
                &today,
                Body::Json(json!({"answers": [0, 1, 2, 3, 0]})),
                403,
                "register first",
            )
        },
        get(
            "unknown period",
            "/api/leaderboard?period=monthly".into(),
            &player,
            400,
            "'period'",
        ),
        get(
            "SQL in period",
            "/api/leaderboard?period=daily'%20OR%201=1--".into(),
            &player,
            400,
            "'period'",
        ),
        get(
            "limit zero",
            "/api/leaderboard?limit=0".into(),
            &player,
            400,
            "'limit' is 0",
        ),
        get(
            "limit too large",
            "/api/leaderboard?limit=101".into(),
            &player,
            400,
            "'limit' is 101",
        ),
        get(
            "negative limit",
            "/api/leaderboard?limit=-1".into(),
            &player,
            400,
            "'limit'",
        ),
        get(
            "SQL in limit",
            "/api/leaderboard?limit=1;DROP%20TABLE%20users_profiles".into(),
            &player,
            400,
            "'limit'",
        ),
        get(
            "negative offset",
            "/api/leaderboard?offset=-5".into(),
            &player,
            400,
            "'offset'",
        ),
        get(
            "short date",
            "/api/leaderboard?date=2026-1-1".into(),
            &player,
            400,
            "'date'",
        ),
        get(
            "date with alltime",
            format!("/api/leaderboard?period=alltime&date={today}"),
            &player,
            400,
            "does not apply",
        ),
        get(
            "misspelt parameter",
            "/api/leaderboard?perod=daily".into(),
            &player,
            400,
            "unknown query parameter 'perod'",
        ),
        get(
            "repeated parameter",
            "/api/leaderboard?limit=5&limit=6".into(),
            &player,
            400,
            "more than once",
        ),
        get(
            "future daily board",
            "/api/leaderboard?date=2099-01-01".into(),
            &player,
            404,
            "no daily leaderboard",
        ),
        get(
            "history limit not a number",
            "/api/users/me/attempts?limit=ten".into(),
            &player,
            400,
            "'limit'",
        ),
        get(
            "share for a day not played",
            format!("/api/users/me/attempts/{today}/share"),
            &player,
            404,
            "no attempt",
        ),
        Case {
            token: None,
            ..auth("no token", String::new(), "missing Authorization")
        },
        auth("empty bearer", String::new(), "empty bearer"),
        auth("garbage token", "abc.def.ghi".into(), "malformed"),
        auth(
            "expired",
            real.with("player", |c| c["exp"] = json!(now - 3600)),
            "expired",
        ),
        auth(
            "not yet valid",
            real.with("player", |c| c["nbf"] = json!(now + 3600)),
            "not valid yet",
        ),
        auth(
            "wrong audience",
            real.with("player", |c| c["aud"] = json!("someone-else")),
            "audience",
        ),
        auth(
            "wrong issuer",
            real.with("player", |c| c["iss"] = json!("https://evil.example/")),
            "issuer",
        ),
        auth(
            "no subject",
            real.with("player", |c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            "'sub'",
        ),
        auth(
            "forged signature",
            forged.sign(forged.claims("player")),
            "signature",
        ),
        auth("alg none", alg_none, "malformed"),
        auth("HS256 with the public key as secret", hs256, "not allowed"),
        auth(
            "unknown kid",
            Forger {
                key: other_rsa_key(),
                kid: "rotated-away".into(),
            }
            .sign(real.claims("player")),
            "not published",
        ),
        auth(
            "crit header",
            {
                let input = format!(
                    "{}.{}",
                    b64(&json!({"alg": "RS256", "kid": kid, "crit": ["x-ext"], "x-ext": 1})),
                    b64(&real.claims("player"))
                );
                let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &real.key, Algorithm::RS256)
                    .unwrap();
                format!("{input}.{sig}")
            },
            "crit",
        ),
        auth(
            "iss as an array",
            real.with("player", |c| {
                c["iss"] = json!(["urn:qotd:local-dev-issuer"])
            }),
            "'iss'",
        ),
        auth(
            "exp = 2^63",
            real.with("player", |c| c["exp"] = json!(1u64 << 63)),
            "'exp'",
        ),
        auth(
            "ID token (nonce)",
            real.with("player", |c| c["nonce"] = json!("abc")),
            "ID token",
        ),
        auth(
            "neither scp nor roles",
            real.with("player", |c| {
                c.as_object_mut().unwrap().remove("scp");
            }),
            "neither 'scp' nor 'roles'",
        ),
        auth("blank subject", real.with(" ", |_| {}), "subject"),
        auth(
            "invisible subject",
            real.with("\u{200B}", |_| {}),
            "subject",
        ),
        Case {
            status: 403,
            ..auth(
                "delegated token without the scope",
                real.with("player", |c| c["scp"] = json!("User.Read")),
                "'quiz.play'",
            )
        },
        Case {
            status: 403,
            ..auth(
                "app-only token without the service role",
                real.with("player", |c| {
                    c.as_object_mut().unwrap().remove("scp");
                    c["idtyp"] = json!("app");
                    c["roles"] = json!(["admin"]);
                }),
                "'quiz.service'",
            )
        },
        Case {
            name: "player calls admin",
            method: Method::POST,
            path: format!("/api/admin/quizzes/{today}/generate"),
            token: Some(player.clone()),
            body: Body::None,
            status: 403,
            detail: "'admin' role",
        },
        Case {
            method: Method::DELETE,
            ..get(
                "wrong method",
                "/api/users/me".into(),
                &player,
                405,
                "GET, POST",
            )
        },
        get(
            "unknown route",
            "/api/nope".into(),
            &player,
            404,
            "/api/nope",
        ),
    ];
    assert!(cases.len() >= 30);

    for case in cases {
        let mut req = app.http.request(case.method.clone(), app.url(&case.path));
        match &case.token {
            Some(t) if t.is_empty() => req = req.header("authorization", "Bearer "),
            Some(t) => req = req.bearer_auth(t),
            None => {}
        }
        req = match case.body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, s) => req.header("content-type", ct).body(s),
        };
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let challenge = res.headers().get("www-authenticate").is_some();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(
            ct.as_deref(),
            Some("application/problem+json"),
            "{}",
            case.name
        );
        assert_eq!(body["status"], status, "{}", case.name);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(case.detail),
            "{}: detail {detail:?} should mention {:?}",
            case.name,
            case.detail
        );
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:qotd:problem:"),
            "{}",
            case.name
        );
        if status == 401 {
            assert!(challenge, "{}: 401 must carry WWW-Authenticate", case.name);
        }
    }

    // Nothing was stored by any of it.
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM users_profiles"),
        1,
        "only the setup registration"
    );
    assert_eq!(app.db_count("SELECT COUNT(*) FROM quiz_attempts"), 0);
    assert_eq!(app.db_count("SELECT COUNT(*) FROM quiz_quizzes"), 1);
    assert_eq!(app.db_count("SELECT COUNT(*) FROM platform_poison"), 0);
    // SQL meta-characters in a valid name are data, stored verbatim.
    let token = app.token("bobby", &[]);
    let name = "Robert'); DROP TABLE users_profiles;--";
    let (status, profile) = app
        .call(
            Method::POST,
            "/api/users/me",
            Some(&token),
            Some(json!({ "displayName": name })),
        )
        .await;
    assert_eq!((status, profile["displayName"].as_str()), (201, Some(name)));
    assert_eq!(app.db_count("SELECT COUNT(*) FROM users_profiles"), 2);
}

/// Sends raw bytes and returns what the server answered within two seconds.
async fn raw_http(base: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // One complete answer is enough.
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn black_box_probe_findings_are_fixed() {
    let app = spawn_local().await;
    let token = app.register("prober").await;
    let invocation = json!({"Data": {"message": "{}"}, "Metadata": {}}).to_string();
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{invocation}",
            invocation.len()
        )
    };
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        )
    };
    // (name, listener, request, expected status line start, must be problem+json)
    let cases: Vec<(&str, &str, String, &str, bool)> = vec![
        (
            "raw dot segments to an internal function",
            &app.base,
            post("/dev/oidc/../../LeaderboardOnAttemptEvaluated"),
            "HTTP/1.1 400",
            true,
        ),
        (
            "encoded dot segments to an internal function",
            &app.base,
            post("/dev/oidc/%2e%2e/%2E%2E/LeaderboardOnUserRegistered"),
            "HTTP/1.1 400",
            true,
        ),
        (
            "encoded dot segment in a route parameter",
            &app.base,
            get("/api/quizzes/%2e%2e"),
            "HTTP/1.1 400",
            true,
        ),
        (
            "dev issuer prefix is not forwarded",
            &app.base,
            get("/dev/oidc/anything"),
            "HTTP/1.1 404",
            true,
        ),
        (
            "internal function on the public port",
            &app.base,
            post("/LeaderboardOnAttemptEvaluated"),
            "HTTP/1.1 404",
            true,
        ),
        (
            "CONNECT",
            &app.base,
            "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n".into(),
            "HTTP/1.1 405",
            true,
        ),
        (
            "CONNECT to the handler",
            &app.handler,
            "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n".into(),
            "HTTP/1.1 405",
            true,
        ),
        (
            "oversize Expect: 100-continue",
            &app.base,
            format!(
                "POST /api/users/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\nexpect: 100-continue\r\n\r\n"
            ),
            "HTTP/1.1 413",
            true,
        ),
        (
            "oversize Content-Length on the handler",
            &app.handler,
            "POST /api/users/me HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000\r\n\r\n".into(),
            "HTTP/1.1 413",
            true,
        ),
        (
            "HEAD on a read route",
            &app.base,
            format!(
                "HEAD /api/quizzes/today HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
            ),
            "HTTP/1.1 200",
            false,
        ),
        (
            "garbage request line",
            &app.base,
            "\x01\x02 nonsense\r\n\r\n".into(),
            "HTTP/1.1 400",
            true,
        ),
        (
            "URI too long",
            &app.base,
            get(&format!("/api/{}", "a".repeat(9000))),
            "HTTP/1.1 414",
            true,
        ),
        (
            "headers too large",
            &app.base,
            format!(
                "GET /api/health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "b".repeat(40_000)
            ),
            "HTTP/1.1 431",
            true,
        ),
        (
            "headers far too large",
            &app.base,
            format!(
                "GET /api/health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "b".repeat(100_000)
            ),
            "HTTP/1.1 431",
            true,
        ),
    ];
    for (name, base, request, status, problem) in cases {
        let answer = raw_http(base, request.as_bytes()).await;
        assert!(answer.starts_with(status), "{name}: {answer:.300}");
        assert!(!answer.contains("100 Continue"), "{name}: {answer:.300}");
        if problem {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("content-type: application/problem+json"),
                "{name}: {answer:.300}"
            );
            assert!(
                answer.contains("urn:qotd:problem:"),
                "{name}: {answer:.300}"
            );
        }
    }
    // HEAD is answered like GET, without the body.
    let head = raw_http(&app.base, format!("HEAD /api/quizzes/today HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n").as_bytes()).await;
    let (_, body) = head.split_once("\r\n\r\n").unwrap();
    assert!(body.is_empty(), "HEAD has no body: {body:.100}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: "),
        "{head}"
    );
    // Still alive, and nothing was applied through the internal protocol.
    assert_eq!(app.get("/api/health", &token).await.0, 200);
    assert_eq!(
        app.db_count("SELECT COUNT(*) FROM platform_poison"),
        0,
        "no invocation got through"
    );
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_local_with(&[
        ("QOTD_HTTP_HEADER_TIMEOUT_SECONDS", "1"),
        ("QOTD_HTTP_IDLE_TIMEOUT_SECONDS", "1"),
        ("QOTD_HTTP_BODY_TIMEOUT_SECONDS", "1"),
        ("QOTD_HTTP_MAX_CONNECTIONS", "20"),
    ])
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // A body that never completes gets a 408 problem after the body timeout.
    let token = app.register("slow").await;
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(format!("POST /api/users/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"disp").as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request-timeout"), "{text}");

    // 60 idle sockets: 20 are held until the header timeout, the rest are closed at once.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let started = std::time::Instant::now();
    let mut closed_at_once = 0;
    for s in &mut idle {
        let mut b = [0u8; 16];
        match tokio::time::timeout(std::time::Duration::from_millis(300), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed_at_once += 1,
            _ => {}
        }
    }
    assert!(
        closed_at_once >= 40,
        "over-cap connections are closed: {closed_at_once}"
    );
    // Within a few seconds every idle socket is gone and the service answers again.
    for s in &mut idle {
        let mut b = [0u8; 16];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut b)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "idle connection closed: {r:?}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(app.get("/api/health", &token).await.0, 200);

    // Clients that go away mid-headers or mid-body are routine: nothing at ERROR.
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let partial = if i % 2 == 0 {
            "GET /api/health HTTP/1.1\r\nhost: x\r\nx-slow: ".to_owned()
        } else {
            format!(
                "POST /api/users/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"a"
            )
        };
        s.write_all(partial.as_bytes()).await.unwrap();
        drop(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let errors: Vec<String> = app
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("ERROR"))
        .cloned()
        .collect();
    assert!(errors.is_empty(), "disconnects are not errors: {errors:#?}");
}
