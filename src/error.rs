//! The crate's one error type.
//!
//! Every failure is an [`Error`]. Callers branch on [`Error::is_retryable`] for transient
//! failures, and show the Display text to administrators: OAuth and permission errors say which
//! Salesforce setup step to fix. No variant's Display or Debug holds a private key, an assertion or
//! an access token.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// A [`RecordSink`](crate::event_log::RecordSink) failed: the output could not take,
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
    /// A [`CheckpointStore`](crate::event_log::CheckpointStore) other than the file store
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
    /// `ORDER BY EventDate ASC`, an aggregate). Never retryable: the same query is refused again.
    pub fn is_query_shape_refused(&self) -> bool {
        matches!(self, Error::Api(e) if e.error_code.as_deref() == Some("BIG_OBJECT_UNSUPPORTED_OPERATION"))
    }

    /// How long the server asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// An error of a custom [`RecordSink`](crate::event_log::RecordSink): `context` says what
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

    /// An error of a custom [`CheckpointStore`](crate::event_log::CheckpointStore): `context`
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

/// One or more configuration problems, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Every problem found, in field order.
    pub problems: Vec<ConfigProblem>,
}

/// A single configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, as the caller named it: a builder method (`token_url`) or an environment
    /// variable (`SF_TOKEN_URL`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(
                f,
                "invalid Salesforce JWT configuration: {}: {}",
                one.field, one.problem
            ),
            many => {
                write!(
                    f,
                    "invalid Salesforce JWT configuration ({} problems):",
                    many.len()
                )?;
                for p in many {
                    write!(f, "\n  - {}: {}", p.field, p.problem)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a private key could not be used. `origin` names where the key came from (a file path or
/// "the in-memory PEM").
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error(
        "cannot read the client key file {}: {source}. Check the path (SF_CLIENT_KEY_PATH) and \
         that this process may read it",
        path.display()
    )]
    Unreadable {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The key is empty.
    #[error("the client key from {origin} is empty: it must hold a PEM RSA private key")]
    Empty {
        /// Where the key came from.
        origin: String,
    },
    /// A public key was given where the private key belongs.
    #[error(
        "the client key from {origin} is a public key. Give the RSA private key whose \
         certificate was uploaded to the External Client App (a PEM starting with \
         `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)"
    )]
    PublicKey {
        /// Where the key came from.
        origin: String,
    },
    /// A certificate was given where the private key belongs.
    #[error(
        "the client key from {origin} is a certificate. The certificate is what you upload to the \
         External Client App; this setting needs the RSA private key it was made from"
    )]
    Certificate {
        /// Where the key came from.
        origin: String,
    },
    /// The key is encrypted with a passphrase.
    #[error(
        "the client key from {origin} is encrypted. Decrypt it once with \
         `openssl pkcs8 -in encrypted.pem -out key.pem` (PKCS#8) or \
         `openssl rsa -in encrypted.pem -out key.pem` (PKCS#1) and keep the result where only \
         this service can read it"
    )]
    Encrypted {
        /// Where the key came from.
        origin: String,
    },
    /// The key is not an RSA key.
    #[error(
        "the client key from {origin} is {kind}, not an RSA key. Salesforce's JWT bearer flow \
         only accepts RS256: create an RSA key (`openssl genrsa -out key.pem 2048`), upload a \
         certificate made from it to the External Client App, and use that key"
    )]
    NotRsa {
        /// Where the key came from.
        origin: String,
        /// What it is instead.
        kind: String,
    },
    /// The content is not a usable PEM private key.
    #[error(
        "the client key from {origin} is not a PEM RSA private key: {reason}. Expected a file \
         starting with `-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`"
    )]
    Malformed {
        /// Where the key came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// The kind of an OAuth error, each one a distinct fix for the administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorKind {
    /// `invalid_grant` / "user hasn't approved this consumer".
    UserNotApproved,
    /// `invalid_grant` / "invalid assertion".
    InvalidAssertion,
    /// `invalid_grant` / "audience is invalid".
    InvalidAudience,
    /// `invalid_grant` / "expired authorization code": `exp` was already past.
    ExpiredAssertion,
    /// `invalid_grant` / "authentication failure": Salesforce refused the login itself.
    AuthenticationFailure,
    /// `invalid_client_id` / "client identifier invalid".
    InvalidClientId,
    /// `invalid_app_access` / "user is not admin approved to access this app".
    AppAccessDenied,
    /// `inactive_user`.
    InactiveUser,
    /// `inactive_org`.
    InactiveOrg,
    /// Too many logins (`rate_limit_exceeded`, `LOGIN_RATE_EXCEEDED`).
    RateLimited,
    /// `unsupported_grant_type`: the request itself is wrong (a bug or a proxy rewriting it).
    UnsupportedGrantType,
    /// Any other code; the raw code and description are kept.
    Other,
}

