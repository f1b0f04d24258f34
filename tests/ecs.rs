//! ECS output: golden documents from real Salesforce rows and records, `event.id` stability and
//! uniqueness, the ECS format through the file sink in a collector pass, and the NDJSON datetime
//! form.
//!
//! Goldens live in tests/fixtures/ecs/ as pretty JSON and are compared as `serde_json::Value`.
//! After a deliberate mapping change, `UPDATE_GOLDENS=1 cargo nextest run --test ecs` rewrites
//! them; review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use salesforce_jwt::clock::ManualClock;
use salesforce_jwt::collect::{
    Collector, CollectorOptions, MemoryCheckpointStore, Progress, Row, Sink, Unit,
};
use salesforce_jwt::event_log_file::{
    EventLogFile, EventLogFileQuery, Interval as SfInterval, LogFileDecoder, LogRecord,
    parse_log_datetime,
};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::format::ecs::{
    ECS_VERSION, EcsOptions, log_file_document, log_file_document_with, object_document,
    object_document_with,
};
use salesforce_jwt::format::event_id::{log_row_event_id, object_event_id};
use salesforce_jwt::sink::{NdjsonFileSink, NdjsonSink};
use salesforce_jwt::{Error, JwtBearerClient};
use salesforce_jwt_mock::{Fault, Interval, MockLogFile, MockOrg};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::datetime;

/// A real CSV as an EventLogFile would describe it (column types as Salesforce declares them,
/// through the mock's table) and its decoded rows.
fn real_file(name: &str, event_type: &str, id_number: u32) -> (EventLogFile, Vec<LogRecord>) {
    let placeholder = datetime!(2000-01-01 00:00 UTC);
    let id = format!("0AT30000000{id_number:04}AAA");
    let file = EventLogFile {
        log_file: format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        id,
        event_type: event_type.into(),
        log_date: placeholder,
        created_date: placeholder,
        interval: Some(SfInterval::Daily),
        sequence: 0,
        log_file_length: std::fs::metadata(common::realdata(name)).unwrap().len(),
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: None,
        log_file_field_types: None,
    };
    let (file, rows) = common::real_file(name, file);
    // The day the rows fall on, as the file's LogDate would be.
    let first = rows[0]
        .get("TIMESTAMP")
        .and_then(parse_log_datetime)
        .unwrap();
    let day = first.replace_time(time::Time::MIDNIGHT);
    let file = EventLogFile {
        log_date: day,
        created_date: day + time::Duration::hours(27),
        ..file
    };
    (file, rows)
}

fn check_golden(name: &str, doc: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ecs")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; UPDATE_GOLDENS=1 creates it", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc,
        &expected,
        "{name}: got\n{}",
        serde_json::to_string_pretty(doc).unwrap()
    );
}

fn log_golden(name: &str, csv: &str, event_type: &str, pick: impl Fn(&LogRecord) -> bool) {
    let (file, rows) = real_file(csv, event_type, 1);
    let row = rows.iter().find(|r| pick(r)).expect("a row to pick");
    check_golden(name, &log_file_document(&file, row));
}

#[test]
fn golden_login_log_file_row() {
    // A browser login: BROWSER_TYPE holds the user agent; SOURCE_IP is the public address,
    // CLIENT_IP an internal one.
    log_golden(
        "login_elf",
        "sfdcelf_Login_sample_data3.csv",
        "Login",
        |r| {
            r.get("BROWSER_TYPE")
                .is_some_and(|b| b.starts_with("Mozilla"))
        },
    );
}

#[test]
fn golden_api_log_file_row() {
    log_golden("api_elf", "sfdcelf_API_sample_data1.csv", "API", |_| true);
}

#[test]
fn golden_rest_api_log_file_row() {
    log_golden(
        "rest_api_elf",
        "sfdcelf_RestApi_sample_data5.csv",
        "RestApi",
        |_| true,
    );
}

#[test]
fn golden_apex_callout_log_file_row() {
    // URL is `"https://test.local.test"` with Salesforce's third pair of quotes.
    log_golden(
        "apex_callout_elf",
        "nr_ApexCallout_sample_log_lines.csv",
        "ApexCallout",
        |_| true,
    );
}

