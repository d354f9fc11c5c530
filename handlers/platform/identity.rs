//! The one Azure credential factory, shared by every adapter that talks to Azure with Entra
//! tokens (Azure SQL, Service Bus, Azure OpenAI). Built from settings, never guessed:
//!
//! | `QOTD_AZURE_CREDENTIAL` | credential | extra settings |
//! | --- | --- | --- |
//! | `managedidentity` (default) | system-assigned, or user-assigned when `AZURE_CLIENT_ID` is set | — |
//! | `workloadidentity` | federated token (AKS, Container Apps jobs) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` |
//! | `developertools` | Azure CLI, then Azure Developer CLI, on a laptop | — |
//! | `default` | the first that works of: workload identity (when `AZURE_FEDERATED_TOKEN_FILE` is set), managed identity, developer tools | as for each |
//!
//! `default` is also what an ADO.NET `Authentication=Active Directory Default` (the string
//! Azure tooling writes) means: inside Azure the identity of the resource answers first, and
//! the developer's sign-in is tried last, so the same string works on a laptop and in Azure.
//! The credential that first returned a token is used from then on.
//!
//! [`is_transient`] tells a token failure worth retrying (the token endpoint unreachable,
//! throttling, 5xx) from one that needs a fix (no identity, no role, a bad configuration).
//!
//! azure_identity caches tokens per scope and refreshes them five minutes before expiry, so
//! adapters may ask for a token on every new connection or request.

use crate::platform::config::ConfigError;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Which credential to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// `client_id` selects a user-assigned identity; `None` means system-assigned.
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity,
    DeveloperTools,
    /// Workload identity (if configured), then managed identity (`client_id` as above), then
    /// developer tools.
    Default {
        client_id: Option<String>,
    },
}

impl CredentialKind {
    /// Reads `QOTD_AZURE_CREDENTIAL` and `AZURE_CLIENT_ID` through `get`.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let client_id = get("AZURE_CLIENT_ID")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        match get("QOTD_AZURE_CREDENTIAL")
            .as_deref()
            .map(str::trim)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("managedidentity") => Ok(Self::ManagedIdentity { client_id }),
            Some("workloadidentity") => Ok(Self::WorkloadIdentity),
            Some("developertools") => Ok(Self::DeveloperTools),
            Some("default") => Ok(Self::Default { client_id }),
            Some(other) => Err(ConfigError {
                variable: "QOTD_AZURE_CREDENTIAL",
                problem: format!(
                    "'{other}' is not a credential kind (expected managedidentity, workloadidentity, developertools or default)"
                ),
            }),
        }
    }

    /// Builds the credential. Construction fails early (naming what is missing) for workload
    /// identity without its environment.
    pub fn build(&self) -> anyhow::Result<Arc<dyn TokenCredential>> {
        let cred: Arc<dyn TokenCredential> = match self {
            Self::ManagedIdentity { client_id } => ManagedIdentityCredential::new(Some(managed_identity_options(client_id.clone())))
            .map_err(|e| anyhow::anyhow!("cannot create the managed identity credential: {e}"))?,
            Self::WorkloadIdentity => WorkloadIdentityCredential::new(None).map_err(|e| {
                anyhow::anyhow!("cannot create the workload identity credential (needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE): {e}")
            })?,
            Self::DeveloperTools => DeveloperToolsCredential::new(None).map_err(|e| anyhow::anyhow!("cannot create the developer tools credential: {e}"))?,
            Self::Default { client_id } => {
                Arc::new(DefaultChain::new(client_id.clone(), |k| std::env::var(k).ok())?)
            }
        };
        Ok(cred)
    }
}

/// The token request's own retries, kept short: the SDK's default (8 retries within a minute)
/// would hide an unreachable identity endpoint from the callers, which retry with their own
/// policy ([`crate::platform::retry`]) and report the failure (e.g. on `/api/health`).
fn managed_identity_options(client_id: Option<String>) -> ManagedIdentityCredentialOptions {
    let mut options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        ..Default::default()
    };
    options.client_options.retry =
        azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(5),
            max_delay: azure_core::time::Duration::seconds(2),
        });
    options
}

/// Environment variables that say "this process runs in Azure with a managed identity
/// endpoint" (App Service / Functions / Container Apps; Azure Arc; Cloud Shell).
const MANAGED_IDENTITY_ENV: &[&str] = &["IDENTITY_ENDPOINT", "MSI_ENDPOINT"];

