//! Service Bus settings: which namespace, which endpoint, and how to authenticate, read from
//! the app settings the Functions host also uses (the table in the parent module's docs).
//! Errors name the variable and never repeat a key.

use crate::platform::config::ConfigError;
use crate::platform::identity::CredentialKind;
use crate::platform::secret::Secret;

const NAMESPACE_VAR: &str = "ServiceBusConnection__fullyQualifiedNamespace";
const CONNECTION_VAR: &str = "ServiceBusConnection";
const CLIENT_ID_VAR: &str = "ServiceBusConnection__clientId";
const CREDENTIAL_VAR: &str = "ServiceBusConnection__credential";
const ENDPOINT_VAR: &str = "QOTD_SERVICEBUS_ENDPOINT";

/// How the publisher authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceBusAuth {
    /// An Entra token from the credential this kind builds.
    Identity(CredentialKind),
    /// A SAS token signed with a key from the connection string.
    SharedAccessKey { key_name: String, key: Secret },
}

/// Where and how to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusSettings {
    /// The fully qualified namespace, lower-cased, e.g. `qotd-prod.servicebus.windows.net`.
    pub namespace: String,
    /// The base URL requests go to, without a trailing slash: `https://<namespace>` unless
    /// `QOTD_SERVICEBUS_ENDPOINT` overrides it.
    pub endpoint: String,
    pub auth: ServiceBusAuth,
}

fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

fn trimmed(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks a host name such as `<ns>.servicebus.windows.net`; returns it lower-cased.
fn validate_namespace(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if host.contains('.') && host.len() <= 253 && labels_ok {
        Ok(host)
    } else {
        Err(err(
            variable,
            format!(
                "'{raw}' is not a fully qualified namespace (expected a host name like <namespace>.servicebus.windows.net, without scheme, port or path)"
            ),
        ))
    }
}

/// Parses `Endpoint=sb://<ns>/;SharedAccessKeyName=..;SharedAccessKey=..`. Errors never repeat
/// the value, which holds the key.
fn parse_connection_string(raw: &str) -> Result<(String, ServiceBusAuth), ConfigError> {
    if raw.starts_with("@Microsoft.KeyVault(") {
        return Err(err(
            CONNECTION_VAR,
            "is an unresolved Key Vault reference: give the app's identity 'get' access to the secret (the Functions host resolves the reference before the handler starts)",
        ));
    }
    let mut endpoint = None;
    let mut key_name = None;
    let mut key = None;
    let mut signature = false;
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(err(
                CONNECTION_VAR,
                "is not a connection string (expected Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<name>;SharedAccessKey=<key>; for identity auth set ServiceBusConnection__fullyQualifiedNamespace instead)",
            ));
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(v.trim().to_owned()),
            "sharedaccesskeyname" => key_name = Some(v.trim().to_owned()),
            "sharedaccesskey" => key = Some(v.trim().to_owned()),
            "sharedaccesssignature" => signature = true,
            // EntityPath, TransportType, UseDevelopmentEmulator, ...: not needed over REST.
            _ => {}
        }
    }
    let endpoint = endpoint.filter(|e| !e.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no Endpoint (expected Endpoint=sb://<namespace>.servicebus.windows.net/;...)",
        )
    })?;
    let host = endpoint
        .strip_prefix("sb://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| {
            err(
                CONNECTION_VAR,
                format!(
                    "Endpoint '{endpoint}' must start with sb:// (e.g. sb://<namespace>.servicebus.windows.net/)"
                ),
            )
        })?;
    let namespace = validate_namespace(CONNECTION_VAR, host).map_err(|_| {
        err(
            CONNECTION_VAR,
            format!(
                "Endpoint '{endpoint}' does not name a namespace (expected sb://<namespace>.servicebus.windows.net/)"
            ),
        )
    })?;
    if signature && key.is_none() {
        return Err(err(
            CONNECTION_VAR,
            "holds a SharedAccessSignature; qotd needs SharedAccessKeyName and SharedAccessKey to sign its own tokens (or use ServiceBusConnection__fullyQualifiedNamespace with an identity)",
        ));
    }
    let key_name = key_name.filter(|k| !k.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no SharedAccessKeyName (copy the whole connection string of a shared access policy with Send rights)",
        )
    })?;
    let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
        err(
            CONNECTION_VAR,
            "has no SharedAccessKey (copy the whole connection string of a shared access policy with Send rights)",
        )
    })?;
    Ok((
        namespace,
        ServiceBusAuth::SharedAccessKey {
            key_name,
            key: Secret::new(key),
        },
    ))
}

