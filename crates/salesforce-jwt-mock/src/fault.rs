//! Failures the org can be told to inject, and its request counters.

use std::time::Duration;

/// A failure to inject. [`MockOrg::inject`](crate::MockOrg::inject) queues one that fires once,
/// on the first request it applies to; [`inject_times`](crate::MockOrg::inject_times) and
/// [`inject_always`](crate::MockOrg::inject_always) queue one that fires several times or until
/// [`clear_faults`](crate::MockOrg::clear_faults).
///
/// Queued faults are considered in injection order: a request takes the first queued fault that
/// applies to it, so faults for the same target fire in the order they were injected. A
/// [`Fault::Delay`] is separate: a request takes the first delay that applies to it as well as the
/// first other fault.
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
    /// The token endpoint refuses the assertion with Salesforce's OAuth error shape,
    /// `{"error","error_description"}`, whatever the assertion: `invalid_grant` / `user hasn't
    /// approved this consumer`, `invalid_client_id` / `client identifier invalid`,
    /// `invalid_app_access`, `inactive_user`... (see [`Fault::oauth`]). Applies to token requests
    /// only.
    OAuth {
        /// The `error` code, e.g. `invalid_grant`.
        error: String,
        /// The `error_description`, e.g. `user hasn't approved this consumer`.
        description: String,
        /// The HTTP status; Salesforce uses 400.
        status: u16,
    },
    /// The next query page (first or `nextRecordsUrl`) that would succeed is served cut in
    /// half, its JSON unreadable: a proxy that garbles a body, or a row Salesforce cannot
    /// serialise. With `containing`, only a page whose body holds that text (a row's
    /// `EventIdentifier`, say) is cut: injected with
    /// [`inject_always`](crate::MockOrg::inject_always), a row that breaks every page it is on.
    CorruptPage {
        /// Text the page must contain to be cut; `None`: any page.
        containing: Option<String>,
    },
    /// The answer to a request of `target` is held back for `delay` (the request is otherwise
    /// served normally, faults included): a slow token endpoint or a slow query. Test a client
    /// timeout with a timeout shorter than `delay`, never by sleeping.
    Delay {
        /// Which requests it applies to.
        target: FaultTarget,
        /// How long the answer is held back.
        delay: Duration,
    },
}

impl Fault {
    /// [`Fault::OAuth`] with status 400, as Salesforce answers every refused assertion.
    pub fn oauth(error: impl Into<String>, description: impl Into<String>) -> Self {
        Fault::OAuth {
            error: error.into(),
            description: description.into(),
            status: 400,
        }
    }
}

/// Names a fault queued by [`MockOrg::inject_times`](crate::MockOrg::inject_times) or
/// [`MockOrg::inject_always`](crate::MockOrg::inject_always), to ask how often it has fired
/// ([`MockOrg::times_fired`](crate::MockOrg::times_fired)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(pub(crate) usize);

/// A queued fault and how many more times it fires (`None`: until cleared).
#[derive(Debug)]
pub(crate) struct QueuedFault {
    pub(crate) id: FaultId,
    pub(crate) fault: Fault,
    pub(crate) remaining: Option<u64>,
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
