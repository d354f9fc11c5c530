//! The one retry policy of the platform and the one reader of a server's `Retry-After`.
//!
//! Every caller that retries (the Service Bus publisher, the Azure OpenAI client, the SQL
//! store's loop, the outbox's schedule) states its numbers as a constant of [`RetryPolicy`];
//! the curve, the jitter and the stopping rules live only here, so they cannot drift apart.
//!
//! **Backoff.** The step before attempt `n + 1` is `base_delay · 2^(n-1)`, capped at
//! `max_delay`. The delay actually waited has "equal jitter": a uniform draw between half the
//! step and the whole step. Half is fixed so a retry never comes back at once; half is random
//! so many instances that failed together do not retry in lockstep.
//!
//! **Stopping.** A loop stops once `max_attempts` were made, or when the next wait would end at
//! or after `total_budget` since the first attempt began (no point sleeping into a deadline).
//! A wait the server asked for replaces the backoff and obeys the same budget.
//!
//! **`Retry-After`.** [`retry_after`] reads, in the order Azure SDKs do, `retry-after-ms`, then
//! `x-ms-retry-after-ms` (milliseconds), then `Retry-After` as delta-seconds or as an HTTP-date
//! (RFC 9110 §10.2.3). The result is capped at the caller's maximum, so a confused or hostile
//! server cannot park a worker for hours.

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// Doublings after which the step stops growing even below `max_delay`; keeps the arithmetic
/// far from overflow (2^16 times any sane base is already beyond every cap).
const MAX_DOUBLINGS: u32 = 16;

/// Millisecond headers, most precise first; both are sent by Azure services.
const MILLISECOND_HEADERS: [&str; 2] = ["retry-after-ms", "x-ms-retry-after-ms"];

/// Bounds and curve of one retried operation. `Copy` and `const`-constructible so each caller
/// keeps its numbers as a named constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 behaves as 1).
    pub max_attempts: u32,
    /// The step before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// The largest step (a server's `Retry-After` may ask for more, up to the parser's cap).
    pub max_delay: Duration,
    /// No wait may end at or after this much time since the first attempt began.
    pub total_budget: Duration,
}

/// Why a retry loop stops instead of waiting again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` attempts were made.
    Attempts,
    /// Waiting this long would end at or past `total_budget`.
    Budget(Duration),
}

impl RetryPolicy {
    /// A curve without attempt or time bounds, for schedules that only ask for [`step`]s
    /// (the outbox stores the next retry time on the row instead of sleeping).
    ///
    /// [`step`]: Self::step
    pub const fn unbounded(base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts: u32::MAX,
            base_delay,
            max_delay,
            total_budget: Duration::MAX,
        }
    }

    /// The un-jittered step before attempt `attempt + 1` (`attempt` counts from 1).
    pub fn step(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(MAX_DOUBLINGS);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// The jittered delay before attempt `attempt + 1`: between half the step and the step.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, jitter_unit())
    }

    /// [`delay`](Self::delay) with the random draw given: `unit` in `[0, 1)` (clamped), so
    /// tests can pin the jitter.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let step = self.step(attempt);
        step / 2 + step.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// After attempt `attempt` (from 1) failed, `elapsed` after the first one began: how long
    /// to wait before the next, or why not to try again. `server_wait` (a parsed
    /// `Retry-After`) replaces the backoff when present.
    pub fn next(
        &self,
        attempt: u32,
        elapsed: Duration,
        server_wait: Option<Duration>,
    ) -> Result<Duration, GiveUp> {
        self.next_with(attempt, elapsed, server_wait, jitter_unit())
    }

    /// [`next`](Self::next) with the random draw given (see [`delay_with`](Self::delay_with)).
    pub fn next_with(
        &self,
        attempt: u32,
        elapsed: Duration,
        server_wait: Option<Duration>,
        unit: f64,
    ) -> Result<Duration, GiveUp> {
        if attempt >= self.max_attempts.max(1) {
            return Err(GiveUp::Attempts);
        }
        let wait = server_wait.unwrap_or_else(|| self.delay_with(attempt, unit));
        if elapsed.saturating_add(wait) >= self.total_budget {
            return Err(GiveUp::Budget(wait));
        }
        Ok(wait)
    }
}

