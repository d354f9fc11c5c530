//! Connections and the bb8 pool.
//!
//! **Why not `bb8_tiberius::ConnectionManager`.** The stock manager holds one fixed
//! `tiberius::Config` and clones it for every new connection. An Entra token lives about an
//! hour, so a token baked into that config at start-up makes every connection opened after it
//! expires fail to log in, and the manager has no hook to change the config
//! (see bb8-tiberius issue 23). [`Manager`] is a small `bb8::ManageConnection` of our own:
//!
//! - `connect` asks the credential for a token *for each new connection*
//!   ([`Manager::login_token`]; azure_identity caches it and renews it five minutes before it
//!   expires, so this is cheap), puts it in a copy of the base config, and connects
//!   ([`connect_tds`]): TCP connect, `set_nodelay`, the TDS/TLS login, and one Azure SQL routing
//!   redirect (`Error::Routing`: clients inside Azure are sent from the gateway on 1433 to the
//!   database node on 11000-11999). The whole connect is bounded by the connect timeout (and
//!   tiberius 0.13's handshake timeout is set to the same). tiberius' own per-round-trip
//!   command timeout is off: each statement has qotd's timeout. Each new session then runs
//!   [`sql::SESSION_SETUP`] (`XACT_ABORT` and the ANSI options filtered indexes need).
//! - `is_valid` runs `SELECT 1` when a connection is checked out.
//! - `has_broken` reads a flag on [`Conn`]: set while a statement is in flight (so a future
//!   dropped mid-statement, or a statement that hit its timeout, never hands a half-read TDS
//!   stream to the next borrower) and while a transaction is open (so a dropped future never
//!   hands over an open transaction); cleared only when the statement or the rollback/commit
//!   completed. Broken connections are closed by bb8 instead of being reused.
//!
//! `pool.get()` never returns the real connect error (bb8 retries until its timeout and then
//! reports `TimedOut`); [`LogSink`] logs each one with `Display` (never `Debug`: azure errors
//! print a whole backtrace) and remembers the last one so the timeout error can say why.

use super::DbError;
use super::connstr::{Authentication, ConnectionString};
use super::sql;
use azure_core::credentials::{Secret, TokenCredential};
use bb8::ManageConnection;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiberius::{Row, ToSql};

/// The Entra scope of Azure SQL Database.
pub const SQL_SCOPE: &str = "https://database.windows.net/.default";

/// The driver connection type: tiberius over a tokio TCP stream.
pub type Client = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;

/// TCP connect, `set_nodelay`, the TDS/TLS login, and one Azure SQL routing redirect
/// (`Error::Routing`: clients inside Azure are sent from the gateway on 1433 to the database
/// node on 11000-11999), as bb8-tiberius' connect did before qotd moved to tiberius 0.13.
async fn connect_tds(mut cfg: tiberius::Config) -> Result<Client, tiberius::error::Error> {
    use tokio_util::compat::TokioAsyncWriteCompatExt;
    let mut redirected = false;
    loop {
        let tcp = tokio::net::TcpStream::connect(cfg.get_addr()).await?;
        tcp.set_nodelay(true)?;
        match tiberius::Client::connect(cfg.clone(), tcp.compat_write()).await {
            Err(tiberius::error::Error::Routing { host, port }) if !redirected => {
                redirected = true;
                cfg.host(&host);
                cfg.port(port);
            }
            other => return other,
        }
    }
}

/// Why a new connection could not be opened. `Display` is what gets logged.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot get an Entra token for Azure SQL ({mode}): {message}")]
    Token {
        mode: &'static str,
        message: String,
        /// The token endpoint could not be reached or answered 429/5xx: trying again later
        /// may work (see [`crate::platform::identity::is_transient`]).
        transient: bool,
    },
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        addr: String,
        message: String,
        /// A dropped/refused connection or a transient server error number (e.g. 40613
        /// while a serverless database resumes): trying again later may work.
        transient: bool,
    },
    #[error("connected to {addr}, but the session setup failed: {message}")]
    Setup { addr: String, message: String },
    #[error("connecting to {addr} took longer than the connect timeout ({timeout:?})")]
    Timeout { addr: String, timeout: Duration },
}

impl ConnectError {
    /// Whether another attempt may succeed (used where a connect is retried outside bb8).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { transient, .. } | Self::Token { transient, .. } => *transient,
            Self::Timeout { .. } => true,
            Self::Setup { .. } => false,
        }
    }
}

