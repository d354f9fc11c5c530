//! Configuration primitives: the error that names a variable, typed readers over a lookup
//! function (the process environment in production, a map in tests), the authentication
//! settings and the handler port. The application's `Settings` (app/settings.rs) are built
//! from these; Functions delivers app settings as environment variables, with Key Vault
//! references already resolved. Secret values are never printed.

use std::time::Duration;

/// How the handler authenticates callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// OIDC discovery URL; `None` with the dev issuer means "my own /dev/oidc endpoint".
    pub metadata_url: Option<String>,
    pub audiences: Vec<String>,
    pub subject_claim: String,
    pub roles_claim: String,
    pub dev_issuer: bool,
    pub min_jwks_refresh: Duration,
    /// `QOTD_AUTH_REQUIRED_SCOPE`: the scope a delegated token must list in `scp`.
    pub required_scope: String,
    /// `QOTD_AUTH_SERVICE_ROLE`: the app role an app-only token must hold.
    pub service_role: String,
    /// `QOTD_AUTH_ALLOWED_POLICIES`: B2C user flows (`tfp`/`acr`) accepted; empty = any.
    pub allowed_policies: Vec<String>,
}

impl AuthSettings {
    /// Reads the authorization settings (`QOTD_AUTH_REQUIRED_SCOPE`, `QOTD_AUTH_SERVICE_ROLE`,
    /// `QOTD_AUTH_ALLOWED_POLICIES`); each must be a single token of visible ASCII without
    /// spaces or quotes (a scope name, a role value, a policy id).
    pub fn authorization_from(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(String, String, Vec<String>), ConfigError> {
        fn word(v: &str) -> bool {
            !v.is_empty()
                && v.len() <= 256
                && v.chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ','))
        }
        let one = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = string_var(get, name).unwrap_or_else(|| default.to_owned());
            if word(&v) {
                Ok(v)
            } else {
                Err(err(
                    name,
                    format!(
                        "'{v}' is not a single scope/role name (visible ASCII, no spaces, commas or quotes)"
                    ),
                ))
            }
        };
        let scope = one("QOTD_AUTH_REQUIRED_SCOPE", "quiz.play")?;
        let role = one("QOTD_AUTH_SERVICE_ROLE", "quiz.service")?;
        let name = "QOTD_AUTH_ALLOWED_POLICIES";
        let policies: Vec<String> = string_var(get, name)
            .map(|raw| {
                raw.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = policies.iter().find(|p| !word(p)) {
            return Err(err(
                name,
                format!("'{bad}' is not a user flow / policy id (e.g. B2C_1_signupsignin)"),
            ));
        }
        Ok((scope, role, policies))
    }
}

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

pub fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

pub fn bool_var(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) if ["true", "1", "yes"].contains(&v.to_ascii_lowercase().as_str()) => Ok(true),
        Some(v) if ["false", "0", "no"].contains(&v.to_ascii_lowercase().as_str()) => Ok(false),
        Some(v) => Err(err(
            name,
            format!("'{v}' is not a boolean (expected true or false)"),
        )),
    }
}

pub fn string_var(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A settings lookup over fixed pairs, for tests of every `from_lookup` reader.
#[cfg(test)]
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

/// The port the Functions host told the handler to listen on.
pub fn handler_port(get: impl Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    let name = "FUNCTIONS_CUSTOMHANDLER_PORT";
    let raw = get(name).ok_or_else(|| err(name, "is not set; the Azure Functions host sets it when it starts the handler (for a manual run, set it to a free port, e.g. 8080)"))?;
    raw.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            err(
                name,
                format!("'{raw}' is not a TCP port (expected 1-65535)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_port_is_checked() {
        for bad in ["", "0", "65536", "http"] {
            let e = handler_port(|_| Some(bad.to_owned())).unwrap_err();
            assert!(
                e.to_string().contains("FUNCTIONS_CUSTOMHANDLER_PORT"),
                "{e}"
            );
        }
        assert!(handler_port(|_| None).is_err());
        assert_eq!(handler_port(|_| Some("8080".into())).unwrap(), 8080);
    }

    #[test]
    fn authorization_settings_default_and_are_checked() {
        let (scope, role, policies) = AuthSettings::authorization_from(&lookup(&[])).unwrap();
        assert_eq!(
            (scope.as_str(), role.as_str()),
            ("quiz.play", "quiz.service")
        );
        assert!(policies.is_empty());
        let (_, _, policies) = AuthSettings::authorization_from(&lookup(&[(
            "QOTD_AUTH_ALLOWED_POLICIES",
            " B2C_1_signin , B2C_1_susi,",
        )]))
        .unwrap();
        assert_eq!(policies, ["B2C_1_signin", "B2C_1_susi"]);
        for (var, bad) in [
            ("QOTD_AUTH_REQUIRED_SCOPE", "quiz play"),
            ("QOTD_AUTH_SERVICE_ROLE", "a\"b"),
            ("QOTD_AUTH_ALLOWED_POLICIES", "ok,b c"),
        ] {
            let e = AuthSettings::authorization_from(&lookup(&[(var, bad)])).unwrap_err();
            assert_eq!(e.variable, var, "{e}");
        }
    }
}
