//! Shared helpers for the integration tests (and the token bench): fixtures, a config pointed at
//! a wiremock server, and a token endpoint that checks assertions the way Salesforce does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use salesforce_jwt::clock::{Clock, ManualClock};
use salesforce_jwt::{JwtBearerClient, JwtBearerConfig, JwtBearerConfigBuilder};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const AUDIENCE: &str = "https://login.salesforce.com";
pub const USERNAME: &str = "integration@example.com";
pub const CLIENT_ID: &str = "3MVG9TestConsumerKey.fixture";
pub const ORG_ID: &str = "00DXX0000000001AAA";
pub const USER_ID: &str = "005XX0000000001AAA";
pub const TOKEN_PATH: &str = "/services/oauth2/token";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const ISSUED_AT_MS: &str = "1700000000000";
/// Salesforce's "within 3 minutes".
pub const MAX_EXP_AHEAD_SECS: i64 = 180;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture readable")
}

/// The base64 lines of every private-key fixture: none of them may ever show up in a message.
pub fn private_pem_body_lines() -> Vec<String> {
    [
        "test_rsa_pkcs1.pem",
        "test_rsa_pkcs8.pem",
        "test_rsa_encrypted_pkcs8.pem",
        "test_rsa_encrypted_pkcs1.pem",
        "other_rsa_pkcs1.pem",
        "test_ec.pem",
        "test_ed25519_pkcs8.pem",
    ]
    .iter()
    .flat_map(|name| {
        fixture(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----") && !l.contains(':'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .collect()
}

/// Where every test clock starts.
pub fn start_time() -> OffsetDateTime {
    datetime!(2025-06-01 12:00 UTC)
}

pub fn manual_clock() -> ManualClock {
    ManualClock::new(start_time())
}

/// A builder with all six fields set, token and instance URLs on `server_uri` (loopback http).
pub fn config_builder(server_uri: &str) -> JwtBearerConfigBuilder {
    JwtBearerConfig::builder()
        .audience_url(AUDIENCE)
        .client_key_path(fixture_path("test_rsa_pkcs8.pem"))
        .username(USERNAME)
        .client_id(CLIENT_ID)
        .instance_url(server_uri)
        .token_url(server_uri)
}

pub fn config(server_uri: &str) -> JwtBearerConfig {
    config_builder(server_uri)
        .build()
        .expect("valid test config")
}

pub fn client(config: JwtBearerConfig, clock: &ManualClock) -> JwtBearerClient {
    JwtBearerClient::builder(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("client builds")
}

/// The access token the `n`th (1-based) successful token response carries.
pub fn access_token_for(n: usize) -> String {
    format!("{ORG_ID}!AR.fixture-access-token-{n:04}")
}

/// Verifies an RS256 JWT against `test_rsa_public.pem` and returns its header alg and claims.
/// Time-based checks are left to the caller: tests run on a `ManualClock`.
pub fn verify_signature(jwt: &str) -> Result<(Algorithm, Value), String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("bad header: {e}"))?;
    let key = DecodingKey::from_rsa_pem(fixture("test_rsa_public.pem").as_bytes())
        .expect("public key fixture");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|e| format!("signature check failed: {e}"))?;
    Ok((header.alg, data.claims))
}

/// The claims Salesforce would accept.
#[derive(Debug, Clone)]
pub struct Expected {
    pub client_id: String,
    pub username: String,
    pub audience: String,
}

impl Default for Expected {
    fn default() -> Self {
        Expected {
            client_id: CLIENT_ID.into(),
            username: USERNAME.into(),
            audience: AUDIENCE.into(),
        }
    }
}

/// A Salesforce token endpoint double: verifies the form, the RS256 signature and every claim
/// against the test's `ManualClock`, answers a Salesforce-shaped success with a new token each
/// time, or Salesforce's error JSON.
#[derive(Clone)]
pub struct TokenEndpoint {
    state: Arc<EndpointState>,
    delay: Option<Duration>,
}

struct EndpointState {
    clock: ManualClock,
    expected: Expected,
    instance_url: String,
    issued: AtomicUsize,
    assertions: Mutex<Vec<String>>,
    rejections: Mutex<Vec<String>>,
}

impl TokenEndpoint {
    /// Answers with `instance_url` in its success responses.
    pub fn new(clock: &ManualClock, instance_url: impl Into<String>) -> Self {
        Self::with_expected(clock, instance_url, Expected::default())
    }

    /// Accepts assertions with other claims than the defaults.
    pub fn with_expected(
        clock: &ManualClock,
        instance_url: impl Into<String>,
        expected: Expected,
    ) -> Self {
        TokenEndpoint {
            state: Arc::new(EndpointState {
                clock: clock.clone(),
                expected,
                instance_url: instance_url.into(),
                issued: AtomicUsize::new(0),
                assertions: Mutex::new(Vec::new()),
                rejections: Mutex::new(Vec::new()),
            }),
            delay: None,
        }
    }

    /// The same endpoint (same counters), each answer delayed by `delay` so that callers
    /// really overlap with the request in flight.
    pub fn delayed_by(&self, delay: Duration) -> Self {
        TokenEndpoint {
            state: Arc::clone(&self.state),
            delay: Some(delay),
        }
    }

    /// A mock for `POST /services/oauth2/token` answered by this endpoint.
    pub fn mock(&self) -> Mock {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(self.clone())
    }

    /// Mounts [`mock`](Self::mock) on `server`.
    pub async fn mount(&self, server: &MockServer) {
        self.mock().mount(server).await;
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Every assertion received, valid or not.
    pub fn assertions(&self) -> Vec<String> {
        self.state.assertions.lock().unwrap().clone()
    }

    /// Why requests were refused, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.state.rejections.lock().unwrap().clone()
    }

    fn check(&self, request: &Request) -> Result<(), Rejection> {
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type != "application/x-www-form-urlencoded" {
            return Err(Rejection::new(
                "invalid_request",
                "unsupported content type",
                format!("Content-Type was {content_type:?}"),
            ));
        }
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        if names != ["grant_type", "assertion"] {
            return Err(Rejection::new(
                "invalid_request",
                "invalid request parameters",
                format!("form fields were {names:?}"),
            ));
        }
        if fields[0].1 != GRANT_TYPE {
            return Err(Rejection::new(
                "unsupported_grant_type",
                "grant type not supported",
                format!("grant_type was {:?}", fields[0].1),
            ));
        }
        let assertion = &fields[1].1;
        self.state
            .assertions
            .lock()
            .unwrap()
            .push(assertion.clone());
        let invalid = |why: String| Rejection::new("invalid_grant", "invalid assertion", why);
        let (alg, claims) = verify_signature(assertion).map_err(invalid)?;
        if alg != Algorithm::RS256 {
            return Err(invalid(format!("alg was {alg:?}")));
        }
        let expected = &self.state.expected;
        let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
        if claim("iss") != expected.client_id {
            return Err(Rejection::new(
                "invalid_client_id",
                "client identifier invalid",
                format!("iss was {:?}", claims.get("iss")),
            ));
        }
        if claim("sub") != expected.username {
            return Err(Rejection::new(
                "invalid_grant",
                "user hasn't approved this consumer",
                format!("sub was {:?}", claims.get("sub")),
            ));
        }
        if claim("aud") != expected.audience {
            return Err(Rejection::new(
                "invalid_grant",
                "audience is invalid",
                format!("aud was {:?}", claims.get("aud")),
            ));
        }
        // Numeric, whole seconds: a string or a float is refused.
        let exp = match claims.get("exp") {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64().unwrap(),
            other => return Err(invalid(format!("exp was {other:?}"))),
        };
        let now = self.state.clock.now().unix_timestamp();
        if exp <= now {
            return Err(Rejection::new(
                "invalid_grant",
                "expired authorization code",
                format!("exp {exp} is not after now {now}"),
            ));
        }
        if exp > now + MAX_EXP_AHEAD_SECS {
            return Err(invalid(format!(
                "exp {exp} is more than {MAX_EXP_AHEAD_SECS} s after now {now}"
            )));
        }
        Ok(())
    }
}

struct Rejection {
    error: &'static str,
    description: &'static str,
    why: String,
}

impl Rejection {
    fn new(error: &'static str, description: &'static str, why: String) -> Self {
        Rejection {
            error,
            description,
            why,
        }
    }
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let response = match self.check(request) {
            Ok(()) => {
                let n = self.state.issued.fetch_add(1, Ordering::SeqCst) + 1;
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": access_token_for(n),
                    "scope": "api",
                    "instance_url": self.state.instance_url,
                    "id": format!("https://login.salesforce.com/id/{ORG_ID}/{USER_ID}"),
                    "token_type": "Bearer",
                    "issued_at": ISSUED_AT_MS,
                }))
            }
            Err(rejection) => {
                self.state.rejections.lock().unwrap().push(rejection.why);
                ResponseTemplate::new(400).set_body_json(json!({
                    "error": rejection.error,
                    "error_description": rejection.description,
                }))
            }
        };
        // Salesforce stamps its answers with its clock (the client reads its skew from it).
        let response = response.insert_header(
            "Date",
            salesforce_jwt_mock::http_date(self.state.clock.now()),
        );
        match self.delay {
            Some(delay) => response.set_delay(delay),
            None => response,
        }
    }
}

