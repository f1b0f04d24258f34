//! The incremental CSV decoder and typed records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use salesforce_jwt::Error;
use salesforce_jwt::event_log_file::{FieldType, FieldValue, LogFileDecoder, LogRecord};
use time::macros::datetime;

const NAMES: &str =
    "EVENT_TYPE,TIMESTAMP,RUN_TIME,IS_API,TIMESTAMP_DERIVED,USER_ID,CLIENT_IP,QUERY";
const TYPES: &str = "String,String,Number,Boolean,DateTime,Id,IP,EscapedString";

/// Every Salesforce quirk in one file: BOM, CRLF, quoted commas, embedded newlines, doubled
/// quotes, non-ASCII, empty values, `Salesforce.com IP`, a decimal number.
const EDGE_CSV: &str = "\u{feff}\"EVENT_TYPE\",\"TIMESTAMP\",\"RUN_TIME\",\"IS_API\",\"TIMESTAMP_DERIVED\",\"USER_ID\",\"CLIENT_IP\",\"QUERY\"\r\n\
\"API\",\"20240311150000.123\",\"42\",\"true\",\"2024-03-11T15:00:00.123Z\",\"005000000000001AAA\",\"10.0.0.1\",\"SELECT Id, Name FROM Account\"\r\n\
\"API\",\"20240311150001\",\"1.5\",\"false\",\"2024-03-11T15:00:01.000Z\",\"005000000000002AAA\",\"Salesforce.com IP\",\"SELECT Id\nFROM Contact\nWHERE Name = 'Zoë \"\"Z\"\" Ångström'\"\r\n\
\"API\",\"\",\"\",\"\",\"\",\"\",\"\",\"東京, 大阪\"\r\n";

fn decode_chunks(csv: &[u8], chunks: &[usize]) -> Result<Vec<LogRecord>, Error> {
    let mut decoder = LogFileDecoder::new("0AT000000000001AAA", Some(NAMES), Some(TYPES));
    let mut out = Vec::new();
    let mut rest = csv;
    for &n in chunks {
        let n = n.min(rest.len());
        decoder.feed(&rest[..n], &mut out)?;
        rest = &rest[n..];
    }
    decoder.feed(rest, &mut out)?;
    decoder.finish(&mut out)?;
    Ok(out)
}

fn decode(csv: &[u8]) -> Result<Vec<LogRecord>, Error> {
    decode_chunks(csv, &[])
}

