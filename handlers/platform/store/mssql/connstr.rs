//! ADO.NET connection strings for Azure SQL and SQL Server, parsed strictly.
//!
//! tiberius' own `Config::from_ado_string` reads a handful of keys and silently ignores every
//! other one (`Authentication=Active Directory Default` quietly becomes SQL authentication with
//! an empty user), and in 0.12 a missing `Encrypt` means "encrypt the login only". This parser
//! is the opposite: every key is known or the string is rejected with an error naming the key,
//! `Encrypt` defaults to true, `TrustServerCertificate` is off unless explicitly set, and the
//! password lives in a [`Password`] whose `Debug` never shows it. The result is turned into a
//! `tiberius::Config` by [`ConnectionString::tiberius_config`], setter by setter.
//!
//! Supported keys (case-insensitive; `=` separates key and value, `;` separates pairs; a value
//! may be quoted with `"` or `'`, doubling the quote inside):
//!
//! | key (aliases) | meaning |
//! | --- | --- |
//! | `Server` (`Data Source`, `Address`, `Addr`, `Network Address`) | `[tcp:]host[,port]`, port 1433 by default |
//! | `Database` (`Initial Catalog`) | required |
//! | `Authentication` | see [`Authentication`]; absent means SQL user/password |
//! | `User Id` (`UID`, `User`) | SQL login, or the client id of a user-assigned identity |
//! | `Password` (`PWD`) | SQL authentication only |
//! | `Encrypt` | `true` (default), `false` (login only; local servers); `Strict` is not supported |
//! | `TrustServerCertificate` | `false` (default); `true` only for a local server with a self-signed certificate |
//! | `Application Name` (`App`) | shown in `sys.dm_exec_sessions`; default `qotd` |
//! | `ApplicationIntent` | `ReadWrite` (default) or `ReadOnly` |
//! | `Connect Timeout` (`Connection Timeout`, `Timeout`) | seconds, used when `QOTD_SQL_CONNECT_TIMEOUT_SECONDS` is not set |
//! | `Persist Security Info` | accepted for copy-pasted portal strings; has no effect |
//! | `MultipleActiveResultSets` | only `false` (MARS is not supported by the driver) |
//!
//! Keys that have a qotd setting instead (`Max Pool Size`, `Command Timeout`, ...) are rejected
//! with the name of that setting.

use std::fmt;
use std::time::Duration;

/// The default SQL Server port.
pub const DEFAULT_PORT: u16 = 1433;

/// A SQL login password: the platform-wide [`Secret`] (`Debug` prints `[redacted]`).
pub type Password = crate::platform::secret::Secret;

/// How qotd signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// No `Authentication` key (or `Sql Password`): a SQL login, for a local SQL Server.
    SqlPassword { user: String, password: Password },
    /// `Active Directory Managed Identity` (alias `Active Directory MSI`): the system-assigned
    /// identity, or the user-assigned one whose client id is given as `User Id`.
    ManagedIdentity { client_id: Option<String> },
    /// `Active Directory Workload Identity`: federated credentials from `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` and the client id (`User Id`, else `AZURE_CLIENT_ID`).
    WorkloadIdentity { client_id: Option<String> },
    /// `Active Directory Default` (what Azure tooling writes): workload identity when its
    /// environment is present, then managed identity (the user-assigned one whose client id is
    /// `User Id`, else `AZURE_CLIENT_ID`), then the Azure CLI / Azure Developer CLI sign-in; see
    /// [`crate::platform::identity::CredentialKind::Default`].
    Default { client_id: Option<String> },
}

impl Authentication {
    /// The `Authentication=` value this mode is written as.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SqlPassword { .. } => "Sql Password",
            Self::ManagedIdentity { .. } => "Active Directory Managed Identity",
            Self::WorkloadIdentity { .. } => "Active Directory Workload Identity",
            Self::Default { .. } => "Active Directory Default",
        }
    }

    /// Whether the mode signs in with an Entra token.
    pub fn uses_token(&self) -> bool {
        !matches!(self, Self::SqlPassword { .. })
    }
}

/// `Encrypt=`: tiberius 0.12 knows required, login-only and none; qotd never offers "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    /// TLS for the whole session (default).
    Required,
    /// TLS for the login packet only (`Encrypt=false`), for a local SQL Server without TLS.
    LoginOnly,
}

