//! `format` owns the row type its encoders read (`format::row`), takes the file a row comes
//! from through `LogFileInfo`, and imports no source; the Salesforce datetime helpers live in
//! `datetime`, their former paths still reaching them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use salesforce_jwt::event_log_file::{EventLogFile, Interval, LogFileDecoder};
use salesforce_jwt::format::ecs::{EcsOptions, EcsRow, log_file_document, log_file_document_with};
use salesforce_jwt::format::event_id::log_row_event_id;
use salesforce_jwt::format::row::{FieldType, FieldValue, LogFileInfo, LogRecord, Schema};
use time::OffsetDateTime;
use time::macros::datetime;

/// A log file described by hand, not an `EventLogFile`.
struct Described {
    id: &'static str,
    event_type: &'static str,
    log_date: OffsetDateTime,
    interval: &'static str,
    sequence: i64,
}

impl LogFileInfo for Described {
    fn id(&self) -> &str {
        self.id
    }
    fn event_type(&self) -> &str {
        self.event_type
    }
    fn log_date(&self) -> OffsetDateTime {
        self.log_date
    }
    fn interval(&self) -> &str {
        self.interval
    }
    fn sequence(&self) -> i64 {
        self.sequence
    }
}

fn event_log_file(interval: Option<Interval>) -> EventLogFile {
    EventLogFile {
        id: "0AT000000000007AAA".into(),
        event_type: "Login".into(),
        log_date: datetime!(2025-06-01 13:00 UTC),
        created_date: datetime!(2025-06-01 15:00 UTC),
        interval,
        sequence: 2,
        log_file_length: 0,
        log_file: "/services/data/v64.0/sobjects/EventLogFile/0AT000000000007AAA/LogFile".into(),
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: Some("USER_NAME,RUN_TIME,SOURCE_IP,TIMESTAMP_DERIVED".into()),
        log_file_field_types: Some("String,Number,IP,DateTime".into()),
    }
}

fn rows(file: &EventLogFile) -> Vec<LogRecord> {
    let mut decoder = LogFileDecoder::for_file(file);
    let mut rows = Vec::new();
    decoder
        .feed(
            b"\"USER_NAME\",\"RUN_TIME\",\"SOURCE_IP\",\"TIMESTAMP_DERIVED\"\n\
              \"zoe@example.com\",\"42\",\"10.0.0.1\",\"2025-06-01T13:04:05.678Z\"\n\
              \"max@example.com\",\"\",\"Salesforce.com IP\",\"\"\n",
            &mut rows,
        )
        .unwrap();
    decoder.finish(&mut rows).unwrap();
    rows
}

#[test]
fn the_decoder_yields_format_rows() {
    let file = event_log_file(Some(Interval::Hourly));
    // The source's row type is the format's: no conversion between the two.
    let rows: Vec<LogRecord> = rows(&file);
    let schema: &Schema = rows[0].schema();
    assert_eq!(schema.field_type("RUN_TIME"), Some(FieldType::Number));
    assert_eq!(rows[0].value("RUN_TIME"), Some(FieldValue::Integer(42)));
    assert_eq!(
        rows[0].value("TIMESTAMP_DERIVED"),
        Some(FieldValue::DateTime(datetime!(2025-06-01 13:04:05.678 UTC)))
    );
    assert_eq!(
        salesforce_jwt::format::row::parse_log_datetime("20250601130405.678"),
        salesforce_jwt::event_log_file::parse_log_datetime("2025-06-01T13:04:05.678Z"),
    );
}

#[test]
fn encoders_read_any_log_file_info_as_they_read_an_event_log_file() {
    for (interval, name) in [
        (Some(Interval::Hourly), "Hourly"),
        (Some(Interval::Daily), "Daily"),
        // No Interval (API < 37.0): daily, the only kind then.
        (None, "Daily"),
    ] {
        let file = event_log_file(interval);
        assert_eq!(LogFileInfo::interval(&file), name);
        let described = Described {
            id: "0AT000000000007AAA",
            event_type: "Login",
            log_date: datetime!(2025-06-01 13:00 UTC),
            interval: name,
            sequence: 2,
        };
        let options = EcsOptions::default().with_namespace("prod").unwrap();
        for row in &rows(&file) {
            let document = log_file_document(&described, row);
            assert_eq!(document, log_file_document(&file, row));
            assert_eq!(
                document["salesforce"]["event_log_file"]["interval"], name,
                "{document}"
            );
            assert_eq!(document["salesforce"]["event_log_file"]["sequence"], 2);
            assert_eq!(
                log_file_document_with(&described, row, &options),
                log_file_document_with(&file, row, &options)
            );
            assert_eq!(
                log_row_event_id(&described, row),
                log_row_event_id(&file, row)
            );
            // Through a reference to a reference, and as a trait object.
            assert_eq!(log_row_event_id(&&file, row), log_row_event_id(&file, row));
            let row_of_dyn: EcsRow<'_> = EcsRow {
                file: &described as &dyn LogFileInfo,
                row,
                options: &options,
            };
            let row_of_file = EcsRow {
                file: &file,
                row,
                options: &options,
            };
            assert_eq!(
                serde_json::to_string(&row_of_dyn).unwrap(),
                serde_json::to_string(&row_of_file).unwrap()
            );
        }
    }
}

#[test]
#[allow(deprecated)]
fn the_former_datetime_paths_reach_the_datetime_module() {
    use salesforce_jwt::datetime;
    let text = "2024-07-08T09:26:18.239+0200";
    let t = datetime::parse(text).unwrap();
    assert_eq!(t, datetime!(2024-07-08 07:26:18.239 UTC));
    assert_eq!(
        salesforce_jwt::event_log::sf_datetime::parse(text).unwrap(),
        t
    );
    assert_eq!(
        salesforce_jwt::event_log::sf_datetime::format(t),
        datetime::format(t)
    );
    assert_eq!(datetime::rfc3339_millis(t), "2024-07-08T07:26:18.239Z");
    assert_eq!(
        salesforce_jwt::soql::datetime_millis(t),
        datetime::rfc3339_millis(t)
    );
    assert_eq!(
        salesforce_jwt::realtime::datetime_millis(t),
        datetime::rfc3339_millis(t)
    );
}

/// Every `crate::` path in the non-comment lines of `dir`'s Rust files that starts with one of
/// `sources`.
fn source_paths(dir: &Path, sources: &[&str], found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_paths(&path, sources, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for source in sources {
                    if code.contains(&format!("crate::{source}")) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
}

#[test]
fn format_imports_no_source() {
    let format = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/format");
    let mut found = Vec::new();
    source_paths(&format, &["event_log", "realtime"], &mut found);
    assert!(
        found.is_empty(),
        "format must not import the sources:\n{}",
        found.join("\n")
    );
}
