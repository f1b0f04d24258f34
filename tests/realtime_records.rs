//! Decoding real Real-Time Event Monitoring and SetupAuditTrail rows (tests/fixtures/realtime,
//! copied from Elastic's integration fixtures) and writing them as NDJSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use salesforce_jwt::collect::{Batch, Row, Sink, Unit};
use salesforce_jwt::objects::{
    EventObject, LoginEvent, LogoutEvent, ObjectRecord, SetupAuditTrail,
};
use serde_json::Value;
use time::macros::datetime;

fn record(name: &str) -> ObjectRecord {
    serde_json::from_str(&common::fixture(&format!("realtime/{name}"))).unwrap()
}

#[test]
fn a_real_login_event_decodes() {
    let row = record("login_event.json");
    assert_eq!(
        row.event_identifier(),
        Some("95eeec6d-1e93-46c1-882b-88bd28f7f8de")
    );
    assert_eq!(
        row.event_date(),
        Some(datetime!(2024-07-08 07:26:18.239 UTC))
    );
    assert_eq!(row.id(), Some("000000000000000AAA"));
    let login: LoginEvent = row.to_typed().unwrap();
    assert_eq!(login.event_date, datetime!(2024-07-08 07:26:18.239 UTC));
    assert_eq!(
        login.created_date,
        Some(datetime!(2024-07-08 07:26:22.128 UTC))
    );
    assert_eq!(login.api_version.as_deref(), Some("N/A"));
    assert_eq!(login.evaluation_time, Some(0.0));
    assert_eq!(login.login_type.as_deref(), Some("Remote Access 2.0"));
    assert_eq!(login.tls_protocol.as_deref(), Some("TLS 1.3"));
    assert_eq!(login.session_key, None);
    assert!(
        login.other.is_empty(),
        "every fixture field is typed: {:?}",
        login.other
    );
}

#[test]
fn numbers_sent_as_text_and_text_sent_as_numbers_decode() {
    let mut row: serde_json::Map<String, Value> =
        serde_json::from_str(&common::fixture("realtime/login_event.json")).unwrap();
    row.insert("EvaluationTime".into(), Value::from("1.5"));
    row.insert("ApiVersion".into(), Value::from(64.0));
    row.insert("LoginLatitude".into(), Value::from(""));
    row.insert("NewerField".into(), Value::from(7));
    let login: LoginEvent = ObjectRecord::from_map(row).to_typed().unwrap();
    assert_eq!(login.evaluation_time, Some(1.5));
    assert_eq!(login.api_version.as_deref(), Some("64.0"));
    assert_eq!(login.login_latitude, None);
    assert_eq!(login.other.get("NewerField"), Some(&Value::from(7)));
}

#[test]
fn a_real_logout_event_decodes_with_second_precision_z_datetimes() {
    let logout: LogoutEvent = record("logout_event.json").to_typed().unwrap();
    assert_eq!(logout.event_date, datetime!(2021-10-19 11:38:54 UTC));
    assert_eq!(
        logout.event_identifier.as_deref(),
        Some("06ce4a9d-8d6b-4a71-aad8-04d28c9a43df")
    );
    assert_eq!(logout.session_key.as_deref(), Some("6/HAElgoPCwskqBU"));
    assert_eq!(logout.related_event_identifier, None);
}

#[test]
fn a_real_setup_audit_trail_row_decodes_without_attributes() {
    let row = record("setup_audit_trail.json");
    assert!(row.get("attributes").is_none());
    let trail: SetupAuditTrail = row.to_typed().unwrap();
    assert_eq!(trail.id, "0Ym5j000019nwonCAA");
    assert_eq!(trail.created_date, datetime!(2022-08-16 09:26:38 UTC));
    assert_eq!(trail.action.as_deref(), Some("insertConnectedApplication"));
    assert_eq!(trail.delegate_user.as_deref(), Some("user1"));
    assert_eq!(trail.created_by_issuer, None);
    assert_eq!(
        trail.responsible_namespace_prefix.as_deref(),
        Some("namespaceprefix")
    );
}