/// A wiremock server with a [`TokenEndpoint`] mounted, answering with the server's own URI as
/// `instance_url`.
pub async fn server_with_token_endpoint(clock: &ManualClock) -> (MockServer, TokenEndpoint) {
    let server = MockServer::start().await;
    let endpoint = TokenEndpoint::new(clock, server.uri());
    endpoint.mount(&server).await;
    (server, endpoint)
}

/// Requests the server received on `request_path`.
pub async fn requests_to(server: &MockServer, request_path: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.url.path() == request_path)
        .collect()
}

/// A Salesforce OAuth error response, stamped (`Date`) with the test clocks' start time.
pub fn oauth_error(status: u16, error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({ "error": error, "error_description": description }))
        .insert_header("Date", salesforce_jwt_mock::http_date(start_time()))
}

/// A Salesforce REST error response: `[{"message": ..., "errorCode": ...}]`.
pub fn rest_error(status: u16, error_code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!([{ "message": message, "errorCode": error_code }]))
}

/// The path of the REST resource the request tests send to.
pub const LIMITS: &str = "/services/data/v64.0/limits";

/// The OAuth error inside `error`; panics on any other error.
pub fn oauth(error: salesforce_jwt::Error) -> salesforce_jwt::OAuthError {
    match error {
        salesforce_jwt::Error::OAuth(e) => e,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

/// A 200 with the limits resource's JSON.
pub fn ok_json() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"DailyApiRequests": {}}))
}

