//! The `QOTD_OPENAI_*` settings: endpoint, deployment, API style and version (the v1 API unless
//! a dated `QOTD_OPENAI_API_VERSION` is set), key or Entra, reasoning model or not, token and
//! time limits, and the retry numbers of a call. Errors name the variable and never repeat the
//! key or credentials in the URL.

use super::clip;
use crate::platform::config::ConfigError;
use crate::platform::retry::RetryPolicy;
use std::time::Duration;

/// The dated GA inference version used with `QOTD_OPENAI_API_STYLE=deployments` when
/// `QOTD_OPENAI_API_VERSION` is unset; it supports strict `json_schema` structured outputs.
/// (Without either setting the v1 API is used, which takes no api-version.)
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

pub(super) const ENDPOINT: &str = "QOTD_OPENAI_ENDPOINT";
pub(super) const DEPLOYMENT: &str = "QOTD_OPENAI_DEPLOYMENT";
const API_STYLE: &str = "QOTD_OPENAI_API_STYLE";
const API_VERSION: &str = "QOTD_OPENAI_API_VERSION";
pub(super) const API_KEY: &str = "QOTD_OPENAI_API_KEY";
const API_KEY_HEADER: &str = "QOTD_OPENAI_API_KEY_HEADER";
const TIMEOUT_SECONDS: &str = "QOTD_OPENAI_TIMEOUT_SECONDS";
const MAX_SECONDS: &str = "QOTD_OPENAI_MAX_SECONDS";
const REASONING: &str = "QOTD_OPENAI_REASONING";
const MAX_COMPLETION_TOKENS: &str = "QOTD_OPENAI_MAX_COMPLETION_TOKENS";

/// Default of `QOTD_OPENAI_MAX_COMPLETION_TOKENS`: the largest call (the draft) of a reasoning
/// model spends most of its budget on hidden reasoning tokens before it writes the JSON.
pub const DEFAULT_MAX_COMPLETION_TOKENS: u32 = 16_000;

/// An API key: the platform-wide [`Secret`](crate::platform::secret::Secret), whose `Debug`
/// prints `[redacted]` and which has no `Display`.
pub type ApiKey = crate::platform::secret::Secret;

/// Which URL shape the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStyle {
    /// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`
    Deployments,
    /// `{endpoint}/openai/v1/chat/completions` (or `{endpoint}/chat/completions` when the
    /// endpoint has a path, e.g. `https://host/v1` of an OpenAI-compatible server), with the
    /// deployment or model name as `model` in the body.
    V1,
}

/// `QOTD_OPENAI_REASONING`: whether the deployment is a reasoning model (o-series, GPT-5
/// family), which rejects sampling parameters (`temperature`, `top_p`) and spends completion
/// tokens on reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    /// From the deployment name ([`is_reasoning_model_name`]), and from what the service says:
    /// the model name in a reply, or a 400 rejecting a sampling parameter, switch it on.
    Auto,
    On,
    Off,
}

/// Whether a deployment or model name belongs to a reasoning family: `o1`, `o3`, `o4-mini`, …
/// (an `o` followed by a digit) or `gpt-5*` (except the non-reasoning `gpt-5*-chat`).
pub fn is_reasoning_model_name(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let o_series = name
        .strip_prefix('o')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit());
    let gpt5 = (name.starts_with("gpt-5") || name.starts_with("gpt5")) && !name.contains("chat");
    o_series || gpt5
}

/// How an API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
    /// `Authorization: Bearer <key>` (OpenAI and most OpenAI-compatible servers).
    Bearer,
}

/// Retries of one call when the service names no wait: three attempts, 500 ms doubling to 8 s.
/// The budget is the generation's ([`OpenAiSettings::max_total`]), which the client puts in
/// `total_budget`; the default here is that of `QOTD_OPENAI_MAX_SECONDS`.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(8),
    total_budget: Duration::from_secs(DEFAULT_MAX_SECONDS),
};

/// Default of `QOTD_OPENAI_TIMEOUT_SECONDS` and `QOTD_OPENAI_MAX_SECONDS`.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
const DEFAULT_MAX_SECONDS: u64 = 120;