#[tokio::test]
async fn ndjson_rows_carry_every_field_and_the_object_name() {
    let trail = EventObject::named("SetupAuditTrail").unwrap();
    let mut sink = salesforce_jwt::sink::NdjsonSink::new(Vec::new());
    let batch = Batch {
        object: &trail,
        after: datetime!(2022-08-16 00:00 UTC),
        up_to: datetime!(2022-08-17 00:00 UTC),
    };
    let row = record("setup_audit_trail.json");
    sink.begin(&Unit::Batch(batch)).await.unwrap();
    sink.write(Row::Object {
        object: &trail,
        record: &row,
    })
    .await
    .unwrap();
    sink.commit(&Unit::Batch(batch)).await.unwrap();
    let out = String::from_utf8(sink.into_inner()).unwrap();
    assert_eq!(out.lines().count(), 1);
    let line: serde_json::Map<String, Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["SObjectType"], "SetupAuditTrail");
    assert_eq!(line["CreatedDate"], "2022-08-16T09:26:38.000+0000");
    assert_eq!(line["CreatedByIssuer"], Value::Null);
    assert!(!line.contains_key("attributes"));
    assert_eq!(line.len(), row.fields().len() + 1);
}

#[test]
fn a_second_file_sink_on_the_same_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("realtime.ndjson");
    let _first = salesforce_jwt::sink::NdjsonFileSink::open(&out, None).unwrap();
    let error = salesforce_jwt::sink::NdjsonFileSink::open(&out, None).unwrap_err();
    assert!(
        error.to_string().contains("in use by another collector"),
        "{error}"
    );
}

/// What `ObjectRecord` was before it kept the fields' JSON texts: a `serde_json::Map` with
/// `attributes` dropped at every level. The differential tests below compare against it.
fn map_record(json: &str) -> serde_json::Map<String, Value> {
    fn strip(map: &mut serde_json::Map<String, Value>) {
        map.remove("attributes");
        for value in map.values_mut() {
            match value {
                Value::Object(inner) => strip(inner),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(inner) = item {
                            strip(inner);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut map: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
    strip(&mut map);
    map
}

/// The NDJSON line the map-based row gave: its fields in name order, then SObjectType.
fn map_ndjson(object: &str, map: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut line = serde_json::Map::new();
    for (name, value) in map {
        if name != "SObjectType" {
            line.insert(name.clone(), value.clone());
        }
    }
    let mut out = serde_json::to_vec(&line).unwrap();
    // serde_json's Map sorts; SObjectType goes last, as the row's serializer puts it.
    out.pop();
    if !line.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(br#""SObjectType":"#);
    out.extend_from_slice(&serde_json::to_vec(object).unwrap());
    out.push(b'}');
    out
}

/// Real rows plus what real rows may hold and these do not: escapes of every kind, non-ASCII,
/// numbers of every shape, nested relationships and subqueries with attributes, duplicate
/// names, a field named SObjectType, fields out of order, an empty record.
fn records_to_compare() -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("LoginEvent", common::fixture("realtime/login_event.json")),
        ("LogoutEvent", common::fixture("realtime/logout_event.json")),
        (
            "SetupAuditTrail",
            common::fixture("realtime/setup_audit_trail.json"),
        ),
    ];
    rows.push((
        "SetupAuditTrail",
        r#"{"attributes":{"type":"SetupAuditTrail","url":"/x"},"Id":"0Ym5j000019nwonCAA",
            "CreatedDate":"2022-08-16T09:26:38.000+0000",
            "Display":"quote \" backslash \\ slash \/ tab \t nl \n bell \u0007 del \u007f é \u00e9 😀 \ud83d\ude00",
            "CreatedBy":{"attributes":{"type":"User","url":"/y"},"Username":"a@b.c","Name":"Ä \"B\""},
            "Children":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"X"},"Id":"1"}]},
            "List":[1,{"attributes":{},"z":2,"a":[{"attributes":1}]},[{"attributes":2}]],
            "Zero":0,"NegZero":-0,"Neg":-17,"Big":18446744073709551615,"Bigger":18446744073709551616,
            "Float":1.50,"Exp":1e3,"Small":-2.5E-7,"Whole":2.0,"T":true,"F":false,"N":null,
            "SObjectType":"spoofed","Dup":"first","Dup":"second","":"empty name","Ünïcode":"k",
            "DelegateUser":null,"Action":12}"#
            .to_string(),
    ));
    rows.push((
        "LoginEvent",
        r#"{"EventIdentifier":"","EventDate":"2024-07-08T07:26:18.239+0000","UserId":"005",
            "SessionKey":null,"LoginKey":7,"SourceIp":"1.2.3.4","LoginLatitude":"37.77",
            "EvaluationTime":"0","ApiVersion":62.0,"ClientVersion":true}"#
            .to_string(),
    ));
    rows.push(("ApiEvent", "{}".to_string()));
    rows
}

