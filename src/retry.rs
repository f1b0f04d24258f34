//! Bounded, jittered exponential backoff that honours `Retry-After`.

use std::future::Future;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::RetryPolicy;
use crate::error::Error;

/// How an attempt failed.
pub(crate) enum Failure {
    /// Retry if the error allows it.
    Attempt(Error),
    /// Do not retry here: the error comes from a step that already ran its own retries (a token
    /// request inside an API request), and retrying around it would multiply the attempts.
    Final(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Attempt(error)
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is final or not retryable, or the
/// policy's attempts or time run out; the last error is returned.
pub(crate) async fn with_retries<T, F, Fut>(
    clock: &dyn Clock,
    policy: RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = clock.now();
    let mut n = 1;
    loop {
        let error = match attempt(n).await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Attempt(e)) => e,
        };
        if !error.retry_in_call() || n >= policy.max_attempts {
            return Err(error);
        }
        let elapsed = Duration::try_from(clock.now() - started).unwrap_or_default();
        let remaining = policy.max_elapsed.saturating_sub(elapsed);
        let delay = match error.retry_after() {
            // The server said when; waiting less would only earn another refusal.
            Some(asked) => asked,
            None => backoff(policy, n),
        };
        if delay > remaining {
            return Err(error);
        }
        tracing::warn!(
            attempt = n,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "{what} failed; retrying"
        );
        clock.sleep(delay).await;
        n += 1;
    }
}

/// Full-jitter backoff in [d/2, d] with d = initial * 2^(n-1), capped: the jitter spreads the
/// retries of many collectors that failed together.
pub(crate) fn backoff(policy: RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(policy.max_backoff);
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Full-jitter backoff: uniform in [0, d] with d = initial * 2^(n-1), capped. For retries that
/// may run many times in a row (a log file's downloads), where spreading them out matters more
/// than a guaranteed minimum wait.
pub(crate) fn full_jitter_backoff(policy: RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(policy.max_backoff).mul_f64(fastrand::f64())
}

/// Parses `Retry-After`: delta-seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(date - now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_elapsed: Duration::from_secs(60),
        };
        for _ in 0..100 {
            let b1 = backoff(p, 1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = backoff(p, 3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b9 = backoff(p, 9);
            assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn full_jitter_spreads_from_zero_to_the_capped_exponential() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_elapsed: Duration::from_secs(60),
        };
        let third: Vec<Duration> = (0..200).map(|_| full_jitter_backoff(p, 3)).collect();
        assert!(third.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(
            third.iter().any(|d| *d < Duration::from_millis(200)),
            "not [d/2, d]"
        );
        assert!((0..200).all(|_| full_jitter_backoff(p, 12) <= Duration::from_millis(1000)));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = datetime!(2015-10-21 07:27:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    proptest::proptest! {
        /// Whatever a server puts in `Retry-After`, parsing neither panics nor overflows.
        #[test]
        fn any_retry_after_parses_without_panicking(value in "\\PC{0,40}", secs: u64) {
            let now = datetime!(2015-10-21 07:27:00 UTC);
            let _ = parse_retry_after(&value, now);
            proptest::prop_assert_eq!(
                parse_retry_after(&secs.to_string(), now),
                Some(Duration::from_secs(secs))
            );
            let _ = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
            let _ = parse_retry_after("Mon, 01 Jan -9999 00:00:00 GMT", now);
        }

        /// `Sforce-Limit-Info` with any numbers: parsed when they fit, `None` otherwise.
        #[test]
        fn any_limit_info_parses_without_panicking(value in "\\PC{0,60}", used: u128, limit: u128) {
            let _ = crate::error::ApiUsage::parse(&value);
            let parsed = crate::error::ApiUsage::parse(&format!("api-usage={used}/{limit}"));
            let fits = u64::try_from(used).is_ok() && u64::try_from(limit).is_ok();
            proptest::prop_assert_eq!(parsed.is_some(), fits);
        }
    }
}