/// A parsed, validated connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub auth: Authentication,
    pub encrypt: Encrypt,
    pub trust_server_certificate: bool,
    pub application_name: String,
    pub read_only: bool,
    /// `Connect Timeout` from the string, if given.
    pub connect_timeout: Option<Duration>,
}

/// Why a connection string was rejected. The message names the key or the segment position,
/// never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection string: {0}")]
pub struct ConnStrError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, ConnStrError> {
    Err(ConnStrError(msg.into()))
}

/// The keys qotd understands, after alias resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Server,
    Database,
    UserId,
    Password,
    Authentication,
    Encrypt,
    TrustServerCertificate,
    ApplicationName,
    ApplicationIntent,
    ConnectTimeout,
    PersistSecurityInfo,
    Mars,
}

impl Key {
    fn canonical(self) -> &'static str {
        match self {
            Key::Server => "Server",
            Key::Database => "Database",
            Key::UserId => "User Id",
            Key::Password => "Password",
            Key::Authentication => "Authentication",
            Key::Encrypt => "Encrypt",
            Key::TrustServerCertificate => "TrustServerCertificate",
            Key::ApplicationName => "Application Name",
            Key::ApplicationIntent => "ApplicationIntent",
            Key::ConnectTimeout => "Connect Timeout",
            Key::PersistSecurityInfo => "Persist Security Info",
            Key::Mars => "MultipleActiveResultSets",
        }
    }
}

/// Lower case with inner white space removed: `Initial  Catalog` and `initialcatalog` match.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn classify_key(raw: &str) -> Result<Key, String> {
    Ok(match squash(raw).as_str() {
        "server" | "datasource" | "address" | "addr" | "networkaddress" => Key::Server,
        "database" | "initialcatalog" => Key::Database,
        "userid" | "uid" | "user" => Key::UserId,
        "password" | "pwd" => Key::Password,
        "authentication" => Key::Authentication,
        "encrypt" => Key::Encrypt,
        "trustservercertificate" => Key::TrustServerCertificate,
        "applicationname" | "app" => Key::ApplicationName,
        "applicationintent" => Key::ApplicationIntent,
        "connecttimeout" | "connectiontimeout" | "timeout" => Key::ConnectTimeout,
        "persistsecurityinfo" => Key::PersistSecurityInfo,
        "multipleactiveresultsets" => Key::Mars,
        "maxpoolsize" | "minpoolsize" | "pooling" => {
            return Err(format!(
                "'{raw}' is not supported: the pool size is set with QOTD_SQL_POOL_SIZE"
            ));
        }
        "commandtimeout" => {
            return Err(format!(
                "'{raw}' is not supported: the statement timeout is set with QOTD_SQL_STATEMENT_TIMEOUT_SECONDS"
            ));
        }
        "connectretrycount" | "connectretryinterval" => {
            return Err(format!(
                "'{raw}' is not supported: qotd retries transient errors itself (see docs/azure-sql.md)"
            ));
        }
        "integratedsecurity" | "trustedconnection" => {
            return Err(format!(
                "'{raw}' is not supported: Windows integrated authentication is not available; use Authentication=Active Directory Managed Identity or a SQL login"
            ));
        }
        "trustservercertificateca" | "hostnameincertificate" | "servercertificate" => {
            return Err(format!(
                "'{raw}' is not supported by this driver; use a certificate the OS trusts"
            ));
        }
        _ => return Err(format!("unknown key '{raw}'")),
    })
}

fn parse_bool(key: Key, raw: &str) -> Result<bool, ConnStrError> {
    match squash(raw).as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => fail(format!(
            "{} must be true or false, not '{raw}'",
            key.canonical()
        )),
    }
}

/// One `key=value` pair as written.
struct Pair {
    key: String,
    value: String,
    /// The value was quoted (so it may legitimately contain `;`).
    quoted: bool,
}

