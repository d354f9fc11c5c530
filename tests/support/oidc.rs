//! A fake OIDC identity provider shaped like Entra External ID and Azure AD B2C: the discovery
//! document at `/tenant/v2.0/.well-known/openid-configuration` and the JWKS at
//! `/discovery/v2.0/keys`, both answering 503 while the issuer is `down`; the JWKS hits are
//! counted. Also the signing keys (RSA and EC, generated here) whose public halves it serves.

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use warp::Filter;

/// A signing key: the private half for minting tokens, the public half as a JWK.
pub struct Key {
    pub kid: String,
    pub enc: EncodingKey,
    pub jwk: Jwk,
    pub alg: Algorithm,
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

pub fn rsa_key(kid: &str) -> Key {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let enc = EncodingKey::from_rsa_pem(pem(pair.as_der().unwrap().as_ref()).as_bytes()).unwrap();
    key(kid, enc, Algorithm::RS256)
}

pub fn ec_key(kid: &str) -> Key {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let doc = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let enc = EncodingKey::from_ec_der(doc.as_ref());
    key(kid, enc, Algorithm::ES256)
}

/// `enc` named `kid`, with its public half as a JWK.
fn key(kid: &str, enc: EncodingKey, alg: Algorithm) -> Key {
    let mut jwk = Jwk::from_encoding_key(&enc, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    Key {
        kid: kid.into(),
        enc,
        jwk,
        alg,
    }
}

#[derive(Default)]
pub struct IssuerState {
    pub discovery: Value,
    pub jwks: Vec<Jwk>,
    pub cache_control: String,
    pub down: bool,
    pub jwks_hits: usize,
}

/// A local identity provider: `/{tenant}/v2.0/.well-known/openid-configuration` and `/keys`.
pub async fn start_issuer(issuer: impl Fn(&str) -> String) -> (String, Arc<Mutex<IssuerState>>) {
    let (listener, base) = super::bind_loopback().await;
    let state = Arc::new(Mutex::new(IssuerState {
        discovery: json!({ "issuer": issuer(&base), "jwks_uri": format!("{base}/discovery/v2.0/keys"), "id_token_signing_alg_values_supported": ["RS256"] }),
        cache_control: "max-age=86400, private".into(),
        ..Default::default()
    }));
    let s1 = state.clone();
    let discovery =
        warp::path!("tenant" / "v2.0" / ".well-known" / "openid-configuration").map(move || {
            let s = s1.lock().unwrap();
            if s.down {
                return warp::http::Response::builder()
                    .status(503)
                    .body(String::new())
                    .unwrap();
            }
            warp::http::Response::builder()
                .header("content-type", "application/json")
                .body(s.discovery.to_string())
                .unwrap()
        });
    let s2 = state.clone();
    let keys = warp::path!("discovery" / "v2.0" / "keys").map(move || {
        let mut s = s2.lock().unwrap();
        s.jwks_hits += 1;
        if s.down {
            return warp::http::Response::builder()
                .status(503)
                .body(String::new())
                .unwrap();
        }
        let body = serde_json::to_string(&JwkSet {
            keys: s.jwks.clone(),
        })
        .unwrap();
        warp::http::Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", s.cache_control.clone())
            .body(body)
            .unwrap()
    });
    tokio::spawn(warp::serve(discovery.or(keys)).incoming(listener).run());
    (base, state)
}
