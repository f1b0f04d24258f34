//! [`JwtBearerClient`]: tokens on demand and authorized requests to the instance.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::FutureExt as _;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::assertion::{self, Claims};
use crate::clock::{Clock, SystemClock};
use crate::config::{JwtBearerConfig, redact_userinfo};
use crate::error::{ApiError, ApiUsage, ConfigError, ConfigProblem, Error, OAuthError};
use crate::retry::{Failure, backoff, parse_retry_after, with_retries};
use crate::token::{AccessToken, TokenResponse};
use crate::token_cache::{Lookup, TokenCache};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Error bodies are read up to this size: enough for any Salesforce error, bounded against an
/// edge proxy's page.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A Salesforce client authenticated with the OAuth 2.0 JWT bearer flow.
///
/// Cheap to clone; clones share the token cache. [`access_token`](Self::access_token) returns
/// the cached token while it is fresh, fetches a new one in the background shortly before the
/// assumed session lifetime ends, and sends exactly one token request however many tasks ask at
/// the same moment. [`send`](Self::send) makes requests to the instance and re-authenticates
/// once when Salesforce answers 401.
///
/// ```no_run
/// # async fn run() -> Result<(), salesforce_jwt::Error> {
/// use salesforce_jwt::{JwtBearerClient, JwtBearerConfig};
///
/// let client = JwtBearerClient::new(JwtBearerConfig::from_env()?)?;
/// let token = client.access_token().await?;
/// println!("org {:?}, user {:?}", token.org_id(), token.user_id());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtBearerClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwtBearerConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: TokenCache,
    usage: Mutex<Option<ApiUsage>>,
}