/// Splits the string into pairs. Errors say where the problem is but never echo a segment
/// that could be part of a password.
fn split_pairs(raw: &str) -> Result<Vec<Pair>, ConnStrError> {
    let chars: Vec<char> = raw.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let mut segment = 0;
    while i < chars.len() {
        segment += 1;
        // Key: up to '=' (or ';' which ends an empty or malformed segment).
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != ';' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect::<String>().trim().to_owned();
        if i >= chars.len() || chars[i] == ';' {
            if !key.is_empty() {
                let after_password = pairs
                    .last()
                    .is_some_and(|p: &Pair| !p.quoted && classify_key(&p.key) == Ok(Key::Password));
                return fail(if after_password {
                    format!(
                        "segment {segment} has no '=' (a Password containing ';' must be quoted: Password=\"...\")"
                    )
                } else {
                    format!("segment {segment} ('{key}') has no '=' (expected key=value)")
                });
            }
            i += 1;
            continue;
        }
        i += 1; // '='
        if key.is_empty() {
            return fail(format!("segment {segment} has a value but no key"));
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let (value, quoted) = if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
            let quote = chars[i];
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return fail(format!("the quoted value of '{key}' is not closed"));
                    }
                    Some(&c) if c == quote => {
                        if chars.get(i + 1) == Some(&quote) {
                            value.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i] != ';' {
                if !chars[i].is_whitespace() {
                    return fail(format!("unexpected text after the quoted value of '{key}'"));
                }
                i += 1;
            }
            (value, true)
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ';' {
                i += 1;
            }
            (
                chars[start..i].iter().collect::<String>().trim().to_owned(),
                false,
            )
        };
        i += 1; // ';' or end
        pairs.push(Pair { key, value, quoted });
    }
    Ok(pairs)
}

/// `[tcp:]host[,port]`.
fn parse_server(raw: &str) -> Result<(String, u16), ConnStrError> {
    let mut s = raw.trim();
    if let Some((proto, rest)) = s.split_once(':') {
        match proto.trim().to_ascii_lowercase().as_str() {
            "tcp" => s = rest.trim(),
            "np" | "lpc" | "admin" => {
                return fail(format!(
                    "Server protocol '{proto}:' is not supported; use tcp:<host>,<port>"
                ));
            }
            // "host:1433" is a common mistake; SQL Server separates the port with a comma.
            _ if rest.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty() => {
                return fail(format!(
                    "Server '{raw}' separates the port with ':'; SQL Server uses a comma: tcp:{proto},{rest}"
                ));
            }
            _ => return fail(format!("Server '{raw}' is not [tcp:]host[,port]")),
        }
    }
    let (host, port) = match s.split_once(',') {
        Some((h, p)) => {
            let port = p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    ConnStrError(format!(
                        "Server port '{}' is not a number from 1 to 65535",
                        p.trim()
                    ))
                })?;
            (h.trim(), port)
        }
        None => (s, DEFAULT_PORT),
    };
    if host.is_empty() {
        return fail("Server has no host name");
    }
    if host.contains('\\') {
        return fail(format!(
            "Server '{host}' names an instance; named instances need the SQL Browser service, which qotd does not use: give the instance's port instead (tcp:<host>,<port>)"
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == ',' || c == ';')
    {
        return fail(format!("Server host '{host}' is not a host name"));
    }
    Ok((host.to_owned(), port))
}

/// The `Authentication=` value, before its companions (`User Id`, `Password`) are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sql,
    ManagedIdentity,
    WorkloadIdentity,
    Default,
}

fn parse_authentication(raw: &str) -> Result<Mode, ConnStrError> {
    const SUPPORTED: &str = "Active Directory Managed Identity, Active Directory Workload Identity, Active Directory Default or Sql Password";
    match squash(raw).as_str() {
        "sqlpassword" => Ok(Mode::Sql),
        "activedirectorymanagedidentity" | "activedirectorymsi" => Ok(Mode::ManagedIdentity),
        "activedirectoryworkloadidentity" => Ok(Mode::WorkloadIdentity),
        "activedirectorydefault" => Ok(Mode::Default),
        "activedirectorypassword"
        | "activedirectoryintegrated"
        | "activedirectoryinteractive"
        | "activedirectoryserviceprincipal"
        | "activedirectorydevicecodeflow" => fail(format!(
            "Authentication={raw} is not supported by qotd (supported: {SUPPORTED})"
        )),
        "" => fail(format!("Authentication is empty (supported: {SUPPORTED})")),
        _ => fail(format!(
            "Authentication={raw} is not a known mode (supported: {SUPPORTED})"
        )),
    }
}

/// Values as found, before cross-key validation.
#[derive(Default)]
struct Collected {
    server: Option<String>,
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
    authentication: Option<String>,
    encrypt: Option<String>,
    trust: Option<String>,
    application_name: Option<String>,
    intent: Option<String>,
    connect_timeout: Option<String>,
    persist_security_info: Option<String>,
    mars: Option<String>,
}

