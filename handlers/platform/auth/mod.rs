//! Authentication: one OIDC bearer-token verifier for every issuer (the local dev issuer,
//! Entra External ID, Azure AD B2C), plus the dev issuer itself. HTTP adapters call
//! `Authenticator::authenticate` with the `Authorization` header and get a `Principal` or a
//! reason that becomes a 401.

pub mod dev_issuer;
pub mod dev_login;
pub mod oidc;

use crate::kernel::UserId;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a request is not authenticated; the text is safe to show the caller.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("{0}")]
    Rejected(String),
    /// The token is genuine but does not grant this API what the request needs (403).
    #[error("{0}")]
    Forbidden(String),
    /// The issuer's metadata or keys could not be fetched and none are cached.
    #[error("the token issuer is unreachable: {0}")]
    IssuerUnavailable(String),
}

/// Extracts the bearer token from an `Authorization` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or_else(|| {
        AuthError::Rejected(
            "missing Authorization header; send 'Authorization: Bearer <token>'".into(),
        )
    })?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Rejected(format!(
            "Authorization scheme '{}' is not supported; use Bearer",
            scheme.chars().take(20).collect::<String>()
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Rejected(
            "Authorization header has an empty bearer token".into(),
        ));
    }
    Ok(token)
}
