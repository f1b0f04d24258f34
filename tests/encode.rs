//! The sinks' direct JSON encoders against the `serde_json` reference: for every row, the line
//! an NDJSON sink writes is byte for byte `serde_json::to_vec(&NdjsonRow { .. })` (or
//! `EcsRow` with the ECS format) and a newline, on generated rows with awkward values and on
//! every real file in ../shared/realdata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use salesforce_jwt::event_log_file::{EventLogFile, LogFileDecoder, LogRecord};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::format::ecs::EcsOptions;
use salesforce_jwt_mock::{Interval, MockLogFile};
use time::OffsetDateTime;
use time::macros::datetime;

fn assert_same(format: OutputFormat, rows: &[(&EventLogFile, &LogRecord)]) {
    let options = EcsOptions::default();
    common::assert_lines_equal(
        &common::through_sink(format, &options, rows),
        &common::serde_reference(format, &options, rows),
        &format.to_string(),
    );
}

fn decode(id: &str, names: &str, types: &str, csv: &[u8]) -> Vec<LogRecord> {
    let mut decoder = LogFileDecoder::new(id, Some(names), Some(types));
    let mut rows = Vec::new();
    decoder.feed(csv, &mut rows).unwrap();
    decoder.finish(&mut rows).unwrap();
    rows
}

fn csv_field(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// Text with everything JSON escapes or passes through: quotes, backslashes, every control
/// byte, DEL, non-ASCII, line separators.
fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC*",
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\u{7f}'),
                Just('é'),
                Just('\u{2028}'),
                Just('🎉'),
                (0u8..0x20).prop_map(char::from),
                proptest::char::range('a', 'z'),
            ],
            0..40
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

/// Numbers as Salesforce writes them and as it should not: integers, `-0`, exponents,
/// fractions, huge values, and text.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| format!("{v}{v}")),
        Just("-0".to_string()),
        Just("1e5".to_string()),
        Just("0.1".to_string()),
        Just("-0.0".to_string()),
        Just("1E400".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("42.0".to_string()),
        Just("+7".to_string()),
        Just(String::new()),
        awkward_text(),
    ]
}

fn datetime_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..253_402_300_799_999).prop_map(|ms| {
            let t = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
            salesforce_jwt::datetime::rfc3339_millis(t)
        }),
        (0i64..253_402_300_799).prop_map(|s| {
            let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}.{:03}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                s % 1000
            )
        }),
        Just("2024-03-11T15:00:00+01:00".to_string()),
        Just("0000-01-01T00:30:00+01:00".to_string()),
        Just("2016-12-31T23:59:60.000Z".to_string()),
        Just("2024-03-11t15:00:00.123z".to_string()),
        Just("2024-03-11T15:00:00.123456789Z".to_string()),
        Just("20150727113259".to_string()),
        Just(String::new()),
        awkward_text(),
    ]
}

fn ip_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|ip| ip.to_string()),
        Just("::FFFF:10.0.0.1".to_string()),
        Just("Salesforce.com IP".to_string()),
        Just(String::new()),
        awkward_text(),
    ]
}

fn boolean_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        Just("FALSE".to_string()),
        Just("1".to_string()),
        Just("0".to_string()),
        Just("yes".to_string()),
        Just(String::new()),
    ]
}

/// A row of the generated schema: every type once, plus an escaped string and an Id.
fn row_values() -> impl Strategy<Value = Vec<String>> {
    (
        awkward_text(),
        awkward_text(),
        number_text(),
        number_text(),
        boolean_text(),
        datetime_text(),
        ip_text(),
        "[0-9A-Za-z]{0,18}",
        awkward_text(),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i)| vec![a, b, c, d, e, f, g, h, i])
}

/// Header names that need escaping too, and ECS columns (so the ECS document has something to
/// map) under their real names.
const NAMES: &str = "USER_NAME,Quote\"Back\\slash\u{1}é,RUN_TIME,STATUS_CODE,SUCCESS,TIMESTAMP,SOURCE_IP,USER_ID,URI";
const TYPES: &str = "EscapedString,String,Number,Number,Boolean,DateTime,IP,Id,String";

