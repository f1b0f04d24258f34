//! SOQL paging as a lazy stream, and the typed EventLogFile query, against wiremock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use salesforce_jwt::event_log_file::{EventLogFile, EventLogFileQuery, EventType, Interval};
use salesforce_jwt::{Error, QueryOptions};
use serde::Deserialize;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const QUERY_PATH: &str = "/services/data/v64.0/query";

#[derive(Debug, Deserialize, PartialEq)]
struct Row {
    #[serde(rename = "Id")]
    id: String,
}

fn page(ids: std::ops::Range<u32>, next: Option<&str>, total: u32) -> ResponseTemplate {
    let records: Vec<_> = ids
        .map(|i| json!({"attributes": {"type": "Account", "url": format!("/x/{i}")}, "Id": format!("001{i:015}")}))
        .collect();
    let mut body = json!({"totalSize": total, "done": next.is_none(), "records": records});
    if let Some(next) = next {
        body["nextRecordsUrl"] = json!(next);
    }
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("Sforce-Limit-Info", "api-usage=18/5000")
}

fn ids(range: std::ops::Range<u32>) -> Vec<Row> {
    range
        .map(|i| Row {
            id: format!("001{i:015}"),
        })
        .collect()
}

#[tokio::test]
async fn three_pages_are_followed_in_order() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(query_param("q", "SELECT Id FROM Account"))
        .respond_with(page(0..3, Some("/services/data/v64.0/query/01gA-3"), 7))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query/01gA-3"))
        .respond_with(page(3..6, Some("/services/data/v64.0/query/01gA-6"), 7))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query/01gA-6"))
        .respond_with(page(6..7, None, 7))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let rows: Vec<Row> = client
        .query("SELECT Id FROM Account", QueryOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows, ids(0..7));
    assert_eq!(
        client.last_api_usage().map(|u| (u.used, u.limit)),
        Some((18, 5000))
    );
}

#[tokio::test]
async fn dropping_the_stream_after_page_one_sends_nothing_more() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(0..3, Some("/services/data/v64.0/query/01gB-3"), 6))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query/01gB-3"))
        .respond_with(page(3..6, None, 6))
        .expect(0)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let stream = client.query::<Row>("SELECT Id FROM Account", QueryOptions::default());
    let first_page: Vec<Row> = stream.take(3).try_collect().await.unwrap();
    assert_eq!(first_page, ids(0..3));
    // `take` dropped the stream: the expectations above are verified when the server drops.
}

#[tokio::test]
async fn a_401_while_paging_reauthenticates_and_asks_for_the_same_page() {
    let clock = common::manual_clock();
    let (server, tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(0..2, Some("/services/data/v64.0/query/01gC-2"), 4))
        .expect(1)
        .mount(&server)
        .await;
    // The session is revoked between pages: the first try of page 2 is refused.
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query/01gC-2"))
        .and(header(
            "authorization",
            format!("Bearer {}", common::access_token_for(1)).as_str(),
        ))
        .respond_with(common::rest_error(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v64.0/query/01gC-2"))
        .and(header(
            "authorization",
            format!("Bearer {}", common::access_token_for(2)).as_str(),
        ))
        .respond_with(page(2..4, None, 4))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let rows: Vec<Row> = client
        .query("SELECT Id FROM Account", QueryOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows, ids(0..4));
    assert_eq!(tokens.issued(), 2);
}

#[tokio::test]
async fn a_next_records_url_off_the_instance_is_refused() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(
            0..1,
            Some("https://evil.example/services/data/v64.0/query/01gD-1"),
            2,
        ))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let results: Vec<Result<Row, Error>> = client
        .query("SELECT Id FROM Account", QueryOptions::default())
        .collect()
        .await;
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].is_ok());
    match &results[1] {
        Err(Error::ForeignUrl { url, .. }) => assert!(url.starts_with("https://evil.example/")),
        other => panic!("expected ForeignUrl, got {other:?}"),
    }
}

