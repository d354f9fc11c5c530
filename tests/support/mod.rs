//! Shared support for the integration suites: the `qotd` process harness (`app.rs`) and every
//! fake server or credential the suites talk to, one file per faked service:
//! `servicebus.rs`, `openai.rs`, `oidc.rs`, `managed_identity.rs`, `token_endpoint.rs` (the
//! process-wide managed-identity endpoint of the SQL token tests), `handler.rs` (a Functions
//! handler for the local bus) and `credential.rs`. Each suite declares `mod support;` and uses
//! what it needs.
// Every test binary compiles this whole tree and uses only part of it; without this allowance
// each binary would warn about the helpers it does not call.
#![allow(dead_code)]

/// Binds a listener on a free loopback port; returns it with its `http://127.0.0.1:<port>` URL.
pub async fn bind_loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves a warp filter on a free loopback port in the background; evaluates to its base URL.
/// A macro rather than a function because `warp::serve`'s bounds name a trait warp keeps
/// private, so a generic function could not state them. Defined above the `mod` lines so the
/// fakes below see it.
macro_rules! serve_on_loopback {
    ($route:expr) => {{
        let (listener, base) = $crate::support::bind_loopback().await;
        tokio::spawn(warp::serve($route).incoming(listener).run());
        base
    }};
}

pub mod app;
pub mod credential;
pub mod handler;
pub mod managed_identity;
pub mod oidc;
pub mod openai;
pub mod servicebus;
pub mod token_endpoint;

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Decodes `%XX` escapes (a `%` without two characters after it is kept as is).
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// Decodes a form-encoded query component: `%XX` escapes, and `+` as a space.
pub fn form_decode(s: &str) -> String {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
