//! Entra tokens for SQL connections, against a local managed-identity endpoint
//! (`support/token_endpoint.rs`: a warp server speaking the App Service protocol that
//! azure_identity uses when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set). No SQL Server is
//! involved.
//!
//! Covered here: the connection string's Authentication mode reaches the shared credential
//! factory (system- and user-assigned managed identity, the SQL scope/resource); the pool
//! manager's token step (`Manager::login_token`, which `connect` calls for every new
//! connection) hands out a cached token while it is fresh and a new one once the first is due
//! for renewal; a token failure is one readable line; and through a real bb8 pool whose
//! connects fail (nothing listens on the port), the token is fetched per connection attempt and
//! the real connect error reaches the caller instead of a bare pool timeout.
//!
//! Not covered (needs a server, i.e. `QOTD_TEST_MSSQL_URL`): that SQL Server accepts the token
//! in the TDS login, that a session survives its token's expiry, and the routing redirect.
//!
//! "Expiry" below is azure_identity's renewal point: it renews a cached token once
//! `expires_on <= now + 300 s`. Tokens are issued with `expires_on = now + 301 s`, so the first
//! token is due for renewal a second after it was issued; the endpoint hands out a different
//! token on every request, so a new token proves a new request was made.

mod support;

use qotd::platform::store::EventStore;
use qotd::platform::store::mssql::pool::{Manager, SQL_SCOPE};
use qotd::platform::store::mssql::{ConnectionString, Mssql, SqlSettings};
use std::time::Duration;
use support::closed_port;
use support::token_endpoint::{endpoint, param};

fn managed_identity(client_id: Option<&str>, port: u16) -> ConnectionString {
    let user = client_id
        .map(|c| format!(";User Id={c}"))
        .unwrap_or_default();
    ConnectionString::parse(&format!(
        "Server=tcp:127.0.0.1,{port};Database=qotd;Authentication=Active Directory Managed Identity{user}"
    ))
    .unwrap()
}

fn secret(t: Option<azure_core::credentials::Secret>) -> String {
    t.expect("token auth yields a token").secret().to_owned()
}

#[tokio::test]
async fn a_connection_opened_after_the_first_token_expires_uses_a_new_token() {
    let mock = endpoint();
    let client = "refresh-client";
    let manager = Manager::new(
        &managed_identity(Some(client), 1433),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap();

    // First connection: one request to the endpoint.
    assert_eq!(
        secret(manager.login_token().await.unwrap()),
        format!("token-{client}-1")
    );
    assert_eq!(mock.requests_for(client), 1);
    // A second connection while the token is fresh reuses it (cached, no request).
    assert_eq!(
        secret(manager.login_token().await.unwrap()),
        format!("token-{client}-1")
    );
    assert_eq!(
        mock.requests_for(client),
        1,
        "the credential caches the token"
    );

    // The first token is due for renewal one second after it was issued.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = secret(manager.login_token().await.unwrap());
    assert_eq!(
        fresh,
        format!("token-{client}-2"),
        "a new connection gets a new token"
    );
    assert_eq!(mock.requests_for(client), 2);

    // The whole per-connection config step works the same way (the token goes into the
    // AAD-token login of a fresh copy of the base config).
    let cfg = manager.config_for_new_connection().await.unwrap();
    assert_eq!(cfg.get_addr(), "127.0.0.1:1433");

    // The request asked for Azure SQL's resource with the App Service protocol.
    let q = &mock.queries_for(client)[0];
    assert_eq!(param(q, "api-version"), Some("2019-08-01"), "{q}");
    assert_eq!(
        param(q, "resource"),
        Some("https%3A%2F%2Fdatabase.windows.net"),
        "{q}"
    );
    assert_eq!(SQL_SCOPE, "https://database.windows.net/.default");
}

#[tokio::test]
async fn system_assigned_identity_sends_no_client_id() {
    let mock = endpoint();
    let manager = Manager::new(
        &managed_identity(None, 1433),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap();
    let token = secret(manager.login_token().await.unwrap());
    assert!(token.starts_with("token-system-"), "{token}");
    assert!(!mock.queries_for("system").is_empty());
}

#[tokio::test]
async fn sql_logins_need_no_token() {
    endpoint();
    let cs =
        ConnectionString::parse("Server=127.0.0.1;Database=qotd;User Id=sa;Password=x").unwrap();
    let manager = Manager::new(&cs, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
    assert!(manager.login_token().await.unwrap().is_none());
}

#[tokio::test]
async fn a_token_failure_is_one_readable_line() {
    endpoint();
    let manager = Manager::new(
        &managed_identity(Some("unknown-identity"), 1433),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap();
    let e = manager.login_token().await.unwrap_err().to_string();
    println!("token failure: {e}");
    assert!(e.contains("Active Directory Managed Identity"), "{e}");
    assert!(!e.contains("backtrace") && e.lines().count() <= 3, "{e}");
}

#[tokio::test]
async fn the_pool_fetches_a_token_per_connection_and_reports_the_real_connect_error() {
    let mock = endpoint();
    let client = "pool-client";
    let port = closed_port();
    let settings = SqlSettings {
        pool_size: 2,
        connect_timeout: Some(Duration::from_secs(1)),
        statement_timeout: Duration::from_secs(5),
    };
    let db = Mssql::connect_lazily(&managed_identity(Some(client), port), &settings).unwrap();
    assert!(!db.target().contains("Password"));
    let started = std::time::Instant::now();
    let e = db.ping().await.unwrap_err().to_string();
    println!("pool error: {e}");
    // bb8 waits up to the connect timeout + 2 s, retrying the connect; the error names the
    // cause from the error sink, not just "timed out".
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(e.contains("last connect error"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(
        mock.requests_for(client) >= 1,
        "the token was fetched before connecting"
    );
}
