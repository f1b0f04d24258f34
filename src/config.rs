//! Validated settings: the six fields of a JWT bearer setup plus tuning.
//!
//! [`JwtBearerConfig::builder`] checks everything when it builds and reports every problem at
//! once, each with its field's name; [`JwtBearerConfig::from_env`] does the same for the `SF_*`
//! environment variables. The private key is read and parsed here, so a bad key fails at startup
//! rather than at the first token request.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::{Host, Url};

use crate::assertion::MAX_ASSERTION_LIFETIME;
use crate::error::{ConfigError, ConfigProblem, Error, KeyError};
use crate::key::SigningKey;

/// The API version used when none is configured (Summer '25). Orgs are upgraded by Salesforce,
/// so every org serves it; raise it to read fields added later.
pub const DEFAULT_API_VERSION: &str = "64.0";

/// `EventLogFile.Interval` (and so hourly files) exists from this version on.
const MIN_API_VERSION: u32 = 37;

/// The highest version accepted when building. Salesforce adds three a year (66.0 is Spring
/// '26), so 99.0 is a decade away; anything above is a typo. What an org really serves is
/// checked by [`JwtBearerClient::check_api_version`](crate::JwtBearerClient::check_api_version).
const MAX_API_VERSION: u32 = 99;

/// The path Salesforce serves the OAuth token endpoint on.
const TOKEN_PATH: &str = "/services/oauth2/token";

/// The names of the environment variables [`JwtBearerConfig::from_env`] reads.
pub const ENV_VARS: [&str; 8] = [
    "SF_AUDIENCE_URL",
    "SF_CLIENT_KEY_PATH",
    "SF_CLIENT_KEY_PEM",
    "SF_USERNAME",
    "SF_CLIENT_ID",
    "SF_INSTANCE_URL",
    "SF_TOKEN_URL",
    "SF_API_VERSION",
];

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

    /// Reads the configuration from the environment:
    ///
    /// | variable | field |
    /// |---|---|
    /// | `SF_AUDIENCE_URL` | JWT audience URL |
    /// | `SF_CLIENT_KEY_PATH` or `SF_CLIENT_KEY_PEM` | the private key, as a file path or the PEM itself |
    /// | `SF_USERNAME` | the integration user's username |
    /// | `SF_CLIENT_ID` | the app's consumer key |
    /// | `SF_INSTANCE_URL` | the org's instance (My Domain) URL |
    /// | `SF_TOKEN_URL` | the token endpoint, or its host |
    /// | `SF_API_VERSION` | optional, default [`DEFAULT_API_VERSION`] |
    ///
    /// Every missing or invalid variable is reported in the one error.
    pub fn from_env() -> Result<JwtBearerConfig, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests, or a
    /// secret store with the same names).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<JwtBearerConfig, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = JwtBearerConfig::builder().field_names(FieldNames::ENV);
        b.audience = get("SF_AUDIENCE_URL");
        b.username = get("SF_USERNAME");
        b.client_id = get("SF_CLIENT_ID");
        b.instance_url = get("SF_INSTANCE_URL");
        b.token_url = get("SF_TOKEN_URL");
        b.api_version = get("SF_API_VERSION");
        match (get("SF_CLIENT_KEY_PATH"), get("SF_CLIENT_KEY_PEM")) {
            (Some(path), None) => b.key = Some(KeySource::Path(path.into())),
            (None, Some(pem)) => {
                b.names.key = "SF_CLIENT_KEY_PEM";
                b.key = Some(KeySource::Pem(pem));
            }
            (None, None) => b.names.key = "SF_CLIENT_KEY_PATH (or SF_CLIENT_KEY_PEM)",
            (Some(_), Some(_)) => {
                b.key = Some(KeySource::Conflicting);
                b.extra_problems.push(ConfigProblem {
                    field: "SF_CLIENT_KEY_PATH".into(),
                    problem: "both SF_CLIENT_KEY_PATH and SF_CLIENT_KEY_PEM are set; set only one"
                        .into(),
                });
            }
        }
        b.build()
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

#[derive(Clone, Copy)]
struct FieldNames {
    audience: &'static str,
    key: &'static str,
    username: &'static str,
    client_id: &'static str,
    instance_url: &'static str,
    token_url: &'static str,
    api_version: &'static str,
}

