//! Leases with fencing tokens: one holder per `(org, source)` at a time.

use std::time::Duration;

use time::OffsetDateTime;

/// How long a claimed lease lasts unless renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// A claim on collecting one `(org, source)`.
///
/// The fencing token grows by one with every change of holder. Writes carry it and the store
/// refuses a write whose token is not the current one, so a holder that paused past its expiry
/// (a GC pause, a partition, a suspended VM) and was taken over cannot write behind the new
/// holder, whatever its clock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The org's name.
    pub org: String,
    /// The source's name (for example `EventLogFile` or `LoginEvent`).
    pub source: String,
    /// Who holds it.
    pub holder: String,
    /// The fencing token.
    pub fencing_token: i64,
    /// When it expires unless renewed.
    pub expires_at: OffsetDateTime,
}

impl Lease {
    /// Whether it is still valid at `now` by the holder's own clock. Renew well before:
    /// [`renew_due`](Self::renew_due).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }

    /// Whether a renewal is due at `now`: a third of `ttl` left, so two renewals can fail
    /// before the lease runs out.
    pub fn renew_due(&self, now: OffsetDateTime, ttl: Duration) -> bool {
        let margin = time::Duration::try_from(ttl / 3).unwrap_or(time::Duration::ZERO);
        now + margin >= self.expires_at
    }
}

/// `now + ttl`, saturating instead of overflowing.
pub(crate) fn expiry(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(now)
}
