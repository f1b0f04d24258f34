//! Where the cluster is, how to authenticate, and the bounds of the sink.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::error::EsError;

/// The largest request body the sink sends, uncompressed: 10 MiB. Elasticsearch's own limit
/// (`http.max_content_length`) is 100 MiB, but its guidance is a few MiB per `_bulk` request,
/// and the bound keeps the sink's memory small.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The default bound of a request body, uncompressed: 5 MiB.
pub const DEFAULT_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// The data stream namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How the sink authenticates. `Debug` never shows a key or a password.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header (a cluster without security).
    #[default]
    None,
    /// `Authorization: ApiKey <value>`, the value as Elasticsearch gives it (the base64
    /// `encoded` form of a created API key).
    ApiKey(String),
    /// `Authorization: Basic`, a user and password.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl Credentials {
    /// The credentials from environment variables, read by `lookup`: `api_key` (an API key)
    /// or `username` and `password` (both), each named by the caller (`ES_API_KEY`,
    /// `ES_USERNAME`, `ES_PASSWORD` by default in sf-ingest). Empty values count as unset.
    /// None set is [`Credentials::None`]; the errors name the variables.
    pub fn from_env(
        lookup: &dyn Fn(&str) -> Option<String>,
        api_key: &str,
        username: &str,
        password: &str,
    ) -> Result<Credentials, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get(api_key), get(username), get(password)) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(format!(
                "both {api_key} and {username}/{password} are set: keep one way to authenticate"
            )),
            (Some(key), None, None) => Ok(Credentials::ApiKey(key.trim().to_string())),
            (None, Some(username), Some(password)) => Ok(Credentials::Basic { username, password }),
            (None, Some(_), None) => Err(format!(
                "{username} is set but {password} is not: set both, or {api_key} instead"
            )),
            (None, None, Some(_)) => Err(format!(
                "{password} is set but {username} is not: set both, or {api_key} instead"
            )),
            (None, None, None) => Ok(Credentials::None),
        }
    }
}

/// How requests and items are retried: the wait before retry `n` (1-based) is
/// `initial * 2^(n-1)`, at most `max`, less up to half at random (so that collectors do not
/// retry in step); after `attempts` sends of the same items the commit fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How many times the same items are sent at most (the first send included).
    pub attempts: u32,
}

impl Default for RetryPolicy {
    /// 100 ms doubling up to 5 s, 10 sends: about 20 s of an unavailable cluster.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max);
        full.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// The sink's configuration.
#[derive(Debug, Clone)]
pub struct EsConfig {
    /// The cluster, `http(s)://HOST:PORT` (a path prefix is kept, for a proxy).
    pub url: Url,
    /// How to authenticate.
    pub credentials: Credentials,
    /// A PEM file of CA certificates trusted for `https` beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The data stream namespace, when the document has no `data_stream.namespace`.
    pub namespace: String,
    /// The bound of a request body, uncompressed (at most [`MAX_REQUEST_BYTES`]).
    pub max_batch_bytes: usize,
    /// Gzip request bodies (`Content-Encoding: gzip`); on by default.
    pub gzip: bool,
    /// Retries of requests and items.
    pub retry: RetryPolicy,
    /// Where documents refused for good go (one JSON line each: the document, its data stream,
    /// `_id`, status and Elasticsearch's error), instead of failing the commit.
    pub dead_letter: Option<PathBuf>,
    /// How long one request may take, answer included.
    pub request_timeout: Duration,
}

impl EsConfig {
    /// A configuration for the cluster at `url` with the defaults: no credentials, namespace
    /// `default`, 5 MiB requests, gzip, [`RetryPolicy::default`], no dead-letter file.
    pub fn new(url: &str) -> Result<EsConfig, EsError> {
        let parsed = Url::parse(url.trim()).map_err(|e| EsError::Config {
            field: "url".into(),
            problem: format!("not a URL ({e}): write it like https://HOST:9200"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(EsError::Config {
                field: "url".into(),
                problem: "must be http://HOST:PORT or https://HOST:PORT".into(),
            });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(EsError::Config {
                field: "url".into(),
                problem: "holds credentials: give them in the environment (ES_API_KEY, or \
                          ES_USERNAME and ES_PASSWORD) instead, so that they appear in no \
                          log or checkpoint"
                    .into(),
            });
        }
        Ok(EsConfig {
            url: parsed,
            credentials: Credentials::None,
            ca_file: None,
            namespace: DEFAULT_NAMESPACE.into(),
            max_batch_bytes: DEFAULT_BATCH_BYTES,
            gzip: true,
            retry: RetryPolicy::default(),
            dead_letter: None,
            request_timeout: Duration::from_secs(120),
        })
    }

    /// Sets the credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the namespace (checked by [`check`](Self::check)).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Checks the bounds and the namespace.
    pub fn check(&self) -> Result<(), EsError> {
        if !(1..=MAX_REQUEST_BYTES).contains(&self.max_batch_bytes) {
            return Err(EsError::Config {
                field: "max_batch_bytes".into(),
                problem: format!(
                    "{} is out of range: 1 to {MAX_REQUEST_BYTES} bytes",
                    self.max_batch_bytes
                ),
            });
        }
        if let Err(problem) = crate::route::check_part("namespace", &self.namespace) {
            return Err(EsError::Config {
                field: "namespace".into(),
                problem,
            });
        }
        if self.retry.attempts == 0 {
            return Err(EsError::Config {
                field: "retry.attempts".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The cluster's URL as checkpoints name it (never with credentials).
    pub fn output_name(&self) -> String {
        format!("Elasticsearch {}", self.url.as_str().trim_end_matches('/'))
    }
}