#[tokio::test]
async fn batch_size_is_sent_as_a_query_option() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(header("sforce-query-options", "batchSize=500"))
        .respond_with(page(0..1, None, 1))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let options = QueryOptions {
        batch_size: Some(500),
    };
    let rows: Vec<Row> = client
        .query("SELECT Id FROM Account", options)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_honouring_retry_after() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "7")
                .set_body_string("<html><body>Service Unavailable</body></html>"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(page(0..2, None, 2))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let rows: Vec<Row> = client
        .query("SELECT Id FROM Account", QueryOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(clock.slept(), vec![Duration::from_secs(7)]);
}

#[tokio::test]
async fn request_limit_exceeded_is_its_own_error_with_usage() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(
            common::rest_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .insert_header("Sforce-Limit-Info", "api-usage=5001/5000"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let err = client
        .count("SELECT COUNT() FROM EventLogFile")
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    match &err {
        Error::RequestLimitExceeded { message, usage } => {
            assert_eq!(message, "TotalRequests Limit exceeded.");
            assert_eq!(usage.map(|u| (u.used, u.limit)), Some((5001, 5000)));
        }
        other => panic!("expected RequestLimitExceeded, got {other:?}"),
    }
    assert!(err.to_string().contains("5001/5000"), "{err}");
}

#[tokio::test]
async fn missing_permissions_are_named() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(query_param("q", "SELECT COUNT() FROM EventLogFile"))
        .respond_with(common::rest_error(
            400,
            "INVALID_TYPE",
            "sObject type 'EventLogFile' is not supported.",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(query_param("q", "SELECT COUNT() FROM Account"))
        .respond_with(common::rest_error(
            403,
            "API_DISABLED_FOR_ORG",
            "API is not enabled for this Organization or Partner",
        ))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let no_elf = client
        .count("SELECT COUNT() FROM EventLogFile")
        .await
        .unwrap_err();
    assert!(
        no_elf.to_string().contains("View Event Log Files"),
        "{no_elf}"
    );
    let no_api = client
        .count("SELECT COUNT() FROM Account")
        .await
        .unwrap_err();
    assert!(no_api.to_string().contains("API Enabled"), "{no_api}");
    assert!(!no_api.is_retryable());
}

#[tokio::test]
async fn event_log_files_are_typed() {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    let query = EventLogFileQuery::new().event_type(EventType::Login);
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .and(query_param("q", query.to_soql().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 2, "done": true, "records": [
                {"attributes": {"type": "EventLogFile", "url": "/services/data/v64.0/sobjects/EventLogFile/0AT000000000001AAA"},
                 "Id": "0AT000000000001AAA", "EventType": "Login", "LogDate": "2024-03-11T00:00:00.000+0000",
                 "CreatedDate": "2024-03-12T03:14:15.000+0000", "Interval": "Daily", "Sequence": 0,
                 "LogFileLength": 2692.0, "LogFile": "/services/data/v64.0/sobjects/EventLogFile/0AT000000000001AAA/LogFile",
                 "ApiVersion": 64.0, "LogFileContentType": "CSV", "LogFileFieldNames": "EVENT_TYPE,TIMESTAMP",
                 "LogFileFieldTypes": "String,String"},
                {"attributes": {"type": "EventLogFile", "url": "/x"},
                 "Id": "0AT000000000002AAA", "EventType": "SomethingNew2027", "LogDate": "2024-03-11T15:00:00.000+0000",
                 "CreatedDate": "2024-03-11T19:00:00.000+0000", "Interval": "Hourly", "Sequence": 2,
                 "LogFileLength": 10.0, "LogFile": "/services/data/v64.0/sobjects/EventLogFile/0AT000000000002AAA/LogFile",
                 "ApiVersion": 64.0, "LogFileContentType": "CSV", "LogFileFieldNames": null, "LogFileFieldTypes": null}
            ]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    let files: Vec<EventLogFile> = client.event_log_files(&query).try_collect().await.unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].event_type, EventType::Login);
    assert_eq!(files[0].log_file_length, 2692);
    assert_eq!(
        files[1].event_type,
        EventType::Other("SomethingNew2027".into())
    );
    assert_eq!(files[1].interval, Some(Interval::Hourly));
    assert_eq!(files[1].sequence, 2);
}

fn realdata(name: &str) -> serde_json::Value {
    let path = format!("{}/../shared/realdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

async fn files_from_page(body: serde_json::Value) -> Result<Vec<EventLogFile>, Error> {
    let clock = common::manual_clock();
    let (server, _tokens) = common::server_with_token_endpoint(&clock).await;
    Mock::given(method("GET"))
        .and(path(QUERY_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server.uri()), &clock);
    client
        .event_log_files(&EventLogFileQuery::new())
        .try_collect()
        .await
}

#[tokio::test]
async fn a_record_without_created_date_is_an_error_naming_the_field() {
    // A real response from a query that did not select CreatedDate.
    let err = files_from_page(realdata("sfdcelf_eventlogfile_list.json"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("EventLogFile some_id has no CreatedDate")
            && text.contains("the query must select it"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_required_fields_are_named_one_by_one() {
    let full = json!({"Id": "0AT000000000001AAA", "EventType": "Login",
        "LogDate": "2024-03-11T00:00:00.000+0000", "CreatedDate": "2024-03-12T03:14:15.000+0000",
        "LogFileLength": 10.0, "LogFile": "/services/data/v64.0/sobjects/EventLogFile/0AT000000000001AAA/LogFile"});
    for field in ["EventType", "LogDate", "CreatedDate", "LogFile"] {
        let mut record = full.clone();
        record.as_object_mut().unwrap().remove(field);
        let page = json!({"totalSize": 1, "done": true, "records": [record]});
        let text = files_from_page(page).await.unwrap_err().to_string();
        assert!(
            text.contains(&format!("EventLogFile 0AT000000000001AAA has no {field}")),
            "{field}: {text}"
        );
    }
}

#[tokio::test]
async fn a_record_without_log_file_length_reads_as_unknown_length() {
    // A real response (newrelic-salesforce-exporter) whose query left LogFileLength out.
    let records = realdata("nr_sample_log_records.json");
    let page = json!({"totalSize": 2, "done": true, "records": records});
    let files = files_from_page(page).await.unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].log_file_length, 0);
    assert_eq!(files[0].id, "00001111AAAABBBB");
    assert_eq!(files[1].sequence, 2);
    assert_eq!(files[1].event_type, EventType::ApexCallout);
}

#[tokio::test]
async fn hostile_numbers_in_a_record_are_errors_not_panics() {
    for (field, value, expected) in [
        ("LogFileLength", json!(1e300), "LogFileLength"),
        ("LogFileLength", json!(-1.0), "LogFileLength"),
        ("Sequence", json!(1e300), "Sequence"),
        ("Sequence", json!(1.5), "Sequence"),
    ] {
        let mut record = json!({"Id": "0AT000000000001AAA", "EventType": "Login",
            "LogDate": "2024-03-11T00:00:00.000+0000", "CreatedDate": "2024-03-12T03:14:15.000+0000",
            "LogFileLength": 10.0, "LogFile": "/x"});
        record[field] = value;
        let page = json!({"totalSize": 1, "done": true, "records": [record]});
        let text = files_from_page(page).await.unwrap_err().to_string();
        assert!(text.contains(expected), "{field}: {text}");
    }
    // totalSize beyond u64 is a clear error too.
    let page = json!({"totalSize": -5, "done": true, "records": []});
    let text = files_from_page(page).await.unwrap_err().to_string();
    assert!(text.contains("query page"), "{text}");
}

#[test]
fn datetimes_with_one_to_nine_fraction_digits_parse() {
    use salesforce_jwt::datetime;
    use salesforce_jwt::event_log_file::parse_log_datetime;
    use time::macros::datetime;
    for digits in 1..=9 {
        let fraction = "123456789"[..digits].to_string();
        let nanos: u32 = format!("{fraction:0<9}").parse().unwrap();
        let expected = datetime!(2024-03-11 15:00:00 UTC)
            .replace_nanosecond(nanos)
            .unwrap();
        let rest = format!("2024-03-11T15:00:00.{fraction}+0000");
        assert_eq!(datetime::parse(&rest).unwrap(), expected, "{rest}");
        let iso = format!("2024-03-11T15:00:00.{fraction}Z");
        assert_eq!(parse_log_datetime(&iso), Some(expected), "{iso}");
        let compact = format!("20240311150000.{fraction}");
        assert_eq!(parse_log_datetime(&compact), Some(expected), "{compact}");
    }
}
