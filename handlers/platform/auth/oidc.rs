//! OIDC bearer-token verification over HTTP (reqwest): discovery document → `issuer` and
//! `jwks_uri` (never guessed), JWKS cached and refreshed on an unknown `kid` at most once per
//! `min_refresh`, RS256/ES256 only, `iss`/`aud`/`exp`/`nbf` checked with a small leeway.
//!
//! Verified tokens are remembered until they expire (bounded map, cleared when full or when
//! the key set changes): a token string is immutable, so a repeat costs a hash lookup instead
//! of an RSA verification.

use super::{AuthError, Principal};
use crate::kernel::UserId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// What the verifier needs to know about the issuer and the API.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The discovery document URL (`.../.well-known/openid-configuration`).
    pub metadata_url: String,
    /// Accepted `aud` value(s).
    pub audiences: Vec<String>,
    /// Claim holding the stable user id (`sub` or `oid`).
    pub subject_claim: String,
    /// Claim holding roles (an array or a single string).
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Least time between two JWKS refreshes triggered by unknown key ids.
    pub min_refresh: Duration,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

struct KeySet {
    issuer: String,
    jwks_uri: String,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Instant,
    /// When the key set should be fetched again: the JWKS response's `Cache-Control: max-age`
    /// clamped to `CACHE_FLOOR..=CACHE_CEILING` (`CACHE_DEFAULT` without one).
    fresh_until: Instant,
}

/// Least time a fetched key set is trusted before a refresh, whatever the issuer says.
pub const CACHE_FLOOR: Duration = Duration::from_secs(5 * 60);
/// Longest time a fetched key set is used before a refresh, whatever the issuer says.
pub const CACHE_CEILING: Duration = Duration::from_secs(24 * 60 * 60);
/// Key set lifetime when the issuer sends no `max-age`.
pub const CACHE_DEFAULT: Duration = Duration::from_secs(60 * 60);

/// The key-set lifetime a `Cache-Control` header asks for, clamped to the floor and ceiling.
pub fn cache_lifetime(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.and_then(|v| {
        v.split(',').find_map(|d| {
            let (k, v) = d.trim().split_once('=')?;
            if k.trim().eq_ignore_ascii_case("max-age") {
                v.trim().trim_matches('"').parse::<u64>().ok()
            } else {
                None
            }
        })
    });
    max_age.map_or(CACHE_DEFAULT, |s| {
        Duration::from_secs(s).clamp(CACHE_FLOOR, CACHE_CEILING)
    })
}

/// Verifies bearer tokens against one OIDC issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<Option<KeySet>>,
    refresh: tokio::sync::Mutex<()>,
    /// SHA-256 of a verified token → (caller, exp). Keyed by digest, not the token itself, so
    /// 20,000 remembered tokens cost about 2 MB, not 20 MB.
    verified: RwLock<HashMap<[u8; 32], (Principal, u64)>>,
}

const VERIFIED_CACHE_MAX: usize = 20_000;

fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            keys: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
        }
    }

    /// Verifies `token` and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let digest = token_digest(token);
        if let Some((p, exp)) = self
            .verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            && now <= exp + self.settings.leeway.as_secs()
        {
            return Ok(p.clone());
        }
        let header = decode_header(token)
            .map_err(|e| AuthError::Rejected(format!("token is malformed: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::Rejected(format!(
                "token algorithm {:?} is not allowed; only RS256 and ES256 are accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Rejected("token header has no 'kid'".into()))?;
        let (key, alg, issuer) = self.key_for(&kid).await?;
        if alg != header.alg {
            return Err(AuthError::Rejected(format!(
                "token algorithm {:?} does not match key '{kid}' ({alg:?})",
                header.alg
            )));
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[issuer]);
        v.set_audience(&self.settings.audiences);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Value>(token, &key, &v)
            .map_err(|e| AuthError::Rejected(describe(&e)))?
            .claims;
        let principal = self.principal_of(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
        let mut cache = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, (principal.clone(), exp));
        Ok(principal)
    }

    fn principal_of(&self, claims: &Value) -> Result<Principal, AuthError> {
        let sub = claims
            .get(&self.settings.subject_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AuthError::Rejected(format!(
                    "token has no '{}' claim",
                    self.settings.subject_claim
                ))
            })?;
        let user_id = UserId::parse(sub)
            .map_err(|e| AuthError::Rejected(format!("token subject is not usable: {e}")))?;
        let roles = match claims.get(&self.settings.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s
                .split([',', ' '])
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Principal { user_id, roles })
    }

    /// The key for `kid`, fetching metadata/JWKS when none are cached or the kid is unknown
    /// (rate-limited). An unreachable issuer keeps the last good keys.
    async fn key_for(&self, kid: &str) -> Result<(DecodingKey, Algorithm, String), AuthError> {
        if let Some(found) = self.cached_key(kid) {
            // A stale key set is refreshed by the one request that gets the lock; the others
            // go on with the keys they have. A failed refresh keeps the last good keys.
            if self.stale()
                && let Ok(_guard) = self.refresh.try_lock()
                && self.stale()
            {
                self.refresh_keys().await?;
                return Ok(self.cached_key(kid).unwrap_or(found));
            }
            return Ok(found);
        }
        // Unknown kid: maybe the issuer rotated keys. Refresh once, rate-limited.
        let _guard = self.refresh.lock().await;
        if let Some(found) = self.cached_key(kid) {
            return Ok(found);
        }
        let recently = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|k| k.fetched.elapsed() < self.settings.min_refresh);
        if !recently {
            self.refresh_keys().await?;
        }
        self.cached_key(kid).ok_or_else(|| {
            AuthError::Rejected(format!(
                "token key id '{kid}' is not published by the issuer"
            ))
        })
    }

    fn stale(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|k| Instant::now() >= k.fresh_until)
    }

    /// Fetches metadata and keys; on failure keeps the last good keys (error only if none).
    async fn refresh_keys(&self) -> Result<(), AuthError> {
        match self.fetch().await {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(set);
                self.verified
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                Ok(())
            }
            Err(e)
                if self
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none() =>
            {
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good keys");
                if let Some(k) = self
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    // Try again after the rate limit, not on every request.
                    k.fetched = Instant::now();
                    k.fresh_until = Instant::now() + self.settings.min_refresh;
                }
                Ok(())
            }
        }
    }

    fn cached_key(&self, kid: &str) -> Option<(DecodingKey, Algorithm, String)> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let set = keys.as_ref()?;
        set.keys
            .get(kid)
            .map(|(k, a)| (k.clone(), *a, set.issuer.clone()))
    }

    async fn fetch(&self) -> Result<KeySet, AuthError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            AuthError::IssuerUnavailable(format!("{what}: {e}"))
        };
        let get = |url: String| async move {
            self.http
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .and_then(|r| r.error_for_status())
        };
        let d: Discovery = get(self.settings.metadata_url.clone())
            .await
            .map_err(|e| unavailable("cannot fetch OIDC metadata", &e))?
            .json()
            .await
            .map_err(|e| unavailable("OIDC metadata is not valid", &e))?;
        let jwks_uri = d.jwks_uri;
        let res = get(jwks_uri.clone())
            .await
            .map_err(|e| unavailable("cannot fetch JWKS", &e))?;
        let lifetime = cache_lifetime(
            res.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
        );
        let set: JwkSet = res
            .json()
            .await
            .map_err(|e| unavailable("JWKS is not valid", &e))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid, (k, alg));
                }
                Err(e) => tracing::warn!(kid, error = %e, "skipping unusable JWK"),
            }
        }
        tracing::info!(issuer = %d.issuer, jwks_uri = %jwks_uri, keys = keys.len(), "loaded issuer signing keys");
        Ok(KeySet {
            issuer: d.issuer,
            jwks_uri,
            keys,
            fetched: Instant::now(),
            fresh_until: Instant::now() + lifetime,
        })
    }

    /// The JWKS URI in use (for diagnostics).
    pub fn jwks_uri(&self) -> Option<String> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|k| k.jwks_uri.clone())
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "token has expired".into(),
        K::ImmatureSignature => "token is not valid yet (nbf is in the future)".into(),
        K::InvalidIssuer => "token issuer does not match the configured issuer".into(),
        K::InvalidAudience => "token audience does not match this API".into(),
        K::InvalidSignature => "token signature is invalid".into(),
        K::MissingRequiredClaim(c) => format!("token is missing the '{c}' claim"),
        K::InvalidAlgorithm => "token algorithm does not match its key".into(),
        _ => format!("token is invalid: {e}"),
    }
}