/// Builds the credential a connection string asks for (none for SQL authentication), through
/// the shared credential factory.
pub fn credential_for(auth: &Authentication) -> anyhow::Result<Option<Arc<dyn TokenCredential>>> {
    use crate::platform::identity::CredentialKind;
    let kind = match auth {
        Authentication::SqlPassword { .. } => return Ok(None),
        Authentication::ManagedIdentity { client_id } => CredentialKind::ManagedIdentity {
            client_id: client_id.clone(),
        },
        Authentication::WorkloadIdentity {
            client_id: Some(id),
        } => {
            // The factory takes the client id from AZURE_CLIENT_ID; the connection string's
            // User Id overrides it here.
            let cred = azure_identity::WorkloadIdentityCredential::new(Some(
                azure_identity::WorkloadIdentityCredentialOptions {
                    client_id: Some(id.clone()),
                    ..Default::default()
                },
            ))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the workload identity credential (needs AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE): {e}"
                )
            })?;
            return Ok(Some(cred));
        }
        Authentication::WorkloadIdentity { client_id: None } => CredentialKind::WorkloadIdentity,
        Authentication::Default { client_id } => CredentialKind::Default {
            client_id: client_id
                .clone()
                .or_else(|| std::env::var("AZURE_CLIENT_ID").ok())
                .filter(|v| !v.trim().is_empty()),
        },
    };
    Ok(Some(kind.build()?))
}

/// One pooled session.
pub struct Conn {
    client: Client,
    /// A statement is in flight or ended in an unknown state; see the module docs.
    dirty: bool,
    /// `BEGIN TRANSACTION` ran and neither `COMMIT` nor `ROLLBACK` has completed.
    in_tx: bool,
    statement_timeout: Duration,
}

impl Conn {
    fn settle<T>(
        &mut self,
        outcome: Result<tiberius::Result<T>, tokio::time::error::Elapsed>,
        timeout: Duration,
    ) -> Result<T, DbError> {
        match outcome {
            Ok(Ok(v)) => {
                self.dirty = false;
                Ok(v)
            }
            Ok(Err(e)) => {
                // A server error (constraint, deadlock, permission) leaves the TDS stream
                // readable; I/O and protocol errors do not.
                if matches!(e, tiberius::error::Error::Server(_)) {
                    self.dirty = false;
                }
                Err(DbError::from(e))
            }
            Err(_) => Err(DbError::timeout(timeout)),
        }
    }

    /// Runs a statement with `@P1..` parameters; returns the rows affected.
    pub(crate) async fn execute(
        &mut self,
        statement: &str,
        params: &[&dyn ToSql],
    ) -> Result<u64, DbError> {
        let timeout = self.statement_timeout;
        self.dirty = true;
        let client = &mut self.client;
        let outcome = tokio::time::timeout(timeout, async {
            Ok::<_, tiberius::error::Error>(client.execute(statement, params).await?.total())
        })
        .await;
        self.settle(outcome, timeout)
    }

    /// Runs a query (or a batch ending in one) and returns the rows of its last result set.
    pub(crate) async fn query(
        &mut self,
        statement: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Row>, DbError> {
        let timeout = self.statement_timeout;
        self.dirty = true;
        let client = &mut self.client;
        let outcome = tokio::time::timeout(timeout, async {
            let results = client
                .query(statement, params)
                .await?
                .into_results()
                .await?;
            Ok::<_, tiberius::error::Error>(results.into_iter().last().unwrap_or_default())
        })
        .await;
        self.settle(outcome, timeout)
    }

    /// Runs parameterless SQL as its own batch (`SQLBatch`, not `sp_executesql`), as goose does
    /// for migration statements.
    pub(crate) async fn batch(
        &mut self,
        statement: &str,
        timeout: Duration,
    ) -> Result<(), DbError> {
        self.dirty = true;
        let client = &mut self.client;
        let outcome = tokio::time::timeout(timeout, async {
            client.simple_query(statement).await?.into_results().await?;
            Ok::<_, tiberius::error::Error>(())
        })
        .await;
        self.settle(outcome, timeout)
    }

    /// `SET XACT_ABORT ON; BEGIN TRANSACTION` (tiberius 0.12 has no transaction API).
    pub(crate) async fn begin(&mut self) -> Result<(), DbError> {
        self.in_tx = true;
        self.batch(sql::BEGIN, self.statement_timeout).await
    }

    pub(crate) async fn commit(&mut self) -> Result<(), DbError> {
        self.batch(sql::COMMIT, self.statement_timeout).await?;
        self.in_tx = false;
        Ok(())
    }

    /// Rolls back whatever is open; on failure the connection stays marked and is discarded.
    pub(crate) async fn rollback(&mut self) {
        if self.dirty {
            // The stream is in an unknown state: do not talk on it; bb8 closes it and the
            // server rolls the transaction back with the session.
            return;
        }
        if self
            .batch(sql::ROLLBACK, self.statement_timeout)
            .await
            .is_ok()
        {
            self.in_tx = false;
        }
    }

    pub(crate) fn set_statement_timeout(&mut self, timeout: Duration) {
        self.statement_timeout = timeout;
    }
}

/// The `bb8::ManageConnection` for tiberius with a fresh Entra token per connection.
pub struct Manager {
    base: tiberius::Config,
    addr: String,
    mode: &'static str,
    credential: Option<Arc<dyn TokenCredential>>,
    connect_timeout: Duration,
    statement_timeout: Duration,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for `cs`, building its credential through the shared factory.
    pub fn new(
        cs: &ConnectionString,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let credential = credential_for(&cs.auth)?;
        Ok(Self::with_credential(
            cs,
            credential,
            connect_timeout,
            statement_timeout,
        ))
    }

