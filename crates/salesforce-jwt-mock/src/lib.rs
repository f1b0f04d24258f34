//! A Salesforce org double on [wiremock]: JWT-bearer token endpoint, REST query API,
//! EventLogFile downloads and the Real-Time Event Monitoring objects, with Salesforce's wire
//! shapes, errors and quirks.
//!
//! [`MockOrg`] verifies real RS256 signatures against a public key, checks the claims against its
//! own [`Clock`](salesforce_jwt::clock::Clock), expires and revokes sessions, evaluates the SOQL a collector sends (filters,
//! `ORDER BY`, `LIMIT`, `COUNT()`), paginates with `nextRecordsUrl`, gzips downloads when asked,
//! and injects [`Fault`]s on demand. It is independent of the `salesforce-jwt` library on
//! purpose (it shares only its [`Clock`](salesforce_jwt::clock::Clock)): it is a second reading of Salesforce's behaviour, so it
//! catches mismatches instead of sharing them.
//!
//! It also holds the Real-Time Event Monitoring storage objects (`LoginEvent`, `ApiEvent`,
//! `FileEventStore`...), the threat-detection stores and `SetupAuditTrail`
//! ([`MockOrg::add_records`], [`generate_records`]), and enforces what Salesforce enforces on
//! big objects: a filter on `EventDate` alone (or `EventDate =` with `EventIdentifier`), only
//! `ORDER BY EventDate DESC`, no aggregates, each refusal a 400
//! `BIG_OBJECT_UNSUPPORTED_OPERATION` with Salesforce's message; rows become queryable after a
//! configurable lag, and a query over too many rows can answer `QUERY_TIMEOUT`.
//!
//! ```
//! use salesforce_jwt_mock::{DEMO_PRIVATE_KEY_PEM, MockOrg};
//!
//! # async fn demo() {
//! let org = MockOrg::start().await;
//! let ids = org.add_demo_data(time::OffsetDateTime::now_utc());
//! assert!(!ids.is_empty());
//! // Configure a client with org.token_url(), org.instance_url(), org.client_id(),
//! // org.username(), org.audience() and the private key DEMO_PRIVATE_KEY_PEM.
//! # let _ = (DEMO_PRIVATE_KEY_PEM, org.token_url());
//! # }
//! ```
//!
//! For a downstream service's tests: [`MockOrgBuilder::access_token`] chooses the token values,
//! so a test can assert which token reached its code; [`Fault::OAuth`] refuses logins with
//! Salesforce's error shape and [`Fault::Delay`] or [`MockOrgBuilder::token_latency`] slow answers
//! down (test a client timeout shorter than the delay, never sleep);
//! [`inject_times`](MockOrg::inject_times) and [`inject_always`](MockOrg::inject_always) repeat
//! a fault, [`times_fired`](MockOrg::times_fired) counts it; [`requests`](MockOrg::requests)
//! lists what was received, SOQL decoded, tokens hidden from `Debug`.
//!
//! ```
//! use salesforce_jwt_mock::{Fault, MockOrg, RequestKind};
//!
//! # async fn demo() {
//! let org = MockOrg::builder()
//!     .access_token(|n| format!("00D000000000001!AR.test-{n}"))
//!     .start()
//!     .await;
//! let refusal = org.inject_times(
//!     Fault::oauth("invalid_grant", "user hasn't approved this consumer"),
//!     2,
//! );
//! // ... run the code under test against org.token_url() and org.instance_url() ...
//! assert!(org.times_fired(refusal) <= 2);
//! let queries = org.requests().into_iter().filter(|r| r.kind == RequestKind::Query);
//! # let _ = queries;
//! # }
//! ```
//!
//! Endpoints served:
//!
//! | request | answer |
//! |---|---|
//! | `POST /services/oauth2/token` | access token, or 400 `{"error","error_description"}` |
//! | `GET /services/data/` | the API versions (no session needed) |
//! | `GET /services/data/vNN.N/query?q=` | the first page of a query |
//! | `GET /services/data/vNN.N/query/{locator}` | the following pages |
//! | `GET /services/data/vNN.N/sobjects/EventLogFile/{Id}` | one record, all fields |
//! | `GET /services/data/vNN.N/sobjects/EventLogFile/{Id}/LogFile` | the CSV body |
//! | `GET /id/{orgId}/{userId}` | the identity of the integration user |
//!
//! Anything else answers 404 with a Salesforce-style JSON error array.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(clippy::await_holding_lock)]