/// A uniformly distributed number in `[0, 1)` for jitter, from the OS random source (via uuid,
/// already a dependency; jitter needs no cryptographic quality, only independence).
pub fn jitter_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// How long the server asked to wait (see the module docs for the headers and their order),
/// at most `max`. `None` when no header is present or none parses; an HTTP-date in the past
/// means "now" (`Duration::ZERO`).
pub fn retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    use crate::platform::clock::{Clock, SystemClock};
    // The real clock, through the one place that reads it (an HTTP-date needs wall time).
    retry_after_at(headers, max, SystemTime::from(SystemClock.now()))
}

/// [`retry_after`] with the clock given, for HTTP-dates in tests.
fn retry_after_at(headers: &HeaderMap, max: Duration, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let wait = MILLISECOND_HEADERS
        .iter()
        .find_map(|name| text(name).and_then(non_negative).map(|ms| ms / 1000.0))
        .map(seconds)
        .or_else(|| {
            let raw = text("retry-after")?;
            // Delta-seconds should be an integer; fractions are accepted since some servers
            // send them and the meaning is clear.
            non_negative(raw).map(seconds).or_else(|| {
                let at = httpdate::parse_http_date(raw).ok()?;
                Some(at.duration_since(now).unwrap_or(Duration::ZERO))
            })
        })?;
    Some(wait.min(max))
}

