//! Decoding real Real-Time Event Monitoring and SetupAuditTrail rows (tests/fixtures/realtime,
//! copied from Elastic's integration fixtures) and writing them as NDJSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use salesforce_jwt::realtime::{
    Batch, EventObject, LoginEvent, LogoutEvent, ObjectRecord, ObjectSink, SetupAuditTrail,
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
    let mut sink = salesforce_jwt::event_log::NdjsonSink::new(Vec::new());
    let batch = Batch {
        object: &trail,
        after: datetime!(2022-08-16 00:00 UTC),
        up_to: datetime!(2022-08-17 00:00 UTC),
    };
    let row = record("setup_audit_trail.json");
    sink.begin(&batch).await.unwrap();
    sink.write(&batch, &row).await.unwrap();
    sink.commit(&batch).await.unwrap();
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
    let _first = salesforce_jwt::event_log::NdjsonFileSink::open(&out, None).unwrap();
    let error = salesforce_jwt::event_log::NdjsonFileSink::open(&out, None).unwrap_err();
    assert!(
        error.to_string().contains("in use by another collector"),
        "{error}"
    );
}