/// Salesforce's answer to a failed token request: `{"error": ..., "error_description": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The classified kind.
    pub kind: OAuthErrorKind,
    /// The HTTP status (usually 400).
    pub status: u16,
    /// The raw `error` code.
    pub code: String,
    /// The raw `error_description`.
    pub description: String,
}

impl OAuthError {
    /// Classifies Salesforce's code and description. The descriptions are matched loosely because
    /// Salesforce's wording varies between releases.
    pub fn new(status: u16, code: impl Into<String>, description: impl Into<String>) -> Self {
        let code = code.into();
        let description = description.into();
        let c = code.to_ascii_lowercase();
        let d = description.to_ascii_lowercase();
        let kind = match c.as_str() {
            "invalid_grant" if d.contains("approved") => OAuthErrorKind::UserNotApproved,
            "invalid_grant" if d.contains("audience") => OAuthErrorKind::InvalidAudience,
            "invalid_grant" if d.contains("expired") => OAuthErrorKind::ExpiredAssertion,
            "invalid_grant" if d.contains("assertion") => OAuthErrorKind::InvalidAssertion,
            "invalid_grant" if d.contains("authentication failure") => {
                OAuthErrorKind::AuthenticationFailure
            }
            "invalid_client_id" | "invalid_client" if d.contains("client identifier") => {
                OAuthErrorKind::InvalidClientId
            }
            "invalid_client_id" => OAuthErrorKind::InvalidClientId,
            "invalid_app_access" => OAuthErrorKind::AppAccessDenied,
            "inactive_user" => OAuthErrorKind::InactiveUser,
            "inactive_org" => OAuthErrorKind::InactiveOrg,
            "rate_limit_exceeded" | "login_rate_exceeded" => OAuthErrorKind::RateLimited,
            "unsupported_grant_type" => OAuthErrorKind::UnsupportedGrantType,
            _ => OAuthErrorKind::Other,
        };
        OAuthError {
            kind,
            status,
            code,
            description,
        }
    }

    /// What the administrator should do, in Salesforce Setup's words.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            OAuthErrorKind::UserNotApproved => {
                "In Setup, open the External Client App's policies: set Permitted Users to \
                 \"Admin approved users are pre-authorized\" and assign the integration user's \
                 profile or a permission set to the app. Also check that the username \
                 (SF_USERNAME, the JWT `sub`) names that user exactly"
            }
            OAuthErrorKind::InvalidAssertion => {
                "The certificate uploaded to the External Client App does not match the private \
                 key (SF_CLIENT_KEY_PATH), or the assertion was altered on the way. Upload the \
                 certificate made from this key (`openssl req -new -x509 -key key.pem -out \
                 cert.crt -days 365`) under the app's OAuth settings (\"Use digital signatures\")"
            }
            OAuthErrorKind::InvalidAudience => {
                "The audience (SF_AUDIENCE_URL, the JWT `aud`) is wrong: use \
                 https://login.salesforce.com for production orgs, https://test.salesforce.com for \
                 sandboxes, or the Experience Cloud site URL for a site user. It is usually not \
                 the My Domain URL"
            }
            OAuthErrorKind::ExpiredAssertion => {
                "The assertion's `exp` was already past when Salesforce received it: this \
                 machine's clock is probably wrong. Synchronise it (NTP) and retry"
            }
            OAuthErrorKind::AuthenticationFailure => {
                "Salesforce refused the integration user's login itself: check the Login IP \
                 Ranges of its profile (this machine's address must be inside them, or the \
                 app's IP Relaxation must allow it), that the user is not locked or frozen, and \
                 that SF_USERNAME names it exactly; Setup > Login History shows the reason"
            }
            OAuthErrorKind::InvalidClientId => {
                "The client ID (SF_CLIENT_ID) is not the consumer key of an app in the org the \
                 token URL reaches. Copy the consumer key from the External Client App's OAuth \
                 settings, check production vs sandbox (SF_TOKEN_URL), and allow up to about 10 \
                 minutes after creating the app for it to propagate"
            }
            OAuthErrorKind::AppAccessDenied => {
                "The integration user is not admin-approved for the app: assign the user's \
                 profile or a permission set to the External Client App (Manage > Policies)"
            }
            OAuthErrorKind::InactiveUser => {
                "The integration user (SF_USERNAME) is inactive or frozen: reactivate it in \
                 Setup > Users"
            }
            OAuthErrorKind::InactiveOrg => {
                "The org is inactive, locked or expired: check its status with the Salesforce \
                 administrator"
            }
            OAuthErrorKind::RateLimited => {
                "Salesforce is limiting logins for this user (a few thousand an hour). Tokens \
                 are cached by this crate; look for other services logging in as the same user \
                 and wait before retrying"
            }
            OAuthErrorKind::UnsupportedGrantType => {
                "The token request was not understood as a JWT bearer request: check that \
                 SF_TOKEN_URL points at Salesforce's /services/oauth2/token and that no proxy \
                 rewrites the request"
            }
            OAuthErrorKind::Other => {
                "Salesforce returned an OAuth error this crate does not recognise; the code and \
                 description above are Salesforce's own words"
            }
        }
    }

    /// Whether the same request may succeed later without a setup change.
    pub fn is_retryable(&self) -> bool {
        // Login rate limits lift by themselves, but only after minutes: the caller's schedule
        // decides, so it is reported as retryable without an automatic in-call retry.
        matches!(self.kind, OAuthErrorKind::RateLimited)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Salesforce refused the JWT bearer token request (HTTP {}, {}: {}). {}",
            self.status,
            self.code,
            self.description,
            self.hint()
        )
    }
}

