//! The application's settings: everything the handler reads from its environment, validated
//! once at start-up. Every error names the variable and the expected form (see
//! `platform::config`); secret values are never printed.

use crate::platform::auth::dev_issuer;
use crate::platform::auth::oidc::check_issuer_url;
use crate::platform::config::{AuthSettings, ConfigError, bool_var, err, string_var};
use crate::platform::http::server::ServerLimits;
use crate::platform::identity::CredentialKind;
use crate::platform::servicebus::ServiceBusSettings;
use crate::platform::store::DatabaseUrl;
use crate::platform::store::mssql::SqlSettings;
use crate::quiz::openai::OpenAiSettings;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the handler reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub auth: AuthSettings,
    pub log_json: bool,
    /// Run the outbox dispatcher loop in this process (it also runs from the DispatchOutbox timer).
    pub dispatch_in_process: bool,
    /// Fire the timer functions from `qotd local`'s stand-in host (tests turn them off so that
    /// nothing runs on the wall clock behind their back).
    pub local_timers: bool,
    /// Generate today's quiz at start-up if it is missing.
    pub catch_up_on_start: bool,
    /// Azure Service Bus, when configured; otherwise events go through the local bus.
    pub servicebus: Option<ServiceBusSettings>,
    /// Azure OpenAI (or any OpenAI-compatible endpoint), when configured; otherwise the bank.
    pub openai: Option<OpenAiSettings>,
    /// Azure SQL / SQL Server pool settings (used only with an ADO.NET `QOTD_DATABASE_URL`).
    pub sql: SqlSettings,
    /// The Entra credential the Azure adapters share.
    pub credential: CredentialKind,
    /// The player page's sign-in settings and the API's CORS origins.
    pub web: WebSettings,
    /// Timeouts and caps of the HTTP listeners (`QOTD_HTTP_*`).
    pub http: ServerLimits,
    /// The platform's id of this instance, stable across restarts (`WEBSITE_INSTANCE_ID` on
    /// App Service/Functions, `CONTAINER_APP_REPLICA_NAME` on Container Apps): the outbox
    /// dispatcher's lease owner.
    pub instance_id: Option<String>,
    /// `QOTD_METRICS_INTERVAL_SECONDS`: how often the operations metrics are logged (0 = never).
    pub metrics_interval: Duration,
}

/// What the player page needs to sign in (served by `GET /api/web-config`), and which other
/// origins may call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSettings {
    /// `QOTD_WEB_CLIENT_ID`: the SPA app registration's client id.
    pub client_id: Option<String>,
    /// `QOTD_WEB_AUTHORITY`: the issuer base URL (its discovery document is under it).
    pub authority: Option<String>,
    /// `QOTD_WEB_API_SCOPE`: the scopes the page requests, space-separated.
    pub scope: Option<String>,
    /// `QOTD_CORS_ALLOWED_ORIGINS`: comma-separated origins; none by default.
    pub cors_origins: Vec<String>,
}

impl WebSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let authority = string_var(get, "QOTD_WEB_AUTHORITY");
        if let Some(a) = &authority
            && !(a.starts_with("https://")
                || a.starts_with("http://127.0.0.1")
                || a.starts_with("http://localhost"))
        {
            return Err(err(
                "QOTD_WEB_AUTHORITY",
                format!("'{a}' must be an https:// URL (plain http only on loopback)"),
            ));
        }
        let mut cors_origins = Vec::new();
        for o in string_var(get, "QOTD_CORS_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let o = o.trim_end_matches('/');
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && !o
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.contains('/'))
                && o != "*";
            if !ok {
                return Err(err(
                    "QOTD_CORS_ALLOWED_ORIGINS",
                    format!("'{o}' is not an origin (expected e.g. https://play.example.com)"),
                ));
            }
            cors_origins.push(o.to_owned());
        }
        Ok(Self {
            client_id: string_var(get, "QOTD_WEB_CLIENT_ID"),
            authority: authority.map(|a| a.trim_end_matches('/').to_owned()),
            scope: string_var(get, "QOTD_WEB_API_SCOPE"),
            cors_origins,
        })
    }
}

