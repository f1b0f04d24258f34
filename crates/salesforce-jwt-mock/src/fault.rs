//! Failures the org can be told to inject, and its request counters.

/// A failure to inject; each fires once, on the first request it applies to.
///
/// Queued faults are considered in injection order: a request takes the first queued fault that
/// applies to it, so faults for the same target fire in the order they were injected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// 503 with an HTML body, as an edge proxy sends it, and `Retry-After` if given.
    ServiceUnavailable {
        /// Which requests it applies to.
        target: FaultTarget,
        /// Seconds for the `Retry-After` header.
        retry_after_secs: Option<u64>,
    },
    /// 429 with an HTML body and `Retry-After` if given.
    TooManyRequests {
        /// Which requests it applies to.
        target: FaultTarget,
        /// Seconds for the `Retry-After` header.
        retry_after_secs: Option<u64>,
    },
    /// 403 `REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded."), the org's rolling 24-hour
    /// API allowance, with `Sforce-Limit-Info` showing it used up.
    RequestLimitExceeded {
        /// Which requests it applies to.
        target: FaultTarget,
    },
    /// The next download that would succeed serves only the first half of the CSV (gzipped if
    /// asked), while `LogFileLength` keeps the full size: a connection cut short.
    TruncatedBody,
    /// `fault` aimed at the downloads of one file only: [`Fault::TruncatedBody`] cuts off that
    /// file's next download, a status fault (its `target` is ignored) answers it. Lets a test
    /// fail one file many times in a row while the others download normally.
    OnFile {
        /// The EventLogFile Id.
        id: String,
        /// What happens to its next download.
        fault: Box<Fault>,
    },
    /// At the next request that needs a session, every issued token is revoked first, so that
    /// request answers 401 `INVALID_SESSION_ID` (an admin revoking sessions, or the per-user token
    /// limit pushing ours out).
    RevokeSessions,
}

/// Which requests a status [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultTarget {
    /// `POST /services/oauth2/token`.
    Token,
    /// Query requests: first pages and `nextRecordsUrl` pages.
    Query,
    /// `LogFile` downloads.
    Download,
    /// Any request.
    Any,
}

/// Requests the org has received, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// Token requests, whatever their outcome.
    pub token_requests: u64,
    /// Token requests that got a token.
    pub token_successes: u64,
    /// Query requests for a first page (`/query?q=`), whatever their outcome.
    pub queries: u64,
    /// Requests for a following page (`/query/{locator}`), whatever their outcome.
    pub query_more: u64,
    /// `LogFile` download requests, whatever their outcome.
    pub downloads: u64,
    /// 401 `INVALID_SESSION_ID` answers sent.
    pub unauthorized: u64,
    /// Injected faults that have fired.
    pub faults_fired: u64,
}
