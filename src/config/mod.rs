//! Validated settings: the six fields of a JWT bearer setup plus tuning.
//!
//! [`JwtBearerConfig::builder`] checks everything when it builds and reports every problem at
//! once, each with its field's name; [`JwtBearerConfig::from_env`] does the same for the `SF_*`
//! environment variables. The private key is read and parsed here, so a bad key fails at startup
//! rather than at the first token request.
//!
//! Here: the settings and the builder's fields. Loading (the `SF_*` environment variables, the
//! key file) is in `load`, the checks [`JwtBearerConfigBuilder::build`] makes in `validate`.

mod load;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::assertion::MAX_ASSERTION_LIFETIME;
use crate::error::ConfigProblem;
use crate::key::SigningKey;

pub use load::ENV_VARS;
pub(crate) use validate::check_transport;

/// The API version used when none is configured (Summer '25). Orgs are upgraded by Salesforce,
/// so every org serves it; raise it to read fields added later.
pub const DEFAULT_API_VERSION: &str = "64.0";

/// Bounds for retries of transient failures (connect errors, timeouts, 429, 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles with each further one.
    pub initial_backoff: Duration,
    /// The longest single backoff.
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first attempt, and no
    /// `Retry-After` longer than what remains is waited for.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// Everything [`JwtBearerClient`](crate::JwtBearerClient) needs, validated.
///
/// Debug shows the fields but not the key.
#[derive(Clone)]
pub struct JwtBearerConfig {
    pub(crate) audience: String,
    pub(crate) key: SigningKey,
    pub(crate) username: String,
    pub(crate) client_id: String,
    pub(crate) instance_url: Url,
    pub(crate) token_url: Url,
    pub(crate) api_version: String,
    pub(crate) assertion_lifetime: Duration,
    pub(crate) session_lifetime: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for JwtBearerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerConfig")
            .field("audience", &self.audience)
            .field("key", &self.key)
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field("instance_url", &self.instance_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("api_version", &self.api_version)
            .field("assertion_lifetime", &self.assertion_lifetime)
            .field("session_lifetime", &self.session_lifetime)
            .field("refresh_margin", &self.refresh_margin)
            .field("http_timeout", &self.http_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl JwtBearerConfig {
    /// Starts a builder.
    pub fn builder() -> JwtBearerConfigBuilder {
        JwtBearerConfigBuilder::default()
    }

    /// The JWT audience (`aud`), exactly as configured.
    pub fn audience(&self) -> &str {
        &self.audience
    }
    /// The integration user's username (`sub`).
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The consumer key (`iss`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The instance URL requests go to; the access token is only ever sent to its origin.
    pub fn instance_url(&self) -> &Url {
        &self.instance_url
    }
    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }
    /// The REST API version, like `64.0`.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }
    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
    /// How long each assertion is valid.
    pub fn assertion_lifetime(&self) -> Duration {
        self.assertion_lifetime
    }
    /// How long a token is assumed to live.
    pub fn session_lifetime(&self) -> Duration {
        self.session_lifetime
    }
    /// How long before the assumed expiry a new token is fetched.
    pub fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }
    /// The connect timeout and the longest wait for the next bytes of a response.
    pub fn http_timeout(&self) -> Duration {
        self.http_timeout
    }
    /// The retry bounds.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
    /// `/services/data/vNN.N`, the prefix of every REST path.
    pub fn data_path(&self) -> String {
        format!("/services/data/v{}", self.api_version)
    }
}

/// The names a configuration source gives the fields of a [`JwtBearerConfig`]: what its
/// problems ([`ConfigProblem::field`](crate::ConfigProblem::field)) call them. Set with
/// [`JwtBearerConfigBuilder::field_names`].
///
/// The private key comes from one of two fields, a file path or the PEM itself; a missing key
/// is reported as `PATH (or PEM)`, or as one name when both fields have the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldNames {
    /// The JWT audience URL.
    pub(crate) audience_url: &'static str,
    /// The private key as a file path.
    pub(crate) client_key_path: &'static str,
    /// The private key as PEM text.
    pub(crate) client_key_pem: &'static str,
    /// The integration user's username.
    pub(crate) username: &'static str,
    /// The consumer key.
    pub(crate) client_id: &'static str,
    /// The instance URL.
    pub(crate) instance_url: &'static str,
    /// The token endpoint.
    pub(crate) token_url: &'static str,
    /// The REST API version.
    pub(crate) api_version: &'static str,
}

impl FieldNames {
    /// The builder's method names (the key is `client_key` however it is given).
    pub(crate) const BUILDER: FieldNames = FieldNames {
        audience_url: "audience_url",
        client_key_path: "client_key",
        client_key_pem: "client_key",
        username: "username",
        client_id: "client_id",
        instance_url: "instance_url",
        token_url: "token_url",
        api_version: "api_version",
    };
    /// The environment variables of [`JwtBearerConfig::from_env`].
    pub(crate) const ENV: FieldNames = FieldNames {
        audience_url: "SF_AUDIENCE_URL",
        client_key_path: "SF_CLIENT_KEY_PATH",
        client_key_pem: "SF_CLIENT_KEY_PEM",
        username: "SF_USERNAME",
        client_id: "SF_CLIENT_ID",
        instance_url: "SF_INSTANCE_URL",
        token_url: "SF_TOKEN_URL",
        api_version: "SF_API_VERSION",
    };