impl fmt::Debug for JwtBearerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerClient")
            .field("config", &self.inner.config)
            .field("token", &self.inner.cache.peek())
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtBearerClient`] with a custom HTTP client or clock.
pub struct JwtBearerClientBuilder {
    config: JwtBearerConfig,
    http: Option<reqwest::ClientBuilder>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for JwtBearerClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerClientBuilder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl JwtBearerClientBuilder {
    /// Builds the HTTP client from `builder` (proxies, custom TLS roots, a user agent). The
    /// crate then sets what its guarantees rest on, overriding the builder: no redirects (the
    /// assertion must never be re-posted elsewhere), and the configured connect and read
    /// timeouts. A ready-made `reqwest::Client` is not accepted because its redirect policy
    /// cannot be checked.
    pub fn http_client_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.http = Some(builder);
        self
    }

    /// Uses `clock` for token lifetimes and retry delays (tests pass a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<JwtBearerClient, Error> {
        let builder = self.http.unwrap_or_else(|| {
            reqwest::Client::builder()
                .user_agent(concat!("salesforce-jwt/", env!("CARGO_PKG_VERSION")))
        });
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.config.http_timeout)
            .read_timeout(self.config.http_timeout)
            .build()
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        Ok(JwtBearerClient {
            inner: Arc::new(Inner {
                config: self.config,
                http,
                clock: self.clock,
                cache: TokenCache::default(),
                usage: Mutex::new(None),
            }),
        })
    }
}

impl JwtBearerClient {
    /// A client with the default HTTP client and the system clock.
    pub fn new(config: JwtBearerConfig) -> Result<JwtBearerClient, Error> {
        Self::builder(config).build()
    }

    /// A builder, to set the HTTP client or the clock.
    pub fn builder(config: JwtBearerConfig) -> JwtBearerClientBuilder {
        JwtBearerClientBuilder {
            config,
            http: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JwtBearerConfig {
        &self.inner.config
    }

    /// The clock the client reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A valid access token: the cached one while fresh, else a new one.
    ///
    /// Callers that arrive while a token request is under way wait for that request and share
    /// its result, error included. Once a token passes its refresh time (assumed lifetime minus
    /// refresh margin), callers keep getting it while a new one is fetched in the background.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        let now = self.inner.clock.now();
        let lookup = self.inner.cache.lookup(now, |generation| {
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            async move {
                let Some(inner) = weak.upgrade() else {
                    return Err(Error::Internal(
                        "the client was dropped during a token request".into(),
                    ));
                };
                let result = inner.fetch_token().await;
                inner.cache.finish(generation, &result, inner.clock.now());
                result
            }
            .boxed()
        });
        match lookup {
            Lookup::Ready(token) => Ok(token),
            Lookup::ReadyRefreshing(token, refresh) => {
                spawn_driver(refresh);
                Ok(token)
            }
            Lookup::Refused(error) => Err(error),
            Lookup::Wait(refresh, started) => {
                if started {
                    // Driven by its own task, the request completes even if every caller
                    // waiting for it is cancelled; otherwise it would stall mid-flight and be
                    // resumed later with an assertion that may have expired.
                    spawn_driver(refresh.clone());
                }
                refresh.await
            }
        }
    }

    /// Forgets `token` if it is still the cached one (say, after Salesforce answered 401 to it),
    /// so the next [`access_token`](Self::access_token) fetches a new one. Returns whether it
    /// was the cached one.
    pub fn invalidate(&self, token: &AccessToken) -> bool {
        self.inner.cache.invalidate(token)
    }

    /// The cached token, if any, without fetching or checking its age.
    pub fn cached_token(&self) -> Option<AccessToken> {
        self.inner.cache.peek()
    }

    /// The API usage from the most recent `Sforce-Limit-Info` header.
    pub fn last_api_usage(&self) -> Option<ApiUsage> {
        *self
            .inner
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves a path (or a URL) on the instance. Anything that is not on the instance's
    /// origin is refused: the access token must never leave it.
    pub fn instance_url_for(&self, target: &str) -> Result<Url, Error> {
        let base = &self.inner.config.instance_url;
        let url = base.join(target).map_err(|e| {
            Error::InvalidArgument(format!(
                "{:?} is not a path on the instance ({e})",
                redact_userinfo(target)
            ))
        })?;
        if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
            return Err(Error::ForeignUrl {
                url: redact_userinfo(url.as_str()),
                instance: base.to_string(),
            });
        }
        Ok(url)
    }

    /// Checks that the instance serves the configured API version, by asking it which it serves
    /// (`GET /services/data/`, which needs no session). Call it at startup, next to the first
    /// [`access_token`](Self::access_token): a version the org does not serve otherwise shows up
    /// as a 404 on the first query.
    ///
    /// Returns the served versions, oldest first. A version not among them is an
    /// [`Error::Config`] naming `api_version` and the newest version the org serves.
    pub async fn check_api_version(&self) -> Result<Vec<String>, Error> {
        const CONTEXT: &str = "listing the API versions the instance serves";
        let url = self.instance_url_for("/services/data/")?;
        let inner = &self.inner;
        let response = with_retries(inner.clock.as_ref(), inner.config.retry, CONTEXT, |_| {
            let url = url.clone();
            async move {
                let response = inner
                    .http
                    .get(url)
                    .header(header::ACCEPT, "application/json")
                    .send()
                    .await
                    .map_err(|e| Error::transport(CONTEXT, e))?;
                if !response.status().is_success() {
                    return Err(self.error_from_response(response, CONTEXT).await.into());
                }
                Ok(response)
            }
        })
        .await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(CONTEXT, e))?;
        #[derive(Deserialize)]
        struct Served {
            version: String,
        }
        let served: Vec<Served> = serde_json::from_slice(&body).map_err(|e| {
            Error::UnexpectedResponse(format!(
                "{CONTEXT}: the answer is not Salesforce's version list ({e}); check that \
                 SF_INSTANCE_URL is the org's My Domain URL"
            ))
        })?;
        let mut versions: Vec<(f64, String)> = served
            .into_iter()
            .filter_map(|s| Some((s.version.parse::<f64>().ok()?, s.version)))
            .collect();
        versions.sort_by(|a, b| a.0.total_cmp(&b.0));
        let versions: Vec<String> = versions.into_iter().map(|(_, v)| v).collect();
        let wanted = &inner.config.api_version;
        if versions.contains(wanted) {
            return Ok(versions);
        }
        let (Some(oldest), Some(newest)) = (versions.first(), versions.last()) else {
            return Err(Error::UnexpectedResponse(format!(
                "{CONTEXT}: the instance {} lists no API version",
                inner.config.instance_url
            )));
        };
        Err(Error::Config(ConfigError {
            problems: vec![ConfigProblem {
                field: "api_version (SF_API_VERSION)".into(),
                problem: format!(
                    "{wanted} is not served by {}: it serves {oldest} to {newest}; the newest \
                     is {newest}, set the API version to it (or any version in that range)",
                    inner.config.instance_url
                ),
            }],
        }))
    }

    /// Sends `request` to the instance with the bearer token and returns the successful
    /// response, its body unread.
    ///
    /// On 401 the failed token is invalidated, a new one is fetched and the request is sent once
    /// more. If the instance refuses that fresh token as well, the error is
    /// [`Error::SessionRefused`] (a setup problem) and no new token is requested for a backoff
    /// period (the [`RetryPolicy`](crate::RetryPolicy)'s, growing with each refusal in a row).
    ///
    /// Transient failures (connect errors, timeouts, 429, 500/502/503/504, too many concurrent
    /// long requests) are retried within the configured [`RetryPolicy`](crate::RetryPolicy),
    /// honouring `Retry-After`; TLS and DNS failures are not. Other statuses become
    /// [`Error::Api`] (or [`Error::RequestLimitExceeded`] when the daily API allocation is
    /// spent).
    pub async fn send(&self, request: &InstanceRequest) -> Result<Response, Error> {
        let url = self.instance_url_for(&request.target)?;
        let inner = &self.inner;
        with_retries(
            inner.clock.as_ref(),
            inner.config.retry,
            &request.context,
            |_| self.send_reauthenticating(&url, request),
        )
        .await
    }

    async fn send_reauthenticating(
        &self,
        url: &Url,
        request: &InstanceRequest,
    ) -> Result<Response, Failure> {
        let mut reauthenticated = false;
        loop {
            let token = self.access_token().await.map_err(Failure::Final)?;
            let mut authorization =
                HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(
                    |_| {
                        Error::UnexpectedResponse(
                            "the access token holds characters that cannot go in a header".into(),
                        )
                    },
                )?;
            authorization.set_sensitive(true);
            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), url.clone())
                .headers(request.headers.clone())
                .header(header::AUTHORIZATION, authorization);
            if !request.query.is_empty() {
                builder = builder.query(&request.query);
            }
            let response = builder
                .send()
                .await
                .map_err(|e| Error::transport(request.context.clone(), e))?;
            self.record_usage(response.headers());
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if !reauthenticated {
                    // Salesforce says INVALID_SESSION_ID: the session expired early (a shorter
                    // timeout than assumed) or was revoked. One fresh token, one more try.
                    tracing::info!(context = %request.context, "session expired or invalid; re-authenticating once");
                    self.invalidate(&token);
                    reauthenticated = true;
                    continue;
                }
                if !token.was_accepted() {
                    // The fresh token was refused too: a setup problem, not an expiry.
                    return Err(Failure::Final(self.refuse(&token, response, request).await));
                }
            } else if !token.was_accepted() {
                token.mark_accepted();
                self.inner.cache.accepted();
            }
            if status.is_success() {
                return Ok(response);
            }
            return Err(self
                .error_from_response(response, &request.context)
                .await
                .into());
        }
    }

    /// A 401 to a token never accepted before, right after a 401 to the previous one: the
    /// tokens are not made for this instance, or their sessions are revoked at once. Fetching another at once would fail the same way, so
    /// the token is dropped and new ones wait for a backoff.
    async fn refuse(
        &self,
        token: &AccessToken,
        response: Response,
        request: &InstanceRequest,
    ) -> Error {
        let (_, message) = parse_api_error_body(&read_limited(response).await);
        let instance = &self.inner.config.instance_url;
        let token_instance = (token.instance_url().origin() != instance.origin())
            .then(|| token.instance_url().to_string());
        let error = Error::SessionRefused {
            context: request.context.clone(),
            instance: instance.to_string(),
            token_instance,
            message,
        };
        let policy = self.inner.config.retry;
        tracing::warn!(context = %request.context, error = %error, "the instance refused a fresh access token");
        self.inner
            .cache
            .refuse(token, error.clone(), self.inner.clock.now(), |n| {
                backoff(policy, n)
            });
        error
    }

    fn record_usage(&self, headers: &HeaderMap) {
        if let Some(usage) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)
        {
            *self
                .inner
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(usage);
        }
    }

    pub(crate) async fn error_from_response(&self, response: Response, context: &str) -> Error {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.inner.clock.now()));
        let usage = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse);
        let body = read_limited(response).await;
        let (error_code, message) = parse_api_error_body(&body);
        if error_code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED") {
            let usage = usage.or_else(|| self.last_api_usage());
            return if is_daily_limit(&message, usage) {
                Error::RequestLimitExceeded { message, usage }
            } else {
                Error::ConcurrentRequestLimit { message, usage }
            };
        }
        Error::Api(ApiError {
            status,
            error_code,
            message,
            context: context.to_string(),
            retry_after,
        })
    }
}

impl Inner {
    async fn fetch_token(&self) -> Result<AccessToken, Error> {
        with_retries(
            self.clock.as_ref(),
            self.config.retry,
            "token request",
            |_| async { self.fetch_token_once().await.map_err(Failure::from) },
        )
        .await
    }

    async fn fetch_token_once(&self) -> Result<AccessToken, Error> {
        let config = &self.config;
        // A fresh assertion each attempt: a retried one could expire in flight.
        let claims = Claims::new(
            &config.client_id,
            &config.username,
            &config.audience,
            self.clock.now(),
            config.assertion_lifetime,
        );
        let assertion = assertion::sign(&claims, &config.key)?;
        tracing::debug!(token_url = %config.token_url, username = %config.username, "requesting an access token");
        let response = self
            .http
            .post(config.token_url.clone())
            .timeout(config.http_timeout)
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| Error::transport("posting the assertion to the token URL", e))?;
        let status = response.status();
        if status.is_success() {
            let body = response
                .bytes()
                .await
                .map_err(|e| Error::transport("reading the token response", e))?;
            let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                Error::UnexpectedResponse(format!(
                    "the token endpoint {} answered 200 without a token response ({e}); check \
                     that SF_TOKEN_URL is Salesforce's /services/oauth2/token",
                    config.token_url
                ))
            })?;
            let obtained = self.clock.now();
            let token_instance = Url::parse(parsed.instance_url()).ok();
            if let Some(named) = token_instance
                && named.origin() != config.instance_url.origin()
            {
                // Requests keep going to the configured instance: it is the origin the token
                // is allowed to reach. A mismatch usually means SF_INSTANCE_URL names another
                // host of the org (a Lightning or sandbox URL), which then fails on first use.
                tracing::warn!(configured = %config.instance_url, token_response = %named, "the token response names another instance URL than the configured one");
            }
            let expires = obtained + config.session_lifetime;
            return AccessToken::from_response(
                parsed,
                obtained,
                expires - config.refresh_margin,
                expires,
            );
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no Location)")
                .to_string();
            return Err(Error::UnexpectedResponse(format!(
                "the token URL {} redirects (HTTP {}) to {location}; the assertion is not \
                 re-posted to another address: set SF_TOKEN_URL to the final URL",
                config.token_url,
                status.as_u16()
            )));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let body = read_limited(response).await;
        let transient = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
        if !transient && let Ok(oauth) = serde_json::from_slice::<OAuthErrorBody>(&body) {
            return Err(OAuthError::new(
                status.as_u16(),
                oauth.error,
                oauth.error_description.unwrap_or_default(),
            )
            .into());
        }
        let (error_code, message) = parse_api_error_body(&body);
        Err(Error::Api(ApiError {
            status: status.as_u16(),
            error_code,
            message,
            context: format!("requesting a token from {}", config.token_url),
            retry_after,
        }))
    }
}

/// `REQUEST_LIMIT_EXCEEDED` means either the rolling 24-hour allocation is spent
/// ("TotalRequests Limit exceeded.") or too many long-running requests run at once
/// ("ConcurrentPerOrgLongTxn Limit exceeded."). Usage at or over the limit settles it; then the
/// message; usage below the limit means the concurrent one. With neither, the daily limit is
/// assumed: stopping is the safe reading.
fn is_daily_limit(message: &str, usage: Option<ApiUsage>) -> bool {
    if usage.is_some_and(|u| u.used >= u.limit) || message.contains("TotalRequests") {
        return true;
    }
    if message.contains("Concurrent") {
        return false;
    }
    usage.is_none()
}

/// Drives a refresh on its own task. Outside a tokio runtime nothing can; the refresh stored in
/// the cache is then driven by whoever awaits it.
fn spawn_driver(refresh: crate::token_cache::Refresh) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = refresh.await;
        });
    }
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct RestErrorBody {
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

async fn read_limited(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ERROR_BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    body
}

/// Salesforce REST errors are `[{"message": ..., "errorCode": ...}]`; edge proxies answer 5xx with
/// HTML, so anything else is kept as a short, single-line excerpt.
pub(crate) fn parse_api_error_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(errors) = serde_json::from_slice::<Vec<RestErrorBody>>(body)
        && let Some(first) = errors.into_iter().next()
    {
        return (first.error_code, first.message.unwrap_or_default());
    }
    if let Ok(one) = serde_json::from_slice::<RestErrorBody>(body)
        && (one.error_code.is_some() || one.message.is_some())
    {
        return (one.error_code, one.message.unwrap_or_default());
    }
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if excerpt.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| excerpt.is_char_boundary(i))
            .unwrap_or(0);
        excerpt.truncate(cut);
        excerpt.push('…');
    }
    (None, excerpt)
}

/// A request to a path on the instance, for [`JwtBearerClient::send`].
///
/// ```
/// use salesforce_jwt::InstanceRequest;
///
/// let request = InstanceRequest::get("/services/data/v64.0/limits")
///     .context("reading the org's limits");
/// ```
#[derive(Debug, Clone)]
pub struct InstanceRequest {
    method: Method,
    target: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    context: String,
}

impl InstanceRequest {
    /// A request with `method` to `target`, a path on the instance (`/services/data/...`) or a
    /// URL on the instance's origin.
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        let target = target.into();
        InstanceRequest {
            method,
            context: format!("requesting {target}"),
            target,
            query: Vec::new(),
            headers: HeaderMap::new(),
        }
    }

    /// A GET request.
    pub fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }

    /// Adds a query parameter (encoded by the client).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Says what the request is for, in errors and logs ("querying EventLogFile").
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }
}
