//! `--source LoginEventLog`: Event Log Objects collected exactly once into NDJSON, and an API
//! version below 61.0 refused by `--check` with what to do.

mod common;

use common::*;
use salesforce_jwt_mock::{MockOrg, generate_records};
use serde_json::{Map, Value};
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread")]
async fn login_event_log_rows_are_collected_once_with_their_sobject_type() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let now = OffsetDateTime::now_utc();
    // Published: more than 45 minutes old.
    let rows = generate_records(
        "LoginEventLog",
        now - time::Duration::hours(3),
        now - time::Duration::hours(1),
        40,
        5,
    );
    let stored = org.add_records("LoginEventLog", rows).unwrap();
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("state.json");
    for _ in 0..2 {
        let output = run(sf_ingest_for(&org, &key)
            .args(["--source", "LoginEventLog", "--out"])
            .arg(&out)
            .arg("--state")
            .arg(&state));
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    let mut ids: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| {
            let row: Map<String, Value> = serde_json::from_str(line).unwrap();
            assert_eq!(row["SObjectType"], "LoginEventLog");
            assert!(row["UserIdentifier"].is_string(), "{row:?}");
            row["Id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = stored
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "every row once over two runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_version_below_61_is_refused_for_event_log_objects() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let output = run(sf_ingest_for(&org, &key)
        .env("SF_API_VERSION", "60.0")
        .args(["--check", "--source", "ApiTotalUsageEventLog"]));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("SF_API_VERSION: 60.0 is below 61.0")
            && err.contains("ApiTotalUsageEventLog")
            && err.contains("set SF_API_VERSION to 61.0 or later"),
        "{err}"
    );
    // Other sources do not need it.
    let output = run(sf_ingest_for(&org, &key)
        .env("SF_API_VERSION", "60.0")
        .args(["--check", "--source", "LoginEvent"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_since_beyond_the_30_day_retention_is_said_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::days(29);
    let rows = generate_records("LoginEventLog", old - time::Duration::hours(1), old, 3, 1);
    org.add_records("LoginEventLog", rows).unwrap();
    let out = dir.path().join("events.ndjson");
    let output = run(sf_ingest_for(&org, &key)
        .args(["--source", "LoginEventLog", "--since", "40d", "--out"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("since asks for 40 days of LoginEventLog")
            && err.contains("30 days only: collecting from 30 days ago"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
}