/// A collector of `objects` only (what `ObjectCollector::new` was).
pub fn object_collector<S: salesforce_jwt::collect::CheckpointStore>(
    client: salesforce_jwt::JwtBearerClient,
    objects: Vec<salesforce_jwt::objects::EventObject>,
    store: S,
    options: salesforce_jwt::collect::ObjectCollectorOptions,
) -> Result<salesforce_jwt::collect::Collector<S>, salesforce_jwt::Error> {
    salesforce_jwt::collect::Collector::with_sources(
        client,
        None,
        objects,
        store,
        salesforce_jwt::collect::CollectorOptions::default(),
        options,
    )
}

/// A sink keeping the key of every committed object row (`Id` of a standard object,
/// `EventIdentifier` of a big one) and forgetting rolled-back ones.
#[derive(Default)]
pub struct ObjectRecorder {
    pub committed: Vec<(String, String)>,
    pub staged: Vec<(String, String)>,
}

/// The key a row of `object` is told apart by.
pub fn object_row_key(object: &str, row: &serde_json::Map<String, Value>) -> String {
    let standard = salesforce_jwt::objects::EventObject::named(object)
        .is_some_and(|o| o.kind() == salesforce_jwt::objects::ObjectKind::Standard);
    let field = if standard { "Id" } else { "EventIdentifier" };
    row[field].as_str().unwrap().to_string()
}

impl salesforce_jwt::collect::Sink for ObjectRecorder {
    async fn begin(
        &mut self,
        _unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        Ok(())
    }
    async fn write(
        &mut self,
        row: salesforce_jwt::collect::Row<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        let salesforce_jwt::collect::Row::Object { object, record } = row else {
            panic!("an object row")
        };
        let object = object.name().to_string();
        let key = object_row_key(&object, record.fields());
        self.staged.push((object, key));
        Ok(())
    }
    async fn commit(
        &mut self,
        _unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<Option<u64>, salesforce_jwt::Error> {
        self.committed.append(&mut self.staged);
        Ok(None)
    }
    async fn rollback(
        &mut self,
        _unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        self.staged.clear();
        Ok(())
    }
}

impl ObjectRecorder {
    /// The committed keys of `object`, each delivered once (asserted).
    pub fn keys(&self, object: &str) -> std::collections::BTreeSet<String> {
        let keys: Vec<&String> = self
            .committed
            .iter()
            .filter(|(o, _)| o == object)
            .map(|(_, k)| k)
            .collect();
        let unique: std::collections::BTreeSet<String> =
            keys.iter().map(|k| (*k).clone()).collect();
        assert_eq!(
            unique.len(),
            keys.len(),
            "{object}: a row was delivered twice"
        );
        unique
    }