/// `QOTD_SERVICEBUS_ENDPOINT`: `https://...`, or `http://` only on loopback.
fn parse_endpoint_override(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            url.strip_prefix(p).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
            })
        });
    let https = url.len() > "https://".len() && url.starts_with("https://");
    let clean = !url.contains(['?', '#', ' ', '\t']);
    if (loopback || https) && clean {
        Ok(url.to_owned())
    } else {
        Err(err(
            ENDPOINT_VAR,
            format!(
                "'{raw}' must be an https:// base URL, or http:// on loopback (127.0.0.1, localhost, [::1]), without query"
            ),
        ))
    }
}

/// The credential for identity auth: the shared factory's choice, with
/// `ServiceBusConnection__clientId` / `__credential` applied (the Functions convention).
fn identity_credential(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<CredentialKind, ConfigError> {
    let base = CredentialKind::from_lookup(get)?;
    let client_id = trimmed(get, CLIENT_ID_VAR);
    let forced_mi = match trimmed(get, CREDENTIAL_VAR).map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "managedidentity" => true,
        Some(other) => {
            return Err(err(
                CREDENTIAL_VAR,
                format!(
                    "'{other}' is not supported (only managedidentity; choose other credentials with QOTD_AZURE_CREDENTIAL)"
                ),
            ));
        }
    };
    match (base, client_id) {
        (CredentialKind::ManagedIdentity { client_id: global }, sb) => {
            Ok(CredentialKind::ManagedIdentity {
                client_id: sb.or(global),
            })
        }
        (_, sb) if forced_mi => Ok(CredentialKind::ManagedIdentity {
            client_id: sb.or_else(|| trimmed(get, "AZURE_CLIENT_ID")),
        }),
        (other, Some(_)) => Err(err(
            CLIENT_ID_VAR,
            format!(
                "selects a user-assigned managed identity, but QOTD_AZURE_CREDENTIAL selects {other:?}; remove one of them"
            ),
        )),
        (other, None) => Ok(other),
    }
}

