//! `sf-ingest --config` against org doubles: several orgs at once, a failing org confined to
//! itself, and a SIGTERM mid-run followed by a restart, each row delivered exactly once.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use salesforce_jwt_mock::{Fault, FaultTarget, MockOrg};

#[tokio::test(flavor = "multi_thread")]
async fn two_orgs_from_one_config_file_each_get_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let (a, b) = (MockOrg::start().await, MockOrg::start().await);
    a.add_demo_data(time::OffsetDateTime::now_utc());
    add_files(&b, 40, 9);
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "max_downloads = 4\n[defaults]\nsince = \"7d\"\nconcurrency = 2\n{}{}",
            org_table("alpha", &a, &key, "alpha.ndjson"),
            org_table("beta", &b, &key, "out/beta.ndjson"),
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    // Relative outputs resolve against the config file's directory.
    assert_eq!(
        rows_in_output(&dir.path().join("alpha.ndjson")),
        rows_in_org(&a)
    );
    assert_eq!(
        rows_in_output(&dir.path().join("out/beta.ndjson")),
        rows_in_org(&b)
    );
    assert!(dir.path().join("out/beta.ndjson.checkpoint.json").exists());

    // A second run finds nothing new and repeats nothing.
    let again = run(sf_ingest().arg("--config").arg(&config));
    assert!(again.status.success());
    assert_eq!(
        rows_in_output(&dir.path().join("alpha.ndjson")),
        rows_in_org(&a)
    );
    assert_eq!(
        rows_in_output(&dir.path().join("out/beta.ndjson")),
        rows_in_org(&b)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_with_a_wrong_key_is_reported_by_name_while_the_other_completes() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let (good, bad) = (MockOrg::start().await, MockOrg::start().await);
    add_files(&good, 12, 5);
    add_files(&bad, 3, 5);
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\n{}{}",
            org_table("revoked-app", &bad, &wrong_key(), "bad.ndjson"),
            org_table("healthy", &good, &key, "good.ndjson"),
        ),
    )
    .unwrap();

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("org failed") && err.contains("revoked-app"),
        "{err}"
    );
    assert!(
        !err.lines()
            .any(|l| l.contains("org failed") && l.contains("healthy")),
        "{err}"
    );
    assert_eq!(
        rows_in_output(&dir.path().join("good.ndjson")),
        rows_in_org(&good)
    );
    assert!(rows_in_output(&dir.path().join("bad.ndjson")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_stops_cleanly_and_a_restart_delivers_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    // Many files, one at a time, each committed with fsyncs: the run is still early when the
    // test reads the first file's progress line and signals.
    add_files(&org, 300, 20);
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\nconcurrency = 1\n{}",
            org_table("acme", &org, &key, "acme.ndjson")
        ),
    )
    .unwrap();

    let mut child = sf_ingest()
        .args(["--log-format", "json", "-v", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let first_file_done =
            line.contains(r#""message":"progress""#) && line.contains(r#""files_done":1,"#);
        log.push(line);
        if first_file_done {
            break;
        }
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    log.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopping after the current file"), "{log}");
    assert!(log.contains(r#""stopped":true"#), "{log}");

    let expected = rows_in_org(&org);
    let first = rows_in_output(&dir.path().join("acme.ndjson"));
    assert!(
        !first.is_empty() && first.len() < expected.len(),
        "stopped after {} of {} files",
        first.len(),
        expected.len()
    );
    for (id, rows) in &first {
        assert_eq!(
            rows, &expected[id],
            "file {id} is complete and not repeated"
        );
    }

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success());
    assert_eq!(rows_in_output(&dir.path().join("acme.ndjson")), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_follow_an_org_over_its_api_limit_is_retried_later_while_the_other_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let (limited, healthy) = (MockOrg::start().await, MockOrg::start().await);
    add_files(&limited, 6, 4);
    add_files(&healthy, 8, 4);
    limited.inject(Fault::RequestLimitExceeded {
        target: FaultTarget::Query,
    });
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\n{}{}",
            org_table("limited", &limited, &key, "limited.ndjson"),
            org_table("healthy", &healthy, &key, "healthy.ndjson"),
        ),
    )
    .unwrap();

    let mut child = sf_ingest()
        .args(["--log-format", "json", "--follow", "1", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut failed, mut limited_done, mut healthy_done) = (false, false, false);
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let org = |name: &str| line.contains(&format!(r#""org":"{name}""#));
        if line.contains("tried again later") && org("limited") {
            assert!(
                line.contains("REQUEST_LIMIT_EXCEEDED") || line.contains("request limit"),
                "{line}"
            );
            failed = true;
        }
        if line.contains(r#""message":"pass done""#) && line.contains(r#""files":"#) {
            limited_done |= org("limited") && line.contains(r#""rows_delivered_in_all":24"#);
            healthy_done |= org("healthy") && line.contains(r#""rows_delivered_in_all":32"#);
        }
        log.push(line);
        if failed && limited_done && healthy_done {
            break;
        }
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    log.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let log = log.join("\n");
    assert!(failed && limited_done && healthy_done, "{log}");
    // The limited org's failure did not stop the healthy org, and a stop while both wait for
    // their next poll is a clean exit.
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        rows_in_output(&dir.path().join("limited.ndjson")),
        rows_in_org(&limited)
    );
    assert_eq!(
        rows_in_output(&dir.path().join("healthy.ndjson")),
        rows_in_org(&healthy)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_and_the_restart_still_delivers_every_row_exactly_once() {
    use wiremock::Mock;
    use wiremock::matchers::{method, path_regex};

    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 2, 30);
    // The second file's download hangs in the first run: that run cannot reach the end of a
    // file after the first signal, so only the second signal can end it (and the test would
    // take minutes if it did not).
    let first_run = Arc::new(AtomicBool::new(true));
    let (arrived_tx, arrived) = std::sync::mpsc::channel();
    let second = org
        .files()
        .into_iter()
        .max_by_key(|f| (f.created_date, f.id.clone()))
        .unwrap();
    Mock::given(method("GET"))
        .and(path_regex(format!("/{}/LogFile$", second.id)))
        .and(While(Arc::clone(&first_run)))
        .respond_with(Hang(std::sync::Mutex::new(arrived_tx)))
        .with_priority(1)
        .mount(org.server())
        .await;
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\nconcurrency = 1\n{}",
            org_table("acme", &org, &key, "acme.ndjson")
        ),
    )
    .unwrap();

    let mut child = sf_ingest()
        .args(["--log-format", "json", "-v", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let first_file_done =
            line.contains(r#""message":"progress""#) && line.contains(r#""files_done":1,"#);
        let stopping = line.contains("stopping after the current file");
        log.push(line);
        if first_file_done {
            // Only once the second file's download is hanging: a stop requested before the
            // collector reached it would end the run cleanly after the first file.
            arrived
                .recv_timeout(std::time::Duration::from_secs(120))
                .expect("the second file's download was requested");
            // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        }
        if stopping {
            // SAFETY: as above.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        }
    }
    let status = child.wait().unwrap();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{log}");
    assert!(log.contains("quitting at once"), "{log}");

    first_run.store(false, Ordering::SeqCst);
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success());
    assert_eq!(
        rows_in_output(&dir.path().join("acme.ndjson")),
        rows_in_org(&org)
    );
}

/// Matches while the flag is set.
struct While(Arc<AtomicBool>);

/// Answers after ten minutes, saying at once on its channel that a request arrived.
struct Hang(std::sync::Mutex<std::sync::mpsc::Sender<()>>);

impl wiremock::Respond for Hang {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(());
        wiremock::ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(600))
    }
}

impl wiremock::Match for While {
    fn matches(&self, _: &wiremock::Request) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_downloads_bounds_the_downloads_of_all_orgs_together_while_their_passes_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let (a, b) = (MockOrg::start().await, MockOrg::start().await);
    add_files(&a, 12, 5);
    add_files(&b, 12, 5);
    // Every download answer takes this long: two downloads in flight at once would be
    // received less than this apart.
    let answer = std::time::Duration::from_millis(50);
    for org in [&a, &b] {
        org.inject_always(Fault::Delay {
            target: FaultTarget::Download,
            delay: answer,
        });
    }
    let config = dir.path().join("sf-ingest.toml");
    // One download slot for both orgs, held by a file while it downloads and is written; an
    // org's pass holds none of its own, so the two orgs go side by side.
    std::fs::write(
        &config,
        format!(
            "max_downloads = 1\n[defaults]\nsince = \"7d\"\nconcurrency = 1\n{}{}",
            org_table("a", &a, &key, "a.ndjson"),
            org_table("b", &b, &key, "b.ndjson"),
        ),
    )
    .unwrap();

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success());
    let downloads = |org: &MockOrg| -> Vec<time::OffsetDateTime> {
        org.requests()
            .into_iter()
            .filter(|r| r.kind == salesforce_jwt_mock::RequestKind::Download)
            .map(|r| r.received_at)
            .collect()
    };
    let (of_a, of_b) = (downloads(&a), downloads(&b));
    assert_eq!((of_a.len(), of_b.len()), (12, 12));
    let mut all: Vec<_> = of_a.iter().chain(&of_b).copied().collect();
    all.sort();
    // Never two downloads at once, whichever org they are for.
    for pair in all.windows(2) {
        assert!(
            pair[1] - pair[0] >= answer,
            "two downloads in flight at once: {} apart",
            pair[1] - pair[0]
        );
    }
    // And the orgs took turns: neither waited for the other's whole pass.
    let (first_a, last_a) = (of_a.iter().min().unwrap(), of_a.iter().max().unwrap());
    let (first_b, last_b) = (of_b.iter().min().unwrap(), of_b.iter().max().unwrap());
    assert!(
        first_b < last_a && first_a < last_b,
        "one org's downloads all came before the other's"
    );
    assert_eq!(
        rows_in_output(&dir.path().join("a.ndjson")),
        rows_in_org(&a)
    );
    assert_eq!(
        rows_in_output(&dir.path().join("b.ndjson")),
        rows_in_org(&b)
    );
}

/// The key of each row of an org's real-time object: EventIdentifier, or Id on SetupAuditTrail.
fn object_keys(org: &MockOrg, object: &str) -> std::collections::BTreeSet<String> {
    let field = if object == "SetupAuditTrail" {
        "Id"
    } else {
        "EventIdentifier"
    };
    org.records(object)
        .iter()
        .map(|r| r[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_with_event_log_file_and_real_time_sources_gets_every_row_once_as_ndjson_and_ecs() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    org.add_demo_data(time::OffsetDateTime::now_utc());
    let now = time::OffsetDateTime::now_utc();
    for (seed, object) in ["LoginEvent", "SetupAuditTrail"].into_iter().enumerate() {
        let rows = salesforce_jwt_mock::generate_records(
            object,
            now - time::Duration::days(2),
            now - time::Duration::minutes(1),
            120,
            seed as u64,
        );
        org.add_records(object, rows).unwrap();
    }
    let sources = "sources = [\"EventLogFile\", \"LoginEvent\", \"SetupAuditTrail\"]\n";
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nsince = \"7d\"\n{}{sources}{}{sources}format = \"ecs\"\nnamespace = \"acme_prod\"\n",
            org_table("plain", &org, &key, "plain.ndjson"),
            org_table("ecs", &org, &key, "ecs.ndjson"),
        ),
    )
    .unwrap();
    let check = || {
        // NDJSON: EventLogFile rows by file, object rows by SObjectType, each once.
        let text = std::fs::read_to_string(dir.path().join("plain.ndjson")).unwrap();
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut objects: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(id) = row["EventLogFileId"].as_str() {
                files
                    .entry(id.to_string())
                    .or_default()
                    .push(row["REQUEST_ID"].as_str().unwrap().to_string());
                continue;
            }
            let object = row["SObjectType"].as_str().unwrap().to_string();
            let key = row[if object == "SetupAuditTrail" {
                "Id"
            } else {
                "EventIdentifier"
            }]
            .as_str()
            .unwrap()
            .to_string();
            assert!(objects.entry(object).or_default().insert(key), "{line}");
        }
        assert_eq!(files, rows_in_org(&org));
        assert_eq!(objects["LoginEvent"], object_keys(&org, "LoginEvent"));
        assert_eq!(
            objects["SetupAuditTrail"],
            object_keys(&org, "SetupAuditTrail")
        );

        // ECS: one document per row of every source, each event.id once, object rows through
        // object_document (their dataset names the object).
        let text = std::fs::read_to_string(dir.path().join("ecs.ndjson")).unwrap();
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(doc["event"]["module"], "salesforce", "{line}");
            // The org's `namespace` and instance, on log-file and object documents alike.
            assert_eq!(doc["data_stream"]["namespace"], "acme_prod", "{line}");
            assert_eq!(
                doc["data_stream"]["dataset"], doc["event"]["dataset"],
                "{line}"
            );
            assert_eq!(
                doc["salesforce"]["instance_url"],
                org.uri().trim_end_matches('/'),
                "{line}"
            );
            // Object documents carry the org's Id from the token, as Elastic's integration
            // writes it; log-file documents their ORGANIZATION_ID column.
            if doc["salesforce"]["event_log_file"].is_null() {
                assert_eq!(doc["organization"]["id"], org.org_id(), "{line}");
            }
            assert!(
                ids.insert(doc["event"]["id"].as_str().unwrap().to_string()),
                "{line}"
            );
        }
        let event_log_rows: usize = rows_in_org(&org).values().map(Vec::len).sum();
        assert_eq!(ids.len(), event_log_rows + 240);
        for object in ["LoginEvent", "SetupAuditTrail"] {
            for record in org.records(object) {
                let id = salesforce_jwt::format::event_id::object_event_id(object, &record);
                assert!(ids.contains(&id), "no ECS document for a {object} row");
            }
        }
    };

    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    check();
    // A second run finds nothing new and repeats nothing.
    let again = run(sf_ingest().arg("--config").arg(&config));
    assert!(again.status.success(), "{}", stderr(&again));
    check();
}