impl Collected {
    fn slot(&mut self, key: Key) -> &mut Option<String> {
        match key {
            Key::Server => &mut self.server,
            Key::Database => &mut self.database,
            Key::UserId => &mut self.user,
            Key::Password => &mut self.password,
            Key::Authentication => &mut self.authentication,
            Key::Encrypt => &mut self.encrypt,
            Key::TrustServerCertificate => &mut self.trust,
            Key::ApplicationName => &mut self.application_name,
            Key::ApplicationIntent => &mut self.intent,
            Key::ConnectTimeout => &mut self.connect_timeout,
            Key::PersistSecurityInfo => &mut self.persist_security_info,
            Key::Mars => &mut self.mars,
        }
    }
}

impl ConnectionString {
    /// Parses and validates an ADO.NET connection string.
    pub fn parse(raw: &str) -> Result<Self, ConnStrError> {
        if raw.trim().is_empty() {
            return fail("the connection string is empty");
        }
        let mut found = Collected::default();
        let mut written_as: Vec<(Key, String)> = Vec::new();
        let mut previous_was_unquoted_password = false;
        for pair in split_pairs(raw)? {
            let key = match classify_key(&pair.key) {
                Ok(k) => k,
                // Right after an unquoted password, an unknown "key" may be the rest of a
                // password that contains ';'. Keys are words (letters, spaces, '_');
                // anything else is not echoed.
                Err(_)
                    if previous_was_unquoted_password
                        && !pair
                            .key
                            .chars()
                            .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '_') =>
                {
                    return fail(
                        "unexpected text after Password (a Password containing ';' must be quoted: Password=\"...\")",
                    );
                }
                Err(msg) if previous_was_unquoted_password => {
                    return fail(format!(
                        "{msg} (if it is part of the Password, quote the Password: Password=\"...\")"
                    ));
                }
                Err(msg) => return fail(msg),
            };
            if let Some((_, first)) = written_as.iter().find(|(k, _)| *k == key) {
                return fail(format!(
                    "{} is given twice (as '{first}' and as '{}')",
                    key.canonical(),
                    pair.key
                ));
            }
            previous_was_unquoted_password = key == Key::Password && !pair.quoted;
            if key != Key::Password && pair.value.is_empty() {
                return fail(format!("{} has an empty value", pair.key));
            }
            written_as.push((key, pair.key));
            *found.slot(key) = Some(pair.value);
        }

        let (host, port) = parse_server(found.server.as_deref().ok_or_else(|| {
            ConnStrError(
                "Server is required (e.g. Server=tcp:<name>.database.windows.net,1433)".into(),
            )
        })?)?;
        let database = found
            .database
            .clone()
            .ok_or_else(|| ConnStrError("Database (or Initial Catalog) is required".into()))?;

