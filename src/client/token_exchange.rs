//! The OAuth 2.0 JWT bearer token exchange: sign an assertion, post it to the token URL, read
//! the token response or map the OAuth error.

use reqwest::header;
use serde::Deserialize;
use url::Url;

use super::Inner;
use super::error_body::{parse_api_error_body, read_limited};
use crate::assertion::{self, Claims};
use crate::error::{ApiError, Error, OAuthError, OAuthErrorKind};
use crate::retry::{Failure, parse_retry_after, with_retries};
use crate::token::{AccessToken, TokenResponse};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl Inner {
    pub(super) async fn fetch_token(&self) -> Result<AccessToken, Error> {
        with_retries(
            self.clock.as_ref(),
            self.config.retry,
            "token request",
            |_| async {
                let signed_at = self.assertion_time();
                match self.fetch_token_once(signed_at).await {
                    Err(Error::OAuth(e))
                        if e.kind == OAuthErrorKind::ExpiredAssertion
                            && self.org_clock.explains_expiry(
                                signed_at,
                                self.clock.now(),
                                self.config.assertion_lifetime,
                            ) =>
                    {
                        // The refusal's `Date` shows this machine's clock behind the org's by
                        // more than the assertion's lifetime: sign with the org's time from now
                        // on, and once more at once.
                        tracing::warn!(
                            skew_seconds = self.org_clock.offset().map_or(0, |o| o.whole_seconds()),
                            "Salesforce refused the assertion as expired and its Date header shows                              this machine's clock behind the org's: signing with the org's time;                              synchronise this machine's clock (NTP)"
                        );
                        self.org_clock.follow_for_assertions();
                        self.fetch_token_once(self.assertion_time()).await
                    }
                    other => other,
                }
                .map_err(Failure::from)
            },
        )
        .await
    }

    /// When an assertion says it was made: the local time, or the org's once an assertion was
    /// refused as expired because of this machine's clock. The org's time is known to the
    /// `Date` header's second, and taken at the upper end of it; an assertion is signed a
    /// second earlier, at the lower end, so that its `exp` is never more than its lifetime
    /// ahead of the org's clock (Salesforce wants it "within 3 minutes").
    fn assertion_time(&self) -> time::OffsetDateTime {
        if self.org_clock.follows_for_assertions() {
            self.org_clock.now(self.clock.as_ref()) - time::Duration::SECOND
        } else {
            self.clock.now()
        }
    }

    async fn fetch_token_once(&self, now: time::OffsetDateTime) -> Result<AccessToken, Error> {
        let config = &self.config;
        // A fresh assertion each attempt: a retried one could expire in flight.
        let claims = Claims::new(
            &config.client_id,
            &config.username,
            &config.audience,
            now,
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
        self.org_clock.record(response.headers(), self.clock.now());
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

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}
