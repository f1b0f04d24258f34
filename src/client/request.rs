//! Authorized requests to the instance: the bearer token, one re-authentication on 401,
//! retries, and the mapping of API errors.

use std::sync::PoisonError;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::JwtBearerClient;
use super::error_body::{parse_api_error_body, read_limited};
use crate::config::redact_userinfo;
use crate::error::{ApiError, ApiUsage, ConfigError, ConfigProblem, Error};
use crate::retry::{Failure, backoff, parse_retry_after, with_retries};
use crate::token::AccessToken;

impl JwtBearerClient {
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
                inner
                    .org_clock
                    .record(response.headers(), inner.clock.now());
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
    ///
    /// With an [API budget](crate::JwtBearerClientBuilder::api_budget), nothing is sent while
    /// the last usage seen is at or above it: the error is [`Error::ApiBudgetReached`].
    pub async fn send(&self, request: &InstanceRequest) -> Result<Response, Error> {
        self.send_within_budget(request, true).await
    }

    pub(super) async fn send_within_budget(
        &self,
        request: &InstanceRequest,
        budgeted: bool,
    ) -> Result<Response, Error> {
        let url = self.instance_url_for(&request.target)?;
        let inner = &self.inner;
        with_retries(
            inner.clock.as_ref(),
            inner.config.retry,
            &request.context,
            |_| async {
                // Checked before every attempt, retries included: a retry is a request too.
                if let Some(reached) = budgeted.then(|| self.api_budget_reached()).flatten() {
                    return Err(Failure::Final(reached));
                }
                self.send_reauthenticating(&url, request).await
            },
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
            self.inner
                .org_clock
                .record(response.headers(), self.inner.clock.now());
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