        let encrypt = match found.encrypt.as_deref().map(squash).as_deref() {
            None | Some("true") | Some("yes") | Some("mandatory") => Encrypt::Required,
            Some("false") | Some("no") | Some("optional") => Encrypt::LoginOnly,
            Some("strict") => {
                return fail(
                    "Encrypt=Strict (TDS 8.0) is not supported by the driver (tiberius 0.12); use Encrypt=true",
                );
            }
            Some("danger_plaintext") => {
                return fail(
                    "Encrypt=DANGER_PLAINTEXT is not allowed: qotd never sends credentials unencrypted",
                );
            }
            Some(_) => {
                return fail(format!(
                    "Encrypt must be true or false, not '{}'",
                    found.encrypt.as_deref().unwrap_or_default()
                ));
            }
        };
        let trust_server_certificate = match found.trust.as_deref() {
            None => false,
            Some(v) => parse_bool(Key::TrustServerCertificate, v)?,
        };
        let read_only = match found.intent.as_deref().map(squash).as_deref() {
            None | Some("readwrite") => false,
            Some("readonly") => true,
            Some(_) => {
                return fail(format!(
                    "ApplicationIntent must be ReadWrite or ReadOnly, not '{}'",
                    found.intent.as_deref().unwrap_or_default()
                ));
            }
        };
        let connect_timeout = match found.connect_timeout.as_deref() {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        ConnStrError(format!(
                            "Connect Timeout must be a whole number of seconds from 1 to 300, not '{v}'"
                        ))
                    })?,
            ),
        };
        if let Some(v) = found.persist_security_info.as_deref() {
            parse_bool(Key::PersistSecurityInfo, v)?;
        }
        if let Some(v) = found.mars.as_deref()
            && parse_bool(Key::Mars, v)?
        {
            return fail(
                "MultipleActiveResultSets=true is not supported by the driver; remove it or set it to false",
            );
        }

        let mode = match found.authentication.as_deref() {
            Some(v) => parse_authentication(v)?,
            None => Mode::Sql,
        };
        let user = found.user.clone();
        let has_password = found.password.is_some();
        let auth = match mode {
            Mode::Sql => {
                let Some(user) = user else {
                    return fail(if found.authentication.is_none() && !has_password {
                        "no credentials: set Authentication=Active Directory Managed Identity (Azure), Authentication=Active Directory Default (a laptop signed in with az) or User Id and Password (a local SQL Server)".to_owned()
                    } else {
                        "User Id is required for SQL authentication".to_owned()
                    });
                };
                let Some(password) = found.password.clone() else {
                    return fail("Password is required for SQL authentication");
                };
                Authentication::SqlPassword {
                    user,
                    password: Password::new(password),
                }
            }
            Mode::ManagedIdentity | Mode::WorkloadIdentity | Mode::Default => {
                if has_password {
                    return fail(format!(
                        "Password is not used with Authentication={}; remove it",
                        found.authentication.as_deref().unwrap_or_default()
                    ));
                }
                match mode {
                    Mode::ManagedIdentity => Authentication::ManagedIdentity { client_id: user },
                    Mode::WorkloadIdentity => Authentication::WorkloadIdentity { client_id: user },
                    _ => Authentication::Default { client_id: user },
                }
            }
        };

        Ok(Self {
            host,
            port,
            database,
            auth,
            encrypt,
            trust_server_certificate,
            application_name: found.application_name.unwrap_or_else(|| "qotd".to_owned()),
            read_only,
            connect_timeout,
        })
    }

    /// The string with secrets left out, for logs and `qotd local`'s banner.
    pub fn redacted(&self) -> String {
        let who = match &self.auth {
            Authentication::SqlPassword { user, .. } => format!("SQL login '{user}'"),
            Authentication::ManagedIdentity {
                client_id: Some(id),
            } => {
                format!("{} (client id {id})", self.auth.name())
            }
            Authentication::WorkloadIdentity {
                client_id: Some(id),
            } => {
                format!("{} (client id {id})", self.auth.name())
            }
            other => other.name().to_owned(),
        };
        format!(
            "mssql tcp:{},{} database {} as {who}{}{}",
            self.host,
            self.port,
            self.database,
            match self.encrypt {
                Encrypt::Required => "",
                Encrypt::LoginOnly => ", Encrypt=false",
            },
            if self.trust_server_certificate {
                ", TrustServerCertificate=true"
            } else {
                ""
            }
        )
    }

    /// The tiberius configuration, without a token: the pool sets a fresh one per connection.
    pub fn tiberius_config(&self) -> tiberius::Config {
        let mut cfg = tiberius::Config::new();
        cfg.host(&self.host);
        cfg.port(self.port);
        cfg.database(&self.database);
        cfg.application_name(&self.application_name);
        cfg.encryption(match self.encrypt {
            Encrypt::Required => tiberius::EncryptionLevel::Required,
            Encrypt::LoginOnly => tiberius::EncryptionLevel::Off,
        });
        if self.trust_server_certificate {
            cfg.trust_cert();
        }
        cfg.readonly(self.read_only);
        if let Authentication::SqlPassword { user, password } = &self.auth {
            cfg.authentication(tiberius::AuthMethod::sql_server(user, password.expose()));
        }
        cfg
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZ: &str = "Server=tcp:qotd-sql.database.windows.net,1433;Database=qotd;Encrypt=true;TrustServerCertificate=false";

    fn ok(raw: &str) -> ConnectionString {
        ConnectionString::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn err(raw: &str) -> String {
        match ConnectionString::parse(raw) {
            Ok(cs) => panic!("{raw} parsed as {cs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn managed_identity_system_and_user_assigned() {
        let cs = ok(&format!(
            "{AZ};Authentication=Active Directory Managed Identity"
        ));
        assert_eq!(cs.host, "qotd-sql.database.windows.net");
        assert_eq!(cs.port, 1433);
        assert_eq!(cs.database, "qotd");
        assert_eq!(cs.auth, Authentication::ManagedIdentity { client_id: None });
        assert_eq!(cs.encrypt, Encrypt::Required);
        assert!(!cs.trust_server_certificate);
        assert!(cs.auth.uses_token());

        let cs = ok(&format!(
            "{AZ};Authentication=\"Active Directory Managed Identity\";User Id=0b7c5f0e-1111-2222-3333-444455556666"
        ));
        assert_eq!(
            cs.auth,
            Authentication::ManagedIdentity {
                client_id: Some("0b7c5f0e-1111-2222-3333-444455556666".into())
            }
        );
        // SqlClient's older alias and the no-space spelling.
        let cs = ok(&format!("{AZ};Authentication=ActiveDirectoryMSI"));
        assert_eq!(cs.auth, Authentication::ManagedIdentity { client_id: None });
    }

    #[test]
    fn workload_identity_default_and_sql_password() {
        let cs = ok(&format!(
            "{AZ};Authentication=Active Directory Workload Identity"
        ));
        assert_eq!(
            cs.auth,
            Authentication::WorkloadIdentity { client_id: None }
        );
        let cs = ok(&format!(
            "{AZ};Authentication=Active Directory Workload Identity;UID=cid"
        ));
        assert_eq!(
            cs.auth,
            Authentication::WorkloadIdentity {
                client_id: Some("cid".into())
            }
        );
        let cs = ok(&format!("{AZ};authentication=active directory default"));
        assert_eq!(cs.auth, Authentication::Default { client_id: None });
        let cs = ok(&format!(
            "{AZ};Authentication=Active Directory Default;User Id=cid"
        ));
        assert_eq!(
            cs.auth,
            Authentication::Default {
                client_id: Some("cid".into())
            }
        );

        let cs = ok("Server=localhost,14330;Database=qotd;User Id=sa;Password=Pa55;w0rd;TrustServerCertificate=true".replace("Pa55;w0rd", "\"Pa55;w0rd\"").as_str());
        assert_eq!(cs.port, 14330);
        assert!(cs.trust_server_certificate);
        match &cs.auth {
            Authentication::SqlPassword { user, password } => {
                assert_eq!(user, "sa");
                assert_eq!(password.expose(), "Pa55;w0rd");
            }
            other => panic!("{other:?}"),
        }
        assert!(!cs.auth.uses_token());
        let cs = ok("Data Source=db;Initial Catalog=q;UID=u;PWD=p;Authentication=Sql Password");
        assert_eq!(
            (cs.host.as_str(), cs.port, cs.database.as_str()),
            ("db", 1433, "q")
        );
    }

    #[test]
    fn portal_string_with_harmless_keys_and_quoting() {
        let cs = ok(
            "Server=tcp:x.database.windows.net,1433;Initial Catalog=qotd;Persist Security Info=False;MultipleActiveResultSets=False;Encrypt=True;TrustServerCertificate=False;Connection Timeout=30;Authentication=\"Active Directory Default\";",
        );
        assert_eq!(cs.connect_timeout, Some(Duration::from_secs(30)));
        assert_eq!(cs.auth, Authentication::Default { client_id: None });
        // Encrypt defaults to true; Encrypt=false is login-only encryption.
        let cs = ok("Server=h;Database=d;User Id=u;Password=p");
        assert_eq!(cs.encrypt, Encrypt::Required);
        assert_eq!(cs.application_name, "qotd");
        let cs = ok(
            "Server=h;Database=d;User Id=u;Password=p;Encrypt=false;ApplicationIntent=ReadOnly;App=qotd-job",
        );
        assert_eq!(cs.encrypt, Encrypt::LoginOnly);
        assert!(cs.read_only);
        assert_eq!(cs.application_name, "qotd-job");
        // Doubled quotes inside a quoted value; single quotes; spaces around '='.
        let cs = ok("Server = h ; Database = d ; User Id = u ; Password = 'it''s \"x\"'");
        match cs.auth {
            Authentication::SqlPassword { password, .. } => {
                assert_eq!(password.expose(), "it's \"x\"")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ok("Server=h;Database=d;User Id=u;Password=\"a\"\"b\"").auth,
            Authentication::SqlPassword {
                user: "u".into(),
                password: Password::new("a\"b".to_owned())
            }
        );
    }

    #[test]
    fn malformed_and_unsupported_strings_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Server=h;Database=d", "no credentials"),
            ("Database=d;User Id=u;Password=p", "Server is required"),
            ("Server=h;User Id=u;Password=p", "Database"),
            (
                "Server=h;Database=d;User Id=u;Password=p;Colour=blue",
                "unknown key 'Colour'",
            ),
            (
                "Server=h;Database=d;Authentication=Active Directory Password;User Id=u;Password=p",
                "Active Directory Password is not supported",
            ),
            (
                "Server=h;Database=d;Authentication=Active Directory Integrated",
                "not supported",
            ),
            (
                "Server=h;Database=d;Authentication=Magic",
                "Authentication=Magic is not a known mode",
            ),
            (
                "Server=h;Database=d;Authentication=Active Directory Managed Identity;Password=p",
                "Password is not used",
            ),
            ("Server=h;Database=d;User Id=u", "Password is required"),
            ("Server=h;Database=d;Password=p", "User Id is required"),
            (
                "Server=h,99999;Database=d;User Id=u;Password=p",
                "port '99999'",
            ),
            ("Server=h:1433;Database=d;User Id=u;Password=p", "comma"),
            (
                "Server=np:h;Database=d;User Id=u;Password=p",
                "protocol 'np:'",
            ),
            (
                "Server=h\\SQLEXPRESS;Database=d;User Id=u;Password=p",
                "named instances",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Encrypt=Strict",
                "Encrypt=Strict",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Encrypt=maybe",
                "Encrypt must be true or false",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Encrypt=DANGER_PLAINTEXT",
                "DANGER_PLAINTEXT",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;TrustServerCertificate=perhaps",
                "TrustServerCertificate must be true or false",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Max Pool Size=50",
                "QOTD_SQL_POOL_SIZE",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Command Timeout=5",
                "QOTD_SQL_STATEMENT_TIMEOUT_SECONDS",
            ),
            (
                "Server=h;Database=d;Integrated Security=SSPI",
                "integrated authentication",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;MultipleActiveResultSets=true",
                "MultipleActiveResultSets",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=p;Connect Timeout=0",
                "Connect Timeout",
            ),
            (
                "Server=h;Server=g;Database=d;User Id=u;Password=p",
                "Server is given twice",
            ),
            (
                "Server=h;Data Source=g;Database=d;User Id=u;Password=p",
                "Server is given twice",
            ),
            (
                "Server=h;Database=;User Id=u;Password=p",
                "Database has an empty value",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=\"unterminated",
                "not closed",
            ),
            (
                "Server=h;Database=d;User Id=u;Password=\"a\"b",
                "unexpected text after the quoted value of 'Password'",
            ),
            (
                "Server=h;Database d;User Id=u;Password=p",
                "segment 2 ('Database d') has no '='",
            ),
            ("Server=h;=d;User Id=u;Password=p", "no key"),
            (
                "Server=h;Database=d;ApplicationIntent=Sideways;User Id=u;Password=p",
                "ApplicationIntent",
            ),
        ];
        assert!(cases.len() >= 10);
        for (raw, needle) in cases {
            let e = err(raw);
            assert!(
                e.contains(needle),
                "{raw:?}: error {e:?} should mention {needle:?}"
            );
        }
    }

    #[test]
    fn passwords_never_leak_into_errors_or_debug() {
        let secret = "S3cr3t-Value";
        let cs = ok(&format!("Server=h;Database=d;User Id=u;Password={secret}"));
        assert!(!format!("{cs:?}").contains(secret));
        assert!(!cs.redacted().contains(secret));
        assert!(!cs.to_string().contains(secret));
        // A password with an unquoted ';': the tail must not be echoed.
        for raw in [
            format!("Server=h;Database=d;User Id=u;Password=ab;{secret}"),
            format!("Server=h;Database=d;User Id=u;Password=ab;{secret}=x"),
            format!(
                "Server=h;Database=d;User Id=u;Password={secret};Colour=blue;Authentication=Magic"
            ),
        ] {
            let e = err(&raw);
            assert!(!e.contains(secret), "{e}");
        }
        // Unknown keys are named, but a duplicate Password never echoes its value.
        let e = err(&format!(
            "Server=h;Database=d;User Id=u;Password={secret};PWD={secret}"
        ));
        assert!(
            e.contains("Password is given twice") && !e.contains(secret),
            "{e}"
        );
    }

    #[test]
    fn tiberius_config_carries_the_address() {
        let cs = ok(&format!(
            "{AZ};Authentication=Active Directory Managed Identity"
        ));
        assert_eq!(
            cs.tiberius_config().get_addr(),
            "qotd-sql.database.windows.net:1433"
        );
    }
}