fn generated_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let header: Vec<String> = NAMES.split(',').map(csv_field).collect();
    let mut csv = header.join(",") + "\n";
    for row in rows {
        let fields: Vec<String> = row.iter().map(|v| csv_field(v)).collect();
        csv += &(fields.join(",") + "\n");
    }
    csv.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Generated rows, two files in one sink: the direct encoders write what `serde_json` does.
    #[test]
    fn generated_rows_encode_as_serde_json_does(
        first in proptest::collection::vec(row_values(), 1..8),
        second in proptest::collection::vec(row_values(), 1..8),
        id in awkward_text(),
        event_type in prop_oneof![Just("Login".to_string()), Just("URI".to_string()), awkward_text()],
        sequence in any::<i64>(),
        log_date_ms in 0i64..253_402_300_799_999,
    ) {
        let log_date = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(log_date_ms);
        let a = common::hourly_log_file(&id, &event_type, log_date, sequence);
        let b = common::hourly_log_file("0AT000000000002AAA", "Login", datetime!(2024-03-11 00:00 +01:00), 0);
        let first_rows = decode(&a.id, NAMES, TYPES, &generated_csv(&first));
        let second_rows = decode(&b.id, NAMES, TYPES, &generated_csv(&second));
        let rows: Vec<(&EventLogFile, &LogRecord)> = first_rows
            .iter()
            .map(|r| (&a, r))
            .chain(second_rows.iter().map(|r| (&b, r)))
            .collect();
        assert_same(OutputFormat::Ndjson, &rows);
        assert_same(OutputFormat::Ecs, &rows);
    }
}

/// Every column the ECS mapping reads, under its real name and a type Salesforce gives it
/// (`CLIENT_IP` as text, so that both typings meet the address rules), plus a column of no
/// mapping; and the same columns with `URI` twice, whose `event.id` takes the general path.
const ECS_NAMES: &str = "TIMESTAMP_DERIVED,TIMESTAMP,LOGIN_STATUS,REQUEST_STATUS,SUCCESS,\
ORGANIZATION_ID,USER_ID_DERIVED,USER_ID,USER_NAME,USER_TYPE,SOURCE_IP,CLIENT_IP,USER_AGENT,\
BROWSER_TYPE,BROWSER_NAME,BROWSER_VERSION,OS_NAME,OS_VERSION,REFERRER_URI,CIPHER_SUITE,\
HTTP_METHOD,METHOD,REQUEST_METHOD,STATUS_CODE,REQUEST_SIZE,RESPONSE_SIZE,URL,URI,TLS_PROTOCOL,\
RUN_TIME,STATUS,REQUEST_ID,TIME,EXEC_TIME,TOTAL_MS,CPU_TIME,API_TYPE,API_VERSION,SESSION_TYPE,\
SESSION_LEVEL,PLATFORM_TYPE,APP_TYPE,USER_INITIATED_LOGOUT,ACTION_MESSAGE,ACTION_MESSAGE_LENGTH,\
ROWS,LIMIT_USAGE_PERCENT,api,uri";
const ECS_TYPES: &str = "DateTime,String,String,String,Boolean,Id,Id,Id,String,String,IP,\
String,EscapedString,String,String,String,String,String,EscapedString,String,String,String,\
String,Number,Number,Number,EscapedString,String,String,Number,String,String,Number,Number,\
Number,Number,String,Number,String,String,String,String,Boolean,EscapedString,Number,Number,\
Number,String,String";

