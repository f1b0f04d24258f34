//! The crate's one error type.
//!
//! Every failure is an [`Error`]. Callers branch on [`Error::is_retryable`] for transient
//! failures, and show the Display text to administrators: OAuth and permission errors say which
//! Salesforce setup step to fix. No variant's Display or Debug holds a private key, an assertion or
//! an access token.
//!
//! Here: [`Error`] and the transport failures. Configuration and key errors are in `config`,
//! OAuth errors and their hints in `oauth`, REST API errors, their hints and API usage in `api`.

mod api;
mod config;
mod oauth;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use api::{ApiError, ApiUsage};
pub use config::{ConfigError, ConfigProblem, KeyError};
pub use oauth::{OAuthError, OAuthErrorKind};

/// Anything that can go wrong in this crate.
///
/// The type is `Clone` so that one token request's failure can be handed to every task that
/// waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or invalid; every problem is listed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The private key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Salesforce refused the JWT bearer token request.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The REST API answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The org's rolling 24-hour API request limit is used up (403 `REQUEST_LIMIT_EXCEEDED`).
    #[error(
        "Salesforce API request limit exceeded ({message}){}. The limit is a rolling 24-hour \
         org-wide total: wait for usage to fall, or ask Salesforce for a higher limit",
        usage.map(|u| format!("; usage {}/{}", u.used, u.limit)).unwrap_or_default()
    )]
    RequestLimitExceeded {
        /// Salesforce's message.
        message: String,
        /// The last usage reported in `Sforce-Limit-Info`, when the response carried one.
        usage: Option<ApiUsage>,
    },
    /// The org has too many long-running requests in flight (403 `REQUEST_LIMIT_EXCEEDED` with
    /// a `ConcurrentPerOrgLongTxn` message, or with API usage below the daily limit). Transient:
    /// retried with backoff within the call, and retryable by the caller.
    #[error(
        "Salesforce refused the request: too many concurrent long-running requests in the org \
         ({message}){}. This clears as those requests finish: it is retried with backoff; if it \
         persists, look for other integrations running long requests (over 20 s) in the org",
        usage.map(|u| format!("; daily API usage {}/{}", u.used, u.limit)).unwrap_or_default()
    )]
    ConcurrentRequestLimit {
        /// Salesforce's message.
        message: String,
        /// The usage reported in `Sforce-Limit-Info`, when the response carried one.
        usage: Option<ApiUsage>,
    },
    /// No request was sent: the org's API usage, as the last `Sforce-Limit-Info` reported it, is
    /// at or above the client's [API budget](crate::JwtBearerClientBuilder::api_budget). Not
    /// retryable within a pass: usage only falls as the rolling 24 hours move on, and only a
    /// response says so (see [`JwtBearerClient::probe_api_usage`](crate::JwtBearerClient::probe_api_usage)).
    #[error("API usage {usage} is at or above the budget of {budget}%")]
    ApiBudgetReached {
        /// The usage last reported.
        usage: ApiUsage,
        /// The budget, in percent of the org's limit.
        budget: u8,
    },
    /// The instance refused a freshly issued access token on its first use (HTTP 401 to the
    /// token fetched after a first 401): the tokens are issued for another org or instance, or
    /// their sessions are revoked at once. Fetching new tokens would only be refused the same
    /// way, so none is fetched for a backoff period, during which this error is returned at
    /// once. Not retryable: the setup has to change.
    #[error(
        "{context}: the instance {instance} refused a freshly issued access token (HTTP 401{}). \
         Check that the instance URL (SF_INSTANCE_URL) is the My Domain URL of the org the \
         token URL (SF_TOKEN_URL) and username log in to{}, and that no session policy (IP \
         restrictions, high-assurance sessions) or administrator revokes the app's sessions",
        if message.is_empty() { String::new() } else { format!(": {message}") },
        token_instance.as_ref().map(|t| format!(" (the token response named {t})")).unwrap_or_default()
    )]
    SessionRefused {
        /// What was being done.
        context: String,
        /// The configured instance URL.
        instance: String,
        /// The `instance_url` the token response named, when it differs from `instance`.
        token_instance: Option<String>,
        /// Salesforce's message.
        message: String,
    },
    /// The request could not be sent or its response could not be read (connect error, timeout,
    /// connection reset mid-body, a TLS or DNS failure). The Display shows the whole cause chain.
    #[error("{context}: {}", transport_text(source))]
    Transport {
        /// What was being done.
        context: String,
        /// The underlying HTTP client error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// Salesforce answered with something this crate cannot interpret.
    #[error("unexpected response from Salesforce: {0}")]
    UnexpectedResponse(String),
    /// A URL would have carried the access token away from the org's instance.
    #[error(
        "refused to send the access token to {url}: it is not on the instance {instance}. \
         Salesforce only ever points to paths on the instance, so this URL is not trusted"
    )]
    ForeignUrl {
        /// The refused URL.
        url: String,
        /// The configured instance URL.
        instance: String,
    },
    /// A log file's body ended before `LogFileLength` bytes arrived.
    #[error(
        "EventLogFile {id} was cut off: {received} of {expected} bytes arrived \
         (retryable: download the file again)"
    )]
    TruncatedLogFile {
        /// The EventLogFile Id.
        id: String,
        /// Bytes received (after decompression).
        received: u64,
        /// `LogFileLength`.
        expected: u64,
    },
    /// A log file's download ended abnormally inside this process (its task panicked or was
    /// aborted) before the body was complete. The rows received are not a whole file.
    #[error(
        "the download of EventLogFile {id} ended abnormally before the whole file arrived \
         (retryable: download the file again)"
    )]
    DownloadAborted {
        /// The EventLogFile Id.
        id: String,
    },
    /// A log file's CSV could not be parsed.
    #[error("EventLogFile {id}, line {line}: {message}")]
    Csv {
        /// The EventLogFile Id.
        id: String,
        /// The 1-based line where the bad record starts.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A collector checkpoint could not be read or written.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// Where the checkpoint lives.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The checkpoint was written for another Salesforce org than the one the credentials
    /// reach (see [`Checkpoint::org_id`](crate::collect::Checkpoint::org_id)): its positions
    /// mean nothing in this org, and going on would skip or repeat its rows. Never retryable.
    #[error(
        "the checkpoint belongs to Salesforce org {checkpoint_org}, but the credentials reach org \
         {org}: its positions mean nothing there, so nothing was collected. Point the checkpoint \
         and the output at this org's own checkpoint and output (new ones start from `since`; \
         with a PostgreSQL checkpoint store, give the org its own name), or use the \
         credentials of org {checkpoint_org}"
    )]
    CheckpointOrg {
        /// The org id the checkpoint records.
        checkpoint_org: String,
        /// The org id of the token response.
        org: String,
    },
    /// A [`Sink`](crate::collect::Sink) failed: the output could not take,
    /// keep or take back rows, or its position does not match the checkpoint's. Custom sinks
    /// return their own errors in it with [`Error::sink`].
    #[error("{context}: {source}")]
    Sink {
        /// What was being done, and to which output.
        context: String,
        /// The sink's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
        /// Whether trying again may succeed (a lost connection to a database), as the sink
        /// judged; [`Error::is_retryable`] reports it.
        retryable: bool,
    },
    /// A [`CheckpointStore`](crate::collect::CheckpointStore) other than the file store
    /// failed. Custom stores return their own errors in it with [`Error::checkpoint_store`].
    #[error("{context}: {source}")]
    CheckpointStore {
        /// What was being done, and to which store.
        context: String,
        /// The store's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
        /// Whether trying again may succeed, as the store judged; [`Error::is_retryable`]
        /// reports it.
        retryable: bool,
    },
    /// A local I/O operation failed (writing output, reading a file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A value given to the crate is invalid (a SOQL option, a query parameter).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Something failed inside this process, not at Salesforce (a signing failure, a client
    /// dropped mid-request).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether trying the same operation again later may succeed: connection errors (a host that
    /// does not resolve included, not TLS failures), timeouts, HTTP 429 and 500/502/503/504, too
    /// many concurrent long requests, and truncated downloads. Configuration, key, OAuth grant and
    /// permission errors are not retryable: an administrator has to change something first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { source, .. } => {
                // A builder or URL error is a bug in the request, not a network condition; a
                // TLS failure (a certificate, a server that does not speak TLS) needs a setup
                // change.
                !source.is_builder() && transport_failure(source) != TransportFailure::Tls
            }
            Error::ConcurrentRequestLimit { .. } => true,
            Error::Api(e) => e.is_retryable(),
            Error::OAuth(e) => e.is_retryable(),
            Error::TruncatedLogFile { .. } | Error::DownloadAborted { .. } => true,
            Error::Sink { retryable, .. } | Error::CheckpointStore { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the crate itself may repeat the operation after a short backoff. A login rate
    /// limit is retryable for the caller's schedule, but repeating the token request within the
    /// call (seconds apart) would only spend more of the hourly login allowance.
    pub(crate) fn retry_in_call(&self) -> bool {
        // Nor does a name that does not resolve come back within seconds: that is a wrong host
        // or a resolver outage, for the caller's schedule.
        self.is_retryable()
            && match self {
                Error::OAuth(_) => false,
                Error::Transport { source, .. } => {
                    transport_failure(source) == TransportFailure::Other
                }
                _ => true,
            }
    }

    /// Whether Salesforce refused the shape of a query on a big object (400
    /// `BIG_OBJECT_UNSUPPORTED_OPERATION`: a filter on another field than `EventDate`, `!=`,
    /// `ORDER BY EventDate ASC`, an aggregate) or answered a query on an Event Log Object with
    /// any 400 (their refusals are not documented beyond "an error"). Never retryable: the
    /// same query is refused again.
    pub fn is_query_shape_refused(&self) -> bool {
        matches!(self, Error::Api(e) if e.error_code.as_deref() == Some("BIG_OBJECT_UNSUPPORTED_OPERATION")
            || (e.status == 400 && e.is_event_log_object_query()))
    }

    /// Whether this is [`Error::ApiBudgetReached`]: the request was not sent because the org's
    /// API usage is at or above the client's budget. Collectors end their pass cleanly on it.
    pub fn is_api_budget_reached(&self) -> bool {
        matches!(self, Error::ApiBudgetReached { .. })
    }

    /// How long the server asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// An error of a custom [`Sink`](crate::collect::Sink): `context` says what
    /// was being done and to which output, `source` is the sink's own error, `retryable`
    /// whether the collector may roll the file back and try it again.
    pub fn sink(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retryable: bool,
    ) -> Self {
        Error::Sink {
            context: context.into(),
            source: Arc::from(source.into()),
            retryable,
        }
    }

    /// An error of a custom [`CheckpointStore`](crate::collect::CheckpointStore): `context`
    /// says what was being done and to which store, `source` is the store's own error,
    /// `retryable` whether trying again later may succeed.
    pub fn checkpoint_store(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retryable: bool,
    ) -> Self {
        Error::CheckpointStore {
            context: context.into(),
            source: Arc::from(source.into()),
            retryable,
        }
    }

    pub(crate) fn transport(context: impl Into<String>, source: reqwest::Error) -> Self {
        Error::Transport {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// What kind of transport failure a `reqwest::Error` is, from its cause chain (reqwest does not
/// classify TLS or DNS failures itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportFailure {
    /// The handshake failed: a certificate refused, a server that does not speak TLS.
    Tls,
    /// The host name did not resolve.
    Dns,
    /// Anything else (refused or reset connections, timeouts).
    Other,
}

fn causes(error: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let first: &(dyn std::error::Error + 'static) = error;
    std::iter::successors(Some(first), |e| e.source())
}

pub(crate) fn transport_failure(error: &reqwest::Error) -> TransportFailure {
    if !error.is_connect() {
        return TransportFailure::Other;
    }
    for cause in causes(error) {
        let text = cause.to_string().to_ascii_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return TransportFailure::Dns;
        }
        // rustls reports handshake failures as `InvalidData` I/O errors ("invalid peer
        // certificate: UnknownIssuer", "received corrupt message", "received fatal alert").
        let invalid_data = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if invalid_data
            || [
                "certificate",
                "tls",
                "handshake",
                "corrupt message",
                "fatal alert",
            ]
            .iter()
            .any(|word| text.contains(word))
        {
            return TransportFailure::Tls;
        }
    }
    TransportFailure::Other
}

/// The error and every cause, `a: b: c` (reqwest's own Display stops at "error sending request"),
/// with a hint for TLS and DNS failures.
fn transport_text(error: &reqwest::Error) -> String {
    let mut text = String::new();
    for cause in causes(error) {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    match transport_failure(error) {
        TransportFailure::Tls => text.push_str(
            ". The TLS handshake failed: check that the URL's host and port serve https with a \
             certificate the system trusts (a proxy that intercepts TLS needs its root added to \
             the HTTP client); retrying will not help",
        ),
        TransportFailure::Dns => text.push_str(
            ". The host name does not resolve: check the URL (SF_INSTANCE_URL, SF_TOKEN_URL) and \
             this machine's DNS",
        ),
        TransportFailure::Other => {}
    }
    text
}
