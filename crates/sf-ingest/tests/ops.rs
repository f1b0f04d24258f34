//! Running as a service: the metrics endpoint, `checkpoint show|reset` on a file, systemd
//! notifications. Everything through the binary, against org doubles.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use salesforce_jwt::datetime;
use salesforce_jwt_mock::{Interval, MockOrg};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const LOGIN_EVENTS: usize = 40;

/// An org with three hourly Login files of 25 rows and `LOGIN_EVENTS` LoginEvent rows.
async fn org_with_rows() -> MockOrg {
    let org = MockOrg::start().await;
    add_files(&org, 3, 25);
    let now = OffsetDateTime::now_utc();
    let rows = salesforce_jwt_mock::generate_records(
        "LoginEvent",
        now - time::Duration::days(2),
        now - time::Duration::minutes(10),
        LOGIN_EVENTS,
        7,
    );
    org.add_records("LoginEvent", rows).unwrap();
    org
}

/// A config collecting EventLogFile and LoginEvent of `org` as "acme" into `acme.ndjson`.
fn config(dir: &Path, org: &MockOrg, top: &str) -> std::path::PathBuf {
    let key = demo_key(dir, "demo.key");
    let path = dir.join("sf-ingest.toml");
    std::fs::write(
        &path,
        format!(
            "{top}[defaults]\nsince = \"7d\"\n{}sources = [\"EventLogFile\", \"LoginEvent\"]\n",
            org_table("acme", org, &key, "acme.ndjson")
        ),
    )
    .unwrap();
    path
}

/// Lines of the output by source: EventLogFile rows, LoginEvent rows.
fn output_rows(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = (0, 0);
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        if row.get("EventLogFileId").is_some() {
            counts.0 += 1;
        } else {
            assert_eq!(row["SObjectType"], "LoginEvent", "{line}");
            counts.1 += 1;
        }
    }
    counts
}

