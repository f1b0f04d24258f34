//! [`MockOrgBuilder`]: the settings fixed when a [`MockOrg`] starts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use salesforce_jwt::clock::{Clock, SystemClock};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

use super::front::{self, Front};
use super::state::{Settings, Shared, TokenFn};
use super::{
    DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_USERNAME, DEMO_PUBLIC_KEY_PEM, MockOrg, responder,
};

/// Received requests [`MockOrg::requests`] keeps by default.
pub const DEFAULT_REQUEST_LOG_CAPACITY: usize = 10_000;

/// Configures and starts a [`MockOrg`].
#[derive(Clone)]
pub struct MockOrgBuilder {
    org_id: String,
    key: DecodingKey,
    key_is_demo: bool,
    client_id: String,
    username: String,
    audience: String,
    clock: Arc<dyn Clock>,
    token_lifetime: Duration,
    token_max_uses: Option<u32>,
    page_size: usize,
    event_log_access: bool,
    api_enabled: bool,
    realtime_access: bool,
    event_log_object_access: EventLogObjectAccess,
    big_object_timeout_rows: Option<usize>,
    access_token: Option<TokenFn>,
    token_latency: Duration,
    request_log_capacity: usize,
}

impl fmt::Debug for MockOrgBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockOrgBuilder")
            .field("org_id", &self.org_id)
            .field("key_is_demo", &self.key_is_demo)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("audience", &self.audience)
            .field("clock", &self.clock)
            .field("token_lifetime", &self.token_lifetime)
            .field("token_max_uses", &self.token_max_uses)
            .field("page_size", &self.page_size)
            .field("event_log_access", &self.event_log_access)
            .field("api_enabled", &self.api_enabled)
            .field("realtime_access", &self.realtime_access)
            .field("event_log_object_access", &self.event_log_object_access)
            .field("big_object_timeout_rows", &self.big_object_timeout_rows)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<chosen by the test>"),
            )
            .field("token_latency", &self.token_latency)
            .field("request_log_capacity", &self.request_log_capacity)
            .finish()
    }
}

/// The PEM given to [`MockOrgBuilder::public_key_pem`] holds no RSA public key or certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPublicKey {
    reason: String,
}

impl fmt::Display for InvalidPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an RSA public key or certificate PEM: {}",
            self.reason
        )
    }
}

impl std::error::Error for InvalidPublicKey {}

impl Default for MockOrgBuilder {
    fn default() -> Self {
        // The embedded demo key is a valid PEM; a failure here would be a build defect, and the
        // org then rejects every assertion as Salesforce does with a mismatched certificate.
        let key = DecodingKey::from_rsa_pem(DEMO_PUBLIC_KEY_PEM.as_bytes())
            .unwrap_or_else(|_| DecodingKey::from_rsa_raw_components(&[0], &[0]));
        Self {
            org_id: super::state::ORG_ID_15.to_owned(),
            key,
            key_is_demo: true,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            username: DEFAULT_USERNAME.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            clock: Arc::new(SystemClock),
            token_lifetime: Duration::from_secs(2 * 3600),
            token_max_uses: None,
            page_size: 2000,
            event_log_access: true,
            api_enabled: true,
            realtime_access: true,
            event_log_object_access: EventLogObjectAccess::Granted,
            big_object_timeout_rows: None,
            access_token: None,
            token_latency: Duration::ZERO,
            request_log_capacity: DEFAULT_REQUEST_LOG_CAPACITY,
        }
    }
}

impl MockOrgBuilder {
    /// The key assertions must be signed with: an RSA public key (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`) or the X.509 certificate an admin would upload to the app.
    /// Defaults to [`DEMO_PUBLIC_KEY_PEM`].
    pub fn public_key_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, InvalidPublicKey> {
        let pem = pem.as_ref();
        let text = String::from_utf8_lossy(pem);
        // jsonwebtoken also reads private keys here; refusing them catches a swapped argument.
        if !(text.contains("PUBLIC KEY-----") || text.contains("BEGIN CERTIFICATE-----")) {
            return Err(InvalidPublicKey {
                reason: "expected a PUBLIC KEY or CERTIFICATE block".to_owned(),
            });
        }
        self.key = DecodingKey::from_rsa_pem(pem).map_err(|e| InvalidPublicKey {
            reason: e.to_string(),
        })?;
        self.key_is_demo = false;
        Ok(self)
    }

