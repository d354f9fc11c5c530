//! Shared access signatures: HMAC-SHA256 tokens for `https://<ns>/<topic>`, cached per topic
//! until five minutes before they expire (tokens live one hour), and the URL encoding they
//! (and the request paths) use.

use crate::platform::secret::Secret;
use aws_lc_rs::hmac;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long a SAS token is valid, and how close to expiry it is replaced.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);
const SAS_RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Signs SAS tokens with one key and caches them per resource.
pub(super) struct SasSigner {
    key_name: String,
    /// Boxed: the HMAC key state is large.
    key: Box<hmac::Key>,
    /// resource URI -> (header value, expiry as unix seconds)
    cache: Mutex<HashMap<String, (String, u64)>>,
}

impl SasSigner {
    pub(super) fn new(key_name: &str, key: &Secret) -> Self {
        Self {
            key_name: key_name.to_owned(),
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes())),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` value for `topic` in `namespace`: the cached token while it has
    /// more than [`SAS_RENEW_BEFORE`] left, else a fresh one.
    pub(super) fn token(&self, namespace: &str, topic: &str) -> String {
        let resource = format!("https://{namespace}/{topic}");
        let now = unix_now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, expiry)) = cache.get(&resource)
            && *expiry > now + SAS_RENEW_BEFORE.as_secs()
        {
            return token.clone();
        }
        let expiry = now + SAS_LIFETIME.as_secs();
        let token = sign_sas(&resource, &self.key_name, &self.key, expiry);
        cache.insert(resource, (token.clone(), expiry));
        token
    }
}

/// Seconds since the epoch by the real clock: a SAS expiry is checked by Azure against real
/// time, so it must never follow a test's pinned clock.
fn unix_now() -> u64 {
    use crate::platform::clock::{Clock, SystemClock};
    u64::try_from(SystemClock.now().timestamp()).unwrap_or(0)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (what `encodeURIComponent`
/// and .NET's `WebUtility.UrlEncode` agree on for SAS tokens).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a topic for the URL path (keeping `/` for hierarchical entity names).
pub(super) fn encode_path(topic: &str) -> String {
    topic
        .split('/')
        .map(url_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// `SharedAccessSignature sr=<enc resource>&sig=<enc base64 HMAC-SHA256("<enc resource>\n<expiry>")>&se=<expiry>&skn=<key name>`.
fn sign_sas(resource: &str, key_name: &str, key: &hmac::Key, expiry: u64) -> String {
    let sr = url_encode(resource);
    let tag = hmac::sign(key, format!("{sr}\n{expiry}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        url_encode(&sig),
        url_encode(key_name)
    )
}

/// A SAS token for `resource` signed with `key`, valid until `expiry` (unix seconds).
pub fn shared_access_signature(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    sign_sas(
        resource,
        key_name,
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        expiry,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ=";

    #[test]
    fn sas_token_shape() {
        let t = shared_access_signature(
            "https://ns.servicebus.windows.net/topic-a",
            "send key",
            KEY,
            1_700_000_000,
        );
        let rest = t.strip_prefix("SharedAccessSignature ").unwrap();
        let parts: HashMap<&str, &str> =
            rest.split('&').filter_map(|p| p.split_once('=')).collect();
        assert_eq!(
            parts["sr"],
            "https%3A%2F%2Fns.servicebus.windows.net%2Ftopic-a"
        );
        assert_eq!(parts["se"], "1700000000");
        assert_eq!(parts["skn"], "send%20key");
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, KEY.as_bytes()),
            b"https%3A%2F%2Fns.servicebus.windows.net%2Ftopic-a\n1700000000",
        );
        assert_eq!(
            parts["sig"],
            url_encode(&base64::engine::general_purpose::STANDARD.encode(expected.as_ref()))
        );
    }
}