    /// Every committed row once.
    pub fn assert_no_repeat(&self) {
        let unique: std::collections::BTreeSet<_> = self.committed.iter().collect();
        assert_eq!(
            unique.len(),
            self.committed.len(),
            "a row was delivered twice"
        );
    }
}

/// An hourly EventLogFile as the encoders' tests use it: no field names or types of its own.
pub fn hourly_log_file(
    id: &str,
    event_type: &str,
    log_date: OffsetDateTime,
    sequence: i64,
) -> salesforce_jwt::event_log_file::EventLogFile {
    salesforce_jwt::event_log_file::EventLogFile {
        log_file: format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        id: id.to_string(),
        event_type: event_type.into(),
        log_date,
        created_date: log_date,
        interval: Some(salesforce_jwt::event_log_file::Interval::Hourly),
        sequence,
        log_file_length: 0,
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: None,
        log_file_field_types: None,
    }
}

/// Every real log file in ../shared/realdata: (file name, EventType).
pub const REAL_FILES: &[(&str, &str)] = &[
    ("sfdcelf_Login_sample_data3.csv", "Login"),
    ("sfdcelf_API_sample_data1.csv", "API"),
    ("sfdcelf_BulkApi_sample_data2.csv", "BulkApi"),
    (
        "sfdcelf_QueuedExecution_sample_data4.csv",
        "QueuedExecution",
    ),
    ("sfdcelf_RestApi_sample_data5.csv", "RestApi"),
    (
        "sfdcelf_UITracking_create_event_sampledata1.csv",
        "UITracking",
    ),
    ("nr_ApexCallout_sample_log_lines.csv", "ApexCallout"),
];

/// A file of ../shared/realdata (real Salesforce files from public projects).
pub fn realdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/realdata")
        .join(name)
}

/// The real CSV `name` as `file` describes it, given the column names and types Salesforce
/// declares for `file`'s EventType (through the mock's table), and its decoded rows.
pub fn real_file(
    name: &str,
    file: salesforce_jwt::event_log_file::EventLogFile,
) -> (
    salesforce_jwt::event_log_file::EventLogFile,
    Vec<salesforce_jwt::event_log_file::LogRecord>,
) {
    let csv = std::fs::read(realdata(name)).unwrap();
    let mock = salesforce_jwt_mock::MockLogFile::builder(file.event_type.as_str())
        .interval(salesforce_jwt_mock::Interval::Daily)
        .log_date(file.log_date)
        .sequence(0)
        .created_date(file.log_date)
        .csv(csv)
        .build();
    let (file, rows) = mock_rows(&mock, file);
    assert!(!rows.is_empty(), "{name} has rows");
    (file, rows)
}

/// `mock`'s CSV decoded as `file` describes it, `file` given `mock`'s column names and types.
pub fn mock_rows(
    mock: &salesforce_jwt_mock::MockLogFile,
    file: salesforce_jwt::event_log_file::EventLogFile,
) -> (
    salesforce_jwt::event_log_file::EventLogFile,
    Vec<salesforce_jwt::event_log_file::LogRecord>,
) {
    let file = salesforce_jwt::event_log_file::EventLogFile {
        log_file_field_names: Some(mock.field_names.clone()),
        log_file_field_types: Some(mock.field_types.clone()),
        ..file
    };
    let mut decoder = salesforce_jwt::event_log_file::LogFileDecoder::for_file(&file);
    let mut rows = Vec::new();
    decoder.feed(&mock.csv, &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    (file, rows)
}

/// Log-file rows with the file each came from, as the encoders' tests feed them.
pub type FileRows<'a> = [(
    &'a salesforce_jwt::event_log_file::EventLogFile,
    &'a salesforce_jwt::event_log_file::LogRecord,
)];

/// What one NDJSON sink writes for `rows` in `format` (ECS documents with `options`): the
/// direct encoders, their caches carried from row to row and file to file.
pub fn through_sink(
    format: salesforce_jwt::format::OutputFormat,
    options: &salesforce_jwt::format::ecs::EcsOptions,
    rows: &FileRows<'_>,
) -> Vec<u8> {
    use salesforce_jwt::collect::{Row, Sink, Unit};
    let mut sink = salesforce_jwt::sink::NdjsonSink::new(Vec::new())
        .with_format(format)
        .with_ecs_options(options.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for &(file, record) in rows {
            sink.write(Row::LogFile { file, record }).await.unwrap();
        }
        if let Some(&(file, _)) = rows.first() {
            sink.commit(&Unit::LogFile(file)).await.unwrap();
        }
    });
    sink.into_inner()
}

