//! OIDC bearer-token verification over HTTP (reqwest): discovery document → `issuer` and
//! `jwks_uri` (never guessed), JWKS cached and refreshed on an unknown `kid` at most once per
//! `min_refresh`, RS256/ES256 only, `iss`/`aud`/`exp`/`nbf` checked with a small leeway.
//!
//! Verified tokens are remembered until they expire (bounded map, cleared when full; each entry
//! carries the key-set generation it was verified under, so a refresh that drops a key also
//! drops every token that key signed): a token string is immutable, so a repeat costs a hash
//! lookup instead of an RSA verification.
//!
//! # Authorization (what a valid signature is not enough for)
//!
//! Any application in the tenant can obtain a token whose `aud` is this API, so after the
//! signature and the standard claims the verifier also checks that the token *grants* this API
//! something:
//!
//! - **Delegated (user) tokens** carry `scp` (space-separated scope names). The configured scope
//!   (`QOTD_AUTH_REQUIRED_SCOPE`, default `quiz.play`) must be one of them, else 403.
//! - **App-only tokens** have no `scp`; Entra marks them with `idtyp=app` (optional claim) and
//!   puts the granted app roles in `roles`. Such a token is accepted only with the configured app
//!   role (`QOTD_AUTH_SERVICE_ROLE`, default `quiz.service`), else 403.
//! - **ID tokens are not access tokens.** We reject (401) a token that carries an ID-token-only
//!   claim (`nonce`, `at_hash`, `c_hash`: OIDC Core §2 and §3.1.3.6 define them for ID tokens,
//!   Entra and B2C never put them in access tokens), a header `typ` other than `JWT` or
//!   `at+jwt` (RFC 9068; other typed JWTs such as `logout+jwt` or `dpop+jwt` are not access
//!   tokens), and a token with neither `scp` nor `roles` (what an ID token whose `aud` happens to
//!   be this API looks like; Microsoft.Identity.Web rejects these too).
//! - **B2C user flows.** With `QOTD_AUTH_ALLOWED_POLICIES` set, the token's `tfp` (or `acr`,
//!   older B2C tenants) must name one of them, case-insensitively, else 403.
//!
//! # Shape checks
//!
//! The header must not carry `crit` (RFC 7515 §4.1.11: we understand no extension, so any listed
//! one must be refused); `iss` must be a single string; `exp` must be an integer no later than
//! [`MAX_TOKEN_LIFETIME`] from now (the longest lifetime Entra issues is 28 h for CAE sessions,
//! B2C's is 24 h). Texts returned to the caller are fixed sentences: they never echo the
//! token's `kid` or a library's error message.

use super::{AuthError, Principal};
use crate::kernel::UserId;
use crate::platform::http_client::LazyClient;
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
    /// What a token must grant this API.
    pub authorization: Authorization,
}

/// What a token must grant this API (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// A delegated token must list this scope in `scp`.
    pub required_scope: String,
    /// An app-only token must hold this app role.
    pub service_role: String,
    /// When not empty, `tfp`/`acr` must be one of these (B2C user flows).
    pub allowed_policies: Vec<String>,
}

/// Default of `QOTD_AUTH_REQUIRED_SCOPE`.
pub const DEFAULT_SCOPE: &str = "quiz.play";
/// Default of `QOTD_AUTH_SERVICE_ROLE`.
pub const DEFAULT_SERVICE_ROLE: &str = "quiz.service";

impl Default for Authorization {
    fn default() -> Self {
        Self {
            required_scope: DEFAULT_SCOPE.into(),
            service_role: DEFAULT_SERVICE_ROLE.into(),
            allowed_policies: Vec::new(),
        }
    }
}

/// Latest `exp` accepted, counted from now (leeway added on top).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(48 * 60 * 60);