/// Azure OpenAI settings; present only when `QOTD_OPENAI_ENDPOINT` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiSettings {
    /// Base URL without a trailing slash, e.g. `https://myres.openai.azure.com`.
    pub endpoint: String,
    /// The deployment name (Azure) or model name (OpenAI-compatible servers).
    pub deployment: String,
    pub api_style: ApiStyle,
    /// Sent as `api-version` with `ApiStyle::Deployments`; unused with `V1`.
    pub api_version: String,
    /// `None` means: authenticate with the Entra credential.
    pub api_key: Option<ApiKey>,
    pub key_header: KeyHeader,
    /// Limit for one HTTP request.
    pub request_timeout: Duration,
    /// Limit for a whole generation, retries and verification included.
    pub max_total: Duration,
    /// Whether the deployment is a reasoning model (see [`Reasoning`]).
    pub reasoning: Reasoning,
    /// Upper bound of `max_completion_tokens` (reasoning tokens included) of the largest call;
    /// smaller calls get a fraction of it.
    pub max_completion_tokens: u32,
    /// Backoff between the attempts of one call. Not read from the environment; tests shorten
    /// the delays. Its `total_budget` is replaced by `max_total` when the client is built: a
    /// generation has one budget, shared by all its calls.
    pub retry: RetryPolicy,
}

pub(super) fn config_err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl OpenAiSettings {
    /// Reads the `QOTD_OPENAI_*` settings through `get`. `Ok(None)` when
    /// `QOTD_OPENAI_ENDPOINT` is unset (the bank alone generates quizzes). Errors name the
    /// variable and never contain the API key.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(raw_endpoint) = var(ENDPOINT) else {
            return Ok(None);
        };
        let endpoint = parse_endpoint(&raw_endpoint)?;
        // The v1 API unless a dated api-version asks for the deployments URL shape.
        let dated = var(API_VERSION).is_some();
        let api_style = match var(API_STYLE).map(|v| v.to_ascii_lowercase()).as_deref() {
            None if dated => ApiStyle::Deployments,
            None => ApiStyle::V1,
            Some("deployments") => ApiStyle::Deployments,
            Some("v1") => ApiStyle::V1,
            Some(other) => {
                return Err(config_err(
                    API_STYLE,
                    format!(
                        "'{}' is not an API style (expected deployments or v1)",
                        clip(other, 40)
                    ),
                ));
            }
        };
        let deployment = var(DEPLOYMENT).ok_or_else(|| {
            config_err(
                DEPLOYMENT,
                "is required when QOTD_OPENAI_ENDPOINT is set: the deployment name (Azure) or model name (OpenAI-compatible server)",
            )
        })?;
        check_deployment(&deployment, api_style)?;
        let api_version = var(API_VERSION).unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if !valid_api_version(&api_version) {
            return Err(config_err(
                API_VERSION,
                format!(
                    "'{}' is not an API version (expected YYYY-MM-DD or YYYY-MM-DD-preview, e.g. {DEFAULT_API_VERSION})",
                    clip(&api_version, 40)
                ),
            ));
        }
        let api_key = match var(API_KEY) {
            None => None,
            Some(k) if k.starts_with("@Microsoft.KeyVault(") => {
                return Err(config_err(
                    API_KEY,
                    "is an unresolved Key Vault reference: give the app's identity read access to the secret and check the reference (the value is not shown)",
                ));
            }
            Some(k) if !k.chars().all(|c| c.is_ascii_graphic()) => {
                return Err(config_err(
                    API_KEY,
                    "contains characters that cannot be sent in an HTTP header (the value is not shown)",
                ));
            }
            Some(k) => Some(ApiKey::new(k)),
        };
        let key_header = match var(API_KEY_HEADER)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("api-key") => KeyHeader::ApiKey,
            Some("authorization") | Some("bearer") => KeyHeader::Bearer,
            Some(other) => {
                return Err(config_err(
                    API_KEY_HEADER,
                    format!(
                        "'{}' is not a key header (expected api-key or authorization)",
                        clip(other, 40)
                    ),
                ));
            }
        };
        let request_timeout = seconds(&var, TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS, 600)?;
        let max_total = seconds(&var, MAX_SECONDS, DEFAULT_MAX_SECONDS, 3600)?;
        let reasoning = match var(REASONING).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("auto") => Reasoning::Auto,
            Some("true") | Some("1") | Some("yes") => Reasoning::On,
            Some("false") | Some("0") | Some("no") => Reasoning::Off,
            Some(other) => {
                return Err(config_err(
                    REASONING,
                    format!(
                        "'{}' is not a reasoning mode (expected auto, true or false)",
                        clip(other, 40)
                    ),
                ));
            }
        };
        let max_completion_tokens = match var(MAX_COMPLETION_TOKENS) {
            None => DEFAULT_MAX_COMPLETION_TOKENS,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (256..=128_000).contains(n))
                .ok_or_else(|| {
                    config_err(
                        MAX_COMPLETION_TOKENS,
                        format!(
                            "'{}' is not a whole number of tokens from 256 to 128000",
                            clip(&v, 40)
                        ),
                    )
                })?,
        };
        Ok(Some(Self {
            endpoint,
            deployment,
            api_style,
            api_version,
            api_key,
            key_header,
            request_timeout,
            max_total,
            reasoning,
            max_completion_tokens,
            retry: DEFAULT_RETRY,
        }))
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Whether the deployment is known to be a reasoning model before any call: `On`, or `Auto`
    /// with a reasoning deployment name.
    pub fn reasoning_model(&self) -> bool {
        match self.reasoning {
            Reasoning::On => true,
            Reasoning::Off => false,
            Reasoning::Auto => is_reasoning_model_name(&self.deployment),
        }
    }

    /// Whether calls need an Entra credential (no API key is configured).
    pub fn uses_entra(&self) -> bool {
        self.api_key.is_none()
    }

    /// The chat completions URL these settings call.
    pub fn chat_url(&self) -> Result<String, ConfigError> {
        let base = parse_endpoint(&self.endpoint)?;
        check_deployment(&self.deployment, self.api_style)?;
        Ok(match self.api_style {
            ApiStyle::Deployments => format!(
                "{base}/openai/deployments/{}/chat/completions?api-version={}",
                self.deployment, self.api_version
            ),
            ApiStyle::V1 => {
                let has_path = reqwest::Url::parse(&base).is_ok_and(|u| u.path() != "/");
                if has_path {
                    format!("{base}/chat/completions")
                } else {
                    format!("{base}/openai/v1/chat/completions")
                }
            }
        })
    }
}