impl ServiceBusSettings {
    /// Reads the Service Bus settings through `get`. `Ok(None)`: not configured (keep the local
    /// bus). Errors name the variable and never contain a key.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ServiceBusSettings>, ConfigError> {
        let namespace = trimmed(&get, NAMESPACE_VAR);
        let connection = trimmed(&get, CONNECTION_VAR);
        let endpoint = trimmed(&get, ENDPOINT_VAR)
            .map(|e| parse_endpoint_override(&e))
            .transpose()?;
        let (namespace, auth) = match (namespace, connection) {
            (None, None) => {
                if endpoint.is_some() {
                    return Err(err(
                        ENDPOINT_VAR,
                        "is set, but neither ServiceBusConnection__fullyQualifiedNamespace nor ServiceBusConnection is",
                    ));
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    CONNECTION_VAR,
                    "and ServiceBusConnection__fullyQualifiedNamespace are both set; set only one (the namespace for identity auth, or the connection string for SAS auth)",
                ));
            }
            (Some(ns), None) => (
                validate_namespace(NAMESPACE_VAR, &ns)?,
                ServiceBusAuth::Identity(identity_credential(&get)?),
            ),
            (None, Some(cs)) => parse_connection_string(&cs)?,
        };
        let endpoint = endpoint.unwrap_or_else(|| format!("https://{namespace}"));
        Ok(Some(ServiceBusSettings {
            namespace,
            endpoint,
            auth,
        }))
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<ServiceBusSettings>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;

    const KEY: &str = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ=";

    #[test]
    fn redacted_debug_hides_the_secret() {
        let r = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{r:?}"), "[redacted]");
        let s = ServiceBusSettings::from_lookup(lookup(&[(
            "ServiceBusConnection",
            &format!("Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
        )]))
        .unwrap()
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(KEY), "{dbg}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
    }

    #[test]
    fn settings_identity_and_connection_string() {
        assert_eq!(ServiceBusSettings::from_lookup(lookup(&[])).unwrap(), None);
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                " QOTD.servicebus.windows.net ",
            ),
            ("AZURE_CLIENT_ID", "global"),
            ("ServiceBusConnection__clientId", "sb-cid"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.namespace, "qotd.servicebus.windows.net");
        assert_eq!(s.endpoint, "https://qotd.servicebus.windows.net");
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::ManagedIdentity {
                client_id: Some("sb-cid".into())
            })
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "qotd.servicebus.windows.net",
            ),
            ("AZURE_CLIENT_ID", "global"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::ManagedIdentity {
                client_id: Some("global".into())
            })
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                "qotd.servicebus.windows.net",
            ),
            ("QOTD_AZURE_CREDENTIAL", "developertools"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            ServiceBusAuth::Identity(CredentialKind::DeveloperTools)
        );
        let s = ServiceBusSettings::from_lookup(lookup(&[
            (
                "ServiceBusConnection",
                &format!("Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=t"),
            ),
            ("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1:8123/"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.namespace, "ns1.servicebus.windows.net");
        assert_eq!(s.endpoint, "http://127.0.0.1:8123");
        match s.auth {
            ServiceBusAuth::SharedAccessKey { key_name, key } => {
                assert_eq!(key_name, "send");
                assert_eq!(key.expose(), KEY);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_errors_name_the_variable_and_hide_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(
                    "ServiceBusConnection__fullyQualifiedNamespace",
                    "https://ns.servicebus.windows.net/",
                )],
                NAMESPACE_VAR,
            ),
            (
                &[("ServiceBusConnection__fullyQualifiedNamespace", "ns")],
                NAMESPACE_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=http://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (&[("ServiceBusConnection", "SECRETKEY")], CONNECTION_VAR),
            (
                &[(
                    "ServiceBusConnection",
                    "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/SECRETKEY)",
                )],
                CONNECTION_VAR,
            ),
            (
                &[(
                    "ServiceBusConnection",
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=SECRETKEY",
                )],
                CONNECTION_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection",
                        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=SECRETKEY",
                    ),
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                ],
                CONNECTION_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_SERVICEBUS_ENDPOINT", "http://example.com"),
                ],
                ENDPOINT_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1.evil.example"),
                ],
                ENDPOINT_VAR,
            ),
            (
                &[("QOTD_SERVICEBUS_ENDPOINT", "http://127.0.0.1:1")],
                ENDPOINT_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("ServiceBusConnection__credential", "clientsecret"),
                ],
                CREDENTIAL_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("ServiceBusConnection__clientId", "x"),
                    ("QOTD_AZURE_CREDENTIAL", "developertools"),
                ],
                CLIENT_ID_VAR,
            ),
            (
                &[
                    (
                        "ServiceBusConnection__fullyQualifiedNamespace",
                        "ns.servicebus.windows.net",
                    ),
                    ("QOTD_AZURE_CREDENTIAL", "password"),
                ],
                "QOTD_AZURE_CREDENTIAL",
            ),
        ];
        for (vars, variable) in cases {
            let e = ServiceBusSettings::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?} -> {e}");
            assert!(!e.to_string().contains("SECRETKEY"), "{e}");
        }
    }
}