/// realtime-reference.md 3.1: a real LoginEvent row (Elastic's fixture).
const LOGIN_EVENT: &str = r#"{"ApiType":"N/A","ApiVersion":"N/A","Application":"testing_salesforce","Browser":"Unknown",
 "CipherSuite":"TLS_AES_256_GCM_SHA384","ClientVersion":"N/A",
 "CreatedDate":"2024-07-08T07:26:22.128+0000","EvaluationTime":0,
 "EventDate":"2024-07-08T07:26:18.239+0000","EventIdentifier":"95eeec6d-1e93-46c1-882b-88bd28f7f8de",
 "HttpMethod":"POST","Id":"000000000000000AAA","LoginHistoryId":"0YaJ400000H0kYoKAJ",
 "LoginKey":"Qv1P3iAGDrGQxSmN","LoginType":"Remote Access 2.0",
 "LoginUrl":"devtestin-dev-ed.develop.my.salesforce.com","Platform":"Unknown","SessionLevel":"STANDARD",
 "SourceIp":"89.160.20.112","Status":"Failed: Missing Consumer Key Parameter","TlsProtocol":"TLS 1.3",
 "UserId":"0055j00000AT6I1AAL","UserType":"Standard","Username":"salesforceinstance@devtest.in"}"#;

/// realtime-reference.md 3.2: a LogoutEvent row (Elastic's fixture, older API).
const LOGOUT_EVENT: &str = r#"{"EventDate":"2021-10-19T11:38:54Z","EventIdentifier":"06ce4a9d-8d6b-4a71-aad8-04d28c9a43df",
 "SourceIp":"89.160.20.112","CreatedById":"0055j000000q9s7AAA","Username":"user.name@email.com",
 "UserId":"0056j000000utlQAAR","RelatedEventIdentifier":null,"SessionKey":"6/HAElgoPCwskqBU",
 "CreatedDate":"2021-10-19T11:38:54Z","LoginKey":"CuRVtbMjat6xxbTH","SessionLevel":"STANDARD"}"#;

/// realtime-reference.md 3.3: a SetupAuditTrail row (Elastic's fixture), `attributes` dropped.
const SETUP_AUDIT_TRAIL: &str = r#"{"Action":"insertConnectedApplication","CreatedByContext":"Einstein","CreatedById":"0055j000000utlPAAQ",
 "CreatedByIssuer":null,"CreatedDate":"2022-08-16T09:26:38.000+0000","DelegateUser":"user1",
 "Display":"For user user@elastic.co, the User Verified Email status changed to verified",
 "Id":"0Ym5j000019nwonCAA","ResponsibleNamespacePrefix":"namespaceprefix","Section":"Connected Apps"}"#;

fn record(json: &str) -> Map<String, Value> {
    serde_json::from_str(json).unwrap()
}

#[test]
fn golden_login_event() {
    check_golden(
        "login_event",
        &object_document("LoginEvent", &record(LOGIN_EVENT)),
    );
}

#[test]
fn golden_logout_event() {
    check_golden(
        "logout_event",
        &object_document("LogoutEvent", &record(LOGOUT_EVENT)),
    );
}

#[test]
fn golden_setup_audit_trail() {
    check_golden(
        "setupaudittrail",
        &object_document("SetupAuditTrail", &record(SETUP_AUDIT_TRAIL)),
    );
}

#[test]
fn object_event_ids_follow_the_documented_rule() {
    assert_eq!(
        object_event_id("LoginEvent", &record(LOGIN_EVENT)),
        "95eeec6d-1e93-46c1-882b-88bd28f7f8de"
    );
    assert_eq!(
        object_event_id("SetupAuditTrail", &record(SETUP_AUDIT_TRAIL)),
        "0Ym5j000019nwonCAA"
    );
    // A LogoutEvent without EventIdentifier: the fingerprint, the same for another copy of the
    // row whatever else it carries, different for another session.
    let mut blank = record(LOGOUT_EVENT);
    blank.insert("EventIdentifier".into(), Value::from(""));
    let fallback = object_event_id("LogoutEvent", &blank);
    assert_eq!(fallback.len(), 32);
    blank.insert("CreatedDate".into(), Value::from("2021-10-19T11:38:57Z"));
    assert_eq!(object_event_id("LogoutEvent", &blank), fallback);
    blank.insert("SessionKey".into(), Value::from("another"));
    assert_ne!(object_event_id("LogoutEvent", &blank), fallback);
    let doc = object_document("LogoutEvent", &record(LOGOUT_EVENT));
    assert_eq!(doc["event"]["id"], "06ce4a9d-8d6b-4a71-aad8-04d28c9a43df");
}

