//! The library on a current-thread runtime, as a downstream service that enables only what it
//! needs would run it: authentication, listing and a whole collector pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use downstream_check::{collect_once, count_log_files};
use salesforce_jwt::JwtBearerClient;
use salesforce_jwt::collect::CollectorOptions;
use salesforce_jwt_mock::MockOrg;

async fn client_for(org: &MockOrg) -> JwtBearerClient {
    let config = org.config_builder().build().unwrap();
    JwtBearerClient::new(config).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_collector_pass_runs_on_a_current_thread_runtime() {
    let org = MockOrg::start().await;
    let ids = org.add_demo_data(salesforce_jwt::OffsetDateTime::now_utc());
    let expected_rows: u64 = org
        .files()
        .iter()
        .filter(|f| ids.contains(&f.id))
        .map(|f| f.row_count as u64)
        .sum();
    assert!(expected_rows > 0);
    let client = client_for(&org).await;
    assert_eq!(count_log_files(&client).await.unwrap(), ids.len());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let state = dir.path().join("events.checkpoint.json");
    let options = CollectorOptions {
        since: Duration::from_secs(7 * 24 * 3600),
        ..CollectorOptions::default()
    };
    let rows = collect_once(client.clone(), &out, &state, options)
        .await
        .unwrap();
    assert_eq!(rows, expected_rows);
    let lines = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    assert_eq!(lines, expected_rows);
    // A second pass over the same checkpoint delivers nothing new.
    assert_eq!(
        collect_once(client, &out, &state, options).await.unwrap(),
        0
    );
}
