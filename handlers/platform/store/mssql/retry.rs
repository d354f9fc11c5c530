//! What counts as a transient failure, and when an operation may be tried again.
//!
//! **The rule.** A read is always safe to repeat. A write runs in an explicit transaction
//! (`SET XACT_ABORT ON; BEGIN TRANSACTION` ... `COMMIT TRANSACTION`) and is repeated only if it
//! failed *before* `COMMIT` was sent: until then nothing is durable (the server rolls back the
//! open transaction when the statement fails, when XACT_ABORT aborts it, or when the session
//! dies with the dropped connection). Once `COMMIT` has been sent, a lost answer (dropped
//! connection, timeout) means the outcome is unknown: the transaction may have committed, so
//! re-running it could store a second attempt or publish an event twice. Such a failure is
//! reported as [`Failure::OutcomeUnknown`] and never retried here; the caller (ultimately the
//! HTTP client or the message broker) decides, and the idempotency keys (one attempt per user
//! per day, the inbox, the registration check) make a client's retry harmless.
//!
//! **Transient** means: one of the Azure SQL error numbers below (the service is reconfiguring,
//! throttling, or a deadlock victim's transaction was rolled back), an I/O error (the
//! connection dropped), or a statement that hit its timeout. Everything else (a constraint
//! violation, a syntax or permission error) is permanent.
//!
//! **Backoff.** The platform's one policy ([`crate::platform::retry`]: exponential with equal
//! jitter) with the SQL numbers of [`SqlRetry::with_budget`]: at most 5 tries, 250 ms doubling
//! to 4 s, and no wait that would end past the budget (the statement timeout), so a request
//! never hangs for minutes. Only the rule of *which* failures may be repeated is SQL's own.
//! Waiting for a pooled connection is not retried here: bb8 already keeps trying to connect
//! until its connection timeout (and logs each real error).

use crate::platform::retry;
use std::time::Duration;

pub use crate::platform::retry::jitter_unit;

/// Azure SQL / SQL Server error numbers that mean "try again shortly".
pub mod codes {
    /// Cannot open database requested by the login (database unavailable or being moved).
    pub const CANNOT_OPEN_DATABASE: u32 = 4060;
    /// The service encountered an error processing the request (failover, upgrade).
    pub const SERVICE_ERROR: u32 = 40197;
    /// The service is currently busy.
    pub const SERVICE_BUSY: u32 = 40501;
    /// Database is not currently available (reconfiguration, serverless resume).
    pub const DATABASE_UNAVAILABLE: u32 = 40613;
    /// Cannot process request: not enough resources (elastic pool / instance).
    pub const NOT_ENOUGH_RESOURCES: u32 = 49918;
    /// Cannot process create or update request: too many operations in progress.
    pub const TOO_MANY_CREATE_UPDATE: u32 = 49919;
    /// Cannot process request: too many operations in progress.
    pub const TOO_MANY_OPERATIONS: u32 = 49920;
    /// Resource limit reached (requests / sessions).
    pub const RESOURCE_LIMIT: u32 = 10928;
    /// Resource minimum guarantee not available.
    pub const RESOURCE_GUARANTEE: u32 = 10929;
    /// Login to read-secondary failed due to long wait on HADR_DATABASE_WAIT_FOR_TRANSITION_TO_VERSIONING.
    pub const READ_SECONDARY_WAIT: u32 = 4221;
    /// Transaction was deadlocked and chosen as the victim: the server rolled it back, so the
    /// whole transaction may run again.
    pub const DEADLOCK_VICTIM: u32 = 1205;
    /// The engine cannot obtain a LOCK resource at this time (lock memory exhausted).
    pub const LOCK_RESOURCE: u32 = 1204;
    /// Lock request time-out period exceeded.
    pub const LOCK_TIMEOUT: u32 = 1222;
    /// The service has encountered an error processing your request (connection-level
    /// failure during reconfiguration).
    pub const SERVICE_ERROR_CONNECTION: u32 = 40143;
    /// The service has encountered an error processing your request (gateway).
    pub const SERVICE_ERROR_GATEWAY: u32 = 40540;

    /// Violation of a PRIMARY KEY or UNIQUE constraint.
    pub const UNIQUE_CONSTRAINT_VIOLATION: u32 = 2627;
    /// Cannot insert a duplicate key row with a unique index.
    pub const UNIQUE_INDEX_VIOLATION: u32 = 2601;
}