/// Checks that an issuer URL may be fetched: `https://`, or `http://` only when the host is
/// really loopback (`localhost` exactly, `127.0.0.0/8`, `::1`). The host is parsed, so
/// `http://localhost.evil.example` and `http://127.0.0.1@evil.example` are refused.
pub fn check_issuer_url(raw: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("'{raw}' must not carry credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "'{raw}' must be an https:// URL (plain http only on a loopback host: localhost, 127.0.0.0/8 or [::1])"
                ))
            }
        }
        _ => Err(format!("'{raw}' must be an https:// URL")),
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

struct KeySet {
    /// Bumped on every successful fetch; verified-token cache entries name the generation
    /// they were verified under.
    generation: u64,
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
    http: LazyClient,
    keys: RwLock<Option<KeySet>>,
    refresh: tokio::sync::Mutex<()>,
    /// SHA-256 of a verified token → (caller, exp, key-set generation). Keyed by digest, not
    /// the token itself, so 20,000 remembered tokens cost about 2 MB, not 20 MB.
    verified: RwLock<HashMap<[u8; 32], (Principal, u64, u64)>>,
    generations: std::sync::atomic::AtomicU64,
}

const VERIFIED_CACHE_MAX: usize = 20_000;

/// A key, its algorithm, the issuer and the key-set generation it came from.
type CachedKey = (DecodingKey, Algorithm, String, u64);