/// A value for a mapped column: one that the mapping takes (most of the time), or not.
fn ecs_value(column: &str) -> BoxedStrategy<String> {
    let taken: BoxedStrategy<String> = match column {
        "TIMESTAMP_DERIVED" | "TIMESTAMP" => datetime_text().boxed(),
        "LOGIN_STATUS" => prop_oneof![Just("LOGIN_NO_ERROR"), Just("LOGIN_ERROR_INVALID_PASSWORD")]
            .prop_map(String::from)
            .boxed(),
        "REQUEST_STATUS" => proptest::sample::select(vec!["S", "F", "A", "N", "U", "R"])
            .prop_map(String::from)
            .boxed(),
        "SUCCESS" => boolean_text().boxed(),
        "USER_NAME" => prop_oneof![
            Just("ak@example.com".to_string()),
            Just("a k@example.com".to_string()),
            Just("@example.com".to_string()),
            Just("ak@example".to_string()),
        ]
        .boxed(),
        "SOURCE_IP" | "CLIENT_IP" => prop_oneof![
            Just("10.0.0.1".to_string()),
            Just("10.0.0.2".to_string()),
            Just(" 10.0.0.1 ".to_string()),
            ip_text(),
        ]
        .boxed(),
        "USER_AGENT" | "BROWSER_TYPE" => prop_oneof![
            Just("\"Mozilla/5.0 (X11)\"".to_string()),
            Just("9999".to_string()),
            Just("\"130\"".to_string()),
            Just("\"\"".to_string()),
        ]
        .boxed(),
        "BROWSER_NAME" | "BROWSER_VERSION" | "OS_NAME" | "OS_VERSION" | "REFERRER_URI"
        | "CIPHER_SUITE" | "URL" | "URI" => prop_oneof![
            Just("\"https://x.example/a?b=c\"".to_string()),
            Just("\"".to_string()),
            Just("Chrome".to_string()),
        ]
        .boxed(),
        "HTTP_METHOD" | "METHOD" | "REQUEST_METHOD" => prop_oneof![
            Just("GET".to_string()),
            Just("POST".to_string()),
            Just("Unknown".to_string()),
            Just("ABCDEFGHIJKLMNOPQ".to_string()),
        ]
        .boxed(),
        "STATUS_CODE" | "REQUEST_SIZE" | "RESPONSE_SIZE" => prop_oneof![
            (0u64..70_000).prop_map(|v| v.to_string()),
            Just("18446744073709551615".to_string()),
            number_text(),
        ]
        .boxed(),
        "TLS_PROTOCOL" => proptest::sample::select(vec![
            "TLSv1.2", "TLS 1.3", "TLSv1", "tlsV2", "TLS 13", "TLS", "TLSv1.", "Unknown", "v1",
        ])
        .prop_map(String::from)
        .boxed(),
        "STATUS" | "USER_INITIATED_LOGOUT" => boolean_text().boxed(),
        "RUN_TIME"
        | "TIME"
        | "EXEC_TIME"
        | "TOTAL_MS"
        | "CPU_TIME"
        | "ACTION_MESSAGE_LENGTH"
        | "ROWS"
        | "LIMIT_USAGE_PERCENT"
        | "API_VERSION" => prop_oneof![
            (0u64..70_000).prop_map(|v| v.to_string()),
            Just("9223372036854775807".to_string()),
            Just("-1".to_string()),
            number_text(),
        ]
        .boxed(),
        "API_TYPE" | "SESSION_TYPE" | "SESSION_LEVEL" | "PLATFORM_TYPE" | "APP_TYPE" => {
            proptest::sample::select(vec!["f", "fo", "C", "1", "1015", "1000", "X", ""])
                .prop_map(String::from)
                .boxed()
        }
        "ACTION_MESSAGE" => prop_oneof![
            Just("1$serviceComponent://a.B/ACTION$getX=87;x;2$aura://C/ACTION$getY=".to_string()),
            Just("1$java://c/ACTION$m=99999999999999999999".to_string()),
            awkward_text(),
        ]
        .boxed(),
        _ => "[0-9A-Za-z]{1,18}".boxed(),
    };
    prop_oneof![6 => taken, 1 => Just(String::new()), 1 => awkward_text()].boxed()
}

