//! Fake Entra credentials for the adapters that authenticate with Entra (Service Bus, Azure
//! OpenAI): one that hands out a fixed token and records every request's scopes, one whose
//! token endpoint fails a set number of times first.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// `token`, valid for an hour.
fn for_an_hour(token: String) -> AccessToken {
    AccessToken::new(
        token,
        azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
    )
}

/// An Entra credential that hands out a fixed token and records the scopes of every request,
/// for the adapters that authenticate with Entra (Service Bus, Azure OpenAI).
#[derive(Debug)]
pub struct FakeCredential {
    token: String,
    requests: Mutex<Vec<Vec<String>>>,
}

impl FakeCredential {
    pub fn new(token: &str) -> Arc<Self> {
        Arc::new(Self {
            token: token.to_owned(),
            requests: Default::default(),
        })
    }

    /// The scopes of each token request, in order.
    pub fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().unwrap().clone()
    }

    /// Every scope asked for, across requests.
    pub fn scopes(&self) -> Vec<String> {
        self.requests().concat()
    }
}

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.requests
            .lock()
            .unwrap()
            .push(scopes.iter().map(|s| s.to_string()).collect());
        Ok(for_an_hour(self.token.clone()))
    }
}

/// A credential whose token endpoint fails the first `failures` requests, then succeeds.
#[derive(Debug)]
pub struct FlakyCredential {
    pub failures: usize,
    pub calls: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for FlakyCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                "connection refused by the identity endpoint (HTTP 503)",
            ));
        }
        Ok(for_an_hour("fake-entra-token".to_owned()))
    }
}