/// The JOSE header as JSON (for members `jsonwebtoken::Header` does not keep, like `crit`).
fn raw_header(token: &str) -> Option<Value> {
    use base64::Engine;
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings, http: impl Into<LazyClient>) -> Self {
        Self {
            settings,
            http: http.into(),
            keys: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Verifies `token` and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let digest = token_digest(token);
        if let Some(generation) = self.fresh_generation()
            && let Some((p, exp, g)) = self
                .verified
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&digest)
            && *g == generation
            && now <= exp + self.settings.leeway.as_secs()
        {
            return Ok(p.clone());
        }
        let rejected = |why: &str| AuthError::Rejected(why.to_owned());
        let raw = raw_header(token).ok_or_else(|| rejected("token is malformed"))?;
        let header = decode_header(token).map_err(|_| rejected("token is malformed"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(rejected(
                "token algorithm is not allowed; only RS256 and ES256 are accepted",
            ));
        }
        if raw.get("crit").is_some() {
            return Err(rejected(
                "token header lists critical extensions ('crit') this API does not understand",
            ));
        }
        if let Some(typ) = &header.typ
            && !["jwt", "at+jwt", "application/at+jwt"].contains(&typ.to_ascii_lowercase().as_str())
        {
            return Err(rejected(
                "token type ('typ' header) is not an access token type (expected JWT or at+jwt)",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| rejected("token header has no 'kid'"))?;
        let (key, alg, issuer, generation) = self.key_for(&kid).await?;
        if alg != header.alg {
            return Err(rejected("token algorithm does not match its signing key"));
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
        if !claims.get("iss").is_some_and(Value::is_string) {
            return Err(rejected("token 'iss' claim must be a single string"));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| rejected("token 'exp' claim must be a whole number of seconds"))?;
        if exp > now + MAX_TOKEN_LIFETIME.as_secs() + self.settings.leeway.as_secs() {
            return Err(rejected(
                "token 'exp' is implausibly far in the future (more than 48 hours from now)",
            ));
        }
        let principal = self.principal_of(&claims)?;
        self.authorize(&claims, &principal)?;
        let mut cache = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, (principal.clone(), exp, generation));
        Ok(principal)
    }

    /// Checks what the token grants this API (module documentation, "Authorization").
    fn authorize(&self, claims: &Value, principal: &Principal) -> Result<(), AuthError> {
        let a = &self.settings.authorization;
        if ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|c| claims.get(*c).is_some())
        {
            return Err(AuthError::Rejected(
                "an ID token is not an access token: request an access token for this API".into(),
            ));
        }
        let scp = claims.get("scp").and_then(Value::as_str);
        let has_roles = claims.get("roles").is_some_and(|r| !r.is_null())
            || claims
                .get(&self.settings.roles_claim)
                .is_some_and(|r| !r.is_null());
        let app_only = claims.get("idtyp").and_then(Value::as_str) == Some("app")
            || (scp.is_none() && has_roles);
        if app_only {
            if !principal.has_role(&a.service_role) {
                return Err(AuthError::Forbidden(format!(
                    "an app-only token needs the app role '{}' in '{}'",
                    a.service_role, self.settings.roles_claim
                )));
            }
        } else {
            let Some(scp) = scp else {
                return Err(AuthError::Rejected(format!(
                    "token carries neither 'scp' nor 'roles', so it is not an access token for this API; request the scope '{}'",
                    a.required_scope
                )));
            };
            if !scp.split(' ').any(|s| s == a.required_scope) {
                return Err(AuthError::Forbidden(format!(
                    "token lacks the scope '{}' in 'scp'",
                    a.required_scope
                )));
            }
        }
        if !a.allowed_policies.is_empty() {
            let policy = ["tfp", "acr"]
                .iter()
                .find_map(|c| claims.get(*c).and_then(Value::as_str));
            let allowed = policy.is_some_and(|p| {
                a.allowed_policies
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(p))
            });
            if !allowed {
                return Err(AuthError::Forbidden(
                    "token was not issued by an allowed user flow ('tfp'/'acr' is not one of QOTD_AUTH_ALLOWED_POLICIES)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The key set's generation while it is fresh (one read of the lock on the cached-token
    /// path, which every authenticated request takes).
    fn fresh_generation(&self) -> Option<u64> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|k| Instant::now() < k.fresh_until)
            .map(|k| k.generation)
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
    async fn key_for(&self, kid: &str) -> Result<CachedKey, AuthError> {
        let unpublished =
            || AuthError::Rejected("token key id is not published by the issuer".into());
        if let Some(found) = self.cached_key(kid) {
            // A stale key set is refreshed by the one request that gets the lock; the others
            // go on with the keys they have. A failed refresh keeps the last good keys; a
            // successful one that no longer lists the key rejects the token.
            if self.stale()
                && let Ok(_guard) = self.refresh.try_lock()
                && self.stale()
            {
                self.refresh_keys().await?;
                return self.cached_key(kid).ok_or_else(unpublished);
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
        self.cached_key(kid).ok_or_else(unpublished)
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

    fn cached_key(&self, kid: &str) -> Option<CachedKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let set = keys.as_ref()?;
        set.keys
            .get(kid)
            .map(|(k, a)| (k.clone(), *a, set.issuer.clone(), set.generation))
    }

    async fn fetch(&self) -> Result<KeySet, AuthError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            AuthError::IssuerUnavailable(format!("{what}: {e}"))
        };
        check_issuer_url(&self.settings.metadata_url)
            .map_err(|e| unavailable("OIDC metadata URL refused", &e))?;
        let http = self
            .http
            .get()
            .map_err(|e| unavailable("cannot fetch OIDC metadata", &e))?;
        let get = |url: String| async move {
            http.get(&url)
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
        check_issuer_url(&jwks_uri).map_err(|e| unavailable("jwks_uri refused", &e))?;
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
            use jsonwebtoken::jwk::{
                AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse,
            };
            // Only signature keys: `use` absent or `sig`.
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                tracing::warn!(kid, "skipping JWK whose 'use' is not 'sig'");
                continue;
            }
            let (alg, key_alg) = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    (Algorithm::ES256, KeyAlgorithm::ES256)
                }
                _ => continue,
            };
            // A key that names its algorithm must name the one we would verify with.
            if jwk
                .common
                .key_algorithm
                .is_some_and(|declared| declared != key_alg)
            {
                tracing::warn!(
                    kid,
                    "skipping JWK whose 'alg' is not RS256/ES256 for its type"
                );
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid, (k, alg));
                }
                Err(e) => tracing::warn!(kid, error = %e, "skipping unusable JWK"),
            }
        }
        tracing::info!(issuer = %d.issuer, jwks_uri = %jwks_uri, keys = keys.len(), "loaded issuer signing keys");
        Ok(KeySet {
            generation: self
                .generations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
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
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => "token is malformed".into(),
        _ => "token is invalid".into(),
    }
}
