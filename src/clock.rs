//! Injectable time.
//!
//! Everything in this crate that depends on time (assertion expiry, the assumed session lifetime,
//! refresh-ahead, retry backoff, the collector's lookback) asks a [`Clock`]. Production code uses
//! [`SystemClock`]; tests use [`ManualClock`], which they move forward instead of sleeping.
//! (tokio's paused clock is no substitute: it makes reqwest's real I/O time out.)
//!
//! ```
//! use std::time::Duration;
//! use salesforce_jwt::clock::{Clock, ManualClock};
//! use salesforce_jwt::time::macros::datetime;
//!
//! let clock = ManualClock::new(datetime!(2025-06-10 12:00 UTC));
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now(), datetime!(2025-06-10 12:01:30 UTC));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of the current time and of delays.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Waits for `duration` (retry backoff). A test clock may return at once after moving its time.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The real clock: `OffsetDateTime::now_utc()` and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to.
///
/// Clones share the same time. [`Clock::sleep`] advances the time by the requested duration and
/// returns at once, recording the duration so tests can assert the backoff that was chosen.
///
/// ```
/// use salesforce_jwt::clock::{Clock, ManualClock};
/// use time::macros::datetime;
///
/// let clock = ManualClock::new(datetime!(2024-03-11 15:00 UTC));
/// clock.advance(std::time::Duration::from_secs(90));
/// assert_eq!(clock.now(), datetime!(2024-03-11 15:01:30 UTC));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

struct ManualState {
    now: OffsetDateTime,
    slept: Vec<Duration>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            state: Arc::new(Mutex::new(ManualState {
                now: start,
                slept: Vec::new(),
            })),
        }
    }

    /// Moves the time forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.now += duration;
    }

    /// Sets the time.
    pub fn set(&self, now: OffsetDateTime) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now = now;
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .slept
            .clone()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.now += duration;
            state.slept.push(duration);
        }
        Box::pin(std::future::ready(()))
    }
}