#[test]
fn event_ids_are_unique_across_every_real_log_file() {
    let mut seen: HashMap<String, (String, u64)> = HashMap::new();
    let mut total = 0;
    for (number, (name, event_type)) in common::REAL_FILES.iter().enumerate() {
        let (file, rows) = real_file(name, event_type, number as u32);
        assert!(!rows.is_empty(), "{name}");
        total += rows.len();
        for row in &rows {
            let id = log_row_event_id(&file, row);
            assert_eq!(id.len(), 32);
            if let Some(first) = seen.insert(id.clone(), (name.to_string(), row.line())) {
                panic!("{id}: {name} line {} repeats {first:?}", row.line());
            }
        }
    }
    // UITracking rows share REQUEST_ID and TIMESTAMP: only the whole row tells them apart.
    assert_eq!(seen.len(), total);
}

#[test]
fn a_log_row_event_id_ignores_the_file_and_the_column_order() {
    let csv_a = "\"EVENT_TYPE\",\"REQUEST_ID\",\"USER_ID\",\"EMPTY\"\n\"Logout\",\"r1\",\"005A\",\"\"\n\"Logout\",\"r1\",\"005B\",\"\"\n";
    let csv_b = "\"USER_ID\",\"EVENT_TYPE\",\"REQUEST_ID\"\n\"005A\",\"Logout\",\"r1\"\n";
    let decode = |id: &str, csv: &str, sequence: i64| {
        let (mut file, _) = real_file("sfdcelf_API_sample_data1.csv", "Logout", 9);
        file.id = id.into();
        file.sequence = sequence;
        file.interval = Some(if sequence == 0 {
            SfInterval::Daily
        } else {
            SfInterval::Hourly
        });
        file.log_file_field_names = None;
        file.log_file_field_types = None;
        let mut decoder = LogFileDecoder::for_file(&file);
        let mut rows = Vec::new();
        decoder.feed(csv.as_bytes(), &mut rows).unwrap();
        decoder.finish(&mut rows).unwrap();
        rows.iter()
            .map(|r| log_row_event_id(&file, r))
            .collect::<Vec<_>>()
    };
    let a = decode("0AT000000000001AAA", csv_a, 0);
    let b = decode("0AT000000000002AAA", csv_b, 2);
    // One request logged out two sessions: two ids.
    assert_ne!(a[0], a[1]);
    // The same row in a re-published file with its columns in another order, without the
    // always-empty column: the same id.
    assert_eq!(a[0], b[0]);
}

fn now() -> OffsetDateTime {
    datetime!(2025-06-10 12:00 UTC)
}

async fn demo_org() -> (MockOrg, JwtBearerClient) {
    let clock = ManualClock::new(now());
    let mock = MockOrg::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    mock.add_demo_data(now());
    let config = mock.config_builder().build().unwrap();
    let client = JwtBearerClient::builder(config)
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    (mock, client)
}

async fn collect<K: Sink>(client: &JwtBearerClient, sink: &mut K) -> usize {
    let options = CollectorOptions {
        since: Duration::from_secs(7 * 24 * 3600),
        ..CollectorOptions::default()
    };
    let mut collector = Collector::new(
        client.clone(),
        EventLogFileQuery::new(),
        MemoryCheckpointStore::new(),
        options,
    )
    .unwrap();
    collector
        .run_pass(sink, &mut |_: &Progress| {}, &AtomicBool::new(false))
        .await
        .unwrap()
        .rows as usize
}

/// Keeps each committed row's (EventLogFile Id, event.id).
#[derive(Default)]
struct EventIds {
    committed: Vec<(String, String)>,
    pending: Vec<(String, String)>,
}

impl Sink for EventIds {
    async fn begin(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        Ok(())
    }
    async fn write(&mut self, row: Row<'_>) -> Result<(), Error> {
        let Row::LogFile { file, record: row } = row else {
            panic!("a log-file row")
        };
        self.pending
            .push((file.id.clone(), log_row_event_id(file, row)));
        Ok(())
    }
    async fn commit(&mut self, _unit: &Unit<'_>) -> Result<Option<u64>, Error> {
        self.committed.append(&mut self.pending);
        Ok(None)
    }
    async fn rollback(&mut self, _unit: &Unit<'_>) -> Result<(), Error> {
        self.pending.clear();
        Ok(())
    }
}

fn total_rows(mock: &MockOrg) -> usize {
    mock.files().iter().map(|f| f.row_count).sum()
}

