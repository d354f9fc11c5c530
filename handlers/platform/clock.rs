//! The source of "now". Services take a `Clock` so tests can pin time; production uses UTC.

use chrono::{DateTime, Utc};

/// Supplies the current instant; the quiz day is always derived from it in UTC.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
