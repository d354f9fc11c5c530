//! Pool and timeout settings of the SQL Server backend, read from environment variables.
//!
//! | variable | default | range | meaning |
//! | --- | --- | --- | --- |
//! | `QOTD_SQL_POOL_SIZE` | 10 | 1..=200 | most open connections per process |
//! | `QOTD_SQL_CONNECT_TIMEOUT_SECONDS` | `Connect Timeout` from the connection string, else 15 | 1..=300 | token + TCP + TLS + login for one new connection; also the longest wait for a pooled connection |
//! | `QOTD_SQL_STATEMENT_TIMEOUT_SECONDS` | 30 | 1..=3600 | one statement (round trip); also the budget within which transient failures are retried |

use crate::platform::config::ConfigError;
use std::time::Duration;

pub const POOL_SIZE: &str = "QOTD_SQL_POOL_SIZE";
pub const CONNECT_TIMEOUT: &str = "QOTD_SQL_CONNECT_TIMEOUT_SECONDS";
pub const STATEMENT_TIMEOUT: &str = "QOTD_SQL_STATEMENT_TIMEOUT_SECONDS";

pub const DEFAULT_POOL_SIZE: u32 = 10;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Validated pool and timeout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlSettings {
    pub pool_size: u32,
    /// `None` when the variable is not set: the connection string's `Connect Timeout`, else
    /// [`DEFAULT_CONNECT_TIMEOUT`], applies (see [`SqlSettings::connect_timeout_for`]).
    pub connect_timeout: Option<Duration>,
    pub statement_timeout: Duration,
}

impl Default for SqlSettings {
    fn default() -> Self {
        Self {
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = get(variable)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| ConfigError {
            variable,
            problem: format!(
                "'{raw}' is not a whole number of {unit} from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

impl SqlSettings {
    /// Reads the three variables through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            pool_size: number(&get, POOL_SIZE, 1..=200, "connections")?
                .map(|n| n as u32)
                .unwrap_or(DEFAULT_POOL_SIZE),
            connect_timeout: number(&get, CONNECT_TIMEOUT, 1..=300, "seconds")?
                .map(Duration::from_secs),
            statement_timeout: number(&get, STATEMENT_TIMEOUT, 1..=3600, "seconds")?
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_STATEMENT_TIMEOUT),
        })
    }

    /// The connect timeout: the variable, else the connection string's, else 15 s.
    pub fn connect_timeout_for(&self, from_string: Option<Duration>) -> Duration {
        self.connect_timeout
            .or(from_string)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;

    #[test]
    fn defaults_and_values() {
        let s = SqlSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s, SqlSettings::default());
        assert_eq!(s.connect_timeout_for(None), Duration::from_secs(15));
        assert_eq!(
            s.connect_timeout_for(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        let s = SqlSettings::from_lookup(lookup(&[
            (POOL_SIZE, "25"),
            (CONNECT_TIMEOUT, " 5 "),
            (STATEMENT_TIMEOUT, "60"),
        ]))
        .unwrap();
        assert_eq!(s.pool_size, 25);
        assert_eq!(
            s.connect_timeout_for(Some(Duration::from_secs(30))),
            Duration::from_secs(5)
        );
        assert_eq!(s.statement_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (POOL_SIZE, "0"),
            (POOL_SIZE, "201"),
            (POOL_SIZE, "ten"),
            (CONNECT_TIMEOUT, "0"),
            (CONNECT_TIMEOUT, "-1"),
            (STATEMENT_TIMEOUT, "1.5"),
            (STATEMENT_TIMEOUT, "3601"),
        ] {
            let e = SqlSettings::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().contains(var), "{e}");
            assert!(e.problem.contains(value.trim()), "{e}");
        }
    }
}