impl std::error::Error for OAuthError {}

/// A REST API error: status, Salesforce's `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Salesforce's `errorCode` (`MALFORMED_QUERY`, `INVALID_SESSION_ID`...), when the body was
    /// Salesforce JSON.
    pub error_code: Option<String>,
    /// Salesforce's message, or the start of a non-JSON body (an edge proxy's HTML page).
    pub message: String,
    /// What was being done ("querying EventLogFile", "downloading EventLogFile 0AT...").
    pub context: String,
    /// The `Retry-After` the response carried.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Whether the status is a transient one (429, 500, 502, 503, 504).
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
    }

    /// What the administrator should do, for the errors that mean a missing permission.
    pub fn hint(&self) -> Option<&'static str> {
        let code = self.error_code.as_deref()?;
        match code {
            "API_DISABLED_FOR_ORG" => Some(
                "The integration user cannot use the API: grant the \"API Enabled\" permission \
                 in its profile or a permission set (the org's edition must include API access)",
            ),
            "INVALID_TYPE" if self.message.contains("EventLogFile") => Some(
                "The integration user cannot see EventLogFile: grant the \"View Event Log Files\" \
                 permission in its profile or a permission set; the org needs Event Monitoring \
                 (Shield or the Event Monitoring add-on) for anything beyond the free Login and \
                 Logout daily files",
            ),
            "INVALID_FIELD" if self.message.contains("Interval") => Some(
                "EventLogFile.Interval needs API version 37.0 or later and hourly files need the \
                 Event Monitoring licence: raise SF_API_VERSION or query daily files only",
            ),
            "BIG_OBJECT_UNSUPPORTED_OPERATION" => Some(
                "The object is a big object: it accepts a filter on EventDate alone (or EventDate = \
                 with EventIdentifier), ORDER BY EventDate DESC and LIMIT, nothing else. If you \
                 named the object yourself, declare it with \
                 EventObject::custom(name, ObjectKind::BigObject)",
            ),
            "INVALID_SESSION_ID" => Some(
                "The session expired or was revoked and a fresh token was refused as well: check \
                 that the app's session policies allow this user, and the org's session timeout",
            ),
            "NOT_FOUND" if self.message.contains("version") => Some(
                "The API version (SF_API_VERSION) is not served by this org: choose a lower one",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: Salesforce answered HTTP {}",
            self.context, self.status
        )?;
        if let Some(code) = &self.error_code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(hint) = self.hint() {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// API usage from the `Sforce-Limit-Info: api-usage=18/5000` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Requests used in the rolling 24 hours.
    pub used: u64,
    /// The org's limit.
    pub limit: u64,
}

impl ApiUsage {
    /// Parses the header value; other parts after `;` (`per-app-api-usage=...`) are ignored.
    pub fn parse(header: &str) -> Option<ApiUsage> {
        header.split(';').find_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("api-usage") {
                return None;
            }
            let (used, limit) = value.trim().split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                limit: limit.trim().parse().ok()?,
            })
        })
    }
}
