//! `--out http://…`: the binary against the org double and the Elasticsearch double.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::*;
use salesforce_jwt_elasticsearch::testing::EsDouble;
use salesforce_jwt_mock::{MockLogFile, MockOrg};
use serde_json::{Value, json};

const LOGIN: &str = "logs-salesforce.login-default";

/// REQUEST_ID of every stored document, by EventLogFile Id, sorted (as `rows_in_org`'s, sorted).
fn rows_in_stream(double: &EsDouble, stream: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, doc) in double.documents(stream) {
        assert_eq!(doc["event"]["id"], id.as_str(), "_id is event.id");
        let dataset = doc["event"]["dataset"]
            .as_str()
            .unwrap()
            .trim_start_matches("salesforce.");
        rows.entry(
            doc["salesforce"]["event_log_file"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        )
        .or_default()
        .push(request_id(&doc, dataset));
    }
    rows.values_mut().for_each(|v| v.sort());
    rows
}

/// A log-file row's REQUEST_ID: nested as `request.id` where Elastic's integration nests it
/// (Login, Logout, Apex...), else the kept column `request_id`.
fn request_id(doc: &serde_json::Value, dataset: &str) -> String {
    let kept = &doc["salesforce"][dataset];
    kept["request"]["id"]
        .as_str()
        .or_else(|| kept["request_id"].as_str())
        .unwrap_or_else(|| panic!("no REQUEST_ID in {doc}"))
        .to_string()
}

fn sorted(mut rows: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    rows.values_mut().for_each(|v| v.sort());
    rows
}

/// `sf-ingest` for `org` into `double`, checkpoint in `dir/state.json`.
fn to_double(org: &MockOrg, key: &Path, double: &EsDouble, dir: &Path) -> std::process::Command {
    let mut cmd = sf_ingest_for(org, key);
    cmd.args(["--since", "7d", "--out"])
        .arg(double.url())
        .arg("--state")
        .arg(dir.join("state.json"))
        .env_remove("ES_API_KEY")
        .env_remove("ES_USERNAME")
        .env_remove("ES_PASSWORD");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_goes_once_to_its_data_stream_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 6, 25);
    let now = time::OffsetDateTime::now_utc();
    let records = salesforce_jwt_mock::generate_records(
        "LoginEvent",
        now - time::Duration::days(2),
        now - time::Duration::minutes(1),
        40,
        7,
    );
    org.add_records("LoginEvent", records).unwrap();
    let double = EsDouble::start().unwrap();
    double.require_api_key("c2VjcmV0OmtleQ==");

    let run_once = || {
        run(to_double(&org, &key, &double, dir.path())
            .args(["--source", "EventLogFile", "--source", "LoginEvent"])
            .env("ES_API_KEY", "c2VjcmV0OmtleQ=="))
    };
    let output = run_once();
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = sorted(rows_in_org(&org));
    let event_log_rows: usize = expected.values().map(Vec::len).sum();
    // EventLogFile rows and LoginEvent rows share the data set salesforce.login.
    let docs = double.documents(LOGIN);
    assert_eq!(docs.len(), event_log_rows + 40);
    let from_files = docs
        .iter()
        .filter(|(_, d)| d["salesforce"]["event_log_file"].is_object())
        .count();
    assert_eq!(from_files, event_log_rows);
    assert_eq!(rows_in_stream_files(&double), expected);
    for record in org.records("LoginEvent") {
        let id = salesforce_jwt::format::event_id::object_event_id("LoginEvent", &record);
        assert!(
            docs.iter().any(|(i, _)| *i == id),
            "no document for a LoginEvent row"
        );
    }
    assert!(
        double
            .requests()
            .iter()
            .all(|r| r.gzip && r.auth_scheme.as_deref() == Some("ApiKey"))
    );
    let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    assert!(
        state.contains(&format!("Elasticsearch {}", double.url())),
        "{state}"
    );

    let requests = double.requests().len();
    let again = run_once();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(double.documents(LOGIN).len(), event_log_rows + 40);
    assert_eq!(double.requests().len(), requests, "nothing new to send");
}