fn labels_of(sample: &Sample) -> Vec<&str> {
    sample.labels.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_rows_bytes_lag_success_and_api_usage_by_org_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let org = org_with_rows().await;
    // The config file's metrics_addr, port 0: the bound address is logged.
    let config = config(dir.path(), &org, "metrics_addr = \"127.0.0.1:0\"\n");
    let started = OffsetDateTime::now_utc();
    let collector = Running::spawn(
        sf_ingest()
            .arg("--config")
            .arg(&config)
            .args(["--follow", "60"]),
    );
    let addr = collector.metrics_addr();
    collector.wait_for("pass done");
    let (status, body) = http_get(&addr, "/metrics");
    let scraped = OffsetDateTime::now_utc();
    assert_eq!(status, 200, "{body}");
    println!("{body}");
    let scrape = parse_metrics(&body);

    let (elf_rows, login_rows) = output_rows(&dir.path().join("acme.ndjson"));
    assert_eq!((elf_rows, login_rows), (75, LOGIN_EVENTS));
    let acme = |source: &'static str| [("org", "acme"), ("source", source)];
    assert_eq!(
        scrape.value("sf_ingest_rows_total", &acme("EventLogFile")),
        Some(elf_rows as f64)
    );
    assert_eq!(
        scrape.value("sf_ingest_rows_total", &acme("LoginEvent")),
        Some(login_rows as f64)
    );
    let csv_bytes: u64 = org.files().iter().map(|f| f.length).sum();
    assert_eq!(
        scrape.value("sf_ingest_bytes_total", &acme("EventLogFile")),
        Some(csv_bytes as f64)
    );
    assert!(
        scrape
            .value("sf_ingest_bytes_total", &acme("LoginEvent"))
            .unwrap()
            > 0.0
    );

    // Lag: now minus the newest event delivered (EventLogFile: the end of the newest file's
    // hour; LoginEvent: the newest EventDate).
    let newest_file = org
        .files()
        .iter()
        .map(|f| {
            assert_eq!(f.interval, Interval::Hourly);
            f.log_date + time::Duration::HOUR
        })
        .max()
        .unwrap();
    let newest_login = org
        .records("LoginEvent")
        .iter()
        .map(|r| datetime::parse(r["EventDate"].as_str().unwrap()).unwrap())
        .max()
        .unwrap();
    for (source, newest) in [("EventLogFile", newest_file), ("LoginEvent", newest_login)] {
        let lag = scrape
            .value("sf_ingest_lag_seconds", &acme(source))
            .unwrap();
        let low = (started - newest).as_seconds_f64() - 1.0;
        let high = (scraped - newest).as_seconds_f64() + 1.0;
        assert!(
            low <= lag && lag <= high,
            "{source}: lag {lag} not in [{low}, {high}]"
        );
        let success = scrape
            .value("sf_ingest_last_success_timestamp_seconds", &acme(source))
            .unwrap();
        assert!(
            started.unix_timestamp() as f64 - 1.0 <= success
                && success <= scraped.unix_timestamp() as f64 + 1.0,
            "{source}: last success {success}"
        );
    }
    // Salesforce's Sforce-Limit-Info, as the org double sends it on every response.
    let usage = scrape
        .value("sf_ingest_api_usage_ratio", &[("org", "acme")])
        .unwrap();
    assert!(0.0 < usage && usage <= 1.0, "{usage}");

    for (family, kind) in [
        ("sf_ingest_rows_total", "counter"),
        ("sf_ingest_bytes_total", "counter"),
        ("sf_ingest_lag_seconds", "gauge"),
        ("sf_ingest_last_success_timestamp_seconds", "gauge"),
        ("sf_ingest_api_usage_ratio", "gauge"),
    ] {
        assert_eq!(
            scrape.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(!scrape.helps[family].is_empty());
        for sample in scrape.of(family) {
            let want: &[&str] = if family == "sf_ingest_api_usage_ratio" {
                &["org"]
            } else {
                &["org", "source"]
            };
            assert_eq!(labels_of(sample), want, "{sample:?}");
        }
    }
    // No lease outside PostgreSQL mode, no error.
    assert!(scrape.of("sf_ingest_lease_held").is_empty());
    assert!(scrape.of("sf_ingest_errors_total").is_empty());

    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(&addr, "/other").0, 404);
    let health = run(sf_ingest()
        .arg("healthcheck")
        .arg(format!("http://{addr}/healthz")));
    assert_eq!(health.status.code(), Some(0), "{}", stderr(&health));
    let missing = run(sf_ingest()
        .arg("healthcheck")
        .arg(format!("http://{addr}/nothing-here")));
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));

    assert!(collector.stop().success());
    let closed = run(sf_ingest()
        .arg("healthcheck")
        .arg(format!("http://{addr}/healthz")));
    assert_eq!(closed.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_org_counts_errors_by_kind_and_shows_no_api_usage_before_salesforce_answers() {
    let dir = tempfile::tempdir().unwrap();
    let org = org_with_rows().await;
    let key = demo_key(dir.path(), "demo.key");
    let config = dir.path().join("sf-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            org_table("good", &org, &key, "good.ndjson"),
            org_table("bad", &org, &wrong_key(), "bad.ndjson"),
        ),
    )
    .unwrap();
    let collector = Running::spawn(sf_ingest().arg("--config").arg(&config).args([
        "--follow",
        "60",
        "--metrics-addr",
        "127.0.0.1:0",
    ]));
    let addr = collector.metrics_addr();
    collector.wait_for("org failed");
    collector.wait_for("pass done");
    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    println!("{body}");
    let scrape = parse_metrics(&body);
    let errors = scrape.of("sf_ingest_errors_total");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let labels: BTreeMap<&str, &str> = errors[0]
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([("kind", "auth"), ("org", "bad"), ("source", "EventLogFile")])
    );
    assert_eq!(errors[0].value, 1.0);
    assert_eq!(scrape.types["sf_ingest_errors_total"], "counter");
    // The bad org never reached the instance: no usage seen, no series.
    let usage: Vec<&str> = scrape
        .of("sf_ingest_api_usage_ratio")
        .iter()
        .map(|s| s.labels["org"].as_str())
        .collect();
    assert_eq!(usage, ["good"]);
    assert_eq!(
        scrape.value(
            "sf_ingest_rows_total",
            &[("org", "bad"), ("source", "EventLogFile")]
        ),
        Some(0.0)
    );
    collector.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_metrics_address_is_a_usage_error_naming_the_option() {
    let output = run(sf_ingest().args(["--metrics-addr", "9464"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--metrics-addr: \"9464\" is not HOST:PORT"),
        "{}",
        stderr(&output)
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run(sf_ingest().args(["--metrics-addr", &addr]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("--metrics-addr: cannot listen on {addr}")),
        "{}",
        stderr(&output)
    );
    let dir = tempfile::tempdir().unwrap();
    let org = MockOrg::start().await;
    let config = config(dir.path(), &org, "metrics_addr = 9464\n");
    let output = run(sf_ingest().arg("--check").arg("--config").arg(&config));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("metrics_addr: 9464 is not usable"),
        "{}",
        stderr(&output)
    );
}

/// Every entry of `dir`: name, length, modification time.
fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().unwrap(),
            )
        })
        .collect();
    entries.sort();
    entries
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Holds the exclusive lock a collector holds on `PATH.lock`, like a running collector.
struct HeldLock {
    // Unlocked when dropped.
    _file: std::fs::File,
}

