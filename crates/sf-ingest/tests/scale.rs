//! Many orgs in one process at a real org's latency: passes that overlap however few download
//! slots there are, token requests spread out, and a sparse object's week in a handful of
//! queries; every row once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use salesforce_jwt_mock::{Fault, FaultTarget, MockOrg, RequestKind};
use time::OffsetDateTime;

/// Every answer of `org` takes this long, as a real org's do.
const LATENCY: Duration = Duration::from_millis(40);

/// An org whose every answer takes [`LATENCY`], with three Login files and `object_rows`
/// LoginEvent rows spread over the last week.
async fn slow_org(seed: u64, object_rows: usize) -> MockOrg {
    let org = MockOrg::start().await;
    org.inject_always(Fault::Delay {
        target: FaultTarget::Any,
        delay: LATENCY,
    });
    add_files(&org, 3, 5);
    if object_rows > 0 {
        let now = OffsetDateTime::now_utc();
        let rows = salesforce_jwt_mock::generate_records(
            "LoginEvent",
            now - time::Duration::days(6),
            now - time::Duration::minutes(30),
            object_rows,
            seed,
        );
        org.add_records("LoginEvent", rows).unwrap();
    }
    org
}

/// The REQUEST_ID of every EventLogFile row and the EventIdentifier of every LoginEvent row
/// of an output, each with how often it was written.
fn rows_of(path: &Path) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut files, mut objects) = (BTreeMap::new(), BTreeMap::new());
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("a JSON object");
        match (row.get("REQUEST_ID"), row.get("EventIdentifier")) {
            (Some(id), _) => *files.entry(id.as_str().unwrap().to_string()).or_default() += 1,
            (None, Some(id)) => *objects.entry(id.as_str().unwrap().to_string()).or_default() += 1,
            _ => panic!("a row of neither source: {line}"),
        }
    }
    (files, objects)
}