mod builder;
mod fault;
mod file_meta;
mod front;
mod generate;
mod objects;
mod requests;
mod responder;
mod soql;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use time::{OffsetDateTime, UtcOffset};
use wiremock::MockServer;

#[allow(deprecated)]
pub use generate::generate_log_csv;
pub use generate::{
    CsvRowGenerator, DEFAULT_FILE_API_VERSION, EDGE_CASE_CYCLE, GeneratedCsv, Interval,
    MockLogFile, MockLogFileBuilder,
};

pub use builder::{
    DEFAULT_REQUEST_LOG_CAPACITY, EventLogObjectAccess, InvalidPublicKey, MockOrgBuilder,
};
pub use fault::{Fault, FaultId, FaultTarget, Received};
pub use objects::generate::generate_records;
pub use requests::{ReceivedRequest, RequestKind};
pub use responder::http_date;

use file_meta::FileMeta;
use state::Shared;

/// Private half of the built-in demo key pair (PKCS#8 PEM), matching [`DEMO_PUBLIC_KEY_PEM`].
///
/// For demos and tests only: it is published with this crate, so anyone can sign with it. Never
/// register its certificate with a real org.
pub const DEMO_PRIVATE_KEY_PEM: &str = include_str!("demo_private_key.pem");

/// Public half of the built-in demo key pair: what a [`MockOrg`] verifies assertions with unless
/// [`MockOrgBuilder::public_key_pem`] says otherwise.
///
/// For demos and tests only; never register it with a real org.
pub const DEMO_PUBLIC_KEY_PEM: &str = include_str!("demo_public_key.pem");

/// The default consumer key (`iss`) the org expects.
pub const DEFAULT_CLIENT_ID: &str = "3MVG9MOCKCLIENTID";
/// The default integration username (`sub`) the org expects.
pub const DEFAULT_USERNAME: &str = "integration@example.com";
/// The default audience (`aud`) the org expects.
pub const DEFAULT_AUDIENCE: &str = "https://login.salesforce.com";

/// A Salesforce org double listening on a loopback port.
///
/// Dropping it stops the server. All methods take `&self`; share it behind an `Arc` if several
/// tasks need it.
pub struct MockOrg {
    server: MockServer,
    shared: Arc<Shared>,
    /// Held for its `Drop`, which stops the door.
    _front: front::Front,
}

impl fmt::Debug for MockOrg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockOrg")
            .field("uri", &self.shared.base_uri)
            .field("files", &self.shared.with(|s| s.files.len()))
            .finish_non_exhaustive()
    }
}

/// The object named is not one the org holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownObject {
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the mock org holds no object named {:?}: use a Real-Time Event Monitoring storage \
             object (LoginEvent, ApiEvent, FileEventStore...), a threat-detection store \
             (ApiAnomalyEventStore...) or SetupAuditTrail",
            self.name
        )
    }
}

impl std::error::Error for UnknownObject {}

/// Metadata of a file held by the org, as [`MockOrg::files`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct MockLogFileInfo {
    /// The 18-character `Id` (prefix `0AT`).
    pub id: String,
    /// `EventType`.
    pub event_type: String,
    /// `Interval`.
    pub interval: Interval,
    /// `LogDate`, in UTC, whole seconds.
    pub log_date: OffsetDateTime,
    /// `CreatedDate`, in UTC, whole seconds.
    pub created_date: OffsetDateTime,
    /// `Sequence`.
    pub sequence: i32,
    /// Data rows in the CSV (header excluded).
    pub row_count: usize,
    /// `LogFileLength`: the uncompressed CSV size in bytes.
    pub length: u64,
}

impl MockOrg {
    /// A builder with the defaults: demo key pair, client id `3MVG9MOCKCLIENTID`, username
    /// `integration@example.com`, audience `https://login.salesforce.com`, system clock, 2-hour
    /// sessions, 2000-record pages, EventLogFile and API access granted.
    pub fn builder() -> MockOrgBuilder {
        MockOrgBuilder::default()
    }

    /// Starts an org with the builder defaults.
    pub async fn start() -> MockOrg {
        Self::builder().start().await
    }