#[tokio::test]
async fn event_ids_are_stable_across_collections_from_scratch_and_unique_in_the_demo_org() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (mock, client) = demo_org().await;
        let mut sink = EventIds::default();
        let rows = collect(&client, &mut sink).await;
        assert_eq!(rows, total_rows(&mock));
        assert_eq!(sink.committed.len(), rows);
        let ids: Vec<String> = sink.committed.into_iter().map(|(_, id)| id).collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "an event.id repeats in the demo org"
        );
        runs.push(ids);
    }
    assert!(runs[0].len() > 300, "{} rows", runs[0].len());
    let first: BTreeSet<&String> = runs[0].iter().collect();
    let second: BTreeSet<&String> = runs[1].iter().collect();
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_row_collected_again_from_a_republished_file_keeps_its_event_id() {
    let (mock, client) = demo_org().await;
    let original = mock
        .files()
        .into_iter()
        .find(|f| f.event_type == "Logout")
        .unwrap();
    let csv = mock.csv_of(&original.id).unwrap();
    // The same rows published again as a later hourly file: another Id, Interval, Sequence and
    // CreatedDate.
    let copy = mock.add_file(
        MockLogFile::builder("Logout")
            .interval(Interval::Hourly)
            .log_date(original.log_date)
            .sequence(3)
            .created_date(now() - time::Duration::minutes(5))
            .csv(csv)
            .build(),
    );
    let mut sink = EventIds::default();
    collect(&client, &mut sink).await;
    let ids_of = |file_id: &str| {
        sink.committed
            .iter()
            .filter(|(f, _)| f == file_id)
            .map(|(_, id)| id.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ids_of(&original.id), ids_of(&copy));
    assert_eq!(a.len(), original.row_count);
    assert_eq!(a, b);
}

#[tokio::test]
async fn the_file_sink_writes_ecs_documents_in_a_collector_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.ecs.ndjson");
    let (mock, client) = demo_org().await;
    // The first download is cut short after some rows were written: the sink takes them back
    // and the file is collected again, as in the plain format.
    mock.inject(Fault::TruncatedBody);
    let mut sink = NdjsonFileSink::open(&path, None)
        .unwrap()
        .with_format(OutputFormat::Ecs);
    let rows = collect(&client, &mut sink).await;
    drop(sink);
    assert_eq!(rows, total_rows(&mock));
    assert!(
        mock.received().downloads > mock.files().len() as u64,
        "a download was repeated"
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), rows);
    let mut datasets = BTreeSet::new();
    for doc in &docs {
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
        assert_eq!(doc["event"]["module"], "salesforce");
        assert_eq!(doc["event"]["kind"], "event");
        let timestamp = doc["@timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z'),
            "{timestamp}"
        );
        let dataset = doc["event"]["dataset"].as_str().unwrap().to_string();
        if dataset == "salesforce.login" {
            // Every generated Login row has LOGIN_STATUS.
            assert!(doc["event"]["outcome"].is_string(), "{doc}");
            assert_eq!(doc["event"]["category"][0], "authentication");
        }
        datasets.insert(dataset);
    }
    let expected: BTreeSet<String> = ["login", "logout", "api", "uri", "apex", "report"]
        .iter()
        .map(|d| format!("salesforce.{d}"))
        .collect();
    assert_eq!(datasets, expected);

    // The ids in the file are the library's event ids of the same rows, collected afresh.
    let (_fresh, client) = demo_org().await;
    let mut ids = EventIds::default();
    collect(&client, &mut ids).await;
    let from_file: BTreeSet<&str> = docs
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap())
        .collect();
    let computed: BTreeSet<&str> = ids.committed.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(from_file.len(), docs.len());
    assert_eq!(from_file, computed);
}

#[tokio::test]
async fn ndjson_rows_write_rfc3339_utc_datetimes() {
    let (file, rows) = real_file("nr_ApexCallout_sample_log_lines.csv", "ApexCallout", 1);
    let file = EventLogFile {
        log_date: datetime!(2024-03-11 00:00 UTC),
        ..file
    };
    for sink in [
        NdjsonSink::new(Vec::new()),
        NdjsonSink::new(Vec::new()).with_format(OutputFormat::Ndjson),
    ] {
        let mut sink = sink;
        sink.begin(&Unit::LogFile(&file)).await.unwrap();
        sink.write(Row::LogFile {
            file: &file,
            record: &rows[0],
        })
        .await
        .unwrap();
        sink.commit(&Unit::LogFile(&file)).await.unwrap();
        let out = String::from_utf8(sink.into_inner()).unwrap();
        let row: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(row["LogDate"], "2024-03-11T00:00:00.000Z");
        assert_eq!(row["TIMESTAMP_DERIVED"], "2024-03-11T16:00:00.000Z");
        assert_eq!(row["EventType"], "ApexCallout");
        assert!(row.get("event").is_none(), "plain rows, not ECS: {row}");
    }
}

