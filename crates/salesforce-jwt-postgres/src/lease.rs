//! Leases with fencing tokens: one holder per `(org, source)` at a time.

use std::sync::OnceLock;
use std::time::Duration;

use time::OffsetDateTime;

/// How long a claimed lease lasts unless renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// A claim on collecting one `(org, source)`.
///
/// The fencing token grows with every change of holder and is never issued twice for one
/// `(org, source)`, even after the lease row was deleted. Writes carry it and the store refuses
/// a write whose token is not the current one, so a holder that paused past its expiry (a GC
/// pause, a partition, a suspended VM) and was taken over cannot write behind the new holder,
/// whatever its clock says.
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
    /// When it expires unless renewed, by the database's clock: the time every process judges
    /// it by.
    pub expires_at: OffsetDateTime,
    /// When it expires by this process's clock, counted from before the claim or renewal was
    /// sent, so never later than [`expires_at`](Self::expires_at) however the two clocks are
    /// set (as long as they run at the same rate).
    pub valid_until: OffsetDateTime,
}

impl Lease {
    /// Whether it is still valid at `now` by the holder's own clock. Renew well before:
    /// [`renew_due`](Self::renew_due).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.valid_until
    }

    /// Whether a renewal is due at `now` (the holder's clock): a third of `ttl` left, so two
    /// renewals can fail before the lease runs out.
    pub fn renew_due(&self, now: OffsetDateTime, ttl: Duration) -> bool {
        let margin = time::Duration::try_from(ttl / 3).unwrap_or(time::Duration::ZERO);
        now + margin >= self.valid_until
    }
}

/// `now + ttl`, saturating instead of overflowing.
pub(crate) fn expiry(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(now)
}

/// How long the store lets a lease statement or a commit wait, so that a holder that vanished
/// in the middle of a commit cannot keep its `(org, source)` locked: another process takes it
/// over within the TTL plus [`LeaseTimeouts::takeover_bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimeouts {
    /// `lock_timeout` of a claim: a claim that finds the lease row locked by a commit gives up
    /// after this long with [`PgError::LeaseBusy`](crate::PgError::LeaseBusy) instead of queueing
    /// behind it.
    pub claim_lock: Duration,
    /// `statement_timeout` of each statement of a commit (`SET LOCAL`), plus a second per 5,000
    /// rows the commit inserts, so that a large file's COPY is not cut off on a slow server.
    /// (While the server waits for a vanished client's COPY data, only the keepalives end it.)
    pub commit_statement: Duration,
    /// `idle_in_transaction_session_timeout` of a commit (`SET LOCAL`): the server ends the
    /// session, and so frees the lease row, when the client stops in the middle of a commit.
    pub commit_idle: Duration,
    /// TCP keepalives, on both ends of every connection: idle time before the first probe.
    /// Probes follow every `keepalive_idle / 2`, and two unanswered probes end the connection,
    /// so a host that vanished (no FIN, no RST) is noticed after twice this.
    pub keepalive_idle: Duration,
}

impl Default for LeaseTimeouts {
    fn default() -> Self {
        LeaseTimeouts {
            claim_lock: Duration::from_secs(2),
            commit_statement: Duration::from_secs(25),
            commit_idle: Duration::from_secs(10),
            keepalive_idle: Duration::from_secs(10),
        }
    }
}

impl LeaseTimeouts {
    /// The statement timeout of a commit of `rows` rows.
    pub(crate) fn commit_statement_for(&self, rows: usize) -> Duration {
        let extra = u64::try_from(rows / 5_000).unwrap_or(u64::MAX);
        self.commit_statement
            .saturating_add(Duration::from_secs(extra))
    }

    /// How long after a holder vanished its locks may still be held: the longest of the
    /// statement timeout (of a commit of up to 5,000 rows), the idle timeout and the keepalive
    /// detection (idle plus two probes).
    pub fn takeover_bound(&self) -> Duration {
        self.commit_statement
            .max(self.commit_idle)
            .max(self.keepalive_idle * 2)
    }
}

/// A holder name unique to this process, the same for its whole life:
/// `INSTANCE@HOST:PID`, where `INSTANCE` is 64 random bits. `HOST:PID` alone is not unique:
/// containers share host names (or have none) and every container's first process is pid 1.
pub fn process_holder_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(new_holder_id)
}

/// A fresh `INSTANCE@HOST:PID` name (see [`process_holder_id`], which keeps one per process).
pub fn new_holder_id() -> String {
    let mut random = [0u8; 8];
    // aws-lc's generator reads the OS's; should it ever fail, the time's nanoseconds still tell
    // two processes started with the same host and pid apart.
    let instance = match aws_lc_rs::rand::fill(&mut random) {
        Ok(()) => u64::from_be_bytes(random),
        Err(_) => {
            let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
            (nanos as u64) ^ ((nanos >> 64) as u64)
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{instance:016x}@{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_commit_gets_time_for_its_rows_and_the_takeover_bound_holds_for_small_ones() {
        let t = LeaseTimeouts::default();
        assert_eq!(t.commit_statement_for(0), Duration::from_secs(25));
        assert_eq!(t.commit_statement_for(4_999), Duration::from_secs(25));
        assert_eq!(t.commit_statement_for(1_000_000), Duration::from_secs(225));
        assert!(t.takeover_bound() <= Duration::from_secs(30));
    }
}