fn seconds(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    match var(name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=max).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                config_err(
                    name,
                    format!(
                        "'{}' is not a whole number of seconds from 1 to {max}",
                        clip(&v, 40)
                    ),
                )
            }),
    }
}

/// Checks the endpoint and returns it without a trailing slash. Never echoes the value, which
/// could carry credentials in its user-info part.
fn parse_endpoint(raw: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        config_err(
            ENDPOINT,
            format!(
                "is not an absolute URL ({e}); expected e.g. https://<resource>.openai.azure.com"
            ),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_err(
            ENDPOINT,
            "must not contain a user name or password; set the key in QOTD_OPENAI_API_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_err(
            ENDPOINT,
            "must not have a query or fragment; the api-version is set with QOTD_OPENAI_API_VERSION",
        ));
    }
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some() => {}
        "http" if loopback => {}
        _ => {
            return Err(config_err(
                ENDPOINT,
                "must be an https:// URL with a host (plain http only on loopback), e.g. https://<resource>.openai.azure.com",
            ));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn check_deployment(name: &str, style: ApiStyle) -> Result<(), ConfigError> {
    let ok = match style {
        // It becomes a path segment: Azure deployment names are letters, digits, '-', '_', '.'.
        ApiStyle::Deployments => {
            name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }
        // It only travels in the JSON body: model names such as `org/model:tag` are fine.
        ApiStyle::V1 => {
            name.chars().count() <= 256
                && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
        }
    };
    if name.is_empty() || !ok {
        return Err(config_err(
            DEPLOYMENT,
            format!(
                "'{}' is not a deployment name (letters, digits, '-', '_', '.'; at most 64 characters)",
                clip(name, 80)
            ),
        ));
    }
    Ok(())
}

fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
        && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;

    const BASE: (&str, &str) = (ENDPOINT, "https://res.openai.azure.com/");

    #[test]
    fn settings_absent_without_an_endpoint_and_defaults_are_complete() {
        assert_eq!(OpenAiSettings::from_lookup(lookup(&[])).unwrap(), None);
        let s = OpenAiSettings::from_lookup(lookup(&[BASE, (DEPLOYMENT, "gpt-4o")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint, "https://res.openai.azure.com");
        assert_eq!(s.api_style, ApiStyle::V1);
        assert_eq!(s.api_version, DEFAULT_API_VERSION);
        assert_eq!(s.api_key, None);
        assert!(s.uses_entra());
        assert_eq!(s.key_header, KeyHeader::ApiKey);
        assert_eq!(s.request_timeout, Duration::from_secs(30));
        assert_eq!(s.max_total, Duration::from_secs(120));
        assert_eq!(s.reasoning, Reasoning::Auto);
        assert!(!s.reasoning_model());
        assert_eq!(s.max_completion_tokens, DEFAULT_MAX_COMPLETION_TOKENS);
        assert_eq!(
            s.chat_url().unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        // A dated api-version selects the deployments URL shape.
        let s = OpenAiSettings::from_lookup(lookup(&[
            BASE,
            (DEPLOYMENT, "gpt-4o"),
            (API_VERSION, DEFAULT_API_VERSION),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.api_style, ApiStyle::Deployments);
        assert_eq!(
            s.chat_url().unwrap(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn reasoning_models_are_recognised_by_name_or_setting() {
        for name in [
            "o1",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.4-mini",
            "GPT-5-nano",
            "azure/o3",
        ] {
            assert!(is_reasoning_model_name(name), "{name}");
        }
        for name in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-5-chat",
            "omni",
            "quiz-generator",
        ] {
            assert!(!is_reasoning_model_name(name), "{name}");
        }
        let with = |mode: &str, deployment: &str| {
            OpenAiSettings::from_lookup(lookup(&[
                BASE,
                (DEPLOYMENT, deployment),
                (REASONING, mode),
            ]))
            .unwrap()
            .unwrap()
            .reasoning_model()
        };
        assert!(with("auto", "gpt-5-mini"));
        assert!(!with("false", "gpt-5-mini"));
        assert!(with("true", "quiz-generator"));
        assert!(!with("auto", "quiz-generator"));
    }

    #[test]
    fn v1_urls_for_azure_and_for_compatible_servers() {
        let s = |endpoint: &str| {
            OpenAiSettings::from_lookup(lookup(&[
                (ENDPOINT, endpoint),
                (DEPLOYMENT, "org/model:7b"),
                (API_STYLE, "V1"),
                (API_KEY, "k"),
                (API_KEY_HEADER, "authorization"),
            ]))
            .unwrap()
            .unwrap()
        };
        assert_eq!(
            s("https://res.openai.azure.com").chat_url().unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            s("https://res.openai.azure.com/openai/v1/")
                .chat_url()
                .unwrap(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        let local = s("http://127.0.0.1:8000/v1");
        assert_eq!(
            local.chat_url().unwrap(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(local.key_header, KeyHeader::Bearer);
    }

    #[test]
    fn setting_errors_name_the_variable_and_never_echo_the_key() {
        let secret = "sk-THIS-IS-SECRET-0123456789";
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ENDPOINT, "http://res.openai.azure.com")], ENDPOINT),
            (&[(ENDPOINT, "not a url")], ENDPOINT),
            (
                &[(ENDPOINT, "https://user:pw@res.openai.azure.com")],
                ENDPOINT,
            ),
            (
                &[(ENDPOINT, "https://res.openai.azure.com?api-version=1")],
                ENDPOINT,
            ),
            (&[BASE], DEPLOYMENT),
            (
                &[BASE, (DEPLOYMENT, "a/b"), (API_STYLE, "deployments")],
                DEPLOYMENT,
            ),
            (&[BASE, (DEPLOYMENT, "d"), (API_STYLE, "legacy")], API_STYLE),
            (
                &[BASE, (DEPLOYMENT, "d"), (API_VERSION, "2024-13-01")],
                API_VERSION,
            ),
            (&[BASE, (DEPLOYMENT, "d"), (API_VERSION, "v1")], API_VERSION),
            (
                &[
                    BASE,
                    (DEPLOYMENT, "d"),
                    (
                        API_KEY,
                        "@Microsoft.KeyVault(SecretUri=https://kv/secrets/k)",
                    ),
                ],
                API_KEY,
            ),
            (
                &[
                    BASE,
                    (DEPLOYMENT, "d"),
                    (API_KEY, "sk-THIS-IS-SECRET-0123456789\u{7}"),
                ],
                API_KEY,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (API_KEY_HEADER, "x-key")],
                API_KEY_HEADER,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (TIMEOUT_SECONDS, "0")],
                TIMEOUT_SECONDS,
            ),
            (
                &[BASE, (DEPLOYMENT, "d"), (MAX_SECONDS, "soon")],
                MAX_SECONDS,
            ),
            (&[BASE, (DEPLOYMENT, "d"), (REASONING, "maybe")], REASONING),
            (
                &[BASE, (DEPLOYMENT, "d"), (MAX_COMPLETION_TOKENS, "50")],
                MAX_COMPLETION_TOKENS,
            ),
        ];
        for (vars, variable) in cases {
            let e = OpenAiSettings::from_lookup(lookup(vars)).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?} -> {e}");
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        for ok in ["2024-10-21", "2025-04-01-preview"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for loopback in [
            "http://localhost:1234",
            "http://[::1]:80",
            "http://127.0.0.2",
        ] {
            assert!(parse_endpoint(loopback).is_ok(), "{loopback}");
        }
    }
}