    /// A manager with an explicit credential (tests inject one).
    pub fn with_credential(
        cs: &ConnectionString,
        credential: Option<Arc<dyn TokenCredential>>,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> Self {
        let mut base = cs.tiberius_config();
        // tiberius 0.13 bounds the handshake (15 s) and every round trip (30 s) by default:
        // the handshake gets our connect timeout, and statements keep qotd's own timeouts
        // (migrations run longer than 30 s).
        base.handshake_timeout(Some(connect_timeout));
        base.command_timeout(None);
        Self {
            addr: base.get_addr(),
            base,
            mode: cs.auth.name(),
            credential,
            connect_timeout,
            statement_timeout,
        }
    }

    /// The token step of opening a connection: `None` for SQL authentication, else a token
    /// from the credential (its cache hands back the same token until five minutes before
    /// expiry, then fetches a new one). Called once per new connection; callable without a
    /// server, which is how the token-refresh test exercises it.
    pub async fn login_token(&self) -> Result<Option<Secret>, ConnectError> {
        let Some(cred) = &self.credential else {
            return Ok(None);
        };
        let token = cred
            .get_token(&[SQL_SCOPE], None)
            .await
            .map_err(|e| ConnectError::Token {
                mode: self.mode,
                transient: crate::platform::identity::is_transient(&e),
                message: crate::platform::identity::describe(&e),
            })?;
        Ok(Some(token.token))
    }

    /// The config for one new connection: the base config plus a fresh token.
    pub async fn config_for_new_connection(&self) -> Result<tiberius::Config, ConnectError> {
        let mut cfg = self.base.clone();
        if let Some(token) = self.login_token().await? {
            cfg.authentication(tiberius::AuthMethod::aad_token(token.secret()));
        }
        Ok(cfg)
    }

    async fn open(&self) -> Result<Conn, ConnectError> {
        let cfg = self.config_for_new_connection().await?;
        // TCP + nodelay + login + routing redirect, with this connection's token.
        let client = connect_tds(cfg).await.map_err(|e| ConnectError::Connect {
            addr: self.addr.clone(),
            message: e.to_string(),
            transient: DbError::from(e).failure == super::retry::Failure::Transient,
        })?;
        let mut conn = Conn {
            client,
            dirty: false,
            in_tx: false,
            statement_timeout: self.statement_timeout,
        };
        conn.batch(sql::SESSION_SETUP, self.connect_timeout)
            .await
            .map_err(|e| ConnectError::Setup {
                addr: self.addr.clone(),
                message: e.message,
            })?;
        Ok(conn)
    }
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Conn, ConnectError> {
        tokio::time::timeout(self.connect_timeout, self.open())
            .await
            .map_err(|_| ConnectError::Timeout {
                addr: self.addr.clone(),
                timeout: self.connect_timeout,
            })?
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        conn.batch(sql::PING, self.connect_timeout)
            .await
            .map_err(|e| ConnectError::Connect {
                addr: self.addr.clone(),
                message: format!("pooled connection failed its check: {}", e.message),
                transient: true,
            })
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.dirty || conn.in_tx
    }
}

/// Logs every connect error bb8 swallows and keeps the last one for the timeout message.
#[derive(Debug, Clone, Default)]
pub struct LogSink {
    last: Arc<Mutex<Option<(Instant, String)>>>,
}

impl LogSink {
    /// The last connect error, if it happened within `window`.
    pub fn recent_error(&self, window: Duration) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= window)
            .map(|(_, e)| e.clone())
    }
}

impl bb8::ErrorSink<ConnectError> for LogSink {
    fn sink(&self, error: ConnectError) {
        tracing::warn!(error = %error, "cannot open a SQL connection");
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), error.to_string()));
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectError>> {
        Box::new(self.clone())
    }
}

/// How long `pool.get()` waits: opening a connection may be part of the wait, so a little
/// more than the connect timeout.
pub fn pool_wait(connect_timeout: Duration) -> Duration {
    connect_timeout + Duration::from_secs(2)
}

/// The pool: lazily connecting, sized and timed from the settings.
pub fn build_pool(manager: Manager, max_size: u32, sink: LogSink) -> bb8::Pool<Manager> {
    let wait = pool_wait(manager.connect_timeout);
    bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(None)
        // Sessions outlive their token; renewing connections every half hour keeps every
        // session's login recent (whether Azure SQL ends a session whose token expired is
        // not documented).
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .idle_timeout(Some(Duration::from_secs(10 * 60)))
        .connection_timeout(wait)
        .test_on_check_out(true)
        .error_sink(Box::new(sink))
        .build_unchecked(manager)
}