impl FieldNames {
    const BUILDER: FieldNames = FieldNames {
        audience: "audience_url",
        key: "client_key",
        username: "username",
        client_id: "client_id",
        instance_url: "instance_url",
        token_url: "token_url",
        api_version: "api_version",
    };
    const ENV: FieldNames = FieldNames {
        audience: "SF_AUDIENCE_URL",
        key: "SF_CLIENT_KEY_PATH",
        username: "SF_USERNAME",
        client_id: "SF_CLIENT_ID",
        instance_url: "SF_INSTANCE_URL",
        token_url: "SF_TOKEN_URL",
        api_version: "SF_API_VERSION",
    };
}

enum KeySource {
    Path(PathBuf),
    Pem(String),
    Parsed(SigningKey),
    /// Two sources were given (`from_lookup`); that problem is already recorded, and the key
    /// must not also be reported as missing.
    Conflicting,
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
    fn field_names(mut self, names: FieldNames) -> Self {
        self.names = names;
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

    /// Validates everything and reads the key. All problems are reported together.
    pub fn build(self) -> Result<JwtBearerConfig, Error> {
        let n = self.names;
        let mut problems: Vec<ConfigProblem> = Vec::new();
        let mut problem = |field: &str, text: String| {
            problems.push(ConfigProblem {
                field: field.to_string(),
                problem: text,
            })
        };

        let audience = required(
            self.audience.as_deref(),
            n.audience,
            "https://login.salesforce.com for production, https://test.salesforce.com for sandboxes",
            parse_audience,
            &mut problem,
        );
        let username = required(
            self.username.as_deref(),
            n.username,
            "the username of the pre-authorized integration user",
            |v| Ok(v.to_string()),
            &mut problem,
        );
        let client_id = required(
            self.client_id.as_deref(),
            n.client_id,
            "the consumer key of the External Client App",
            |v| Ok(v.to_string()),
            &mut problem,
        );
        let instance_url = required(
            self.instance_url.as_deref(),
            n.instance_url,
            "the org's My Domain URL, like https://acme.my.salesforce.com",
            parse_instance_url,
            &mut problem,
        );
        let token_url = required(
            self.token_url.as_deref(),
            n.token_url,
            "https://login.salesforce.com/services/oauth2/token, or the My Domain or sandbox host",
            parse_token_url,
            &mut problem,
        );
        let api_version = match parse_api_version(self.api_version.as_deref()) {
            Ok(v) => Some(v),
            Err(e) => {
                problem(n.api_version, e);
                None
            }
        };
        if self.assertion_lifetime.is_zero() || self.assertion_lifetime > MAX_ASSERTION_LIFETIME {
            problem(
                "assertion_lifetime",
                format!(
                    "{:?} is out of range: Salesforce accepts assertions valid for at most 3 minutes (1 to 180 s)",
                    self.assertion_lifetime
                ),
            );
        }
        if self.session_lifetime < Duration::from_secs(60) {
            problem(
                "session_lifetime",
                "must be at least 1 minute (Salesforce's shortest session timeout is 15 minutes)"
                    .into(),
            );
        }
        if self.refresh_margin >= self.session_lifetime {
            problem(
                "refresh_margin",
                format!(
                    "{:?} must be shorter than the session lifetime {:?}",
                    self.refresh_margin, self.session_lifetime
                ),
            );
        }
        if self.http_timeout.is_zero() {
            problem("http_timeout", "must be more than zero".into());
        }
        if self.retry.max_attempts == 0 {
            problem("retry_policy", "max_attempts must be at least 1".into());
        }
        let key = match self.key {
            Some(KeySource::Parsed(k)) => Some(k),
            Some(KeySource::Path(p)) => {
                key_or_problem(SigningKey::from_pem_file(&p), n.key, &mut problem)
            }
            Some(KeySource::Pem(pem)) => {
                key_or_problem(SigningKey::from_pem(pem), n.key, &mut problem)
            }
            Some(KeySource::Conflicting) => None,
            None => {
                problem(n.key, "is required: the RSA private key whose certificate was uploaded to the External Client App".into());
                None
            }
        };
        problems.extend(self.extra_problems);
        match (
            audience,
            key,
            username,
            client_id,
            instance_url,
            token_url,
            api_version,
        ) {
            (
                Some(audience),
                Some(key),
                Some(username),
                Some(client_id),
                Some(instance_url),
                Some(token_url),
                Some(api_version),
            ) if problems.is_empty() => Ok(JwtBearerConfig {
                audience,
                key,
                username,
                client_id,
                instance_url,
                token_url,
                api_version,
                assertion_lifetime: self.assertion_lifetime,
                session_lifetime: self.session_lifetime,
                refresh_margin: self.refresh_margin,
                http_timeout: self.http_timeout,
                retry: self.retry,
            }),
            _ => Err(ConfigError { problems }.into()),
        }
    }
}

/// A required field: blank or missing is reported as such, anything else as `parse` judges it.
fn required<T>(
    value: Option<&str>,
    field: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
    problem: &mut impl FnMut(&str, String),
) -> Option<T> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => {
            problem(field, format!("is required: {what}"));
            None
        }
        Some(raw) => parse(raw).map_err(|e| problem(field, e)).ok(),
    }
}

