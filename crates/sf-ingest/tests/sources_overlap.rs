//! Two sources of one org collecting the same category of events: allowed, warned about once
//! at start and by `--check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use salesforce_jwt_mock::MockOrg;

fn config(dir: &std::path::Path, org: &MockOrg, choices: &str) -> std::path::PathBuf {
    let key = demo_key(dir, "demo.key");
    let path = dir.join("sf-ingest.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nsince = \"2d\"\n{}{choices}",
            org_table("acme-prod", org, &key, "acme.ndjson"),
        ),
    )
    .unwrap();
    path
}

const LOGIN_TWICE: &str =
    "Login events are collected from two sources, EventLogFile (Login) and LoginEvent";

#[tokio::test(flavor = "multi_thread")]
async fn check_names_both_sources_and_the_category_they_share() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    let config = config(
        dir.path(),
        &org,
        "sources = [\"EventLogFile\", \"LoginEvent\", \"LogoutEvent\", \"SetupAuditTrail\"]\n",
    );
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_eq!(log.matches(LOGIN_TWICE).count(), 1, "{log}");
    assert!(log.contains("org acme-prod: Login events"), "{log}");
    assert!(
        log.contains(
            "Logout events are collected from two sources, EventLogFile (Logout) and LogoutEvent"
        ),
        "{log}"
    );
    // SetupAuditTrail has no EventLogFile counterpart.
    assert_eq!(
        log.matches("collected from two sources").count(),
        2,
        "{log}"
    );
    assert_eq!(org.received().token_requests, 0, "--check sends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn event_types_that_leave_the_category_out_are_not_an_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    let config = config(
        dir.path(),
        &org,
        "sources = [\"EventLogFile\", \"LoginEvent\"]\nevent_types = [\"API\", \"Logout\"]\n",
    );
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(!log.contains("collected from two sources"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_warns_once_before_it_starts_and_still_collects() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let config = config(
        dir.path(),
        &org,
        "sources = [\"EventLogFile\", \"LoginEvent\"]\n",
    );
    let output = run(sf_ingest().arg("--config").arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_eq!(log.matches(LOGIN_TWICE).count(), 1, "{log}");
    let start = log.find("starting").unwrap();
    assert!(log.find(LOGIN_TWICE).unwrap() < start, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn interval_all_warns_that_events_repeat_and_the_default_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    let config = config(dir.path(), &org, "");
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        !log.contains("repeat"),
        "the default interval is auto: {log}"
    );

    let output = run(sf_ingest()
        .arg("--check")
        .args(["--interval", "all"])
        .arg("--config")
        .arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert_eq!(log.matches("repeat").count(), 1, "{log}");
    assert!(log.contains("org acme-prod: interval all"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_interval_all_warns_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let config = config(dir.path(), &org, "interval = \"all\"\n");
    let output = run(sf_ingest().arg("--config").arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let warned = log.find("those events repeat").expect(&log);
    assert!(warned < log.find("starting").unwrap(), "{log}");
}
