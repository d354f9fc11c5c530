//! The one Azure credential factory, shared by every adapter that talks to Azure with Entra
//! tokens (Azure SQL, Service Bus, Azure OpenAI). Built from settings, never guessed:
//!
//! | `QOTD_AZURE_CREDENTIAL` | credential | extra settings |
//! | --- | --- | --- |
//! | `managedidentity` (default) | system-assigned, or user-assigned when `AZURE_CLIENT_ID` is set | — |
//! | `workloadidentity` | federated token (AKS, Container Apps jobs) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` |
//! | `developertools` | Azure CLI, then Azure Developer CLI, on a laptop | — |
//!
//! azure_identity caches tokens per scope and refreshes them five minutes before expiry, so
//! adapters may ask for a token on every new connection or request.

use crate::platform::config::ConfigError;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential,
};
use std::sync::Arc;

/// Which credential to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// `client_id` selects a user-assigned identity; `None` means system-assigned.
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity,
    DeveloperTools,
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
            Some(other) => Err(ConfigError {
                variable: "QOTD_AZURE_CREDENTIAL",
                problem: format!(
                    "'{other}' is not a credential kind (expected managedidentity, workloadidentity or developertools)"
                ),
            }),
        }
    }

    /// Builds the credential. Construction fails early (naming what is missing) for workload
    /// identity without its environment.
    pub fn build(&self) -> anyhow::Result<Arc<dyn TokenCredential>> {
        let cred: Arc<dyn TokenCredential> = match self {
            Self::ManagedIdentity { client_id } => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("cannot create the managed identity credential: {e}"))?,
            Self::WorkloadIdentity => WorkloadIdentityCredential::new(None).map_err(|e| {
                anyhow::anyhow!("cannot create the workload identity credential (needs AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE): {e}")
            })?,
            Self::DeveloperTools => DeveloperToolsCredential::new(None).map_err(|e| anyhow::anyhow!("cannot create the developer tools credential: {e}"))?,
        };
        Ok(cred)
    }
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
    }
}