    /// The server's base URI, `http://127.0.0.1:PORT`: both the instance URL and the token host.
    pub fn uri(&self) -> String {
        self.shared.base_uri.clone()
    }

    /// The instance URL (the same as [`uri`](Self::uri)), as the token response reports it.
    pub fn instance_url(&self) -> String {
        self.uri()
    }

    /// `{uri}/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.shared.base_uri)
    }

    /// A configuration builder for a client of this org: its audience, username, client ID,
    /// instance URL and token URL, and the key [`DEMO_PRIVATE_KEY_PEM`]. Set more (a retry
    /// policy, an API version) before `build()`. An org built with another
    /// [`public_key_pem`](MockOrgBuilder::public_key_pem) needs `client_key_pem` set to its
    /// private half.
    ///
    /// ```
    /// # async fn demo() {
    /// let org = salesforce_jwt_mock::MockOrg::start().await;
    /// let config = org.config_builder().build().unwrap();
    /// let client = salesforce_jwt::JwtBearerClient::new(config).unwrap();
    /// # let _ = client;
    /// # }
    /// ```
    pub fn config_builder(&self) -> salesforce_jwt::JwtBearerConfigBuilder {
        salesforce_jwt::JwtBearerConfig::builder()
            .audience_url(self.audience())
            .client_key_pem(DEMO_PRIVATE_KEY_PEM)
            .username(self.username())
            .client_id(self.client_id())
            .instance_url(self.instance_url())
            .token_url(self.token_url())
    }

    /// The audience (`aud`) assertions must carry.
    pub fn audience(&self) -> &str {
        &self.shared.settings.audience
    }

    /// The consumer key (`iss`) assertions must carry.
    pub fn client_id(&self) -> &str {
        &self.shared.settings.client_id
    }

    /// The org's 18-character Id (`00D...`), as the token response's identity URL reports it.
    pub fn org_id(&self) -> String {
        generate::with_checksum(&self.shared.settings.org_id)
    }

    /// The username (`sub`) assertions must carry.
    pub fn username(&self) -> &str {
        &self.shared.settings.username
    }

    /// The underlying wiremock server, to mount extra mocks: give them a priority below 5 (the
    /// default, which the org's catch-all uses) to take precedence.
    ///
    /// Send requests to [`uri`](Self::uri), not to this server's own URI: the org's public port
    /// is a small proxy in front of it that forwards every request and sends a log file's body
    /// without copying it (wiremock copies a body twice per response, which for a file of
    /// hundreds of megabytes costs most of a second). Mocks mounted here answer either way.
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Adds a file and returns its 18-character Id (`0AT...`). Ids come from a counter, so they
    /// sort in the order files were added. `LogDate` and `CreatedDate` are stored in UTC and cut
    /// to whole seconds, as Salesforce stores them (its JSON always shows `.000`).
    pub fn add_file(&self, file: MockLogFile) -> String {
        let row_count = file.row_count();
        let meta = FileMeta {
            id: String::new(),
            event_type: file.event_type,
            interval: file.interval,
            log_date: whole_seconds_utc(file.log_date),
            created_date: whole_seconds_utc(file.created_date),
            sequence: file.sequence,
            length: file.csv.len() as u64,
            row_count,
            field_names: file.field_names,
            field_types: file.field_types,
            api_version: file.api_version,
        };
        self.shared.with(|s| s.insert_file(meta, file.csv))
    }

    /// Compresses every file's CSV now, for the downloads that ask for gzip (as Salesforce's
    /// do). Otherwise each file is compressed on its first such download and kept: call this
    /// before timing downloads, so that a benchmark measures the client rather than the double.
    pub fn precompress_downloads(&self) {
        let files: Vec<_> = self.shared.with(|s| {
            s.files
                .values()
                .map(|f| (f.csv.clone(), Arc::clone(&f.gzip)))
                .collect()
        });
        for (csv, cache) in files {
            responder::gzipped(&csv, &cache);
        }
    }

    /// Removes a file (as retention does after 30 days). Returns whether it existed.
    pub fn remove_file(&self, id: &str) -> bool {
        self.shared.with(|s| s.files.remove(id).is_some())
    }

    /// Adds a realistic set of files relative to `now` and returns their Ids, in insertion order.
    ///
    /// - Daily files of Login, Logout, API, URI, ApexExecution and Report for the days three and
    ///   two days before `now`'s day, each created early the following morning.
    /// - Hourly files (Sequence 1) of Login, API and URI for the six hours from 9 to 4 hours
    ///   before `now`, each created 3 h 17 min after its hour: files of one hour share a
    ///   `CreatedDate`, so only the `Id` orders them.
    /// - One late hourly file: Login for the oldest of those hours, Sequence 2, created 30 minutes
    ///   before `now`'s hour began.
    ///
    /// Every file is created before `now`. About 340 rows in all; the same `now` gives the same
    /// files.
    pub fn add_demo_data(&self, now: OffsetDateTime) -> Vec<String> {
        const DAILY: &[(&str, usize)] = &[
            ("Login", 24),
            ("Logout", 12),
            ("API", 30),
            ("URI", 30),
            ("ApexExecution", 16),
            ("Report", 10),
        ];
        const HOURLY: &[&str] = &["Login", "API", "URI"];
        let now = now.to_offset(UtcOffset::UTC);
        let today = now.replace_time(time::Time::MIDNIGHT);
        let this_hour =
            now.replace_time(time::Time::MIDNIGHT) + time::Duration::hours(i64::from(now.hour()));
        let mut ids = Vec::new();
        for days_back in [3i64, 2] {
            let log_date = today - time::Duration::days(days_back);
            for (i, (event_type, rows)) in DAILY.iter().enumerate() {
                let created = log_date
                    + time::Duration::days(1)
                    + time::Duration::hours(2)
                    + time::Duration::minutes(7 * i as i64);
                let seed = demo_seed(log_date, i);
                ids.push(
                    self.add_file(
                        MockLogFile::builder(*event_type)
                            .interval(Interval::Daily)
                            .log_date(log_date)
                            .sequence(0)
                            .created_date(created)
                            .rows(*rows)
                            .seed(seed)
                            .build(),
                    ),
                );
            }
        }
        for hours_back in (4i64..=9).rev() {
            let log_date = this_hour - time::Duration::hours(hours_back);
            let created = log_date + time::Duration::minutes(3 * 60 + 17);
            for (i, event_type) in HOURLY.iter().enumerate() {
                ids.push(
                    self.add_file(
                        MockLogFile::builder(*event_type)
                            .interval(Interval::Hourly)
                            .log_date(log_date)
                            .sequence(1)
                            .created_date(created)
                            .rows(5)
                            .seed(demo_seed(log_date, i))
                            .build(),
                    ),
                );
            }
        }
        let late_hour = this_hour - time::Duration::hours(9);
        ids.push(
            self.add_file(
                MockLogFile::builder("Login")
                    .interval(Interval::Hourly)
                    .log_date(late_hour)
                    .sequence(2)
                    .created_date(this_hour - time::Duration::minutes(30))
                    .rows(3)
                    .seed(demo_seed(late_hour, 99))
                    .build(),
            ),
        );
        ids
    }

    /// Every file the org holds, in Id order.
    pub fn files(&self) -> Vec<MockLogFileInfo> {
        self.shared.with(|s| {
            s.files
                .values()
                .map(|f| {
                    let m = &f.meta;
                    MockLogFileInfo {
                        id: m.id.clone(),
                        event_type: m.event_type.clone(),
                        interval: m.interval,
                        log_date: m.log_date,
                        created_date: m.created_date,
                        sequence: m.sequence,
                        row_count: m.row_count,
                        length: m.length,
                    }
                })
                .collect()
        })
    }

    /// The CSV body of a file, as a download serves it uncompressed.
    pub fn csv_of(&self, id: &str) -> Option<Bytes> {
        self.shared.with(|s| s.file(id).map(|f| f.csv.clone()))
    }

    /// Adds rows to a real-time object (`LoginEvent`, `SetupAuditTrail`...; see
    /// [`generate_records`] for realistic ones) and returns them as stored: a standard-object
    /// row without an `Id` gets the next one, so Ids sort in insertion order.
    ///
    /// A row becomes queryable once the clock reaches its `CreatedDate` (when Salesforce wrote
    /// it) plus the object's [queryable lag](Self::set_queryable_lag); a row without
    /// `CreatedDate` is queryable at once. To model a row that arrives late, give it an
    /// `EventDate` older than rows already served and a `CreatedDate` of now.
    pub fn add_records(
        &self,
        object: &str,
        records: impl IntoIterator<Item = serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, UnknownObject> {
        let def = objects::catalogue::lookup(object).ok_or_else(|| UnknownObject {
            name: object.to_owned(),
        })?;
        Ok(self.shared.with(|s| {
            records
                .into_iter()
                .map(|r| s.objects.insert(def, r))
                .collect()
        }))
    }

    /// Every row of a real-time object as stored, queryable yet or not, in insertion order.
    pub fn records(&self, object: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        match objects::catalogue::lookup(object) {
            Some(def) => self.shared.with(|s| s.objects.all(def)),
            None => Vec::new(),
        }
    }

    /// How long after its `CreatedDate` a row of `object` becomes queryable (default zero).
    /// Salesforce writes big-object rows seconds to minutes after the event.
    pub fn set_queryable_lag(&self, object: &str, lag: Duration) -> Result<(), UnknownObject> {
        let def = objects::catalogue::lookup(object).ok_or_else(|| UnknownObject {
            name: object.to_owned(),
        })?;
        self.shared.with(|s| s.objects.set_lag(def, lag));
        Ok(())
    }

    /// Queues a fault that fires once; see [`Fault`] for when each kind fires.
    pub fn inject(&self, fault: Fault) {
        self.inject_times(fault, 1);
    }

    /// Queues a fault that fires on the next `times` requests it applies to (0: never), and
    /// returns its id for [`times_fired`](Self::times_fired).
    pub fn inject_times(&self, fault: Fault, times: u64) -> FaultId {
        self.shared.with(|s| s.queue_fault(fault, Some(times)))
    }

    /// Queues a fault that fires on every request it applies to until
    /// [`clear_faults`](Self::clear_faults), and returns its id for
    /// [`times_fired`](Self::times_fired). It stays ahead of faults injected after it for the
    /// same requests.
    pub fn inject_always(&self, fault: Fault) -> FaultId {
        self.shared.with(|s| s.queue_fault(fault, None))
    }

    /// Drops every queued fault; the counts of those that fired stay readable.
    pub fn clear_faults(&self) {
        self.shared.with(|s| s.faults.clear());
    }

    /// How many times the fault `id` has fired.
    pub fn times_fired(&self, id: FaultId) -> u64 {
        self.shared.with(|s| s.times_fired(id))
    }

    /// Faults queued and not used up yet (a fault injected with
    /// [`inject_always`](Self::inject_always) counts once until cleared).
    pub fn pending_faults(&self) -> usize {
        self.shared.with(|s| s.faults.len())
    }

    /// The requests received so far, oldest first: the last
    /// [`request_log_capacity`](MockOrgBuilder::request_log_capacity) of them.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.with(|s| s.requests.iter().cloned().collect())
    }

    /// Empties the log of received requests (the counters of [`received`](Self::received) stay).
    pub fn clear_requests(&self) {
        self.shared.with(|s| s.requests.clear());
    }

    /// Revokes every token issued so far: their next API request answers 401
    /// `INVALID_SESSION_ID`. Tokens issued afterwards work.
    pub fn revoke_all_tokens(&self) {
        self.shared.with(|s| s.revoke_all_tokens());
    }

    /// Sets the org's API usage, as `Sforce-Limit-Info` reports it (`api-usage=USED/15000`):
    /// each authorized API request adds one to it, and the next response reports that. Tests
    /// put it near the limit, or let it fall as if the rolling 24 hours moved on.
    pub fn set_api_usage(&self, used: u64) {
        self.shared.with(|s| s.api_usage = used);
    }

    /// The org's API usage: the authorized API requests counted so far (or since
    /// [`set_api_usage`](Self::set_api_usage)).
    pub fn api_usage(&self) -> u64 {
        self.shared.with(|s| s.api_usage)
    }

    /// The daily API request limit `Sforce-Limit-Info` reports.
    pub fn api_limit(&self) -> u64 {
        state::API_DAILY_LIMIT
    }

    /// Counts of the requests received so far.
    pub fn received(&self) -> Received {
        self.shared.with(|s| s.received)
    }
}

fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

fn demo_seed(log_date: OffsetDateTime, index: usize) -> u64 {
    (log_date.unix_timestamp() as u64).wrapping_mul(31) ^ (index as u64)
}