#[test]
fn every_edge_case_survives() {
    let rows = decode(EDGE_CSV.as_bytes()).unwrap();
    assert_eq!(rows.len(), 3);
    let schema = rows[0].schema();
    // The BOM is not part of the first column's name.
    assert_eq!(schema.names().next(), Some("EVENT_TYPE"));
    assert_eq!(schema.field_type("RUN_TIME"), Some(FieldType::Number));
    assert_eq!(schema.file_id(), "0AT000000000001AAA");

    assert_eq!(rows[0].get("QUERY"), Some("SELECT Id, Name FROM Account"));
    assert_eq!(rows[0].value("RUN_TIME"), Some(FieldValue::Integer(42)));
    assert_eq!(rows[0].value("IS_API"), Some(FieldValue::Boolean(true)));
    assert_eq!(
        rows[0].value("TIMESTAMP_DERIVED"),
        Some(FieldValue::DateTime(datetime!(2024-03-11 15:00:00.123 UTC)))
    );
    assert_eq!(
        rows[0].value("CLIENT_IP"),
        Some(FieldValue::Ip("10.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        rows[0].value("USER_ID"),
        Some(FieldValue::Id("005000000000001AAA"))
    );
    // TIMESTAMP is declared String, so it stays text.
    assert_eq!(
        rows[0].value("TIMESTAMP"),
        Some(FieldValue::String("20240311150000.123"))
    );

    assert_eq!(
        rows[1].get("QUERY"),
        Some("SELECT Id\nFROM Contact\nWHERE Name = 'Zoë \"Z\" Ångström'")
    );
    assert_eq!(rows[1].value("RUN_TIME"), Some(FieldValue::Float(1.5)));
    // The literal Salesforce writes for internal traffic is not an address: kept as text.
    assert_eq!(
        rows[1].value("CLIENT_IP"),
        Some(FieldValue::String("Salesforce.com IP"))
    );

    // Empty values are absent, not zero or false.
    assert_eq!(rows[2].get("RUN_TIME"), None);
    assert_eq!(rows[2].value("IS_API"), None);
    assert_eq!(rows[2].get("QUERY"), Some("東京, 大阪"));
    assert_eq!(rows[2].get("NO_SUCH_COLUMN"), None);
}

#[test]
fn line_numbers_count_embedded_newlines() {
    let rows = decode(EDGE_CSV.as_bytes()).unwrap();
    assert_eq!(
        rows.iter().map(LogRecord::line).collect::<Vec<_>>(),
        vec![2, 3, 6]
    );
}

#[test]
fn a_row_after_blank_lines_is_numbered_by_its_first_byte_in_any_chunking() {
    // Blank lines (LF and CRLF) before a row: the row is on line 6, and so is the error of a
    // bad one, however the bytes arrive.
    let good = "\"A\",\"B\"\n\"1\",\"2\"\r\n\r\n\n\r\n\"3\",\"4\"\n";
    let bad = "\"A\",\"B\"\n\"1\",\"2\"\r\n\r\n\n\r\n\"3\"\n";
    for chunk in 1..good.len() {
        let chunks = vec![chunk; good.len() / chunk + 1];
        let rows = decode_chunks(good.as_bytes(), &chunks).unwrap();
        assert_eq!(
            rows.iter().map(LogRecord::line).collect::<Vec<_>>(),
            vec![2, 6],
            "chunks of {chunk}"
        );
        match decode_chunks(bad.as_bytes(), &chunks) {
            Err(Error::Csv { line, .. }) => assert_eq!(line, 6, "chunks of {chunk}"),
            other => panic!("expected a CSV error, got {other:?}"),
        }
    }
}

#[test]
fn columns_are_found_by_name_not_position() {
    let csv = "\"B\",\"A\"\n\"b1\",\"a1\"\n";
    let rows = decode(csv.as_bytes()).unwrap();
    assert_eq!(rows[0].get("A"), Some("a1"));
    assert_eq!(rows[0].get("B"), Some("b1"));
}

#[test]
fn json_has_typed_values_and_leaves_out_empty_fields() {
    let rows = decode(EDGE_CSV.as_bytes()).unwrap();
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["RUN_TIME"], serde_json::json!(42));
    assert_eq!(json["IS_API"], serde_json::json!(true));
    assert_eq!(json["TIMESTAMP_DERIVED"], "2024-03-11T15:00:00.123Z");
    assert_eq!(json["CLIENT_IP"], "10.0.0.1");
    let empty = serde_json::to_value(&rows[2]).unwrap();
    let keys: Vec<&String> = empty.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["EVENT_TYPE", "QUERY"]);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct ApiEvent {
    #[serde(rename = "EVENT_TYPE")]
    event_type: String,
    #[serde(rename = "RUN_TIME")]
    run_time: Option<f64>,
    #[serde(rename = "IS_API")]
    is_api: Option<bool>,
    #[serde(rename = "QUERY")]
    query: String,
    #[serde(rename = "USER_ID")]
    user: Option<String>,
}

#[test]
fn rows_deserialize_into_a_users_struct_by_header_name() {
    let rows = decode(EDGE_CSV.as_bytes()).unwrap();
    let first: ApiEvent = rows[0].deserialize().unwrap();
    assert_eq!(
        first,
        ApiEvent {
            event_type: "API".into(),
            run_time: Some(42.0),
            is_api: Some(true),
            query: "SELECT Id, Name FROM Account".into(),
            user: Some("005000000000001AAA".into()),
        }
    );
    let last: ApiEvent = rows[2].deserialize().unwrap();
    assert_eq!((last.run_time, last.is_api, last.user), (None, None, None));

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        #[serde(rename = "QUERY")]
        query: u32,
    }
    let err = rows[0].deserialize::<Wrong>().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("0AT000000000001AAA") && text.contains("line 2"),
        "{text}"
    );
}

#[test]
fn a_row_with_the_wrong_field_count_names_file_and_line() {
    let csv = "\"A\",\"B\"\n\"1\",\"2\"\n\"3\"\n";
    match decode(csv.as_bytes()) {
        Err(Error::Csv { id, line, message }) => {
            assert_eq!(id, "0AT000000000001AAA");
            assert_eq!(line, 3);
            assert!(
                message.contains("1 fields but the header has 2"),
                "{message}"
            );
        }
        other => panic!("expected a CSV error, got {other:?}"),
    }
}

#[test]
fn an_empty_file_has_no_rows() {
    assert!(decode(b"").unwrap().is_empty());
    assert!(decode(b"\"A\",\"B\"\n").unwrap().is_empty());
}

#[test]
fn a_last_row_without_line_end_is_kept() {
    let rows = decode(b"\"A\",\"B\"\n\"1\",\"2\"").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get("B"), Some("2"));
}

#[test]
fn invalid_utf8_is_replaced_not_dropped() {
    let rows = decode(b"\"A\",\"B\"\n\"caf\xe9\",\"x\"\n").unwrap();
    assert_eq!(rows[0].get("A"), Some("caf\u{fffd}"));
    assert_eq!(rows[0].get("B"), Some("x"));
}

