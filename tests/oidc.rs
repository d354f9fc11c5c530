//! The OIDC verifier against local issuers (`support/oidc.rs`) shaped like Entra External ID and
//! Azure AD B2C (discovery document + JWKS over HTTP, keys generated for the test): claims
//! mapping, key rotation, rate-limited refresh, last-good keys when the issuer is down, and every
//! forgery we know.

mod support;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use qotd::platform::auth::AuthError;
use qotd::platform::auth::oidc::{Authorization, OidcSettings, OidcVerifier};
use serde_json::{Value, json};
use std::time::Duration;
use support::oidc::{Key, ec_key, rsa_key, start_issuer};

fn verifier(base: &str, audience: &str, subject: &str, roles: &str) -> OidcVerifier {
    verifier_with(base, audience, subject, roles, Duration::from_secs(60))
}

fn verifier_with(
    base: &str,
    audience: &str,
    subject: &str,
    roles: &str,
    min_refresh: Duration,
) -> OidcVerifier {
    OidcVerifier::new(
        OidcSettings {
            metadata_url: format!("{base}/tenant/v2.0/.well-known/openid-configuration"),
            audiences: vec![audience.into()],
            subject_claim: subject.into(),
            roles_claim: roles.into(),
            leeway: Duration::from_secs(30),
            min_refresh,
            authorization: Authorization::default(),
        },
        reqwest::Client::new(),
    )
}

