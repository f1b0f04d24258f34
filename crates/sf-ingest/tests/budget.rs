//! `--api-budget` / `api_budget`: the real binary against org doubles whose API usage is near
//! the budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use salesforce_jwt_mock::MockOrg;

/// Requests counted against the org's API limit (the double counts exactly these in its usage).
fn data_requests(org: &MockOrg) -> usize {
    org.requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/v"))
        .count()
}

fn config(dir: &std::path::Path, org: &MockOrg, extra: &str) -> std::path::PathBuf {
    let key = demo_key(dir, "demo.key");
    let path = dir.join("sf-ingest.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nsince = \"7d\"\nconcurrency = 1\n{}{extra}",
            org_table("acme-prod", org, &key, "acme.ndjson"),
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_run_that_crosses_the_budget_stops_within_a_few_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    add_files(&org, 30, 3);
    // The double's limit is 15000; --api-budget 60 is 9000: ten requests of room.
    org.set_api_usage(8990);
    let config = config(dir.path(), &org, "");

    let output = run(sf_ingest()
        .args(["--api-budget", "60", "--config"])
        .arg(&config));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains(
            "API usage 9000/15000 (60%) is at or above the budget of 60%: pausing acme-prod"
        ),
        "{log}"
    );
    // Ten requests fit; one more at most was already under way (concurrency 1).
    assert!(data_requests(&org) <= 11, "{}", data_requests(&org));
    let delivered = rows_in_output(&dir.path().join("acme.ndjson"));
    let all = rows_in_org(&org);
    assert!(delivered.len() < all.len());
    // What was delivered is whole files, each as the org holds it.
    for (id, rows) in &delivered {
        assert_eq!(Some(rows), all.get(id));
    }

    // Later, usage has fallen: the next run delivers the rest, nothing twice.
    org.set_api_usage(100);
    let output = run(sf_ingest()
        .args(["--api-budget", "60", "--config"])
        .arg(&config));
    assert_eq!(output.status.code(), Some(0));
    assert!(!stderr(&output).contains("pausing"));
    assert_eq!(rows_in_output(&dir.path().join("acme.ndjson")), all);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_follow_an_org_at_its_budget_pauses_and_resumes_once_usage_falls() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    add_files(&org, 20, 3);
    // The default budget is 50%; this org's own is 40% of 15000, 6000.
    org.set_api_usage(5995);
    let config = config(dir.path(), &org, "api_budget = 40\n");

    let running = Running::spawn(sf_ingest().args(["--follow", "1", "--config"]).arg(&config));
    running
        .wait_for("API usage 6000/15000 (40%) is at or above the budget of 40%: pausing acme-prod");
    let paused_at = data_requests(&org);
    // Polls while paused send one request each, to the limits resource, and nothing else.
    running.wait_for("still pausing acme-prod");
    let probes: Vec<String> = org
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/v"))
        .skip(paused_at)
        .map(|r| r.path.clone())
        .collect();
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|p| p.ends_with("/limits")), "{probes:?}");
    assert_eq!(
        running.count("pausing acme-prod"),
        running.count("still pausing") + 1
    );

    org.set_api_usage(0);
    running.wait_for("is below the budget of 40%: resumed acme-prod");
    let total: usize = rows_in_org(&org).values().map(Vec::len).sum();
    running.wait_for(&format!("rows_delivered_in_all={total}"));
    let status = running.stop();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        rows_in_output(&dir.path().join("acme.ndjson")),
        rows_in_org(&org)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_outside_one_to_a_hundred_is_a_usage_error_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    let config = config(dir.path(), &org, "api_budget = 101\n");
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("api_budget: 101 is out of range"), "{log}");

    let output = run(sf_ingest()
        .args(["--api-budget", "0", "--config"])
        .arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let log = stderr(&output);
    assert!(log.contains("--api-budget: 0 is out of range"), "{log}");
    assert!(log.contains("from 1 to 100"), "{log}");
    assert_eq!(data_requests(&org), 0);
}