#[test]
fn a_bom_split_across_chunks_is_still_removed() {
    let rows = decode_chunks(EDGE_CSV.as_bytes(), &[1, 1, 1]).unwrap();
    assert_eq!(rows[0].schema().names().next(), Some("EVENT_TYPE"));
}

fn snapshot(rows: &[LogRecord]) -> Vec<Vec<(String, String)>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

proptest! {
    /// However the body is cut into chunks (network reads, gzip frames), the rows are the same.
    #[test]
    fn chunking_never_changes_the_rows(cuts in proptest::collection::vec(1usize..40, 0..60)) {
        let whole = snapshot(&decode(EDGE_CSV.as_bytes()).unwrap());
        let chunked = snapshot(&decode_chunks(EDGE_CSV.as_bytes(), &cuts).unwrap());
        prop_assert_eq!(whole, chunked);
    }

    /// Any text survives a round trip through Salesforce's quoting.
    #[test]
    fn any_field_text_round_trips(values in proptest::collection::vec("\\PC*", 1..5)) {
        let header: Vec<String> = (0..values.len()).map(|i| format!("\"C{i}\"")).collect();
        let row: Vec<String> = values.iter().map(|v| format!("\"{}\"", v.replace('"', "\"\""))).collect();
        let csv = format!("{}\n{}\n", header.join(","), row.join(","));
        let rows = decode(csv.as_bytes()).unwrap();
        prop_assert_eq!(rows.len(), 1);
        for (i, v) in values.iter().enumerate() {
            let got = rows[0].get(&format!("C{i}"));
            if v.is_empty() {
                prop_assert_eq!(got, None);
            } else {
                prop_assert_eq!(got, Some(v.as_str()));
            }
        }
    }
}

#[test]
fn an_empty_chunk_is_not_the_end_of_the_file() {
    let csv = b"\"A\",\"B\"\n\"one\",\"two\"\n";
    let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
    let mut out = Vec::new();
    decoder.feed(&csv[..12], &mut out).unwrap();
    decoder.feed(b"", &mut out).unwrap();
    decoder.feed(&csv[12..], &mut out).unwrap();
    decoder.finish(&mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].get("A"), Some("one"));
    assert_eq!(out[0].get("B"), Some("two"));
}

#[test]
fn an_unbalanced_quote_cannot_make_a_row_grow_without_bound() {
    let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
    let mut out = Vec::new();
    decoder
        .feed(b"\"A\",\"B\"\n\"1\",\"2\"\n\"unclosed,", &mut out)
        .unwrap();
    let filler = vec![b'x'; 1 << 20];
    let mut result = Ok(());
    for _ in 0..40 {
        result = decoder.feed(&filler, &mut out);
        if result.is_err() {
            break;
        }
    }
    match result {
        Err(Error::Csv { line, message, .. }) => {
            assert_eq!(line, 3);
            assert!(message.contains("unbalanced quote"), "{message}");
        }
        other => panic!("expected a CSV error within 40 MiB, got {other:?}"),
    }
    assert_eq!(out.len(), 1, "the good row before it was kept");
}

#[test]
fn a_row_cannot_have_unbounded_fields() {
    // One-byte fields keep the row far below the 16 MiB bound, so only a cap on the field count
    // stops the field index from growing with the row.
    let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
    let mut out = Vec::new();
    decoder.feed(b"\"A\",\"B\"\n", &mut out).unwrap();
    let many_fields = b",".repeat(64 * 1024);
    match decoder.feed(&many_fields, &mut out) {
        Err(Error::Csv { line, message, .. }) => {
            assert_eq!(line, 2);
            assert!(message.contains("more than 4096 fields"), "{message}");
        }
        other => panic!("expected a CSV error before the row ends, got {other:?}"),
    }
}

/// Salesforce's real files (verbatim copies from public projects, see ../shared/realdata/README.md).
fn realdata(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/realdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode_file(
    csv: &[u8],
    names: Option<&str>,
    types: Option<&str>,
) -> Result<Vec<LogRecord>, Error> {
    let mut decoder = LogFileDecoder::new("0AT000000000001AAA", names, types);
    let mut out = Vec::new();
    decoder.feed(csv, &mut out)?;
    decoder.finish(&mut out)?;
    Ok(out)
}

#[test]
fn escaped_strings_lose_salesforces_extra_quotes_in_a_real_bulk_api_file() {
    // The BulkApi columns and their LogFileFieldTypes as Salesforce's EventLogFile reference
    // lists them (the sample file came without its query record).
    let names = "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,CLIENT_IP,URI,JOB_ID,BATCH_ID,ROWS_PROCESSED,NUMBER_FAILURES,SUCCESS,MESSAGE,ENTITY_TYPE,OPERATION_TYPE";
    let types = "String,String,String,Id,Id,Number,Number,IP,String,Id,Id,Number,Number,Boolean,EscapedString,String,String";
    let rows = decode_file(
        &realdata("sfdcelf_BulkApi_sample_data2.csv"),
        Some(names),
        Some(types),
    )
    .unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row.get("MESSAGE"), Some("success"), "line {}", row.line());
        assert_eq!(row.value("MESSAGE"), Some(FieldValue::String("success")));
        assert_eq!(serde_json::to_value(row).unwrap()["MESSAGE"], "success");
    }
    // Columns that are not EscapedString keep their quotes (here: none to keep, values intact).
    assert_eq!(rows[0].get("ENTITY_TYPE"), Some("Account"));
}