/// Every row of `org` in `path`, each once.
fn assert_every_row_once(org: &MockOrg, path: &Path) {
    let (files, objects) = rows_of(path);
    assert!(files.values().all(|&n| n == 1), "a file row twice");
    assert!(objects.values().all(|&n| n == 1), "an object row twice");
    let in_org: BTreeSet<String> = rows_in_org(org).into_values().flatten().collect();
    assert_eq!(files.keys().cloned().collect::<BTreeSet<_>>(), in_org);
    let in_org: BTreeSet<String> = org
        .records("LoginEvent")
        .iter()
        .map(|r| r["EventIdentifier"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(objects.keys().cloned().collect::<BTreeSet<_>>(), in_org);
}

/// A config of `orgs`, each into `org{i}.ndjson`, after `top` (top-level keys and `[defaults]`).
fn config(dir: &Path, top: &str, orgs: &[MockOrg]) -> std::path::PathBuf {
    let key = demo_key(dir, "demo.key");
    let mut text = top.to_string();
    for (i, org) in orgs.iter().enumerate() {
        text.push_str(&org_table(
            &format!("org{i}"),
            org,
            &key,
            &format!("org{i}.ndjson"),
        ));
    }
    let path = dir.join("sf-ingest.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn many_slow_orgs_with_one_download_slot_all_start_before_the_first_finishes() {
    const ORGS: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let mut orgs = Vec::new();
    for i in 0..ORGS {
        orgs.push(slow_org(i as u64, 6).await);
    }
    // One download slot for all: an org's pass that held it while it queried kept every other
    // org waiting, and the orgs went one after the other.
    let config = config(
        dir.path(),
        "max_downloads = 1\n[defaults]\nsince = \"7d\"\nconcurrency = 1\n\
         sources = [\"EventLogFile\", \"LoginEvent\"]\n",
        &orgs,
    );
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut first_queries = Vec::new();
    let mut last_requests = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        assert_every_row_once(org, &dir.path().join(format!("org{i}.ndjson")));
        let requests = org.requests();
        let first_query = requests
            .iter()
            .filter(|r| r.kind == RequestKind::Query)
            .map(|r| r.received_at)
            .min()
            .unwrap();
        first_queries.push(first_query);
        last_requests.push(requests.iter().map(|r| r.received_at).max().unwrap());
    }
    // Every org was querying before any org had finished: their passes overlap, however few
    // download slots there are.
    let last_start = first_queries.iter().max().unwrap();
    let first_end = last_requests.iter().min().unwrap();
    assert!(
        last_start < first_end,
        "the last org started querying at {last_start}, after an org had finished at {first_end}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_requests_of_many_orgs_are_spread_out() {
    const ORGS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let mut orgs = Vec::new();
    for _ in 0..ORGS {
        let org = MockOrg::start().await;
        add_files(&org, 1, 2);
        orgs.push(org);
    }
    // Slots enough for every org at once.
    let config = config(
        dir.path(),
        "max_downloads = 4096\n[defaults]\nsince = \"7d\"\n",
        &orgs,
    );
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut tokens: Vec<OffsetDateTime> = orgs
        .iter()
        .flat_map(|org| org.requests())
        .filter(|r| r.kind == RequestKind::Token)
        .map(|r| r.received_at)
        .collect();
    assert_eq!(tokens.len(), ORGS, "one token request per org");
    tokens.sort();
    // 10 ms apart, 290 ms from the first to the last; all at once they came within a few.
    let span = tokens[ORGS - 1] - tokens[0];
    assert!(span >= time::Duration::milliseconds(145), "{span}");
    // No burst: never more than a third of them within 50 ms.
    let most = tokens
        .iter()
        .map(|t| {
            tokens
                .iter()
                .filter(|u| **u >= *t && **u - *t < time::Duration::milliseconds(50))
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= ORGS / 3, "{most} token requests within 50 ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sparse_object_over_a_week_costs_a_handful_of_queries_not_one_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let org = slow_org(7, 5).await;
    let config = config(
        dir.path(),
        "[defaults]\nsince = \"7d\"\nsources = [\"LoginEvent\"]\n",
        std::slice::from_ref(&org),
    );
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    let (files, objects) = rows_of(&dir.path().join("org0.ndjson"));
    assert!(files.is_empty());
    assert_eq!(objects.len(), 5);
    assert!(objects.values().all(|&n| n == 1));
    // A week in windows of an hour is 168 queries; growing windows, a handful.
    let received = org.received();
    let queries = received.queries + received.query_more;
    assert!(queries < 30, "{queries} queries for a week of five rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_follow_every_org_is_collected_again_within_an_interval_however_few_slots() {
    const ORGS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let mut orgs = Vec::new();
    for i in 0..ORGS {
        orgs.push(slow_org(100 + i as u64, 6).await);
    }
    let config = config(
        dir.path(),
        "max_downloads = 1\n[defaults]\nsince = \"7d\"\nconcurrency = 1\n\
         sources = [\"EventLogFile\", \"LoginEvent\"]\n",
        &orgs,
    );
    let mut child = sf_ingest()
        .args(["--follow", "2", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listings = |org: &MockOrg| {
        org.requests()
            .iter()
            .filter(|r| {
                r.soql
                    .as_deref()
                    .is_some_and(|q| q.contains("FROM EventLogFile"))
            })
            .count()
    };
    // Within three intervals every org is due at least twice: the run stops as soon as each
    // was listed twice, and fails if that takes longer. (The process's own clock is real.)
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < deadline && orgs.iter().any(|org| listings(org) < 2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    for (i, org) in orgs.iter().enumerate() {
        let listings = listings(org);
        // Orgs one after the other, each pass holding the only slot, took longer than the
        // whole run for one round.
        assert!(
            listings >= 2,
            "org{i} was collected {listings} time(s) in three intervals"
        );
        assert_every_row_once(org, &dir.path().join(format!("org{i}.ndjson")));
    }
}