/// Error numbers retried by [`is_transient_number`].
///
/// Compared with Microsoft.Data.SqlClient's default transient list (`s_defaultTransientErrors`
/// in `SqlConfigurableRetryFactory`,
/// <https://github.com/dotnet/SqlClient/blob/main/src/Microsoft.Data.SqlClient/src/Microsoft/Data/SqlClient/Reliability/SqlConfigurableRetryFactory.cs>):
/// every server error number of that list is here (1204, 1205, 1222, 4060, 4221, 10928, 10929,
/// 40143, 40197, 40501, 40540, 40613, 49918, 49919, 49920). Its remaining entries (10053,
/// 10054, 10060, 997, 233) are numbers SqlClient gives to client-side network failures; the
/// tiberius driver reports those as I/O errors, which are transient here anyway.
pub const TRANSIENT_ERROR_NUMBERS: &[u32] = &[
    codes::CANNOT_OPEN_DATABASE,
    codes::SERVICE_ERROR,
    codes::SERVICE_BUSY,
    codes::DATABASE_UNAVAILABLE,
    codes::NOT_ENOUGH_RESOURCES,
    codes::TOO_MANY_CREATE_UPDATE,
    codes::TOO_MANY_OPERATIONS,
    codes::RESOURCE_LIMIT,
    codes::RESOURCE_GUARANTEE,
    codes::READ_SECONDARY_WAIT,
    codes::DEADLOCK_VICTIM,
    codes::LOCK_RESOURCE,
    codes::LOCK_TIMEOUT,
    codes::SERVICE_ERROR_CONNECTION,
    codes::SERVICE_ERROR_GATEWAY,
];

pub fn is_transient_number(code: u32) -> bool {
    TRANSIENT_ERROR_NUMBERS.contains(&code)
}

pub fn is_unique_violation(code: u32) -> bool {
    code == codes::UNIQUE_CONSTRAINT_VIOLATION || code == codes::UNIQUE_INDEX_VIOLATION
}

/// How a failed try ended, as far as repeating it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Transient, and nothing can have been committed: safe to try again.
    Transient,
    /// Will fail the same way again (constraint, permission, bad data, configuration).
    Permanent,
    /// `COMMIT` was sent and its answer lost: never repeated automatically.
    OutcomeUnknown,
    /// No pooled connection within the pool's timeout; bb8 already retried connecting.
    NoConnection,
}

/// Tries of one SQL operation, first included.
const MAX_ATTEMPTS: u32 = 5;
/// The step before the second try; doubles up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);

/// The SQL store's retry rule: the platform policy with the SQL numbers, gated on the kind of
/// failure (only [`Failure::Transient`] is repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlRetry {
    policy: retry::RetryPolicy,
}

impl SqlRetry {
    /// The SQL numbers, within `budget` (the statement timeout).
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            policy: retry::RetryPolicy {
                max_attempts: MAX_ATTEMPTS,
                base_delay: BASE_DELAY,
                max_delay: MAX_DELAY,
                total_budget: budget,
            },
        }
    }

    /// The policy applied to transient failures.
    pub fn policy(&self) -> &retry::RetryPolicy {
        &self.policy
    }

    /// The delay before the next try, or `None` to give up: the failure is not transient, the
    /// tries are used up, or the wait would end past the budget. `unit` is the jitter draw in
    /// `[0, 1)` (see [`jitter_unit`]).
    pub fn next_delay(
        &self,
        failure: Failure,
        attempt: u32,
        elapsed: Duration,
        unit: f64,
    ) -> Option<Duration> {
        if failure != Failure::Transient {
            return None;
        }
        self.policy.next_with(attempt, elapsed, None, unit).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SqlRetry {
        SqlRetry::with_budget(Duration::from_secs(30))
    }

    #[test]
    fn steps_double_and_are_capped() {
        let p = policy();
        let steps: Vec<u128> = (1..=7).map(|a| p.policy().step(a).as_millis()).collect();
        assert_eq!(steps, vec![250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_step() {
        let p = policy();
        for attempt in 1..4 {
            let step = p.policy().step(attempt);
            let low = p
                .next_delay(Failure::Transient, attempt, Duration::ZERO, 0.0)
                .unwrap();
            let high = p
                .next_delay(Failure::Transient, attempt, Duration::ZERO, 0.999_999)
                .unwrap();
            assert_eq!(low, step / 2);
            assert!(high <= step && high > step * 9 / 10, "{high:?} vs {step:?}");
        }
        for _ in 0..1000 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn only_transient_failures_are_retried_and_within_limits() {
        let p = policy();
        let z = Duration::ZERO;
        assert!(p.next_delay(Failure::Transient, 1, z, 0.5).is_some());
        assert!(p.next_delay(Failure::Permanent, 1, z, 0.5).is_none());
        assert!(
            p.next_delay(Failure::OutcomeUnknown, 1, z, 0.5).is_none(),
            "a COMMIT whose answer was lost is never repeated"
        );
        assert!(p.next_delay(Failure::NoConnection, 1, z, 0.5).is_none());
        assert!(p.next_delay(Failure::Transient, 4, z, 0.5).is_some());
        assert!(
            p.next_delay(Failure::Transient, 5, z, 0.5).is_none(),
            "5 tries at most"
        );
        assert!(
            p.next_delay(Failure::Transient, 1, Duration::from_secs(30), 0.0)
                .is_none(),
            "budget spent"
        );
    }

    #[test]
    fn error_numbers() {
        for n in [
            4060, 40197, 40501, 40613, 49918, 49919, 49920, 10928, 10929, 4221, 1205, 1204, 1222,
            40143, 40540,
        ] {
            assert!(is_transient_number(n), "{n}");
        }
        for n in [2627, 2601, 547, 208, 229, 18456] {
            assert!(!is_transient_number(n), "{n}");
        }
        assert!(is_unique_violation(2627) && is_unique_violation(2601));
        assert!(!is_unique_violation(547));
    }
}
