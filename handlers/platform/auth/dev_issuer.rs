//! The local development token issuer. `qotd local` serves its OIDC discovery document and
//! JWKS under `/dev/oidc/`, and `qotd token` signs tokens with the same RSA key, kept in the
//! data dir (`dev-issuer-key.pem`, mode 0600, created on first use). Tokens it signs are
//! checked by the very same `OidcVerifier` that checks Entra / B2C tokens in production.
//!
//! Never enabled in production: it only runs when `QOTD_DEV_ISSUER=true` (set by `qotd local`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `iss` of every dev token (and the `issuer` of the dev discovery document).
pub const ISSUER: &str = "urn:qotd:local-dev-issuer";
/// The `aud` of every dev token.
pub const AUDIENCE: &str = "qotd-local";
/// Path (under the handler or local host) where the discovery document and keys are served.
pub const BASE_PATH: &str = "/dev/oidc";
const KEY_FILE: &str = "dev-issuer-key.pem";
/// The scope dev tokens carry unless told otherwise (the verifier's default requirement).
pub const DEFAULT_SCOPE: &str = super::oidc::DEFAULT_SCOPE;

/// A loaded dev signing key.
pub struct DevIssuer {
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
}

impl DevIssuer {
    /// Loads the key from `data_dir`, creating it (atomically, so two processes starting at
    /// once agree on one key) if it does not exist.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(data_dir, &path)?,
            Err(e) => anyhow::bail!("cannot read dev issuer key {}: {e}", path.display()),
        };
        let key = EncodingKey::from_rsa_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "dev issuer key {} is not a valid RSA key: {e}",
                path.display()
            )
        })?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pem);
        let kid = format!(
            "dev-{}",
            digest.as_ref()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
        jwk.common.key_id = Some(kid.clone());
        Ok(Self { key, jwk, kid })
    }

    /// Signs a delegated token for `user` valid for `ttl`, with optional display name and
    /// roles, carrying the default scope (`scp: "quiz.play"`) as the verifier requires.
    pub fn mint(
        &self,
        user: &str,
        name: Option<&str>,
        roles: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.mint_scoped(user, name, roles, &[DEFAULT_SCOPE.to_owned()], ttl)
    }

    /// Like `mint`, with the given scopes in `scp` (space-separated); no scopes means no `scp`
    /// claim at all: an app-only token, accepted only with the service role.
    pub fn mint_scoped(
        &self,
        user: &str,
        name: Option<&str>,
        roles: &[String],
        scopes: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
            "roles": roles,
        });
        if let Some(name) = name {
            claims["name"] = json!(name);
        }
        if scopes.is_empty() {
            claims["idtyp"] = json!("app");
        } else {
            claims["scp"] = json!(scopes.join(" "));
        }
        let header = Header {
            kid: Some(self.kid.clone()),
            ..Header::new(Algorithm::RS256)
        };
        Ok(encode(&header, &claims, &self.key)?)
    }

    /// Signs `claims` as they are (the sign-in flow of `dev_login` builds its own).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let header = Header {
            kid: Some(self.kid.clone()),
            ..Header::new(Algorithm::RS256)
        };
        Ok(encode(&header, claims, &self.key)?)
    }

    /// The discovery document, with `jwks_uri` and the sign-in endpoints (`dev_login`) under
    /// `base_url` (e.g. `http://127.0.0.1:7071`).
    pub fn discovery(&self, base_url: &str) -> Value {
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{base_url}{BASE_PATH}/keys"),
            "authorization_endpoint": format!("{base_url}{BASE_PATH}/authorize"),
            "token_endpoint": format!("{base_url}{BASE_PATH}/token"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code", "id_token"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        })
    }

    /// The public key set.
    pub fn jwks(&self) -> Value {
        serde_json::to_value(JwkSet {
            keys: vec![self.jwk.clone()],
        })
        .expect("jwks serialises")
    }
}

/// The discovery URL of the dev issuer served at `base_url`.
/// Whether `method path` is one of the dev issuer's public endpoints: its discovery document
/// and keys, and the sign-in flow of `dev_login` (`/authorize`, `POST /token`). The one list
/// `qotd local`'s host consults before forwarding anything under [`BASE_PATH`].
pub fn is_endpoint(method: &http::Method, path: &str) -> bool {
    use http::Method;
    path.strip_prefix(BASE_PATH).is_some_and(|rest| {
        matches!(
            (rest, method),
            ("/.well-known/openid-configuration" | "/keys", &Method::GET)
                | ("/authorize", &Method::GET | &Method::POST)
                | ("/token", &Method::POST)
        )
    })
}

pub fn metadata_url(base_url: &str) -> String {
    format!("{base_url}{BASE_PATH}/.well-known/openid-configuration")
}

fn create_key(dir: &Path, path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let der = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("cannot encode RSA key"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    // Write a private temporary file, then hard-link it into place: the link fails if another
    // process won the race, and nobody ever sees a half-written key.
    let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(pem.into_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(path)?),
        Err(e) => anyhow::bail!("cannot write dev issuer key {}: {e}", path.display()),
    }
}