    /// What a problem with the key is reported under, given where the key came from.
    fn key_field(&self, source: Option<&KeySource>) -> String {
        match source {
            Some(KeySource::Pem(_) | KeySource::PemUnavailable) => self.client_key_pem.to_string(),
            Some(_) => self.client_key_path.to_string(),
            None if self.client_key_path == self.client_key_pem => self.client_key_path.to_string(),
            None => format!("{} (or {})", self.client_key_path, self.client_key_pem),
        }
    }
}

enum KeySource {
    Path(PathBuf),
    Pem(String),
    Parsed(SigningKey),
    /// Two sources were given ([`JwtBearerConfigBuilder::client_key_from`]); that problem is
    /// already recorded, and the key must not also be reported as missing.
    Conflicting,
    /// The PEM field was given but its text could not be had; that problem is already
    /// recorded.
    PemUnavailable,
}

/// Builds a [`JwtBearerConfig`]; see [`JwtBearerConfig::builder`].
///
/// ```
/// use salesforce_jwt::JwtBearerConfig;
///
/// # let pem = std::fs::read_to_string("tests/fixtures/test_rsa_pkcs8.pem").unwrap();
/// let config = JwtBearerConfig::builder()
///     .audience_url("https://login.salesforce.com")
///     .client_key_pem(pem) // or .client_key_path("/etc/collector/key.pem")
///     .username("integration@example.com")
///     .client_id("3MVG9...")
///     .instance_url("https://acme.my.salesforce.com")
///     .token_url("https://acme.my.salesforce.com") // the path is added
///     .build()?;
/// assert_eq!(
///     config.token_url().as_str(),
///     "https://acme.my.salesforce.com/services/oauth2/token"
/// );
/// # Ok::<(), salesforce_jwt::Error>(())
/// ```
pub struct JwtBearerConfigBuilder {
    names: FieldNames,
    audience: Option<String>,
    key: Option<KeySource>,
    username: Option<String>,
    client_id: Option<String>,
    instance_url: Option<String>,
    token_url: Option<String>,
    api_version: Option<String>,
    assertion_lifetime: Duration,
    session_lifetime: Duration,
    refresh_margin: Duration,
    http_timeout: Duration,
    retry: RetryPolicy,
    extra_problems: Vec<ConfigProblem>,
}

impl Default for JwtBearerConfigBuilder {
    fn default() -> Self {
        JwtBearerConfigBuilder {
            names: FieldNames::BUILDER,
            audience: None,
            key: None,
            username: None,
            client_id: None,
            instance_url: None,
            token_url: None,
            api_version: None,
            assertion_lifetime: MAX_ASSERTION_LIFETIME,
            session_lifetime: Duration::from_secs(2 * 3600),
            refresh_margin: Duration::from_secs(300),
            http_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            extra_problems: Vec::new(),
        }
    }
}

impl fmt::Debug for JwtBearerConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerConfigBuilder")
            .field("audience", &self.audience.as_deref().map(redact_userinfo))
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field(
                "instance_url",
                &self.instance_url.as_deref().map(redact_userinfo),
            )
            .field("token_url", &self.token_url.as_deref().map(redact_userinfo))
            .field("key", &"** redacted **")
            .finish_non_exhaustive()
    }
}