impl HeldLock {
    fn take(checkpoint: &Path) -> HeldLock {
        let mut name = checkpoint.as_os_str().to_os_string();
        name.push(".lock");
        let file = std::fs::OpenOptions::new().write(true).open(name).unwrap();
        file.try_lock().unwrap();
        HeldLock { _file: file }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_show_prints_each_sources_position_without_sf_variables_lock_or_writes() {
    let dir = tempfile::tempdir().unwrap();
    let org = org_with_rows().await;
    let config = config(dir.path(), &org, "");
    let before_run = OffsetDateTime::now_utc();
    let output = run(sf_ingest().arg("--config").arg(&config));
    assert!(output.status.success());
    let after_run = OffsetDateTime::now_utc();
    let checkpoint = dir.path().join("acme.ndjson.checkpoint.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();

    // While a collector holds the checkpoint's lock.
    let lock = HeldLock::take(&checkpoint);
    let listed = listing(dir.path());
    // sf_ingest() sets no SF_* variable.
    let show = run(sf_ingest()
        .args(["checkpoint", "show", "--state"])
        .arg(&checkpoint));
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert_eq!(listing(dir.path()), listed, "show changed the directory");
    drop(lock);

    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let newest_file = org.files().iter().map(|f| f.created_date).max().unwrap();
    let login_position = shown["LoginEvent"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        shown,
        serde_json::json!({
            "EventLogFile": {
                "kind": "EventLogFile",
                "position": rfc3339(newest_file),
                "since": saved["sources"]["EventLogFile"]["log_date_floor"],
            },
            "LoginEvent": { "kind": "BigObject", "position": login_position },
        })
    );
    // The LoginEvent watermark is the end of the last window: the time of the run.
    let watermark = OffsetDateTime::parse(&login_position, &Rfc3339).unwrap();
    assert!(
        before_run - time::Duration::seconds(1) <= watermark && watermark <= after_run,
        "{watermark}"
    );

    // No checkpoint: a usage error, and nothing created.
    let fresh = tempfile::tempdir().unwrap();
    let missing = run(sf_ingest()
        .args(["checkpoint", "show", "--state"])
        .arg(fresh.path().join("none.json")));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no checkpoint there"),
        "{}",
        stderr(&missing)
    );
    assert!(listing(fresh.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_reset_rewinds_one_source_refused_while_a_collector_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let org = org_with_rows().await;
    let config = config(dir.path(), &org, "");
    let out = dir.path().join("acme.ndjson");
    let checkpoint = dir.path().join("acme.ndjson.checkpoint.json");
    assert!(
        run(sf_ingest().arg("--config").arg(&config))
            .status
            .success()
    );
    assert_eq!(output_rows(&out), (75, LOGIN_EVENTS));
    let reset = || {
        run(sf_ingest()
            .args([
                "checkpoint",
                "reset",
                "--source",
                "LoginEvent",
                "--since",
                "7d",
                "--state",
            ])
            .arg(&checkpoint))
    };

    // A running collector holds it: refused, and nothing moves.
    let collector = Running::spawn(
        sf_ingest()
            .arg("--config")
            .arg(&config)
            .args(["--follow", "60"]),
    );
    collector.wait_for("pass done");
    let refused = reset();
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(
        err.contains("refused") && err.contains("in use by another collector"),
        "{err}"
    );
    assert!(collector.stop().success());
    assert!(
        run(sf_ingest().arg("--config").arg(&config))
            .status
            .success()
    );
    assert_eq!(output_rows(&out), (75, LOGIN_EVENTS), "nothing was rewound");

    // An unknown source names the ones there are.
    let unknown = run(sf_ingest()
        .args([
            "checkpoint",
            "reset",
            "--source",
            "ApiEvent",
            "--since",
            "7d",
            "--state",
        ])
        .arg(&checkpoint));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("it has EventLogFile, LoginEvent"),
        "{}",
        stderr(&unknown)
    );

    // Rewound: it says rows come again, and the next run delivers LoginEvent's rows again and
    // EventLogFile's not.
    let rewound = reset();
    assert_eq!(rewound.status.code(), Some(0), "{}", stderr(&rewound));
    let err = stderr(&rewound);
    assert!(
        err.contains("LoginEvent rewound to") && err.contains("AGAIN"),
        "{err}"
    );
    assert!(
        run(sf_ingest().arg("--config").arg(&config))
            .status
            .success()
    );
    assert_eq!(output_rows(&out), (75, 2 * LOGIN_EVENTS));
}

#[test]
fn systemd_hears_ready_then_watchdog_pings_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let collector = Running::spawn(
        sf_ingest()
            .env("NOTIFY_SOCKET", &path)
            // 200 ms: a ping every 100 ms.
            .env("WATCHDOG_USEC", "200000")
            // The demo (no SF_* variables): its rows go to stdout, since an --out without an
            // org is refused.
            .args(["--follow", "60"]),
    );
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let first = next();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    for _ in 0..3 {
        assert_eq!(next(), "WATCHDOG=1");
    }
    assert!(collector.stop().success());
    let mut rest = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 512];
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert!(rest.iter().any(|m| m == "STOPPING=1"), "{rest:?}");
}

#[test]
fn the_strict_metrics_parser_refuses_what_the_text_format_does_not_allow() {
    let good =
        "# HELP a_total Help.\n# TYPE a_total counter\na_total{org=\"x\",source=\"y\\\"z\"} 3\n";
    let scrape = parse_metrics(good);
    assert_eq!(
        scrape.value("a_total", &[("org", "x"), ("source", "y\"z")]),
        Some(3.0)
    );
    for bad in [
        // No HELP, no TYPE, an unknown type, a comment of another kind.
        "# TYPE a counter\na 1\n",
        "# HELP a Help.\na 1\n",
        "# HELP a Help.\n# TYPE a thing\na 1\n",
        "# HELP a Help.\n# TYPE a gauge\n# NOTE a\na 1\n",
        // Labels: unquoted, unterminated, a bad escape, a repeated name, no separator.
        "# HELP a Help.\n# TYPE a gauge\na{org=x} 1\n",
        "# HELP a Help.\n# TYPE a gauge\na{org=\"x} 1\n",
        "# HELP a Help.\n# TYPE a gauge\na{org=\"\\x\"} 1\n",
        "# HELP a Help.\n# TYPE a gauge\na{org=\"x\",org=\"y\"} 1\n",
        "# HELP a Help.\n# TYPE a gauge\na{org=\"x\"source=\"y\"} 1\n",
        // Values, series twice, a family split in two, no final newline.
        "# HELP a Help.\n# TYPE a gauge\na one\n",
        "# HELP a Help.\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a Help.\n# TYPE a gauge\n# HELP b Help.\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n",
        "# HELP a Help.\n# TYPE a gauge\na 1",
    ] {
        let parsed = std::panic::catch_unwind(|| parse_metrics(bad));
        assert!(parsed.is_err(), "accepted: {bad:?}");
    }
}
