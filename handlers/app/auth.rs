//! Authentication, once per request: the bearer token becomes a `Principal` (or a 401/503
//! problem), the function's access rule is checked (403), and the request gets its
//! `RequestContext`: principal, today's UTC day from the clock, correlation id.

use super::App;
use crate::kernel::QuizDay;
use crate::platform::auth::dev_issuer;
use crate::platform::auth::oidc::{Authorization, OidcSettings, OidcVerifier};
use crate::platform::auth::{AuthError, Principal, bearer_token};
use crate::platform::http::{ApiRequest, Problem, RequestContext};

/// Who may call a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anonymous,
    Player,
    /// A player holding the `admin` role.
    Admin,
}

impl App {
    fn verifier(&self) -> &OidcVerifier {
        self.verifier.get_or_init(|| {
            let a = &self.settings.auth;
            let metadata_url = a
                .metadata_url
                .clone()
                .unwrap_or_else(|| dev_issuer::metadata_url(self.self_url()));
            OidcVerifier::new(
                OidcSettings {
                    metadata_url,
                    audiences: a.audiences.clone(),
                    subject_claim: a.subject_claim.clone(),
                    roles_claim: a.roles_claim.clone(),
                    leeway: std::time::Duration::from_secs(30),
                    min_refresh: a.min_jwks_refresh,
                    authorization: Authorization {
                        required_scope: a.required_scope.clone(),
                        service_role: a.service_role.clone(),
                        allowed_policies: a.allowed_policies.clone(),
                    },
                },
                self.http.clone(),
            )
        })
    }

    /// The caller behind the request's bearer token, or a 401 problem saying why not.
    async fn authenticate(&self, req: &ApiRequest) -> Result<Principal, Problem> {
        let token = bearer_token(req.header("authorization"))
            .map_err(|e| Problem::unauthorized(e.to_string()))?;
        self.verifier().verify(token).await.map_err(|e| match e {
            AuthError::Rejected(why) => Problem::unauthorized(why),
            AuthError::Forbidden(why) => Problem::forbidden(why),
            AuthError::IssuerUnavailable(why) => Problem::unavailable(why),
        })
    }

    /// Authenticates the request for a function with the given access rule.
    pub(super) async fn request_context(
        &self,
        req: &ApiRequest,
        access: Access,
    ) -> Result<RequestContext, Problem> {
        let principal = self.authenticate(req).await?;
        if access == Access::Admin && !principal.has_role("admin") {
            return Err(Problem::forbidden(
                "this operation requires the 'admin' role",
            ));
        }
        Ok(RequestContext {
            principal,
            today: QuizDay::of(self.clock.now()),
            correlation_id: correlation_id(req),
        })
    }
}

/// The id tying events to the request that caused them.
pub fn correlation_id(req: &ApiRequest) -> Option<String> {
    [
        "x-correlation-id",
        "x-ms-invocation-id",
        "x-azure-functions-invocationid",
    ]
    .iter()
    .find_map(|h| req.header(h))
    .map(|v| v.chars().take(128).collect())
}