#[test]
fn escaped_strings_in_a_real_ui_tracking_file_typed_by_its_query_record() {
    let page: serde_json::Value =
        serde_json::from_slice(&realdata("sfdcelf_create_event_ELF_list1.json")).unwrap();
    let types = page["records"][0]["LogFileFieldTypes"].as_str().unwrap();
    // The record carries LogFileFieldTypes without LogFileFieldNames: the types follow the
    // header's order.
    let rows = decode_file(
        &realdata("sfdcelf_UITracking_create_event_sampledata1.csv"),
        None,
        Some(types),
    )
    .unwrap();
    assert!(!rows.is_empty());
    let schema = rows[0].schema();
    assert_eq!(
        schema.field_type("LOCATION"),
        Some(FieldType::EscapedString)
    );
    assert_eq!(schema.field_type("NUMBER1"), Some(FieldType::Number));
    assert_eq!(rows[0].get("LOCATION"), Some("home"));
    assert_eq!(rows[0].get("APP_NAME"), Some("native:bridge"));
    assert!(
        rows[0]
            .get("USER_AGENT")
            .unwrap()
            .starts_with("SalesforceMobileSDK/"),
        "{:?}",
        rows[0].get("USER_AGENT")
    );
    // `""""""` is an empty value: absent, like any other empty field.
    assert_eq!(rows[0].get("REFERRER"), None);
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["LOCATION"], "home");
    assert!(json.get("REFERRER").is_none(), "{json}");
    // A String column (not EscapedString) is left as the CSV says.
    assert_eq!(rows[0].get("OS_NAME"), Some("iOS"));
    #[derive(serde::Deserialize)]
    struct Ui {
        #[serde(rename = "LOCATION")]
        location: String,
        #[serde(rename = "TARGET")]
        target: Option<String>,
    }
    let ui: Ui = rows[0].deserialize().unwrap();
    assert_eq!((ui.location.as_str(), ui.target), ("home", None));
}

#[test]
fn escaped_urls_in_a_real_apex_callout_file() {
    let csv = realdata("nr_ApexCallout_sample_log_lines.csv");
    // ApexCallout's LogFileFieldTypes per Salesforce's reference: URL is an EscapedString.
    let names = "EVENT_TYPE,TIMESTAMP,REQUEST_ID,ORGANIZATION_ID,USER_ID,RUN_TIME,CPU_TIME,URI,SESSION_KEY,LOGIN_KEY,TYPE,METHOD,SUCCESS,STATUS_CODE,TIME,REQUEST_SIZE,RESPONSE_SIZE,URL,TIMESTAMP_DERIVED,USER_ID_DERIVED,CLIENT_IP,URI_ID_DERIVED";
    let types = "String,String,String,Id,Id,Number,Number,String,String,String,String,String,Boolean,Number,Number,Number,Number,EscapedString,DateTime,Id,IP,Id";
    let rows = decode_file(&csv, Some(names), Some(types)).unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.get("URL"), Some("https://test.local.test"));
    }
    assert_eq!(
        serde_json::to_value(&rows[1]).unwrap()["URL"],
        "https://test.local.test"
    );
}

proptest! {
    /// Any bytes, cut anywhere, typed any way: rows or a CSV error, never a panic, and never a
    /// row with more fields than the cap.
    #[test]
    fn hostile_bytes_never_panic(
        body in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), any::<u8>()],
            0..400,
        ),
        cuts in proptest::collection::vec(1usize..50, 0..10),
        escaped in any::<bool>(),
    ) {
        let types = if escaped { "EscapedString,EscapedString" } else { "Number,DateTime" };
        let mut decoder = LogFileDecoder::new("0AT000000000001AAA", Some("A,B"), Some(types));
        let mut out = Vec::new();
        let mut rest = &body[..];
        let mut result = Ok(());
        for n in cuts {
            let n = n.min(rest.len());
            result = result.and_then(|()| decoder.feed(&rest[..n], &mut out));
            rest = &rest[n..];
        }
        let _ = result
            .and_then(|()| decoder.feed(rest, &mut out))
            .and_then(|()| decoder.finish(&mut out));
        for row in &out {
            prop_assert!(row.schema().len() <= 4096);
            let _ = serde_json::to_string(row).unwrap();
            let _ = row.values().count();
        }
    }
}