    /// The consumer key of the app; assertions need it as `iss`. Default `3MVG9MOCKCLIENTID`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The pre-authorized integration user; assertions need it as `sub`.
    /// Default `integration@example.com`.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = username.into();
        self
    }

    /// The audience assertions need as `aud`. Default `https://login.salesforce.com`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The clock that judges `exp`, session lifetime and cursor expiry. Default [`SystemClock`];
    /// give a [`ManualClock`](salesforce_jwt::clock::ManualClock) to move time in tests without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long an access token stays valid, measured with the clock (the org's session timeout).
    /// Default 2 hours, Salesforce's default.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// After this many API requests a token answers 401 as if expired. Default `None`: no limit.
    pub fn token_max_uses(mut self, max_uses: Option<u32>) -> Self {
        self.token_max_uses = max_uses;
        self
    }

    /// Records per query page. Default 2000, Salesforce's maximum. A request's
    /// `Sforce-Query-Options: batchSize=N` picks a size in 200..=2000, never above this one.
    /// Values below 1 count as 1.
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Whether the integration user may see EventLogFile (the View Event Log Files permission
    /// and an Event Monitoring licence). When `false`, queries on it answer 400 `INVALID_TYPE`,
    /// the way Salesforce reports the missing permission. Default `true`.
    pub fn event_log_access(mut self, allowed: bool) -> Self {
        self.event_log_access = allowed;
        self
    }

    /// Whether the user has API Enabled. When `false`, the token is still issued (Salesforce
    /// checks at the first API call) but every `/services/data` request with it answers 403
    /// `API_DISABLED_FOR_ORG`. Default `true`.
    pub fn api_enabled(mut self, enabled: bool) -> Self {
        self.api_enabled = enabled;
        self
    }

    /// Whether the integration user may query the real-time objects (the View Real-Time Event
    /// Monitoring Data permission and a Shield or Event Monitoring licence). When `false`,
    /// queries on them answer 400 `INVALID_TYPE`. Default `true`.
    pub fn realtime_access(mut self, allowed: bool) -> Self {
        self.realtime_access = allowed;
        self
    }

    /// Whether the integration user can query Event Log Objects (`LoginEventLog`...), and if
    /// not, why: see [`EventLogObjectAccess`] for what each answers. Default
    /// [`Granted`](EventLogObjectAccess::Granted).
    pub fn event_log_object_access(mut self, access: EventLogObjectAccess) -> Self {
        self.event_log_object_access = access;
        self
    }

    /// A big-object query whose filter matches more rows than this answers 400 `QUERY_TIMEOUT`
    /// ("Your query request was running for too long"), as an unbounded catch-up query on a
    /// busy org does. Default `None`: never.
    pub fn big_object_query_timeout_rows(mut self, rows: Option<usize>) -> Self {
        self.big_object_timeout_rows = rows;
        self
    }

    /// Chooses the access tokens the org issues: `choose(n)` gives the `n`th (from 1). Default: a
    /// random token shaped like Salesforce's (`00D...!AR...`).
    ///
    /// Lets a downstream test assert which token reached its code, or which one a request
    /// carried ([`ReceivedRequest::bearer_token`](crate::ReceivedRequest::bearer_token)). Keep
    /// the values unique: issuing a value again renews the session it names. Tokens are
    /// secrets to the code under test, so a test should compare them, never print them.
    ///
    /// ```
    /// # async fn demo() {
    /// let org = salesforce_jwt_mock::MockOrg::builder()
    ///     .access_token(|n| format!("00D000000000001!AR.test-token-{n}"))
    ///     .start()
    ///     .await;
    /// # let _ = org;
    /// # }
    /// ```
    pub fn access_token(mut self, choose: impl Fn(u64) -> String + Send + Sync + 'static) -> Self {
        self.access_token = Some(Arc::new(choose));
        self
    }

    /// The org's 15-character Id (default `00D000000000001`), as the token response's identity
    /// URL and the identity service report it (18 characters, with the checksum suffix, like
    /// Salesforce's), and as the access tokens start. Two orgs with different Ids stand for two
    /// Salesforce orgs.
    pub fn org_id(mut self, id15: impl Into<String>) -> Self {
        self.org_id = id15.into();
        self
    }

    /// Holds back every token response this long (wiremock's `set_delay`; the org's clock is not
    /// involved): a slow login server. Default zero. For a delay on some requests only, inject
    /// a [`Fault::Delay`](crate::Fault::Delay).
    pub fn token_latency(mut self, latency: Duration) -> Self {
        self.token_latency = latency;
        self
    }

    /// How many received requests [`MockOrg::requests`] keeps; the oldest go first. Default
    /// [`DEFAULT_REQUEST_LOG_CAPACITY`]; 0 keeps none, for long demo runs.
    pub fn request_log_capacity(mut self, capacity: usize) -> Self {
        self.request_log_capacity = capacity;
        self
    }

    /// Starts the server on a free loopback port.
    pub async fn start(self) -> MockOrg {
        // wiremock's own recording is off: the org keeps its own bounded log and counters, and a
        // long demo run must not accumulate every request in memory.
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let settings = Settings {
            org_id: self.org_id,
            client_id: self.client_id,
            username: self.username,
            audience: self.audience,
            token_lifetime: self.token_lifetime,
            token_max_uses: self.token_max_uses,
            page_size: self.page_size,
            event_log_access: self.event_log_access,
            api_enabled: self.api_enabled,
            realtime_access: self.realtime_access,
            event_log_object_access: self.event_log_object_access,
            big_object_timeout_rows: self.big_object_timeout_rows,
            access_token: self.access_token,
            token_latency: self.token_latency,
            request_log_capacity: self.request_log_capacity,
        };
        // Like wiremock's own start, a loopback port that cannot be had is not something a
        // test could go on from.
        #[allow(clippy::expect_used)]
        let (listener, uri) = front::bind().expect("no free loopback port for the mock org");
        let shared = Arc::new(Shared::new(settings, self.clock, self.key, uri));
        Mock::given(any())
            .respond_with(responder::OrgResponder::new(Arc::clone(&shared)))
            .named("salesforce org")
            .mount(&server)
            .await;
        #[allow(clippy::expect_used)]
        let front = Front::start(listener, *server.address(), Arc::clone(&shared))
            .expect("the mock org's front door did not start");
        tracing::debug!(uri = %shared.base_uri, wiremock = %server.uri(), "mock Salesforce org started");
        MockOrg {
            server,
            shared,
            _front: front,
        }
    }
}

/// Whether an org's integration user can query Event Log Objects, and if not, why
/// ([`MockOrgBuilder::event_log_object_access`]).
///
/// What Salesforce answers in each case is not documented (UNCERTAIN): the mock's choices are
/// the answers Salesforce gives elsewhere for a type that does not exist in the org and for a
/// permission the user lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventLogObjectAccess {
    /// The org is on Hyperforce with Shield or Event Monitoring, and the user has View Event
    /// Log Object Data.
    #[default]
    Granted,
    /// The org is on Hyperforce but the user lacks View Event Log Object Data: queries answer
    /// 403 `INSUFFICIENT_ACCESS`.
    MissingPermission,
    /// The org is not on Hyperforce (or is in Government Cloud): the objects do not exist, and
    /// queries answer 400 `INVALID_TYPE`, as they do below API 61.0 anywhere.
    NotHyperforce,
}