/// A finite number `>= 0`, or `None`.
fn non_negative(raw: &str) -> Option<f64> {
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// Seconds as a `Duration`, saturating (the cap brings it down afterwards).
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: ms(250),
            max_delay: secs(4),
            total_budget: secs(30),
        }
    }

    #[test]
    fn steps_double_from_the_base_and_stop_at_the_cap() {
        let cases = [
            (0, 250),
            (1, 250),
            (2, 500),
            (3, 1000),
            (4, 2000),
            (5, 4000),
            (6, 4000),
            (40, 4000),
            (u32::MAX, 4000),
        ];
        for (attempt, millis) in cases {
            assert_eq!(policy().step(attempt), ms(millis), "attempt {attempt}");
        }
        let huge = RetryPolicy::unbounded(Duration::MAX, Duration::MAX);
        assert_eq!(
            huge.step(30),
            Duration::MAX,
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn jitter_stays_between_half_the_step_and_the_step() {
        let p = policy();
        let cases: [(u32, f64, u64); 6] = [
            (1, 0.0, 125),
            (1, 0.5, 187),
            (2, 0.0, 250),
            (2, 1.0, 500),
            (3, -3.0, 500),
            (3, 7.0, 1000),
        ];
        for (attempt, unit, millis) in cases {
            assert_eq!(
                p.delay_with(attempt, unit).as_millis(),
                u128::from(millis),
                "attempt {attempt}, unit {unit}"
            );
        }
        for attempt in 1..8 {
            let d = p.delay(attempt);
            let step = p.step(attempt);
            assert!(d >= step / 2 && d <= step, "{d:?} vs step {step:?}");
        }
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&jitter_unit()));
        }
    }

    #[test]
    fn next_waits_within_attempts_and_budget() {
        let p = policy();
        // (failed attempt, elapsed, server's wait, expected)
        type Case = (u32, Duration, Option<Duration>, Result<Duration, GiveUp>);
        let cases: [Case; 8] = [
            (1, secs(0), None, Ok(ms(125))),
            (4, secs(0), None, Ok(ms(1000))),
            (5, secs(0), None, Err(GiveUp::Attempts)),
            (9, secs(0), None, Err(GiveUp::Attempts)),
            (1, secs(0), Some(secs(2)), Ok(secs(2))),
            (1, secs(28), Some(secs(2)), Err(GiveUp::Budget(secs(2)))),
            (1, secs(30), None, Err(GiveUp::Budget(ms(125)))),
            (1, secs(29), Some(Duration::ZERO), Ok(Duration::ZERO)),
        ];
        for (attempt, elapsed, server, expected) in cases {
            assert_eq!(
                p.next_with(attempt, elapsed, server, 0.0),
                expected,
                "attempt {attempt} at {elapsed:?}, server {server:?}"
            );
        }
        let once = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert_eq!(once.next(1, secs(0), None), Err(GiveUp::Attempts));
        let forever = RetryPolicy::unbounded(ms(500), secs(32));
        assert!(forever.next(1_000_000, secs(86_400), None).is_ok());
    }

    /// 1994-11-06 08:49:37 UTC, the example date of RFC 9110.
    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
    }

    #[test]
    fn retry_after_reads_every_form_azure_sends() {
        let max = secs(60);
        // (headers, expected wait)
        type Case = (&'static [(&'static str, &'static str)], Option<Duration>);
        let cases: &[Case] = &[
            (&[], None),
            (&[("retry-after", "2")], Some(secs(2))),
            (&[("Retry-After", " 7 ")], Some(secs(7))),
            (&[("retry-after", "0")], Some(Duration::ZERO)),
            (&[("retry-after", "1.5")], Some(ms(1500))),
            (&[("retry-after", "120")], Some(max)),
            (&[("retry-after", "1e300")], Some(max)),
            (&[("retry-after", "-1")], None),
            (&[("retry-after", "NaN")], None),
            (&[("retry-after", "soon")], None),
            (&[("retry-after", "")], None),
            // HTTP-date in all three RFC 9110 formats, relative to `now()`.
            (
                &[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")],
                Some(secs(10)),
            ),
            (
                &[("retry-after", "Sunday, 06-Nov-94 08:49:52 GMT")],
                Some(secs(15)),
            ),
            (
                &[("retry-after", "Sun Nov  6 08:49:57 1994")],
                Some(secs(20)),
            ),
            (
                &[("retry-after", "Sun, 06 Nov 1994 09:49:37 GMT")],
                Some(max),
            ),
            (
                &[("retry-after", "Fri, 31 Dec 1993 23:59:59 GMT")],
                Some(Duration::ZERO),
            ),
            (&[("retry-after-ms", "150")], Some(ms(150))),
            (
                &[("retry-after-ms", "0.5")],
                Some(Duration::from_micros(500)),
            ),
            (&[("x-ms-retry-after-ms", "250")], Some(ms(250))),
            (&[("retry-after-ms", "999999999")], Some(max)),
            // The millisecond headers win, retry-after-ms first; a bad one is skipped.
            (
                &[("retry-after", "20"), ("retry-after-ms", "400")],
                Some(ms(400)),
            ),
            (
                &[("x-ms-retry-after-ms", "300"), ("retry-after-ms", "100")],
                Some(ms(100)),
            ),
            (
                &[("retry-after-ms", "later"), ("x-ms-retry-after-ms", "300")],
                Some(ms(300)),
            ),
            (
                &[("retry-after-ms", "-5"), ("retry-after", "3")],
                Some(secs(3)),
            ),
        ];
        for (headers, expected) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in *headers {
                map.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            assert_eq!(retry_after_at(&map, max, now()), *expected, "{headers:?}");
        }
    }

    #[test]
    fn retry_after_uses_the_real_clock_and_the_given_cap() {
        let mut map = HeaderMap::new();
        map.insert("retry-after", "45".parse().unwrap());
        assert_eq!(retry_after(&map, secs(30)), Some(secs(30)));
        assert_eq!(retry_after(&map, secs(60)), Some(secs(45)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + secs(20));
        map.insert("retry-after", soon.parse().unwrap());
        let wait = retry_after(&map, secs(60)).unwrap();
        assert!(wait > secs(18) && wait <= secs(20), "{wait:?}");
    }
}