#[test]
fn output_format_names() {
    assert_eq!(
        "ndjson".parse::<OutputFormat>().unwrap(),
        OutputFormat::Ndjson
    );
    assert_eq!(" ECS ".parse::<OutputFormat>().unwrap(), OutputFormat::Ecs);
    assert_eq!(OutputFormat::default(), OutputFormat::Ndjson);
    for format in OutputFormat::ALL {
        assert_eq!(format.to_string().parse::<OutputFormat>().unwrap(), *format);
    }
    let err = "csv".parse::<OutputFormat>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown output format \"csv\": use one of ndjson, ecs"
    );
    // In configuration files, by the same names.
    let format: OutputFormat = serde_json::from_str("\"ecs\"").unwrap();
    assert_eq!(format, OutputFormat::Ecs);
    assert_eq!(
        serde_json::to_string(&OutputFormat::Ndjson).unwrap(),
        "\"ndjson\""
    );
    let err = serde_json::from_str::<OutputFormat>("\"xml\"").unwrap_err();
    assert!(err.to_string().contains("use one of ndjson, ecs"), "{err}");
}

#[test]
fn threat_detection_records_are_alerts_keyed_by_their_id() {
    let detection = record(
        r#"{"Id":"0Yj5j000000AbCdCAK","EventIdentifier":"a0b1c2","EventDate":"2024-07-08T07:00:00.000+0000",
        "CreatedDate":"2024-07-08T07:40:00.000+0000","UserId":"0055j00000AT6I1AAL","SourceIp":"Salesforce.com IP",
        "Score":0.93,"SessionHijackingEventNumber":"00000042"}"#,
    );
    let doc = object_document("SessionHijackingEventStore", &detection);
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["event"]["id"], "0Yj5j000000AbCdCAK");
    assert_eq!(doc["event"]["dataset"], "salesforce.session_hijacking");
    assert_eq!(doc["event"]["category"][0], "intrusion_detection");
    // Detected at EventDate, stored at CreatedDate.
    assert_eq!(doc["@timestamp"], "2024-07-08T07:00:00.000Z");
    assert_eq!(doc["event"]["created"], "2024-07-08T07:40:00.000Z");
    // Not an address: no source.ip, the text stays under salesforce.
    assert!(doc.get("source").is_none(), "{doc}");
    let fields = &doc["salesforce"]["session_hijacking"];
    assert_eq!(fields["source_ip"], "Salesforce.com IP");
    assert_eq!(fields["event_identifier"], "a0b1c2");
    assert_eq!(fields["score"], 0.93);
    assert!(fields.get("id").is_none(), "the Id went to event.id: {doc}");
}

