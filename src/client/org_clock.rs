//! The org's clock, learned from the `Date` header of Salesforce's answers.
//!
//! Real-time windows end at "now", and `EventDate` is stamped by Salesforce's clock: a window
//! that ends at a fast local clock reaches into the org's future (the overlap is eaten), one
//! that ends at a slow local clock holds rows back. Every answer Salesforce sends carries an
//! HTTP `Date`, so the client records the org's offset from the local [`Clock`] on each one.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::clock::Clock;

/// The offset last learned, and whether the skew warning is out.
#[derive(Debug, Default)]
pub(crate) struct OrgClock {
    state: Mutex<OrgClockState>,
}

#[derive(Debug, Default)]
struct OrgClockState {
    offset: Option<time::Duration>,
    warned: bool,
    /// Set once the org refused an assertion as expired because of this machine's clock: from
    /// then on assertions are signed with the org's time. Not before: a synchronised clock
    /// needs nothing, and a fast one is never refused (Salesforce enforces no upper bound on
    /// `exp`).
    assertions_follow: bool,
}

impl OrgClock {
    /// Records the offset a response's `Date` shows, received at `received` by the local clock.
    /// A missing or unreadable `Date` (a proxy's page, say) leaves the last offset.
    pub(crate) fn record(&self, headers: &HeaderMap, received: OffsetDateTime) {
        let Some(date) = headers
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| OffsetDateTime::parse(v.trim(), &Rfc2822).ok())
        else {
            return;
        };
        self.lock().offset = Some(offset_from(date, received));
    }

    /// The org's time minus the local clock's, once an answer with a `Date` was seen.
    pub(crate) fn offset(&self) -> Option<time::Duration> {
        self.lock().offset
    }

    /// The org's time by `clock` and the last offset (the local time while none is known).
    pub(crate) fn now(&self, clock: &dyn Clock) -> OffsetDateTime {
        clock.now() + self.offset().unwrap_or(time::Duration::ZERO)
    }

    /// Logs a warning when the skew passes `tolerance`, once per crossing (and once more when
    /// it comes back within), never per request. Returns the skew when it is past `tolerance`.
    pub(crate) fn check(&self, tolerance: Duration, what: &str) -> Option<time::Duration> {
        let tolerance = time::Duration::try_from(tolerance).unwrap_or(time::Duration::MAX);
        let mut state = self.lock();
        let offset = state.offset?;
        let skewed = offset.abs() > tolerance;
        if skewed && !state.warned {
            state.warned = true;
            let direction = if offset.is_negative() {
                "ahead of"
            } else {
                "behind"
            };
            tracing::warn!(
                skew_seconds = offset.whole_seconds(),
                "this machine's clock is {}s {direction} the org's (from the Date header of \
                 its answers), more than {}s ({what}): windows follow the org's clock, but \
                 synchronise this machine's clock (NTP)",
                offset.abs().whole_seconds(),
                tolerance.whole_seconds()
            );
        } else if !skewed && state.warned {
            state.warned = false;
            tracing::info!(
                skew_seconds = offset.whole_seconds(),
                "this machine's clock is back within {}s of the org's",
                tolerance.whole_seconds()
            );
        }
        skewed.then_some(offset)
    }

    /// Whether an assertion made at local time `signed_at` (valid for `lifetime`), refused as
    /// expired, was refused because the local clock is behind the org's: the last `Date` puts
    /// the org's time at `received` past the assertion's `exp`.
    pub(crate) fn explains_expiry(
        &self,
        signed_at: OffsetDateTime,
        received: OffsetDateTime,
        lifetime: Duration,
    ) -> bool {
        let Some(offset) = self.offset() else {
            return false;
        };
        let lifetime = time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX);
        !self.follows_for_assertions() && received + offset >= signed_at + lifetime
    }

    pub(crate) fn follow_for_assertions(&self) {
        self.lock().assertions_follow = true;
    }

    pub(crate) fn follows_for_assertions(&self) -> bool {
        self.lock().assertions_follow
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OrgClockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The org's offset from the local clock, from a `Date` (whole seconds, cut down: the org's
/// time when it answered lies in `[date, date + 1 s)`) received at local time `received`.
///
/// A local clock that reads inside `[date, date + 2 s)` agrees with the org as far as the
/// header can tell (the second second allows for the answer's transit): offset zero, so a
/// synchronised clock is used as it is, to the millisecond. Otherwise the offset puts the
/// org's time at `date + 1 s`, the upper end of what the header allows: a window may then end
/// up to a second after the org's now, which only takes that second off the overlap (rows
/// stamped in it are read again by the next pass), while ending before the org's now would
/// hold back rows already queryable.
pub(crate) fn offset_from(date: OffsetDateTime, received: OffsetDateTime) -> time::Duration {
    let second = time::Duration::SECOND;
    if received >= date && received < date + 2 * second {
        time::Duration::ZERO
    } else {
        date + second - received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    fn headers(date: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::DATE, HeaderValue::from_str(date).unwrap());
        headers
    }

    #[test]
    fn a_clock_within_the_header_resolution_is_trusted_to_the_millisecond() {
        let date = datetime!(2025-06-10 12:00:00 UTC);
        for received in [
            date,
            date + time::Duration::milliseconds(700),
            date + time::Duration::milliseconds(1999),
        ] {
            assert_eq!(offset_from(date, received), time::Duration::ZERO);
        }
    }

    #[test]
    fn a_skewed_clock_gets_the_org_time_rounded_up_to_the_next_second() {
        let date = datetime!(2025-06-10 12:00:00 UTC);
        let six = time::Duration::minutes(6);
        // Six minutes fast: the org is at most at date + 1 s.
        let fast = offset_from(date, date + six);
        assert_eq!(date + six + fast, date + time::Duration::SECOND);
        let slow = offset_from(date, date - six);
        assert_eq!(date - six + slow, date + time::Duration::SECOND);
    }

    #[test]
    fn the_date_header_is_read_and_a_missing_one_keeps_the_last_offset() {
        let clock = OrgClock::default();
        assert_eq!(clock.offset(), None);
        clock.record(
            &headers("Tue, 10 Jun 2025 12:00:00 GMT"),
            datetime!(2025-06-10 11:54:00 UTC),
        );
        assert_eq!(clock.offset(), Some(time::Duration::seconds(361)));
        clock.record(&HeaderMap::new(), datetime!(2025-06-10 12:00:00 UTC));
        clock.record(&headers("yesterday"), datetime!(2025-06-10 12:00:00 UTC));
        assert_eq!(clock.offset(), Some(time::Duration::seconds(361)));
    }

    #[test]
    fn the_skew_check_reports_once_per_crossing() {
        let clock = OrgClock::default();
        let tolerance = Duration::from_secs(150);
        assert_eq!(clock.check(tolerance, "test"), None, "nothing known yet");
        clock.record(
            &headers("Tue, 10 Jun 2025 12:00:00 GMT"),
            datetime!(2025-06-10 12:06:00 UTC),
        );
        assert_eq!(
            clock.check(tolerance, "test"),
            Some(time::Duration::seconds(-359))
        );
        assert!(clock.lock().warned);
        clock.record(
            &headers("Tue, 10 Jun 2025 12:00:00 GMT"),
            datetime!(2025-06-10 12:00:00 UTC),
        );
        assert_eq!(clock.check(tolerance, "test"), None);
        assert!(!clock.lock().warned);
    }
}
