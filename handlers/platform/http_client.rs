//! The outbound HTTP client, built on first use instead of at start-up.
//!
//! Building a `reqwest::Client` loads the system's TLS trust roots (about 150 certificates, and
//! a scan of `/etc/ssl/certs`). Profiling a start (`perf record`, see BENCHMARKS.md) showed it
//! as the largest piece of `App::build`, paid before the first answer although a local run
//! may never make a TLS call and a deployed one makes its first only when a token must be
//! checked or an event sent. [`LazyClient`] builds it on first use; [`LazyClient::warm_up`]
//! builds it on a blocking thread right after the listener is up, so the first request
//! rarely waits for it. A failure to build (no trust roots at all) is kept and reported by
//! every caller as its own transient error, and logged once by `warm_up`.

use std::sync::{Arc, OnceLock};

/// How the client is built (settings such as the idle pool size).
type Build = fn() -> reqwest::ClientBuilder;

/// A `reqwest::Client` built once, on first use; clones share it.
#[derive(Clone)]
pub struct LazyClient {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    build: Build,
}

impl LazyClient {
    pub fn new(build: Build) -> Self {
        Self {
            client: Arc::new(OnceLock::new()),
            build,
        }
    }

    /// The client, built now if this is the first use; the build error otherwise.
    pub fn get(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                (self.build)()
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Builds the client on a blocking thread (call once the server listens).
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.get() {
                tracing::error!(error = %e, "outbound HTTPS calls will fail");
            }
        });
    }
}

impl From<reqwest::Client> for LazyClient {
    /// An already-built client (tests, one-shot CLI commands).
    fn from(client: reqwest::Client) -> Self {
        Self {
            client: Arc::new(OnceLock::from(Ok(client))),
            build: reqwest::Client::builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_built_once_on_first_use_and_shared_by_clones() {
        let lazy = LazyClient::new(reqwest::Client::builder);
        assert!(lazy.client.get().is_none(), "nothing is built up front");
        let twin = lazy.clone();
        let a = lazy.get().unwrap() as *const reqwest::Client;
        let b = twin.get().unwrap() as *const reqwest::Client;
        assert_eq!(a, b, "clones share one client");
    }
}