#[test]
fn records_decode_to_the_same_fields_as_a_map_of_the_row() {
    for (object, json) in records_to_compare() {
        let map = map_record(&json);
        let row: ObjectRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(row.fields(), &map, "{object}: {json}");
        assert_eq!(row.len(), map.len());
        assert_eq!(row, ObjectRecord::from_map(map.clone()), "{object}");
        // From a `Value` (not JSON text) as well.
        let from_value: ObjectRecord =
            serde_json::from_value(serde_json::from_str::<Value>(&json).unwrap()).unwrap();
        assert_eq!(from_value.fields(), &map, "{object}");
        for (name, value) in &map {
            assert_eq!(row.get_str(name), value.as_str(), "{object}.{name}");
            assert_eq!(row.get(name), Some(value), "{object}.{name}");
            let json_text = row
                .json_fields()
                .find(|(n, _)| n == name)
                .map(|(_, j)| j.to_string());
            assert_eq!(json_text, Some(serde_json::to_string(value).unwrap()));
        }
        assert_eq!(row.clone().into_fields(), map, "{object}");
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }
}

#[test]
fn ndjson_lines_are_byte_identical_to_serializing_the_map() {
    for (object, json) in records_to_compare() {
        let event_object =
            EventObject::named(object).unwrap_or_else(|| panic!("{object} in the catalogue"));
        let map = map_record(&json);
        let expected = map_ndjson(object, &map);
        for row in [
            serde_json::from_str::<ObjectRecord>(&json).unwrap(),
            ObjectRecord::from_map(map.clone()),
        ] {
            let ndjson_row = salesforce_jwt::sink::NdjsonObjectRow {
                object: &event_object,
                record: &row,
            };
            let mut written = b"kept ".to_vec();
            ndjson_row.write_json(&mut written);
            assert_eq!(
                String::from_utf8_lossy(&written[5..]),
                String::from_utf8_lossy(&expected),
                "{object}"
            );
            assert_eq!(&written[..5], b"kept ");
            assert_eq!(
                serde_json::to_vec(&ndjson_row).unwrap(),
                expected,
                "{object}"
            );
        }
    }
}

#[test]
fn typed_rows_and_dedupe_keys_are_what_the_map_gave() {
    fn same<T>(json: &str, map: &serde_json::Map<String, Value>)
    where
        T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let row: ObjectRecord = serde_json::from_str(json).unwrap();
        let from_map = T::deserialize(Value::Object(map.clone())).map_err(|e| e.to_string());
        let typed = row.to_typed::<T>().map_err(|e| e.to_string());
        assert_eq!(typed.is_ok(), from_map.is_ok(), "{typed:?} vs {from_map:?}");
        if let (Ok(a), Ok(b)) = (typed, from_map) {
            assert_eq!(a, b);
        }
    }
    let mut typed_ok = 0;
    for (object, json) in records_to_compare() {
        let map = map_record(&json);
        same::<LoginEvent>(&json, &map);
        same::<LogoutEvent>(&json, &map);
        same::<SetupAuditTrail>(&json, &map);
        same::<Value>(&json, &map);
        same::<std::collections::BTreeMap<String, Value>>(&json, &map);
        let row: ObjectRecord = serde_json::from_str(&json).unwrap();
        typed_ok += usize::from(match object {
            "LoginEvent" => row.to_typed::<LoginEvent>().is_ok(),
            "LogoutEvent" => row.to_typed::<LogoutEvent>().is_ok(),
            "SetupAuditTrail" => row.to_typed::<SetupAuditTrail>().is_ok(),
            _ => false,
        });
        // The key the collector deduplicates by, computed from the map as before.
        let part = |name: &str| match map.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let expected = match map.get("EventIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!(
                "composite:{}|{}|{}|{}|{}",
                part("EventDate"),
                part("UserId"),
                part("SessionKey"),
                part("LoginKey"),
                part("SourceIp")
            ),
        };
        assert_eq!(row.dedupe_key(), expected, "{object}");
    }
    // The real rows and the odd LoginEvent decode, not only fail alike.
    assert_eq!(typed_ok, 5);
}