impl Settings {
    /// Reads settings through `get` (the process environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let data_dir =
            PathBuf::from(string_var(&get, "QOTD_DATA_DIR").unwrap_or_else(|| ".qotd".into()));
        let database = match string_var(&get, "QOTD_DATABASE_URL") {
            Some(url) => DatabaseUrl::parse(&url).map_err(|p| err("QOTD_DATABASE_URL", p))?,
            None => DatabaseUrl::Sqlite(data_dir.join("qotd.db")),
        };
        let dev_issuer = bool_var(&get, "QOTD_DEV_ISSUER", false)?;
        let metadata_url = string_var(&get, "QOTD_AUTH_METADATA_URL");
        if let Some(url) = &metadata_url {
            check_issuer_url(url).map_err(|p| err("QOTD_AUTH_METADATA_URL", p))?;
        } else if !dev_issuer {
            return Err(err(
                "QOTD_AUTH_METADATA_URL",
                "is required: the OIDC discovery URL of your issuer, e.g. https://<tenant>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration (or set QOTD_DEV_ISSUER=true for local development)",
            ));
        }
        let audiences: Vec<String> = match string_var(&get, "QOTD_AUTH_AUDIENCE") {
            Some(a) => a
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None if dev_issuer => vec![dev_issuer::AUDIENCE.to_owned()],
            None => {
                return Err(err(
                    "QOTD_AUTH_AUDIENCE",
                    "is required: the API's application (client) id or App ID URI that tokens must name in 'aud'",
                ));
            }
        };
        let claim = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = string_var(&get, name).unwrap_or_else(|| default.to_owned());
            if v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':' || c == '/')
            {
                Ok(v)
            } else {
                Err(err(name, format!("'{v}' is not a claim name")))
            }
        };
        let min_refresh_secs = match string_var(&get, "QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS") {
            None => 30,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= 3600)
                .ok_or_else(|| {
                    err(
                        "QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS",
                        format!("'{v}' is not a whole number of seconds from 0 to 3600"),
                    )
                })?,
        };
        let (required_scope, service_role, allowed_policies) =
            AuthSettings::authorization_from(&get)?;
        let log_json = match string_var(&get, "QOTD_LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(err(
                    "QOTD_LOG_FORMAT",
                    format!("'{other}' is not a log format (expected text or json)"),
                ));
            }
        };
        Ok(Self {
            data_dir,
            database,
            auth: AuthSettings {
                metadata_url,
                audiences,
                subject_claim: claim("QOTD_AUTH_SUBJECT_CLAIM", "sub")?,
                roles_claim: claim("QOTD_AUTH_ROLES_CLAIM", "roles")?,
                dev_issuer,
                min_jwks_refresh: Duration::from_secs(min_refresh_secs),
                required_scope,
                service_role,
                allowed_policies,
            },
            log_json,
            dispatch_in_process: bool_var(&get, "QOTD_DISPATCH_IN_PROCESS", true)?,
            catch_up_on_start: bool_var(&get, "QOTD_CATCH_UP_ON_START", true)?,
            local_timers: bool_var(&get, "QOTD_LOCAL_TIMERS", true)?,
            servicebus: ServiceBusSettings::from_lookup(&get)?,
            openai: OpenAiSettings::from_lookup(&get)?,
            sql: SqlSettings::from_lookup(&get)?,
            credential: CredentialKind::from_lookup(&get)?,
            web: WebSettings::from_lookup(&get)?,
            http: ServerLimits::from_lookup(&get)?,
            instance_id: ["WEBSITE_INSTANCE_ID", "CONTAINER_APP_REPLICA_NAME"]
                .iter()
                .find_map(|v| string_var(&get, v)),
            metrics_interval: Duration::from_secs(
                match string_var(&get, "QOTD_METRICS_INTERVAL_SECONDS") {
                    None => 60,
                    Some(v) => v
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s <= 86_400)
                        .ok_or_else(|| {
                            err(
                                "QOTD_METRICS_INTERVAL_SECONDS",
                                format!("'{v}' is not a whole number of seconds from 0 to 86400"),
                            )
                        })?,
                },
            ),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// Defaults of the app settings that function.json names as `%NAME%` (which the Functions host
/// resolves in Azure, where Terraform sets them), for `qotd local` when they are unset.
pub const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    // Every minute, as in local.settings.json.example: SQLite has nothing to pause.
    ("QOTD_DISPATCH_SCHEDULE", "0 */1 * * * *"),
];

/// The local default of app setting `name`, if it has one.
pub fn local_default(name: &str) -> Option<&'static str> {
    LOCAL_DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "QOTD_AUTH_METADATA_URL"),
            (
                &[(
                    "QOTD_AUTH_METADATA_URL",
                    "https://issuer/.well-known/openid-configuration",
                )],
                "QOTD_AUTH_AUDIENCE",
            ),
            (&[("QOTD_DEV_ISSUER", "maybe")], "QOTD_DEV_ISSUER"),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_DATABASE_URL", "postgres://x"),
                ],
                "QOTD_DATABASE_URL",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_METADATA_URL", "http://evil.example/x"),
                ],
                "QOTD_AUTH_METADATA_URL",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_METADATA_URL", "http://localhost.evil.example/x"),
                ],
                "QOTD_AUTH_METADATA_URL",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_METADATA_URL", "http://127.0.0.1@evil.example/x"),
                ],
                "QOTD_AUTH_METADATA_URL",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_REQUIRED_SCOPE", "a b"),
                ],
                "QOTD_AUTH_REQUIRED_SCOPE",
            ),
            (
                &[("QOTD_DEV_ISSUER", "true"), ("QOTD_LOG_FORMAT", "xml")],
                "QOTD_LOG_FORMAT",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_SUBJECT_CLAIM", "a b"),
                ],
                "QOTD_AUTH_SUBJECT_CLAIM",
            ),
            (
                &[
                    ("QOTD_DEV_ISSUER", "true"),
                    ("QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS", "-1"),
                ],
                "QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS",
            ),
        ];
        for (vars, variable) in cases {
            let e = settings(vars).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?} -> {e}");
        }
    }

    #[test]
    fn dev_defaults_are_complete() {
        let s = settings(&[("QOTD_DEV_ISSUER", "true"), ("QOTD_DATA_DIR", "/tmp/x")]).unwrap();
        assert_eq!(s.database, DatabaseUrl::Sqlite("/tmp/x/qotd.db".into()));
        assert_eq!(s.auth.audiences, vec!["qotd-local".to_owned()]);
        assert_eq!(
            (s.auth.subject_claim.as_str(), s.auth.roles_claim.as_str()),
            ("sub", "roles")
        );
        assert_eq!(s.auth.required_scope, "quiz.play");
        assert_eq!(s.auth.service_role, "quiz.service");
        for ok in [
            "https://login.example/x",
            "http://localhost:7071/x",
            "http://127.0.0.5/x",
            "http://[::1]:80/x",
        ] {
            check_issuer_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