/// How long the managed identity may take to answer when no endpoint variable announces one
/// (a VM's IMDS, or a laptop where 169.254.169.254 does not answer), before the chain moves on
/// to the developer tools. With an endpoint variable it gets the whole request.
const IMDS_PROBE: Duration = Duration::from_secs(2);

/// `Active Directory Default`: workload identity, managed identity, developer tools, in that
/// order; the first to return a token is used from then on.
pub struct DefaultChain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>, Option<Duration>)>,
    chosen: AtomicUsize,
}

impl std::fmt::Debug for DefaultChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(n, ..)| *n).collect();
        f.debug_struct("DefaultChain")
            .field("sources", &names)
            .finish()
    }
}

impl DefaultChain {
    /// The chain for this environment (`env` reads variables).
    pub fn new(
        client_id: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>, Option<Duration>)> =
            Vec::new();
        if set("AZURE_FEDERATED_TOKEN_FILE") {
            let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                client_id: client_id.clone(),
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("cannot create the workload identity credential (needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE): {e}"))?;
            sources.push(("workload identity", cred, None));
        }
        let announced = MANAGED_IDENTITY_ENV.iter().any(|k| set(k));
        if let Ok(cred) = ManagedIdentityCredential::new(Some(managed_identity_options(client_id)))
        {
            sources.push(("managed identity", cred, (!announced).then_some(IMDS_PROBE)));
        }
        let dev = DeveloperToolsCredential::new(None)
            .map_err(|e| anyhow::anyhow!("cannot create the developer tools credential: {e}"))?;
        sources.push(("developer tools (az, azd)", dev, None));
        Ok(Self::from_sources(sources))
    }

    /// A chain over given credentials (tests).
    pub fn from_sources(
        sources: Vec<(&'static str, Arc<dyn TokenCredential>, Option<Duration>)>,
    ) -> Self {
        Self {
            sources,
            chosen: AtomicUsize::new(usize::MAX),
        }
    }

    /// The names of the sources, in the order they are tried.
    pub fn source_names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|(n, ..)| *n).collect()
    }
}

#[async_trait::async_trait]
impl TokenCredential for DefaultChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.load(Ordering::Relaxed);
        if let Some((_, cred, _)) = self.sources.get(chosen) {
            return cred.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        let mut transient = false;
        for (i, (name, cred, limit)) in self.sources.iter().enumerate() {
            let attempt = cred.get_token(scopes, options.clone());
            let result = match limit {
                Some(limit) => match tokio::time::timeout(*limit, attempt).await {
                    Ok(r) => r,
                    Err(_) => {
                        failures.push(format!("{name}: no answer within {limit:?}"));
                        continue;
                    }
                },
                None => attempt.await,
            };
            match result {
                Ok(token) => {
                    self.chosen.store(i, Ordering::Relaxed);
                    tracing::info!(
                        credential = name,
                        "Active Directory Default: using this credential"
                    );
                    return Ok(token);
                }
                Err(e) => {
                    transient |= is_transient(&e);
                    failures.push(format!("{name}: {}", describe(&e)));
                }
            }
        }
        let kind = if transient {
            azure_core::error::ErrorKind::Io
        } else {
            azure_core::error::ErrorKind::Credential
        };
        Err(azure_core::Error::with_message(
            kind,
            format!(
                "no credential of Active Directory Default returned a token ({})",
                failures.join("; ")
            ),
        ))
    }
}