#[test]
fn a_log_row_without_an_address_or_timestamp_columns() {
    let (file, _) = real_file("sfdcelf_API_sample_data1.csv", "URI", 8);
    let csv = "\"EVENT_TYPE\",\"CLIENT_IP\",\"LOGIN_STATUS\",\"TLS_PROTOCOL\"\n\"URI\",\"Salesforce.com IP\",\"LOGIN_ERROR_INVALID_PASSWORD\",\"Unknown\"\n";
    let file = EventLogFile {
        log_file_field_names: None,
        log_file_field_types: None,
        ..file
    };
    let mut decoder = LogFileDecoder::for_file(&file);
    let mut rows = Vec::new();
    decoder.feed(csv.as_bytes(), &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    let doc = log_file_document(&file, &rows[0]);
    assert_eq!(doc["@timestamp"], "2015-07-26T00:00:00.000Z", "LogDate");
    assert_eq!(doc["event"]["outcome"], "failure");
    assert!(
        doc.get("source").is_none() && doc.get("related").is_none(),
        "{doc}"
    );
    assert!(doc.get("tls").is_none(), "{doc}");
    let fields = &doc["salesforce"]["uri"];
    assert_eq!(fields["client_ip"], "Salesforce.com IP");
    assert_eq!(fields["login_status"], "LOGIN_ERROR_INVALID_PASSWORD");
    assert_eq!(fields["tls_protocol"], "Unknown");
}

// ---------------------------------------------------------------------------------------------
// Parity with Elastic's Salesforce integration: one test per data stream, a document per
// pipeline test case of elastic/integrations (tests/fixtures/ecs/elastic/, origins in
// tests/fixtures/README.md).

/// One of Elastic's pipeline test cases: its input as our collector has it and the document
/// Elastic's pipeline makes of it, without what a collector cannot know (`event.ingested`,
/// `event.original`, `tags`, the `_id` copy `document_id`) and what Elasticsearch itself adds
/// (GeoIP `source.geo`/`source.as` and parsed `user_agent` fields).
#[derive(serde::Deserialize)]
struct ElasticCase {
    name: String,
    provider: String,
    #[serde(rename = "type")]
    source_type: String,
    input: Map<String, Value>,
    expected: Value,
}

#[derive(serde::Deserialize)]
struct ElasticCases {
    data_stream: String,
    cases: Vec<ElasticCase>,
}

fn elastic_cases(stream: &str) -> ElasticCases {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ecs/elastic")
        .join(format!("{stream}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn csv_text(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// An EventLogFile of `event_type` whose CSV is the one row `columns` (Elastic's agent turned
/// each CSV row into such an object), column types as Salesforce declares them.
fn one_row_file(event_type: &str, columns: &Map<String, Value>) -> (EventLogFile, LogRecord) {
    let header: Vec<String> = columns.keys().map(|k| csv_text(k)).collect();
    let values: Vec<String> = columns
        .values()
        .map(|v| csv_text(v.as_str().unwrap()))
        .collect();
    let csv = format!("{}\n{}\n", header.join(","), values.join(","));
    let placeholder = datetime!(2000-01-01 00:00 UTC);
    let mock = MockLogFile::builder(event_type)
        .interval(Interval::Daily)
        .log_date(placeholder)
        .sequence(0)
        .created_date(placeholder)
        .csv(csv.clone().into_bytes())
        .build();
    let id = "0AT300000000001AAA".to_string();
    let file = EventLogFile {
        log_file: format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        id,
        event_type: event_type.into(),
        log_date: placeholder,
        created_date: placeholder,
        interval: Some(SfInterval::Daily),
        sequence: 0,
        log_file_length: csv.len() as u64,
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: Some(mock.field_names),
        log_file_field_types: Some(mock.field_types),
    };
    let mut decoder = LogFileDecoder::for_file(&file);
    let mut rows = Vec::new();
    decoder.feed(csv.as_bytes(), &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    assert_eq!(rows.len(), 1);
    (file, rows.remove(0))
}

/// Our document of a case, built as the sinks build it. A log-file row's document from the
/// direct encoder (what a sink writes) must be the reference builder's.
fn our_document(case: &ElasticCase, options: &EcsOptions) -> Value {
    if case.provider == "EventLogFile" {
        let (file, row) = one_row_file(&case.source_type, &case.input);
        let reference = log_file_document_with(&file, &row, options);
        let written = common::through_sink(OutputFormat::Ecs, options, &[(&file, &row)]);
        let written: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(written, reference, "{}: the sink's document", case.name);
        reference
    } else {
        object_document_with(&case.source_type, &case.input, options)
    }
}

/// Every leaf of a document by its dotted path; arrays are leaves.
fn flatten(value: &Value, prefix: &str, out: &mut std::collections::BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &path, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Whether our value is Elastic's: equal JSON (so equal type: `1` is not `1.0`), or a float
/// that Elastic's `Float.parseFloat` rounded to single precision and we keep in double
/// precision (`DB_TOTAL_TIME` 81604961 is Elastic's 8.160496E7).
fn same_value(ours: &Value, elastic: &Value) -> bool {
    if ours == elastic {
        return true;
    }
    match (ours, elastic) {
        (Value::Number(o), Value::Number(e)) if o.is_f64() && e.is_f64() => {
            let (o, e) = (o.as_f64().unwrap(), e.as_f64().unwrap());
            f64::from(e as f32) == e && o as f32 == e as f32
        }
        _ => false,
    }
}

/// The fields compared whether Elastic's document has them or not: ours has one exactly when
/// Elastic's does.
fn always_compared(path: &str) -> bool {
    matches!(
        path,
        "@timestamp"
            | "event.action"
            | "event.category"
            | "event.type"
            | "event.outcome"
            | "source.ip"
    ) || path.starts_with("user.")
}

/// Compares our document of every case of `stream` with Elastic's, field by field; panics
/// listing every difference. Returns (fields equal, fields compared) per case.
fn check_parity(stream: &str) -> Vec<(String, usize, usize)> {
    let cases = elastic_cases(stream);
    assert_eq!(cases.data_stream, stream);
    let options = EcsOptions::default()
        .with_namespace("parity")
        .unwrap()
        .with_instance_url("https://acme.my.salesforce.com/")
        .with_organization_id("00D5j000000PRTY");
    let mut results = Vec::new();
    let mut differences = Vec::new();
    for case in &cases.cases {
        let ours = our_document(case, &options);
        let mut expected = std::collections::BTreeMap::new();
        flatten(&case.expected, "", &mut expected);
        let mut got = std::collections::BTreeMap::new();
        flatten(&ours, "", &mut got);
        let mut equal = 0;
        for (path, want) in &expected {
            match got.get(path) {
                Some(have) if same_value(have, want) => {
                    equal += 1;
                    if have != want {
                        println!(
                            "  {}: {path}: ours {have}, Elastic's single precision {want}",
                            case.name
                        );
                    }
                }
                have => differences.push(format!(
                    "{}: {path}: ours {have:?}, Elastic {want}",
                    case.name
                )),
            }
        }
        for path in got.keys().filter(|p| always_compared(p)) {
            if !expected.contains_key(path) {
                differences.push(format!(
                    "{}: {path}: ours {}, Elastic has none",
                    case.name, got[path]
                ));
            }
        }
        let dataset = format!("salesforce.{stream}");
        for (path, want) in [
            ("data_stream.type", "logs"),
            ("data_stream.dataset", dataset.as_str()),
            ("data_stream.namespace", "parity"),
            ("event.dataset", dataset.as_str()),
            ("event.module", "salesforce"),
            ("salesforce.instance_url", "https://acme.my.salesforce.com"),
        ] {
            if got.get(path) != Some(&Value::from(want)) {
                differences.push(format!(
                    "{}: {path}: ours {:?}, want {want}",
                    case.name,
                    got.get(path)
                ));
            }
        }
        assert!(got.contains_key("event.id"), "{}: no event.id", case.name);
        // Records do not name their org: the options do. Log-file rows have ORGANIZATION_ID.
        if case.provider == "Object" {
            assert_eq!(
                got.get("organization.id"),
                Some(&Value::from("00D5j000000PRTY")),
                "{}",
                case.name
            );
        } else {
            assert_eq!(
                got.get("organization.id"),
                case.input.get("ORGANIZATION_ID"),
                "{}",
                case.name
            );
        }
        results.push((case.name.clone(), equal, expected.len()));
    }
    let (equal, total) = results
        .iter()
        .fold((0, 0), |(e, t), (_, ce, ct)| (e + ce, t + ct));
    println!("{stream}: {equal}/{total} fields of Elastic's documents equal");
    for (name, e, t) in &results {
        println!("  {name}: {e}/{t}");
    }
    assert!(
        differences.is_empty(),
        "{stream}:\n{}",
        differences.join("\n")
    );
    assert_eq!(equal, total);
    results
}

#[test]
fn elastic_parity_login() {
    check_parity("login");
}

#[test]
fn elastic_parity_logout() {
    check_parity("logout");
}

#[test]
fn elastic_parity_apex() {
    check_parity("apex");
}

#[test]
fn elastic_parity_setupaudittrail() {
    check_parity("setupaudittrail");
}

#[test]
fn elastic_parity_aura_request() {
    check_parity("aura_request");
}

/// The JSON type of a field as Elasticsearch would map it.
fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(n) if n.is_f64() => "double".into(),
        Value::Number(_) => "long".into(),
        Value::String(_) => "keyword".into(),
        Value::Array(items) => {
            let kinds: BTreeSet<String> = items.iter().map(json_kind).collect();
            format!(
                "array of {}",
                kinds.into_iter().collect::<Vec<_>>().join("|")
            )
        }
        Value::Object(_) => "object".into(),
    }
}

/// Rows of a generated log file of `event_type` (the mock's column set and types).
fn mock_rows(event_type: &str, seed: u64) -> (EventLogFile, Vec<LogRecord>) {
    let log_date = datetime!(2024-03-11 00:00 UTC);
    let mock = MockLogFile::builder(event_type)
        .interval(Interval::Daily)
        .log_date(log_date)
        .sequence(0)
        .created_date(log_date)
        .rows(200)
        .seed(seed)
        .build();
    let id = format!("0AT50000000{seed:04}AAA");
    let file = EventLogFile {
        log_file: format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        id,
        event_type: event_type.into(),
        log_date,
        created_date: log_date,
        interval: Some(SfInterval::Daily),
        sequence: 0,
        log_file_length: mock.csv.len() as u64,
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: Some(mock.field_names.clone()),
        log_file_field_types: Some(mock.field_types.clone()),
    };
    let mut decoder = LogFileDecoder::for_file(&file);
    let mut rows = Vec::new();
    decoder.feed(&mock.csv, &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    (file, rows)
}

/// Every data stream's documents, from log files and from queried objects, give each field one
/// JSON type, and never a value where another document has an object: one index mapping fits
/// them all (today a Login file's `api_version` was a number and LoginEvent's a string).
#[test]
fn each_field_has_one_json_type_across_the_sources_of_a_data_stream() {
    let mut docs: HashMap<String, Vec<(String, Value)>> = HashMap::new();
    let options = EcsOptions::default();
    for stream in ["login", "logout", "apex", "setupaudittrail", "aura_request"] {
        for case in elastic_cases(stream).cases {
            let doc = our_document(&case, &options);
            docs.entry(stream.to_string())
                .or_default()
                .push((case.name.clone(), doc));
        }
    }
    let mut add_rows = |stream: &str, label: &str, file: &EventLogFile, rows: &[LogRecord]| {
        for row in rows {
            docs.entry(stream.to_string()).or_default().push((
                format!("{label} line {}", row.line()),
                log_file_document(file, row),
            ));
        }
    };
    let (file, rows) = real_file("sfdcelf_Login_sample_data3.csv", "Login", 1);
    add_rows("login", "real Login", &file, &rows);
    let (file, rows) = real_file("nr_ApexCallout_sample_log_lines.csv", "ApexCallout", 2);
    add_rows("apex", "real ApexCallout", &file, &rows);
    for (n, (event_type, stream)) in [
        ("Login", "login"),
        ("Logout", "logout"),
        ("ApexExecution", "apex"),
        ("ApexCallout", "apex"),
        ("ApexUnexpectedException", "apex"),
    ]
    .into_iter()
    .enumerate()
    {
        let (file, rows) = mock_rows(event_type, n as u64);
        add_rows(stream, &format!("mock {event_type}"), &file, &rows);
    }
    for (object, json, stream) in [
        ("LoginEvent", LOGIN_EVENT, "login"),
        ("LogoutEvent", LOGOUT_EVENT, "logout"),
        ("SetupAuditTrail", SETUP_AUDIT_TRAIL, "setupaudittrail"),
    ] {
        docs.entry(stream.to_string())
            .or_default()
            .push((object.to_string(), object_document(object, &record(json))));
    }

    let mut problems = Vec::new();
    for (stream, docs) in &docs {
        let mut kinds: std::collections::BTreeMap<String, (String, String)> = Default::default();
        for (label, doc) in docs {
            assert_eq!(
                doc["data_stream"]["dataset"],
                format!("salesforce.{stream}"),
                "{label}"
            );
            let mut fields = std::collections::BTreeMap::new();
            flatten(doc, "", &mut fields);
            for (path, value) in fields {
                let kind = json_kind(&value);
                match kinds.get(&path) {
                    Some((first, first_label)) if *first != kind => problems.push(format!(
                        "{stream}: {path} is {first} in {first_label}, {kind} in {label}"
                    )),
                    Some(_) => {}
                    None => {
                        kinds.insert(path, (kind, label.clone()));
                    }
                }
            }
        }
        let paths: Vec<&String> = kinds.keys().collect();
        for path in &paths {
            let prefix = format!("{path}.");
            if let Some(under) = paths.iter().find(|p| p.starts_with(&prefix)) {
                problems.push(format!(
                    "{stream}: {path} is a value and {under} is under it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A column Elastic does not name is kept, but never under a key Elastic's mapping uses for
/// something else: a Login file's `api` column would be a text where `api` is an object.
#[test]
fn a_kept_column_never_takes_a_name_elastic_uses() {
    let columns: Map<String, Value> = serde_json::from_str(
        r#"{"TIMESTAMP_DERIVED":"2024-01-01T00:00:00.000Z","API_TYPE":"f","api":"text",
            "SESSION_KEY":"s1","USER_ID":"005000000000001"}"#,
    )
    .unwrap();
    let (file, row) = one_row_file("Login", &columns);
    let doc = log_file_document(&file, &row);
    let login = &doc["salesforce"]["login"];
    assert_eq!(login["api"], serde_json::json!({"type": "Feed"}));
    assert_eq!(login["api_column"], "text");
    assert_eq!(login["session_key"], "s1");
    assert_eq!(login["user_id"], "005000000000001");
    // Without USER_ID_DERIVED the 15-character USER_ID still names the user.
    assert_eq!(doc["user"]["id"], "005000000000001");
}