/// The EventLogFile documents of the Login stream, as `rows_in_stream`.
fn rows_in_stream_files(double: &EsDouble) -> BTreeMap<String, Vec<String>> {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, doc) in double.documents(LOGIN) {
        if let Some(file) = doc["salesforce"]["event_log_file"]["id"].as_str() {
            rows.entry(file.to_string())
                .or_default()
                .push(request_id(&doc, "login"));
        }
    }
    rows.values_mut().for_each(|v| v.sort());
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_run_and_a_restart_store_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 200, 30);
    let double = EsDouble::start().unwrap();
    let mut child = to_double(&org, &key, &double, dir.path())
        .args(["--concurrency", "1", "--log-format", "json", "-v"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains(r#""message":"progress""#) && line.contains(r#""files_done":3,"#);
        log.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let expected = sorted(rows_in_org(&org));
    let total: usize = expected.values().map(Vec::len).sum();
    let landed = double.documents(LOGIN).len();
    assert!(
        landed > 0 && landed < total,
        "killed mid-run: {landed} of {total}\n{}",
        log.join("\n")
    );

    let output = run(&mut to_double(&org, &key, &double, dir.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rows_in_stream(&double, LOGIN), expected);
    assert_eq!(double.documents(LOGIN).len(), total);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_503s_and_two_cut_connections_are_ridden_out_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 3, 40);
    let double = EsDouble::start().unwrap();
    double.fail_requests(3);
    double.cut_connections(2);
    let output = run(&mut to_double(&org, &key, &double, dir.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rows_in_stream(&double, LOGIN), sorted(rows_in_org(&org)));
    let statuses: Vec<u16> = double.requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..5], [503, 503, 503, 0, 0], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_end_the_run_with_the_401_reason_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 2, 10);
    let double = EsDouble::start().unwrap();
    double.require_basic("elastic", "right-password");
    let output = run(to_double(&org, &key, &double, dir.path())
        .env("ES_USERNAME", "elastic")
        .env("ES_PASSWORD", "wrong-password"));
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("unable to authenticate user [elastic]"),
        "{log}"
    );
    assert!(!log.contains("wrong-password"), "{log}");
    assert_eq!(double.document_count(), 0);
    // The checkpoint went nowhere: the right password delivers everything.
    let output = run(to_double(&org, &key, &double, dir.path())
        .env("ES_USERNAME", "elastic")
        .env("ES_PASSWORD", "right-password"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rows_in_stream(&double, LOGIN), sorted(rows_in_org(&org)));
}

/// Logout documents conflict with a template typing user.id as a number (it applies to the
/// logout data stream only).
fn conflicting_double() -> EsDouble {
    let double = EsDouble::start().unwrap();
    double.put_template(
        "conflict",
        json!({
            "index_patterns": ["logs-salesforce.logout-*"],
            "data_stream": {},
            "priority": 500,
            "template": {"mappings": {"properties": {"user": {"properties": {"id": {"type": "long"}}}}}}
        }),
    );
    double
}

fn login_and_logout_files(org: &MockOrg) {
    add_files(org, 2, 10);
    let now = time::OffsetDateTime::now_utc();
    let day = now.replace_time(time::Time::MIDNIGHT) - time::Duration::days(2);
    org.add_file(
        MockLogFile::builder("Logout")
            .log_date(day)
            .created_date(day + time::Duration::days(1))
            .rows(12)
            .seed(99)
            .build(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_refused_for_good_stops_the_org_with_its_id_and_reason_and_the_checkpoint_before_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    login_and_logout_files(&org);
    let double = conflicting_double();
    let output = run(&mut to_double(&org, &key, &double, dir.path()));
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("refused the document with event.id")
            && log.contains("logs-salesforce.logout-default")
            && log.contains("mapper_parsing_exception")
            && log.contains("[user.id] of type [long]"),
        "{log}"
    );
    assert!(
        double
            .documents("logs-salesforce.logout-default")
            .is_empty()
    );

    // With a dead-letter file the same documents (sent again: the checkpoint did not pass
    // them) are set aside and the run completes.
    let dead = dir.path().join("dead.ndjson");
    let output = run(to_double(&org, &key, &double, dir.path())
        .arg("--dead-letter")
        .arg(&dead));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "every Logout row, once");
    for line in &lines {
        assert_eq!(line["_index"], "logs-salesforce.logout-default");
        assert_eq!(line["status"], 400);
        assert_eq!(line["error"]["type"], "mapper_parsing_exception");
        assert_eq!(line["document"]["event"]["id"], line["_id"]);
    }
    let logins: usize = rows_in_org(&org)
        .iter()
        .filter(|(id, _)| {
            org.files()
                .iter()
                .any(|f| &f.id == *id && f.event_type == "Login")
        })
        .map(|(_, rows)| rows.len())
        .sum();
    assert_eq!(double.documents(LOGIN).len(), logins);
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_setup_installs_the_index_template() {
    let double = EsDouble::start().unwrap();
    double.require_api_key("setup-key");
    let output = run(sf_ingest()
        .args(["elasticsearch", "setup", "--out"])
        .arg(double.url())
        .env("ES_API_KEY", "wrong"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unable to authenticate"),
        "{}",
        stderr(&output)
    );
    assert!(
        !double
            .templates()
            .iter()
            .any(|(name, _)| name == "logs-salesforce")
    );

    let output = run(sf_ingest()
        .args(["elasticsearch", "setup", "--out"])
        .arg(double.url())
        .env("ES_API_KEY", "setup-key"));
    assert!(output.status.success(), "{}", stderr(&output));
    let templates = double.templates();
    let (_, template) = templates
        .iter()
        .find(|(name, _)| name == "logs-salesforce")
        .unwrap();
    assert_eq!(template["index_patterns"], json!(["logs-salesforce.*-*"]));
    assert!(template["data_stream"].is_object());
    assert_eq!(
        template["template"]["mappings"]["properties"]["source"]["properties"]["ip"]["type"],
        "ip"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_elasticsearch_out_needs_a_state_and_its_options_need_an_elasticsearch_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    let output = run(sf_ingest_for(&org, &key).args(["--out", "http://127.0.0.1:9"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--state: is required with an Elasticsearch out"),
        "{}",
        stderr(&output)
    );

    let output = run(sf_ingest_for(&org, &key)
        .arg("--out")
        .arg(dir.path().join("out.ndjson"))
        .arg("--dead-letter")
        .arg(dir.path().join("dead.ndjson")));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--dead-letter"),
        "{}",
        stderr(&output)
    );

    let output = run(sf_ingest_for(&org, &key)
        .args(["--out", "http://127.0.0.1:9", "--state"])
        .arg(dir.path().join("s.json"))
        .env("ES_USERNAME", "elastic")
        .env_remove("ES_PASSWORD")
        .env_remove("ES_API_KEY"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ES_USERNAME is set but ES_PASSWORD is not"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_org_reads_the_variables_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 2, 15);
    let double = EsDouble::start().unwrap();
    double.require_api_key("acme-key");
    let config = dir.path().join("sf-ingest.toml");
    let table = org_table("acme", &org, &key, &double.url());
    std::fs::write(
        &config,
        format!("[defaults]\nsince = \"7d\"\n{table}state = \"acme.state.json\"\nes_api_key_env = \"ACME_ES_KEY\"\n"),
    )
    .unwrap();
    let output = run(sf_ingest()
        .arg("--config")
        .arg(&config)
        .env_remove("ES_API_KEY")
        .env("ACME_ES_KEY", "acme-key"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rows_in_stream(&double, LOGIN), sorted(rows_in_org(&org)));
    assert!(dir.path().join("acme.state.json").is_file());
}

/// The largest resident set of the children waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage(2) fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage), 0);
        usage
    };
    u64::try_from(usage.ru_maxrss).unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_bounded_whatever_the_volume_and_requests_stay_under_10_mib() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    // About 30 MB of ECS documents (six 5 MiB batches' worth), in files of 2,500 rows; the
    // same run into an NDJSON file peaks at about 38 MiB.
    add_files(&org, 8, 2500);
    let double = EsDouble::start().unwrap();
    let output = run(&mut to_double(&org, &key, &double, dir.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let total: usize = rows_in_org(&org).values().map(Vec::len).sum();
    assert_eq!(double.documents(LOGIN).len(), total);
    let requests = double.requests();
    let sent: usize = requests.iter().map(|r| r.body_bytes).sum();
    assert!(sent > 25_000_000, "{sent} bytes sent");
    assert!(
        requests
            .iter()
            .all(|r| r.gzip && r.body_bytes <= 10 * 1024 * 1024)
    );
    let peak = children_peak_rss();
    assert!(peak < 64 * 1024 * 1024, "peak RSS {} MiB", peak >> 20);
    eprintln!(
        "peak RSS {} MiB for {} MB of documents",
        peak >> 20,
        sent / 1_000_000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_es_ca_file_trusts_the_clusters_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let key = demo_key(dir.path(), "demo.key");
    let org = MockOrg::start().await;
    add_files(&org, 2, 10);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../salesforce-jwt-elasticsearch/tests/fixtures");
    let double = EsDouble::start_tls(
        &std::fs::read(fixtures.join("server.pem")).unwrap(),
        &std::fs::read(fixtures.join("server.key")).unwrap(),
    )
    .unwrap();
    let output = run(&mut to_double(&org, &key, &double, dir.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("TLS handshake failed"),
        "{}",
        stderr(&output)
    );
    let output = run(to_double(&org, &key, &double, dir.path())
        .arg("--es-ca-file")
        .arg(fixtures.join("ca.pem")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rows_in_stream(&double, LOGIN), sorted(rows_in_org(&org)));
}