fn ecs_row_values() -> impl Strategy<Value = Vec<String>> {
    ECS_NAMES.split(',').map(ecs_value).collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Rows with every mapped column, valid or not, present or not: the direct ECS writer
    /// writes every document field as the serde reference does, and `event.id` both with its
    /// per-schema column order and (a duplicated column) the general way.
    #[test]
    fn mapped_columns_encode_as_serde_json_does(
        rows in proptest::collection::vec(ecs_row_values(), 1..8),
        duplicate_uri in proptest::collection::vec(awkward_text(), 1..8),
        event_type in prop_oneof![
            Just("Login".to_string()),
            Just("Logout".to_string()),
            Just("ApexCallout".to_string()),
            Just("ApexExecution".to_string()),
            Just("ApexTrigger".to_string()),
            Just("ApexRestApi".to_string()),
            Just("ExternalCustomApexCallout".to_string()),
            Just("AuraRequest".to_string()),
            Just("API".to_string()),
            awkward_text(),
        ],
    ) {
        let a = common::hourly_log_file("0AT000000000001AAA", &event_type, datetime!(2024-03-11 00:00 UTC), 1);
        let b = common::hourly_log_file("0AT000000000002AAA", &event_type, datetime!(2024-03-11 00:00 UTC), 2);
        let csv = |names: &str, rows: &[Vec<String>]| {
            let header: Vec<String> = names.split(',').map(csv_field).collect();
            let mut csv = header.join(",") + "\n";
            for row in rows {
                let fields: Vec<String> = row.iter().map(|v| csv_field(v)).collect();
                csv += &(fields.join(",") + "\n");
            }
            csv.into_bytes()
        };
        let first = decode(&a.id, ECS_NAMES, ECS_TYPES, &csv(ECS_NAMES, &rows));
        let with_duplicate: Vec<Vec<String>> = rows
            .iter()
            .zip(duplicate_uri.iter().cycle())
            .map(|(row, uri)| row.iter().cloned().chain([uri.clone()]).collect())
            .collect();
        let names = format!("{ECS_NAMES},URI");
        let types = format!("{ECS_TYPES},String");
        let second = decode(&b.id, &names, &types, &csv(&names, &with_duplicate));
        let pairs: Vec<(&EventLogFile, &LogRecord)> = first
            .iter()
            .map(|r| (&a, r))
            .chain(second.iter().map(|r| (&b, r)))
            .collect();
        assert_same(OutputFormat::Ecs, &pairs);
    }
}

/// An empty row (every value empty) and a row of a file without columns of its own.
#[test]
fn empty_rows_encode_as_serde_json_does() {
    let f = common::hourly_log_file(
        "0AT000000000001AAA",
        "Login",
        datetime!(2024-03-11 00:00 UTC),
        0,
    );
    let rows = decode(&f.id, "A,B", "String,Number", b"\"A\",\"B\"\n\"\",\"\"\n");
    let pairs: Vec<_> = rows.iter().map(|r| (&f, r)).collect();
    assert_same(OutputFormat::Ndjson, &pairs);
    assert_same(OutputFormat::Ecs, &pairs);
}

/// Every real log file, decoded with the column types Salesforce declares for its event type.
#[test]
fn real_files_encode_as_serde_json_does() {
    let files = common::real_hourly_files();
    let pairs: Vec<(&EventLogFile, &LogRecord)> = files
        .iter()
        .flat_map(|(f, rows)| rows.iter().map(move |r| (f, r)))
        .collect();
    assert_same(OutputFormat::Ndjson, &pairs);
    assert_same(OutputFormat::Ecs, &pairs);
}

/// Generated rows of every event type the mock knows (its full column sets and types).
#[test]
fn mock_rows_of_every_event_type_encode_as_serde_json_does() {
    let mut files = Vec::new();
    for (n, event_type) in [
        "Login",
        "Logout",
        "API",
        "URI",
        "ApexExecution",
        "Report",
        "RestApi",
        "ApexCallout",
        "ApexUnexpectedException",
        "AuraRequest",
    ]
    .into_iter()
    .enumerate()
    {
        let log_date = datetime!(2024-03-11 00:00 UTC);
        let mock = MockLogFile::builder(event_type)
            .interval(Interval::Daily)
            .log_date(log_date)
            .sequence(0)
            .created_date(log_date)
            .rows(300)
            .seed(n as u64)
            .build();
        let id = format!("0AT40000000{n:04}AAA");
        files.push(common::mock_rows(
            &mock,
            common::hourly_log_file(&id, event_type, log_date, 0),
        ));
    }
    let pairs: Vec<(&EventLogFile, &LogRecord)> = files
        .iter()
        .flat_map(|(f, rows)| rows.iter().map(move |r| (f, r)))
        .collect();
    assert_same(OutputFormat::Ndjson, &pairs);
    assert_same(OutputFormat::Ecs, &pairs);
}
