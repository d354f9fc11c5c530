//! A process-wide fake managed-identity endpoint for the SQL token tests: a warp server on its
//! own thread and runtime (each test has its own runtime) speaking the App Service protocol
//! azure_identity uses when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set. It hands out a
//! different token (`token-<client>-<n>`) on every request, issued with
//! `expires_on = now + 301 s` so the first is due for renewal a second later, refuses the client
//! id `unknown-identity`, and counts requests per client id. [`endpoint`] starts it once and
//! sets the two variables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use warp::Filter;

const HEADER: &str = "qotd-test-identity-header";

/// Requests seen by the mock endpoint, as raw query strings.
#[derive(Default)]
struct Seen {
    queries: Vec<String>,
    per_client: HashMap<String, u32>,
}

/// The shared endpoint: how many requests each client id made, and their query strings.
pub struct MockEndpoint {
    seen: Arc<Mutex<Seen>>,
}

impl MockEndpoint {
    pub fn requests_for(&self, client: &str) -> u32 {
        *self
            .seen
            .lock()
            .unwrap()
            .per_client
            .get(client)
            .unwrap_or(&0)
    }

    pub fn queries_for(&self, client: &str) -> Vec<String> {
        let needle = format!("client_id={client}");
        self.seen
            .lock()
            .unwrap()
            .queries
            .iter()
            .filter(|q| {
                if client == "system" {
                    !q.contains("client_id=")
                } else {
                    q.contains(&needle)
                }
            })
            .cloned()
            .collect()
    }
}

/// The value of `key` in a raw query string.
pub fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Starts the endpoint once, on its own thread and runtime (each test has its own runtime),
/// and points azure_identity at it before any credential is built.
pub fn endpoint() -> &'static MockEndpoint {
    static ENDPOINT: OnceLock<MockEndpoint> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let route = warp::get()
                    .and(warp::path!("msi" / "token"))
                    .and(warp::query::raw())
                    .and(warp::header::optional::<String>("x-identity-header"))
                    .map(move |query: String, header: Option<String>| {
                        if header.as_deref() != Some(HEADER) {
                            return warp::reply::with_status(
                                warp::reply::json(&serde_json::json!({"error": "bad header"})),
                                warp::http::StatusCode::UNAUTHORIZED,
                            );
                        }
                        let client = param(&query, "client_id").unwrap_or("system").to_owned();
                        let n = {
                            let mut s = state.lock().unwrap();
                            s.queries.push(query.clone());
                            let n = s.per_client.entry(client.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        if client == "unknown-identity" {
                            return warp::reply::with_status(
                                warp::reply::json(&serde_json::json!({
                                    "error": "invalid_request",
                                    "error_description": "Identity not found"
                                })),
                                warp::http::StatusCode::BAD_REQUEST,
                            );
                        }
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({
                                "access_token": format!("token-{client}-{n}"),
                                "expires_on": (now + 301).to_string(),
                                "resource": "https://database.windows.net",
                                "token_type": "Bearer"
                            })),
                            warp::http::StatusCode::OK,
                        )
                    });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                warp::serve(route).incoming(listener).run().await;
            });
        });
        let addr = rx.recv().unwrap();
        // SAFETY: set once, before any credential (the only reader) is built, under the
        // OnceLock that every test goes through first; the test binary that uses this endpoint
        // (mssql_identity.rs) sets no other variable.
        unsafe {
            std::env::set_var("IDENTITY_ENDPOINT", format!("http://{addr}/msi/token"));
            std::env::set_var("IDENTITY_HEADER", HEADER);
        }
        MockEndpoint { seen }
    })
}