/// What `serde_json` writes for `rows` through `NdjsonRow` or `EcsRow` (the reference the
/// direct encoders must match byte for byte), a line each.
pub fn serde_reference(
    format: salesforce_jwt::format::OutputFormat,
    options: &salesforce_jwt::format::ecs::EcsOptions,
    rows: &FileRows<'_>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for &(file, row) in rows {
        match format {
            salesforce_jwt::format::OutputFormat::Ecs => serde_json::to_writer(
                &mut out,
                &salesforce_jwt::format::ecs::EcsRow { file, row, options },
            ),
            _ => serde_json::to_writer(&mut out, &salesforce_jwt::sink::NdjsonRow { file, row }),
        }
        .unwrap();
        out.push(b'\n');
    }
    out
}

/// Two outputs equal line for line (the first line that differs is named), then whole.
pub fn assert_lines_equal(got: &[u8], expected: &[u8], what: &str) {
    let (got, expected) = (
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(expected),
    );
    for (n, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "{what}: line {n} differs");
    }
    assert_eq!(got, expected, "{what}");
}

/// Every real file ([`REAL_FILES`]) as an hourly EventLogFile of 2024-03-11 (Ids
/// `0AT300000000000AAA`, `0AT300000000001AAA`...), with its rows.
pub fn real_hourly_files() -> Vec<(
    salesforce_jwt::event_log_file::EventLogFile,
    Vec<salesforce_jwt::event_log_file::LogRecord>,
)> {
    let log_date = datetime!(2024-03-11 00:00 UTC);
    REAL_FILES
        .iter()
        .enumerate()
        .map(|(n, (name, event_type))| {
            let id = format!("0AT30000000{n:04}AAA");
            real_file(name, hourly_log_file(&id, event_type, log_date, 0))
        })
        .collect()
}

/// A sink that keeps delivered log-file rows in memory, `(EventLogFile Id, row JSON)` each,
/// with commit and rollback: what the collector's exactly-once tests check.
#[derive(Default)]
pub struct Recorder {
    pub committed: Vec<(String, String)>,
    pub pending: Vec<(String, String)>,
    /// The Id of each committed file, in commit order.
    pub commits: Vec<String>,
    pub rollbacks: usize,
}

impl salesforce_jwt::collect::Sink for Recorder {
    async fn begin(
        &mut self,
        _unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        assert!(
            self.pending.is_empty(),
            "a file began before the last one ended"
        );
        Ok(())
    }
    async fn write(
        &mut self,
        row: salesforce_jwt::collect::Row<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        let salesforce_jwt::collect::Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        self.pending
            .push((file.id.clone(), serde_json::to_string(row).unwrap()));
        Ok(())
    }
    async fn commit(
        &mut self,
        unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<Option<u64>, salesforce_jwt::Error> {
        let file = unit.log_file().expect("a log file");
        self.committed.append(&mut self.pending);
        self.commits.push(file.id.clone());
        Ok(None)
    }
    async fn rollback(
        &mut self,
        _unit: &salesforce_jwt::collect::Unit<'_>,
    ) -> Result<(), salesforce_jwt::Error> {
        self.pending.clear();
        self.rollbacks += 1;
        Ok(())
    }
}

/// What a complete, exactly-once delivery of the files `ids` of `mock` must look like: every
/// file's rows, each exactly once.
pub fn assert_exactly_once(
    mock: &salesforce_jwt_mock::MockOrg,
    ids: &[String],
    delivered: &[(String, String)],
) {
    use std::collections::{BTreeMap, HashSet};
    let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in delivered {
        *per_file.entry(id.as_str()).or_default() += 1;
    }
    let files = mock.files();
    let expected: BTreeMap<&str, usize> = files
        .iter()
        .filter_map(|f| Some((ids.iter().find(|i| **i == f.id)?.as_str(), f.row_count)))
        .collect();
    assert_eq!(per_file, expected);
    let unique: HashSet<&(String, String)> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "a row was delivered twice");
}

/// Log lines as the collector's `tracing` events write them, captured for a test to read.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures events at `level` and above for the duration of the returned guard, on this
    /// thread only (a current-thread runtime's tasks).
    pub fn on_this_thread(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.subscriber(level))
    }

    /// The process's capture of every thread's events at `level` and above, installed by the
    /// first call (a multi-thread runtime's tasks run on its workers; later calls' `level` is
    /// not looked at). Under nextest each test is its own process; under `cargo test` the
    /// tests of one binary share it, so a test looks for lines only its own collector writes.
    pub fn global(level: tracing::Level) -> &'static LogCapture {
        static GLOBAL: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            let capture = LogCapture::default();
            tracing::subscriber::set_global_default(capture.subscriber(level))
                .expect("no other global tracing subscriber in this test binary");
            capture
        })
    }

    fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// How many captured lines contain `text`.
    pub fn lines_with(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }
}