impl JwtBearerConfigBuilder {
    /// Names the fields in problems (and in [`settings_from`](Self::settings_from)) as the
    /// caller's configuration source does: each pair is a setter's name (`audience_url`,
    /// `client_key_path`, `client_key_pem`, `username`, `client_id`, `instance_url`,
    /// `token_url`, `api_version`) and the caller's name for that field. Fields not named keep
    /// the setter's name (the key's is `client_key`, however it is given).
    ///
    /// A missing key is reported as `PATH (or PEM)` with the two key fields' names.
    ///
    /// ```
    /// use salesforce_jwt::JwtBearerConfig;
    ///
    /// // A configuration file whose key comes from a file or an environment variable.
    /// let error = JwtBearerConfig::builder()
    ///     .field_names(&[("client_key_path", "client_key_path"), ("client_key_pem", "client_key_env")])
    ///     .build()
    ///     .unwrap_err();
    /// assert!(error.to_string().contains("client_key_path (or client_key_env): is required"));
    /// ```
    pub fn field_names(mut self, names: &[(&str, &'static str)]) -> Self {
        for &(setter, name) in names {
            let slot = match setter {
                "audience_url" => &mut self.names.audience_url,
                "client_key_path" => &mut self.names.client_key_path,
                "client_key_pem" => &mut self.names.client_key_pem,
                "username" => &mut self.names.username,
                "client_id" => &mut self.names.client_id,
                "instance_url" => &mut self.names.instance_url,
                "token_url" => &mut self.names.token_url,
                "api_version" => &mut self.names.api_version,
                other => {
                    self.extra_problems.push(ConfigProblem {
                        field: "field_names".into(),
                        problem: format!(
                            "{other:?} is not a field; name one of audience_url, \
                             client_key_path, client_key_pem, username, client_id, \
                             instance_url, token_url, api_version"
                        ),
                    });
                    continue;
                }
            };
            *slot = name;
        }
        self
    }

    /// [`field_names`](Self::field_names) all at once.
    pub(crate) fn names(mut self, names: FieldNames) -> Self {
        self.names = names;
        self
    }

    /// Sets every Salesforce field but the key from `lookup`, which returns a field's value by
    /// its name (see [`field_names`](Self::field_names)). A blank value counts as unset.
    pub fn settings_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let n = self.names;
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        self.audience = get(n.audience_url);
        self.username = get(n.username);
        self.client_id = get(n.client_id);
        self.instance_url = get(n.instance_url);
        self.token_url = get(n.token_url);
        self.api_version = get(n.api_version);
        self
    }

    /// The key from whichever of its two fields is given: `path`, a PEM file, or `pem`, the
    /// PEM text. Exactly one must be: both are a problem under the path field's name, neither
    /// a missing key under `PATH (or PEM)`. A `pem` of `Err(problem)` (the field is given but
    /// its text cannot be had, such as an unset environment variable it names) reports
    /// `problem` under the PEM field's name, and the key not also as missing. A blank PEM
    /// counts as not given.
    pub fn client_key_from(
        mut self,
        path: Option<PathBuf>,
        pem: Option<Result<String, String>>,
    ) -> Self {
        let pem = pem.filter(|p| !matches!(p, Ok(p) if p.trim().is_empty()));
        self.key = match (path, pem) {
            (Some(path), None) => Some(KeySource::Path(path)),
            (None, Some(Ok(pem))) => Some(KeySource::Pem(pem)),
            (None, Some(Err(problem))) => {
                self.extra_problems.push(ConfigProblem {
                    field: self.names.client_key_pem.into(),
                    problem,
                });
                Some(KeySource::PemUnavailable)
            }
            (None, None) => None,
            (Some(_), Some(_)) => {
                self.extra_problems.push(ConfigProblem {
                    field: self.names.client_key_path.into(),
                    problem: format!(
                        "both {} and {} are set; set only one",
                        self.names.client_key_path, self.names.client_key_pem
                    ),
                });
                Some(KeySource::Conflicting)
            }
        };
        self
    }

    /// The JWT audience URL (`aud`): `https://login.salesforce.com` (production),
    /// `https://test.salesforce.com` (sandbox) or an Experience Cloud site URL. Used exactly as
    /// given, never derived from the other URLs. Must be `https` (plain `http` only for loopback
    /// hosts) and carry no credentials.
    pub fn audience_url(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The path of the PEM private key file (PKCS#1 or PKCS#8).
    pub fn client_key_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = Some(KeySource::Path(path.into()));
        self
    }

    /// The PEM private key itself (PKCS#1 or PKCS#8).
    pub fn client_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.key = Some(KeySource::Pem(pem.into()));
        self
    }

    /// An already parsed key.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(KeySource::Parsed(key));
        self
    }

    /// The integration user's username (`sub`).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The External Client App's consumer key (`iss`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The org's instance URL, like `https://acme.my.salesforce.com`: an origin, no path.
    pub fn instance_url(mut self, url: impl Into<String>) -> Self {
        self.instance_url = Some(url.into());
        self
    }

    /// Where assertions are posted. Either the full endpoint
    /// (`https://login.salesforce.com/services/oauth2/token`) or only its host
    /// (`https://login.salesforce.com`): a URL with no path gets `/services/oauth2/token`
    /// appended, a URL with a path is used exactly as given.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// The REST API version, `64.0` or `64` (a leading `v` is accepted), from 37.0 (where
    /// `EventLogFile.Interval` appeared) to 99.0. Whether the org serves it is checked by
    /// [`JwtBearerClient::check_api_version`](crate::JwtBearerClient::check_api_version).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// How long each assertion is valid: at most 180 s (Salesforce's limit), the default.
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.assertion_lifetime = lifetime;
        self
    }

    /// How long a token is assumed to live. Salesforce does not say; it is the org's (or app's)
    /// session timeout, 15 minutes to 24 hours, 2 hours by default (this default).
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// How long before the assumed expiry a new token is fetched in the background (default
    /// 5 minutes). Must be shorter than the session lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The connect timeout, the whole-request timeout of token requests, and the longest wait
    /// for more bytes of an API response (default 60 s). Large downloads are not limited in
    /// total, only in how long they may stall.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Retry bounds for transient failures.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
}

/// `raw` with any `user:password@` replaced by `***@`, for messages: a URL given with
/// credentials must not carry them into logs. Works on text that does not parse as a URL too.
pub(crate) fn redact_userinfo(raw: &str) -> String {
    let authority_start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &raw[..authority_start],
            &raw[authority_start + at..]
        ),
        None => raw.to_string(),
    }
}
