//! [`JwtBearerClient`]: tokens on demand and authorized requests to the instance.
//!
//! Here: the client, its builder and the token on demand. The OAuth token exchange is in
//! `token_exchange`, authorized requests to the instance in `request`, and the reading of error
//! bodies both share in `error_body`.

mod budget;
mod error_body;
mod org_clock;
mod request;
mod token_exchange;

use std::fmt;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::FutureExt as _;

use crate::clock::{Clock, SystemClock};
use crate::config::JwtBearerConfig;
use crate::error::{ApiUsage, Error};
use crate::token::AccessToken;
use crate::token_cache::{Lookup, TokenCache};

pub use request::InstanceRequest;

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
    /// The API budget in percent; 0 for none.
    budget: AtomicU8,
    org_clock: org_clock::OrgClock,
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
    budget: Option<u8>,
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

    /// Sets an API budget in percent of the org's rolling 24-hour limit (1 to 100): while the
    /// last `Sforce-Limit-Info` seen reports usage at or above it, no request is sent to the
    /// instance and [`JwtBearerClient::send`] returns [`Error::ApiBudgetReached`]. See
    /// [`JwtBearerClient::probe_api_usage`] to learn when usage has fallen.
    pub fn api_budget(mut self, percent: u8) -> Self {
        self.budget = Some(percent);
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
        let client = JwtBearerClient {
            inner: Arc::new(Inner {
                config: self.config,
                http,
                clock: self.clock,
                cache: TokenCache::default(),
                usage: Mutex::new(None),
                budget: AtomicU8::new(0),
                org_clock: org_clock::OrgClock::default(),
            }),
        };
        client.set_api_budget(self.budget)?;
        Ok(client)
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
            budget: None,
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

    /// The org's clock minus this client's [`Clock`], from the HTTP `Date` header of the
    /// last answer that carried one (token endpoint and instance alike); `None` before any.
    ///
    /// `Date` has whole seconds, cut down. A local clock that reads within two seconds after
    /// it when the answer arrives is taken as right (offset zero: a synchronised clock keeps
    /// its milliseconds); otherwise the offset puts the org's time at the header's time plus
    /// one second, the latest the header allows, so that a window ending at
    /// [`org_now`](Self::org_now) ends at most a second after the org's now (which the
    /// real-time collector's overlap absorbs) and never before it by more than the answer's
    /// transit.
    pub fn org_clock_offset(&self) -> Option<time::Duration> {
        self.inner.org_clock.offset()
    }

    /// The org's current time: this client's clock plus
    /// [`org_clock_offset`](Self::org_clock_offset) (the local time until an answer with a
    /// `Date` was seen). Windows over Salesforce's own timestamps (`EventDate`) end here.
    pub fn org_now(&self) -> time::OffsetDateTime {
        self.inner.org_clock.now(self.inner.clock.as_ref())
    }

    /// Warns (once per crossing, not per request) when the org's clock is more than
    /// `tolerance` away from this client's; returns the offset when it is.
    pub(crate) fn check_org_clock(
        &self,
        tolerance: std::time::Duration,
        what: &str,
    ) -> Option<time::Duration> {
        self.inner.org_clock.check(tolerance, what)
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