fn parse_audience(raw: &str) -> Result<String, String> {
    // The audience is compared as a string by Salesforce, so it is kept exactly as given; it
    // must still be an https URL (loopback excepted, for tests), without credentials.
    parse_http_url(raw).map(|_| raw.to_string()).map_err(|e| {
        format!("{e}; use https://login.salesforce.com, https://test.salesforce.com or a site URL")
    })
}

fn key_or_problem(
    key: Result<SigningKey, KeyError>,
    field: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<SigningKey> {
    match key {
        Ok(k) => Some(k),
        Err(e) => {
            problem(field, e.to_string());
            None
        }
    }
}

/// The access token travels in clear over plain HTTP, so only `https` is accepted, except for
/// loopback hosts, which exist for tests and local proxies.
pub(crate) fn check_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "plain http is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost); use https://{}",
            url.host_str().unwrap_or("...")
        )),
        other => Err(format!("the scheme {other:?} is not supported; use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
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

fn parse_http_url(raw: &str) -> Result<Url, String> {
    let shown = redact_userinfo(raw);
    let url = Url::parse(raw).map_err(|e| format!("{shown:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{shown:?} must not carry credentials (the `user:password@` part): the JWT bearer \
             flow needs none, remove them"
        ));
    }
    if url.host().is_none() {
        return Err(format!("{shown:?} has no host"));
    }
    check_transport(&url).map_err(|e| format!("{shown:?}: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{shown:?} must not have a query or fragment"));
    }
    Ok(url)
}

fn parse_instance_url(raw: &str) -> Result<Url, String> {
    let mut url = parse_http_url(raw)?;
    if url.path() != "/" {
        return Err(format!(
            "{:?} has a path; give only the origin, like https://acme.my.salesforce.com",
            redact_userinfo(raw)
        ));
    }
    url.set_path("");
    Ok(url)
}

fn parse_token_url(raw: &str) -> Result<Url, String> {
    let mut url = parse_http_url(raw)?;
    if url.path() == "/" {
        url.set_path(TOKEN_PATH);
    }
    Ok(url)
}

fn parse_api_version(raw: Option<&str>) -> Result<String, String> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(DEFAULT_API_VERSION.to_string());
    };
    let digits = raw.strip_prefix(['v', 'V']).unwrap_or(raw);
    // `NN` or `NN.0`: Salesforce's versions are whole numbers written with one decimal.
    let (major, minor) = digits.split_once('.').unwrap_or((digits, "0"));
    let well_formed = !major.is_empty()
        && major.len() <= 3
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor == "0";
    let not_a_version = || {
        format!(
            "{raw:?} is not usable: a whole version from {MIN_API_VERSION}.0 (where \
             EventLogFile.Interval appeared) to {MAX_API_VERSION}.0, like {DEFAULT_API_VERSION}"
        )
    };
    if !well_formed {
        return Err(not_a_version());
    }
    let value: u32 = major.parse().map_err(|_| not_a_version())?;
    if !(MIN_API_VERSION..=MAX_API_VERSION).contains(&value) {
        return Err(not_a_version());
    }
    Ok(format!("{value}.0"))
}