/// Whether a token failure may heal by itself: the token endpoint could not be reached (I/O,
/// connection) or answered 408, 429 or 5xx, anywhere in the error's chain.
pub fn is_transient(e: &azure_core::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(az) = err.downcast_ref::<azure_core::Error>() {
            match az.kind() {
                azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection => {
                    return true;
                }
                azure_core::error::ErrorKind::HttpResponse { status, .. } => {
                    let code = u16::from(*status);
                    if code == 408 || code == 429 || code >= 500 {
                        return true;
                    }
                }
                _ => {}
            }
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A token error with its sources, on one line (azure_core's `Debug` prints a backtrace).
pub fn describe(e: &azure_core::Error) -> String {
    let mut out = e.to_string();
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = err.source();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn credential_kinds_from_settings() {
        let get = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |k: &str| m.get(k).cloned()
        };
        assert_eq!(
            CredentialKind::from_lookup(&get(&[])).unwrap(),
            CredentialKind::ManagedIdentity { client_id: None }
        );
        assert_eq!(
            CredentialKind::from_lookup(&get(&[("AZURE_CLIENT_ID", "cid")])).unwrap(),
            CredentialKind::ManagedIdentity {
                client_id: Some("cid".into())
            }
        );
        assert_eq!(
            CredentialKind::from_lookup(&get(&[("QOTD_AZURE_CREDENTIAL", "DeveloperTools")]))
                .unwrap(),
            CredentialKind::DeveloperTools
        );
        let e = CredentialKind::from_lookup(&get(&[("QOTD_AZURE_CREDENTIAL", "password")]))
            .unwrap_err();
        assert_eq!(e.variable, "QOTD_AZURE_CREDENTIAL");
        assert_eq!(
            CredentialKind::from_lookup(&get(&[("QOTD_AZURE_CREDENTIAL", "default")])).unwrap(),
            CredentialKind::Default { client_id: None }
        );
    }

    /// A credential that fails (transiently or not) or hands out a named token.
    #[derive(Debug)]
    struct Fixed(Result<&'static str, bool>, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.1.fetch_add(1, Ordering::SeqCst);
            match self.0 {
                Ok(t) => Ok(AccessToken::new(
                    t,
                    azure_core::time::OffsetDateTime::now_utc()
                        + azure_core::time::Duration::hours(1),
                )),
                Err(transient) => Err(azure_core::Error::with_message(
                    if transient {
                        azure_core::error::ErrorKind::Io
                    } else {
                        azure_core::error::ErrorKind::Credential
                    },
                    "no",
                )),
            }
        }
    }

    fn fixed(r: Result<&'static str, bool>) -> Arc<Fixed> {
        Arc::new(Fixed(r, std::sync::atomic::AtomicUsize::new(0)))
    }

    #[tokio::test]
    async fn the_default_chain_tries_identities_first_and_sticks_to_the_first_that_works() {
        let (mi, dev) = (fixed(Ok("mi")), fixed(Ok("dev")));
        let chain = DefaultChain::from_sources(vec![
            ("managed identity", mi.clone(), None),
            ("developer tools", dev.clone(), None),
        ]);
        for _ in 0..2 {
            let t = chain.get_token(&["s"], None).await.unwrap();
            assert_eq!(t.token.secret(), "mi");
        }
        assert_eq!(
            dev.1.load(Ordering::SeqCst),
            0,
            "developer tools never asked"
        );

        let (mi, dev) = (fixed(Err(false)), fixed(Ok("dev")));
        let chain = DefaultChain::from_sources(vec![
            ("managed identity", mi.clone(), None),
            ("developer tools", dev.clone(), None),
        ]);
        assert_eq!(
            chain.get_token(&["s"], None).await.unwrap().token.secret(),
            "dev"
        );
        chain.get_token(&["s"], None).await.unwrap();
        assert_eq!(
            mi.1.load(Ordering::SeqCst),
            1,
            "managed identity tried once"
        );

        let chain = DefaultChain::from_sources(vec![
            ("managed identity", fixed(Err(true)), None),
            ("developer tools", fixed(Err(false)), None),
        ]);
        let e = chain.get_token(&["s"], None).await.unwrap_err();
        assert!(
            is_transient(&e),
            "a transient failure in the chain keeps it transient"
        );
        assert!(
            describe(&e).contains("managed identity: no"),
            "{}",
            describe(&e)
        );
    }

    #[test]
    fn the_default_chain_order_in_azure_and_on_a_laptop() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let laptop = DefaultChain::new(None, env(&[])).unwrap();
        assert_eq!(
            laptop.source_names(),
            ["managed identity", "developer tools (az, azd)"]
        );
        let aks = DefaultChain::new(
            Some("cid".into()),
            env(&[
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                ("AZURE_TENANT_ID", "t"),
            ]),
        );
        // Workload identity needs its environment in the process; only the order matters here.
        if let Ok(aks) = aks {
            assert_eq!(aks.source_names()[0], "workload identity");
        }
    }

    #[test]
    fn token_failures_reaching_no_endpoint_or_5xx_are_transient() {
        let io = azure_core::Error::with_message(azure_core::error::ErrorKind::Io, "refused");
        assert!(is_transient(&io));
        let wrapped = azure_core::Error::with_error(
            azure_core::error::ErrorKind::Credential,
            io,
            "ManagedIdentityCredential authentication failed",
        );
        assert!(is_transient(&wrapped));
        assert!(describe(&wrapped).contains("refused"));
        let denied = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "no identity",
        );
        assert!(!is_transient(&denied));
    }
}