fn sign(key: &Key, claims: &Value) -> String {
    encode(
        &Header {
            kid: Some(key.kid.clone()),
            ..Header::new(key.alg)
        },
        claims,
        &key.enc,
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

#[tokio::test]
async fn entra_external_id_tokens_map_oid_and_roles() {
    let (base, state) =
        start_issuer(|_| format!("https://{TENANT}.ciamlogin.com/{TENANT}/v2.0")).await;
    let (rsa, ec) = (rsa_key("ext-rsa"), ec_key("ext-ec"));
    state.lock().unwrap().jwks = vec![rsa.jwk.clone(), ec.jwk.clone()];
    let v = verifier(&base, "api://qotd", "oid", "roles");
    let claims = json!({ "iss": format!("https://{TENANT}.ciamlogin.com/{TENANT}/v2.0"), "aud": "api://qotd", "sub": "pairwise-xyz",
        "oid": "00000000-0000-0000-0000-0000000000aa", "tid": TENANT, "roles": ["admin"], "ver": "2.0", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    for key in [&rsa, &ec] {
        let p = v.verify(&sign(key, &claims)).await.unwrap();
        assert_eq!(
            p.user_id.as_str(),
            "00000000-0000-0000-0000-0000000000aa",
            "{:?}",
            key.alg
        );
        assert!(p.has_role("admin"));
    }
    assert_eq!(state.lock().unwrap().jwks_hits, 1, "keys are cached");
}

#[tokio::test]
async fn b2c_tokens_with_trailing_slash_issuer_and_custom_role_attribute() {
    let (base, state) =
        start_issuer(|_| format!("https://contoso.b2clogin.com/{TENANT}/v2.0/")).await;
    let key = rsa_key("b2c-1");
    state.lock().unwrap().jwks = vec![key.jwk.clone()];
    let v = verifier(
        &base,
        "11112222-bbbb-3333-cccc-4444dddd5555",
        "sub",
        "extension_Role",
    );
    let claims = json!({ "iss": format!("https://contoso.b2clogin.com/{TENANT}/v2.0/"), "aud": "11112222-bbbb-3333-cccc-4444dddd5555",
        "sub": "b2c-user-1", "tfp": "B2C_1_signupsignin", "emails": ["a@example.com"], "extension_Role": "admin", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    let p = v.verify(&sign(&key, &claims)).await.unwrap();
    assert_eq!(
        (p.user_id.as_str(), p.roles.clone()),
        ("b2c-user-1", vec!["admin".to_owned()])
    );
    let mut c2 = claims.clone();
    c2["iss"] = json!(format!("https://contoso.b2clogin.com/{TENANT}/v2.0"));
    assert!(
        matches!(v.verify(&sign(&key, &c2)).await, Err(AuthError::Rejected(m)) if m.contains("issuer")),
        "the issuer must match exactly"
    );
}

#[tokio::test]
async fn key_rotation_refreshes_once_and_unknown_kids_are_rate_limited() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let (old, new) = (rsa_key("old"), rsa_key("new"));
    let strangers: Vec<Key> = (0..5).map(|i| rsa_key(&format!("stranger-{i}"))).collect();
    state.lock().unwrap().jwks = vec![old.jwk.clone()];
    let v = verifier_with(&base, "aud", "sub", "roles", Duration::from_secs(1));
    let claims = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    v.verify(&sign(&old, &claims)).await.unwrap();
    // The issuer rotates (later than the refresh rate limit): a token signed by the new key
    // triggers exactly one refresh.
    state.lock().unwrap().jwks = vec![old.jwk.clone(), new.jwk.clone()];
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.verify(&sign(&new, &claims)).await.unwrap();
    assert_eq!(state.lock().unwrap().jwks_hits, 2);
    // Unknown kids after that refresh are refused without hammering the issuer.
    for stranger in &strangers {
        let err = v.verify(&sign(stranger, &claims)).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::Rejected(m) if m.contains("not published")),
            "{err:?}"
        );
    }
    assert_eq!(
        state.lock().unwrap().jwks_hits,
        2,
        "refresh is rate-limited"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_keeps_the_last_good_keys() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let key = rsa_key("k1");
    state.lock().unwrap().jwks = vec![key.jwk.clone()];
    let v = OidcVerifier::new(
        OidcSettings {
            metadata_url: format!("{base}/tenant/v2.0/.well-known/openid-configuration"),
            audiences: vec!["aud".into()],
            subject_claim: "sub".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
            min_refresh: Duration::ZERO,
            authorization: Authorization::default(),
        },
        reqwest::Client::new(),
    );
    let claims = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    v.verify(&sign(&key, &claims)).await.unwrap();
    state.lock().unwrap().down = true;
    // An unknown kid forces a refresh that fails: the known key still works.
    assert!(v.verify(&sign(&rsa_key("other"), &claims)).await.is_err());
    let mut c2 = claims.clone();
    c2["sub"] = json!("u2");
    assert_eq!(
        v.verify(&sign(&key, &c2)).await.unwrap().user_id.as_str(),
        "u2"
    );

    // With no keys ever fetched, an unreachable issuer is a 503-class error, not a 401.
    let fresh = verifier(&base, "aud", "sub", "roles");
    assert!(matches!(
        fresh.verify(&sign(&key, &claims)).await,
        Err(AuthError::IssuerUnavailable(_))
    ));
}

#[tokio::test]
async fn forgeries_and_wrong_claims_are_rejected() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let key = rsa_key("k1");
    state.lock().unwrap().jwks = vec![key.jwk.clone()];
    let v = verifier(&base, "aud", "sub", "roles");
    let good = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    v.verify(&sign(&key, &good)).await.unwrap();
    let with = |k: &str, val: Value| {
        let mut c = good.clone();
        c[k] = val;
        c
    };
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let jwks_text = serde_json::to_string(&JwkSet {
        keys: vec![key.jwk.clone()],
    })
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong issuer",
            sign(&key, &with("iss", json!("https://evil.example/"))),
            "issuer",
        ),
        (
            "wrong audience",
            sign(&key, &with("aud", json!("other-api"))),
            "audience",
        ),
        (
            "expired",
            sign(&key, &with("exp", json!(now() - 3600))),
            "expired",
        ),
        (
            "not yet valid",
            sign(&key, &with("nbf", json!(now() + 3600))),
            "not valid yet",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "k1"})),
                b64(&good)
            ),
            "malformed",
        ),
        (
            "HS256 with the public key as secret",
            encode(
                &Header {
                    kid: Some("k1".into()),
                    ..Header::new(Algorithm::HS256)
                },
                &good,
                &EncodingKey::from_secret(jwks_text.as_bytes()),
            )
            .unwrap(),
            "not allowed",
        ),
        (
            "forged with another key",
            sign(
                &Key {
                    kid: "k1".into(),
                    ..rsa_key("k1")
                },
                &good,
            ),
            "signature",
        ),
        (
            "no kid",
            encode(&Header::new(Algorithm::RS256), &good, &key.enc).unwrap(),
            "kid",
        ),
    ];
    for (name, token, needle) in cases {
        match v.verify(&token).await {
            Err(AuthError::Rejected(m)) => assert!(m.contains(needle), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn cache_control_is_honoured_within_floor_and_ceiling() {
    use qotd::platform::auth::oidc::{CACHE_CEILING, CACHE_DEFAULT, CACHE_FLOOR, cache_lifetime};
    assert_eq!(
        cache_lifetime(Some("public, max-age=3600")),
        Duration::from_secs(3600)
    );
    assert_eq!(cache_lifetime(Some("max-age=5")), CACHE_FLOOR);
    assert_eq!(cache_lifetime(Some("max-age=99999999")), CACHE_CEILING);
    assert_eq!(cache_lifetime(Some("no-cache")), CACHE_DEFAULT);
    assert_eq!(cache_lifetime(None), CACHE_DEFAULT);
}

fn verifier_authz(base: &str, authorization: Authorization) -> OidcVerifier {
    OidcVerifier::new(
        OidcSettings {
            metadata_url: format!("{base}/tenant/v2.0/.well-known/openid-configuration"),
            audiences: vec!["aud".into()],
            subject_claim: "sub".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
            min_refresh: Duration::from_secs(60),
            authorization,
        },
        reqwest::Client::new(),
    )
}

#[derive(Debug)]
enum Want {
    Ok,
    Unauthorized(&'static str),
    Forbidden(&'static str),
}

async fn check_table(v: &OidcVerifier, cases: Vec<(&str, String, Want)>) {
    for (name, token, want) in cases {
        let got = v.verify(&token).await;
        match (&want, &got) {
            (Want::Ok, Ok(_)) => {}
            (Want::Unauthorized(n), Err(AuthError::Rejected(m))) if m.contains(n) => {}
            (Want::Forbidden(n), Err(AuthError::Forbidden(m))) if m.contains(n) => {}
            _ => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn tokens_must_grant_this_api_a_scope_or_the_service_role() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let key = rsa_key("k1");
    state.lock().unwrap().jwks = vec![key.jwk.clone()];
    let v = verifier_authz(&base, Authorization::default());
    let base_claims = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "iat": now(), "nbf": now(), "exp": now() + 600 });
    let claims = |extra: Value| {
        let mut c = base_claims.clone();
        for (k, val) in extra.as_object().unwrap() {
            c[k] = val.clone();
        }
        sign(&key, &c)
    };
    let typed = |typ: &str| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("k1".into());
        h.typ = Some(typ.into());
        let mut c = base_claims.clone();
        c["scp"] = json!("quiz.play");
        encode(&h, &c, &key.enc).unwrap()
    };
    check_table(
        &v,
        vec![
            (
                "delegated with the scope",
                claims(json!({"scp": "openid quiz.play"})),
                Want::Ok,
            ),
            (
                "delegated, other scopes only",
                claims(json!({"scp": "quiz.playx User.Read"})),
                Want::Forbidden("'quiz.play'"),
            ),
            (
                "delegated with roles but not the scope",
                claims(json!({"scp": "User.Read", "roles": ["admin"]})),
                Want::Forbidden("'quiz.play'"),
            ),
            (
                "app-only with the service role",
                claims(json!({"idtyp": "app", "roles": ["quiz.service"]})),
                Want::Ok,
            ),
            (
                "app-only (no idtyp) with the service role",
                claims(json!({"roles": ["quiz.service"]})),
                Want::Ok,
            ),
            (
                "app-only with another role",
                claims(json!({"idtyp": "app", "roles": ["admin"]})),
                Want::Forbidden("'quiz.service'"),
            ),
            (
                "app-only with no roles",
                claims(json!({"idtyp": "app"})),
                Want::Forbidden("'quiz.service'"),
            ),
            (
                "app-only cannot borrow a scope",
                claims(json!({"idtyp": "app", "scp": "quiz.play"})),
                Want::Forbidden("'quiz.service'"),
            ),
            (
                "neither scp nor roles",
                claims(json!({})),
                Want::Unauthorized("neither 'scp' nor 'roles'"),
            ),
            (
                "ID token (nonce)",
                claims(json!({"nonce": "n-0S6_WzA2Mj", "scp": "quiz.play"})),
                Want::Unauthorized("ID token"),
            ),
            (
                "ID token (at_hash)",
                claims(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "scp": "quiz.play"})),
                Want::Unauthorized("ID token"),
            ),
            ("typ JWT", typed("JWT"), Want::Ok),
            ("typ at+jwt", typed("at+jwt"), Want::Ok),
            (
                "typ logout+jwt",
                typed("logout+jwt"),
                Want::Unauthorized("typ"),
            ),
        ],
    )
    .await;

    // Allowed B2C user flows.
    let v = verifier_authz(
        &base,
        Authorization {
            allowed_policies: vec!["B2C_1_susi".into()],
            ..Authorization::default()
        },
    );
    check_table(
        &v,
        vec![
            (
                "allowed tfp",
                claims(json!({"scp": "quiz.play", "tfp": "B2C_1_SUSI"})),
                Want::Ok,
            ),
            (
                "allowed acr",
                claims(json!({"scp": "quiz.play", "acr": "b2c_1_susi"})),
                Want::Ok,
            ),
            (
                "other flow",
                claims(json!({"scp": "quiz.play", "tfp": "B2C_1_other"})),
                Want::Forbidden("QOTD_AUTH_ALLOWED_POLICIES"),
            ),
            (
                "no flow",
                claims(json!({"scp": "quiz.play"})),
                Want::Forbidden("QOTD_AUTH_ALLOWED_POLICIES"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn malformed_shapes_are_refused_with_fixed_texts() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let key = rsa_key("k1");
    state.lock().unwrap().jwks = vec![key.jwk.clone()];
    let v = verifier_authz(&base, Authorization::default());
    let good = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    v.verify(&sign(&key, &good)).await.unwrap();
    let with = |k: &str, val: Value| {
        let mut c = good.clone();
        c[k] = val;
        c
    };
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    // A token signed with a crit header: build the signing input by hand.
    let crit = {
        let header = json!({"alg": "RS256", "kid": "k1", "crit": ["exp-ext"], "exp-ext": 1});
        let input = format!("{}.{}", b64(&header), b64(&good));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.enc, Algorithm::RS256).unwrap();
        format!("{input}.{sig}")
    };
    let evil_kid = "<script>alert(1)</script>";
    let cases: Vec<(&str, String, &str)> = vec![
        ("crit header", crit, "crit"),
        (
            "iss as an array",
            sign(&key, &with("iss", json!([format!("{base}/issuer")]))),
            "iss",
        ),
        (
            "exp = 2^63",
            sign(&key, &with("exp", json!(1u64 << 63))),
            "exp",
        ),
        (
            "exp three days out",
            sign(&key, &with("exp", json!(now() + 3 * 86400))),
            "48 hours",
        ),
        (
            "exp as a float",
            sign(&key, &with("exp", json!(now() as f64 + 600.5))),
            "exp",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "k1"})),
                b64(&good)
            ),
            "malformed",
        ),
        (
            "unknown kid is not echoed",
            sign(
                &Key {
                    kid: evil_kid.into(),
                    ..rsa_key("x")
                },
                &good,
            ),
            "not published",
        ),
    ];
    for (name, token, needle) in cases {
        match v.verify(&token).await {
            Err(AuthError::Rejected(m)) => {
                assert!(m.contains(needle), "{name}: {m}");
                for leak in [
                    "unknown variant",
                    "expected one of",
                    "<script>",
                    "Error",
                    "line ",
                ] {
                    assert!(!m.contains(leak), "{name}: leaks '{leak}': {m}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn keys_not_for_signing_and_insecure_jwks_uris_are_not_used() {
    use jsonwebtoken::jwk::PublicKeyUse;
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let (sig, enc) = (rsa_key("sig"), rsa_key("enc"));
    let mut enc_jwk = enc.jwk.clone();
    enc_jwk.common.public_key_use = Some(PublicKeyUse::Encryption);
    state.lock().unwrap().jwks = vec![sig.jwk.clone(), enc_jwk];
    let v = verifier_authz(&base, Authorization::default());
    let claims = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    v.verify(&sign(&sig, &claims)).await.unwrap();
    assert!(
        matches!(v.verify(&sign(&enc, &claims)).await, Err(AuthError::Rejected(m)) if m.contains("not published"))
    );

    // An EC key published as P-384 is not an ES256 key, whatever its coordinates.
    let (base2, state2) = start_issuer(|b| format!("{b}/issuer")).await;
    let ec = ec_key("ec-384");
    let mut jwk = ec.jwk.clone();
    if let jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p) = &mut jwk.algorithm {
        p.curve = jsonwebtoken::jwk::EllipticCurve::P384;
    }
    state2.lock().unwrap().jwks = vec![jwk];
    let v2 = verifier_authz(&base2, Authorization::default());
    let mut c2 = claims.clone();
    c2["iss"] = json!(format!("{base2}/issuer"));
    let got = v2.verify(&sign(&ec, &c2)).await;
    assert!(
        matches!(&got, Err(AuthError::Rejected(m)) if m.contains("not published")),
        "{got:?}"
    );

    // A discovery document pointing at a plain-http, non-loopback JWKS is refused.
    for bad in [
        "http://localhost.evil.example/keys",
        "http://127.0.0.1.evil.example/keys",
        "http://evil.example@127.0.0.2.nip.io/keys",
        "ftp://127.0.0.1/keys",
    ] {
        let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
        state.lock().unwrap().jwks = vec![sig.jwk.clone()];
        state.lock().unwrap().discovery["jwks_uri"] = json!(bad);
        let v = verifier_authz(&base, Authorization::default());
        let mut c = claims.clone();
        c["iss"] = json!(format!("{base}/issuer"));
        let got = v.verify(&sign(&sig, &c)).await;
        assert!(
            matches!(got, Err(AuthError::IssuerUnavailable(_))),
            "{bad}: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_verifying_after_the_refresh() {
    let (base, state) = start_issuer(|b| format!("{b}/issuer")).await;
    let (old, new) = (rsa_key("old"), rsa_key("new"));
    state.lock().unwrap().jwks = vec![old.jwk.clone()];
    let v = verifier_with(&base, "aud", "sub", "roles", Duration::from_millis(200));
    let claims = json!({ "iss": format!("{base}/issuer"), "aud": "aud", "sub": "u", "scp": "quiz.play", "iat": now(), "nbf": now(), "exp": now() + 600 });
    let old_token = sign(&old, &claims);
    v.verify(&old_token).await.unwrap();
    v.verify(&old_token).await.unwrap(); // now served from the verified-token cache
    state.lock().unwrap().jwks = vec![new.jwk.clone()];
    tokio::time::sleep(Duration::from_millis(300)).await;
    v.verify(&sign(&new, &claims)).await.unwrap(); // triggers the refresh
    let got = v.verify(&old_token).await;
    assert!(
        matches!(&got, Err(AuthError::Rejected(m)) if m.contains("not published")),
        "{got:?}"
    );
}
